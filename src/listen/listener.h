/*
 * listener.h - listening roles (smtp, submission, submissions, pop3,
 * pop3s), their default policies, and binding them.  A listener's role
 * sets its defaults; options after it in the configuration override them.
 */
#ifndef POSTERN_LISTENER_H
#define POSTERN_LISTENER_H

#include <stdint.h>
#include <stdio.h>

enum listen_role {
	ROLE_SMTP,
	ROLE_SUBMISSION,
	ROLE_SUBMISSIONS,
	ROLE_POP3,
	ROLE_POP3S,
};

enum auth_policy { AUTH_OFF, AUTH_OPTIONAL, AUTH_REQUIRED };
enum tls_mode { TLS_NONE, TLS_STARTTLS, TLS_IMPLICIT };
/* Where mechanisms that reveal the password (PLAIN, LOGIN) may be used
 * without TLS. */
enum cleartext_auth { CLEARTEXT_NEVER, CLEARTEXT_LOOPBACK };
/* Must the sender belong to the authenticated user? */
enum sender_check { SENDER_CHECK_OFF, SENDER_CHECK_ENVELOPE,
    SENDER_CHECK_HEADER };

struct listen_conf {
	enum listen_role role;
	char		 addr[64];	/* "" = every address, v4 and v6 */
	uint16_t	 port;
	enum auth_policy auth;
	enum tls_mode	 tls;
	enum cleartext_auth cleartext_auth;
	enum sender_check sender_check;
	int		 line;		/* where it was configured */
};

struct listener {
	const struct listen_conf *conf;
	int		 fd;
	char		 name[96];	/* "smtp 127.0.0.1:2525" for logs */
};

const char	*listen_role_name(enum listen_role);
int		 listen_role_lookup(const char *, enum listen_role *);
/* Fill a listen_conf with the role's defaults (port from /etc/services). */
void		 listen_conf_defaults(struct listen_conf *, enum listen_role);
/* sender-check when the listen line does not say: from its auth. */
enum sender_check listen_sender_check_default(const struct listen_conf *);
/* A port number or a service name: /etc/services first, then a built-in
 * table, as Postfix does.  Returns 0 and sets *port, or -1. */
int		 listen_service_port(const char *, uint16_t *);
int		 listen_is_smtp(enum listen_role);

/* Bind every configured listener; returns the number bound, or -1 with
 * a message on errf. */
int		 listener_bind_all(const struct listen_conf *, size_t,
		    struct listener **out, FILE *errf);

#endif
