/*
 * aliases_index.c - the aliases index (see aliases_index.h).  Written by
 * `postern aliases`; read by the workers (RCPT checks) and the queue
 * manager, which reload when the source or the index changes.
 */
#include "deliver/aliases_index.h"
#include "lib/buf.h"
#include "lib/fsio.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INDEX_MAGIC	"postern-aliases-index 1"
#define INDEX_MAX	(1 << 28)

int
aliases_index_path(const char *src, char *dst, size_t dstsz)
{
	if ((size_t)snprintf(dst, dstsz, "%s.idx", src) >= dstsz) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
aliases_index_write(const char *src, const struct aliases *al)
{
	char path[PATH_MAX];
	struct stat st;
	struct buf b;
	int rc = 0, saved;

	if (aliases_index_path(src, path, sizeof path) == -1 ||
	    stat(src, &st) == -1)
		return -1;
	buf_init(&b, INDEX_MAX);
	rc |= buf_printf(&b, "%s %lld %ld %lld\n", INDEX_MAGIC,
	    (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec,
	    (long long)st.st_size);
	for (size_t i = 0; i < al->nentries; i++) {
		rc |= buf_puts(&b, al->entries[i].name);
		for (size_t j = 0; j < al->entries[i].ntargets; j++)
			rc |= buf_printf(&b, "\t%s", al->entries[i].targets[j]);
		rc |= buf_putc(&b, '\n');
	}
	if (rc != 0) {
		buf_free(&b);
		errno = EFBIG;
		return -1;
	}
	/* Readable by the unprivileged processes, like the source. */
	rc = write_file_atomic(path, b.data, b.len, 0644);
	saved = errno;
	buf_free(&b);
	errno = saved;
	return rc;
}

int
aliases_index_load(const char *src, struct aliases *al)
{
	char path[PATH_MAX], *text, *line, *save = NULL;
	long long sec, size;
	long nsec;
	struct stat st;
	int n = 0;

	memset(al, 0, sizeof *al);
	if (aliases_index_path(src, path, sizeof path) == -1 ||
	    stat(src, &st) == -1 ||
	    (text = read_text_file(path, INDEX_MAX, NULL)) == NULL)
		return -1;
	if (sscanf(text, INDEX_MAGIC " %lld %ld %lld\n%n", &sec, &nsec, &size,
	    &n) != 3 || n == 0 || sec != (long long)st.st_mtim.tv_sec ||
	    nsec != (long)st.st_mtim.tv_nsec || size != (long long)st.st_size)
		goto bad;
	for (line = strtok_r(text + n, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		struct alias_entry e = { 0 };
		char *f, *fsave = NULL;

		if ((f = strtok_r(line, "\t", &fsave)) == NULL)
			goto bad;
		e.name = xstrdup(f);
		while ((f = strtok_r(NULL, "\t", &fsave)) != NULL) {
			e.targets = xreallocarray(e.targets, e.ntargets + 1,
			    sizeof *e.targets);
			e.targets[e.ntargets++] = xstrdup(f);
		}
		al->entries = xreallocarray(al->entries, al->nentries + 1,
		    sizeof *al->entries);
		al->entries[al->nentries++] = e;
		/* The lookup is a binary search: the order must hold. */
		if (e.ntargets == 0 || (al->nentries > 1 &&
		    strcmp(al->entries[al->nentries - 2].name, e.name) >= 0))
			goto bad;
	}
	free(text);
	return 0;
bad:
	free(text);
	aliases_free(al);
	return -1;
}

int
aliases_load_indexed(const char *src, struct aliases *al, FILE *errf)
{
	if (aliases_index_load(src, al) == 0)
		return 0;
	return aliases_load(src, al, errf);
}
