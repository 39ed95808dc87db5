/*
 * qrun.c - one delivery pass over one queued message, in the queue
 * manager (see qmgr.h and the state table in src/queue/README).
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
 */
#include "queue/qmgr.h"
#include "deliver/local_maildir.h"
#include "deliver/resolve.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"
#include "queue/qpath.h"
#include "queue/bounce.h"
#include "queue/qenv.h"
#include "queue/qstatus.h"

#include <errno.h>
#include <fcntl.h>
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
};

struct pass {
	struct qmgr	*q;
	const char	*qid;
	struct qenv	 env;
	struct qstatus	 st;
	int		 fd;
	time_t		 now;
	struct failure	*fails;		/* waiting for their DSN */
	size_t		 nfails;
	struct failure	*defers;	/* for the delay warning */
	size_t		 ndefers;
	int		 expired;
};

time_t
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
	*v = xreallocarray(*v, *n + 1, sizeof **v);
	(*v)[*n].rcpt = rcpt;
	(void)strlcpy((*v)[*n].key, key, KEY_MAX);	/* keys are bounded */
	(*v)[*n].final = xstrdup(final);
	(*v)[*n].dsn = xstrdup(dsn);
	(*v)[*n].why = xstrdup(why);
	(*n)++;
}

static void
failures_free(struct failure *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].final);
		free(v[i].dsn);
		free(v[i].why);
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
		p->expired = 1;
		return;
	}
	str_escape(ewhy, sizeof ewhy, why, strlen(why));
	if (qstatus_append(&p->st, 0, "defer %zu %s %s %lld %s", i, key, dsn,
	    (long long)p->now, ewhy) == -1)
		log_warn("%s queue: status append", p->qid);
	failure_add(&p->defers, &p->ndefers, i, key, final, dsn, why);
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
	maildir_name_new(name, sizeof name);
	if (qstatus_append(&p->st, 1, "begin %zu %s %s", i, key, name) == -1) {
		snprintf(why, sizeof why, "queue status: %s", strerror(errno));
		pass_tempfail(p, i, key, final, "local", "4.3.0", why);
		return;
	}
	m.return_path = p->env.from;
	m.delivered_to = final;
	m.fd = p->fd;
	m.offset = p->env.content;
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

