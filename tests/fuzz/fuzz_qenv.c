/*
 * fuzz_qenv.c - the queue file reader (qenv_read, qenv_check_content),
 * which the queue manager runs on whatever a crash or a person left in
 * queue/.  An accepted file has a qid, a sender and a recipient; its
 * content starts after the envelope and runs to the end of the file;
 * a seal it passes gives exactly that length.
 */
#include "fuzz.h"
#include "queue/qenv.h"

#include <sys/mman.h>
#include <unistd.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct qenv e;
	char why[256];

	if (fd == -1 && (fd = memfd_create("fuzz_qenv", MFD_CLOEXEC)) == -1)
		abort();
	if (ftruncate(fd, 0) == -1 ||
	    pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	why[0] = '\0';
	if (qenv_read(fd, &e, why, sizeof why) == -1) {
		FUZZ_ASSERT(why[0] != '\0');
		return 0;
	}
	FUZZ_ASSERT(qid_valid(e.qid));
	FUZZ_ASSERT(e.from != NULL && e.nrcpts > 0);
	FUZZ_ASSERT(e.content >= 2 && (size_t)e.content <= size);
	FUZZ_ASSERT(memcmp(data + e.content - 2, "\n\n", 2) == 0);
	FUZZ_ASSERT((size_t)e.size == size - (size_t)e.content);
	FUZZ_ASSERT(e.headers.len <= (size_t)e.size);
	FUZZ_ASSERT(!e.sealed || e.seal_size == (uint64_t)e.size);
	why[0] = '\0';
	if (qenv_check_content(fd, &e, why, sizeof why) == -1)
		FUZZ_ASSERT(e.sealed && why[0] != '\0');
	qenv_free(&e);
	return 0;
}
