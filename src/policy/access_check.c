/*
 * access_check.c - the effect of an access rule at a stage of the SMTP
 * session on a listener role (see access_check.h, docs/access.md).
 * Runs in the workers and in `postern access`.
 */
#include "policy/access_check.h"
#include "lib/strutil.h"

#include <stdio.h>

/* Replies by stage: [stage][0] REJECT, [stage][1] TEMPFAIL.  A client
 * refused for now hears 421 and the connection closes (RFC 5321 section
 * 3.8); refused for good it hears 554 and only QUIT works (section 3.1). */
static const enum smtp_reply_id stage_replies[][2] = {
	[ACCESS_AT_CONNECT]	= { R_ACCESS_CLIENT_REJECT, R_ACCESS_CLIENT_TEMPFAIL },
	[ACCESS_AT_HELO]	= { R_ACCESS_HELO_REJECT, R_ACCESS_HELO_TEMPFAIL },
	[ACCESS_AT_MAIL]	= { R_ACCESS_SENDER_REJECT, R_ACCESS_SENDER_TEMPFAIL },
	[ACCESS_AT_RCPT]	= { R_ACCESS_RCPT_REJECT, R_ACCESS_RCPT_TEMPFAIL },
};

const char *
access_stage_name(enum access_stage st)
{
	static const char *names[] = { "connect", "helo", "mail", "rcpt" };

	return names[st];
}

void
access_decide(const struct access_rule *r, enum access_stage st,
    enum listen_role role, struct access_verdict *v)
{
	v->rule = r;
	v->action = r ? r->action : ACCESS_NONE;
	v->reply = R_ACTION_OK;
	v->text = NULL;
	switch (v->action) {
	case ACCESS_RELAY:
		/* On submission and submissions only AUTH opens the relay:
		 * the rule still vouches for the client (as OK). */
		if (role != ROLE_SMTP)
			v->action = ACCESS_OK;
		break;
	case ACCESS_REJECT:
		v->reply = stage_replies[st][0];
		v->text = r->text ? r->text : "Access denied";
		break;
	case ACCESS_TEMPFAIL:
		v->reply = stage_replies[st][1];
		v->text = r->text ? r->text : "Try again later";
		break;
	default:
		break;
	}
}

void
access_mail_key(const struct mailaddr *a, char *dst, size_t dstsz)
{
	char local[SMTP_LOCAL_MAX + 1];

	if (smtp_addr_is_null(a)) {
		if (dstsz)
			dst[0] = '\0';
		return;
	}
	if (smtp_addr_simple_local(a, local, sizeof local) == -1)
		(void)strlcpy(local, a->local, sizeof local);
	snprintf(dst, dstsz, "%s%s%s", local, a->domain[0] ? "@" : "",
	    a->domain);
	str_lower(dst);
}
