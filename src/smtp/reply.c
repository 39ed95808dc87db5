/* reply.c - the reply table's data and formatting (RFC 5321 4.2, RFC 3463). */
#include "smtp/reply.h"

#include <stdio.h>
#include <string.h>

static const struct smtp_reply_def reply_defs[] = {
#define REPLY(name, code, esc, text) { #name, code, esc, text },
#include "smtp/reply_table.h"
#undef REPLY
};

const struct smtp_reply_def *
reply_def(enum smtp_reply_id id)
{
	return &reply_defs[id];
}

size_t
reply_format(char *dst, size_t dstsz, enum smtp_reply_id id, const char *arg)
{
	const struct smtp_reply_def *d = &reply_defs[id];
	const char *pct = strstr(d->text, "%s");
	int n;

	if (dstsz < 8) {		/* no room for even "250 2\r\n" */
		if (dstsz > 0)
			dst[0] = '\0';
		return 0;
	}
	if (pct)
		n = snprintf(dst, dstsz - 2, "%d%s%s %.*s%s%s", d->code,
		    d->esc[0] ? " " : "", d->esc, (int)(pct - d->text),
		    d->text, arg ? arg : "", pct + 2);
	else
		n = snprintf(dst, dstsz - 2, "%d%s%s %s", d->code,
		    d->esc[0] ? " " : "", d->esc, d->text);
	if (n < 0)
		n = 0;
	if ((size_t)n > dstsz - 3)
		n = (int)(dstsz - 3);
	dst[n++] = '\r';
	dst[n++] = '\n';
	dst[n] = '\0';
	return (size_t)n;
}
