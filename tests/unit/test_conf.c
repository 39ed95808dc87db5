/*
 * test_conf.c - postern.conf(5) parsing (src/conf/conf.h): a complete
 * valid file, then one row per mistake with the exact "NAME:LINE: "
 * message it must produce.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "lib/netaddr.h"
#include "listen/listener.h"

/* Parse text, capturing what goes to errf. */
static int
parse(const char *text, struct conf *c, char **errs)
{
	size_t errlen;
	FILE *f = open_memstream(errs, &errlen);
	int n;

	assert_non_null(f);
	n = conf_parse_string("t.conf", text, c, f);
	fclose(f);
	return n;
}

static const char full_conf[] =
	"# postern test configuration\n"
	"hostname mx.example.org\n"
	"domains example.org Example.NET \"quoted.example\"\n"
	"domains EXAMPLE.org    # again, differently cased: not doubled\n"
	"spool /var/spool/postern-test\n"
	"mailboxes /var/mail/test\n"
	"users /etc/postern/users\n"
	"aliases /etc/postern/aliases\n"
	"\n"
	"mynetworks 127.0.0.0/8 192.0.2.0/24 ::1 2001:db8::/32\n"
	"mynetworks [2001:db8:1::]/48\n"
	"\t# indented comment\n"
	"listen smtp\n"
	"listen smtp on 127.0.0.1 port 2525\n"
	"listen submission on ::1 port submission auth optional tls off\n"
	"listen submissions port 4650 auth required tls implicit\n"
	"listen pop3 on [::1] port 1100 tls starttls\n"
	"listen pop3s on 192.0.2.1 port pop3s\n"
	"message-size-limit 10M\n"
	"smtp-timeout 5m\n"
	"pop-before-smtp 15m\n"
	"tls cert /etc/ssl/postern.crt key /etc/ssl/private/postern.key\n"
	"relay via smtp.example.net:587 tls implicit\n"
	"resolver 127.0.0.53\r\n"
	"max-recipients 200\n"
	"max-errors 5\n"
	"max-sessions 50\n"
	"user _postern\n"
	"workers 4\n"
	"log syslog";			/* no final newline */

