/*
 * access.c - the access map: parsing, the prefix trees, the name table,
 * lookups, the worker's reloading and `config check`'s warnings (see
 * access.h and docs/access.md).  Runs in the workers and in the
 * administrator's commands; nothing here knows about SMTP replies.
 *
 * Addresses: one binary trie per family, path-compressed (a node exists
 * only where a rule ends or where two rules' prefixes part), so n rules
 * take at most 2n nodes and a lookup walks at most 33 or 129 of them.
 * Names: "helo:", "from:" and "to:" keys in one open-addressing table
 * with linear probing, at most half full.
 */
#include "policy/access.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/netaddr.h"

#define ACCESS_FILE_MAX		(64u << 20)
#define ACCESS_KEY_MAX		512	/* tag + local part + domain */
#define ACCESS_TEXT_MAX		200	/* fits in a reply line */
#define NO_RULE			UINT32_MAX

struct access_node {
	uint8_t		 a[16];		/* prefix, bits beyond `bits` zero */
	uint8_t		 bits;		/* 0..32 (IPv4) or 0..128 */
	uint32_t	 rule;		/* index into rules, or NO_RULE */
	uint32_t	 child[2];	/* node index + 1; 0 = none */
};

struct access_map {
	char		   *name;
	unsigned	    refs;
	struct access_rule *rules;
	size_t		    nrules;
	struct access_node *nodes;
	size_t		    nnodes, capnodes;
	uint32_t	    root4, root6;	/* node index + 1 */
	uint32_t	   *slots;		/* rule index + 1; 0 = empty */
	size_t		    nslots;		/* a power of two */
	/* Address rules' prefixes, parallel to rules (unused for names). */
	struct netprefix   *prefixes;
};

static const char *action_names[] = {
	"NONE", "OK", "RELAY", "REJECT", "TEMPFAIL", "DISCARD", "HOLD",
};

const char *
access_action_name(enum access_action a)
{
	return (unsigned)a < sizeof action_names / sizeof action_names[0] ?
	    action_names[a] : "?";
}

/* ---------------------------------------------------------------- */
/* the prefix trees                                                   */

static int
bit_at(const uint8_t *a, unsigned i)
{
	return (a[i >> 3] >> (7 - (i & 7))) & 1;
}

/* How many leading bits of a and b agree, up to max. */
static unsigned
common_bits(const uint8_t *a, const uint8_t *b, unsigned max)
{
	unsigned i = 0;

	while (i + 8 <= max && a[i >> 3] == b[i >> 3])
		i += 8;
	while (i < max && bit_at(a, i) == bit_at(b, i))
		i++;
	return i;
}

static uint32_t
node_new(struct access_map *m, const uint8_t *a, unsigned bits, uint32_t rule)
{
	struct access_node *n = &m->nodes[m->nnodes++];

	memset(n, 0, sizeof *n);
	memcpy(n->a, a, (bits + 7) / 8);
	if (bits % 8)
		n->a[bits / 8] &= (uint8_t)(0xff << (8 - bits % 8));
	n->bits = (uint8_t)bits;
	n->rule = rule;
	return (uint32_t)m->nnodes;
}

/* Insert a prefix; returns NO_RULE, or the rule already there for
 * exactly this prefix (which then stays: the first rule wins). */
static uint32_t
trie_insert(struct access_map *m, int v6, const uint8_t *a, unsigned bits,
    uint32_t rule)
{
	uint32_t *slot;

	/* At most two nodes are added: make room first, so that the
	 * pointers below stay valid. */
	if (m->nnodes + 2 > m->capnodes) {
		m->capnodes = m->capnodes ? m->capnodes * 2 : 64;
		m->nodes = xreallocarray(m->nodes, m->capnodes, sizeof *m->nodes);
	}
	slot = v6 ? &m->root6 : &m->root4;
	for (;;) {
		uint32_t cur = *slot, nn, glue;
		struct access_node *n;
		unsigned c;

		if (cur == 0) {
			*slot = node_new(m, a, bits, rule);
			return NO_RULE;
		}
		n = &m->nodes[cur - 1];
		c = common_bits(a, n->a, n->bits < bits ? n->bits : bits);
		if (c == n->bits && c == bits) {
			if (n->rule != NO_RULE)
				return n->rule;
			n->rule = rule;
			return NO_RULE;
		}
		if (c == n->bits) {		/* n is a shorter prefix of a */
			slot = &n->child[bit_at(a, n->bits)];
			continue;
		}
		if (c == bits) {		/* a is a shorter prefix of n */
			nn = node_new(m, a, bits, rule);
			m->nodes[nn - 1].child[bit_at(n->a, bits)] = cur;
			*slot = nn;
			return NO_RULE;
		}
		/* They part after c bits: a node without a rule joins them. */
		glue = node_new(m, a, c, NO_RULE);
		nn = node_new(m, a, bits, rule);
		m->nodes[glue - 1].child[bit_at(a, c)] = nn;
		m->nodes[glue - 1].child[bit_at(n->a, c)] = cur;
		*slot = glue;
		return NO_RULE;
	}
}

