/*
 * aliases_expand.c - alias expansion (see aliases_expand.h).  Runs in
 * the queue manager, once per recipient and delivery attempt, so a
 * changed aliases file applies to mail still in the queue.
 */
#include "deliver/aliases_expand.h"
#include "lib/fsio.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct expand_state {
	const struct alias_ctx	*ctx;
	struct alias_expansion	*out;
	/* names and "include:" paths being expanded, outermost first */
	const char		*stack[ALIAS_DEPTH_MAX + 2];
	unsigned		 depth;
	unsigned		 max_depth;
	int			 full;		/* ALIAS_RESULTS_MAX reached */
};

static void expand_target(struct expand_state *, const char *);

/* A remote address's local part is the remote server's to interpret,
 * case included (RFC 5321 section 2.4): only its domain is folded. */
static int
same_target(enum alias_kind kind, const char *a, const char *b)
{
	const char *da, *db;

	if (kind != ALIAS_R_REMOTE)
		return strcasecmp(a, b) == 0;
	da = strrchr(a, '@');
	db = strrchr(b, '@');
	if (da == NULL || db == NULL)
		return strcmp(a, b) == 0;
	return da - a == db - b && strncmp(a, b, (size_t)(da - a)) == 0 &&
	    strcasecmp(da, db) == 0;
}

static void
result_add(struct expand_state *st, enum alias_kind kind, const char *target,
    const char *dsn, const char *reason)
{
	struct alias_expansion *out = st->out;

	for (size_t i = 0; i < out->n; i++)
		if (out->r[i].kind == kind &&
		    same_target(kind, out->r[i].target, target))
			return;		/* duplicates go once */
	if (out->n >= ALIAS_RESULTS_MAX) {
		st->full = 1;
		return;
	}
	out->r = xreallocarray(out->r, out->n + 1, sizeof *out->r);
	out->r[out->n].kind = kind;
	out->r[out->n].target = xstrdup(target);
	if (kind == ALIAS_R_USER)
		str_lower(out->r[out->n].target);
	else if (kind == ALIAS_R_REMOTE && strrchr(target, '@') != NULL)
		str_lower(strrchr(out->r[out->n].target, '@'));
	out->r[out->n].reason = reason ? xstrdup(reason) : NULL;
	out->r[out->n].dsn = dsn;
	out->n++;
}

static int
on_stack(const struct expand_state *st, const char *name)
{
	for (unsigned i = 0; i < st->depth; i++)
		if (strcasecmp(st->stack[i], name) == 0)
			return 1;
	return 0;
}

static int
push(struct expand_state *st, const char *name)
{
	char why[128];

	if (st->depth >= st->max_depth) {
		snprintf(why, sizeof why, "aliases nested more than %u deep "
		    "(a loop?)", st->max_depth);
		/* RFC 3463 5.4.6: routing loop detected */
		result_add(st, ALIAS_R_FAIL, name, "5.4.6", why);
		return -1;
	}
	st->stack[st->depth++] = name;
	return 0;
}

/* A local name: an alias (expanded), else a user's mailbox. */
static void
expand_local(struct expand_state *st, const char *local, const char *domain)
{
	const struct alias_ctx *ctx = st->ctx;
	const struct alias_entry *e;
	const char *user;
	char key[256];

	if (strlcpy(key, local, sizeof key) >= sizeof key) {
		result_add(st, ALIAS_R_FAIL, local, "5.1.3", "name too long");
		return;
	}
	str_lower(key);
	e = ctx->aliases ? aliases_lookup(ctx->aliases, key) : NULL;
	if (e != NULL && !on_stack(st, key)) {
		if (push(st, key) == -1)
			return;
		for (size_t i = 0; i < e->ntargets && !st->full; i++)
			expand_target(st, e->targets[i]);
		st->depth--;
		return;
	}
	if ((user = ctx->user(ctx->arg, key, domain)) != NULL) {
		result_add(st, ALIAS_R_USER, user, NULL, NULL);
		return;
	}
	if (e != NULL)
		result_add(st, ALIAS_R_FAIL, key, "5.4.6",
		    "alias loop: it expands to itself and is not a user");
	else
		result_add(st, ALIAS_R_FAIL, key, "5.1.1", "unknown user");
}

