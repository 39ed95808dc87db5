/*
 * base64.h - RFC 4648 section 4 base64, strictly: the decoder accepts
 * only the canonical alphabet with correct padding and no blanks, as
 * SASL requires (RFC 4954 section 4: a malformed one is a 501).
 */
#ifndef POSTERN_BASE64_H
#define POSTERN_BASE64_H

#include <stddef.h>

#define BASE64_ENCODED_LEN(n)	((((n) + 2) / 3) * 4)
#define BASE64_DECODED_MAX(n)	(((n) / 4) * 3)

/* dst must hold BASE64_ENCODED_LEN(n) + 1; returns the length. */
size_t	base64_encode(char *dst, const unsigned char *src, size_t n);
/* dst must hold BASE64_DECODED_MAX(n); returns the length or -1. */
long	base64_decode(unsigned char *dst, const char *src, size_t n);
/*
 * For the log of an unknown command: a client that sent its SASL
 * responses ahead of an AUTH that was refused sends them as commands,
 * and a password in base64 must not reach the log.  If text (a
 * NUL-terminated copy of a line of len octets) is one word of the
 * base64 alphabet, it is replaced by a note of its length.
 */
void	base64_word_hide(char *text, size_t textsz, size_t len);

#endif
