/*
 * cli_access.c - `postern access [-c FILE] check ADDRESS|helo:NAME|
 * from:SENDER|to:RECIPIENT...`: which rule of the access map matches
 * (FILE:LINE), the keys tried on the way, and what the server would do
 * on each listener role.  The answers come from the lookup and decision
 * code the workers run (access.c, access_check.c).
 */
#include "admin/cli.h"
#include "conf/conf.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "policy/access.h"
#include "policy/access_check.h"
#include "smtp/reply.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const enum listen_role roles[] = {
	ROLE_SMTP, ROLE_SUBMISSION, ROLE_SUBMISSIONS,
};

static int
role_configured(const struct conf *c, enum listen_role role)
{
	for (size_t i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].role == role)
			return 1;
	return 0;
}

static const char *
effect(enum access_stage st, enum listen_role role,
    const struct access_verdict *v, char *buf, size_t bufsz)
{
	char line[512];

	switch (v->action) {
	case ACCESS_NONE:
		return "no rule: the usual checks apply";
	case ACCESS_OK:
		if (v->rule->action == ACCESS_RELAY)
			return st == ACCESS_AT_RCPT ? "RELAY does not count "
			    "here (AUTH is required); the usual checks apply" :
			    "RELAY does not replace AUTH here; counts as OK: "
			    "helo:, from: and to: rules are skipped";
		return st == ACCESS_AT_CONNECT ? "accepted; helo:, from: and "
		    "to: rules are skipped (a to: RELAY still counts); relaying "
		    "still needs AUTH or mynetworks" : "accepted (no rule "
		    "applies beyond this one); the usual checks still apply";
	case ACCESS_RELAY:
		return st == ACCESS_AT_CONNECT ? "may relay without AUTH, like "
		    "mynetworks; helo:, from: and to: rules are skipped" :
		    "anyone may relay to it";
	case ACCESS_REJECT:
	case ACCESS_TEMPFAIL:
		reply_format(line, sizeof line, v->reply, v->text);
		line[strcspn(line, "\r")] = '\0';
		snprintf(buf, bufsz, "%s%s", line, st != ACCESS_AT_CONNECT ?
		    (st == ACCESS_AT_RCPT ? " to that RCPT" : " to MAIL") :
		    v->action == ACCESS_REJECT ? " as the greeting, then 503 to "
		    "every command but QUIT" : " as the greeting; the "
		    "connection closes");
		return buf;
	case ACCESS_DISCARD:
		return st == ACCESS_AT_CONNECT ? "every message is answered "
		    "250 and dropped (logged)" : "the message is answered 250 "
		    "and dropped (logged)";
	case ACCESS_HOLD:
		return st == ACCESS_AT_CONNECT ? "every message is accepted "
		    "into hold/ (postern queue release ID delivers it)" :
		    "the message is accepted into hold/ (postern queue release "
		    "ID delivers it)";
	}
	(void)role;
	return "?";
}

/* The keys a name lookup tries, most specific first. */
static void
print_tried(const char *tag, const char *v)
{
	const char *at = strrchr(v, '@'), *d = at ? at + 1 : v;

	printf("  keys tried, most specific first: %s%s", tag, v);
	if (at && at[1])
		printf(", %s%s", tag, d);
	if (d[0] != '[' && (at == NULL || at[1]))
		for (const char *dot = strchr(d, '.'); dot;
		    dot = strchr(dot + 1, '.'))
			printf(", %s%s", tag, dot);
	printf("\n");
}

