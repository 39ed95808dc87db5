/*
 * qrun.c - one delivery pass over one queued message, in the queue
 * manager: on a delivery thread, and on the loop for what needs it
 * (see qmgr.h and the state table in src/queue/README).
 *
 * Order of effects, so that a crash at any point neither loses a
 * recipient nor delivers twice to one already recorded:
 *   1. "begin N KEY NAME" fsynced, then the Maildir file NAME written,
 *      fsynced and linked into new/, then "done ..." fsynced.  A begin
 *      without a done is settled at the next pass by looking for NAME.
 *   2. A DSN is committed to the spool before the failures it reports
 *      are recorded as done (a crash between: a duplicate DSN, never a
 *      missing one).
 *   3. When every recipient is done: queue/QID is unlinked and queue/
 *      fsynced before status/QID goes (a status file without a message
 *      is removed at start-up).
 *   4. Remote targets not yet done are grouped by domain and handed to
 *      the SMTP client (deliver/remote.h), one remote_msg per domain
 *      and per REMOTE_RCPT_MAX of its targets (a transaction each),
 *      all reading the pass's one descriptor of the queue file (struct
 *      rflight); the message is then in flight (QRUN_INFLIGHT), keeps
 *      its lock, and no pass runs on it until every remote_msg has
 *      come back (the queue manager bounds how many messages are in
 *      flight: queue/qlimit.h).  Each outcome is recorded ("remote
 *      ..." records, fsynced) as it comes back, and the next pass
 *      acts on the records as on a local delivery's result: done, a
 *      DSN, or a deferral.  A crash before the record means the
 *      target is simply tried again (SMTP's at-least-once).  A record
 *      the status file refuses (a full disk) is kept by the queue
 *      manager, which runs no pass on the message until it is written
 *      (qrun_write_records).
 */
#include "queue/qmgr.h"
#include "deliver/local_maildir.h"
#include "deliver/remote.h"
#include "deliver/resolve.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/keyindex.h"
#include "lib/xalloc.h"
#include "queue/qpath.h"
#include "queue/bounce.h"
#include "queue/qenv.h"
#include "queue/qstatus.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAX		600
#define WHY_MAX		512

struct failure {
	size_t	 rcpt;
	char	 key[KEY_MAX];
	char	*final;
	char	*dsn;
	char	*why;
	char	*relay;		/* remote failures: "host[addr]:port" */
};

/* The remote_msgs of one pass; the message is in flight until every
 * one of them has come back.  They share the pass's descriptor of the
 * queue file, and with it the message's flock: one open file per
 * message in flight, however many domains it goes to (the SMTP client
 * reads it with pread(2), so sessions sending it at once do not move
 * each other's offset).  The flight closes it, once, when the last
 * remote_msg is back and its outcomes are recorded: until then no
 * `postern queue hold|delete` and no other queue manager can take the
 * message. */
struct rflight {
	struct qmgr	*q;
	char		 qid[QID_LEN + 1];
	int		 fd;		/* queue/QID, locked */
	unsigned	 pending;
	int		 submitting;	/* the pass is still handing them out */
	char		*unwritten;	/* records not appended, a line each */
	size_t		 unwritten_len;
};

/* A record that could not be appended (a full disk): kept, so that the
 * next pass neither loses a failure nor sends again what was sent. */
static void
flight_keep(struct rflight *f, const char *rec)
{
	size_t n = strlen(rec);

	f->unwritten = xreallocarray(f->unwritten, f->unwritten_len + n + 2,
	    1);
	memcpy(f->unwritten + f->unwritten_len, rec, n);
	f->unwritten_len += n;
	f->unwritten[f->unwritten_len++] = '\n';
	f->unwritten[f->unwritten_len] = '\0';
}

/* Every remote_msg is back: the queue manager takes the flight's
 * unwritten records with the news, and the lock goes with the file. */
static void
flight_landed(struct rflight *f)
{
	if (f->unwritten)
		log_warnx("%s queue: outcomes not recorded (status file); no "
		    "pass until they are", f->qid);
	if (f->q->landed != NULL)
		f->q->landed(f->qid, f->unwritten);
	else
		free(f->unwritten);
	if (f->fd != -1)
		close(f->fd);
	free(f);
}

/*
 * The message file at path, open and locked without waiting, and still
 * under that name: `postern queue hold|delete` holds the lock while it
 * renames.  -1 with errno: ENOENT (not there), EWOULDBLOCK (locked), or
 * ESTALE (moved away between the open and the lock).
 */
static int
qrun_open_locked(const char *path)
{
	struct stat a, b;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		errno = EWOULDBLOCK;
		goto fail;
	}
	if (fstat(fd, &a) == -1 || stat(path, &b) == -1 ||
	    a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
		errno = ESTALE;
		goto fail;
	}
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* queue/QID, else hold/QID, through qrun_open_locked; ENOENT when it is
 * in neither. */
static int
qrun_lock_message(struct qmgr *q, const char *qid, char *path, size_t pathsz)
{
	static const char *dirs[] = { "queue", "hold" };
	int fd = -1;

	for (size_t i = 0; fd == -1 && i < 2; i++) {
		if (qpath_make(path, pathsz, q->conf->spool, dirs[i], qid) == -1)
			return -1;
		if ((fd = qrun_open_locked(path)) == -1 && errno != ENOENT)
			return -1;
	}
	return fd;
}

