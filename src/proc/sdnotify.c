/*
 * sdnotify.c - readiness and the pid file (see sdnotify.h).  Runs in
 * the master.  The notification socket is a unix datagram socket named
 * by $NOTIFY_SOCKET: a path, or "@name" in the abstract namespace.
 */
#include "proc/sdnotify.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/strutil.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int
sdnotify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t plen;
	socklen_t len;
	int fd;

	if (path == NULL || path[0] == '\0')
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof sun.sun_path) {
		log_warnx("master: NOTIFY_SOCKET '%s' is not usable", path);
		return -1;
	}
	memcpy(sun.sun_path, path, plen);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';		/* abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen +
	    (path[0] == '/' ? 1 : 0));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1 ||
	    sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len) == -1) {
		log_warn("master: notify %s", path);
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
pidfile_write(const char *path)
{
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());

	if (write_file_atomic(path, pid, (size_t)n, 0644) == -1) {
		log_warn("master: pid file %s", path);
		return -1;
	}
	return 0;
}

void
pidfile_remove(const char *path)
{
	char *text = read_text_file(path, 64, NULL);

	/* Another instance may have taken the name over since. */
	if (text != NULL && atoi(text) == (int)getpid())
		unlink(path);
	free(text);
}
