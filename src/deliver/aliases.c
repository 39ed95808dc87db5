/*
 * aliases.c - aliases(5) parser (see aliases.h).  Errors name the file
 * and line; a bad entry is skipped and the rest still loads.
 */
#include "deliver/aliases.h"
#include "lib/buf.h"
#include "lib/errlist.h"
#include "lib/fsio.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int
alias_cmp(const void *a, const void *b)
{
	return strcmp(((const struct alias_entry *)a)->name,
	    ((const struct alias_entry *)b)->name);
}

static int
valid_alias_name(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-+", *s))
			return 0;
	return 1;
}

/* By name, then line: of a name given twice the first line is kept. */
static int
alias_line_cmp(const void *a, const void *b)
{
	const struct alias_entry *x = a, *y = b;
	int c = alias_cmp(a, b);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static void
entry_free(struct alias_entry *e)
{
	for (size_t j = 0; j < e->ntargets; j++)
		free(e->targets[j]);
	free(e->targets);
	free(e->name);
}

/* Sort the entries once, and drop (and report) the later lines of a
 * name given twice.  Returns how many were dropped. */
static int
sort_entries(const char *name, struct aliases *al, struct errlist *errs)
{
	size_t kept = 0;
	int dropped = 0;

	if (al->nentries == 0)
		return 0;
	qsort(al->entries, al->nentries, sizeof *al->entries, alias_line_cmp);
	for (size_t i = 0; i < al->nentries; i++) {
		if (kept > 0 && alias_cmp(&al->entries[kept - 1],
		    &al->entries[i]) == 0) {
			errlist_add(errs, name, al->entries[i].line,
			    "duplicate alias '%s'", al->entries[i].name);
			entry_free(&al->entries[i]);
			dropped++;
			continue;
		}
		al->entries[kept++] = al->entries[i];
	}
	al->nentries = kept;
	return dropped;
}

/* One logical entry (continuations joined); returns 0 or -1. */
static int
parse_entry(const char *name, int line, char *text, struct aliases *al,
    struct errlist *errs)
{
	struct alias_entry e = { 0 };
	char *colon = strchr(text, ':'), *p, *end;

	if (colon == NULL) {
		errlist_add(errs, name, line, "expected 'name: target, ...'");
		return -1;
	}
	*colon = '\0';
	end = colon;
	while (end > text && isspace((unsigned char)end[-1]))
		*--end = '\0';
	str_lower(text);
	if (!valid_alias_name(text)) {
		errlist_add(errs, name, line, "bad alias name '%s'", text);
		return -1;
	}
	p = colon + 1;
	for (;;) {
		char *t, *q;
		int inquote = 0;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (*p == '\0')
			break;
		t = p;
		for (q = p; *q && (inquote || *q != ','); q++)
			if (*q == '"')
				inquote = !inquote;
		if (inquote) {
			errlist_add(errs, name, line, "unterminated quote");
			goto fail;
		}
		p = *q ? q + 1 : q;
		*q = '\0';
		end = q;
		while (end > t && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (*t == '\0') {
			errlist_add(errs, name, line, "empty target");
			goto fail;
		}
		if (*t == '|' || *t == '/' || (*t == '"' && (t[1] == '|' ||
		    t[1] == '/'))) {
			errlist_add(errs, name, line, "program and file targets "
			    "('%s') are not supported", t);
			goto fail;
		}
		if (strncmp(t, ":include:", 9) == 0 && t[9] != '/') {
			errlist_add(errs, name, line, ":include: needs an "
			    "absolute path");
			goto fail;
		}
		for (char *c = t; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
				errlist_add(errs, name, line, "control or 8-bit "
				    "character in target");
				goto fail;
			}
		e.targets = xreallocarray(e.targets, e.ntargets + 1,
		    sizeof *e.targets);
		e.targets[e.ntargets++] = xstrdup(t);
	}
	if (e.ntargets == 0) {
		errlist_add(errs, name, line, "alias '%s' has no targets", text);
		goto fail;
	}
	e.name = xstrdup(text);
	e.line = line;
	al->entries = xreallocarray(al->entries, al->nentries + 1,
	    sizeof *al->entries);
	al->entries[al->nentries++] = e;	/* sorted at the end */
	return 0;
fail:
	for (size_t i = 0; i < e.ntargets; i++)
		free(e.targets[i]);
	free(e.targets);
	return -1;
}

int
aliases_parse(const char *name, const char *text, struct aliases *al,
    FILE *errf)
{
	struct errlist errs = { 0 };
	struct buf entry;
	const char *p = text;
	int line = 0, entry_line = 0, nerr = 0;

	memset(al, 0, sizeof *al);
	buf_init(&entry, 1 << 20);
	for (;;) {
		const char *nl = *p ? strchr(p, '\n') : NULL;
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		int at_end = *p == '\0';
		int continuation = !at_end && (p[0] == ' ' || p[0] == '\t');
		/* Blank, or a comment: '#' as the first non-blank (so an
		 * indented comment inside a list is no target). */
		int blank = !at_end && (strspn(p, " \t\r") >= len ||
		    p[strspn(p, " \t")] == '#');

		if (!at_end)
			line++;
		/* A new entry (or the end) closes the one being collected. */
		if ((at_end || (!continuation && !blank)) && entry.len) {
			if (parse_entry(name, entry_line, entry.data, al, &errs) == -1)
				nerr++;
			buf_reset(&entry);
		}
		if (at_end)
			break;
		if (!blank) {
			if (continuation && entry.len == 0) {
				errlist_add(&errs, name, line, "continuation line "
				    "without an entry");
				nerr++;
			} else {
				if (!continuation)
					entry_line = line;
				if (buf_append(&entry, p, len) == -1 ||
				    buf_putc(&entry, '\n') == -1) {
					errlist_add(&errs, name, line,
					    "entry too long");
					nerr++;
					buf_reset(&entry);
				} else if (len && p[len - 1] == '\r')
					entry.data[entry.len - 2] = ' ';
			}
		}
		p += len + (nl != NULL);
	}
	buf_free(&entry);
	nerr += sort_entries(name, al, &errs);
	(void)errlist_flush(&errs, errf);
	return nerr;
}

int
aliases_load(const char *path, struct aliases *al, FILE *errf)
{
	char *text;
	int nerr;

	memset(al, 0, sizeof *al);
	if ((text = read_text_file(path, 1 << 28, errf)) == NULL)
		return 1;
	nerr = aliases_parse(path, text, al, errf);
	free(text);
	return nerr;
}

void
aliases_free(struct aliases *al)
{
	for (size_t i = 0; i < al->nentries; i++)
		entry_free(&al->entries[i]);
	free(al->entries);
	memset(al, 0, sizeof *al);
}

/* Names are stored in lower case, so this orders them as alias_cmp
 * does while letting the key be in any case. */
static int
alias_cmp_ci(const void *a, const void *b)
{
	return strcasecmp(((const struct alias_entry *)a)->name,
	    ((const struct alias_entry *)b)->name);
}

const struct alias_entry *
aliases_lookup(const struct aliases *al, const char *name)
{
	struct alias_entry key = { .name = (char *)name };

	if (al->nentries == 0)
		return NULL;
	return bsearch(&key, al->entries, al->nentries, sizeof *al->entries,
	    alias_cmp_ci);
}