static void
test_full_config(void **state)
{
	static const struct {
		enum listen_role role;
		const char *addr;
		unsigned port;
		enum auth_policy auth;
		enum tls_mode tls;
		int line;
	} want_listen[] = {
		{ ROLE_SMTP, "", 25, AUTH_OPTIONAL, TLS_STARTTLS, 13 },
		{ ROLE_SMTP, "127.0.0.1", 2525, AUTH_OPTIONAL, TLS_STARTTLS, 14 },
		{ ROLE_SUBMISSION, "::1", 587, AUTH_OPTIONAL, TLS_NONE, 15 },
		{ ROLE_SUBMISSIONS, "", 4650, AUTH_REQUIRED, TLS_IMPLICIT, 16 },
		{ ROLE_POP3, "::1", 1100, AUTH_REQUIRED, TLS_STARTTLS, 17 },
		{ ROLE_POP3S, "192.0.2.1", 995, AUTH_REQUIRED, TLS_IMPLICIT, 18 },
	};
	static const struct { int family; const char *addr; unsigned bits; }
	    want_nets[] = {
		{ AF_INET, "127.0.0.0", 8 }, { AF_INET, "192.0.2.0", 24 },
		{ AF_INET6, "::1", 128 }, { AF_INET6, "2001:db8::", 32 },
		{ AF_INET6, "2001:db8:1::", 48 },
	};
	static const char *want_domains[] = { "example.org", "example.net",
	    "quoted.example" };
	struct conf c;
	char *errs = NULL;
	int n;

	(void)state;
	n = parse(full_conf, &c, &errs);
	if (n != 0)
		fail_msg("got %d errors '%s', want none", n, errs);
	free(errs);

	assert_string_equal(c.hostname, "mx.example.org");
	assert_int_equal(c.ndomains, 3);
	for (size_t i = 0; i < 3; i++)
		if (strcmp(c.domains[i], want_domains[i]) != 0)
			fail_msg("domain %zu: got '%s', want '%s'", i,
			    c.domains[i], want_domains[i]);
	assert_string_equal(c.spool, "/var/spool/postern-test");
	assert_string_equal(c.mailboxes, "/var/mail/test");
	assert_string_equal(c.users, "/etc/postern/users");
	assert_string_equal(c.aliases, "/etc/postern/aliases");

	assert_int_equal(c.nmynetworks, 5);
	for (size_t i = 0; i < 5; i++) {
		char got[64];

		inet_ntop(c.mynetworks[i].family, c.mynetworks[i].addr, got,
		    sizeof got);
		if (c.mynetworks[i].family != want_nets[i].family ||
		    strcmp(got, want_nets[i].addr) != 0 ||
		    c.mynetworks[i].bits != want_nets[i].bits)
			fail_msg("mynetworks %zu: got '%s/%u', want '%s/%u'", i,
			    got, c.mynetworks[i].bits, want_nets[i].addr,
			    want_nets[i].bits);
	}

	assert_int_equal(c.nlisteners, 6);
	for (size_t i = 0; i < 6; i++) {
		const struct listen_conf *l = &c.listeners[i];

		if (l->role != want_listen[i].role ||
		    strcmp(l->addr, want_listen[i].addr) != 0 ||
		    l->port != want_listen[i].port ||
		    l->auth != want_listen[i].auth ||
		    l->tls != want_listen[i].tls || l->line != want_listen[i].line)
			fail_msg("listener %zu: got %s '%s' %u auth %d tls %d line "
			    "%d, want %s '%s' %u auth %d tls %d line %d", i,
			    listen_role_name(l->role), l->addr, l->port, l->auth,
			    l->tls, l->line, listen_role_name(want_listen[i].role),
			    want_listen[i].addr, want_listen[i].port,
			    want_listen[i].auth, want_listen[i].tls,
			    want_listen[i].line);
	}

	assert_int_equal(c.message_size_limit, 10ULL * 1024 * 1024);
	assert_int_equal(c.smtp_timeout, 300);
	assert_int_equal(c.pop_before_smtp, 900);
	assert_string_equal(c.tls_cert, "/etc/ssl/postern.crt");
	assert_string_equal(c.tls_key, "/etc/ssl/private/postern.key");
	assert_int_equal(c.nrelay_rules, 1);
	assert_string_equal(c.relay_rules[0].host, "smtp.example.net");
	assert_int_equal(c.relay_rules[0].port, 587);
	assert_int_equal(c.relay_rules[0].tls_implicit, 1);
	assert_int_equal(c.relay_rules[0].direct, 0);
	assert_string_equal(c.relay_rules[0].domain, "");
	assert_string_equal(c.resolver, "127.0.0.53");
	assert_int_equal(c.max_recipients, 200);
	assert_int_equal(c.max_errors, 5);
	assert_int_equal(c.max_sessions, 50);
	assert_string_equal(c.user, "_postern");
	assert_int_equal(c.workers, 4);
	assert_int_equal(c.log_syslog, 1);
	conf_free(&c);
}

/* A minimal file gets the documented defaults. */
static void
test_defaults(void **state)
{
	struct conf c;
	char *errs = NULL;

	(void)state;
	assert_int_equal(parse("domains example.org\nlisten smtp\n", &c,
	    &errs), 0);
	free(errs);
	assert_string_equal(c.spool, "/var/spool/postern");
	assert_int_equal(c.nrelay_rules, 0);	/* no rule: direct */
	assert_int_equal(c.message_size_limit, 25ULL * 1024 * 1024);
	assert_int_equal(c.smtp_timeout, 300);
	assert_int_equal(c.pop_before_smtp, 0);
	assert_true(c.max_recipients >= 100);
	assert_int_equal(c.users[0], '\0');
	assert_int_equal(c.tls_cert[0], '\0');
	assert_int_equal(c.nlisteners, 1);
	assert_int_equal(c.listeners[0].port, 25);
	conf_free(&c);
}

