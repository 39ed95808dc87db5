/*
 * pop3_stuff.h - a message file turned into a POP3 multi-line response
 * body (RFC 1939 section 3): lines end in CRLF, a line starting with
 * "." gets another one in front, and ".\r\n" ends it.  Fed in chunks so
 * that RETR streams a message of any size; TOP (RFC 1939 section 7)
 * stops after the header and n body lines.
 */
#ifndef POSTERN_POP3_STUFF_H
#define POSTERN_POP3_STUFF_H

#include <stddef.h>

#include "lib/buf.h"

struct pop3_stuff {
	int		 bol;		/* next byte starts a line */
	int		 cr;		/* last byte written was a CR */
	size_t		 linelen;	/* non-CR bytes in the current line */
	int		 in_body;	/* the header's empty line has passed */
	long		 body_lines;	/* TOP: body lines still to send; -1 all */
	int		 done;		/* TOP has sent all it should */
};

/* body_lines: -1 for RETR, n for TOP msg n. */
void	pop3_stuff_init(struct pop3_stuff *, long body_lines);
/* Append the stuffed form of in[0..n) to out; returns -1 if out is full
 * (its max), else 0.  Input past TOP's limit is ignored. */
int	pop3_stuff_feed(struct pop3_stuff *, const char *in, size_t n,
	    struct buf *out);
/* End the response: a CRLF if the last line lacked one, then ".\r\n". */
int	pop3_stuff_finish(struct pop3_stuff *, struct buf *out);

#endif
