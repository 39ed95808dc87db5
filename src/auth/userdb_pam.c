/*
 * userdb_pam.c - PAM authentication for "pam" users (see userdb_pam.h).
 */
#include "auth/userdb_pam.h"
#include "lib/log.h"

#include <security/pam_appl.h>
#include <stdlib.h>
#include <string.h>

struct pam_secret {
	const char	*password;
};

/* Answer PAM's password prompts with the password; nothing else. */
static int
pam_conv_password(int n, const struct pam_message **msg,
    struct pam_response **resp, void *arg)
{
	const struct pam_secret *sec = arg;
	struct pam_response *r;

	if (n <= 0 || n > PAM_MAX_NUM_MSG ||
	    (r = calloc((size_t)n, sizeof *r)) == NULL)
		return PAM_CONV_ERR;
	for (int i = 0; i < n; i++) {
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF ||
		    msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
			if ((r[i].resp = strdup(sec->password)) == NULL)
				goto fail;
		}
		/* PAM_ERROR_MSG, PAM_TEXT_INFO: nobody to show them to. */
	}
	*resp = r;
	return PAM_SUCCESS;
fail:
	for (int i = 0; i < n; i++)
		if (r[i].resp) {
			explicit_bzero(r[i].resp, strlen(r[i].resp));
			free(r[i].resp);
		}
	free(r);
	return PAM_CONV_ERR;
}

/* The auth process throttles failures itself; a module's own delay
 * would stall every other login waiting on this process. */
static void
pam_no_delay(int status, unsigned int usec, void *arg)
{
}

int
userdb_pam_verify(const char *service, const char *user, const char *password)
{
	struct pam_secret sec = { password };
	struct pam_conv conv = { pam_conv_password, &sec };
	pam_handle_t *pamh = NULL;
	int rc;

	if ((rc = pam_start(service, user, &conv, &pamh)) != PAM_SUCCESS) {
		log_warnx("authd: pam_start(%s): %s", service,
		    pam_strerror(pamh, rc));
		return -1;
	}
	(void)pam_set_item(pamh, PAM_FAIL_DELAY, (const void *)pam_no_delay);
	rc = pam_authenticate(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	/* The system's own expiry and lock count too (chage, passwd -l). */
	if (rc == PAM_SUCCESS)
		rc = pam_acct_mgmt(pamh, PAM_SILENT);
	pam_end(pamh, rc);
	if (rc == PAM_SUCCESS)
		return 1;
	if (rc == PAM_AUTH_ERR || rc == PAM_USER_UNKNOWN ||
	    rc == PAM_ACCT_EXPIRED || rc == PAM_NEW_AUTHTOK_REQD ||
	    rc == PAM_PERM_DENIED || rc == PAM_MAXTRIES)
		return 0;
	log_warnx("authd: pam (%s) for %s: %s", service, user,
	    pam_strerror(NULL, rc));
	return -1;
}
