/*
 * apop.c - the APOP digest (RFC 1939 section 7; see apop.h).  MD5 is
 * what the RFC specifies; APOP is off by default for that reason and
 * because it needs a plaintext-equivalent secret.
 */
#include "auth/apop.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

static const char hexdigits[] = "0123456789abcdef";

int
apop_make_secret(const char *password, char *dst, size_t dstsz)
{
	size_t n = strlen(password);

	if (n == 0 || 2 * n + 1 > dstsz)
		return -1;
	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = hexdigits[(unsigned char)password[i] >> 4];
		dst[2 * i + 1] = hexdigits[(unsigned char)password[i] & 15];
	}
	dst[2 * n] = '\0';
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
apop_digest(const char *timestamp, const char *secret_hex,
    char out[APOP_DIGEST_LEN + 1])
{
	size_t slen = strlen(secret_hex), tlen = strlen(timestamp);
	unsigned char input[APOP_TIMESTAMP_MAX + 512], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int rc = -1;

	if (slen == 0 || slen % 2 || tlen > APOP_TIMESTAMP_MAX ||
	    tlen + slen / 2 > sizeof input)
		return -1;
	memcpy(input, timestamp, tlen);
	for (size_t i = 0; i < slen / 2; i++) {
		int hi = hexval(secret_hex[2 * i]), lo = hexval(secret_hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			goto out;
		input[tlen + i] = (unsigned char)(hi << 4 | lo);
	}
	if (EVP_Digest(input, tlen + slen / 2, md, &mdlen, EVP_md5(), NULL) != 1 ||
	    mdlen != APOP_DIGEST_LEN / 2)
		goto out;
	for (unsigned i = 0; i < mdlen; i++) {
		out[2 * i] = hexdigits[md[i] >> 4];
		out[2 * i + 1] = hexdigits[md[i] & 15];
	}
	out[APOP_DIGEST_LEN] = '\0';
	rc = 0;
out:
	OPENSSL_cleanse(input, sizeof input);
	return rc;
}

int
apop_check(const char *timestamp, const char *secret_hex,
    const char *client_digest)
{
	char want[APOP_DIGEST_LEN + 1], got[APOP_DIGEST_LEN + 1];

	if (strlen(client_digest) != APOP_DIGEST_LEN ||
	    apop_digest(timestamp, secret_hex, want) == -1)
		return 0;
	/* RFC 1939 says lower-case hex; accept upper case too. */
	for (size_t i = 0; i <= APOP_DIGEST_LEN; i++)
		got[i] = (client_digest[i] >= 'A' && client_digest[i] <= 'F') ?
		    (char)(client_digest[i] - 'A' + 'a') : client_digest[i];
	return CRYPTO_memcmp(want, got, APOP_DIGEST_LEN) == 0;
}
