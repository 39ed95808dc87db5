/*
 * config_audit.h - what `postern config check` looks at beyond the
 * syntax: directories and their permissions, secrets readable by
 * others, the certificate, listeners that relay without
 * authentication.  Each problem is one "error: ..." or "warning: ..."
 * line on f.
 */
#ifndef POSTERN_CONFIG_AUDIT_H
#define POSTERN_CONFIG_AUDIT_H

#include <stdio.h>

#include "conf/conf.h"

/* Returns the number of errors; adds the warnings to *nwarn. */
int	config_audit(const struct conf *, FILE *f, int *nwarn);

#endif
