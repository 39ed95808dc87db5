/*
 * slowsync.c - an LD_PRELOAD shim for tests: fsync(2) and fdatasync(2)
 * of regular files wait SLOWSYNC_MS milliseconds first, as a slow disk
 * would, so that a test can act while a commit is in flight.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void
slow(int fd)
{
	const char *ms = getenv("SLOWSYNC_MS");
	struct stat st;

	if (ms != NULL && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		usleep((useconds_t)atoi(ms) * 1000);
}

int
fsync(int fd)
{
	static int (*real)(int);

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	slow(fd);
	return real(fd);
}

int
fdatasync(int fd)
{
	static int (*real)(int);

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	slow(fd);
	return real(fd);
}
