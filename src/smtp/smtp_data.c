/*
 * smtp_data.c - DATA reader state machine (see smtp_data.h).
 * Output is passed on in runs, not byte by byte: a run of text is emitted
 * when the state machine has to hold something back (a CR, a dot).
 */
#include "smtp/smtp_data.h"

void
data_reader_init(struct data_reader *dr)
{
	dr->state = DATA_BOL;
	dr->size = 0;
}

static void
emit(struct data_reader *dr, data_out_fn out, void *arg, const char *p,
    size_t n)
{
	if (n) {
		dr->size += n;
		out(arg, p, n);
	}
}

enum data_result
data_reader_feed(struct data_reader *dr, const char *in, size_t n,
    size_t *used, data_out_fn out, void *arg)
{
	size_t i, run = 0;	/* start of the pending run of plain text */

	for (i = 0; i < n; i++) {
		char c = in[i];

		switch (dr->state) {
		case DATA_BOL:		/* seen CRLF (or nothing yet) */
			if (c == '.') {
				emit(dr, out, arg, in + run, i - run);
				run = i + 1;	/* drop the stuffed dot */
				dr->state = DATA_DOT;
			} else if (c == '\r')
				dr->state = DATA_CR;
			else if (c == '\n')
				goto bare;
			else
				dr->state = DATA_TEXT;
			break;
		case DATA_TEXT:		/* inside a line */
			if (c == '\r')
				dr->state = DATA_CR;
			else if (c == '\n')
				goto bare;
			break;
		case DATA_CR:		/* seen CR */
			if (c != '\n')
				goto bare;
			dr->state = DATA_BOL;
			break;
		case DATA_DOT:		/* seen CRLF "." */
			if (c == '\r') {
				dr->state = DATA_DOT_CR;
			} else if (c == '\n') {
				goto bare;
			} else {
				/* A stuffed line: the dot is dropped, the rest is
				 * text ("..x" arrives as ".x"). */
				run = i;
				dr->state = DATA_TEXT;
			}
			break;
		case DATA_DOT_CR:	/* seen CRLF "." CR */
			if (c != '\n')
				goto bare;
			/* Everything before the dot was emitted at the dot. */
			*used = i + 1;
			dr->state = DATA_BOL;
			return DATA_END;
		}
	}
	/* After CRLF "." (and CR) nothing is message text yet: the next
	 * octets decide between a stuffed line and the end of DATA. */
	if (dr->state != DATA_DOT && dr->state != DATA_DOT_CR)
		emit(dr, out, arg, in + run, n - run);
	*used = n;
	return DATA_MORE;
bare:
	*used = i + 1;
	return DATA_BARE_EOL;
}
