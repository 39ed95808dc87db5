/*
 * master.h - the master process: binds the listeners (as root if
 * needed), starts one worker per core, restarts any that dies, forwards
 * SIGTERM, and reloads the configuration on SIGHUP.
 */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include "conf/conf.h"
#include "policy/access.h"

/* Runs until SIGTERM/SIGINT; returns the exit status.  access is the
 * access map's table, loaded and checked (the master keeps it). */
int	master_run(struct conf *, struct access_table *access, int verbose);

#endif