static uint32_t
trie_lookup(const struct access_map *m, uint32_t idx, const uint8_t *a,
    unsigned maxbits)
{
	uint32_t best = NO_RULE;

	while (idx != 0) {
		const struct access_node *n = &m->nodes[idx - 1];

		if (common_bits(a, n->a, n->bits) != n->bits)
			break;
		if (n->rule != NO_RULE)
			best = n->rule;
		if (n->bits >= maxbits)
			break;
		idx = n->child[bit_at(a, n->bits)];
	}
	return best;
}

/* ---------------------------------------------------------------- */
/* the name table                                                     */

static uint64_t
name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint32_t
name_lookup(const struct access_map *m, const char *key)
{
	size_t mask, i;

	if (m->nslots == 0)
		return NO_RULE;
	mask = m->nslots - 1;
	for (i = name_hash(key) & mask; m->slots[i] != 0; i = (i + 1) & mask)
		if (strcmp(m->rules[m->slots[i] - 1].key, key) == 0)
			return m->slots[i] - 1;
	return NO_RULE;
}

/* Returns NO_RULE, or the earlier rule with the same key. */
static uint32_t
name_insert(struct access_map *m, uint32_t rule)
{
	size_t mask = m->nslots - 1, i;
	const char *key = m->rules[rule].key;

	for (i = name_hash(key) & mask; m->slots[i] != 0; i = (i + 1) & mask)
		if (strcmp(m->rules[m->slots[i] - 1].key, key) == 0)
			return m->slots[i] - 1;
	m->slots[i] = rule + 1;
	return NO_RULE;
}

/* ---------------------------------------------------------------- */
/* parsing                                                            */

struct parse_ctx {
	const char	*name;
	unsigned	 line;
	int		 nerr;
	FILE		*errf;
};

static void __attribute__((format(printf, 2, 3)))
parse_error(struct parse_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	ctx->nerr++;
	if (ctx->errf == NULL)
		return;
	fprintf(ctx->errf, "%s:%u: ", ctx->name, ctx->line);
	va_start(ap, fmt);
	vfprintf(ctx->errf, fmt, ap);
	va_end(ap);
	fputc('\n', ctx->errf);
}

/* A domain as keys hold it: labels of letters, digits, '-' and '_'
 * joined by single dots, or an address literal in brackets. */
