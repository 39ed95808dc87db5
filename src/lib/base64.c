/* base64.c - strict RFC 4648 base64 (see base64.h). */
#include "lib/base64.h"

#include <ctype.h>
#include <stdio.h>

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
base64_encode(char *dst, const unsigned char *src, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		dst[o++] = b64[src[i] >> 2];
		dst[o++] = b64[((src[i] & 3) << 4) | (src[i + 1] >> 4)];
		dst[o++] = b64[((src[i + 1] & 15) << 2) | (src[i + 2] >> 6)];
		dst[o++] = b64[src[i + 2] & 63];
	}
	if (i < n) {
		dst[o++] = b64[src[i] >> 2];
		if (i + 1 < n) {
			dst[o++] = b64[((src[i] & 3) << 4) | (src[i + 1] >> 4)];
			dst[o++] = b64[(src[i + 1] & 15) << 2];
		} else {
			dst[o++] = b64[(src[i] & 3) << 4];
			dst[o++] = '=';
		}
		dst[o++] = '=';
	}
	dst[o] = '\0';
	return o;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
base64_decode(unsigned char *dst, const char *src, size_t n)
{
	size_t i, o = 0;

	if (n % 4 != 0)
		return -1;
	for (i = 0; i < n; i += 4) {
		int v[4], pad = 0;

		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)src[i + k];

			if (c == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			/* Nothing may follow padding inside the quantum. */
			if (pad || (v[k] = b64_value(c)) < 0)
				return -1;
		}
		dst[o++] = (unsigned char)((v[0] << 2) | (v[1] >> 4));
		if (pad < 2)
			dst[o++] = (unsigned char)(((v[1] & 15) << 4) | (v[2] >> 2));
		if (pad < 1)
			dst[o++] = (unsigned char)(((v[2] & 3) << 6) | v[3]);
		/* Canonical encoding: the unused bits must be zero. */
		if ((pad == 2 && (v[1] & 15)) || (pad == 1 && (v[2] & 3)))
			return -1;
	}
	return (long)o;
}

void
base64_word_hide(char *text, size_t textsz, size_t len)
{
	if (text[0] == '\0')
		return;
	for (const char *p = text; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '+' && *p != '/' &&
		    *p != '=')
			return;
	(void)snprintf(text, textsz, "(one base64 word of %zu octets, not "
	    "shown)", len);
}
