/*
 * connlimit.c - per-client concurrent connection counts shared by all
 * workers (see connlimit.h).
 *
 * An open-addressing hash table of client keys (client_key.h) in shared
 * memory, under one robust lock; each operation is a short probe and a
 * few stores.  A slot whose total dropped to zero is reused by the next
 * new client that probes past it.  When no slot is free within the
 * probe window (more distinct clients connected at once than the table
 * holds), the connection is let through uncounted: the table must not
 * become a way to lock everyone out.
 */
#include "policy/connlimit.h"
#include "policy/client_key.h"
#include "lib/log.h"
#include "lib/shm.h"

#include <stdint.h>
#include <string.h>

#define CL_SLOTS	4096	/* distinct clients connected at once */
#define CL_PROBE	64
/* Two generations of the largest worker count (`workers` 256: a reload
 * overlaps the old and new ones), with room to spare: 4.3 MB of shared
 * memory, of which only the rows of clients seen are ever touched.
 * (With the default of one worker per core, many generations fit; with
 * 256, a second reload while the first's old workers still drain finds
 * no column, and says so: those workers' connections go uncounted.) */
#define CL_COLUMNS	(2 * 256 + 32)

struct cl_slot {
	uint8_t		 key[CLIENT_KEY_LEN];
	uint32_t	 total;		/* sum of the columns */
	uint8_t		 used;		/* 0: never used: ends a probe */
};

struct cl_table {
	pthread_mutex_t	 lock;
	pid_t		 owner[CL_COLUMNS];	/* 0: free */
	struct cl_slot	 slots[CL_SLOTS];
	uint16_t	 count[CL_SLOTS][CL_COLUMNS];
};

static struct cl_table	*cl;
static int		 cl_column = -1;	/* this worker's; master: the next child's */

/* Each total is the sum of its row.  A process that died between the
 * two stores left one off: counted again from the columns, so that a
 * total can neither wrap below zero at the child's exit nor keep a
 * phantom connection for ever. */
static void
cl_lock(void)
{
	if (shm_mutex_lock(&cl->lock) == 0)
		return;
	for (size_t i = 0; i < CL_SLOTS; i++) {
		uint32_t sum = 0;

		for (int c = 0; c < CL_COLUMNS; c++)
			sum += cl->count[i][c];
		cl->slots[i].total = sum;
	}
}

void
connlimit_init(void)
{
	if (cl != NULL)
		return;
	cl = shm_xalloc(sizeof *cl);
	shm_mutex_init(&cl->lock);
}

void
connlimit_before_fork(void)
{
	cl_column = -1;
	if (cl == NULL)
		return;
	cl_lock();
	for (int i = 0; i < CL_COLUMNS; i++)
		if (cl->owner[i] == 0) {
			cl->owner[i] = -1;	/* reserved until the fork */
			cl_column = i;
			break;
		}
	shm_mutex_unlock(&cl->lock);
	if (cl_column == -1)
		log_warnx("connlimit: no free column; the next worker's "
		    "connections are not counted");
}

void
connlimit_after_fork(pid_t pid)
{
	if (cl == NULL || cl_column == -1)
		return;
	cl_lock();
	cl->owner[cl_column] = pid > 0 ? pid : 0;
	shm_mutex_unlock(&cl->lock);
	cl_column = -1;
}

void
connlimit_child_exited(pid_t pid)
{
	if (cl == NULL || pid <= 0)
		return;
	cl_lock();
	for (int c = 0; c < CL_COLUMNS; c++) {
		if (cl->owner[c] != pid)
			continue;
		for (size_t i = 0; i < CL_SLOTS; i++) {
			struct cl_slot *s = &cl->slots[i];
			uint32_t n = cl->count[i][c];

			s->total = s->total > n ? s->total - n : 0;
			cl->count[i][c] = 0;
		}
		cl->owner[c] = 0;
	}
	shm_mutex_unlock(&cl->lock);
}

static size_t
cl_hash(const uint8_t *key)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (size_t i = 0; i < CLIENT_KEY_LEN; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % CL_SLOTS;
}

/* The slot for key, claiming a free one if create; NULL if none. */
static struct cl_slot *
cl_find(const uint8_t *key, int create)
{
	struct cl_slot *reuse = NULL;
	size_t h = cl_hash(key);

	for (size_t k = 0; k < CL_PROBE; k++) {
		struct cl_slot *s = &cl->slots[(h + k) % CL_SLOTS];

		if (s->used && memcmp(s->key, key, CLIENT_KEY_LEN) == 0)
			return s;
		if (s->used && s->total == 0 && reuse == NULL)
			reuse = s;
		if (!s->used) {
			if (reuse == NULL)
				reuse = s;
			break;
		}
	}
	if (!create || reuse == NULL)
		return NULL;
	memcpy(reuse->key, key, CLIENT_KEY_LEN);
	reuse->used = 1;
	return reuse;
}

int
connlimit_acquire(const struct sockaddr *sa, unsigned max)
{
	uint8_t key[CLIENT_KEY_LEN];
	struct cl_slot *s;
	int rc = 0;

	if (cl == NULL || cl_column == -1 || max == 0 ||
	    client_key(sa, key) == -1)
		return 0;
	cl_lock();
	if ((s = cl_find(key, 1)) != NULL) {
		size_t i = (size_t)(s - cl->slots);

		if (s->total >= max)
			rc = -1;
		else if (cl->count[i][cl_column] < UINT16_MAX) {
			cl->count[i][cl_column]++;
			s->total++;
			rc = 1;
		}
	}
	shm_mutex_unlock(&cl->lock);
	return rc;
}

void
connlimit_release(const struct sockaddr *sa)
{
	uint8_t key[CLIENT_KEY_LEN];
	struct cl_slot *s;

	if (cl == NULL || cl_column == -1 || client_key(sa, key) == -1)
		return;
	cl_lock();
	if ((s = cl_find(key, 0)) != NULL) {
		size_t i = (size_t)(s - cl->slots);

		if (cl->count[i][cl_column] > 0) {
			cl->count[i][cl_column]--;
			s->total--;
		}
	}
	shm_mutex_unlock(&cl->lock);
}