/* Lines that set one value, and what it must become. */
static void
test_values(void **state)
{
	static const struct {
		const char *line;
		const char *field;
		uint64_t want;
	} cases[] = {
		{ "message-size-limit 1k", "size", 1024 },
		{ "message-size-limit 1024", "size", 1024 },
		{ "message-size-limit 52428800", "size", 52428800 },
		{ "message-size-limit 1G", "size", 1ULL << 30 },
		{ "message-size-limit 1024G", "size", 1ULL << 40 },
		{ "smtp-timeout 1", "timeout", 1 },
		{ "smtp-timeout 90s", "timeout", 90 },
		{ "smtp-timeout 1h", "timeout", 3600 },
		{ "pop-before-smtp 0", "pbs", 0 },
		{ "pop-before-smtp 2h", "pbs", 7200 },
		{ "users-cache 30s", "users-cache", 30 },
		{ "users /etc/postern/users", "users-cache", 5 },
		{ "users postgresql://db.internal/postern", "users-pg", 1 },
		{ "state redis://127.0.0.1:6379/2", "state", 1 },
		{ "state local", "state", 0 },
		{ "relay direct", "relay-direct", 1 },
		{ "log stderr", "syslog", 0 },
		{ "log syslog", "syslog", 1 },
		{ "hostname \"mx.example.org\"", "hostname", 1 },
		{ "hostname mx.example.org # trailing comment", "hostname", 1 },
		{ "hostname mx.example.org\r", "hostname", 1 },
		{ "  hostname mx.example.org", "hostname", 1 },
		{ "log stderr", "queue-passes", 8 },
		{ "queue-passes 1", "queue-passes", 1 },
		{ "queue-passes 64", "queue-passes", 64 },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[256], *errs = NULL;
		struct conf c;
		uint64_t got = 0;
		int n;

		snprintf(text, sizeof text, "domains example.org\nlisten smtp\n"
		    "%s\n", cases[i].line);
		n = parse(text, &c, &errs);
		if (strcmp(cases[i].field, "size") == 0)
			got = c.message_size_limit;
		else if (strcmp(cases[i].field, "timeout") == 0)
			got = c.smtp_timeout;
		else if (strcmp(cases[i].field, "pbs") == 0)
			got = c.pop_before_smtp;
		else if (strcmp(cases[i].field, "users-cache") == 0)
			got = c.users_cache;
		else if (strcmp(cases[i].field, "users-pg") == 0)
			got = strcmp(c.users,
			    "postgresql://db.internal/postern") == 0;
		else if (strcmp(cases[i].field, "state") == 0)
			got = c.state[0] != '\0';
		else if (strcmp(cases[i].field, "relay-direct") == 0)
			got = c.nrelay_rules == 1 && c.relay_rules[0].direct;
		else if (strcmp(cases[i].field, "syslog") == 0)
			got = (uint64_t)c.log_syslog;
		else if (strcmp(cases[i].field, "hostname") == 0)
			got = strcmp(c.hostname, "mx.example.org") == 0;
		else if (strcmp(cases[i].field, "queue-passes") == 0)
			got = c.queue_passes;
		if (n != 0 || got != cases[i].want) {
			print_error("'%s': got %d errors '%s', %s %llu, want %llu\n",
			    cases[i].line, n, errs, cases[i].field,
			    (unsigned long long)got,
			    (unsigned long long)cases[i].want);
			failed++;
		}
		free(errs);
		conf_free(&c);
	}
	if (failed)
		fail_msg("%d value case(s) failed", failed);
}

#define OKHEAD	"domains example.org\nlisten smtp\n"	/* lines 1 and 2 */

struct err_case {
	const char	*text;
	int		 nerr;
	const char	*want;		/* how the first message line starts */
};

