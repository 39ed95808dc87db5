/*
 * sasl_plain.c - PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login):
 * the two mechanisms that carry the password itself, so the caller only
 * offers them under TLS.
 */
#include "sasl/sasl_int.h"
#include "lib/strutil.h"

#include <openssl/crypto.h>
#include <string.h>

#define SASL_PASSWORD_MAX	1024

static enum sasl_status
verify(struct sasl_server *s, const char *user, size_t ulen,
    const unsigned char *pass, size_t plen)
{
	char password[SASL_PASSWORD_MAX + 1];
	int rc;

	if (!sasl_user_valid(user, ulen) || plen == 0 || plen > SASL_PASSWORD_MAX ||
	    memchr(pass, '\0', plen) != NULL)
		return SASL_MALFORMED;
	memcpy(s->user, user, ulen);
	s->user[ulen] = '\0';
	memcpy(password, pass, plen);
	password[plen] = '\0';
	rc = s->be->verify_password(s->be->arg, s->user, password);
	OPENSSL_cleanse(password, sizeof password);
	if (rc == SASL_VERIFY_LATER)
		return SASL_PENDING;
	return rc == 1 ? SASL_OK : rc == 0 ? SASL_FAIL : SASL_TEMPFAIL;
}

/* message = [authzid] NUL authcid NUL passwd */
enum sasl_status
sasl_plain_step(struct sasl_server *s, const unsigned char *in, size_t n,
    struct buf *out)
{
	const unsigned char *nul1, *nul2;
	size_t zlen, ulen;

	if (s->step == 0 && in == NULL)
		return SASL_CONTINUE;		/* empty challenge: "334 " */
	if (in == NULL || s->step > 1)
		return SASL_MALFORMED;
	if ((nul1 = memchr(in, '\0', n)) == NULL ||
	    (nul2 = memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - in))) == NULL)
		return SASL_MALFORMED;
	zlen = (size_t)(nul1 - in);
	ulen = (size_t)(nul2 - nul1 - 1);
	/* Acting for someone else (authzid) is not offered. */
	if (zlen && (zlen != ulen || memcmp(in, nul1 + 1, ulen) != 0))
		return SASL_FAIL;
	return verify(s, (const char *)nul1 + 1, ulen, nul2 + 1,
	    n - (size_t)(nul2 + 1 - in));
}

enum sasl_status
sasl_login_step(struct sasl_server *s, const unsigned char *in, size_t n,
    struct buf *out)
{
	switch (s->step) {
	case 0:
		if (in == NULL) {
			buf_puts(out, "Username:");
			return SASL_CONTINUE;
		}
		s->step++;	/* the initial response was the user name */
		/* FALLTHROUGH */
	case 1:
		if (in == NULL || !sasl_user_valid((const char *)in, n) ||
		    memchr(in, '\0', n))
			return SASL_MALFORMED;
		memcpy(s->user, in, n);
		s->user[n] = '\0';
		buf_puts(out, "Password:");
		return SASL_CONTINUE;
	case 2:
		if (in == NULL)
			return SASL_MALFORMED;
		{
			char user[SASL_USER_MAX + 1];
			strlcpy(user, s->user, sizeof user);
			return verify(s, user, strlen(user), in, n);
		}
	default:
		return SASL_MALFORMED;
	}
}
