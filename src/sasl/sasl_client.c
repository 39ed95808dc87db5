/*
 * sasl_client.c - client mechanisms (see sasl_client.h).
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "sasl/sasl_client.h"
#include "sasl/sasl_int.h"
#include "lib/base64.h"
#include "lib/strutil.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Strongest first; PLAIN before LOGIN (one round trip, same secrecy). */
static const enum sasl_mech_id sasl_client_pref[] = {
	SASL_SCRAM_SHA_256, SASL_CRAM_MD5, SASL_PLAIN, SASL_LOGIN,
};

const struct sasl_mech *
sasl_client_choose(const char *offered)
{
	for (size_t i = 0; i < sizeof sasl_client_pref / sizeof sasl_client_pref[0];
	    i++) {
		const char *name = sasl_mech_by_id(sasl_client_pref[i])->name;
		size_t n = strlen(name);

		for (const char *p = offered; p && *p; ) {
			while (*p == ' ')
				p++;
			if (strncasecmp(p, name, n) == 0 &&
			    (p[n] == ' ' || p[n] == '\0'))
				return sasl_mech_by_id(sasl_client_pref[i]);
			p = strchr(p, ' ');
		}
	}
	return NULL;
}

void
sasl_client_init(struct sasl_client *c, const struct sasl_mech *m,
    const char *user, const char *pass)
{
	memset(c, 0, sizeof *c);
	c->mech = m;
	strlcpy(c->user, user, sizeof c->user);
	strlcpy(c->pass, pass, sizeof c->pass);
	buf_init(&c->saved, SASL_MSG_MAX * 2);
}

void
sasl_client_set_nonce(struct sasl_client *c, const char *nonce)
{
	strlcpy(c->nonce, nonce, sizeof c->nonce);
}

void
sasl_client_free(struct sasl_client *c)
{
	buf_free(&c->saved);
	OPENSSL_cleanse(c->pass, sizeof c->pass);
}

static void
hmac256(const unsigned char *key, size_t klen, const void *msg, size_t n,
    unsigned char out[32])
{
	unsigned int len = 32;

	HMAC(EVP_sha256(), key, (int)klen, msg, n, out, &len);
}

/* SCRAM: escape ',' and '=' in the user name (RFC 5802 section 5.1). */
static void
scram_escape(struct buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == ',')
			buf_puts(out, "=2C");
		else if (*s == '=')
			buf_puts(out, "=3D");
		else
			buf_putc(out, *s);
	}
}

static enum sasl_status __attribute__((format(printf, 2, 3)))
client_error(struct sasl_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(c->error, sizeof c->error, fmt, ap);	/* a log line */
	va_end(ap);
	return SASL_MALFORMED;
}

/*
 * server-first-message = [reserved-mext ","] nonce "," salt ","
 *     iteration-count ["," extensions]        (RFC 5802 section 7)
 * Everything is checked before the password is used: the nonce must
 * extend ours, the salt be base64, and the iteration count lie within
 * SCRAM_ITER_MIN..SCRAM_ITER_MAX.  Fewer than RFC 7677's 4096 would
 * make our proof cheap to attack offline, and anyone on the path could
 * ask for i=1; more would stall us.  msg is a NUL-terminated copy, cut
 * up here; *nonce points into it.
 */