static int
check_one(const struct conf *c, const struct access_map *m, const char *arg)
{
	const struct access_rule *r;
	enum access_stage st;
	struct sockaddr_storage ss;
	char where[PATH_MAX + 16], buf[600], v[600];

	memset(&ss, 0, sizeof ss);
	if (strncasecmp(arg, "from:", 5) == 0 || strncasecmp(arg, "to:", 3) == 0) {
		int from = tolower((unsigned char)arg[0]) == 'f';

		(void)strlcpy(v, arg + (from ? 5 : 3), sizeof v);
		if (v[0] == '<' && strlen(v) >= 2 && v[strlen(v) - 1] == '>') {
			v[strlen(v) - 1] = '\0';
			memmove(v, v + 1, strlen(v));
		}
		str_lower(v);
		st = from ? ACCESS_AT_MAIL : ACCESS_AT_RCPT;
		r = access_lookup_mail(m, from ? ACCESS_K_FROM : ACCESS_K_TO, v);
		printf("%s%s\n", from ? "from:" : "to:", v);
		if (v[0])
			print_tried(from ? "from:" : "to:", v);
	} else if (strncasecmp(arg, "helo:", 5) == 0) {
		(void)strlcpy(v, arg + 5, sizeof v);
		str_lower(v);
		st = ACCESS_AT_HELO;
		r = access_lookup_helo(m, v);
		printf("helo:%s (checked at MAIL)\n", v);
		print_tried("helo:", v);
	} else {
		struct netprefix np;

		if (netprefix_parse(arg, &np) == -1 || strchr(arg, '/') != NULL) {
			fprintf(stderr, "postern: '%s' is not an address, "
			    "helo:NAME, from:SENDER or to:RECIPIENT\n", arg);
			return -1;
		}
		if (np.family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;

			in->sin_family = AF_INET;
			memcpy(&in->sin_addr, np.addr, 4);
		} else {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			in6->sin6_family = AF_INET6;
			memcpy(&in6->sin6_addr, np.addr, 16);
		}
		st = ACCESS_AT_CONNECT;
		r = access_lookup_addr(m, (const struct sockaddr *)&ss);
		printf("%s (client address, checked at connect; the longest "
		    "matching prefix wins)\n", arg);
	}
	if (r) {
		access_rule_where(m, r, where, sizeof where);
		printf("  rule %s: %s %s%s%s\n", where, r->key,
		    access_action_name(r->action), r->text ? " " : "",
		    r->text ? r->text : "");
	} else
		printf("  no rule matches\n");
	for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
		struct access_verdict vd;

		access_decide(r, st, roles[i], &vd);
		printf("  %-12s %s%s\n", listen_role_name(roles[i]),
		    effect(st, roles[i], &vd, buf, sizeof buf),
		    role_configured(c, roles[i]) ? "" : " [no such listener]");
	}
	return 0;
}

int
cli_access(int argc, char **argv, const char *conf_path)
{
	struct conf c;
	struct access_map *m;
	int nerr = 0, rc = 0;

	if (argc < 2 || strcmp(argv[0], "check") != 0) {
		fprintf(stderr, "usage: postern access [-c FILE] check "
		    "ADDRESS|helo:NAME|from:SENDER|to:RECIPIENT...\n");
		return EX_USAGE;
	}
	if ((nerr = conf_load(conf_path, &c, stderr)) != 0) {
		fprintf(stderr, "%s: %d error%s\n", conf_path, nerr,
		    nerr == 1 ? "" : "s");
		conf_free(&c);
		return EX_CONFIG;
	}
	if (!c.access[0]) {
		fprintf(stderr, "postern: %s has no 'access' directive: no access "
		    "rules apply\n", c.path);
		conf_free(&c);
		return EX_CONFIG;
	}
	if ((m = access_map_load(c.access, stderr, &nerr)) == NULL) {
		fprintf(stderr, "%s: %d error%s\n", c.access, nerr,
		    nerr == 1 ? "" : "s");
		conf_free(&c);
		return EX_CONFIG;
	}
	printf("access map %s (%zu rule%s)\n", c.access, access_map_size(m),
	    access_map_size(m) == 1 ? "" : "s");
	for (int i = 1; i < argc; i++)
		if (check_one(&c, m, argv[i]) == -1)
			rc = EX_USAGE;
	access_map_unref(m);
	conf_free(&c);
	return rc;
}
