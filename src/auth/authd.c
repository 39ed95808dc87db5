/*
 * authd.c - the auth process: the only postern process that reads
 * password hashes and mechanism secrets.  Workers connect to its unix
 * socket (SOCK_SEQPACKET, one message per datagram, proc/msg.h) and relay
 * SASL exchanges; authd runs the mechanisms (src/sasl), verifies
 * passwords with crypt(3) here, off the workers' event loops and on
 * threads of its own, throttles failures per client address
 * (throttle.c) and answers with a result.  It never talks to the
 * network.
 */
#include "auth/authd.h"
#include "auth/apop.h"
#include "auth/pwhash.h"
#include "auth/throttle.h"
#include "auth/userdb.h"
#include "auth/userdb_pam.h"
#include "auth/userdb_pg.h"
#include "auth/userview.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/strutil.h"
#include "lib/workpool.h"
#include "lib/xalloc.h"
#include "policy/client_key.h"
#include "policy/relay.h"
#include "proc/msg.h"
#include "proc/msgq.h"
#include "sasl/sasl.h"
#include "state/state.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define AUTHD_MAX_EXCHANGES	1024	/* per connection (worker) */
#define AUTHD_MAX_VERIFIERS	8	/* threads; each hash takes its memory */

struct authd_verify;

/* APOP's one step, kept while the address's block is asked. */
struct authd_apop {
	char			 user[SASL_USER_MAX + 1];
	char			 stamp[APOP_TIMESTAMP_MAX + 1];
	char			 digest[APOP_DIGEST_LEN + 1];
};

/*
 * One authentication.  It waits for at most one thing at a time: the
 * state store (whether the address is blocked, then the failure's
 * count), a password's verification, or a failure's delay; a step from
 * the worker meanwhile is ignored, a cancel ends it.
 */
struct authd_exchange {
	uint64_t		 reqid;
	struct sasl_server	 sasl;		/* unused for APOP */
	struct sasl_backend	 be;		/* arg: this exchange */
	struct authd_apop	*apop;		/* an APOP login, else NULL */
	unsigned char		*ir;		/* the first step's data, while */
	size_t			 irlen;		/* the block is asked */
	int			 has_ir;
	struct state_ask	*ask;		/* a state store question */
	struct authd_verify	*verifying;	/* its password, on a thread */
	uint64_t		 session;	/* the worker's, for the log */
	char			 peer[64];
	char			 local[64];	/* the address the client
						   connected to, or "" */
	char			 key[64];	/* what the throttle counts:
						   the address, or its /64 */
	char			 ok_user[SASL_USER_MAX + 1];
	struct authd_conn	*conn;
	struct event		*delay;		/* a failure answered late */
	TAILQ_ENTRY(authd_exchange) entry;
};

struct authd_conn {
	int			 fd;
	struct event		*ev;
	struct msgq		*q;		/* answers the socket cannot
						   take yet */
	int			 lost;		/* the worker takes no more */
	int			 backlog_told;	/* answers wait: logged */
	unsigned		 nexchanges;
	TAILQ_HEAD(, authd_exchange) exchanges;
	TAILQ_ENTRY(authd_conn)	 entry;
};

static struct {
	const struct conf	*conf;
	struct event_base	*base;
	struct rcpt_maps	 maps;		/* its users part */
	unsigned		 published;	/* users generation in the view */
	gid_t			 view_gid;	/* group that reads the view */
	struct event		*view_timer;
	struct userdb_pg	*pg;		/* users postgresql://; else NULL */
	struct workpool		*verifiers;	/* NULL: verify on the loop */
	/* PAM's one thread (made at the first PAM login): modules are
	 * called one at a time, as not all of them are thread-safe, but
	 * off the loop, as a module may take its time. */
	struct workpool		*pam;
	TAILQ_HEAD(, authd_conn) conns;
} authd;

/*
 * A password verified on a thread: a yescrypt verification takes
 * milliseconds of CPU on purpose, and on the loop every other login,
 * cached or not, would wait behind it while one core did all the
 * hashing.  The job owns copies of what it needs.  An exchange that
 * ends first (the client went, the worker cancelled) abandons it; a job
 * not yet started is then skipped.
 */
struct authd_verify {
	struct workpool_job	 job;		/* first */
	/* NULL once abandoned; the thread reads it too. */
	struct authd_exchange	*_Atomic x;
	int			 ran;		/* the hash was computed */
	char			 user[SASL_USER_MAX + 1];
	char			 peer[64];	/* for the log */
	const char		*mech;
	char			*password;
	char			*hash;		/* the user's, or the dummy's */
	int			 known;		/* a usable user's hash */
	int			 cacheable;	/* mac is its cache entry */
	unsigned char		 mac[32];
	int			 verdict;	/* pwhash_verify's */
};

static void authd_finish(struct authd_exchange *, enum sasl_status);

/* Publish the hash-free view the workers read (auth/userview.h) if the
 * users changed since. */
