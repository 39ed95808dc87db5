/*
 * smtp_addr.c - RFC 5321 section 4.1.2 address syntax, strictly: only
 * what the grammar allows gets through, so nothing downstream ever has to
 * second-guess an address (no %-hack, no bang path, no unquoted @).
 */
#include "smtp/smtp_addr.h"
#include "lib/strutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 5322 atext */
static int
is_atext(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Let-dig [Ldh-str] labels separated by dots; no trailing dot. */
int
smtp_domain_valid(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (isalnum(c) || (c == '-' && label > 0)) {
			if (++label > 63)
				return 0;
		} else
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

int
smtp_addr_literal_host(const char *lit, size_t len, char *host, size_t hostsz)
{
	char tmp[64];
	unsigned char bin[16];
	int v6;

	if (len < 3 || lit[0] != '[' || lit[len - 1] != ']' ||
	    len - 2 >= sizeof tmp)
		return -1;
	memcpy(tmp, lit + 1, len - 2);
	tmp[len - 2] = '\0';
	v6 = strncasecmp(tmp, "IPv6:", 5) == 0;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, tmp + (v6 ? 5 : 0), bin) != 1 ||
	    strlcpy(host, tmp + (v6 ? 5 : 0), hostsz) >= hostsz)
		return -1;
	return 0;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3). */
static int
literal_valid(const char *s, size_t len)
{
	char host[64];

	return smtp_addr_literal_host(s, len, host, sizeof host) == 0;
}