static const struct err_case err_cases[] = {
	{ OKHEAD "frobnicate yes\n", 1, "t.conf:3: unknown directive 'frobnicate'" },
	{ OKHEAD "\n\n# c\nHostname mx.example.org\n", 1,
	    "t.conf:6: unknown directive 'Hostname'" },
	{ OKHEAD "hostname a.example b.example\n", 1,
	    "t.conf:3: hostname: expected 1 argument, got 2" },
	{ OKHEAD "spool\n", 1, "t.conf:3: spool: expected 1 argument, got 0" },
	{ OKHEAD "tls cert /a key\n", 1,
	    "t.conf:3: tls: expected 4 arguments, got 3" },
	{ OKHEAD "domains\n", 1,
	    "t.conf:3: domains: expected 1 or more arguments, got 0" },
	{ OKHEAD "submit via h tls implicit tls verify tls ca /c auth /a x\n",
	    1, "t.conf:3: submit: expected at most 11 arguments, got 12" },
	{ OKHEAD "tls cert /a chain /b\n", 1,
	    "t.conf:3: tls: expected 'tls cert FILE key FILE'" },
	{ OKHEAD "message-size-limit 10X\n", 1,
	    "t.conf:3: message-size-limit: '10X' is not a size from 1k to "
	    "1024G (like 10M)" },
	{ OKHEAD "message-size-limit 10MB\n", 1,
	    "t.conf:3: message-size-limit: '10MB' is not a size from 1k to "
	    "1024G (like 10M)" },
	{ OKHEAD "message-size-limit 1023\n", 1,
	    "t.conf:3: message-size-limit: '1023' is not a size from 1k to "
	    "1024G (like 10M)" },
	{ OKHEAD "message-size-limit 1025G\n", 1,
	    "t.conf:3: message-size-limit: '1025G' is not a size from 1k to "
	    "1024G (like 10M)" },
	{ OKHEAD "message-size-limit -1\n", 1,
	    "t.conf:3: message-size-limit: '-1' is not a size from 1k to "
	    "1024G (like 10M)" },
	{ OKHEAD "smtp-timeout 5x\n", 1,
	    "t.conf:3: smtp-timeout: '5x' is not a duration from 1s to 1h" },
	{ OKHEAD "smtp-timeout 0\n", 1,
	    "t.conf:3: smtp-timeout: '0' is not a duration from 1s to 1h" },
	{ OKHEAD "smtp-timeout 61m\n", 1,
	    "t.conf:3: smtp-timeout: '61m' is not a duration from 1s to 1h" },
	{ OKHEAD "pop-before-smtp soon\n", 1,
	    "t.conf:3: pop-before-smtp: 'soon' is not a duration (like 15m)" },
	{ OKHEAD "pop-before-smtp 15 m\n", 1,
	    "t.conf:3: pop-before-smtp: expected 'pop-before-smtp DURATION "
	    "[ipv6-prefix BITS]'" },
	{ OKHEAD "pop-before-smtp 15m ipv6-prefix 8\n", 1,
	    "t.conf:3: pop-before-smtp ipv6-prefix: '8' is not a number from "
	    "16 to 128" },
	{ OKHEAD "queue-passes 0\n", 1,
	    "t.conf:3: queue-passes: '0' is not a number from 1 to 64" },
	{ OKHEAD "queue-passes 65\n", 1,
	    "t.conf:3: queue-passes: '65' is not a number from 1 to 64" },
	{ OKHEAD "apop yes\n", 1, "t.conf:3: apop: must be on or off, not 'yes'" },
	{ OKHEAD "users mysql://db/postern\n", 1,
	    "t.conf:3: users: 'mysql://db/postern' is not an absolute path" },
	{ OKHEAD "users-cache 0\n", 1,
	    "t.conf:3: users-cache: '0' is not a duration from 1s to 1h" },
	{ OKHEAD "state memcached://m\n", 1,
	    "t.conf:3: state: expected 'local' or 'redis://HOST[:PORT][/DB]', "
	    "not 'memcached://m'" },
	{ OKHEAD "spool var/spool/postern\n", 1,
	    "t.conf:3: spool: 'var/spool/postern' is not an absolute path" },
	{ OKHEAD "aliases ./aliases\n", 1,
	    "t.conf:3: aliases: './aliases' is not an absolute path" },
	{ OKHEAD "tls cert postern.crt key /k\n", 1,
	    "t.conf:3: tls cert: 'postern.crt' is not an absolute path" },
	{ OKHEAD "tls cert /c key k\n", 1,
	    "t.conf:3: tls key: 'k' is not an absolute path" },
	{ "domains example.org\nlisten smtps\n", 1,
	    "t.conf:2: listen: unknown role 'smtps' (smtp, submission, "
	    "submissions, pop3, pop3s)" },
	{ OKHEAD "listen smtp on 127.0.0.1\n", 1,
	    "t.conf:3: listen: port 25 is already used by the listener on line 2" },
	{ OKHEAD "listen submission port 25\n", 1,
	    "t.conf:3: listen: port 25 is already used by the listener on line 2" },
	{ "domains example.org\nlisten smtp on ::1 port 2525\n"
	    "listen submission on ::1 port 2525\n", 1,
	    "t.conf:3: listen: port 2525 is already used by the listener on line 2" },
	{ "domains example.org\nlisten pop3 port 110\nlisten pop3 port pop3\n", 1,
	    "t.conf:3: listen: port 110 is already used by the listener on line 2" },
	{ OKHEAD "listen submission port\n", 1,
	    "t.conf:3: listen: 'port' needs a value" },
	{ OKHEAD "listen submission port 0\n", 1,
	    "t.conf:3: listen: '0' is neither a port number nor a service in "
	    "/etc/services" },
	{ OKHEAD "listen submission port 65536\n", 1,
	    "t.conf:3: listen: '65536' is neither a port number nor a service "
	    "in /etc/services" },
	{ OKHEAD "listen submission port no-such-service\n", 1,
	    "t.conf:3: listen: 'no-such-service' is neither a port number nor "
	    "a service in /etc/services" },
	{ OKHEAD "listen submission auth maybe\n", 1,
	    "t.conf:3: listen: auth must be required, optional or off, not 'maybe'" },
	{ OKHEAD "listen submission tls ssl\n", 1,
	    "t.conf:3: listen: tls must be starttls, implicit or off, not 'ssl'" },
	{ OKHEAD "listen submission bind 127.0.0.1\n", 1,
	    "t.conf:3: listen: unknown option 'bind' (" },
	{ OKHEAD "listen submission on 192.0.2.300\n", 1,
	    "t.conf:3: listen: '192.0.2.300' is not an IPv4 or IPv6 address" },
	{ OKHEAD "listen submission on 10.0.0.0/8\n", 1,
	    "t.conf:3: listen: '10.0.0.0/8' is not an IPv4 or IPv6 address" },
	{ OKHEAD "listen submission on localhost\n", 1,
	    "t.conf:3: listen: 'localhost' is not an IPv4 or IPv6 address" },
	{ OKHEAD "mynetworks 10.0.0.0/33\n", 1,
	    "t.conf:3: mynetworks: '10.0.0.0/33' is not an address or prefix "
	    "like 192.0.2.0/24 or 2001:db8::/32" },
	{ OKHEAD "mynetworks 10.0.0.0/8 ::1/129\n", 1,
	    "t.conf:3: mynetworks: '::1/129' is not an address or prefix "
	    "like 192.0.2.0/24 or 2001:db8::/32" },
	{ OKHEAD "mynetworks example.org\n", 1,
	    "t.conf:3: mynetworks: 'example.org' is not an address or prefix "
	    "like 192.0.2.0/24 or 2001:db8::/32" },
	{ OKHEAD "domains -bad.example\n", 1,
	    "t.conf:3: domains: '-bad.example' is not a valid domain" },
	{ OKHEAD "domains ok.example bad..example\n", 1,
	    "t.conf:3: domains: 'bad..example' is not a valid domain" },
	{ OKHEAD "domains under_score.example\n", 1,
	    "t.conf:3: domains: 'under_score.example' is not a valid domain" },
	{ OKHEAD "domains trailing.example.\n", 1,
	    "t.conf:3: domains: 'trailing.example.' is not a valid domain" },
	{ OKHEAD "resolver dns.example\n", 1,
	    "t.conf:3: resolver: 'dns.example' is not an address, "
	    "address:port or [address]:port" },
	{ OKHEAD "resolver 127.0.0.1:0\n", 1,
	    "t.conf:3: resolver: '127.0.0.1:0' is not an address, "
	    "address:port or [address]:port" },
	{ OKHEAD "resolver [::1:53\n", 1,
	    "t.conf:3: resolver: '[::1:53' is not an address, "
	    "address:port or [address]:port" },
	{ OKHEAD "hostname bad_host\n", 1,
	    "t.conf:3: hostname: 'bad_host' is not a valid host name" },
	{ OKHEAD "hostname \"mx.example.org\n", 1,
	    "t.conf:3: unterminated quoted string" },
	{ OKHEAD "relay via\n", 1,
	    "t.conf:3: relay: expected '[for DOMAIN] direct' or " },
	{ OKHEAD "relay sideways\n", 1,
	    "t.conf:3: relay: expected '[for DOMAIN] direct' or " },
	{ OKHEAD "relay direct now\n", 1,
	    "t.conf:3: relay: unexpected 'now'" },
	{ OKHEAD "relay direct auth /etc/x\n", 1,
	    "t.conf:3: relay: unexpected 'auth'" },
	{ OKHEAD "relay via smtp.example:nosuchservice\n", 1,
	    "t.conf:3: relay via: 'nosuchservice' is neither a port" },
	{ OKHEAD "relay for bad_domain direct\n", 1,
	    "t.conf:3: relay for: 'bad_domain' is not a domain" },
	{ OKHEAD "relay via smtp.example auth relative/path\n", 1,
	    "t.conf:3: relay auth: 'relative/path' is not an absolute path" },
	{ OKHEAD "relay via smtp.example tls ca\n", 1,
	    "t.conf:3: relay: 'tls ca' needs a FILE" },
	{ OKHEAD "relay via smtp.example tls ca ca.pem\n", 1,
	    "t.conf:3: relay tls ca: 'ca.pem' is not an absolute path" },
	{ OKHEAD "submit via smtp.example tls ca\n", 1,
	    "t.conf:3: submit: 'tls ca' needs a FILE" },
	{ OKHEAD "submit via smtp.example tls ca ca.pem\n", 1,
	    "t.conf:3: submit tls ca: 'ca.pem' is not an absolute path" },
	{ OKHEAD "max-recipients 0\n", 1,
	    "t.conf:3: max-recipients: '0' is not a number from 1 to 100000" },
	{ OKHEAD "workers 4x\n", 1,
	    "t.conf:3: workers: '4x' is not a number from 1 to 256" },
	{ OKHEAD "workers -1\n", 1,
	    "t.conf:3: workers: '-1' is not a number from 1 to 256" },
	{ OKHEAD "log journald\n", 1,
	    "t.conf:3: log: must be syslog or stderr, not 'journald'" },
	{ OKHEAD "hostname mx\x01.example\n", 1,
	    "t.conf:3: control character in line" },
	{ "domains example.org\n", 1,
	    "t.conf:1: no 'listen' directive: postern would accept nothing "
	    "(try 'listen smtp')" },
	{ "", 1,
	    "t.conf:1: no 'listen' directive: postern would accept nothing "
	    "(try 'listen smtp')" },
	{ "hostname mx.example.org\n\nlisten pop3\nlisten smtp\n", 1,
	    "t.conf:4: listen smtp: no local 'domains' configured, so port 25 "
	    "could take no mail" },
	/* Parsing goes on after an error: every one is reported. */
	{ OKHEAD "bogus\nspool rel\nsmtp-timeout 5m\nworkers 0\n", 3,
	    "t.conf:3: unknown directive 'bogus'" },
};

