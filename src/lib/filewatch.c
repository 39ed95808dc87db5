/* filewatch.c - changes to a file, once whole (see filewatch.h). */
#include "lib/filewatch.h"

#include <string.h>
#include <sys/stat.h>

static int
same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

int
filewatch_changed(struct filewatch *w, const char *path, int at_once)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return -1;
	if (same_time(&st.st_mtim, &w->mtime) && st.st_ino == w->ino)
		return 0;
	/* Edited in place since the previous look: wait for the next. */
	if (!at_once && st.st_ino == w->ino &&
	    (!same_time(&st.st_mtim, &w->seen_mtime) ||
	    st.st_size != w->seen_size)) {
		w->seen_mtime = st.st_mtim;
		w->seen_size = st.st_size;
		return 0;
	}
	w->mtime = st.st_mtim;
	w->ino = st.st_ino;
	return 1;
}

void
filewatch_reset(struct filewatch *w)
{
	memset(w, 0, sizeof *w);
}
