/*
 * failepoll.c - an LD_PRELOAD shim for tests: epoll_ctl(2) refuses to
 * add a descriptor (ENOSPC, as at fs.epoll.max_user_watches) while the
 * file named by FAILEPOLL_FLAG exists, so that a test can see what the
 * server does when a new connection cannot be watched, and after.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

int
epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	static int (*real)(int, int, int, struct epoll_event *);
	const char *flag = getenv("FAILEPOLL_FLAG");

	if (real == NULL)
		real = (int (*)(int, int, int, struct epoll_event *))
		    dlsym(RTLD_NEXT, "epoll_ctl");
	if (op == EPOLL_CTL_ADD && flag != NULL && access(flag, F_OK) == 0) {
		errno = ENOSPC;
		return -1;
	}
	return real(epfd, op, fd, ev);
}
