/*
 * userdb_pam.h - passwords of system accounts, through PAM.  A users
 * file entry whose hash is "pam" keeps its addresses, expiry and lock
 * in postern, and its password in /etc/shadow (or wherever the PAM
 * service looks), as the OP25B documents' servers did.  Only PLAIN and
 * LOGIN can use it: PAM needs the password itself.  Runs in the auth
 * process, which is root.
 */
#ifndef POSTERN_USERDB_PAM_H
#define POSTERN_USERDB_PAM_H

#define USERDB_PAM_HASH	"pam"

/* 1: the password is right and the account usable; 0: not; -1: PAM
 * itself failed. */
int	userdb_pam_verify(const char *service, const char *user,
	    const char *password);

#endif