static void
test_errors(void **state)
{
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
		const struct err_case *tc = &err_cases[i];
		char *errs = NULL, *nl, first[512];
		struct conf c;
		int n, lines = 0;

		n = parse(tc->text, &c, &errs);
		snprintf(first, sizeof first, "%s", errs);
		if ((nl = strchr(first, '\n')) != NULL)
			*nl = '\0';
		for (const char *p = errs; (p = strchr(p, '\n')) != NULL; p++)
			lines++;
		if (n != tc->nerr || lines != tc->nerr ||
		    strncmp(first, tc->want, strlen(tc->want)) != 0) {
			print_error("case %zu: got %d error(s) '%s', want %d "
			    "'%s'\n", i, n, errs, tc->nerr, tc->want);
			failed++;
		}
		free(errs);
		conf_free(&c);
	}
	if (failed)
		fail_msg("%d error case(s) failed", failed);
}

/* Each form of a resolver address the parser must take. */
static void
test_resolver_forms(void **state)
{
	static const char *forms[] = { "127.0.0.1", "127.0.0.1:5353",
	    "::1", "[::1]", "[2001:db8::53]:5353" };
	char text[256];

	(void)state;
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		char *errs = NULL;
		struct conf c;
		int n;

		snprintf(text, sizeof text, OKHEAD "resolver %s\n", forms[i]);
		n = parse(text, &c, &errs);
		if (n != 0)
			fail_msg("'%s': %d error(s) '%s'", forms[i], n, errs);
		assert_string_equal(c.resolver, forms[i]);
		conf_free(&c);
		free(errs);
	}
}

