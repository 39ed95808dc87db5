/*
 * pop3_stuff.c - byte-stuffing of a message for RETR and TOP (see
 * pop3_stuff.h).  Messages delivered by postern already have CRLF line
 * ends (the DATA reader accepts nothing else), so the bytes pass
 * unchanged but for the added dots; a bare LF or bare CR in a file some
 * other program put in the Maildir still goes out as CRLF, as RFC 1939
 * section 3 requires.
 */
#include "pop3/pop3_stuff.h"

void
pop3_stuff_init(struct pop3_stuff *st, long body_lines)
{
	st->bol = 1;
	st->cr = 0;
	st->linelen = 0;
	st->in_body = 0;
	st->body_lines = body_lines;
	st->done = 0;
}

/* A line has ended: note the header's end and count TOP's body lines. */
static void
stuff_end_line(struct pop3_stuff *st)
{
	if (!st->in_body) {
		if (st->linelen == 0) {
			/* the empty line between header and body */
			st->in_body = 1;
			if (st->body_lines == 0)
				st->done = 1;
		}
	} else if (st->body_lines > 0 && --st->body_lines == 0)
		st->done = 1;
	st->bol = 1;
	st->linelen = 0;
	st->cr = 0;
}

int
pop3_stuff_feed(struct pop3_stuff *st, const char *in, size_t n,
    struct buf *out)
{
	size_t i = 0, span = 0;	/* in[span..i) is pending, unchanged */

	for (i = 0; i < n && !st->done; i++) {
		char c = in[i];

		if (st->cr && c != '\n') {
			/* bare CR: end the line with CR LF too, so that no
			 * client can read "CR . CR LF" as the end */
			if (buf_append(out, in + span, i - span) == -1 ||
			    buf_putc(out, '\n') == -1)
				return -1;
			span = i;
			stuff_end_line(st);
			if (st->done)
				break;
		}
		if (st->bol) {
			st->bol = 0;
			if (c == '.') {
				/* RFC 1939 section 3: "pre-pended" with '.' */
				if (buf_append(out, in + span, i - span) == -1 ||
				    buf_putc(out, '.') == -1)
					return -1;
				span = i;
			}
		}
		if (c == '\n') {
			if (!st->cr) {
				/* bare LF: write CR LF instead */
				if (buf_append(out, in + span, i - span) == -1 ||
				    buf_append(out, "\r\n", 2) == -1)
					return -1;
				span = i + 1;
			}
			stuff_end_line(st);
			continue;
		}
		if (c == '\r')
			st->cr = 1;
		else {
			st->cr = 0;
			st->linelen++;
		}
	}
	return buf_append(out, in + span, i - span);
}

int
pop3_stuff_finish(struct pop3_stuff *st, struct buf *out)
{
	if (!st->bol && !st->done &&
	    buf_append(out, st->cr ? "\n" : "\r\n", st->cr ? 1 : 2) == -1)
		return -1;
	st->bol = 1;
	return buf_append(out, ".\r\n", 3);
}

void
pop3_size_init(struct pop3_size *z)
{
	z->octets = 0;
	z->cr = 0;
	z->bol = 1;
}

/* The same line ends as pop3_stuff_feed: a bare CR gets an LF after it,
 * a bare LF a CR before it. */
void
pop3_size_feed(struct pop3_size *z, const char *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (z->cr && c != '\n')
			z->octets++;		/* LF after a bare CR */
		if (c == '\n' && !z->cr)
			z->octets++;		/* CR before a bare LF */
		z->octets++;
		z->cr = c == '\r';
		z->bol = c == '\n';
	}
}

uint64_t
pop3_size_finish(const struct pop3_size *z)
{
	if (z->bol)
		return z->octets;
	return z->octets + (z->cr ? 1 : 2);	/* the last line's end */
}