static int
name_valid(const char *d)
{
	size_t label = 0;

	if (d[0] == '[')
		return d[1] != '\0' && strchr(d, ']') == d + strlen(d) - 1;
	if (d[0] == '\0' || d[0] == '.')
		return 0;
	for (const char *p = d; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

/* from:/to: value: USER@DOMAIN, DOMAIN or .DOMAIN (lower case already). */
static const char *
mail_value_error(const char *v)
{
	const char *at = strrchr(v, '@');

	if (*v == '\0')
		return "is empty";
	if (at == NULL)
		return name_valid(v[0] == '.' ? v + 1 : v) ? NULL :
		    "is not a domain (like example.com or .example.com)";
	if (at == v)
		return "has no local part (for a whole domain write the domain "
		    "alone)";
	if (!name_valid(at + 1))
		return "is not an address (like user@example.com)";
	for (const char *p = v; p < at; p++)
		if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>')
			return "is not an address (like user@example.com)";
	return NULL;
}

static int
parse_action(const char *w, enum access_action *a)
{
	for (unsigned i = ACCESS_OK; i <= ACCESS_HOLD; i++)
		if (strcasecmp(w, action_names[i]) == 0) {
			*a = (enum access_action)i;
			return 0;
		}
	return -1;
}

/* An address key: netprefix syntax, host bits clear; ::ffff:a.b.c.d/n
 * (n >= 96) is the IPv4 prefix, as the peers it would match are. */
static int
parse_prefix(struct parse_ctx *ctx, const char *w, struct netprefix *np)
{
	struct netprefix masked;

	if (netprefix_parse(w, np) == -1)
		return -1;
	if (netprefix_host_bits(np, &masked)) {
		char want[64];

		netprefix_format(&masked, want, sizeof want);
		parse_error(ctx, "'%s' has bits set after the prefix length; "
		    "did you mean %s?", w, want);
		return -2;
	}
	netprefix_unmap(np);
	return 0;
}

static int
has_tag(const char *w, const char *tag)
{
	return strncasecmp(w, tag, strlen(tag)) == 0;
}

/* One rule: KEY ACTION [text].  Returns 0 and fills r (and np for an
 * address key), or -1 after reporting the error. */
static int
parse_rule(struct parse_ctx *ctx, char *line, struct access_rule *r,
    struct netprefix *np)
{
	char *key, *act, *text, *v, buf[ACCESS_KEY_MAX + 8];
	const char *why;
	size_t n;

	memset(r, 0, sizeof *r);
	r->line = ctx->line;
	key = line + strspn(line, " \t");
	act = key + strcspn(key, " \t");
	if (*act)
		*act++ = '\0';
	act += strspn(act, " \t");
	text = act + strcspn(act, " \t");
	if (*text)
		*text++ = '\0';
	text += strspn(text, " \t");
	for (n = strlen(text); n > 0 && (text[n - 1] == ' ' ||
	    text[n - 1] == '\t'); n--)
		text[n - 1] = '\0';
	if (*act == '\0') {
		parse_error(ctx, "'%s' has no action (OK, RELAY, REJECT, "
		    "TEMPFAIL, DISCARD, HOLD)", key);
		return -1;
	}
	if (strlen(key) > ACCESS_KEY_MAX) {
		parse_error(ctx, "key too long (at most %d characters)",
		    ACCESS_KEY_MAX);
		return -1;
	}
	if (parse_action(act, &r->action) == -1) {
		parse_error(ctx, "unknown action '%s' (OK, RELAY, REJECT, "
		    "TEMPFAIL, DISCARD, HOLD)", act);
		return -1;
	}
	if (*text) {
		if (r->action == ACCESS_OK || r->action == ACCESS_RELAY) {
			parse_error(ctx, "%s takes no text (found '%s')",
			    action_names[r->action], text);
			return -1;
		}
		if (strlen(text) > ACCESS_TEXT_MAX) {
			parse_error(ctx, "text too long (at most %d characters)",
			    ACCESS_TEXT_MAX);
			return -1;
		}
		for (const char *p = text; *p; p++)
			if ((unsigned char)*p < ' ' || (unsigned char)*p > '~') {
				parse_error(ctx, "text must be printable ASCII");
				return -1;
			}
	}

	if (has_tag(key, "from:"))
		r->kind = ACCESS_K_FROM, v = key + 5;
	else if (has_tag(key, "to:"))
		r->kind = ACCESS_K_TO, v = key + 3;
	else if (has_tag(key, "helo:"))
		r->kind = ACCESS_K_HELO, v = key + 5;
	else {
		r->kind = ACCESS_K_ADDR;
		v = has_tag(key, "connect:") ? key + 8 : key;
	}
	if (r->kind == ACCESS_K_ADDR) {
		int rc = parse_prefix(ctx, v, np);

		if (rc == -2)
			return -1;
		if (rc == -1) {
			if (strchr(v, '@') || v != key)
				parse_error(ctx, "'%s' is not an address or prefix%s",
				    key, strchr(v, '@') ? "; sender and recipient "
				    "keys are written from:ADDRESS and to:ADDRESS" :
				    "; host names would need reverse DNS, which "
				    "postern does not look up: use the address, a "
				    "prefix or helo:NAME");
			else
				parse_error(ctx, "'%s' is neither an address or "
				    "prefix (192.0.2.0/24, 2001:db8::/32) nor a "
				    "tagged key (helo:, from:, to:)", key);
			return -1;
		}
		netprefix_format(np, buf, sizeof buf);
		r->key = xstrdup(buf);
		r->text = *text ? xstrdup(text) : NULL;
		return 0;
	}
	if (*v == '<' && v[strlen(v) - 1] == '>' && strlen(v) >= 2) {
		v[strlen(v) - 1] = '\0';
		v++;
	}
	str_lower(v);
	if (r->kind == ACCESS_K_HELO)
		why = name_valid(v[0] == '.' ? v + 1 : v) ? NULL :
		    "is not a host name (like host.example or .example)";
	else
		why = mail_value_error(v);
	if (why) {
		parse_error(ctx, "'%s' %s", key, why);
		return -1;
	}
	/* Anyone can claim a HELO name or a sender address: neither may
	 * open the relay. */
	if (r->action == ACCESS_RELAY && r->kind != ACCESS_K_TO) {
		parse_error(ctx, "RELAY on a %s key would let anyone who claims "
		    "it relay; RELAY is for client addresses and to: "
		    "destinations", r->kind == ACCESS_K_HELO ? "helo:" : "from:");
		return -1;
	}
	snprintf(buf, sizeof buf, "%s:%s", r->kind == ACCESS_K_HELO ? "helo" :
	    r->kind == ACCESS_K_FROM ? "from" : "to", v);
	r->key = xstrdup(buf);
	r->text = *text ? xstrdup(text) : NULL;
	return 0;
}

static void
map_free(struct access_map *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nrules; i++) {
		free(m->rules[i].key);
		free(m->rules[i].text);
	}
	free(m->rules);
	free(m->prefixes);
	free(m->nodes);
	free(m->slots);
	free(m->name);
	free(m);
}

/* Build the indexes once every rule is known. */
static void
map_index(struct access_map *m)
{
	size_t nnames = 0;

	for (size_t i = 0; i < m->nrules; i++)
		if (m->rules[i].kind != ACCESS_K_ADDR)
			nnames++;
	m->nslots = 16;
	while (m->nslots < nnames * 2)
		m->nslots *= 2;
	m->slots = xcalloc(m->nslots, sizeof *m->slots);
	for (size_t i = 0; i < m->nrules; i++) {
		struct access_rule *r = &m->rules[i];
		uint32_t prev;

		if (r->kind == ACCESS_K_ADDR)
			prev = trie_insert(m, m->prefixes[i].family == AF_INET6,
			    m->prefixes[i].addr, m->prefixes[i].bits,
			    (uint32_t)i);
		else
			prev = name_insert(m, (uint32_t)i);
		if (prev != NO_RULE)
			r->dup_of = m->rules[prev].line;
	}
}

struct access_map *
access_map_parse(const char *name, const char *text, FILE *errf, int *nerr)
{
	struct parse_ctx ctx = { name, 0, 0, errf };
	struct access_map *m = xcalloc(1, sizeof *m);
	size_t cap = 0;
	const char *p = text;

	m->name = xstrdup(name);
	m->refs = 1;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *line = xmalloc(len + 1), *hash;
		struct access_rule r;
		struct netprefix np = { 0 };

		ctx.line++;
		memcpy(line, p, len);
		line[len] = '\0';
		p += len + (nl ? 1 : 0);
		if (memchr(line, '\0', len) != NULL) {
			parse_error(&ctx, "NUL byte in line");
			free(line);
			continue;
		}
		if (len && line[len - 1] == '\r')
			line[--len] = '\0';
		/* '#' starts a comment at the start of a line or after a
		 * blank, so a text may still hold "#". */
		for (hash = line; (hash = strchr(hash, '#')) != NULL; hash++)
			if (hash == line || hash[-1] == ' ' || hash[-1] == '\t') {
				*hash = '\0';
				break;
			}
		if (line[strspn(line, " \t")] == '\0') {
			free(line);
			continue;
		}
		if (parse_rule(&ctx, line, &r, &np) == 0) {
			if (m->nrules == cap) {
				cap = cap ? cap * 2 : 64;
				m->rules = xreallocarray(m->rules, cap,
				    sizeof *m->rules);
				m->prefixes = xreallocarray(m->prefixes, cap,
				    sizeof *m->prefixes);
			}
			m->prefixes[m->nrules] = np;
			m->rules[m->nrules++] = r;
		}
		free(line);
	}
	if (nerr)
		*nerr = ctx.nerr;
	if (ctx.nerr) {
		map_free(m);
		return NULL;
	}
	map_index(m);
	return m;
}

