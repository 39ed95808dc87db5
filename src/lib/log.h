/*
 * log.h - diagnostics for every postern process.
 * One line per event; to stderr in the foreground, to syslog (facility
 * mail) when configured.  log_warn() appends strerror(errno), log_warnx()
 * does not; fatal()/fatalx() are for start-up and environment problems.
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdarg.h>

enum log_dest { LOG_DEST_STDERR, LOG_DEST_SYSLOG };

void	log_init(enum log_dest dest, int verbose);
void	log_set_procname(const char *name);
int	log_verbose(void);

void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
