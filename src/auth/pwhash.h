/*
 * pwhash.h - password hashes through libxcrypt: yescrypt for new
 * passwords, and whatever crypt(3) method an existing hash names
 * (sha512-crypt "$6$", bcrypt "$2b$", ...) for verification, as
 * /etc/shadow does.
 */
#ifndef POSTERN_PWHASH_H
#define POSTERN_PWHASH_H

#include <stddef.h>

int	pwhash_make(const char *password, char *dst, size_t dstsz);
/* 1: matches; 0: does not (or the hash is "!", "*", empty). */
int	pwhash_verify(const char *password, const char *hash);

#endif
