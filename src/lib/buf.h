/*
 * buf.h - the one growable byte buffer for anything built from untrusted
 * input or of unbounded size.  Always NUL-terminated; refuses to grow past
 * its max (buf_append returns -1 and leaves the buffer unchanged).
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stddef.h>

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;		/* 0: no limit beyond SIZE_MAX */
};

void	buf_init(struct buf *, size_t max);
void	buf_free(struct buf *);
void	buf_reset(struct buf *);
int	buf_append(struct buf *, const void *, size_t);
int	buf_puts(struct buf *, const char *);
int	buf_putc(struct buf *, int);
int	buf_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	buf_consume(struct buf *, size_t);

#endif