/* Dot-string: atoms of atext joined by single dots. */
static int
dot_string_valid(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (s[i - 1] == '.')
				return 0;
		} else if (!is_atext((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

/* Length of a Quoted-string at s (including both quotes), or 0. */
static size_t
quoted_string_len(const char *s, size_t len)
{
	size_t i;

	if (len < 2 || s[0] != '"')
		return 0;
	for (i = 1; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"')
			return i + 1;
		if (c == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 */
			if (i + 1 >= len || s[i + 1] < 32 || s[i + 1] > 126)
				return 0;
			i++;
		} else if (c < 32 || c > 126)
			return 0;
	}
	return 0;
}

/* A-d-l = At-domain *( "," At-domain ), followed by ":". */
static size_t
source_route_len(const char *s, size_t len)
{
	size_t i = 0;

	for (;;) {
		size_t start;

		if (i >= len || s[i] != '@')
			return 0;
		start = ++i;
		while (i < len && s[i] != ',' && s[i] != ':')
			i++;
		if (i >= len || !(smtp_domain_valid(s + start, i - start) ||
		    literal_valid(s + start, i - start)))
			return 0;
		if (s[i] == ':')
			return i + 1;
		i++;			/* ',' */
	}
}

int
smtp_addr_parse_path(const char *s, size_t len, struct mailaddr *a)
{
	size_t at, llen, dlen;

	a->local[0] = a->domain[0] = '\0';
	a->quoted = a->literal = 0;
	if (len == 0)
		return 0;			/* <> */
	if (len > SMTP_PATH_MAX - 2)
		return -1;
	if (s[0] == '@') {
		size_t r = source_route_len(s, len);
		if (r == 0)
			return -1;
		s += r;
		len -= r;
		if (len == 0)
			return -1;		/* a route but no mailbox */
	}
	if (s[0] == '"') {
		llen = quoted_string_len(s, len);
		if (llen == 0)
			return -1;
		a->quoted = 1;
	} else {
		const char *p = memchr(s, '@', len);
		llen = p ? (size_t)(p - s) : len;
		if (!dot_string_valid(s, llen))
			return -1;
	}
	if (llen > SMTP_LOCAL_MAX)
		return -1;
	memcpy(a->local, s, llen);
	a->local[llen] = '\0';
	if (llen == len) {
		/* No domain: only "postmaster" is allowed (RFC 5321 4.1.1.3);
		 * the caller checks that it is RCPT. */
		if (a->quoted || strcasecmp(a->local, "postmaster") != 0)
			return -1;
		return 0;
	}
	at = llen;
	if (s[at] != '@')
		return -1;
	dlen = len - at - 1;
	if (smtp_domain_valid(s + at + 1, dlen))
		a->literal = 0;
	else if (literal_valid(s + at + 1, dlen))
		a->literal = 1;
	else
		return -1;
	memcpy(a->domain, s + at + 1, dlen);
	a->domain[dlen] = '\0';
	return 0;
}

int
smtp_addr_is_null(const struct mailaddr *a)
{
	return a->local[0] == '\0' && a->domain[0] == '\0';
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-");
 * esmtp-value = 1*(%d33-60 / %d62-126) (RFC 5321 4.1.2). */
static int
param_parse(char *p, struct smtp_param *out)
{
	char *eq = strchr(p, '=');

	out->key = p;
	out->value = NULL;
	if (eq) {
		*eq = '\0';
		out->value = eq + 1;
		if (*out->value == '\0')
			return -1;
		for (char *v = out->value; *v; v++)
			if ((unsigned char)*v < 33 || (unsigned char)*v > 126 ||
			    *v == '=')
				return -1;
	}
	if (!isalnum((unsigned char)p[0]))
		return -1;
	for (char *k = p; *k; k++) {
		if (!isalnum((unsigned char)*k) && *k != '-')
			return -1;
		*k = (char)toupper((unsigned char)*k);
	}
	return 0;
}

int
smtp_addr_parse(char *arg, enum addr_kind kind, struct mailaddr *a,
    struct smtp_param *params, size_t *nparams)
{
	const char *prefix = kind == ADDR_MAIL ? "FROM:" : "TO:";
	size_t plen = strlen(prefix);
	char *lt, *gt, *p;

	*nparams = 0;
	if (strncasecmp(arg, prefix, plen) != 0)
		return -1;
	lt = arg + plen;
	/* Tolerate "MAIL FROM: <a@b>", as almost every server does. */
	while (*lt == ' ')
		lt++;
	if (*lt != '<')
		return -1;
	/* The closing '>' is the first one outside a quoted local part. */
	for (gt = lt + 1; *gt && *gt != '>'; gt++)
		if (*gt == '"') {
			size_t q = quoted_string_len(gt, strlen(gt));
			if (q == 0)
				return -1;
			gt += q - 1;
		}
	if (*gt != '>')
		return -1;
	if (smtp_addr_parse_path(lt + 1, (size_t)(gt - lt - 1), a) == -1)
		return -1;
	if (a->domain[0] == '\0') {
		if (kind == ADDR_MAIL && a->local[0] != '\0')
			return -1;		/* <postmaster> is RCPT only */
		if (kind == ADDR_RCPT && a->local[0] == '\0')
			return -1;		/* <> is MAIL only */
	}
	p = gt + 1;
	if (*p != '\0' && *p != ' ')
		return -1;
	while (*p) {
		char *start;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p && *p != ' ')
			p++;
		if (*p)
			*p++ = '\0';
		if (*nparams == SMTP_PARAMS_MAX ||
		    param_parse(start, &params[*nparams]) == -1)
			return -1;
		(*nparams)++;
	}
	return 0;
}

void
smtp_addr_format(const struct mailaddr *a, char *dst, size_t dstsz)
{
	if (a->domain[0] == '\0')
		strlcpy(dst, a->local, dstsz);
	else
		snprintf(dst, dstsz, "%s@%s", a->local, a->domain);
}

int
smtp_addr_simple_local(const struct mailaddr *a, char *dst, size_t dstsz)
{
	size_t o = 0, len = strlen(a->local);

	if (!a->quoted) {
		if (strlcpy(dst, a->local, dstsz) >= dstsz)
			return -1;
		/* % and ! are atext but route mail elsewhere (RFC 1123 %-hack,
		 * UUCP bang paths): never a plain local name. */
		return strpbrk(dst, "%!") ? -1 : 0;
	}
	for (size_t i = 1; i + 1 < len; i++) {
		char c = a->local[i];
		if (c == '\\')
			c = a->local[++i];
		if (o + 1 >= dstsz)
			return -1;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return dot_string_valid(dst, o) && !strpbrk(dst, "%!") ? 0 : -1;
}