struct access_map *
access_map_load(const char *path, FILE *errf, int *nerr)
{
	char *text = read_text_file(path, ACCESS_FILE_MAX, errf);
	struct access_map *m;

	if (text == NULL) {
		if (nerr)
			*nerr = 1;
		return NULL;
	}
	m = access_map_parse(path, text, errf, nerr);
	free(text);
	return m;
}

struct access_map *
access_map_ref(struct access_map *m)
{
	if (m)
		m->refs++;
	return m;
}

void
access_map_unref(struct access_map *m)
{
	if (m && --m->refs == 0)
		map_free(m);
}

size_t
access_map_size(const struct access_map *m)
{
	return m ? m->nrules : 0;
}

void
access_rule_where(const struct access_map *m, const struct access_rule *r,
    char *dst, size_t dstsz)
{
	snprintf(dst, dstsz, "%s:%u", m ? m->name : "-", r ? r->line : 0);
}

/* ---------------------------------------------------------------- */
/* lookups                                                            */

const struct access_rule *
access_lookup_addr(const struct access_map *m, const struct sockaddr *sa)
{
	static const uint8_t mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };
	uint8_t a[16] = { 0 };
	uint32_t r;

	if (m == NULL)
		return NULL;
	if (sa->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		r = trie_lookup(m, m->root4, a, 32);
	} else if (sa->sa_family == AF_INET6) {
		const uint8_t *b = (const uint8_t *)
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (memcmp(b, mapped, sizeof mapped) == 0) {
			memcpy(a, b + 12, 4);
			r = trie_lookup(m, m->root4, a, 32);
		} else
			r = trie_lookup(m, m->root6, b, 128);
	} else
		return NULL;
	return r == NO_RULE ? NULL : &m->rules[r];
}

