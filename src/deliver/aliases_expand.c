/*
 * aliases_expand.c - alias expansion (see aliases_expand.h).  Runs in
 * the queue manager, once per recipient and delivery attempt, so a
 * changed aliases file applies to mail still in the queue.
 */
#include "deliver/aliases_expand.h"
#include "lib/fsio.h"
#include "lib/keyindex.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Strings found by key: the aliases and include files already expanded
 * whole, and the results' keys.  An alias reached by many paths (a: b,
 * b; b: c, c; ... or include files that include each other's
 * neighbours) would otherwise be expanded once per path, a number that
 * grows as the fan-out to the power of the depth; and a result checked
 * against every earlier one would make a large list quadratic.
 */
struct strset {
	char		**s;
	size_t		  n;
	struct keyindex	  index;
};

struct expand_state {
	const struct alias_ctx	*ctx;
	struct alias_expansion	*out;
	/* names and "include:" paths being expanded, outermost first */
	const char		*stack[ALIAS_DEPTH_MAX + 2];
	unsigned		 depth;
	unsigned		 max_depth;
	int			 full;		/* ALIAS_RESULTS_MAX reached */
	unsigned		 cut;		/* expansions stopped by depth */
	unsigned		 loops;		/* names met on the stack */
	size_t			 steps;		/* targets looked at */
	struct strset		 done;		/* expanded already */
	struct strset		 keys;		/* of out->r, same order */
};

static const char *
strset_key(const void *arr, size_t i)
{
	return ((char *const *)arr)[i];
}

static int
strset_has(const struct strset *set, const char *key)
{
	return keyindex_find(&set->index, key, strset_key, set->s) != SIZE_MAX;
}

static void
strset_add(struct strset *set, const char *key)
{
	set->s = xreallocarray(set->s, set->n + 1, sizeof *set->s);
	set->s[set->n] = xstrdup(key);
	keyindex_put(&set->index, set->n++, strset_key, set->s);
}

static void
strset_free(struct strset *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->s[i]);
	free(set->s);
	keyindex_free(&set->index);
}

/*
 * Whether name (an alias, or an include file's tag) needs no expanding
 * here: its results are in already.  Remembered are only expansions
 * whose results cannot depend on the path they were met on: made whole
 * (no branch cut by the depth limit, which might have hidden a loop),
 * and meeting no loop (a name met again below itself is taken for a
 * user, or fails, where met elsewhere it would be expanded; and what is
 * met below such a name differs with it).  Without loops or cuts, none
 * of the names below can be above it wherever it is met again: it
 * would have met itself.  Loops and cuts are few; the expansions around
 * them are made as often as they are met, within ALIAS_STEPS_MAX.
 */
static int
already_expanded(const struct expand_state *st, const char *name)
{
	return strset_has(&st->done, name);
}

/* Where an expansion starts: what note_expanded needs to know of it. */
struct expand_mark {
	unsigned	 cut;
	unsigned	 loops;
};

static struct expand_mark
expand_begin(const struct expand_state *st)
{
	struct expand_mark m = { st->cut, st->loops };

	return m;
}

static void
note_expanded(struct expand_state *st, const char *name,
    const struct expand_mark *m)
{
	if (!st->full && st->cut == m->cut && st->loops == m->loops)
		strset_add(&st->done, name);
}

static void expand_target(struct expand_state *, const char *);

/* A result's key: its kind and its target, folded; but a remote
 * address's local part is the remote server's to interpret, case
 * included (RFC 5321 section 2.4): only its domain is folded. */
static void
result_key(enum alias_kind kind, const char *target, char *key, size_t keysz)
{
	char *at;

	(void)snprintf(key, keysz, "%d %s", (int)kind, target);
	if (kind != ALIAS_R_REMOTE)
		str_lower(key);
	else if ((at = strrchr(key, '@')) != NULL)
		str_lower(at);
}

static void
result_add(struct expand_state *st, enum alias_kind kind, const char *target,
    const char *dsn, const char *reason)
{
	struct alias_expansion *out = st->out;
	char key[4200];

	result_key(kind, target, key, sizeof key);
	if (strset_has(&st->keys, key))
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
	strset_add(&st->keys, key);
}

/* Whether name is being expanded further up: a loop, which makes what
 * contains it depend on the path (already_expanded). */
static int
on_stack(struct expand_state *st, const char *name)
{
	for (unsigned i = 0; i < st->depth; i++)
		if (strcasecmp(st->stack[i], name) == 0) {
			st->loops++;
			return 1;
		}
	return 0;
}

static int
push(struct expand_state *st, const char *name)
{
	char why[128];

	if (st->depth >= st->max_depth) {
		st->cut++;
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
		struct expand_mark m = expand_begin(st);

		if (already_expanded(st, key))
			return;

		if (push(st, key) == -1)
			return;
		for (size_t i = 0; i < e->ntargets && !st->full; i++)
			expand_target(st, e->targets[i]);
		st->depth--;
		note_expanded(st, key, &m);
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
	struct expand_mark m;

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
	if (already_expanded(st, tag))
		return;
	if ((text = read_text_file(path, ALIAS_INCLUDE_MAX, NULL)) == NULL) {
		/* The administrator may be editing it: try again later. */
		result_add(st, ALIAS_R_TEMP, tag, "4.3.0",
		    "cannot read the include file");
		return;
	}
	m = expand_begin(st);
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
	note_expanded(st, tag, &m);
	free(text);
}

static void
expand_target(struct expand_state *st, const char *t)
{
	char buf[512], *at;
	size_t len;

	/* A bound on the work whatever the shape: even without repeats, a
	 * chain of include files can name many targets each. */
	if (++st->steps > ALIAS_STEPS_MAX) {
		if (st->steps == ALIAS_STEPS_MAX + 1)
			result_add(st, ALIAS_R_TEMP, t, "4.3.0",
			    "alias expansion too large; fix the aliases");
		return;
	}
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
	strset_free(&st.done);
	strset_free(&st.keys);
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