/* Resolve envelope recipient i and act on each target not yet done. */
static void
pass_rcpt(struct pass *p, size_t i)
{
	const struct conf *c = p->q->conf;
	const char *rcpt = p->env.rcpts[i];
	struct alias_expansion x;
	char key[KEY_MAX], final[600], why[WHY_MAX];
	int loop = p->env.nreceived > c->hop_limit;

	resolve_rcpt(&p->q->maps, rcpt, &x);
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
			if (rcpt_names_user(&p->q->maps, rcpt, r->target))
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
			pass_tempfail(p, i, key, final, "none", "4.4.1",
			    "remote delivery not available yet");
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

/* Queue one DSN for the failures, then record them as done. */
static void
pass_bounce(struct pass *p)
{
	struct bounce_rcpt *br;
	char dsnqid[QID_LEN + 1], ewhy[WHY_MAX];
	int queued = 0;

	if (p->nfails == 0)
		return;
	if (p->env.from[0] != '\0') {
		br = xcalloc(p->nfails, sizeof *br);
		for (size_t k = 0; k < p->nfails; k++) {
			br[k].orig = p->env.rcpts[p->fails[k].rcpt];
			br[k].final = p->fails[k].final;
			br[k].dsn = p->fails[k].dsn;
			br[k].why = p->fails[k].why;
		}
		if (bounce_queue(p->q->conf, &p->env, BOUNCE_FAILED, br,
		    p->nfails, p->now, dsnqid) == -1) {
			/* Nothing recorded: the next pass tries again. */
			log_warn("%s queue: cannot queue the bounce", p->qid);
			free(br);
			return;
		}
		free(br);
		queued = 1;
	}
	for (size_t k = 0; k < p->nfails; k++) {
		struct failure *f = &p->fails[k];

		str_escape(ewhy, sizeof ewhy, f->why, strlen(f->why));
		if (qstatus_append(&p->st, 0, "done %zu %s %s failed %lld %s",
		    f->rcpt, f->key, f->dsn, (long long)p->now, ewhy) == -1)
			log_warn("%s queue: status append", p->qid);
		log_delivery(p, f->final, p->env.rcpts[f->rcpt], "local",
		    f->dsn, "bounced", f->why);
	}
	if (qstatus_sync(&p->st) == -1)
		log_warn("%s queue: status fsync", p->qid);
	if (queued)
		log_info("%s bounce qid=%s to=<%s> nrcpt=%zu", p->qid, dsnqid,
		    p->env.from, p->nfails);
	else
		log_info("%s bounce not sent: the sender is <>", p->qid);
}

static void
pass_delay_warning(struct pass *p)
{
	const struct conf *c = p->q->conf;
	struct bounce_rcpt *br;
	char dsnqid[QID_LEN + 1];

	if (c->delay_warning == 0 || p->st.warned || p->ndefers == 0 ||
	    p->env.from[0] == '\0' ||
	    p->now - p->env.arrival < (time_t)c->delay_warning)
		return;
	br = xcalloc(p->ndefers, sizeof *br);
	for (size_t k = 0; k < p->ndefers; k++) {
		br[k].orig = p->env.rcpts[p->defers[k].rcpt];
		br[k].final = p->defers[k].final;
		br[k].dsn = p->defers[k].dsn;
		br[k].why = p->defers[k].why;
	}
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

enum qrun_result
qrun_message(struct qmgr *q, const char *qid, time_t *next)
{
	const struct conf *c = q->conf;
	struct pass p;
	struct stat a, b;
	char path[PATH_MAX], why[256];
	enum qrun_result res = QRUN_DEFERRED;
	size_t pending = 0;

	memset(&p, 0, sizeof p);
	p.q = q;
	p.qid = qid;
	p.now = time(NULL);
	p.st.fd = -1;
	*next = p.now + qrun_backoff(c, 1);
	(void)qpath_make(path, sizeof path, c->spool, "queue", qid);
	if ((p.fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return QRUN_GONE;
		log_warn("%s queue: open", qid);
		return QRUN_DEFERRED;
	}
	/* `postern queue hold|delete` holds this lock while it renames;
	 * after waiting, make sure the file is still queue/QID. */
	if (flock(p.fd, LOCK_EX | LOCK_NB) == -1) {
		close(p.fd);
		*next = p.now + 1;
		return QRUN_DEFERRED;
	}
	if (fstat(p.fd, &a) == -1 || stat(path, &b) == -1 ||
	    a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
		close(p.fd);
		return QRUN_GONE;
	}
	if (qenv_read(p.fd, &p.env, why, sizeof why) == -1) {
		pass_corrupt(&p, why);
		close(p.fd);
		return QRUN_GONE;
	}
	if (qstatus_open(c->spool, qid, &p.st) == -1) {
		log_warn("%s queue: status file", qid);
		goto out;
	}
	if (p.st.ndone == 0 && p.st.retries == 0 && p.st.nbegins == 0)
		log_info("%s queue active from=<%s> size=%lld nrcpt=%zu", qid,
		    p.env.from, (long long)p.env.size, p.env.nrcpts);
	rcpt_maps_refresh(&q->maps, p.now);

	for (size_t i = 0; i < p.env.nrcpts; i++) {
		const struct qstatus_rcpt *r = qstatus_rcpt(&p.st, i);

		if (r == NULL || !r->complete)
			pass_rcpt(&p, i);
	}
	pass_bounce(&p);
	/* Which recipients are finished now: none of their targets is
	 * deferred (a failed DSN leaves its failures unrecorded too). */
	for (size_t i = 0; i < p.env.nrcpts; i++) {
		const struct qstatus_rcpt *r = qstatus_rcpt(&p.st, i);
		int open_ = 0;

		if (r != NULL && r->complete)
			continue;
		for (size_t k = 0; k < p.ndefers && !open_; k++)
			open_ = p.defers[k].rcpt == i;
		for (size_t k = 0; k < p.nfails && !open_; k++)
			open_ = p.fails[k].rcpt == i &&
			    !qstatus_is_done(&p.st, p.fails[k].key);
		if (!open_) {
			/* A recipient whose local delivery's "done" could
			 * not be written is not complete either. */
			struct alias_expansion x;
			char key[KEY_MAX];
			static const char *kinds[] = { "user", "remote",
			    "fail", "temp" };

			resolve_rcpt(&q->maps, p.env.rcpts[i], &x);
			for (size_t j = 0; j < x.n && !open_; j++) {
				qstatus_key(key, sizeof key, kinds[x.r[j].kind],
				    x.r[j].target);
				open_ = !qstatus_is_done(&p.st, key);
			}
			alias_expansion_free(&x);
		}
		if (open_)
			pending++;
		else if (qstatus_append(&p.st, 0, "complete %zu", i) == -1)
			log_warn("%s queue: status append", qid);
	}
	if (pending == 0) {
		pass_remove(&p);
		res = QRUN_REMOVED;
		goto out;
	}
	pass_delay_warning(&p);
	*next = p.now + qrun_backoff(c, p.st.retries + 1);
	/* Expire on time even with a long back-off. */
	if (*next > p.env.arrival + (time_t)c->queue_lifetime &&
	    p.env.arrival + (time_t)c->queue_lifetime > p.now)
		*next = p.env.arrival + (time_t)c->queue_lifetime;
	if (qstatus_append(&p.st, 0, "retry %lld %lld", (long long)p.now,
	    (long long)*next) == -1)
		log_warn("%s queue: status append", qid);
out:
	failures_free(p.fails, p.nfails);
	failures_free(p.defers, p.ndefers);
	qstatus_close(&p.st);
	qenv_free(&p.env);
	close(p.fd);
	return res;
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
