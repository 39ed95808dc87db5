/* errlist.c - a parse's errors, printed in line order (errlist.h). */
#include "lib/errlist.h"
#include "lib/xalloc.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void
errlist_add(struct errlist *el, const char *file, int line, const char *fmt,
    ...)
{
	char msg[PATH_MAX + 1024];	/* the file name, then the message */
	va_list ap;
	int o;

	o = snprintf(msg, sizeof msg, "%s:%d: ", file, line);
	va_start(ap, fmt);
	if (o >= 0 && (size_t)o < sizeof msg)
		vsnprintf(msg + o, sizeof msg - (size_t)o, fmt, ap);
	va_end(ap);
	el->v = xreallocarray(el->v, el->n + 1, sizeof *el->v);
	el->v[el->n].line = line;
	el->v[el->n].seq = el->n;
	el->v[el->n++].text = xstrdup(msg);
}

static int
item_cmp(const void *a, const void *b)
{
	const struct errlist_item *x = a, *y = b;

	if (x->line != y->line)
		return (x->line > y->line) - (x->line < y->line);
	return (x->seq > y->seq) - (x->seq < y->seq);
}

size_t
errlist_flush(struct errlist *el, FILE *errf)
{
	size_t n = el->n;

	if (n > 1)
		qsort(el->v, n, sizeof *el->v, item_cmp);
	for (size_t i = 0; i < n; i++) {
		if (errf != NULL)
			fprintf(errf, "%s\n", el->v[i].text);
		free(el->v[i].text);
	}
	free(el->v);
	memset(el, 0, sizeof *el);
	return n;
}