static enum sasl_status
scram_server_first(struct sasl_client *c, char *msg, const char **nonce,
    unsigned char *salt, size_t saltsz, long *saltlen, unsigned *iter)
{
	char *r, *s, *i, *end;
	size_t cn = strlen(c->nonce);
	unsigned long it;
	char err[64];

	/* RFC 5802 puts e= in the server's last message only; here it
	 * refuses all the same. */
	if (strncmp(msg, "e=", 2) == 0) {
		str_escape(err, sizeof err, msg + 2, strcspn(msg + 2, ","));
		return client_error(c, "the server refused the SCRAM "
		    "exchange: %s", err);
	}
	if (strncmp(msg, "m=", 2) == 0)
		return client_error(c, "the server requires a SCRAM extension "
		    "(m=) postern does not know");
	r = strsep(&msg, ",");
	s = strsep(&msg, ",");
	i = strsep(&msg, ",");		/* msg: extensions, ignored */
	if (s == NULL || i == NULL || strncmp(r, "r=", 2) != 0 ||
	    strncmp(s, "s=", 2) != 0 || strncmp(i, "i=", 2) != 0)
		return client_error(c, "malformed server-first-message "
		    "(r=, s=, i= expected)");
	r += 2;
	s += 2;
	i += 2;
	if (strlen(r) <= cn || strncmp(r, c->nonce, cn) != 0)
		return client_error(c, "the server's nonce does not extend "
		    "ours");
	for (const char *p = r; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			return client_error(c, "the server's nonce holds a "
			    "character RFC 5802 does not allow");
	if (*s == '\0' || strlen(s) > BASE64_ENCODED_LEN(saltsz) ||
	    (*saltlen = base64_decode(salt, s, strlen(s))) <= 0)
		return client_error(c, "the server's salt is empty or not "
		    "base64");
	/* posit-number: no sign, no leading zero, digits to the end */
	it = strtoul(i, &end, 10);
	if (*i < '1' || *i > '9' || *end != '\0')
		return client_error(c, "the server's iteration count is not a "
		    "number");
	if (it < SCRAM_ITER_MIN)
		return client_error(c, "the server asks for %lu SCRAM "
		    "iterations, fewer than the %u RFC 7677 requires", it,
		    SCRAM_ITER_MIN);
	if (it > SCRAM_ITER_MAX)
		return client_error(c, "the server asks for more than %u SCRAM "
		    "iterations", SCRAM_ITER_MAX);
	*nonce = r;
	*iter = (unsigned)it;
	return SASL_CONTINUE;
}

static enum sasl_status
scram_final(struct sasl_client *c, const char *sf, size_t n, struct buf *out)
{
	char copy[1024];
	const char *r = NULL;
	unsigned char salt[192], salted[32], ck[32], stored[32], sig[32],
	    sk[32], proof[32];
	char proof64[64], *cfb;
	long saltlen = 0;
	unsigned iter = 0;
	enum sasl_status st;
	struct buf auth;

	if (n >= sizeof copy || memchr(sf, '\0', n) != NULL)
		return client_error(c, "malformed server-first-message");
	memcpy(copy, sf, n);
	copy[n] = '\0';
	if ((st = scram_server_first(c, copy, &r, salt, sizeof salt, &saltlen,
	    &iter)) != SASL_CONTINUE)
		return st;
	if (PKCS5_PBKDF2_HMAC(c->pass, (int)strlen(c->pass), salt, (int)saltlen,
	    (int)iter, EVP_sha256(), sizeof salted, salted) != 1)
		return client_error(c, "PBKDF2 failed");
	hmac256(salted, sizeof salted, "Client Key", 10, ck);
	SHA256(ck, sizeof ck, stored);
	hmac256(salted, sizeof salted, "Server Key", 10, sk);

	/* client-final-without-proof = "c=biws,r=" nonce */
	buf_printf(out, "c=biws,r=%s", r);
	cfb = c->saved.data;		/* client-first-bare */
	buf_init(&auth, SASL_MSG_MAX * 3);
	buf_printf(&auth, "%s,%.*s,%s", cfb, (int)n, sf, out->data);
	hmac256(stored, sizeof stored, auth.data, auth.len, sig);
	for (int k = 0; k < 32; k++)
		proof[k] = ck[k] ^ sig[k];
	hmac256(sk, sizeof sk, auth.data, auth.len, c->server_sig);
	buf_free(&auth);
	base64_encode(proof64, proof, sizeof proof);
	buf_printf(out, ",p=%s", proof64);
	OPENSSL_cleanse(salted, sizeof salted);
	OPENSSL_cleanse(ck, sizeof ck);
	return SASL_CONTINUE;
}

/*
 * server-final-message = (server-error / verifier) ["," extensions]
 * The signature is compared in constant time; an "e=" is the server's
 * own reason for refusing us, reported as it is.
 */
static enum sasl_status
scram_verify(struct sasl_client *c, const unsigned char *in, size_t n)
{
	char want[BASE64_ENCODED_LEN(32) + 1], err[64];
	size_t wl = base64_encode(want, c->server_sig, sizeof c->server_sig);
	const unsigned char *comma = memchr(in, ',', n);
	size_t vl = comma ? (size_t)(comma - in) : n;

	if (n >= 2 && memcmp(in, "e=", 2) == 0) {
		str_escape(err, sizeof err, (const char *)in + 2, vl - 2);
		(void)client_error(c, "the server refused the SCRAM exchange: "
		    "%s", err);
		return SASL_FAIL;
	}
	if (vl == wl + 2 && memcmp(in, "v=", 2) == 0 &&
	    CRYPTO_memcmp(in + 2, want, wl) == 0)
		return SASL_OK;
	(void)client_error(c, "the server could not prove it knows the "
	    "password (SCRAM signature)");
	return SASL_FAIL;
}

enum sasl_status
sasl_client_step(struct sasl_client *c, const unsigned char *in, size_t n,
    struct buf *out, int *has_initial)
{
	enum sasl_status st = SASL_MALFORMED;

	buf_reset(out);
	*has_initial = 0;
	c->error[0] = '\0';
	switch (c->mech->id) {
	case SASL_PLAIN:
		if (c->step == 0) {
			buf_putc(out, '\0');
			buf_puts(out, c->user);
			buf_putc(out, '\0');
			buf_puts(out, c->pass);
			*has_initial = 1;
			st = SASL_CONTINUE;
		}
		break;
	case SASL_LOGIN:
		/* Servers say "Username:" then "Password:"; the order is what
		 * counts, not the text. */
		if (c->step == 0)
			st = SASL_CONTINUE;		/* no initial response */
		else if (c->step == 1 && in) {
			buf_puts(out, c->user);
			st = SASL_CONTINUE;
		} else if (c->step == 2 && in) {
			buf_puts(out, c->pass);
			st = SASL_CONTINUE;
		}
		break;
	case SASL_CRAM_MD5:
		if (c->step == 0)
			st = SASL_CONTINUE;
		else if (c->step == 1 && in) {
			unsigned char mac[16];
			unsigned int len = sizeof mac;
			char hex[33];

			HMAC(EVP_md5(), c->pass, (int)strlen(c->pass), in, n, mac,
			    &len);
			sasl_hex(hex, mac, sizeof mac);
			buf_printf(out, "%s %s", c->user, hex);
			st = SASL_CONTINUE;
		}
		break;
	case SASL_SCRAM_SHA_256:
		if (c->step == 0) {
			if (c->nonce[0] == '\0') {
				struct sasl_server tmp;	/* for its nonce helper */
				memset(&tmp, 0, sizeof tmp);
				sasl_nonce(&tmp, 24);
				strlcpy(c->nonce, tmp.nonce, sizeof c->nonce);
			}
			buf_puts(&c->saved, "n=");
			scram_escape(&c->saved, c->user);
			buf_printf(&c->saved, ",r=%s", c->nonce);
			buf_printf(out, "n,,%s", c->saved.data);
			*has_initial = 1;
			st = SASL_CONTINUE;
		} else if (c->step == 1 && in)
			st = scram_final(c, (const char *)in, n, out);
		else if (c->step == 2 && in)
			st = scram_verify(c, in, n);
		break;
	default:
		break;
	}
	c->step++;
	return st;
}