static void
authd_users_publish(void *unused)
{
	if (authd.conf->users[0] &&
	    authd.maps.users_generation != authd.published &&
	    userview_publish(authd.conf, &authd.maps.users,
	    authd.view_gid) == 0)
		authd.published = authd.maps.users_generation;
}

/* Reload the users source if it changed, and publish. */
static void
authd_users_refresh(time_t now)
{
	rcpt_maps_refresh(&authd.maps, now);
	if (authd.pg)	/* asked at most once per users-cache, off the loop */
		userdb_pg_refresh(authd.pg, now);
	authd_users_publish(NULL);
}

/* A lock or a new user must reach the workers without waiting for the
 * next login. */
static void
authd_view_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval tv = { 0, 500000 };

	authd_users_refresh(time(NULL));
	evtimer_add(authd.view_timer, &tv);
}

/* ---------------------------------------------------------------- */
/* the users file, as the SASL mechanisms see it                      */

static const struct user_entry *
authd_usable_user(const char *name)
{
	const struct user_entry *u;
	time_t now = time(NULL);

	authd_users_refresh(now);
	u = userdb_lookup(&authd.maps.users, name);
	if (u == NULL || u->locked || (u->expires && now >= u->expires))
		return NULL;
	return u;
}

/*
 * Verified passwords, remembered for a minute: a yescrypt verification
 * costs milliseconds of CPU on purpose, and a client that logs in for
 * every message would pay it each time.  An entry is the HMAC-SHA256,
 * under a key drawn at random when the process starts and never
 * written anywhere, of the user name, the password and the stored hash;
 * no password and nothing a guess could be checked against offline is
 * kept.  Only successes are remembered (a wrong password always costs
 * the full verification, so guessing gets no faster), a changed hash
 * no longer matches, and any change of the users file empties the
 * cache, so passwd, lock and del take effect at once.
 */
#define AUTHD_CACHE_SLOTS	1024
#define AUTHD_CACHE_TTL		60	/* seconds */

static struct {
	unsigned char	 key[32];
	int		 keyed;
	struct timespec	 users_mtime;	/* the file the entries came from */
	struct {
		unsigned char	 mac[32];
		time_t		 expires;
	} slot[AUTHD_CACHE_SLOTS];
} authd_cache;

static int
authd_cache_mac(const char *user, const char *password, const char *hash,
    unsigned char mac[32])
{
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	size_t n = 0;
	int rc = -1;

	if (ctx && EVP_MAC_init(ctx, authd_cache.key, sizeof authd_cache.key,
	    params) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)user, strlen(user) + 1) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)password,
	    strlen(password) + 1) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)hash, strlen(hash)) == 1 &&
	    EVP_MAC_final(ctx, mac, &n, 32) == 1 && n == 32)
		rc = 0;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	return rc;
}

/* The slot for mac, emptied first if the users file has changed. */
static size_t
authd_cache_slot(const unsigned char mac[32])
{
	const struct timespec *t = &authd.maps.users_watch.mtime;
	uint32_t h;

	if (t->tv_sec != authd_cache.users_mtime.tv_sec ||
	    t->tv_nsec != authd_cache.users_mtime.tv_nsec) {
		memset(authd_cache.slot, 0, sizeof authd_cache.slot);
		authd_cache.users_mtime = *t;
	}
	memcpy(&h, mac, sizeof h);
	return h % AUTHD_CACHE_SLOTS;
}

static void
authd_cache_put(const unsigned char mac[32], time_t now)
{
	size_t i = authd_cache_slot(mac);

	memcpy(authd_cache.slot[i].mac, mac, 32);
	authd_cache.slot[i].expires = now + AUTHD_CACHE_TTL;
}

static void
authd_verify_work(struct workpool_job *wj)
{
	struct authd_verify *v = (struct authd_verify *)wj;

	if (atomic_load(&v->x) != NULL) {
		v->verdict = strcmp(v->hash, USERDB_PAM_HASH) == 0 ?
		    userdb_pam_verify(authd.conf->pam_service, v->user,
		    v->password) : pwhash_verify(v->password, v->hash);
		v->ran = 1;
	}
}

static void
authd_verify_free(struct authd_verify *v)
{
	OPENSSL_cleanse(v->password, strlen(v->password));
	free(v->password);
	free(v->hash);
	OPENSSL_cleanse(v->mac, sizeof v->mac);
	free(v);
}

