/*
 * strutil.h - string helpers that know nothing about mail: bounded
 * copies, escaping client bytes for logs, and the size/duration syntax
 * of the configuration file ("10M", "15m").
 */
#ifndef POSTERN_STRUTIL_H
#define POSTERN_STRUTIL_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__GLIBC__) || !__GLIBC_PREREQ(2, 38)
size_t	strlcpy(char *, const char *, size_t);
size_t	strlcat(char *, const char *, size_t);
#endif

/* Copy at most len bytes of src into dst (size dstsz), escaping anything
 * that is not printable ASCII as \xNN, so a log line stays one line. */
char	*str_escape(char *dst, size_t dstsz, const char *src, size_t len);
void	 str_lower(char *);

/* "1024", "10k", "10M", "1G" -> bytes; -1 on error. */
int	 parse_size(const char *, uint64_t *);
/* "30", "30s", "15m", "2h", "5d" -> seconds; -1 on error. */
int	 parse_duration(const char *, uint64_t *);

#endif
