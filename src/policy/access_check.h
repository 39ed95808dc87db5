/*
 * access_check.h - what an access rule does at each point of an SMTP
 * session on each listener role (docs/access.md).  The session and
 * `postern access check` both ask here, so the explanation the
 * administrator reads is the behaviour the server has.
 */
#ifndef POSTERN_ACCESS_CHECK_H
#define POSTERN_ACCESS_CHECK_H

#include <stddef.h>

#include "listen/listener.h"
#include "policy/access.h"
#include "smtp/reply.h"
#include "smtp/smtp_addr.h"

enum access_stage {
	ACCESS_AT_CONNECT,	/* client address, before the greeting */
	ACCESS_AT_HELO,		/* the HELO/EHLO name, checked at MAIL */
	ACCESS_AT_MAIL,		/* the envelope sender */
	ACCESS_AT_RCPT,		/* each recipient */
};

struct access_verdict {
	const struct access_rule *rule;	/* NULL: no rule applies */
	enum access_action action;	/* its effect here: RELAY is OK off
					 * the smtp role (never instead of
					 * AUTH) */
	enum smtp_reply_id reply;	/* REJECT, TEMPFAIL: the reply */
	const char	*text;		/* the reply's argument */
};

void	access_decide(const struct access_rule *, enum access_stage,
	    enum listen_role, struct access_verdict *);
/* The lookup form of an envelope address: "local@domain" in lower case,
 * the local part unquoted where it can be; "" for <>. */
void	access_mail_key(const struct mailaddr *, char *dst, size_t dstsz);
const char *access_stage_name(enum access_stage);

#endif
