/*
 * conf.h - the parsed configuration (postern.conf(5)).
 * Parsed once, in the master; workers receive this structure by fork and
 * never open the file themselves.  Field names match the directives
 * ("message-size-limit" -> message_size_limit) so grep finds both.
 */
#ifndef POSTERN_CONF_H
#define POSTERN_CONF_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/netaddr.h"
#include "listen/listener.h"

#define CONF_DEFAULT_PATH	"/etc/postern/postern.conf"
#define CONF_NAME_MAX		256

/* relay [for DOMAIN] direct [tls verify]
 * relay [for DOMAIN] via HOST[:PORT|SERVICE] [tls implicit] [tls verify]
 *       [auth FILE] */
struct relay_rule {
	char		 domain[CONF_NAME_MAX];	/* "" = every other domain */
	int		 direct;		/* MX delivery */
	char		 host[CONF_NAME_MAX];	/* smarthost, for via */
	int		 bracketed;		/* host written as [ADDRESS] */
	uint16_t	 port;
	int		 tls_implicit;		/* TLS from the first byte */
	int		 tls_verify;		/* refuse an unverified peer */
	char		 tls_ca[PATH_MAX];	/* trust only these CAs; "" = system's */
	char		 auth_file[PATH_MAX];	/* "LOGIN PASSWORD", mode 0600 */
	int		 line;
};

struct conf {
	char		 path[PATH_MAX];
	char		 hostname[CONF_NAME_MAX];
	char		**domains;		/* lower case, no trailing dot */
	size_t		 ndomains;
	char		 spool[PATH_MAX];
	char		 mailboxes[PATH_MAX];
	char		 users[PATH_MAX];	/* a file or postgresql://... */
	uint64_t	 users_cache;		/* seconds, for a users database */
	char		 state[CONF_NAME_MAX];	/* "" = local, or redis://... */
	char		 aliases[PATH_MAX];
	char		 access[PATH_MAX];	/* access map (docs/access.md); "" = none */
	struct netprefix *mynetworks;
	size_t		 nmynetworks;
	struct listen_conf *listeners;
	size_t		 nlisteners;

	char		 tls_cert[PATH_MAX];
	char		 tls_key[PATH_MAX];
	uint64_t	 pop_before_smtp;	/* seconds; 0 = off */
	unsigned	 pop_before_smtp_ipv6_prefix; /* bits an IPv6 grant covers */
	int		 apop;			/* POP3 APOP (RFC 1939 section 7) */
	struct relay_rule *relay_rules;		/* the default one first */
	size_t		 nrelay_rules;
	uint64_t	 remote_connect_timeout;	/* seconds */
	uint64_t	 remote_timeout;	/* 0: RFC 5321 4.5.3.2 per command */
	unsigned	 remote_connections;	/* in total */
	unsigned	 remote_connections_per_domain;
	char		 resolver[CONF_NAME_MAX];
	char		 probe_host[CONF_NAME_MAX];	/* postern probe's default */

	unsigned	 auth_mechanisms;	/* bit per enum sasl_mech_id */
	unsigned	 auth_max_failures;	/* per client address, then block */
	uint64_t	 auth_block_time;	/* seconds */

	char		 pam_service[64];	/* for "pam" users (userdb_pam.h) */
	char		 user[64];		/* unprivileged run-as user */
	unsigned	 workers;		/* event-loop processes */
	int		 log_syslog;
	uint64_t	 message_size_limit;	/* bytes */
	unsigned	 max_recipients;
	uint64_t	 smtp_timeout;		/* seconds idle per command */
	unsigned	 max_errors;		/* then 421 and close */
	unsigned	 max_sessions;		/* per worker process */
	/* Abuse limits (src/policy/connlimit.h, ratelimit.h); 0 = off.
	 * Clients in mynetworks are exempt from the per-address ones. */
	unsigned	 max_connections_per_ip;	/* at once, all workers */
	unsigned	 user_rate_limit_messages;	/* per user per hour */
	unsigned	 user_rate_limit_recipients;	/* per user per hour */
	unsigned	 ip_rate_limit;		/* messages per address per hour,
						 * unauthenticated sessions */

	/* Queue manager and local delivery (src/queue/README). */
	char		 admin[65];		/* local user for the default aliases
						 * (userdb_name_valid: 64) */
	int		 queue_manager;		/* 0: spool only, deliver nothing */
	unsigned	 queue_managers;	/* processes; 0: one per core, 4 to
						 * 16 (qmgr_count) */
	unsigned	 queue_passes;		/* per queue manager, at once */
	uint64_t	 retry_min;		/* seconds; first back-off */
	uint64_t	 retry_max;		/* seconds; back-off ceiling */
	uint64_t	 queue_lifetime;	/* seconds; then bounce */
	uint64_t	 delay_warning;		/* seconds; 0 = never warn */
	unsigned	 hop_limit;		/* Received: headers; more = loop */

	/* Operations and the sendmail command (postern(8)). */
	char		 pid_file[PATH_MAX];	/* "" = none */
	/* submit via HOST[:PORT|SERVICE] [tls implicit] [tls verify]
	 *        [auth FILE]: the sendmail command submits over SMTP */
	char		 submit_host[CONF_NAME_MAX];	/* "" = maildrop */
	uint16_t	 submit_port;
	int		 submit_tls_implicit;
	int		 submit_tls_verify;
	char		 submit_tls_ca[PATH_MAX];	/* "" = the system's store */
	char		 submit_auth[PATH_MAX];	/* "LOGIN PASSWORD", mode 0600 */
};

/* Parse a file; on error, messages "FILE:LINE: what" go to errf and the
 * return value is the number of errors (0 = success). */
int	conf_load(const char *path, struct conf *, FILE *errf);
/* The same from a string, naming it `name` in messages (tests, fuzzing). */
int	conf_parse_string(const char *name, const char *text, struct conf *,
	    FILE *errf);
void	conf_free(struct conf *);
/* 1 if the directive table is in the order bsearch needs (tests). */
int	conf_keywords_sorted(void);
void	conf_print(const struct conf *, FILE *);
int	conf_is_local_domain(const struct conf *, const char *domain);

#endif
