/*
 * fuzz_smtp_data.c - the DATA reader (data_reader_feed), fed the input
 * in chunks of pseudo-random sizes as the network would deliver it.
 * Checked against a plain reference model of RFC 5321 section 4.5.2:
 *   - DATA_END only on <CRLF>.<CRLF> (or ".<CRLF>" at the very start),
 *     and never when a bare CR or LF came before the terminator;
 *   - DATA_BARE_EOL only when the consumed input holds a bare CR or LF;
 *   - the output is the unstuffed text, and its length is dr.size.
 * The first two octets seed the chunk sizes; the rest is the stream.
 */
#include "fuzz.h"
#include "smtp/smtp_data.h"

struct sink {
	char	*p;
	size_t	 n, cap;
};

static void
sink_out(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	FUZZ_ASSERT(n > 0);
	if (s->n + n > s->cap) {
		s->cap = (s->n + n) * 2;
		if ((s->p = realloc(s->p, s->cap)) == NULL)
			abort();
	}
	memcpy(s->p + s->n, p, n);
	s->n += n;
}

/* Does in[0..n) hold a CR not followed by LF or an LF not preceded by
 * CR?  A CR as the very last octet is still undecided: not bare. */
static int
has_bare_eol(const uint8_t *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\r' && i + 1 < n && in[i + 1] != '\n')
			return 1;
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			return 1;
	}
	return 0;
}

/* The reference unstuffer: lines split at CRLF, a leading dot dropped,
 * the terminating "." line left out.  in[0..n) ends with the
 * terminator. */
static void
reference_unstuff(const uint8_t *in, size_t n, struct sink *ref)
{
	size_t i = 0;

	while (i < n) {
		size_t e = i;

		while (!(in[e] == '\r' && in[e + 1] == '\n'))
			e++;
		if (e == i + 1 && in[i] == '.' && e + 2 == n)
			return;			/* the terminator */
		if (in[i] == '.')
			i++;
		if (e > i)
			sink_out(ref, (const char *)in + i, e - i);
		sink_out(ref, "\r\n", 2);
		i = e + 2;
	}
	FUZZ_ASSERT(!"no terminator in the reference input");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct data_reader dr;
	struct sink out = { 0 }, ref = { 0 };
	enum data_result r = DATA_MORE;
	uint32_t seed;
	size_t off = 0, used;

	if (size < 2)
		return 0;
	seed = (uint32_t)data[0] << 8 | data[1];
	data += 2, size -= 2;
	data_reader_init(&dr);
	while (off < size && r == DATA_MORE) {
		size_t chunk;

		seed = seed * 1103515245u + 12345u;
		chunk = 1 + (seed >> 16) % 97;
		if (chunk > size - off)
			chunk = size - off;
		r = data_reader_feed(&dr, (const char *)data + off, chunk, &used,
		    sink_out, &out);
		FUZZ_ASSERT(used <= chunk);
		if (r == DATA_MORE)
			FUZZ_ASSERT(used == chunk);
		off += used;
	}
	FUZZ_ASSERT(out.n == dr.size);
	switch (r) {
	case DATA_END:
		FUZZ_ASSERT(!has_bare_eol(data, off));
		FUZZ_ASSERT(off >= 3 && memcmp(data + off - 3, ".\r\n", 3) == 0);
		FUZZ_ASSERT(off == 3 || (off >= 5 &&
		    memcmp(data + off - 5, "\r\n.\r\n", 5) == 0));
		reference_unstuff(data, off, &ref);
		FUZZ_ASSERT(ref.n == out.n);
		FUZZ_ASSERT(ref.n == 0 || memcmp(ref.p, out.p, ref.n) == 0);
		break;
	case DATA_BARE_EOL:
		/* The last octet consumed is the offending one. */
		FUZZ_ASSERT(has_bare_eol(data, off));
		FUZZ_ASSERT(!has_bare_eol(data, off - 1));
		break;
	case DATA_MORE:
		FUZZ_ASSERT(off == size);
		FUZZ_ASSERT(!has_bare_eol(data, size));
		break;
	}
	free(out.p);
	free(ref.p);
	return 0;
}
