/*
 * reply.h - names for every SMTP reply (see reply_table.h) and their
 * formatting.  The session's smtp_reply() writes them; this part only
 * knows codes and text, so unit tests and the client side can use it.
 */
#ifndef POSTERN_REPLY_H
#define POSTERN_REPLY_H

#include <stddef.h>

enum smtp_reply_id {
#define REPLY(name, code, esc, text) name,
#include "smtp/reply_table.h"
#undef REPLY
	R__COUNT
};

struct smtp_reply_def {
	const char	*name;
	int		 code;
	const char	*esc;
	const char	*text;
};

const struct smtp_reply_def *reply_def(enum smtp_reply_id);
/* Format "CODE ESC TEXT\r\n" into dst, with arg in place of "%s".
 * Returns the length written, excluding the NUL (truncated if needed,
 * always ending in CRLF). */
size_t	reply_format(char *dst, size_t dstsz, enum smtp_reply_id,
	    const char *arg);

#endif
