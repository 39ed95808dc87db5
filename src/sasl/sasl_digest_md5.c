/*
 * sasl_digest_md5.c - DIGEST-MD5 (RFC 2831), server side, qop=auth only.
 * Legacy: RFC 6331 moved it to Historic; it is off unless the
 * configuration enables it.  The users file keeps the realm and
 * H(user:realm:password), never the password.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "sasl/sasl_int.h"
#include "lib/strutil.h"

#include <ctype.h>
#include <stddef.h>
#include <openssl/crypto.h>
#include <openssl/md5.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DIGEST_VALUE_MAX	256

int
sasl_digest_md5_secret(const char *user, const char *realm,
    const char *password, char *dst, size_t dstsz)
{
	unsigned char h[MD5_DIGEST_LENGTH];
	char hex[2 * MD5_DIGEST_LENGTH + 1];
	MD5_CTX ctx;
	int n;

	if (strchr(realm, ',') != NULL)
		return -1;
	MD5_Init(&ctx);
	MD5_Update(&ctx, user, strlen(user));
	MD5_Update(&ctx, ":", 1);
	MD5_Update(&ctx, realm, strlen(realm));
	MD5_Update(&ctx, ":", 1);
	MD5_Update(&ctx, password, strlen(password));
	MD5_Final(h, &ctx);
	sasl_hex(hex, h, sizeof h);
	n = snprintf(dst, dstsz, "%s,%s", realm, hex);
	return n < 0 || (size_t)n >= dstsz ? -1 : n;
}

struct digest_response {
	char	username[SASL_USER_MAX + 1];
	char	realm[DIGEST_VALUE_MAX];
	char	nonce[DIGEST_VALUE_MAX];
	char	cnonce[DIGEST_VALUE_MAX];
	char	nc[16];
	char	qop[16];
	char	digest_uri[DIGEST_VALUE_MAX];
	char	response[40];
	char	authzid[DIGEST_VALUE_MAX];
	int	seen;		/* bit per directive, to refuse repeats */
};

/* directive = token "=" ( token / quoted-string ), separated by ","
 * with optional blanks (RFC 2831 section 7.1 "#rule"). */
static int
digest_parse(const char *p, const char *end, struct digest_response *r)
{
	static const struct { const char *name; size_t off, size; } fields[] = {
#define F(n, m) { n, offsetof(struct digest_response, m), \
	sizeof(((struct digest_response *)0)->m) }
		F("username", username), F("realm", realm), F("nonce", nonce),
		F("cnonce", cnonce), F("nc", nc), F("qop", qop),
		F("digest-uri", digest_uri), F("response", response),
		F("authzid", authzid),
#undef F
	};
	memset(r, 0, sizeof *r);
	while (p < end) {
		char key[32], val[DIGEST_VALUE_MAX];
		size_t k = 0, v = 0;

		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		if (p == end)
			break;
		while (p < end && *p != '=' && k + 1 < sizeof key)
			key[k++] = *p++;
		key[k] = '\0';
		if (p == end || *p++ != '=')
			return -1;
		if (p < end && *p == '"') {
			for (p++; p < end && *p != '"'; p++) {
				if (*p == '\\' && p + 1 < end)
					p++;
				if (v + 1 >= sizeof val)
					return -1;
				val[v++] = *p;
			}
			if (p == end)
				return -1;
			p++;
		} else
			while (p < end && *p != ',' && *p != ' ' && v + 1 < sizeof val)
				val[v++] = *p++;
		val[v] = '\0';
		for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
			if (strcasecmp(key, fields[i].name) != 0)
				continue;
			if (r->seen & (1 << i))
				return -1;
			r->seen |= 1 << i;
			if (strlcpy((char *)r + fields[i].off, val,
			    fields[i].size) >= fields[i].size)
				return -1;
		}
		/* Unknown directives (charset, maxbuf, cipher) are ignored. */
	}
	return 0;
}

static void
digest_kd(const unsigned char ha1[MD5_DIGEST_LENGTH], const char *a2prefix,
    const struct digest_response *r, char out[33])
{
	unsigned char h[MD5_DIGEST_LENGTH];
	char ha1hex[33], ha2hex[33];
	MD5_CTX ctx;

	MD5_Init(&ctx);
	MD5_Update(&ctx, a2prefix, strlen(a2prefix));
	MD5_Update(&ctx, ":", 1);
	MD5_Update(&ctx, r->digest_uri, strlen(r->digest_uri));
	MD5_Final(h, &ctx);
	sasl_hex(ha2hex, h, sizeof h);
	sasl_hex(ha1hex, ha1, MD5_DIGEST_LENGTH);
	MD5_Init(&ctx);
	MD5_Update(&ctx, ha1hex, 32);
	MD5_Update(&ctx, ":", 1);
	MD5_Update(&ctx, r->nonce, strlen(r->nonce));
	MD5_Update(&ctx, ":", 1);
	MD5_Update(&ctx, r->nc, strlen(r->nc));
	MD5_Update(&ctx, ":", 1);
	MD5_Update(&ctx, r->cnonce, strlen(r->cnonce));
	MD5_Update(&ctx, ":auth:", 6);
	MD5_Update(&ctx, ha2hex, 32);
	MD5_Final(h, &ctx);
	sasl_hex(out, h, sizeof h);
}

static int
digest_host_ours(const struct sasl_server *s, const char *host)
{
	if (s->be->host_is_ours)
		return s->be->host_is_ours(s->be->arg, host);
	return strcasecmp(host, s->hostname) == 0;
}

