/*
 * log.c - diagnostics: stderr with a UTC timestamp, or syslog(3) with
 * facility LOG_MAIL.  Used by every process; never logs secrets (callers
 * escape client bytes with str_escape() first).
 */
#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum log_dest	log_dest = LOG_DEST_STDERR;
static int		log_verbosity;
static const char	*log_procname = "postern";

void
log_init(enum log_dest dest, int verbose)
{
	log_dest = dest;
	log_verbosity = verbose;
	if (dest == LOG_DEST_SYSLOG)
		openlog("postern", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_procname(const char *name)
{
	log_procname = name;
}

int
log_verbose(void)
{
	return log_verbosity;
}

static void __attribute__((format(printf, 2, 0)))
log_vwrite(int pri, const char *fmt, va_list ap, int with_errno)
{
	char		 msg[2048];
	int		 saved = errno;
	size_t		 n;

	vsnprintf(msg, sizeof msg, fmt, ap);	/* truncation is harmless */
	if (with_errno) {
		n = strlen(msg);
		snprintf(msg + n, sizeof msg - n, ": %s", strerror(saved));
	}
	if (log_dest == LOG_DEST_SYSLOG) {
		syslog(pri, "%s", msg);
	} else {
		char		 stamp[32];
		struct timespec	 ts;
		struct tm	 tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
		/* One write(2) per line keeps lines whole across processes. */
		char line[2200];
		int len = snprintf(line, sizeof line, "%s.%03ldZ %s[%d]: %s\n",
		    stamp, ts.tv_nsec / 1000000, log_procname, (int)getpid(), msg);
		if (len > (int)sizeof line - 1)
			len = sizeof line - 1;
		if (len > 0 && write(STDERR_FILENO, line, (size_t)len) < 0) {
			/* nowhere left to report it */
		}
	}
	errno = saved;
}

#define LOG_BODY(pri, with_errno) do {		\
	va_list ap;				\
	va_start(ap, fmt);			\
	log_vwrite(pri, fmt, ap, with_errno);	\
	va_end(ap);				\
} while (0)

void log_warn(const char *fmt, ...)  { LOG_BODY(LOG_WARNING, 1); }
void log_warnx(const char *fmt, ...) { LOG_BODY(LOG_WARNING, 0); }
void log_info(const char *fmt, ...)  { LOG_BODY(LOG_INFO, 0); }

void
log_debug(const char *fmt, ...)
{
	if (log_verbosity > 0)
		LOG_BODY(LOG_DEBUG, 0);
}

void
fatal(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, 1);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, 0);
	exit(1);
}
