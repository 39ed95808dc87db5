/* pop3_reply.c - the POP3 status line table and its formatting. */
#include "pop3/pop3_reply.h"

#include <stdio.h>
#include <string.h>

static const struct pop3_reply_def pop3_reply_defs[] = {
#define P3REPLY(name, ok, code, text) { #name, ok, code, text },
#include "pop3/pop3_reply_table.h"
#undef P3REPLY
};

const struct pop3_reply_def *
pop3_reply_def(enum pop3_reply_id id)
{
	return &pop3_reply_defs[id];
}

size_t
pop3_reply_format(char *dst, size_t dstsz, enum pop3_reply_id id,
    const char *arg)
{
	const struct pop3_reply_def *d = &pop3_reply_defs[id];
	const char *pct = strstr(d->text, "%s");
	char code[32] = "";
	int n;

	if (dstsz < 8) {
		if (dstsz > 0)
			dst[0] = '\0';
		return 0;
	}
	if (d->code[0])
		snprintf(code, sizeof code, " [%s]", d->code);
	if (pct)
		n = snprintf(dst, dstsz - 2, "%s%s %.*s%s%s", d->ok ? "+OK" :
		    "-ERR", code, (int)(pct - d->text), d->text,
		    arg ? arg : "", pct + 2);
	else
		n = snprintf(dst, dstsz - 2, "%s%s %s", d->ok ? "+OK" : "-ERR",
		    code, d->text);
	if (n < 0)
		n = 0;
	if ((size_t)n > dstsz - 3)
		n = (int)(dstsz - 3);
	/* "+OK " with an empty argument: no trailing blank. */
	while (n > 0 && dst[n - 1] == ' ')
		n--;
	dst[n++] = '\r';
	dst[n++] = '\n';
	dst[n] = '\0';
	return (size_t)n;
}