int
qrun_write_records(struct qmgr *q, const char *qid, const char *records)
{
	struct qstatus st;
	const char *line, *nl;
	char path[PATH_MAX];
	int fd, rc = 0;

	/* Under the message's lock, as every status record is written
	 * (`postern queue` renames and deletes under it).  A message
	 * deleted meanwhile needs no records (and must not get a status
	 * file again); a held one keeps them. */
	if ((fd = qrun_lock_message(q, qid, path, sizeof path)) == -1)
		return errno == ENOENT ? 0 : -1;
	if (qstatus_open(q->conf->spool, qid, &st) == -1) {
		log_warn("%s queue: status file", qid);
		close(fd);
		return -1;
	}
	for (line = records; rc == 0 && *line; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL)
			break;			/* every line ends in one */
		if (qstatus_append(&st, 0, "%.*s", (int)(nl - line), line) == -1)
			rc = -1;
	}
	if (rc == 0 && qstatus_sync(&st) == -1)
		rc = -1;
	if (rc == -1)
		log_warn("%s queue: status append", qid);
	qstatus_close(&st);
	close(fd);			/* and its lock */
	return rc;
}

/* One remote_msg: not-yet-done remote targets of one domain, at most
 * REMOTE_RCPT_MAX of them. */
struct rgroup {
	struct remote_msg	 m;		/* first: remote's view */
	struct rflight		*flight;
	char			*domain;
	char			*from;
	struct remote_rcpt	*rcpts;
	size_t			*rcpt_of;	/* envelope rcpt of each */
	char			**keys;
	size_t			 n;
};

struct pass {
	struct qmgr	*q;
	char		 qid[QID_LEN + 1];
	struct qenv	 env;
	struct qstatus	 st;
	int		 fd;
	time_t		 now;
	struct failure	*fails;		/* waiting for their DSN */
	size_t		 nfails;
	struct failure	*defers;	/* for the delay warning */
	size_t		 ndefers;
	int		 expired;
	int		 flags;		/* QRUN_F_* */
	struct rgroup	**groups;	/* remote targets to submit */
	size_t		 ngroups;
	struct keyindex	 group_index;	/* groups by domain */
	char		**gkeys;	/* every group's keys (the groups') */
	size_t		 ngkeys;
	struct keyindex	 gkey_index;
};

/* Exponential back-off after `retries` failed passes. */
static time_t
qrun_backoff(const struct conf *c, unsigned retries)
{
	uint64_t d = c->retry_min ? c->retry_min : 1;

	for (unsigned i = 1; i < retries && d < c->retry_max; i++)
		d *= 2;
	if (d > c->retry_max)
		d = c->retry_max;
	return (time_t)d;
}

static double
pass_delay(const struct pass *p)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)(ts.tv_sec - p->env.arrival) + ts.tv_nsec / 1e9;
}

static void
log_delivery(const struct pass *p, const char *to, const char *orig,
    const char *relay, const char *dsn, const char *status, const char *why)
{
	char eto[600], eorig[600], ewhy[WHY_MAX * 2];

	str_escape(eto, sizeof eto, to, strlen(to));
	str_escape(eorig, sizeof eorig, orig, strlen(orig));
	str_escape(ewhy, sizeof ewhy, why, strlen(why));
	if (strcasecmp(to, orig) == 0)
		log_info("%s delivery to=<%s> relay=%s delay=%.2fs dsn=%s "
		    "status=%s (%s)", p->qid, eto, relay, pass_delay(p), dsn,
		    status, ewhy);
	else
		log_info("%s delivery to=<%s> orig_to=<%s> relay=%s "
		    "delay=%.2fs dsn=%s status=%s (%s)", p->qid, eto, eorig,
		    relay, pass_delay(p), dsn, status, ewhy);
}

static void
failure_add(struct failure **v, size_t *n, size_t rcpt, const char *key,
    const char *final, const char *dsn, const char *why)
{
	*v = xgrowarray(*v, *n, sizeof **v);
	(*v)[*n].rcpt = rcpt;
	(void)strlcpy((*v)[*n].key, key, KEY_MAX);	/* keys are bounded */
	(*v)[*n].final = xstrdup(final);
	(*v)[*n].dsn = xstrdup(dsn);
	(*v)[*n].why = xstrdup(why);
	(*v)[*n].relay = NULL;
	(*n)++;
}

static void
failures_free(struct failure *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].final);
		free(v[i].dsn);
		free(v[i].why);
		free(v[i].relay);
	}
	free(v);
}

/* The domain that Delivered-To: and logs use for a local mailbox. */
static const char *
rcpt_domain(const struct conf *c, const char *rcpt)
{
	const char *at = strrchr(rcpt, '@');

	/* The configured spelling: lower case. */
	for (size_t i = 0; at && i < c->ndomains; i++)
		if (strcasecmp(c->domains[i], at + 1) == 0)
			return c->domains[i];
	return c->ndomains ? c->domains[0] : c->hostname;
}

static int
rcpt_names_user(const struct rcpt_maps *m, const char *rcpt, const char *user)
{
	const struct user_entry *u;
	size_t n = strlen(user);

	if (strchr(rcpt, '@') == NULL)
		return 0;
	if (strncasecmp(rcpt, user, n) == 0 && rcpt[n] == '@' &&
	    aliases_lookup(&m->aliases, user) == NULL)
		return 1;
	return (u = userdb_lookup_address(&m->users, rcpt)) != NULL &&
	    strcmp(u->name, user) == 0;
}