/* The name, then each parent suffix, longest first: for "a.b.example"
 * the keys TAG:a.b.example, TAG:.b.example, TAG:.example.  An address
 * literal has no parents. */
static uint32_t
lookup_domain(const struct access_map *m, const char *tag, const char *d)
{
	char key[ACCESS_KEY_MAX + 16];
	uint32_t r;

	if (snprintf(key, sizeof key, "%s%s", tag, d) >= (int)sizeof key)
		return NO_RULE;
	if ((r = name_lookup(m, key)) != NO_RULE || d[0] == '[')
		return r;
	for (const char *dot = strchr(d, '.'); dot; dot = strchr(dot + 1, '.')) {
		snprintf(key, sizeof key, "%s%s", tag, dot);
		if ((r = name_lookup(m, key)) != NO_RULE)
			return r;
	}
	return NO_RULE;
}

static void
lower_copy(char *dst, size_t dstsz, const char *src)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < dstsz; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

const struct access_rule *
access_lookup_helo(const struct access_map *m, const char *name)
{
	char n[ACCESS_KEY_MAX + 1];
	uint32_t r;

	if (m == NULL || m->nslots == 0 || *name == '\0' ||
	    strlen(name) > ACCESS_KEY_MAX)
		return NULL;
	lower_copy(n, sizeof n, name);
	/* "host.example." names the same host. */
	if (n[strlen(n) - 1] == '.' && strlen(n) > 1)
		n[strlen(n) - 1] = '\0';
	r = lookup_domain(m, "helo:", n);
	return r == NO_RULE ? NULL : &m->rules[r];
}

