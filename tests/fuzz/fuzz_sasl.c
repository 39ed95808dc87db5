/*
 * fuzz_sasl.c - the server side of every SASL mechanism, driven through
 * sasl_server_step as the auth process drives it, with a one-user fake
 * backend (user "hoge", password "secret", real secrets for the
 * challenge mechanisms).
 *
 * Input: the first line names the mechanism ("PLAIN"; a leading "!"
 * means the client sent no initial response); every further line
 * (split at LF, NULs kept) is one decoded client message.  The server
 * nonce is fixed so that seeds can hold complete exchanges.
 */
#include "fuzz.h"
#include "sasl/sasl.h"
#include "sasl/sasl_int.h"

static char fake_scram[256], fake_cram[256], fake_digest[256];

static int
fake_verify(void *arg, const char *user, const char *password)
{
	return strcmp(user, "hoge") == 0 && strcmp(password, "secret") == 0;
}

static int
fake_secret(void *arg, const char *user, const char *kind, char *dst,
    size_t dstsz)
{
	const char *s = NULL;

	if (strcmp(user, "hoge") != 0)
		return 0;
	if (strcmp(kind, "scram-sha-256") == 0)
		s = fake_scram;
	else if (strcmp(kind, "cram-md5") == 0)
		s = fake_cram;
	else if (strcmp(kind, "digest-md5") == 0)
		s = fake_digest;
	if (s == NULL || strlen(s) >= dstsz)
		return s == NULL ? 0 : -1;
	memcpy(dst, s, strlen(s) + 1);
	return (int)strlen(s);
}

static const struct sasl_backend fake_be = { NULL, fake_verify, fake_secret,
    NULL };

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* A fixed salt: seeds with valid SCRAM proofs stay valid. */
	static const unsigned char salt[16] = "postern-fuzzing!";

	if (sasl_scram_secret("secret", salt, sizeof salt, 4096, fake_scram,
	    sizeof fake_scram) <= 0 ||
	    sasl_cram_md5_secret("secret", fake_cram, sizeof fake_cram) <= 0 ||
	    sasl_digest_md5_secret("hoge", "mail.example.test", "secret",
	    fake_digest, sizeof fake_digest) <= 0)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *end = data + size, *nl;
	char name[32];
	const struct sasl_mech *m;
	struct sasl_server s;
	struct buf out;
	enum sasl_status st = SASL_CONTINUE;
	int first = 1, no_ir = 0;
	size_t n;

	if ((nl = memchr(data, '\n', size)) == NULL)
		return 0;
	n = (size_t)(nl - data);
	if (n > 0 && data[0] == '!')
		no_ir = 1, data++, n--;
	if (n == 0 || n >= sizeof name)
		return 0;
	memcpy(name, data, n);
	name[n] = '\0';
	if (memchr(name, '\0', n) || (m = sasl_mech_lookup(name)) == NULL)
		return 0;
	data = nl + 1;

	sasl_server_init(&s, m, &fake_be, "mail.example.test", "smtp");
	sasl_server_set_nonce(&s, "fuzzNONCEfuzzNONCEfuzz00");
	buf_init(&out, 0);
	if (no_ir) {
		st = sasl_server_step(&s, NULL, 0, &out);
		first = 0;
	}
	/* A real exchange is a few steps; the auth process allows no
	 * more than the client can send in AUTH lines anyway. */
	for (int steps = 0; st == SASL_CONTINUE && steps < 16; steps++) {
		const uint8_t *line = data;

		if (!first && data >= end)
			break;
		nl = memchr(data, '\n', (size_t)(end - data));
		n = nl ? (size_t)(nl - data) : (size_t)(end - data);
		data = nl ? nl + 1 : end;
		st = sasl_server_step(&s, line, n, &out);
		first = 0;
		FUZZ_ASSERT(st >= SASL_CONTINUE && st <= SASL_TEMPFAIL);
		/* Challenges must fit an AUTH reply line once encoded. */
		if (st == SASL_CONTINUE)
			FUZZ_ASSERT(out.len <= SASL_MSG_MAX);
		if (st == SASL_OK) {
			FUZZ_ASSERT(strcmp(s.user, "hoge") == 0);
			FUZZ_ASSERT(sasl_user_valid(s.user, strlen(s.user)));
		}
	}
	buf_free(&out);
	sasl_server_free(&s);
	return 0;
}