/*
 * digest-uri = serv-type "/" host [ "/" serv-name ] (RFC 2831 section
 * 2.1.2).  The server should check that it names this service and this
 * server, so that a response made for another one (another server the
 * user logs in to, IMAP on this one) cannot be replayed here.  host is
 * a name or an address, an IPv6 one bare or in brackets; serv-name, a
 * replicated service's name (a domain of ours), is checked the same
 * way.  0, or -1 with s->refusal saying why.
 */
static int
digest_uri_check(struct sasl_server *s, const char *uri)
{
	char host[DIGEST_VALUE_MAX], esc[96];
	const char *h = strchr(uri, '/'), *name, *why = NULL;
	size_t svc = strlen(s->service), hlen;

	if (h == NULL || (size_t)(h - uri) != svc ||
	    strncasecmp(uri, s->service, svc) != 0)
		why = "names another service";
	else {
		h++;
		name = strchr(h, '/');
		hlen = name ? (size_t)(name - h) : strlen(h);
		if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
			h++;
			hlen -= 2;
		}
		memcpy(host, h, hlen);	/* shorter than uri */
		host[hlen] = '\0';
		if (!digest_host_ours(s, host) ||
		    (name != NULL && !digest_host_ours(s, name + 1)))
			why = "names another host";
	}
	if (why == NULL)
		return 0;
	/* Cut short in the log if need be: the start tells enough. */
	str_escape(esc, sizeof esc, uri, strlen(uri));
	(void)snprintf(s->refusal, sizeof s->refusal, "digest-uri \"%s\" %s",
	    esc, why);
	return -1;
}

static enum sasl_status
digest_response(struct sasl_server *s, const unsigned char *in, size_t n,
    struct buf *out)
{
	struct digest_response r;
	char secret[256], *comma, want[33], rspauth[33];
	unsigned char urp[MD5_DIGEST_LENGTH], ha1[MD5_DIGEST_LENGTH];
	MD5_CTX ctx;
	int rc;

	if (in == NULL || memchr(in, '\0', n) ||
	    digest_parse((const char *)in, (const char *)in + n, &r) == -1)
		return SASL_MALFORMED;
	if (!r.username[0] || !r.nonce[0] || !r.cnonce[0] || !r.digest_uri[0] ||
	    strlen(r.response) != 32 || strcmp(r.nc, "00000001") != 0 ||
	    (r.qop[0] && strcmp(r.qop, "auth") != 0))
		return SASL_MALFORMED;
	if (strcmp(r.nonce, s->nonce) != 0)
		return SASL_FAIL;
	if (r.authzid[0] && strcmp(r.authzid, r.username) != 0)
		return SASL_FAIL;
	if (strlcpy(s->user, r.username, sizeof s->user) >= sizeof s->user ||
	    !sasl_user_valid(s->user, strlen(s->user)))
		return SASL_FAIL;	/* as the other mechanisms check it */
	if (digest_uri_check(s, r.digest_uri) == -1)
		return SASL_FAIL;	/* the log shows whose it was */
	rc = s->be->get_secret(s->be->arg, s->user, "digest-md5", secret,
	    sizeof secret);
	if (rc < 0)
		return SASL_TEMPFAIL;
	if (rc == 0 || (comma = strchr(secret, ',')) == NULL ||
	    strlen(comma + 1) != 32 ||
	    strncmp(secret, r.realm, (size_t)(comma - secret)) != 0 ||
	    r.realm[comma - secret] != '\0' ||
	    sasl_unhex(urp, comma + 1, sizeof urp) == -1) {
		OPENSSL_cleanse(secret, sizeof secret);
		OPENSSL_cleanse(urp, sizeof urp);
		return SASL_FAIL;
	}
	OPENSSL_cleanse(secret, sizeof secret);
	/* A1 = H(user:realm:pass) ":" nonce ":" cnonce [":" authzid] */
	MD5_Init(&ctx);
	MD5_Update(&ctx, urp, sizeof urp);
	MD5_Update(&ctx, ":", 1);
	MD5_Update(&ctx, r.nonce, strlen(r.nonce));
	MD5_Update(&ctx, ":", 1);
	MD5_Update(&ctx, r.cnonce, strlen(r.cnonce));
	if (r.authzid[0]) {
		MD5_Update(&ctx, ":", 1);
		MD5_Update(&ctx, r.authzid, strlen(r.authzid));
	}
	MD5_Final(ha1, &ctx);
	OPENSSL_cleanse(urp, sizeof urp);	/* as good as the password */
	OPENSSL_cleanse(&ctx, sizeof ctx);
	digest_kd(ha1, "AUTHENTICATE", &r, want);
	for (char *c = r.response; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (CRYPTO_memcmp(want, r.response, 32) != 0) {
		OPENSSL_cleanse(ha1, sizeof ha1);
		return SASL_FAIL;
	}
	digest_kd(ha1, "", &r, rspauth);
	OPENSSL_cleanse(ha1, sizeof ha1);
	buf_printf(out, "rspauth=%s", rspauth);
	return SASL_CONTINUE;
}

enum sasl_status
sasl_digest_md5_step(struct sasl_server *s, const unsigned char *in, size_t n,
    struct buf *out)
{
	switch (s->step) {
	case 0:
		if (in != NULL)
			return SASL_MALFORMED;
		sasl_nonce(s, 24);
		buf_printf(out, "realm=\"%s\",nonce=\"%s\",qop=\"auth\","
		    "charset=utf-8,algorithm=md5-sess", s->hostname, s->nonce);
		return SASL_CONTINUE;
	case 1:
		return digest_response(s, in, n, out);
	case 2:
		return in != NULL && n == 0 ? SASL_OK : SASL_MALFORMED;
	default:
		return SASL_MALFORMED;
	}
}
