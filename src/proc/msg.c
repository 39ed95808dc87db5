/* msg.c - typed IPC marshalling (see msg.h). */
#include "proc/msg.h"
#include "lib/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MSG_HDR	12	/* u16 version, u16 type, u64 reqid */

void
msg_init(struct msg *m, enum msg_type type, uint64_t reqid)
{
	m->type = (uint16_t)type;
	m->reqid = reqid;
	m->bad = 0;
	m->data[0] = MSG_VERSION >> 8;
	m->data[1] = MSG_VERSION & 0xff;
	m->data[2] = (uint8_t)(type >> 8);
	m->data[3] = (uint8_t)type;
	for (int i = 0; i < 8; i++)
		m->data[4 + i] = (uint8_t)(reqid >> (56 - 8 * i));
	m->len = MSG_HDR;
	m->off = MSG_HDR;
}

void
msg_put_u32(struct msg *m, uint32_t v)
{
	if (m->len + 4 > sizeof m->data) {
		m->bad = 1;
		return;
	}
	for (int i = 0; i < 4; i++)
		m->data[m->len++] = (uint8_t)(v >> (24 - 8 * i));
}

void
msg_put_u64(struct msg *m, uint64_t v)
{
	msg_put_u32(m, (uint32_t)(v >> 32));
	msg_put_u32(m, (uint32_t)v);
}

void
msg_put_data(struct msg *m, const void *p, size_t n)
{
	if (n > sizeof m->data || m->len + 4 + n > sizeof m->data) {
		m->bad = 1;
		return;
	}
	msg_put_u32(m, (uint32_t)n);
	memcpy(m->data + m->len, p, n);
	m->len += n;
}

void
msg_put_str(struct msg *m, const char *s)
{
	msg_put_data(m, s, strlen(s));
}

int
msg_send(int fd, struct msg *m)
{
	if (m->bad) {
		errno = EMSGSIZE;
		return -1;
	}
	while (send(fd, m->data, m->len, MSG_NOSIGNAL) == -1) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

void
msg_free(struct msg *m)
{
	if (m != NULL) {
		explicit_bzero(m, sizeof *m);
		free(m);
	}
}

int
msg_recv(int fd, struct msg *m)
{
	ssize_t n;

	do
		n = recv(fd, m->data, sizeof m->data, MSG_TRUNC | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n == 0) {
		/* The peer closed (nobody sends an empty message): say so,
		 * or errno would still hold an earlier read's EAGAIN and
		 * the caller wait on a dead socket for ever. */
		errno = ECONNRESET;
		return 0;
	}
	if (n < 0)
		return 0;
	if ((size_t)n > sizeof m->data || n < MSG_HDR ||
	    ((m->data[0] << 8) | m->data[1]) != MSG_VERSION)
		return -1;
	m->len = (size_t)n;
	m->off = MSG_HDR;
	m->bad = 0;
	m->type = (uint16_t)((m->data[2] << 8) | m->data[3]);
	m->reqid = 0;
	for (int i = 0; i < 8; i++)
		m->reqid = (m->reqid << 8) | m->data[4 + i];
	return 1;
}

int
msg_get_u32(struct msg *m, uint32_t *v)
{
	if (m->bad || m->len - m->off < 4) {
		m->bad = 1;
		return -1;
	}
	*v = 0;
	for (int i = 0; i < 4; i++)
		*v = (*v << 8) | m->data[m->off++];
	return 0;
}

int
msg_get_u64(struct msg *m, uint64_t *v)
{
	uint32_t hi, lo;

	if (msg_get_u32(m, &hi) == -1 || msg_get_u32(m, &lo) == -1)
		return -1;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

int
msg_get_data(struct msg *m, const uint8_t **p, size_t *n)
{
	uint32_t len;

	if (msg_get_u32(m, &len) == -1 || m->len - m->off < len) {
		m->bad = 1;
		return -1;
	}
	*p = m->data + m->off;
	*n = len;
	m->off += len;
	return 0;
}

int
msg_get_str(struct msg *m, char *dst, size_t dstsz)
{
	const uint8_t *p;
	size_t n;

	if (msg_get_data(m, &p, &n) == -1 || n >= dstsz ||
	    memchr(p, '\0', n) != NULL) {
		m->bad = 1;
		return -1;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

int
msg_end(struct msg *m)
{
	if (m->bad || m->off != m->len) {
		m->bad = 1;
		return -1;
	}
	return 0;
}

int
msg_listen_private(const char *spool, const char *name, uid_t uid, gid_t gid)
{
	struct sockaddr_un sun;
	char dir[PATH_MAX];
	int fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(dir, sizeof dir, "%s/private", spool) >= sizeof dir ||
	    (size_t)snprintf(sun.sun_path, sizeof sun.sun_path, "%s/%s", dir,
	    name) >= sizeof sun.sun_path) {
		log_warnx("%s: spool path too long for a unix socket", name);
		return -1;
	}
	if ((mkdir(dir, 0750) == -1 && errno != EEXIST) || chmod(dir, 0750) == -1 ||
	    (uid != (uid_t)-1 && chown(dir, 0, gid) == -1)) {
		log_warn("%s: %s", name, dir);
		return -1;
	}
	unlink(sun.sun_path);
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1 || bind(fd, (struct sockaddr *)&sun, sizeof sun) == -1 ||
	    chmod(sun.sun_path, 0660) == -1 ||
	    (uid != (uid_t)-1 && chown(sun.sun_path, 0, gid) == -1) ||
	    listen(fd, 128) == -1) {
		log_warn("%s: %s", name, sun.sun_path);
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}