/* Multi-error output names each line. */
static void
test_error_lines(void **state)
{
	struct conf c;
	char *errs = NULL;

	(void)state;
	assert_int_equal(parse(OKHEAD "bogus\nspool rel\nsmtp-timeout 5m\n"
	    "workers 0\n", &c, &errs), 3);
	assert_non_null(strstr(errs, "t.conf:3: unknown directive 'bogus'\n"));
	assert_non_null(strstr(errs, "t.conf:4: spool: 'rel' is not an "
	    "absolute path\n"));
	assert_non_null(strstr(errs, "t.conf:6: workers: '0' is not a number "
	    "from 1 to 256\n"));
	free(errs);
	conf_free(&c);
	/* No errf: still counted, nothing printed. */
	assert_int_equal(conf_parse_string("x", "bogus\n", &c, NULL), 1);
	conf_free(&c);
}

static void
test_service_port(void **state)
{
	static const struct { const char *in; int rc; unsigned port; } cases[] = {
		{ "smtp", 0, 25 }, { "submission", 0, 587 },
		{ "submissions", 0, 465 }, { "smtps", 0, 465 },
		{ "pop3", 0, 110 }, { "pop3s", 0, 995 },
		{ "SUBMISSION", 0, 587 },
		{ "25", 0, 25 }, { "2525", 0, 2525 }, { "1", 0, 1 },
		{ "65535", 0, 65535 }, { "0587", 0, 587 },
		{ "0", -1, 0 }, { "65536", -1, 0 }, { "99999999999999999999", -1, 0 },
		{ "25x", -1, 0 }, { "", -1, 0 }, { "-1", -1, 0 }, { " 25", -1, 0 },
		{ "no-such-service", -1, 0 },
	};
	int failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint16_t port = 7;
		int rc = listen_service_port(cases[i].in, &port);

		if (rc != cases[i].rc || (rc == 0 && port != cases[i].port)) {
			print_error("'%s': got %d port %u, want %d port %u\n",
			    cases[i].in, rc, port, cases[i].rc, cases[i].port);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d service case(s) failed", failed);
}

/* "tls ca FILE" names the CAs to trust and implies verification; the
 * printed configuration reads back the same. */
static void
test_tls_ca(void **state)
{
	static const char text[] = "domains example.org\nlisten smtp\n"
	    "relay via smtp.isp.example:587 tls ca /etc/postern/isp-ca.pem "
	    "auth /etc/postern/isp.auth\n"
	    "relay for example.com direct tls ca /etc/postern/partner.pem\n"
	    "relay for example.net via mx.example.net tls verify\n"
	    "submit via [192.0.2.1]:465 tls implicit tls ca /etc/ca.pem\n";
	struct conf c, again;
	char *errs = NULL, *printed = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(parse(text, &c, &errs), 0);
	free(errs);
	assert_int_equal(c.nrelay_rules, 3);
	assert_string_equal(c.relay_rules[0].tls_ca, "/etc/postern/isp-ca.pem");
	assert_int_equal(c.relay_rules[0].tls_verify, 1);
	assert_string_equal(c.relay_rules[0].auth_file, "/etc/postern/isp.auth");
	assert_string_equal(c.relay_rules[1].tls_ca, "/etc/postern/partner.pem");
	assert_int_equal(c.relay_rules[1].tls_verify, 1);
	assert_int_equal(c.relay_rules[1].direct, 1);
	assert_string_equal(c.relay_rules[2].tls_ca, "");
	assert_int_equal(c.relay_rules[2].tls_verify, 1);
	assert_string_equal(c.submit_tls_ca, "/etc/ca.pem");
	assert_int_equal(c.submit_tls_verify, 1);
	assert_int_equal(c.submit_tls_implicit, 1);

	/* The printed relay and submit lines, read back. */
	assert_non_null(f = open_memstream(&printed, &len));
	fputs("domains example.org\nlisten smtp\n", f);
	conf_print(&c, f);
	fclose(f);
	for (char *line = strchr(printed, '\n') + 1; *line; ) {
		char *next = strchr(line, '\n');

		assert_non_null(next);
		next++;
		if (strncmp(line, "relay ", 6) != 0 &&
		    strncmp(line, "submit ", 7) != 0 &&
		    strncmp(line, "listen smtp\n", 12) != 0) {
			memmove(line, next, strlen(next) + 1);
			continue;
		}
		line = next;
	}
	if (parse(printed, &again, &errs) != 0)
		fail_msg("%s\nin:\n%s", errs, printed);
	free(errs);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(again.relay_rules[i].tls_ca,
		    c.relay_rules[i].tls_ca);
		assert_int_equal(again.relay_rules[i].tls_verify,
		    c.relay_rules[i].tls_verify);
	}
	assert_string_equal(again.submit_tls_ca, c.submit_tls_ca);
	free(printed);
	conf_free(&again);
	conf_free(&c);
}

