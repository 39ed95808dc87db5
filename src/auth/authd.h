/*
 * authd.h - the auth process (see authd.c) and its client in the
 * workers (auth_client.c).
 */
#ifndef POSTERN_AUTHD_H
#define POSTERN_AUTHD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/conf.h"
#include "proc/msg.h"

/* Master: create the listening socket <spool>/private/auth, reachable
 * by root and the workers' group only. */
int	authd_listen(const struct conf *, uid_t, gid_t);
int	authd_socket_path(const struct conf *, char *dst, size_t dstsz);
/* Child: serve until SIGTERM. */
void	authd_main(const struct conf *, int listen_fd) __attribute__((noreturn));

/* Worker side.  The callback gets either a challenge (is_result == 0,
 * data/len) or the result (is_result == 1, result, user). */
struct event_base;
typedef void (*auth_client_cb)(void *arg, int is_result,
	    enum msg_auth_result result, const uint8_t *data, size_t len,
	    const char *user);

void	 auth_client_init(struct event_base *, const struct conf *);
/* session is the session's id, for the log; peer the client's address,
 * local the one it connected to (DIGEST-MD5's digest-uri may name it).
 * Returns the request id, or 0 if the auth process cannot be reached
 * (the caller answers with a temporary failure itself). */
uint64_t auth_client_start(const char *mech, uint64_t session,
	    const char *peer, const char *local, uint32_t flags,
	    const uint8_t *ir, size_t irlen, int has_ir, auth_client_cb, void *arg);
void	 auth_client_step(uint64_t reqid, const uint8_t *data, size_t len);
/* POP3 APOP: one request, answered by a result only (flags as for
 * auth_client_start).  0 if the auth process cannot be reached. */
uint64_t auth_client_apop(const char *user, const char *peer, uint32_t flags,
	    const char *timestamp, const char *digest, auth_client_cb, void *arg);
/* Forget an exchange: its callback will not run. */
void	 auth_client_cancel(uint64_t reqid);
void	 auth_client_shutdown(void);
/* "ok", "fail", ... for the one log line per AUTH. */
const char *auth_result_name(enum msg_auth_result);
/* A SASL challenge on the wire: PREFIX SP base64 CRLF ("334" for SMTP,
 * "+" for POP3: RFC 4954 section 4, RFC 5034 section 4). */
struct evbuffer;
void	 auth_challenge_write(struct evbuffer *, const char *prefix,
	    const uint8_t *data, size_t len);

#endif
