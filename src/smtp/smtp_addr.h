/*
 * smtp_addr.h - RFC 5321 section 4.1.2 paths and MAIL/RCPT parameters.
 * Pure parsing: no policy.  Source routes are accepted and dropped
 * (RFC 5321 section 4.1.1.3 and appendix C), so "@a:u@b" is u@b.
 */
#ifndef POSTERN_SMTP_ADDR_H
#define POSTERN_SMTP_ADDR_H

#include <stddef.h>

#define SMTP_LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define SMTP_DOMAIN_MAX	255	/* RFC 5321 4.5.3.1.2 */
#define SMTP_PATH_MAX	256	/* RFC 5321 4.5.3.1.3 */
#define SMTP_PARAMS_MAX	8

struct mailaddr {
	char	local[SMTP_LOCAL_MAX + 1];	/* as sent, quotes included */
	char	domain[SMTP_DOMAIN_MAX + 1];	/* "" only for <> and <postmaster> */
	int	quoted;				/* local part was a Quoted-string */
	int	literal;			/* domain is [address literal] */
};

struct smtp_param {
	char	*key;				/* upper-cased in place */
	char	*value;				/* NULL for a bare keyword */
};

enum addr_kind { ADDR_MAIL, ADDR_RCPT };

/* The address of a literal, "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC
 * 5321 4.1.3), as text without brackets or tag into host: 0, or -1 if
 * lit (len octets) is not a valid one. */
int	smtp_addr_literal_host(const char *lit, size_t len, char *host,
	    size_t hostsz);

/*
 * Parse "FROM:<path> params" (ADDR_MAIL) or "TO:<path> params"
 * (ADDR_RCPT).  arg is modified (parameters are split in place).
 * Returns 0, or -1 on a syntax error.  <> is allowed only for MAIL and
 * <postmaster> (any case, no domain) only for RCPT.
 */
int	smtp_addr_parse(char *arg, enum addr_kind, struct mailaddr *,
	    struct smtp_param *params, size_t *nparams);
/* Path syntax only: the text between < and >. */
int	smtp_addr_parse_path(const char *s, size_t len, struct mailaddr *);
int	smtp_addr_is_null(const struct mailaddr *);
/* "local@domain", "" for the null path; dst should be SMTP_PATH_MAX+1. */
void	smtp_addr_format(const struct mailaddr *, char *dst, size_t dstsz);
/* The local part without quoting when it is a plain dot-string once
 * unquoted ("\"hoge\"" -> "hoge"); -1 when it cannot be (it holds
 * specials such as @ % ! or spaces). */
int	smtp_addr_simple_local(const struct mailaddr *, char *dst, size_t dstsz);
int	smtp_domain_valid(const char *s, size_t len);

#endif
