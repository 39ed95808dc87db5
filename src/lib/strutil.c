/* strutil.c - bounded string helpers and config value syntax. */
#include "lib/strutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__GLIBC__) || !__GLIBC_PREREQ(2, 38)
size_t
strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size) {
		size_t n = len >= size ? size - 1 : len;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

size_t
strlcat(char *dst, const char *src, size_t size)
{
	size_t dlen = strnlen(dst, size);

	if (dlen == size)
		return size + strlen(src);
	return dlen + strlcpy(dst + dlen, src, size - dlen);
}
#endif

char *
str_escape(char *dst, size_t dstsz, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	if (dstsz == 0)
		return dst;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= dstsz)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= dstsz)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}

void
str_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Digits then one optional unit letter; anything else is an error. */
static int
parse_scaled(const char *s, uint64_t *out, const char *units,
    const uint64_t *scale)
{
	char *end;
	unsigned long long v;
	const char *u;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end == '\0') {
		*out = v;
		return 0;
	}
	if (end[1] != '\0' || (u = strchr(units, *end)) == NULL)
		return -1;
	if (v > UINT64_MAX / scale[u - units])
		return -1;
	*out = v * scale[u - units];
	return 0;
}

int
parse_size(const char *s, uint64_t *out)
{
	static const uint64_t scale[] = { 1024, 1024, 1024 * 1024, 1024 * 1024,
	    1024ULL * 1024 * 1024, 1024ULL * 1024 * 1024 };

	return parse_scaled(s, out, "kKmMgG", scale);
}

int
parse_duration(const char *s, uint64_t *out)
{
	static const uint64_t scale[] = { 1, 60, 3600, 86400, 604800 };

	return parse_scaled(s, out, "smhdw", scale);
}
