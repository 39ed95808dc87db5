/*
 * pop3_reply.h - names for every POP3 status line (pop3_reply_table.h)
 * and their formatting.  Sessions never type "+OK" or "-ERR".
 */
#ifndef POSTERN_POP3_REPLY_H
#define POSTERN_POP3_REPLY_H

#include <stddef.h>

enum pop3_reply_id {
#define P3REPLY(name, ok, code, text) name,
#include "pop3/pop3_reply_table.h"
#undef P3REPLY
	P__COUNT
};

struct pop3_reply_def {
	const char	*name;
	int		 ok;
	const char	*code;
	const char	*text;
};

const struct pop3_reply_def *pop3_reply_def(enum pop3_reply_id);
/* "+OK TEXT\r\n" or "-ERR [CODE] TEXT\r\n" into dst with arg in place of
 * "%s"; returns the length (truncated if needed, always ending in CRLF;
 * RFC 2449 section 4 limits a status line to 512 octets). */
size_t	pop3_reply_format(char *dst, size_t dstsz, enum pop3_reply_id,
	    const char *arg);

#endif