static void
authd_verify_done(struct workpool_job *wj)
{
	struct authd_verify *v = (struct authd_verify *)wj;
	struct authd_exchange *x = atomic_load(&v->x);
	const struct user_entry *u;
	int verdict = v->known ? v->verdict : 0;
	char user[SASL_USER_MAX * 4 + 1];

	if (x == NULL) {
		/* Clients that give up while the checks queue show here. */
		str_escape(user, sizeof user, v->user, strlen(v->user));
		log_info("authd: auth abandoned user=%s address=%s mech=%s "
		    "hash=%s", user, v->peer, v->mech, v->ran ? "done" :
		    "skipped");
	} else {
		x->verifying = NULL;
		/* The account may have been locked, removed or given a new
		 * password while the hash ran: the verdict holds only for
		 * the hash that is still the user's. */
		if (verdict == 1 && ((u = authd_usable_user(v->user)) == NULL ||
		    strcmp(u->hash, v->hash) != 0))
			verdict = 0;
		if (verdict == 1 && v->cacheable)
			authd_cache_put(v->mac, time(NULL));
		authd_finish(x, sasl_server_verdict(&x->sasl, verdict));
	}
	authd_verify_free(v);
}

/* Hand the verification to a thread of pool; the exchange waits for
 * it. */
static int
authd_verify_later(struct workpool *pool, struct authd_exchange *x,
    const char *user, const char *password, const char *hash, int known,
    const unsigned char *mac)
{
	struct authd_verify *v = xcalloc(1, sizeof *v);

	v->job.work = authd_verify_work;
	v->job.done = authd_verify_done;
	atomic_init(&v->x, x);
	strlcpy(v->user, user, sizeof v->user);
	strlcpy(v->peer, x->peer, sizeof v->peer);
	v->mech = x->sasl.mech->name;
	v->password = xstrdup(password);
	v->hash = xstrdup(hash);
	v->known = known;
	if (mac != NULL) {
		memcpy(v->mac, mac, sizeof v->mac);
		v->cacheable = 1;
	}
	x->verifying = v;
	workpool_submit(pool, &v->job);
	return SASL_VERIFY_LATER;
}

/* The password against the user's hash, or the system account's. */
static int
authd_check(const struct user_entry *u, const char *password)
{
	if (strcmp(u->hash, USERDB_PAM_HASH) == 0)
		return userdb_pam_verify(authd.conf->pam_service, u->name,
		    password);
	return pwhash_verify(password, u->hash);
}

/*
 * The backend's verify_password: 1 from the cache, or SASL_VERIFY_LATER
 * with the hash on a thread (authd_verify_done gives the verdict).
 * Without threads, the verification runs here.
 */
static int
authd_verify_password(void *arg, const char *user, const char *password)
{
	/* A hash of a password nobody has, so that unknown and locked
	 * users cost the same time as wrong passwords. */
	static char dummy[128];
	struct authd_exchange *x = arg;
	const struct user_entry *u = authd_usable_user(user);
	unsigned char mac[32];
	time_t now = time(NULL);
	size_t i;
	int ok, cacheable = 0;

	if (dummy[0] == '\0' && pwhash_make("postern-timing-dummy", dummy,
	    sizeof dummy) == -1)
		return -1;
	/* The users database cannot be asked: nobody is let in. */
	if (authd.pg && !userdb_pg_usable(authd.pg))
		return -1;
	if (u == NULL) {
		if (authd.verifiers)
			return authd_verify_later(authd.verifiers, x, user,
			    password, dummy, 0, NULL);
		(void)pwhash_verify(password, dummy);
		return 0;
	}
	/* A system account can be locked where postern cannot see it
	 * (passwd -l): PAM is asked every time, never the cache, on its
	 * own thread (authd.pam). */
	if (strcmp(u->hash, USERDB_PAM_HASH) == 0) {
		if (authd.pam == NULL && (authd.pam = workpool_new(authd.base,
		    1)) == NULL)
			log_warn("authd: no thread for PAM; asking it here");
		if (authd.pam == NULL)
			return authd_check(u, password);
		return authd_verify_later(authd.pam, x, user, password,
		    u->hash, 1, NULL);
	}
	if (!authd_cache.keyed &&
	    RAND_bytes(authd_cache.key, sizeof authd_cache.key) == 1)
		authd_cache.keyed = 1;
	if (authd_cache.keyed &&
	    authd_cache_mac(user, password, u->hash, mac) == 0) {
		cacheable = 1;
		i = authd_cache_slot(mac);
		if (authd_cache.slot[i].expires > now &&
		    CRYPTO_memcmp(authd_cache.slot[i].mac, mac, sizeof mac) == 0) {
			OPENSSL_cleanse(mac, sizeof mac);
			return 1;
		}
	}
	if (authd.verifiers) {
		ok = authd_verify_later(authd.verifiers, x, user, password,
		    u->hash, 1, cacheable ? mac : NULL);
		OPENSSL_cleanse(mac, sizeof mac);
		return ok;
	}
	if ((ok = authd_check(u, password)) == 1 && cacheable)
		authd_cache_put(mac, now);
	OPENSSL_cleanse(mac, sizeof mac);
	return ok;
}