const struct access_rule *
access_lookup_mail(const struct access_map *m, enum access_kind kind,
    const char *addr)
{
	const char *tag = kind == ACCESS_K_FROM ? "from:" : "to:";
	char a[ACCESS_KEY_MAX + 1], key[ACCESS_KEY_MAX + 16];
	const char *at;
	uint32_t r;

	if (m == NULL || m->nslots == 0 || *addr == '\0' ||
	    strlen(addr) > ACCESS_KEY_MAX)
		return NULL;
	lower_copy(a, sizeof a, addr);
	/* The whole address first, then its domain and the domain's
	 * parents.  <postmaster> without a domain has only the first. */
	snprintf(key, sizeof key, "%s%s", tag, a);
	if ((r = name_lookup(m, key)) != NO_RULE)
		return &m->rules[r];
	if ((at = strrchr(a, '@')) == NULL || at[1] == '\0')
		return NULL;
	r = lookup_domain(m, tag, at + 1);
	return r == NO_RULE ? NULL : &m->rules[r];
}

/* ---------------------------------------------------------------- */
/* config check                                                       */

/* Does the subtree in slot cover every address under a prefix of `bits`
 * bits with rules of its own? */
static int
trie_full(const struct access_map *m, uint32_t idx, unsigned bits)
{
	const struct access_node *n;

	if (idx == 0)
		return 0;
	n = &m->nodes[idx - 1];
	if (n->bits != bits)
		return 0;	/* path compression: part of the range is bare */
	if (n->rule != NO_RULE)
		return 1;
	return trie_full(m, n->child[0], bits + 1) &&
	    trie_full(m, n->child[1], bits + 1);
}

static int
same_effect(const struct access_rule *a, const struct access_rule *b)
{
	return a->action == b->action && ((a->text == NULL && b->text == NULL) ||
	    (a->text && b->text && strcmp(a->text, b->text) == 0));
}

static void __attribute__((format(printf, 4, 5)))
lint_warn(const struct access_map *m, const struct access_rule *r, FILE *out,
    const char *fmt, ...)
{
	va_list ap;

	fprintf(out, "%s:%u: warning: %s %s: ", m->name, r->line, r->key,
	    action_names[r->action]);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
}

/* Walk a tree with the nearest enclosing rule. */
static int
lint_trie(const struct access_map *m, uint32_t idx, uint32_t parent,
    unsigned maxbits, FILE *out)
{
	const struct access_node *n;
	int nwarn = 0;

	if (idx == 0)
		return 0;
	n = &m->nodes[idx - 1];
	if (n->rule != NO_RULE) {
		const struct access_rule *r = &m->rules[n->rule];

		if (n->bits < maxbits && trie_full(m, n->child[0], n->bits + 1u) &&
		    trie_full(m, n->child[1], n->bits + 1u)) {
			lint_warn(m, r, out, "never matches: more specific "
			    "rules cover all of it");
			nwarn++;
		} else if (parent != NO_RULE &&
		    same_effect(r, &m->rules[parent])) {
			lint_warn(m, r, out, "changes nothing: line %u (%s) "
			    "already says %s", m->rules[parent].line,
			    m->rules[parent].key,
			    action_names[m->rules[parent].action]);
			nwarn++;
		}
		parent = n->rule;
	}
	if (n->bits < maxbits) {
		nwarn += lint_trie(m, n->child[0], parent, maxbits, out);
		nwarn += lint_trie(m, n->child[1], parent, maxbits, out);
	}
	return nwarn;
}

/* The rule a name key would fall back to without itself. */
static uint32_t
name_parent(const struct access_map *m, const struct access_rule *r)
{
	const char *colon = strchr(r->key, ':'), *v = colon + 1, *at;
	char tag[8];

	snprintf(tag, sizeof tag, "%.*s", (int)(colon - r->key + 1), r->key);
	if (r->kind != ACCESS_K_HELO && (at = strrchr(v, '@')) != NULL)
		return lookup_domain(m, tag, at + 1);
	if (v[0] == '[')
		return NO_RULE;
	/* DOMAIN falls back to .PARENT; .DOMAIN to .PARENT as well. */
	v = strchr(v + 1, '.');
	return v ? lookup_domain(m, tag, v) : NO_RULE;
}