static void
test_local_domain(void **state)
{
	static const struct { const char *in; int want; } cases[] = {
		{ "example.org", 1 }, { "EXAMPLE.ORG", 1 }, { "Example.Org", 1 },
		{ "b.example", 1 }, { "B.EXAMPLE", 1 },
		{ "c.example", 0 }, { "sub.example.org", 0 }, { "org", 0 },
		{ "example.org.", 0 }, { "", 0 }, { "xample.org", 0 },
	};
	struct conf c;
	char *errs = NULL;
	int failed = 0;

	(void)state;
	assert_int_equal(parse("domains Example.ORG b.example\nlisten smtp\n",
	    &c, &errs), 0);
	free(errs);
	assert_string_equal(c.domains[0], "example.org");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = conf_is_local_domain(&c, cases[i].in);
		if (got != cases[i].want) {
			print_error("'%s': got %d, want %d\n", cases[i].in, got,
			    cases[i].want);
			failed++;
		}
	}
	conf_free(&c);
	if (failed)
		fail_msg("%d local-domain case(s) failed", failed);
}

static void
test_keyword_table_sorted(void **state)
{
	(void)state;
	assert_true(conf_keywords_sorted());
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyword_table_sorted),
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_lines),
		cmocka_unit_test(test_resolver_forms),
		cmocka_unit_test(test_service_port),
		cmocka_unit_test(test_tls_ca),
		cmocka_unit_test(test_local_domain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
