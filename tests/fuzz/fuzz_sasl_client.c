/*
 * fuzz_sasl_client.c - the client side of PLAIN, LOGIN, CRAM-MD5 and
 * SCRAM-SHA-256 (src/sasl/sasl_client.c), as the smarthost relay and
 * the sendmail command's submission run it against a server we do not
 * trust: the input picks a mechanism and then supplies the server's
 * challenges, split at NUL bytes.  Invariants: no crash, every response
 * is bounded, and SCRAM says OK only for a server signature it has
 * checked (which random input essentially never carries).
 */
#include "fuzz.h"

#include "lib/buf.h"
#include "sasl/sasl_client.h"

static const char *mechs[] = { "PLAIN", "LOGIN", "CRAM-MD5",
    "SCRAM-SHA-256" };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sasl_client c;
	struct buf out;
	const uint8_t *p, *end = data + size;
	enum sasl_status st;
	int ir, steps = 0;

	if (size < 1)
		return 0;
	sasl_client_init(&c, sasl_mech_lookup(mechs[data[0] % 4]), "user",
	    "pencil");
	if (data[0] & 0x80)
		sasl_client_set_nonce(&c, "rOprNGfwEbeRWgbNEkqO");
	buf_init(&out, SASL_MSG_MAX * 4);
	st = sasl_client_step(&c, NULL, 0, &out, &ir);
	p = data + 1;
	while (st == SASL_CONTINUE && p <= end && steps++ < 8) {
		const uint8_t *nul = memchr(p, '\0', (size_t)(end - p));
		size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);

		st = sasl_client_step(&c, p, n, &out, &ir);
		FUZZ_ASSERT(out.len <= SASL_MSG_MAX * 2);
		p += n + 1;
	}
	/* PLAIN, LOGIN and CRAM-MD5 never claim success themselves; SCRAM
	 * only after the third step, on a verified server signature. */
	if (st == SASL_OK)
		FUZZ_ASSERT(c.mech->id == SASL_SCRAM_SHA_256 && steps >= 2);
	sasl_client_free(&c);
	buf_free(&out);
	return 0;
}