/* secrets field: kind=value;kind=value */
static int
authd_get_secret(void *arg, const char *user, const char *kind, char *dst,
    size_t dstsz)
{
	const struct user_entry *u = authd_usable_user(user);
	size_t klen = strlen(kind);
	const char *p;

	if (authd.pg && !userdb_pg_usable(authd.pg))
		return -1;
	if (u == NULL)
		return 0;
	for (p = u->secrets; p && *p; ) {
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len > klen && strncmp(p, kind, klen) == 0 && p[klen] == '=') {
			if (len - klen - 1 >= dstsz)
				return -1;
			memcpy(dst, p + klen + 1, len - klen - 1);
			dst[len - klen - 1] = '\0';
			return (int)(len - klen - 1);
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

/* DIGEST-MD5's digest-uri host (sasl.h): our host name, one of our
 * domains, or the address the client connected to, in any of its
 * spellings ("::1" as "0::1"; 127.0.0.1 as "::ffff:127.0.0.1"). */
static int
authd_host_is_ours(void *arg, const char *host)
{
	struct authd_exchange *x = arg;
	struct sockaddr_storage ss;
	struct netprefix local;
	char name[256];
	size_t n = strlen(host);

	/* A name: written absolute or not; this server's, a local
	 * domain, or a host under one (smtp.example.jp for a server
	 * named mail.example.jp: clients name the server they were set
	 * up with); "localhost" for a client on this machine. */
	if (n > 0 && n < sizeof name && host[n - 1] == '.') {
		memcpy(name, host, n - 1);
		name[n - 1] = '\0';
		host = name;
	}
	if (strcasecmp(host, authd.conf->hostname) == 0 ||
	    conf_is_local_domain(authd.conf, host))
		return 1;
	for (const char *dot = strchr(host, '.'); dot != NULL;
	    dot = strchr(dot + 1, '.'))
		if (conf_is_local_domain(authd.conf, dot + 1))
			return 1;
	if (strcasecmp(host, "localhost") == 0)
		return sockaddr_numeric(x->local, 0, &ss) > 0 &&
		    sockaddr_is_loopback((struct sockaddr *)&ss);
	if (netprefix_parse(x->local, &local) == -1 ||
	    sockaddr_numeric(host, 0, &ss) == 0)
		return 0;
	netprefix_unmap(&local);
	return netprefix_match(&local, (struct sockaddr *)&ss);
}

/* Each exchange has a copy, its arg pointing at the exchange. */
static const struct sasl_backend authd_backend = {
	NULL, authd_verify_password, authd_get_secret, authd_host_is_ours,
};

/* ---------------------------------------------------------------- */
/* exchanges                                                          */

static void
authd_exchange_free(struct authd_exchange *x)
{
	TAILQ_REMOVE(&x->conn->exchanges, x, entry);
	x->conn->nexchanges--;
	if (x->verifying) {
		atomic_store(&x->verifying->x, NULL);
	}
	/* A question already sent still counts in the store (a failure
	 * stays counted); only its answer is dropped. */
	state_ask_cancel(x->ask);
	if (x->delay)
		event_free(x->delay);
	if (x->ir) {
		OPENSSL_cleanse(x->ir, x->irlen);
		free(x->ir);
	}
	if (x->apop) {
		OPENSSL_cleanse(x->apop, sizeof *x->apop);
		free(x->apop);
	}
	if (x->sasl.mech)
		sasl_server_free(&x->sasl);
	free(x);
}

/* The exchange's user, as the log shows it. */
static void
authd_log_user(const struct authd_exchange *x, char *dst, size_t dstsz)
{
	const char *u = x->apop ? x->apop->user : x->sasl.user;

	str_escape(dst, dstsz, u, strlen(u));
	if (dst[0] == '\0')
		strlcpy(dst, "-", dstsz);
}

static const char *
authd_mech_name(const struct authd_exchange *x)
{
	return x->apop ? "APOP" : x->sasl.mech->name;
}

static struct authd_exchange *
authd_exchange_find(struct authd_conn *c, uint64_t reqid)
{
	struct authd_exchange *x;

	TAILQ_FOREACH(x, &c->exchanges, entry)
		if (x->reqid == reqid)
			return x;
	return NULL;
}

/*
 * The worker takes no more answers (a send failed, or too many wait):
 * the socket is shut, so that the worker sees it at once and answers
 * its sessions itself, and the read event frees the connection, out of
 * the way of whatever is answering now.
 */
static void
authd_conn_lose(void *arg)
{
	struct authd_conn *c = arg;

	log_warn("authd: send");
	c->lost = 1;
	(void)shutdown(c->fd, SHUT_RDWR);
}

static void
authd_conn_send(struct authd_conn *c, const struct msg *m)
{
	if (c->lost)
		return;
	if (msgq_send(c->q, m) == -1) {
		authd_conn_lose(c);
		return;
	}
	/* Once per spell of a worker not reading (stopped, or stuck in a
	 * long callback): its sessions wait for these answers. */
	if (msgq_len(c->q) == 0)
		c->backlog_told = 0;
	else if (!c->backlog_told) {
		c->backlog_told = 1;
		log_info("authd: a worker is not reading; its answers wait "
		    "(up to %d)", MSGQ_MAX);
	}
}

static void
authd_send_result(struct authd_conn *c, uint64_t reqid,
    enum msg_auth_result r, const char *user)
{
	struct msg m;

	msg_init(&m, MSG_AUTH_RESULT, reqid);
	msg_put_u32(&m, r);
	msg_put_str(&m, user ? user : "");
	authd_conn_send(c, &m);
}

static void
authd_delayed_fail(evutil_socket_t fd, short ev, void *arg)
{
	struct authd_exchange *x = arg;

	authd_send_result(x->conn, x->reqid, AUTH_RESULT_FAIL, NULL);
	authd_exchange_free(x);
}

/* Run one step and answer: a challenge, or the result (now, or once
 * the password's verification is done). */
static void
authd_step(struct authd_exchange *x, const uint8_t *in, size_t n, int has_in)
{
	struct buf out;
	enum sasl_status st;
	struct msg m;

	buf_init(&out, SASL_MSG_MAX);
	st = sasl_server_step(&x->sasl, has_in ? in : NULL, n, &out);
	if (st == SASL_CONTINUE) {
		msg_init(&m, MSG_AUTH_CHALLENGE, x->reqid);
		msg_put_data(&m, out.data ? out.data : "", out.len);
		authd_conn_send(x->conn, &m);
	}
	buf_free(&out);
	if (st != SASL_CONTINUE && st != SASL_PENDING)
		authd_finish(x, st);
}

/* The failure counted (failures: what the store says now), then
 * answered late: each failure makes the next answer slower. */
static void
authd_fail_counted(void *arg, int failures)
{
	struct authd_exchange *x = arg;
	const struct conf *c = authd.conf;
	unsigned max = c->auth_max_failures ? c->auth_max_failures : 1;
	struct timeval tv = { failures < 5 ? failures : 5, 0 };
	char user[SASL_USER_MAX * 4 + 1];

	x->ask = NULL;
	authd_log_user(x, user, sizeof user);
	log_info("authd: auth failed user=%s address=%s mech=%s failures=%d%s",
	    user, x->peer, authd_mech_name(x), failures,
	    failures > 0 && (unsigned)failures >= max ? " blocked" : "");
	x->delay = evtimer_new(authd.base, authd_delayed_fail, x);
	evtimer_add(x->delay, &tv);
}

static void
authd_fail(struct authd_exchange *x, time_t now)
{
	int failures = state_auth_fail(x->key, now, authd_fail_counted, x,
	    &x->ask);

	if (failures != STATE_PENDING)
		authd_fail_counted(x, failures);
}

/* The verdict stands only if the address was not blocked meanwhile:
 * guesses sent in parallel all start before the block, and the right
 * one must not get in after the block came. */
static void
authd_ok_block_known(void *arg, int blocked)
{
	struct authd_exchange *x = arg;

	x->ask = NULL;
	if (blocked != 0) {
		if (blocked > 0)
			log_info("authd: auth refused user=%s address=%s: "
			    "blocked during its check", x->ok_user, x->peer);
		authd_send_result(x->conn, x->reqid, blocked > 0 ?
		    AUTH_RESULT_BLOCKED : AUTH_RESULT_TEMPFAIL, NULL);
		authd_exchange_free(x);
		return;
	}
	log_info("authd: auth ok user=%s address=%s mech=%s", x->ok_user,
	    x->peer, authd_mech_name(x));
	authd_send_result(x->conn, x->reqid, AUTH_RESULT_OK, x->ok_user);
	authd_exchange_free(x);
}

/* A success does not clear the address's failures: one account's login
 * would otherwise let its owner guess other accounts' passwords without
 * end.  They expire with auth-throttle's window. */
static void
authd_ok(struct authd_exchange *x, const char *user)
{
	const struct user_entry *u = userdb_lookup(&authd.maps.users, user);
	int blocked;

	/* The name as stored, not as typed: the lookup ignores case, and
	 * the workers key rate limits, sender checks and the mailbox on
	 * this name ("Hoge" must not be a second "hoge"). */
	(void)strlcpy(x->ok_user, u != NULL ? u->name : user,
	    sizeof x->ok_user);
	blocked = state_auth_blocked(x->key, time(NULL), authd_ok_block_known,
	    x, &x->ask);
	if (blocked != STATE_PENDING)
		authd_ok_block_known(x, blocked);
}

/* The exchange's result: answered, and the exchange freed, at once or
 * after a failure's delay. */
static void
authd_finish(struct authd_exchange *x, enum sasl_status st)
{
	struct authd_conn *c = x->conn;
	time_t now = time(NULL);

	switch (st) {
	case SASL_OK:
		authd_ok(x, x->sasl.user);
		return;
	case SASL_FAIL:
		if (x->sasl.refusal[0]) {
			/* Refused before any secret was looked at (a
			 * DIGEST-MD5 response made for another server): no
			 * guess to count, and a client set up with a name
			 * this server does not know must not get its address
			 * blocked for it. */
			log_info("%016" PRIx64 " authd: auth refused address=%s "
			    "mech=%s: %s", x->session, x->peer,
			    x->sasl.mech->name, x->sasl.refusal);
			authd_send_result(c, x->reqid, AUTH_RESULT_FAIL, NULL);
			break;
		}
		authd_fail(x, now);
		return;
	case SASL_TEMPFAIL:
		log_warnx("authd: auth tempfail address=%s mech=%s", x->peer,
		    x->sasl.mech->name);
		authd_send_result(c, x->reqid, AUTH_RESULT_TEMPFAIL, NULL);
		break;
	case SASL_MALFORMED:
	case SASL_CONTINUE:	/* not results: authd_step's */
	case SASL_PENDING:
		log_info("authd: auth malformed address=%s mech=%s", x->peer,
		    x->sasl.mech->name);
		authd_send_result(c, x->reqid, AUTH_RESULT_MALFORMED, NULL);
		break;
	}
	authd_exchange_free(x);
}

static void authd_apop_check(struct authd_exchange *);

/* Whether the address is blocked after too many failures: BLOCKED; if
 * the blocks cannot be read (shared state down), nobody gets in:
 * TEMPFAIL.  Otherwise the exchange's first step runs. */
static void
authd_block_known(void *arg, int blocked)
{
	struct authd_exchange *x = arg;
	unsigned char *ir = x->ir;
	size_t irlen = x->irlen;

	x->ask = NULL;
	if (blocked < 0) {
		authd_send_result(x->conn, x->reqid, AUTH_RESULT_TEMPFAIL, NULL);
		authd_exchange_free(x);
		return;
	}
	if (blocked) {
		log_info("authd: auth refused address=%s: blocked after too "
		    "many failures", x->peer);
		authd_send_result(x->conn, x->reqid, AUTH_RESULT_BLOCKED, NULL);
		authd_exchange_free(x);
		return;
	}
	if (x->apop) {
		authd_apop_check(x);
		return;
	}
	/* The step may end the exchange: the data is freed here.  An
	 * empty initial response ("=") is data, not none. */
	x->ir = NULL;
	authd_step(x, ir ? ir : (const unsigned char *)"", irlen, x->has_ir);
	if (ir) {
		OPENSSL_cleanse(ir, irlen);
		free(ir);
	}
}

/* The throttle's unit for a client address (policy/client_key.h): one
 * IPv4 address, or an IPv6 /64, which a single host can hold whole and
 * would otherwise use to get a fresh count per address. */
static void
authd_throttle_key(const char *peer, char *key, size_t keysz)
{
	struct sockaddr_storage ss;

	if (sockaddr_numeric(peer, 0, &ss) == 0 ||
	    client_key_format((struct sockaddr *)&ss, key, keysz) == -1)
		(void)strlcpy(key, peer, keysz);
}

/* A new exchange, counted on its connection.  authd_exchange_begin
 * then asks first whether its address is blocked. */
static struct authd_exchange *
authd_exchange_new(struct authd_conn *c, uint64_t reqid, const char *peer)
{
	struct authd_exchange *x = xcalloc(1, sizeof *x);

	x->reqid = reqid;
	x->conn = c;
	strlcpy(x->peer, peer, sizeof x->peer);
	authd_throttle_key(peer, x->key, sizeof x->key);
	TAILQ_INSERT_TAIL(&c->exchanges, x, entry);
	c->nexchanges++;
	return x;
}

static void
authd_exchange_begin(struct authd_exchange *x)
{
	int blocked = state_auth_blocked(x->key, time(NULL),
	    authd_block_known, x, &x->ask);

	if (blocked != STATE_PENDING)
		authd_block_known(x, blocked);
}

static int
authd_handle_start(struct authd_conn *c, struct msg *m)
{
	char mechname[32];
	uint32_t flags, has_ir;
	uint64_t session;
	const uint8_t *ir;
	size_t irlen;
	const struct sasl_mech *mech;
	struct authd_exchange *x;
	char peer[64], local[64];

	if (msg_get_str(m, mechname, sizeof mechname) == -1 ||
	    msg_get_u64(m, &session) == -1 ||
	    msg_get_str(m, peer, sizeof peer) == -1 ||
	    msg_get_str(m, local, sizeof local) == -1 ||
	    msg_get_u32(m, &flags) == -1 || msg_get_u32(m, &has_ir) == -1 ||
	    msg_get_data(m, &ir, &irlen) == -1 || msg_end(m) == -1)
		return -1;
	if (authd_exchange_find(c, m->reqid) != NULL)
		return -1;
	mech = sasl_mech_lookup(mechname);
	/* The worker checked this too; the auth process does not trust it. */
	if (mech == NULL || !(authd.conf->auth_mechanisms & (1u << mech->id)) ||
	    ((mech->flags & SASL_MECH_CLEARTEXT) &&
	    !(flags & (MSG_AUTH_F_TLS | MSG_AUTH_F_LOOPBACK))) ||
	    c->nexchanges >= AUTHD_MAX_EXCHANGES) {
		authd_send_result(c, m->reqid, AUTH_RESULT_MALFORMED, NULL);
		return 0;
	}
	x = authd_exchange_new(c, m->reqid, peer);
	x->session = session;
	(void)strlcpy(x->local, local, sizeof x->local);	/* same size */
	x->be = authd_backend;
	x->be.arg = x;
	/* The service name enters DIGEST-MD5's digest-uri (RFC 2831). */
	sasl_server_init(&x->sasl, mech, &x->be, authd.conf->hostname,
	    (flags & MSG_AUTH_F_POP3) ? "pop" : "smtp");
	x->has_ir = has_ir != 0;
	if (irlen > 0) {
		x->ir = xmalloc(irlen);
		memcpy(x->ir, ir, irlen);
		x->irlen = irlen;
	}
	authd_exchange_begin(x);
	return 0;
}

static int
authd_handle_step(struct authd_conn *c, struct msg *m)
{
	struct authd_exchange *x;
	const uint8_t *data;
	size_t n;

	if (msg_get_data(m, &data, &n) == -1 || msg_end(m) == -1)
		return -1;
	/* An exchange that already ended (or waits out a failure delay,
	 * or for the store or its verification) is not an error: the
	 * worker may be a step behind.  APOP has no second step. */
	if ((x = authd_exchange_find(c, m->reqid)) == NULL || x->delay ||
	    x->verifying || x->ask || x->apop)
		return 0;
	authd_step(x, data, n, 1);
	return 0;
}

static int
authd_handle_cancel(struct authd_conn *c, struct msg *m)
{
	struct authd_exchange *x;

	if (msg_end(m) == -1)
		return -1;
	if ((x = authd_exchange_find(c, m->reqid)) != NULL && x->delay == NULL)
		authd_exchange_free(x);
	return 0;
}

/* POP3 APOP (RFC 1939 section 7): one step, checked against the
 * "apop" secret, with the same throttle and failure delay as SASL. */
static int
authd_handle_apop(struct authd_conn *c, struct msg *m)
{
	char user[SASL_USER_MAX + 1], peer[64], stamp[APOP_TIMESTAMP_MAX + 1];
	char digest[APOP_DIGEST_LEN + 8];
	uint32_t flags;
	struct authd_exchange *x;

	if (msg_get_str(m, user, sizeof user) == -1 ||
	    msg_get_str(m, peer, sizeof peer) == -1 ||
	    msg_get_u32(m, &flags) == -1 ||
	    msg_get_str(m, stamp, sizeof stamp) == -1 ||
	    msg_get_str(m, digest, sizeof digest) == -1 || msg_end(m) == -1)
		return -1;
	if (authd_exchange_find(c, m->reqid) != NULL)
		return -1;
	if (!authd.conf->apop || c->nexchanges >= AUTHD_MAX_EXCHANGES ||
	    strlen(digest) > APOP_DIGEST_LEN) {
		authd_send_result(c, m->reqid, AUTH_RESULT_MALFORMED, NULL);
		return 0;
	}
	x = authd_exchange_new(c, m->reqid, peer);
	x->apop = xcalloc(1, sizeof *x->apop);
	strlcpy(x->apop->user, user, sizeof x->apop->user);
	strlcpy(x->apop->stamp, stamp, sizeof x->apop->stamp);
	strlcpy(x->apop->digest, digest, sizeof x->apop->digest);
	authd_exchange_begin(x);
	return 0;
}

/* APOP once the address is known not to be blocked. */
static void
authd_apop_check(struct authd_exchange *x)
{
	char secret[1024];
	int ok;

	/* authd_get_secret refuses locked and expired accounts, and says
	 * -1 when the users cannot be read (a database down). */
	if ((ok = authd_get_secret(NULL, x->apop->user, "apop", secret,
	    sizeof secret)) < 0) {
		OPENSSL_cleanse(secret, sizeof secret);
		authd_send_result(x->conn, x->reqid, AUTH_RESULT_TEMPFAIL, NULL);
		authd_exchange_free(x);
		return;
	}
	ok = ok > 0 && apop_check(x->apop->stamp, secret, x->apop->digest);
	OPENSSL_cleanse(secret, sizeof secret);
	if (ok)
		authd_ok(x, x->apop->user);
	else
		authd_fail(x, time(NULL));
}

static void
authd_conn_free(struct authd_conn *c)
{
	while (!TAILQ_EMPTY(&c->exchanges))
		authd_exchange_free(TAILQ_FIRST(&c->exchanges));
	TAILQ_REMOVE(&authd.conns, c, entry);
	event_free(c->ev);
	msgq_free(c->q);
	close(c->fd);
	free(c);
}

static void
authd_conn_read(evutil_socket_t fd, short ev, void *arg)
{
	struct authd_conn *c = arg;
	struct msg *m;
	int rc, bad = 0;

	if (c->lost) {
		authd_conn_free(c);
		return;
	}
	/* Once lost, the rest is left unread; the next event frees it. */
	m = xmalloc(sizeof *m);
	while (!c->lost && (rc = msg_recv(fd, m)) == 1) {
		switch (m->type) {
		case MSG_AUTH_START:
			bad = authd_handle_start(c, m) == -1;
			break;
		case MSG_AUTH_STEP:
			bad = authd_handle_step(c, m) == -1;
			break;
		case MSG_AUTH_CANCEL:
			bad = authd_handle_cancel(c, m) == -1;
			break;
		case MSG_AUTH_APOP:
			bad = authd_handle_apop(c, m) == -1;
			break;
		default:
			bad = 1;
		}
		if (bad)
			break;
	}
	msg_free(m);
	if (bad || rc == -1) {
		log_warnx("authd: malformed message from a worker; dropping it");
		authd_conn_free(c);
	} else if (rc == 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		authd_conn_free(c);	/* the worker went away */
}

static void
authd_accept(evutil_socket_t lfd, short ev, void *arg)
{
	struct authd_conn *c;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		c = xcalloc(1, sizeof *c);
		c->fd = fd;
		TAILQ_INIT(&c->exchanges);
		TAILQ_INSERT_TAIL(&authd.conns, c, entry);
		c->ev = event_new(authd.base, fd, EV_READ | EV_PERSIST,
		    authd_conn_read, c);
		event_add(c->ev, NULL);
		c->q = msgq_new(authd.base, fd, authd_conn_lose, c);
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		log_warn("authd: accept");
}

static void
authd_sigterm(evutil_socket_t sig, short ev, void *arg)
{
	event_base_loopbreak(authd.base);
}

int
authd_socket_path(const struct conf *c, char *dst, size_t dstsz)
{
	return (size_t)snprintf(dst, dstsz, "%s/private/auth", c->spool) >= dstsz ?
	    -1 : 0;
}

int
authd_listen(const struct conf *c, uid_t uid, gid_t gid)
{
	return msg_listen_private(c->spool, "auth", uid, gid);
}

/* One thread per core, for CPU-bound work, and a few at most: each
 * yescrypt verification holds its own memory while it runs. */
static unsigned
authd_verifier_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > AUTHD_MAX_VERIFIERS ? AUTHD_MAX_VERIFIERS :
	    (unsigned)n;
}

void
authd_main(const struct conf *conf, int listen_fd)
{
	struct event *ev_listen, *ev_term, *ev_int;
	unsigned nverifiers = authd_verifier_threads();
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	log_set_procname("postern/authd");

	authd.conf = conf;
	TAILQ_INIT(&authd.conns);
	if ((authd.base = event_base_new()) == NULL)
		fatalx("authd: event_base_new failed");
	state_auth_init(conf, authd.base);
	rcpt_maps_init(&authd.maps, conf);
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(conf->user);
		authd.view_gid = pw ? pw->pw_gid : 0;
	}
	if (userdb_pg_is_url(conf->users))
		authd.pg = userdb_pg_new(conf->users,
		    (unsigned)conf->users_cache, authd.base, &authd.maps.users,
		    &authd.maps.users_generation, authd_users_publish, NULL);
	authd.view_timer = evtimer_new(authd.base, authd_view_tick, NULL);
	authd_view_tick(-1, 0, NULL);
	if ((authd.verifiers = workpool_new(authd.base, nverifiers)) == NULL)
		log_warn("authd: no verification threads; passwords are "
		    "verified one at a time");
	else
		log_info("authd: verifying passwords on %u threads",
		    nverifiers);
	ev_listen = event_new(authd.base, listen_fd, EV_READ | EV_PERSIST,
	    authd_accept, NULL);
	ev_term = evsignal_new(authd.base, SIGTERM, authd_sigterm, NULL);
	ev_int = evsignal_new(authd.base, SIGINT, authd_sigterm, NULL);
	event_add(ev_listen, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	event_base_dispatch(authd.base);
	/* The exchanges abandon their verifications, which the pool then
	 * skips or lets finish, and frees. */
	while (!TAILQ_EMPTY(&authd.conns))
		authd_conn_free(TAILQ_FIRST(&authd.conns));
	workpool_free(authd.verifiers);
	workpool_free(authd.pam);
	state_async_shutdown();
	event_free(authd.view_timer);
	userdb_pg_free(authd.pg);
	event_free(ev_listen);
	event_free(ev_term);
	event_free(ev_int);
	rcpt_maps_free(&authd.maps);
	event_base_free(authd.base);
	exit(0);
}
