/*
 * main.c - the one postern binary and its subcommands (postern(8)).
 *
 *   postern serve  [-c FILE] [-v]     run in the foreground
 *   postern config [-c FILE] check    validate the configuration
 *   postern user   [-c FILE] ...      manage the users file
 */
#include "admin/cli.h"
#include "admin/msp.h"
#include "conf/conf.h"
#include "lib/log.h"
#include "policy/access.h"
#include "proc/master.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POSTERN_VERSION	"0.1.0"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: postern serve  [-c FILE] [-v]     run the server in the foreground\n"
	    "       postern config [-c FILE] check    check the configuration\n"
	    "       postern user   [-c FILE] add NAME [--password-stdin|--pam] [--address ADDR]... [--expires YYYY-MM-DD]\n"
	    "       postern user   [-c FILE] passwd NAME [--password-stdin] | lock|unlock|del|show NAME\n"
	    "                                | expire NAME DATE|never | list\n"
	    "       postern queue  [-c FILE] list|flush|delete ID|hold ID|release ID\n"
	    "       postern aliases [-c FILE]         check aliases, rebuild the index\n"
	    "       postern check  HOST [--user U --password-stdin] [--ports 25,587,465[,110,995]]\n"
	    "                      [--json] [--timeout S] [--from ADDR --local-rcpt ADDR --foreign-rcpt ADDR]\n"
	    "       postern probe  [-c FILE] [HOST] [--timeout S] [--ports 25,587,465]\n"
	    "       postern op25b-rules --customers PREFIX... [--static PREFIX...] [--mail-servers ADDR...] [--protect-relay]\n"
	    "       postern access [-c FILE] check ADDRESS|helo:NAME|from:SENDER|to:RCPT...\n"
	    "       postern sendmail [-c FILE] [-t] [-i] [-f FROM] [-F NAME] [RCPT...]\n"
	    "                                         submit a message (also -bs, -bp, -bi, -q)\n"
	    "       postern version\n"
	    "The default configuration file is " CONF_DEFAULT_PATH ".\n");
}

static int
cmd_serve(const char *conf_path, int verbose)
{
	struct conf *c = calloc(1, sizeof *c);
	struct access_table access;
	int nerr;

	if (c == NULL)
		return EX_OSERR;
	if ((nerr = conf_load(conf_path, c, stderr)) != 0) {
		fprintf(stderr, "postern: %s: %d error%s; not starting\n",
		    conf_path, nerr, nerr == 1 ? "" : "s");
		conf_free(c);
		free(c);
		return EX_CONFIG;
	}
	/* The access map is loaded here, once: a broken one stops the start,
	 * as a broken configuration does (docs/access.md), and the workers
	 * start from this table. */
	if (access_table_load(&access, c->access, stderr, &nerr) == -1) {
		fprintf(stderr, "postern: %s: %d error%s; not starting\n",
		    c->access, nerr, nerr == 1 ? "" : "s");
		access_table_free(&access);
		conf_free(c);
		free(c);
		return EX_CONFIG;
	}
	return master_run(c, &access, verbose);
}

int
main(int argc, char **argv)
{
	const char *conf_path = CONF_DEFAULT_PATH, *sub;
	int verbose = 0, ch;
	char *prog = argc > 0 ? basename(argv[0]) : "postern";

	/* Programs that run sendmail cannot pass -c; MAIL_CONFIG-like. */
	if (getenv("POSTERN_CONFIG") && getenv("POSTERN_CONFIG")[0])
		conf_path = getenv("POSTERN_CONFIG");
	/* argv[0] sendmail: the MSP with sendmail's options (msp.c). */
	if (strcmp(prog, "sendmail") == 0)
		return msp_main(argc, argv, conf_path, 0);

	/* argv[0] mailq and newaliases (DESIGN.md: the MSP names). */
	if (strcmp(prog, "mailq") == 0 || strcmp(prog, "newaliases") == 0) {
		static char *list[] = { "list", NULL };
		while ((ch = getopt(argc, argv, "c:v")) != -1) {
			if (ch == 'c')
				conf_path = optarg;
			else if (ch != 'v') {
				fprintf(stderr, "usage: %s [-c FILE]\n", prog);
				return EX_USAGE;
			}
		}
		if (optind != argc) {
			fprintf(stderr, "usage: %s [-c FILE]\n", prog);
			return EX_USAGE;
		}
		if (prog[0] == 'm')
			return cli_queue(1, list, conf_path);
		return cli_aliases(0, list + 1, conf_path);
	}
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	sub = argv[1];
	if (strcmp(sub, "help") == 0 || strcmp(sub, "-h") == 0 ||
	    strcmp(sub, "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(sub, "version") == 0 || strcmp(sub, "--version") == 0) {
		printf("postern %s\n", POSTERN_VERSION);
		return 0;
	}
	if (strcmp(sub, "sendmail") == 0)
		return msp_main(argc - 1, argv + 1, conf_path, 1);
	/* These take long options of their own (and probe its -c). */
	if (strcmp(sub, "check") == 0)
		return cli_check(argc - 2, argv + 2);
	if (strcmp(sub, "probe") == 0)
		return cli_probe(argc - 2, argv + 2, conf_path);
	if (strcmp(sub, "op25b-rules") == 0)
		return cli_op25b_rules(argc - 2, argv + 2);
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt(argc, argv, "+c:v")) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (strcmp(sub, "serve") == 0) {
		if (argc != 0) {
			usage(stderr);
			return EX_USAGE;
		}
		return cmd_serve(conf_path, verbose);
	}
	if (strcmp(sub, "config") == 0)
		return cli_config(argc, argv, conf_path);
	if (strcmp(sub, "access") == 0)
		return cli_access(argc, argv, conf_path);
	if (strcmp(sub, "user") == 0)
		return cli_user(argc, argv, conf_path);
	if (strcmp(sub, "queue") == 0)
		return cli_queue(argc, argv, conf_path);
	if (strcmp(sub, "aliases") == 0)
		return cli_aliases(argc, argv, conf_path);
	fprintf(stderr, "postern: unknown command '%s'\n", sub);
	usage(stderr);
	return EX_USAGE;
}
