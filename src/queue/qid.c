/* qid.c - queue id generation (see qid.h). */
#include "queue/qid.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static unsigned		qid_process;
static uint64_t		qid_last_usec;

void
qid_init(unsigned process_number)
{
	qid_process = process_number & 0xfff;
	qid_last_usec = 0;
}

void
qid_next(char out[QID_LEN + 1])
{
	struct timespec ts;
	uint64_t usec;

	clock_gettime(CLOCK_REALTIME, &ts);
	usec = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	/* Strictly increasing even if the clock stands still or steps back. */
	if (usec <= qid_last_usec)
		usec = qid_last_usec + 1;
	qid_last_usec = usec;
	snprintf(out, QID_LEN + 1, "%013llX%03X",
	    (unsigned long long)(usec & 0xFFFFFFFFFFFFFULL), qid_process);
}

int
qid_valid(const char *s)
{
	if (strlen(s) != QID_LEN)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'A' && *s <= 'F')))
			return 0;
	return 1;
}

unsigned
qid_owner(const char *qid, unsigned n)
{
	uint32_t h = 2166136261u;	/* FNV-1a, 32 bits */

	if (n <= 1)
		return 0;
	for (const unsigned char *p = (const unsigned char *)qid; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h % n;
}