/* An :include: file: targets separated by commas or lines, '#'
 * comments, the same forms as in the aliases file. */
static void
expand_include(struct expand_state *st, const char *path)
{
	char tag[4096], *text, *line, *save = NULL;

	if ((size_t)snprintf(tag, sizeof tag, ":include:%s", path) >=
	    sizeof tag) {
		result_add(st, ALIAS_R_FAIL, path, "5.3.5", "path too long");
		return;
	}
	if (on_stack(st, tag)) {
		result_add(st, ALIAS_R_FAIL, tag, "5.4.6",
		    "include file includes itself");
		return;
	}
	if ((text = read_text_file(path, ALIAS_INCLUDE_MAX, NULL)) == NULL) {
		/* The administrator may be editing it: try again later. */
		result_add(st, ALIAS_R_TEMP, tag, "4.3.0",
		    "cannot read the include file");
		return;
	}
	if (push(st, tag) == -1) {
		free(text);
		return;
	}
	for (line = strtok_r(text, "\n", &save); line && !st->full;
	    line = strtok_r(NULL, "\n", &save)) {
		char *p = line, *item, *isave = NULL;

		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		for (item = strtok_r(line, ",", &isave); item;
		    item = strtok_r(NULL, ",", &isave)) {
			char *end;

			while (isspace((unsigned char)*item))
				item++;
			end = item + strlen(item);
			while (end > item && isspace((unsigned char)end[-1]))
				*--end = '\0';
			if (*item == '\0')
				continue;
			if (*item == '|' || *item == '/') {
				result_add(st, ALIAS_R_FAIL, item, "5.3.5",
				    "program and file targets are not "
				    "supported");
				continue;
			}
			expand_target(st, item);
		}
	}
	st->depth--;
	free(text);
}

static void
expand_target(struct expand_state *st, const char *t)
{
	char buf[512], *at;
	size_t len;

	if (strncmp(t, ":include:", 9) == 0) {
		expand_include(st, t + 9);
		return;
	}
	/* "name" in quotes is the bare name. */
	len = strlen(t);
	if (len >= 2 && t[0] == '"' && t[len - 1] == '"') {
		t++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof buf) {
		result_add(st, ALIAS_R_FAIL, t, "5.1.3", "bad address");
		return;
	}
	memcpy(buf, t, len);
	buf[len] = '\0';
	if ((at = strrchr(buf, '@')) == NULL) {
		expand_local(st, buf, NULL);
		return;
	}
	if (at == buf || at[1] == '\0') {
		result_add(st, ALIAS_R_FAIL, buf, "5.1.3", "bad address");
		return;
	}
	*at = '\0';
	if (st->ctx->is_local(st->ctx->arg, at + 1))
		expand_local(st, buf, at + 1);
	else {
		*at = '@';
		result_add(st, ALIAS_R_REMOTE, buf, NULL, NULL);
	}
}

void
aliases_expand(const struct alias_ctx *ctx, const char *local,
    const char *domain, struct alias_expansion *out)
{
	struct expand_state st;

	memset(out, 0, sizeof *out);
	memset(&st, 0, sizeof st);
	st.ctx = ctx;
	st.out = out;
	st.max_depth = ctx->max_depth && ctx->max_depth <= ALIAS_DEPTH_MAX ?
	    ctx->max_depth : ALIAS_DEPTH_MAX;
	expand_local(&st, local, domain);
	if (st.full) {
		/* One slot past the cap for the reason. */
		out->r = xreallocarray(out->r, out->n + 1, sizeof *out->r);
		out->r[out->n].kind = ALIAS_R_FAIL;
		out->r[out->n].target = xstrdup(local);
		out->r[out->n].reason = xstrdup("expands to too many "
		    "recipients");
		out->r[out->n].dsn = "5.3.0";
		out->n++;
	}
}

void
alias_expansion_free(struct alias_expansion *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->r[i].target);
		free(x->r[i].reason);
	}
	free(x->r);
	memset(x, 0, sizeof *x);
}
