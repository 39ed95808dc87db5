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
#include <stdint.h>

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

/*
 * The size RETR gives a message (RFC 1939: STAT, LIST and "+OK n
 * octets"): the octets pop3_stuff_feed and _finish send for it, without
 * the dot-stuffing and the final ".\r\n".  For a file written by
 * something other than postern, whose lines may end in a bare LF.
 */
struct pop3_size {
	uint64_t	 octets;
	int		 cr;		/* the last octet was a CR */
	int		 bol;		/* ... ended a line, or none yet */
};

void	 pop3_size_init(struct pop3_size *);
void	 pop3_size_feed(struct pop3_size *, const char *in, size_t n);
uint64_t pop3_size_finish(const struct pop3_size *);

#endif