/* The maps are shared with the other delivery threads and reloaded by
 * the loop (qmgr.c), which holds maps_lock for writing meanwhile. */
static void
pass_resolve(struct pass *p, const char *rcpt, struct alias_expansion *x)
{
	pthread_rwlock_rdlock(&p->q->maps_lock);
	resolve_rcpt(&p->q->maps, rcpt, x);
	pthread_rwlock_unlock(&p->q->maps_lock);
}

static int
pass_names_user(struct pass *p, const char *rcpt, const char *user)
{
	int yes;

	pthread_rwlock_rdlock(&p->q->maps_lock);
	yes = rcpt_names_user(&p->q->maps, rcpt, user);
	pthread_rwlock_unlock(&p->q->maps_lock);
	return yes;
}

/* A temporary failure: deferred, or failed once the lifetime is over. */
static void
pass_tempfail(struct pass *p, size_t i, const char *key, const char *final,
    const char *relay, const char *dsn, const char *why)
{
	const struct conf *c = p->q->conf;
	char ewhy[WHY_MAX];

	if (p->now - p->env.arrival >= (time_t)c->queue_lifetime) {
		char reason[WHY_MAX + 64];

		snprintf(reason, sizeof reason, "message expired after %llds "
		    "in the queue; last error: %s",
		    (long long)(p->now - p->env.arrival), why);
		/* RFC 3463 4.4.7: delivery time expired */
		failure_add(&p->fails, &p->nfails, i, key, final, "4.4.7",
		    reason);
		if (strcmp(relay, "local") != 0 && strcmp(relay, "none") != 0)
			p->fails[p->nfails - 1].relay = xstrdup(relay);
		p->expired = 1;
		return;
	}
	str_escape(ewhy, sizeof ewhy, why, strlen(why));
	if (qstatus_append(&p->st, 0, "defer %zu %s %s %lld %s", i, key, dsn,
	    (long long)p->now, ewhy) == -1)
		log_warn("%s queue: status append", p->qid);
	failure_add(&p->defers, &p->ndefers, i, key, final, dsn, why);
	if (strcmp(relay, "local") != 0 && strcmp(relay, "none") != 0)
		p->defers[p->ndefers - 1].relay = xstrdup(relay);
	log_delivery(p, final, p->env.rcpts[i], relay, dsn, "deferred", why);
}

/* Deliver one envelope recipient's local mailbox target. */
static void
pass_local(struct pass *p, size_t i, const char *key, const char *user,
    const char *final)
{
	const struct conf *c = p->q->conf;
	const struct qstatus_begin *b;
	struct maildir_msg m;
	char name[MAILDIR_NAME_MAX], why[WHY_MAX];
	int has;

	if (!resolve_mailbox_name_ok(user)) {
		failure_add(&p->fails, &p->nfails, i, key, final, "5.1.3",
		    "user name unusable as a mailbox");
		return;
	}
	/* A crash may have come between the link and the "done". */
	if ((b = qstatus_find_begin(&p->st, key)) != NULL) {
		has = maildir_has(c->mailboxes, user, b->name);
		if (has == -1) {
			snprintf(why, sizeof why, "maildir check: %s",
			    strerror(errno));
			pass_tempfail(p, i, key, final, "local", "4.2.0", why);
			return;
		}
		if (has == 1) {
			if (qstatus_append(&p->st, 1, "done %zu %s 2.0.0 "
			    "delivered %lld found after restart", i, key,
			    (long long)p->now) == -1) {
				log_warn("%s queue: status append", p->qid);
				return;
			}
			log_delivery(p, final, p->env.rcpts[i], "local", "2.0.0",
			    "sent", "delivered to maildir before a restart");
			return;
		}
	}
	m.return_path = p->env.from;
	m.delivered_to = final;
	m.fd = p->fd;
	m.offset = p->env.content;
	m.size = (uint64_t)p->env.size;
	maildir_name_new(name, sizeof name, &m);
	if (qstatus_append(&p->st, 1, "begin %zu %s %s", i, key, name) == -1) {
		snprintf(why, sizeof why, "queue status: %s", strerror(errno));
		pass_tempfail(p, i, key, final, "local", "4.3.0", why);
		return;
	}
	if (maildir_deliver(c->mailboxes, user, name, &m, why,
	    sizeof why) == -1) {
		/* Disk full and quota are "mailbox full" (RFC 3463 4.2.2);
		 * everything else a temporary local problem. */
		pass_tempfail(p, i, key, final, "local", errno == ENOSPC ||
		    errno == EDQUOT ? "4.2.2" : "4.2.0", why);
		return;
	}
	if (qstatus_append(&p->st, 1, "done %zu %s 2.0.0 delivered %lld "
	    "delivered to maildir", i, key, (long long)p->now) == -1) {
		/* The next pass finds the file by its name. */
		log_warn("%s queue: status append", p->qid);
		return;
	}
	log_delivery(p, final, p->env.rcpts[i], "local", "2.0.0", "sent",
	    "delivered to maildir");
}