int
access_map_lint(const struct access_map *m, FILE *out)
{
	int nwarn = 0;

	for (size_t i = 0; i < m->nrules; i++) {
		const struct access_rule *r = &m->rules[i];
		const struct netprefix *np = &m->prefixes[i];
		uint32_t parent;

		if (r->dup_of) {
			lint_warn(m, r, out, "duplicate of line %u, which wins; "
			    "this one is never used", r->dup_of);
			nwarn++;
			continue;
		}
		if (r->action == ACCESS_RELAY && r->kind == ACCESS_K_ADDR &&
		    np->bits == 0) {
			lint_warn(m, r, out, "an open relay for the whole %s "
			    "internet", np->family == AF_INET ? "IPv4" : "IPv6");
			nwarn++;
		} else if (r->action == ACCESS_RELAY && r->kind == ACCESS_K_ADDR &&
		    np->bits < (np->family == AF_INET ? 8u : 16u)) {
			lint_warn(m, r, out, "relays for a large part of the "
			    "internet");
			nwarn++;
		}
		/* to:com, to:.com: one label, a whole top-level domain. */
		if (r->action == ACCESS_RELAY && r->kind == ACCESS_K_TO &&
		    strchr(r->key + 3, '@') == NULL &&
		    strchr(r->key + 4, '.') == NULL) {
			lint_warn(m, r, out, "relays for everyone to a whole "
			    "top-level domain");
			nwarn++;
		}
		if (r->kind != ACCESS_K_ADDR &&
		    (parent = name_parent(m, r)) != NO_RULE &&
		    same_effect(r, &m->rules[parent])) {
			lint_warn(m, r, out, "changes nothing: line %u (%s) "
			    "already says %s", m->rules[parent].line,
			    m->rules[parent].key,
			    action_names[m->rules[parent].action]);
			nwarn++;
		}
	}
	nwarn += lint_trie(m, m->root4, NO_RULE, 32, out);
	nwarn += lint_trie(m, m->root6, NO_RULE, 128, out);
	return nwarn;
}

/* ---------------------------------------------------------------- */
/* the worker's table                                                 */

int
access_table_load(struct access_table *t, const char *path, FILE *errf,
    int *nerr)
{
	memset(t, 0, sizeof *t);
	t->path = path;
	*nerr = 0;
	if (path == NULL || path[0] == '\0')
		return 0;
	/* The version before the load: a change made meanwhile is seen at
	 * the next look. */
	(void)filewatch_changed(&t->watch, path, 1);
	t->map = access_map_load(path, errf, nerr);
	return t->map != NULL ? 0 : -1;
}

void
access_table_copy(struct access_table *dst, const struct access_table *src,
    const char *path)
{
	*dst = *src;
	dst->path = path;
	if (dst->map != NULL)
		access_map_ref(dst->map);
}

void
access_table_free(struct access_table *t)
{
	access_map_unref(t->map);
	t->map = NULL;
}

/* Each error of a file that failed to load, as a log line. */
static void
log_errors(const char *buf)
{
	for (const char *p = buf; *p; ) {
		size_t len = strcspn(p, "\n");

		log_warnx("access: %.*s", (int)len, p);
		p += len + (p[len] == '\n');
	}
}

void
access_table_refresh(struct access_table *t, time_t now)
{
	struct access_map *m;
	char *errs = NULL;
	size_t errlen = 0;
	FILE *ef;
	int nerr = 0;

	if (t->path == NULL || t->path[0] == '\0')
		return;
	if (now != 0 && now == t->checked)
		return;
	t->checked = now;
	/* At start (now 0) the file is loaded as it is; later only once it
	 * is whole (lib/filewatch.h). */
	switch (filewatch_changed(&t->watch, t->path, now == 0)) {
	case -1:
		/* Keep what we have; say so once.  When the file is back,
		 * it is loaded again. */
		if (!t->missing)
			log_warn("access: %s%s", t->path, t->map ?
			    "; keeping the previous table" : "");
		t->missing = 1;
		filewatch_reset(&t->watch);
		return;
	case 0:
		return;
	}
	t->missing = 0;
	if ((ef = open_memstream(&errs, &errlen)) == NULL)
		fatal("access: open_memstream");
	m = access_map_load(t->path, ef, &nerr);
	fclose(ef);
	if (m == NULL) {
		log_errors(errs);
		log_warnx("access: %s has %d error%s; %s", t->path, nerr,
		    nerr == 1 ? "" : "s", t->map ? "keeping the previous table" :
		    "no access rules apply");
	} else {
		access_map_unref(t->map);
		t->map = m;
		log_info("access: loaded %zu rule%s from %s", m->nrules,
		    m->nrules == 1 ? "" : "s", t->path);
	}
	free(errs);
}
