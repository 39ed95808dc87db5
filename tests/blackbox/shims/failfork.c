/*
 * failfork.c - an LD_PRELOAD shim for tests: fork(2) fails with EAGAIN
 * (as at the process limit) while the file named by FAILFORK_FLAG
 * exists, so that a test can see what the server does when it cannot
 * start a child, and after.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

pid_t
fork(void)
{
	static pid_t (*real)(void);
	const char *flag = getenv("FAILFORK_FLAG");

	if (real == NULL)
		real = (pid_t (*)(void))dlsym(RTLD_NEXT, "fork");
	if (flag != NULL && access(flag, F_OK) == 0) {
		errno = EAGAIN;
		return -1;
	}
	return real();
}
