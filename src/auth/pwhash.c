/* pwhash.c - crypt(3) hashing and verification (see pwhash.h). */
#include "auth/pwhash.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

int
pwhash_make(const char *password, char *dst, size_t dstsz)
{
	struct crypt_data *cd = xcalloc(1, sizeof *cd);
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	const char *h;
	int rc = -1;

	/* yescrypt at libxcrypt's default cost, random salt. */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting) != NULL &&
	    (h = crypt_r(password, setting, cd)) != NULL && h[0] == '$' &&
	    strlcpy(dst, h, dstsz) < dstsz)
		rc = 0;
	OPENSSL_cleanse(cd, sizeof *cd);
	free(cd);
	return rc;
}

int
pwhash_verify(const char *password, const char *hash)
{
	struct crypt_data *cd;
	const char *h;
	int ok = 0;

	/* "!" and "*" mark accounts without a password login; a failed
	 * crypt returns a string starting with '*'. */
	if (hash[0] == '\0' || hash[0] == '!' || hash[0] == '*')
		return 0;
	cd = xcalloc(1, sizeof *cd);
	h = crypt_r(password, hash, cd);
	if (h != NULL && h[0] != '*' && strlen(h) == strlen(hash))
		ok = CRYPTO_memcmp(h, hash, strlen(hash)) == 0;
	OPENSSL_cleanse(cd, sizeof *cd);
	free(cd);
	return ok;
}
