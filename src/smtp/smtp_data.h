/*
 * smtp_data.h - the DATA reader: a byte-level state machine that undoes
 * dot-stuffing (RFC 5321 section 4.5.2) and ends only at <CRLF>.<CRLF>.
 * A bare CR or LF anywhere in the data is an error (SMTP smuggling): no
 * sequence such as <LF>.<LF> or <CRLF>.<LF> can end the message early.
 */
#ifndef POSTERN_SMTP_DATA_H
#define POSTERN_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

enum data_state {
	DATA_BOL,	/* at the start of a line (after CRLF, or at the start) */
	DATA_TEXT,	/* inside a line */
	DATA_CR,	/* seen CR inside a line */
	DATA_DOT,	/* seen CRLF "." */
	DATA_DOT_CR,	/* seen CRLF "." CR */
};

enum data_result {
	DATA_MORE,	/* consumed everything; send more */
	DATA_END,	/* found <CRLF>.<CRLF>; *used tells where */
	DATA_BARE_EOL,	/* bare CR or LF: the session must be closed */
};

struct data_reader {
	enum data_state	 state;
	uint64_t	 size;		/* unstuffed octets so far */
};

void	data_reader_init(struct data_reader *);
/*
 * Feed n input octets; the unstuffed message (with CRLF line ends, without
 * the final ".\r\n") is passed to out() in pieces.  *used is how much of
 * in was consumed (all of it unless DATA_END or DATA_BARE_EOL).
 */
typedef void (*data_out_fn)(void *arg, const char *, size_t);
enum data_result data_reader_feed(struct data_reader *, const char *in,
	    size_t n, size_t *used, data_out_fn out, void *arg);

#endif
