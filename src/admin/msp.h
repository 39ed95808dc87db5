/*
 * msp.h - the mail submission program: `postern sendmail` and the
 * binary run as `sendmail` (postern(8), section "THE SENDMAIL
 * COMMAND").  It runs as the calling user, in the caller's process, with
 * no privileges: it either writes a file into the maildrop (msp.c) or
 * submits over SMTP with stored credentials (msp_submit.c, `submit via`).
 */
#ifndef POSTERN_MSP_H
#define POSTERN_MSP_H

#include <stddef.h>

#include "conf/conf.h"
#include "lib/buf.h"

/* One message ready to leave the MSP: envelope and finished content
 * (CRLF line ends, headers completed). */
struct msp_msg {
	const char	*sender;	/* requested envelope sender or NULL */
	char		**rcpts;
	size_t		 nrcpts;
	int		 body_8bit;
	struct buf	 content;
};

/* `postern sendmail ...` (argv[0] is "sendmail" or the subcommand). */
int	msp_main(int argc, char **argv, const char *conf_path, int as_postern);

/* Submit over SMTP as `submit via` says; a sysexits(3) code, with the
 * reason on stderr. */
int	msp_submit(const struct conf *, const struct msp_msg *,
	    const char *default_sender, int verbose);

/* The domain the MSP gives unqualified addresses and the caller's own
 * address: the first local domain, else the host name. */
const char *msp_origin(const struct conf *);

#endif
