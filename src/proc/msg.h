/*
 * msg.h - typed messages between postern processes, one per
 * SOCK_SEQPACKET datagram.  Reading is strict: a short, long or
 * malformed message means a bug or a compromised peer, and the reader
 * treats it as fatal for that connection (msg_get_* return -1 and set
 * m->bad; callers drop the peer).
 */
#ifndef POSTERN_MSG_H
#define POSTERN_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bump whenever the enum below or any message's layout changes. */
#define MSG_VERSION	4
#define MSG_MAX		16384

enum msg_type {
	MSG_AUTH_START = 1,	/* reqid, mech, session, peer, local, flags,
				 * has_ir, ir */
	MSG_AUTH_STEP,		/* reqid, data */
	MSG_AUTH_CANCEL,	/* reqid */
	MSG_AUTH_CHALLENGE,	/* reqid, data */
	MSG_AUTH_RESULT,	/* reqid, result, user */
	MSG_AUTH_APOP,		/* reqid, user, peer, flags, timestamp, digest */
	MSG_KEY_OP,		/* reqid, op, padding, key id, input */
	MSG_KEY_RESULT,		/* reqid, status, output */
};

/* MSG_KEY_OP operations (tls/keyd.h) */
enum msg_key_op {
	KEY_OP_ECDSA_SIGN = 1,	/* digest -> DER ECDSA-Sig-Value */
	KEY_OP_RSA_SIGN,	/* RSA private op: PKCS#1 v1.5 or no padding */
};

enum msg_key_status {
	KEY_STATUS_OK,
	KEY_STATUS_FAIL,	/* the operation failed */
	KEY_STATUS_WRONG_KEY,	/* not the key keyd holds (a reload) */
};

/* MSG_AUTH_START flags */
#define MSG_AUTH_F_TLS		0x01
#define MSG_AUTH_F_LOOPBACK	0x02
#define MSG_AUTH_F_POP3		0x04	/* SASL service "pop", not "smtp" */

enum msg_auth_result {
	AUTH_RESULT_OK,
	AUTH_RESULT_FAIL,	/* 535 5.7.8 */
	AUTH_RESULT_MALFORMED,	/* 501 5.5.2 */
	AUTH_RESULT_TEMPFAIL,	/* 454 4.7.0 */
	AUTH_RESULT_BLOCKED,	/* 421 4.7.0, too many failures */
};

struct msg {
	uint8_t		 data[MSG_MAX];
	size_t		 len;	/* bytes in data */
	size_t		 off;	/* read position */
	int		 bad;	/* a put overflowed or a get failed */
	uint16_t	 type;
	uint64_t	 reqid;
};

void	msg_init(struct msg *, enum msg_type, uint64_t reqid);
void	msg_put_u32(struct msg *, uint32_t);
void	msg_put_u64(struct msg *, uint64_t);
void	msg_put_data(struct msg *, const void *, size_t);
void	msg_put_str(struct msg *, const char *);
/* One datagram now; a full socket (EAGAIN) is an error like any other.
 * For one request at a time that waits for its answer (the key
 * process); a connection with many exchanges in flight sends through a
 * queue (proc/msgq.h). */
int	msg_send(int fd, struct msg *);

/*
 * The listening socket of one of the master's children (auth, keyd):
 * <spool>/private/NAME, SOCK_SEQPACKET, mode 0660, in a directory of mode
 * 0750, both root's with the workers' group, so that only root and the
 * workers can reach it.  uid (uid_t)-1: not running as root, no chown.
 * Returns the descriptor, or -1 after logging why.
 */
int	msg_listen_private(const char *spool, const char *name, uid_t, gid_t);

/* Receive one message; 1 on success, 0 on EOF (errno ECONNRESET) or
 * nothing to read (EAGAIN), -1 on a malformed header. */
int	msg_recv(int fd, struct msg *);
/* Wipe (a message may carry a password) and free a struct msg. */
void	msg_free(struct msg *);
int	msg_get_u32(struct msg *, uint32_t *);
int	msg_get_u64(struct msg *, uint64_t *);
/* Points into m->data; *len is set. */
int	msg_get_data(struct msg *, const uint8_t **, size_t *);
/* Copies a NUL-free string into dst (size dstsz); -1 if it does not fit. */
int	msg_get_str(struct msg *, char *dst, size_t dstsz);
/* Everything has been read: trailing bytes are an error. */
int	msg_end(struct msg *);

#endif
