/*
 * master.h - the master process: binds the listeners (as root if
 * needed), starts one worker per core, restarts any that dies, forwards
 * SIGTERM, and reloads the configuration on SIGHUP.
 */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include "conf/conf.h"

/* Runs until SIGTERM/SIGINT; returns the exit status. */
int	master_run(struct conf *, int verbose);

#endif
