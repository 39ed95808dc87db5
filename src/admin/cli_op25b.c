/*
 * cli_op25b.c - `postern op25b-rules`: an nftables ruleset for an ISP's
 * edge router that applies Outbound Port 25 Blocking.  TCP to port 25
 * from the customers' dynamic prefixes is dropped (silently, as ISPs do:
 * a bot sees a timeout), except towards the ISP's own mail servers;
 * static prefixes keep port 25.  --protect-relay also keeps everybody
 * outside the ISP's prefixes off the mail servers' port 25, for mail
 * servers that are the customers' relay and not an MX.
 * Only prints; loading it (nft -f FILE) is the administrator's step.
 */
#include "admin/cli.h"
#include "lib/netaddr.h"
#include "lib/xalloc.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OP25B_TABLE	"postern_op25b"

struct prefix_list {
	const char	*what;		/* "--customers" */
	struct netprefix *p;
	size_t		 n;
};

static int
prefix_add(struct prefix_list *l, const char *arg)
{
	struct netprefix np, masked;
	char want[64];

	if (netprefix_parse(arg, &np) == -1) {
		fprintf(stderr, "postern op25b-rules: %s: '%s' is not an IPv4 or "
		    "IPv6 address or prefix (like 192.0.2.0/24 or "
		    "2001:db8::/32)\n", l->what, arg);
		return -1;
	}
	if (netprefix_host_bits(&np, &masked)) {
		netprefix_format(&masked, want, sizeof want);
		fprintf(stderr, "postern op25b-rules: %s: '%s' has bits set past "
		    "the prefix length; did you mean %s?\n", l->what, arg, want);
		return -1;
	}
	if (np.bits == 0) {
		fprintf(stderr, "postern op25b-rules: %s: '%s' is the whole "
		    "address space; name the customers' prefixes\n", l->what,
		    arg);
		return -1;
	}
	l->p = xreallocarray(l->p, l->n + 1, sizeof *l->p);
	l->p[l->n++] = np;
	return 0;
}

static void
print_set(const char *name, const struct prefix_list *l, int family)
{
	const char *sep = "";
	char s[64];
	int any = 0;

	printf("\tset %s {\n\t\ttype %s\n\t\tflags interval\n", name,
	    family == AF_INET ? "ipv4_addr" : "ipv6_addr");
	for (size_t i = 0; i < l->n; i++) {
		if (l->p[i].family != family)
			continue;
		if (!any)
			printf("\t\telements = { ");
		netprefix_format(&l->p[i], s, sizeof s);
		printf("%s%s", sep, s);
		sep = ", ";
		any = 1;
	}
	if (any)
		printf(" }\n");
	printf("\t}\n");
}

static void
print_list_comment(const char *what, const struct prefix_list *l)
{
	char s[64];

	printf("#   %-14s", what);
	if (l->n == 0)
		printf(" (none)");
	for (size_t i = 0; i < l->n; i++) {
		netprefix_format(&l->p[i], s, sizeof s);
		printf(" %s", s);
	}
	printf("\n");
}

static int
usage(void)
{
	fprintf(stderr, "usage: postern op25b-rules --customers PREFIX... "
	    "[--static PREFIX...]\n"
	    "                           [--mail-servers ADDR...] "
	    "[--protect-relay]\n");
	return EX_USAGE;
}

int
cli_op25b_rules(int argc, char **argv)
{
	struct prefix_list cust = { "--customers", NULL, 0 },
	    stat = { "--static", NULL, 0 }, mail = { "--mail-servers", NULL, 0 };
	struct prefix_list *cur = NULL;
	int protect = 0, rc = EX_USAGE;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--customers") == 0)
			cur = &cust;
		else if (strcmp(argv[i], "--static") == 0)
			cur = &stat;
		else if (strcmp(argv[i], "--mail-servers") == 0)
			cur = &mail;
		else if (strcmp(argv[i], "--protect-relay") == 0) {
			protect = 1;
			cur = NULL;
		} else if (argv[i][0] == '-' || cur == NULL) {
			rc = usage();
			goto out;
		} else if (prefix_add(cur, argv[i]) == -1)
			goto out;
	}
	if (cust.n == 0) {
		fprintf(stderr, "postern op25b-rules: --customers needs at least "
		    "one prefix\n");
		rc = usage();
		goto out;
	}
	if (protect && mail.n == 0) {
		fprintf(stderr, "postern op25b-rules: --protect-relay needs "
		    "--mail-servers\n");
		rc = usage();
		goto out;
	}

	printf("#!/usr/sbin/nft -f\n"
	    "# Outbound Port 25 Blocking (OP25B) for an ISP edge router,\n"
	    "# made by `postern op25b-rules`.  Load with `nft -f FILE`; it\n"
	    "# replaces table inet " OP25B_TABLE " and touches nothing else.\n");
	print_list_comment("customers:", &cust);
	print_list_comment("static:", &stat);
	print_list_comment("mail servers:", &mail);
	printf("# Dynamic customers cannot open TCP port 25 anywhere but the\n"
	    "# ISP's mail servers: they send through submission (587/465) with\n"
	    "# AUTH.  The packets are dropped, not rejected, as ISPs do.\n");
	if (protect)
		printf("# --protect-relay: only the ISP's own prefixes may reach\n"
		    "# the mail servers' port 25, so nobody outside can try them\n"
		    "# as a relay; 587/465 stay open for travelling users (AUTH).\n"
		    "# Do not use it when these servers are also the MX of the\n"
		    "# ISP's domains: the Internet delivers to an MX on port 25.\n");
	/* Declaring the table first makes the delete safe on a first load:
	 * the file can be loaded again and again. */
	printf("table inet " OP25B_TABLE "\n"
	    "delete table inet " OP25B_TABLE "\n"
	    "table inet " OP25B_TABLE " {\n");
	print_set("customers4", &cust, AF_INET);
	print_set("customers6", &cust, AF_INET6);
	print_set("static4", &stat, AF_INET);
	print_set("static6", &stat, AF_INET6);
	print_set("mailservers4", &mail, AF_INET);
	print_set("mailservers6", &mail, AF_INET6);
	printf("\n\tchain forward {\n"
	    "\t\ttype filter hook forward priority filter; policy accept;\n"
	    "\t\t# static customers keep port 25 (they run their own servers)\n"
	    "\t\tip saddr @static4 tcp dport 25 accept\n"
	    "\t\tip6 saddr @static6 tcp dport 25 accept\n"
	    "\t\t# the ISP's own mail servers stay reachable on 25\n"
	    "\t\tip saddr @customers4 ip daddr @mailservers4 tcp dport 25 accept\n"
	    "\t\tip6 saddr @customers6 ip6 daddr @mailservers6 tcp dport 25 accept\n"
	    "\t\t# OP25B: anything else to port 25 from the dynamic ranges\n"
	    "\t\tip saddr @customers4 tcp dport 25 counter drop\n"
	    "\t\tip6 saddr @customers6 tcp dport 25 counter drop\n");
	if (protect)
		printf("\t\t# --protect-relay: outsiders may not reach the relays' "
		    "port 25\n"
		    "\t\tip daddr @mailservers4 tcp dport 25 ip saddr != "
		    "@customers4 ip saddr != @static4 counter drop\n"
		    "\t\tip6 daddr @mailservers6 tcp dport 25 ip6 saddr != "
		    "@customers6 ip6 saddr != @static6 counter drop\n");
	printf("\t}\n}\n");
	rc = 0;
out:
	free(cust.p);
	free(stat.p);
	free(mail.p);
	return rc;
}
