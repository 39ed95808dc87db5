/*
 * cli_probe.c - `postern probe [HOST]`: is outbound port 25 blocked from
 * this network (Outbound Port 25 Blocking, OP25B)?  Connects to 25, 587
 * and 465 of a host that is known to serve all three and tells apart
 * "refused" (the host answered: nothing listens there), "timeout" (the
 * packets vanished: the typical OP25B drop), "unreachable" (a firewall
 * said no) and a real greeting, then says what to configure.
 * Runs in the administrator's process, with blocking sockets.
 */
#include "admin/check_ports.h"
#include "admin/cli.h"
#include "admin/netcheck.h"
#include "conf/conf.h"
#include "lib/strutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_DEFAULT_TIMEOUT	5	/* seconds: OP25B drops never answer */

enum probe_outcome {
	P_BANNER,		/* 220 greeting: the port works */
	P_SILENT,		/* connected, but no SMTP greeting */
	P_REFUSED,
	P_TIMEOUT,
	P_UNREACH,
	P_ERROR,
};

static const char *const outcome_names[] = {
	"banner", "no-banner", "refused", "timeout", "unreachable", "error",
};

struct probe_result {
	struct check_port cp;
	enum probe_outcome out;
	char		 detail[1024];
};

static void
probe_one(const char *host, int timeout_ms, struct probe_result *pr)
{
	struct nc_conn nc;
	struct buf r;
	enum nc_status st;
	int code;

	nc_init(&nc, timeout_ms);
	buf_init(&r, 64 * 1024);
	st = nc_connect(&nc, host, pr->cp.port);
	switch (st) {
	case NC_OK:
		break;
	case NC_REFUSED:
		pr->out = P_REFUSED;
		snprintf(pr->detail, sizeof pr->detail, "connection refused by "
		    "%s: the host answered, nothing listens on this port", nc.peer);
		goto done;
	case NC_TIMEOUT:
		pr->out = P_TIMEOUT;
		snprintf(pr->detail, sizeof pr->detail, "no answer within %d s: "
		    "the connection attempt was silently dropped",
		    timeout_ms / 1000);
		goto done;
	case NC_UNREACH:
		pr->out = P_UNREACH;
		snprintf(pr->detail, sizeof pr->detail, "%s: a router or "
		    "firewall rejected the connection", nc.err);
		goto done;
	case NC_RESOLVE:
	case NC_ERROR:
		pr->out = P_ERROR;
		snprintf(pr->detail, sizeof pr->detail, "%s", nc.err);
		goto done;
	}
	/* 465 greets only inside TLS (RFC 8314). */
	if (pr->cp.role == ROLE_SUBMISSIONS || pr->cp.role == ROLE_POP3S) {
		if (nc_start_tls(&nc, host, NULL) == -1) {
			pr->out = P_SILENT;
			snprintf(pr->detail, sizeof pr->detail, "connected to %s, "
			    "but the TLS handshake failed: %s", nc.peer, nc.err);
			goto done;
		}
	}
	if (pr->cp.role == ROLE_POP3 || pr->cp.role == ROLE_POP3S) {
		int ok = nc_pop_reply(&nc, &r);

		pr->out = ok == 1 ? P_BANNER : P_SILENT;
		snprintf(pr->detail, sizeof pr->detail, "%s", ok == -1 ?
		    nc.err : r.data);
		goto done;
	}
	code = nc_smtp_reply(&nc, &r);
	if (code == 220) {
		const char *nl = strrchr(r.data, '\n');

		pr->out = P_BANNER;
		snprintf(pr->detail, sizeof pr->detail, "%s%s", nl ? nl + 1 :
		    r.data, nc.ssl ? " (TLS)" : "");
		(void)nc_smtp_cmd(&nc, &r, "QUIT");
	} else {
		pr->out = P_SILENT;
		snprintf(pr->detail, sizeof pr->detail, "connected to %s, but "
		    "%s%s", nc.peer, code == -1 ? "no greeting: " :
		    "greeting: ", code == -1 ? nc.err : r.data);
	}
done:
	/* Keep the detail on one line whatever the server sent. */
	for (char *p = pr->detail; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	nc_close(&nc);
	buf_free(&r);
}

static int
usage(void)
{
	fprintf(stderr, "usage: postern probe [-c FILE] [HOST] [--timeout S] "
	    "[--ports 25,587,465]\n"
	    "  HOST defaults to 'probe-host' in the configuration, else the "
	    "smarthost of 'relay via'\n");
	return EX_USAGE;
}

/* The host to probe when none is given: probe-host, else the default
 * smarthost.  0, or -1 when the configuration names none. */
static int
probe_default_host(const char *conf_path, char *host, size_t hostsz)
{
	struct conf c;
	int rc = -1;

	if (conf_load(conf_path, &c, stderr) != 0) {
		fprintf(stderr, "postern probe: cannot use %s; give the HOST "
		    "to probe\n", conf_path);
		conf_free(&c);
		return -2;
	}
	if (c.probe_host[0]) {
		(void)strlcpy(host, c.probe_host, hostsz);
		rc = 0;
	} else
		for (size_t i = 0; i < c.nrelay_rules; i++)
			if (c.relay_rules[i].domain[0] == '\0' &&
			    !c.relay_rules[i].direct) {
				(void)strlcpy(host, c.relay_rules[i].host, hostsz);
				rc = 0;
			}
	conf_free(&c);
	return rc;
}

static int
works(const struct probe_result *pr, size_t n, enum listen_role role)
{
	for (size_t i = 0; i < n; i++)
		if (pr[i].cp.role == role && pr[i].out == P_BANNER)
			return 1;
	return 0;
}

int
cli_probe(int argc, char **argv, const char *conf_path)
{
	struct probe_result pr[CHECK_PORTS_MAX];
	struct check_port ports[CHECK_PORTS_MAX];
	const char *host = NULL, *portspec = "25,587,465";
	const struct probe_result *p25 = NULL;
	char confhost[CONF_NAME_MAX], err[256];
	size_t nports;
	int timeout_ms = PROBE_DEFAULT_TIMEOUT * 1000, sub_ok;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			char *end;
			unsigned long t = strtoul(argv[++i], &end, 10);

			if (*end || t == 0 || t > 120) {
				fprintf(stderr, "postern probe: --timeout: 1 to "
				    "120 seconds\n");
				return EX_USAGE;
			}
			timeout_ms = (int)t * 1000;
		} else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf_path = argv[++i];
		else if (strcmp(argv[i], "--ports") == 0 && i + 1 < argc)
			portspec = argv[++i];
		else if (argv[i][0] == '-')
			return usage();
		else if (host == NULL)
			host = argv[i];
		else
			return usage();
	}
	if (check_ports_parse(portspec, ports, &nports, err, sizeof err) == -1) {
		fprintf(stderr, "postern probe: %s\n", err);
		return EX_USAGE;
	}
	if (host == NULL) {
		int d = probe_default_host(conf_path, confhost, sizeof confhost);

		if (d == -2)
			return usage();
		if (d == -1) {
			fprintf(stderr, "postern probe: no HOST given, and %s sets "
			    "neither 'probe-host' nor 'relay via'\n", conf_path);
			return usage();
		}
		host = confhost;
	}
	printf("postern probe %s: can this network reach its mail ports? "
	    "(timeout %d s)\n", host, timeout_ms / 1000);
	for (size_t i = 0; i < nports; i++) {
		char where[32];

		memset(&pr[i], 0, sizeof pr[i]);
		pr[i].cp = ports[i];
		probe_one(host, timeout_ms, &pr[i]);
		if (ports[i].role == ROLE_SMTP && p25 == NULL)
			p25 = &pr[i];
		snprintf(where, sizeof where, "%u/%s", ports[i].port,
		    listen_role_name(ports[i].role));
		printf("  %-18s %-12s %s\n", where, outcome_names[pr[i].out],
		    pr[i].detail);
		fflush(stdout);
	}
	sub_ok = works(pr, nports, ROLE_SUBMISSION) ||
	    works(pr, nports, ROLE_SUBMISSIONS);
	if (p25 && p25->out == P_BANNER) {
		printf("verdict: port 25 is open from this network: a server "
		    "here can deliver straight to MX hosts ('relay direct').\n");
		return 0;
	}
	if (p25 == NULL) {
		int any = 0;

		for (size_t i = 0; i < nports; i++)
			any |= pr[i].out == P_BANNER;
		printf("verdict: port 25 was not probed; %s\n", any ?
		    "the ports probed answer" : "nothing answered");
		return any ? 0 : 2;
	}
	if (!sub_ok && !works(pr, nports, ROLE_POP3) &&
	    !works(pr, nports, ROLE_POP3S)) {
		printf("verdict: nothing answers on %s: the host is down, its "
		    "name or address is wrong, or this network blocks more than "
		    "port 25.  Probe a host known to run 25, 587 and 465.\n",
		    host);
		return 2;
	}
	switch (p25->out) {
	case P_TIMEOUT:
		printf("verdict: outbound port 25 is blocked from this network "
		    "(OP25B): connections to port 25 vanish without an answer "
		    "while the submission ports answer.\n");
		break;
	case P_UNREACH:
		printf("verdict: outbound port 25 is blocked from this network: "
		    "a firewall rejects connections to port 25 while the "
		    "submission ports answer.\n");
		break;
	case P_SILENT:
		printf("verdict: port 25 is intercepted: something accepts the "
		    "connection but no mail server greets (a filtering proxy); "
		    "treat port 25 as blocked.\n");
		break;
	case P_REFUSED:
		printf("verdict: %s answered but does not listen on port 25; "
		    "that is not OP25B.  Probe a host that runs port 25 to "
		    "find out about this network.\n", host);
		break;
	default:
		printf("verdict: port 25 does not work from here (%s).\n",
		    p25->detail);
		break;
	}
	printf("what to configure:\n"
	    "  - a server on this network sends through a smarthost on the "
	    "submission port with AUTH:\n"
	    "      relay via SMARTHOST:submission auth /etc/postern/relay-auth   "
	    "# one line: LOGIN PASSWORD, mode 0600\n"
	    "    (or 'relay via SMARTHOST:465 tls implicit auth FILE')\n"
	    "  - mail clients submit on port 587 (STARTTLS) or 465 (TLS) "
	    "with AUTH, never on 25\n"
	    "  - receiving still works: other servers reach your MX on 25 "
	    "from outside\n");
	return 1;
}
