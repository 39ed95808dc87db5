/*
 * fuzz_base64.c - the strict base64 decoder used for every AUTH line.
 * A decoder that accepts only canonical input has a simple oracle:
 * whatever it accepts must encode back to exactly the same text, and
 * whatever we encode must decode back to the same octets.
 */
#include "fuzz.h"
#include "lib/base64.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *dec = malloc(BASE64_DECODED_MAX(size) + 1);
	char *enc = malloc(BASE64_ENCODED_LEN(size) + 1);
	long n;
	size_t m;

	if (dec == NULL || enc == NULL)
		abort();
	n = base64_decode(dec, (const char *)data, size);
	if (n >= 0) {
		char *again = malloc(BASE64_ENCODED_LEN((size_t)n) + 1);

		FUZZ_ASSERT((size_t)n <= BASE64_DECODED_MAX(size));
		m = base64_encode(again, dec, (size_t)n);
		FUZZ_ASSERT(m == size && memcmp(again, data, size) == 0);
		free(again);
	}
	m = base64_encode(enc, data, size);
	FUZZ_ASSERT(m == BASE64_ENCODED_LEN(size) && enc[m] == '\0');
	free(dec);
	dec = malloc(BASE64_DECODED_MAX(m) + 1);
	n = base64_decode(dec, enc, m);
	FUZZ_ASSERT(n >= 0 && (size_t)n == size);
	FUZZ_ASSERT(size == 0 || memcmp(dec, data, size) == 0);
	free(dec);
	free(enc);
	return 0;
}