/* A relay name as one status-record word. */
static void
relay_word(char *dst, size_t dstsz, const char *relay)
{
	size_t o = 0;

	if (relay == NULL || relay[0] == '\0')
		relay = "none";
	for (const char *s = relay; *s && o + 1 < dstsz; s++) {
		unsigned char c = (unsigned char)*s;

		dst[o++] = c <= 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	dst[o] = '\0';
}

static void
rgroup_free(struct rgroup *g)
{
	for (size_t k = 0; k < g->n; k++) {
		free(g->keys[k]);
		free(g->rcpts[k].cookie);	/* our copy of the address */
	}
	free(g->keys);
	free(g->rcpts);
	free(g->rcpt_of);
	free(g->domain);
	free(g->from);
	free(g);
}

/* The SMTP client is done with one remote_msg (on the queue manager's
 * loop): record every outcome, so that a crash from here on loses
 * none of them, and when the pass's last remote_msg is back, ask for
 * the pass that acts on them. */
static void
rgroup_done(struct remote_msg *m, void *arg)
{
	static const char *outcome[] = {
		[REMOTE_SENT] = "sent",
		[REMOTE_TEMPFAIL] = "deferred",
		[REMOTE_PERMFAIL] = "failed",
	};
	static const char *dflt[] = {
		[REMOTE_SENT] = "2.0.0",
		[REMOTE_TEMPFAIL] = "4.0.0",
		[REMOTE_PERMFAIL] = "5.0.0",
	};
	struct rgroup *g = arg;
	struct rflight *f = g->flight;
	struct qmgr *q = f->q;
	struct qstatus st;
	char relay[320], dsn[16], ewhy[WHY_MAX * 4], rec[4096];
	time_t now = time(NULL);
	int opened;

	/* A record that cannot be appended is kept for the queue manager
	 * (flight_keep), never dropped. */
	if (!(opened = qstatus_open(q->conf->spool, f->qid, &st) == 0))
		log_warn("%s queue: status file", f->qid);
	for (size_t k = 0; k < g->n; k++) {
		const struct remote_rcpt *r = &g->rcpts[k];
		unsigned o = (unsigned)r->outcome;

		if (o > REMOTE_PERMFAIL) {
			log_warnx("%s queue: remote outcome %u for <%s> out of "
			    "range", f->qid, o, r->addr);
			continue;
		}
		/* Stopping: whatever was cut short is tried again at the
		 * next start, without a back-off. */
		if (q->stopping && r->outcome == REMOTE_TEMPFAIL)
			continue;
		relay_word(dsn, sizeof dsn, r->dsn[0] ? r->dsn : dflt[o]);
		relay_word(relay, sizeof relay, r->relay);
		str_escape(ewhy, sizeof ewhy, r->why,
		    strnlen(r->why, sizeof r->why));
		snprintf(rec, sizeof rec, "remote %zu %s %s %s %lld %s %s",
		    g->rcpt_of[k], g->keys[k], outcome[o], dsn,
		    (long long)now, relay, ewhy);
		if (!opened || qstatus_append(&st, 0, "%s", rec) == -1) {
			if (opened)
				log_warn("%s queue: status append", f->qid);
			flight_keep(f, rec);
		}
	}
	if (opened) {
		if (qstatus_sync(&st) == -1)
			log_warn("%s queue: status fsync", f->qid);
		qstatus_close(&st);
	}
	(void)m;
	q->inflight--;
	rgroup_free(g);
	if (--f->pending == 0 && !f->submitting)
		flight_landed(f);
}

static const char *
pass_group_domain(const void *p, size_t i)
{
	return ((const struct pass *)p)->groups[i]->domain;
}

static const char *
pass_group_key(const void *p, size_t i)
{
	return ((const struct pass *)p)->gkeys[i];
}

static void
pass_groups_forget(struct pass *p)
{
	free(p->groups);
	p->groups = NULL;
	p->ngroups = 0;
	free(p->gkeys);
	p->gkeys = NULL;
	p->ngkeys = 0;
	keyindex_free(&p->group_index);
	keyindex_free(&p->gkey_index);
}

/* Add a remote target to its domain's group, once per pass.  A full
 * group is left as it is and the domain's next targets start another
 * (group_index holds the latest group of each domain): its own
 * remote_msg, which goes out at once beside the first, over the same
 * connection or another one to the domain. */
static void
pass_group_add(struct pass *p, size_t i, const char *key, const char *addr,
    const char *domain)
{
	struct rgroup *g = NULL;
	char *low = xstrdup(domain);
	size_t k;

	if (keyindex_find(&p->gkey_index, key, pass_group_key, p) != SIZE_MAX) {
		free(low);
		return;		/* the same address for another rcpt */
	}
	str_lower(low);
	if ((k = keyindex_find(&p->group_index, low, pass_group_domain, p)) !=
	    SIZE_MAX && p->groups[k]->n < REMOTE_RCPT_MAX) {
		g = p->groups[k];
		free(low);
	} else {
		g = xcalloc(1, sizeof *g);
		g->domain = low;
		g->from = xstrdup(p->env.from);
		p->groups = xreallocarray(p->groups, p->ngroups + 1,
		    sizeof *p->groups);
		p->groups[p->ngroups++] = g;
		/* Replaces a full group of the domain in the index. */
		keyindex_put(&p->group_index, p->ngroups - 1,
		    pass_group_domain, p);
	}
	g->rcpts = xgrowarray(g->rcpts, g->n, sizeof *g->rcpts);
	g->rcpt_of = xgrowarray(g->rcpt_of, g->n, sizeof *g->rcpt_of);
	g->keys = xgrowarray(g->keys, g->n, sizeof *g->keys);
	memset(&g->rcpts[g->n], 0, sizeof g->rcpts[g->n]);
	g->rcpts[g->n].cookie = xstrdup(addr);
	g->rcpts[g->n].addr = g->rcpts[g->n].cookie;
	g->rcpt_of[g->n] = i;
	g->keys[g->n] = xstrdup(key);
	p->gkeys = xgrowarray(p->gkeys, p->ngkeys, sizeof *p->gkeys);
	p->gkeys[p->ngkeys] = g->keys[g->n];
	keyindex_put(&p->gkey_index, p->ngkeys++, pass_group_key, p);
	g->n++;
}

/* Hand the pass's groups to the SMTP client.  1: in flight; 0: every
 * one came back at once (recorded already); -1: nothing to send. */
static int
pass_submit(struct pass *p)
{
	struct rflight *f;
	size_t n = p->ngroups;

	if (n == 0)
		return -1;
	f = xcalloc(1, sizeof *f);
	f->q = p->q;
	(void)strlcpy(f->qid, p->qid, sizeof f->qid);	/* valid: fits */
	f->fd = p->fd;		/* the flight's now, unless all come back */
	p->fd = -1;
	f->submitting = 1;
	for (size_t k = 0; k < n; k++) {
		struct rgroup *g = p->groups[k];

		g->flight = f;
		(void)strlcpy(g->m.qid, p->qid, sizeof g->m.qid);
		g->m.from = g->from;
		g->m.domain = g->domain;
		g->m.fd = f->fd;
		g->m.offset = p->env.content;
		g->m.size = p->env.size;
		g->m.body_8bit = p->env.body_8bit;
		g->m.rcpts = g->rcpts;
		g->m.nrcpts = g->n;
		g->m.done = rgroup_done;
		g->m.arg = g;
		f->pending++;
		p->q->inflight++;
		log_info("%s remote submit domain=%s nrcpt=%zu", p->qid,
		    g->domain, g->n);
		/* g may be gone when this returns. */
		remote_submit(p->q->remote, &g->m);
	}
	pass_groups_forget(p);
	f->submitting = 0;
	if (f->pending == 0) {
		/* Every one came back at once: the pass keeps the file, and
		 * its lock, for the records it has still to write. */
		p->fd = f->fd;
		f->fd = -1;
	}
	if (f->pending == 0 && f->unwritten) {
		/* Back at once, but not all recorded: the queue manager
		 * holds the records for the next pass, due at once (the
		 * flight is over, as for "all back" below). */
		flight_landed(f);
		return 0;
	}
	if (f->pending == 0) {
		free(f);
		return 0;
	}
	return 1;
}

/* A remote target: act on the outcome recorded when the SMTP client
 * came back, or send it now. */
static void
pass_remote(struct pass *p, size_t i, const char *key, const char *target,
    const char *final)
{
	const struct qstatus_remote *x = qstatus_find_remote(&p->st, key);
	const char *at = strrchr(target, '@');

	if (x != NULL) {
		char *dsn = xstrdup(x->dsn), *relay = xstrdup(x->relay);
		char *why = xstrdup(x->why);

		if (strcmp(x->outcome, "sent") == 0) {
			if (qstatus_append(&p->st, 1, "done %zu %s %s delivered "
			    "%lld via %s: %s", i, key, dsn, (long long)p->now,
			    relay, why) == -1)
				log_warn("%s queue: status append", p->qid);
			else
				log_delivery(p, final, p->env.rcpts[i], relay,
				    dsn, "sent", why);
		} else if (strcmp(x->outcome, "failed") == 0) {
			failure_add(&p->fails, &p->nfails, i, key, final, dsn,
			    why);
			p->fails[p->nfails - 1].relay = xstrdup(relay);
		} else
			pass_tempfail(p, i, key, final, relay, dsn, why);
		free(dsn);
		free(relay);
		free(why);
		return;
	}
	if (p->flags & QRUN_F_RESULTS) {
		/* Came back, yet nothing recorded: status/ is in trouble;
		 * retry after the back-off rather than at once. */
		pass_tempfail(p, i, key, final, "none", "4.3.0",
		    "the outcome of the last attempt could not be recorded");
		return;
	}
	if (p->q->remote == NULL) {
		pass_tempfail(p, i, key, final, "none", "4.3.5",
		    "remote delivery is not configured (see the log)");
		return;
	}
	if (at == NULL || at == target || at[1] == '\0') {
		failure_add(&p->fails, &p->nfails, i, key, final, "5.1.3",
		    "not a remote address");
		return;
	}
	pass_group_add(p, i, key, target, at + 1);
}

/* Resolve envelope recipient i and act on each target not yet done. */
static void
pass_rcpt(struct pass *p, size_t i)
{
	const struct conf *c = p->q->conf;
	const char *rcpt = p->env.rcpts[i];
	struct alias_expansion x;
	char key[KEY_MAX], final[600], why[WHY_MAX];
	int loop = p->env.nreceived > c->hop_limit;

	pass_resolve(p, rcpt, &x);
	for (size_t j = 0; j < x.n; j++) {
		const struct alias_result *r = &x.r[j];
		static const char *kinds[] = { "user", "remote", "fail",
		    "temp" };

		qstatus_key(key, sizeof key, kinds[r->kind], r->target);
		if (qstatus_is_done(&p->st, key))
			continue;	/* done earlier, or for another rcpt */
		if (r->kind == ALIAS_R_USER) {
			/* Delivered-To: the address as sent when it names
			 * the mailbox directly (by name or as a listed
			 * address), else user@domain (an alias). */
			if (pass_names_user(p, rcpt, r->target))
				(void)strlcpy(final, rcpt, sizeof final);
			else
				snprintf(final, sizeof final, "%s@%s",
				    r->target, rcpt_domain(c, rcpt));
		} else if (strchr(r->target, '@') == NULL &&
		    r->target[0] != ':')
			/* a local name that failed: an address for the DSN */
			snprintf(final, sizeof final, "%s@%s", r->target,
			    rcpt_domain(c, rcpt));
		else
			(void)strlcpy(final, r->target, sizeof final);
		if (loop) {
			snprintf(why, sizeof why, "mail forwarding loop: %u "
			    "Received: header fields (limit %u)",
			    p->env.nreceived, c->hop_limit);
			/* RFC 5321 section 6.3; RFC 3463 5.4.6 */
			failure_add(&p->fails, &p->nfails, i, key, final,
			    "5.4.6", why);
			continue;
		}
		switch (r->kind) {
		case ALIAS_R_USER:
			pass_local(p, i, key, r->target, final);
			break;
		case ALIAS_R_REMOTE:
			pass_remote(p, i, key, r->target, final);
			break;
		case ALIAS_R_FAIL:
			failure_add(&p->fails, &p->nfails, i, key, final,
			    r->dsn, r->reason);
			break;
		case ALIAS_R_TEMP:
			pass_tempfail(p, i, key, final, "local", r->dsn,
			    r->reason);
			break;
		}
	}
	alias_expansion_free(&x);
}

/* Room for what a DSN entry points to besides the failure itself. */
struct bounce_extra {
	char	host[256];
	char	diag[WHY_MAX];
};

static int
is_reply_code(const char *w)
{
	return (w[0] == '4' || w[0] == '5') && w[1] >= '0' && w[1] <= '9' &&
	    w[2] >= '0' && w[2] <= '9' &&
	    (w[3] == ' ' || w[3] == '-' || w[3] == '\0');
}

/* One DSN entry; for a remote failure, the remote MTA's name and its
 * reply as an "smtp" Diagnostic-Code (RFC 3464 section 2.3.6), taken
 * from "HOST[ADDR]:PORT said: 550 5.1.1 ... (in reply to ...)". */
static void
bounce_rcpt_fill(const struct pass *p, const struct failure *f,
    struct bounce_rcpt *br, struct bounce_extra *x)
{
	const char *w = f->why, *said, *end;

	br->orig = p->env.rcpts[f->rcpt];
	br->final = f->final;
	br->dsn = f->dsn;
	br->why = f->why;
	if (f->relay == NULL)
		return;
	/* "host[addr]:port" -> host */
	snprintf(x->host, sizeof x->host, "%.*s",
	    (int)strcspn(f->relay, "["), f->relay);
	if (x->host[0] != '\0' && strcmp(x->host, "none") != 0)
		br->remote_mta = x->host;
	if ((said = strstr(w, " said: ")) != NULL)
		w = said + 7;
	if (!is_reply_code(w))
		return;
	if ((end = strstr(w, " (in reply to ")) == NULL)
		end = w + strlen(w);
	snprintf(x->diag, sizeof x->diag, "%.*s", (int)(end - w), w);
	br->smtp_diag = x->diag;
}

/* Queue one DSN for the failures, then record them as done. */
static void
pass_bounce(struct pass *p)
{
	struct bounce_rcpt *br;
	char dsnqid[QID_LEN + 1], ewhy[WHY_MAX];
	struct bounce_extra *hosts;
	int queued = 0;

	if (p->nfails == 0)
		return;
	if (p->env.from[0] != '\0') {
		br = xcalloc(p->nfails, sizeof *br);
		hosts = xcalloc(p->nfails, sizeof *hosts);
		for (size_t k = 0; k < p->nfails; k++)
			bounce_rcpt_fill(p, &p->fails[k], &br[k], &hosts[k]);
		if (bounce_queue(p->q->conf, &p->env, BOUNCE_FAILED, br,
		    p->nfails, p->now, dsnqid) == -1) {
			/* Nothing recorded: the next pass tries again. */
			log_warn("%s queue: cannot queue the bounce", p->qid);
			free(br);
			free(hosts);
			return;
		}
		free(br);
		free(hosts);
		queued = 1;
	}
	for (size_t k = 0; k < p->nfails; k++) {
		struct failure *f = &p->fails[k];

		str_escape(ewhy, sizeof ewhy, f->why, strlen(f->why));
		if (qstatus_append(&p->st, 0, "done %zu %s %s failed %lld %s",
		    f->rcpt, f->key, f->dsn, (long long)p->now, ewhy) == -1)
			log_warn("%s queue: status append", p->qid);
		log_delivery(p, f->final, p->env.rcpts[f->rcpt],
		    f->relay ? f->relay : "local", f->dsn, "bounced", f->why);
	}
	if (qstatus_sync(&p->st) == -1)
		log_warn("%s queue: status fsync", p->qid);
	if (queued)
		log_info("%s bounce qid=%s to=<%s> nrcpt=%zu", p->qid, dsnqid,
		    p->env.from, p->nfails);
	else
		log_info("%s bounce not sent: the sender is <>", p->qid);
}

/* Is the sender to be told that the deferrals of this pass delay the
 * message (RFC 3464 "delayed")? */
static int
delay_warning_due(const struct pass *p)
{
	const struct conf *c = p->q->conf;

	return c->delay_warning != 0 && !p->st.warned && p->ndefers > 0 &&
	    p->env.from[0] != '\0' &&
	    p->now - p->env.arrival >= (time_t)c->delay_warning;
}

static void
pass_delay_warning(struct pass *p)
{
	const struct conf *c = p->q->conf;
	struct bounce_rcpt *br;
	char dsnqid[QID_LEN + 1];
	struct bounce_extra *hosts;

	if (!delay_warning_due(p))
		return;
	br = xcalloc(p->ndefers, sizeof *br);
	hosts = xcalloc(p->ndefers, sizeof *hosts);
	for (size_t k = 0; k < p->ndefers; k++)
		bounce_rcpt_fill(p, &p->defers[k], &br[k], &hosts[k]);
	if (bounce_queue(c, &p->env, BOUNCE_DELAYED, br, p->ndefers, p->now,
	    dsnqid) == 0) {
		if (qstatus_append(&p->st, 1, "warned %lld",
		    (long long)p->now) == -1)
			log_warn("%s queue: status append", p->qid);
		log_info("%s delay warning qid=%s to=<%s>", p->qid, dsnqid,
		    p->env.from);
	} else
		log_warn("%s queue: cannot queue the delay warning", p->qid);
	free(br);
	free(hosts);
}

static void
pass_remove(struct pass *p)
{
	const struct conf *c = p->q->conf;
	char path[PATH_MAX], dir[PATH_MAX];

	(void)qpath_make(path, sizeof path, c->spool, "queue", p->qid);
	(void)qpath_make(dir, sizeof dir, c->spool, "queue", "");
	if (unlink(path) == -1 || fsync_dir(dir) == -1) {
		log_warn("%s queue: remove %s", p->qid, path);
		return;
	}
	(void)qpath_make(dir, sizeof dir, c->spool, "status", "");
	if (unlink(p->st.path) == -1 && errno != ENOENT)
		log_warn("%s queue: remove %s", p->qid, p->st.path);
	else
		(void)fsync_dir(dir);	/* a leftover is cleaned at start */
	log_info("%s removed", p->qid);
}

/* Move an unreadable message aside, where an administrator looks. */
static void
pass_corrupt(struct pass *p, const char *why)
{
	const struct conf *c = p->q->conf;
	char from[PATH_MAX], to[PATH_MAX];

	(void)qpath_make(from, sizeof from, c->spool, "queue", p->qid);
	(void)qpath_make(to, sizeof to, c->spool, "corrupt", p->qid);
	log_warnx("%s queue: corrupt message (%s); moved to %s", p->qid, why,
	    to);
	if (rename(from, to) == -1)
		log_warn("%s queue: rename to %s", p->qid, to);
}

/* Free what a pass holds (not yet-submitted groups included). */
static void
pass_free(struct pass *p)
{
	for (size_t k = 0; k < p->ngroups; k++)	/* only if never submitted */
		rgroup_free(p->groups[k]);
	pass_groups_forget(p);
	failures_free(p->fails, p->nfails);
	failures_free(p->defers, p->ndefers);
	qstatus_close(&p->st);
	qenv_free(&p->env);
	if (p->fd != -1)
		close(p->fd);
	free(p);
}

struct pass *
qrun_start(struct qmgr *q, const char *qid, int flags,
    enum qrun_result *res, time_t *next)
{
	const struct conf *c = q->conf;
	struct pass *p = xcalloc(1, sizeof *p);
	char path[PATH_MAX], why[256];

	p->q = q;
	(void)strlcpy(p->qid, qid, sizeof p->qid);	/* valid: fits */
	p->flags = flags;
	p->now = time(NULL);
	p->st.fd = -1;
	*res = QRUN_DEFERRED;
	*next = p->now + qrun_backoff(c, 1);
	(void)qpath_make(path, sizeof path, c->spool, "queue", qid);
	if ((p->fd = qrun_open_locked(path)) == -1) {
		if (errno == ENOENT || errno == ESTALE)
			*res = QRUN_GONE;
		else if (errno == EWOULDBLOCK)
			*next = p->now + 1;	/* `postern queue` at work */
		else
			log_warn("%s queue: open", qid);
		goto end;
	}
	if (qenv_read(p->fd, &p->env, why, sizeof why) == -1 ||
	    qenv_check_content(p->fd, &p->env, why, sizeof why) == -1) {
		pass_corrupt(p, why);
		*res = QRUN_GONE;
		goto end;
	}
	/* Another file's envelope (a stale block) is not this message's,
	 * whatever its seal says. */
	if (strcmp(p->env.qid, qid) != 0) {
		snprintf(why, sizeof why, "envelope of %s", p->env.qid);
		pass_corrupt(p, why);
		*res = QRUN_GONE;
		goto end;
	}
	if (qstatus_open(c->spool, qid, &p->st) == -1) {
		log_warn("%s queue: status file", qid);
		goto end;
	}
	/* A long-deferred message with many targets gathers records at
	 * every pass: without this, its file would reach QSTATUS_MAX and
	 * could no longer be read, expired or bounced.  Here, on the
	 * delivery thread, never on the loop. */
	if (qstatus_compact(&p->st) == -1)
		log_warn("%s queue: compacting the status file", qid);
	if (p->st.ndone == 0 && p->st.retries == 0 && p->st.nbegins == 0 &&
	    p->st.nremote_records == 0)
		log_info("%s queue active from=<%s> size=%lld nrcpt=%zu", qid,
		    p->env.from, (long long)p->env.size, p->env.nrcpts);

	for (size_t i = 0; i < p->env.nrcpts; i++) {
		const struct qstatus_rcpt *r = qstatus_rcpt(&p->st, i);

		if (r == NULL || !r->complete)
			pass_rcpt(p, i);
	}
	return p;
end:
	pass_free(p);
	return NULL;
}

int
qrun_end_needs_loop(const struct pass *p)
{
	return p->ngroups > 0 || p->nfails > 0 || delay_warning_due(p);
}

enum qrun_result
qrun_end(struct pass *p, time_t *next)
{
	struct qmgr *q = p->q;
	const struct conf *c = q->conf;
	const char *qid = p->qid;
	enum qrun_result res = QRUN_DEFERRED;
	size_t pending = 0;
	unsigned char *open_by;
	int flight;

	*next = p->now + qrun_backoff(c, 1);
	/* Remote targets go out now; the failures found so far get their
	 * DSN without waiting for them. */
	flight = pass_submit(p);
	pass_bounce(p);
	/* Which recipients are finished now: none of their targets is
	 * deferred (a failed DSN leaves its failures unrecorded too). */
	/* Once over the deferrals and failures, not once per recipient:
	 * a message may have tens of thousands. */
	open_by = xcalloc(p->env.nrcpts ? p->env.nrcpts : 1, 1);
	for (size_t k = 0; k < p->ndefers; k++)
		if (p->defers[k].rcpt < p->env.nrcpts)
			open_by[p->defers[k].rcpt] = 1;
	for (size_t k = 0; k < p->nfails; k++)
		if (p->fails[k].rcpt < p->env.nrcpts &&
		    !qstatus_is_done(&p->st, p->fails[k].key))
			open_by[p->fails[k].rcpt] = 1;
	for (size_t i = 0; i < p->env.nrcpts; i++) {
		const struct qstatus_rcpt *r = qstatus_rcpt(&p->st, i);
		int open_ = open_by[i];

		if (r != NULL && r->complete)
			continue;
		if (!open_) {
			/* A recipient whose local delivery's "done" could
			 * not be written is not complete either. */
			struct alias_expansion x;
			char key[KEY_MAX];
			static const char *kinds[] = { "user", "remote",
			    "fail", "temp" };

			pass_resolve(p, p->env.rcpts[i], &x);
			for (size_t j = 0; j < x.n && !open_; j++) {
				qstatus_key(key, sizeof key, kinds[x.r[j].kind],
				    x.r[j].target);
				open_ = !qstatus_is_done(&p->st, key);
			}
			alias_expansion_free(&x);
		}
		if (open_)
			pending++;
		else if (qstatus_append(&p->st, 0, "complete %zu", i) == -1)
			log_warn("%s queue: status append", qid);
	}
	free(open_by);
	/* Nothing open, yet something in flight: the maps changed between
	 * the pass's start and its end (an alias no longer names the remote
	 * target just handed out).  The message stays until its flight has
	 * landed, so that no outcome is written for a message gone. */
	if (pending == 0 && flight != 1) {
		pass_remove(p);
		res = QRUN_REMOVED;
		goto out;
	}
	/* No "retry" record now: it would mark the remote outcomes still
	 * to come (or just recorded) as acted on. */
	if (flight == 1) {
		res = QRUN_INFLIGHT;
		goto out;
	}
	if (flight == 0) {
		*next = p->now;		/* all back already: act on them */
		goto out;
	}
	pass_delay_warning(p);
	*next = p->now + qrun_backoff(c, p->st.retries + 1);
	/* Expire on time even with a long back-off. */
	if (*next > p->env.arrival + (time_t)c->queue_lifetime &&
	    p->env.arrival + (time_t)c->queue_lifetime > p->now)
		*next = p->env.arrival + (time_t)c->queue_lifetime;
	if (qstatus_append(&p->st, 0, "retry %lld %lld", (long long)p->now,
	    (long long)*next) == -1)
		log_warn("%s queue: status append", qid);
out:
	pass_free(p);
	return res;
}

void
qrun_abandon(struct pass *p)
{
	pass_free(p);
}

void
qrun_remove_deleted(struct qmgr *q, const char *qid)
{
	const struct conf *c = q->conf;
	char path[PATH_MAX], dir[PATH_MAX];

	if (!qid_valid(qid))
		return;
	(void)qpath_make(path, sizeof path, c->spool, "delete", qid);
	if (unlink(path) == -1) {
		if (errno != ENOENT)
			log_warn("%s queue: remove %s", qid, path);
		return;
	}
	(void)qpath_make(dir, sizeof dir, c->spool, "delete", "");
	(void)fsync_dir(dir);
	(void)qpath_make(path, sizeof path, c->spool, "status", qid);
	(void)unlink(path);
	log_info("%s removed (deleted by the administrator)", qid);
}
