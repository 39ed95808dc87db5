/*
 * client_key.c - the address unit of per-client limits (client_key.h).
 */
#include "policy/client_key.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

int
client_key(const struct sockaddr *sa, uint8_t key[CLIENT_KEY_LEN])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };

	memset(key, 0, CLIENT_KEY_LEN);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		memcpy(key, mapped, sizeof mapped);
		memcpy(key + 12, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (memcmp(sin6->sin6_addr.s6_addr, mapped, sizeof mapped) == 0)
			memcpy(key, sin6->sin6_addr.s6_addr, 16);
		else
			memcpy(key, sin6->sin6_addr.s6_addr, 8);
		return 0;
	}
	return -1;
}

int
client_key_format(const struct sockaddr *sa, char *dst, size_t dstsz)
{
	uint8_t key[CLIENT_KEY_LEN];
	char text[INET6_ADDRSTRLEN];

	if (client_key(sa, key) == -1)
		return -1;
	if (key[10] == 0xff && key[11] == 0xff && key[0] == 0) {
		if (inet_ntop(AF_INET, key + 12, text, sizeof text) == NULL)
			return -1;
		return (size_t)snprintf(dst, dstsz, "%s", text) < dstsz ? 0 : -1;
	}
	if (inet_ntop(AF_INET6, key, text, sizeof text) == NULL)
		return -1;
	return (size_t)snprintf(dst, dstsz, "%s/64", text) < dstsz ? 0 : -1;
}
