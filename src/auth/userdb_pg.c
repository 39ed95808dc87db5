/*
 * userdb_pg.c - the users on PostgreSQL (see userdb_pg.h and
 * sql/001_users.sql).  Runs in the auth process (reads) and in
 * `postern user` (writes); never in a worker.
 *
 * libpq is used synchronously, but in the auth process only on a thread
 * of its own (after the first copy, at start): a database that is slow,
 * or that accepted the connection and then stopped answering, holds
 * that thread and never the loop every login goes through.  The loop
 * keeps answering from its copy meanwhile, for PG_ANSWER_WAIT seconds
 * at most past the question, and then fails closed until an answer
 * comes.
 */
#include "auth/userdb_pg.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "lib/workpool.h"
#include "lib/xalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <libpq-fe.h>

#define PG_CONNECT_TIMEOUT	"2"	/* seconds; libpq's minimum */
#define PG_ANSWER_WAIT		5	/* seconds the copy outlives a question */

/* One question to the database, asked on the thread (or, for the first
 * copy, on the caller's): the users' generation, and the whole table
 * when it moved. */
struct pg_ask {
	struct workpool_job	 job;		/* first */
	struct userdb_pg	*pg;
	int			 answered;	/* the database answered */
	int			 loaded;	/* fresh holds a new copy */
	long long		 generation;	/* fresh's */
	struct userdb		 fresh;
	char			 why[256];	/* no answer: libpq's reason */
};

struct userdb_pg {
	char		*url;
	unsigned	 lifetime;
	/* The asking side's (the thread while a question is out); lock
	 * held to set or close it, so that the loop may shut its socket. */
	PGconn		*conn;
	pthread_mutex_t	 lock;
	int		 stopping;
	/* The loop's; the thread reads generation while it asks. */
	long long	 generation;	/* the database's, last loaded; -1 none */
	struct userdb	*db;		/* the copy, the caller's */
	unsigned	*db_generation;
	void		(*changed)(void *);
	void		*arg;
	struct workpool	*asker;		/* NULL: asked on the loop */
	struct pg_ask	 ask;
	int		 asking;	/* ask is out */
	time_t		 asked;		/* when it went out */
	time_t		 next_check;
	int		 usable;	/* the last check succeeded */
	int		 down;		/* an outage is being reported */
};

static const char q_generation[] =
    "SELECT n FROM users_generation WHERE id = 1";
static const char q_all[] =
    "SELECT name, hash, expires, locked, array_to_string(addresses, ','), "
    "secrets FROM users";
static const char q_put[] =
    "INSERT INTO users (name, hash, expires, locked, addresses, secrets) "
    "VALUES ($1, $2, $3::bigint, $4::boolean, string_to_array($5, ','), $6) "
    "ON CONFLICT (name) DO UPDATE SET hash = EXCLUDED.hash, "
    "expires = EXCLUDED.expires, locked = EXCLUDED.locked, "
    "addresses = EXCLUDED.addresses, secrets = EXCLUDED.secrets, "
    "changed = now()";
static const char q_del[] = "DELETE FROM users WHERE name = $1";

int
userdb_pg_is_url(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 ||
	    strncmp(s, "postgres://", 11) == 0;
}

/* libpq's message without its trailing newline. */
static const char *
pg_error(PGconn *conn, char *dst, size_t dstsz)
{
	const char *m = conn ? PQerrorMessage(conn) : "out of memory";
	size_t n;

	str_escape(dst, dstsz, m, strlen(m));
	n = strlen(dst);
	while (n >= 2 && strcmp(dst + n - 2, "\\n") == 0) {
		dst[n - 2] = '\0';
		n -= 2;
	}
	return dst[0] ? dst : "unknown error";
}

static int
exec_ok(PGconn *conn, const char *sql, FILE *errf)
{
	PGresult *r = PQexec(conn, sql);
	int ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK ||
	    PQresultStatus(r) == PGRES_TUPLES_OK);

	if (!ok && errf)
		fprintf(errf, "postgresql: %s", PQerrorMessage(conn));
	PQclear(r);
	return ok ? 0 : -1;
}

/* Apply the migrations the database lacks, one transaction. */
static int
migrate(PGconn *conn, FILE *errf)
{
	PGresult *r;
	long have;

	if (exec_ok(conn, "BEGIN", errf) == -1)
		return -1;
	/* Nodes that start together wait for each other here. */
	if (exec_ok(conn, "SELECT pg_advisory_xact_lock(7305196847)", errf) ==
	    -1 || exec_ok(conn, "CREATE TABLE IF NOT EXISTS schema_version ("
	    "version integer PRIMARY KEY, name text NOT NULL, "
	    "applied timestamptz NOT NULL DEFAULT now())", errf) == -1)
		goto fail;
	r = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_version");
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK ||
	    PQntuples(r) != 1) {
		if (errf)
			fprintf(errf, "postgresql: %s", PQerrorMessage(conn));
		PQclear(r);
		goto fail;
	}
	have = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	for (const struct userdb_pg_migration *m = userdb_pg_migrations;
	    m->name; m++) {
		char v[16];
		const char *params[] = { v, m->name };

		if (m->version <= have)
			continue;
		if (exec_ok(conn, m->sql, errf) == -1) {
			if (errf)
				fprintf(errf, "postgresql: migration %s failed\n",
				    m->name);
			goto fail;
		}
		(void)snprintf(v, sizeof v, "%d", m->version);
		r = PQexecParams(conn, "INSERT INTO schema_version (version, "
		    "name) VALUES ($1::integer, $2)", 2, NULL, params, NULL,
		    NULL, 0);
		if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
			PQclear(r);
			goto fail;
		}
		PQclear(r);
		log_info("users: applied schema migration %s", m->name);
	}
	return exec_ok(conn, "COMMIT", errf);
fail:
	(void)exec_ok(conn, "ROLLBACK", NULL);
	return -1;
}

static int
prepare(PGconn *conn, const char *name, const char *sql, int nparams,
    FILE *errf)
{
	PGresult *r = PQprepare(conn, name, sql, nparams, NULL);
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok && errf)
		fprintf(errf, "postgresql: prepare %s: %s", name,
		    PQerrorMessage(conn));
	PQclear(r);
	return ok ? 0 : -1;
}

/* A ready connection (migrated, statements prepared), or NULL. */
static PGconn *
pg_open(const char *url, FILE *errf, char *why, size_t whysz)
{
	/* A server that stops answering is let go after about half a
	 * minute rather than TCP's quarter of an hour: keepalives while a
	 * reply is awaited, and a bound on data left unacknowledged.  The
	 * URL may say otherwise (it comes after them); not the timeout. */
	const char *const keys[] = { "keepalives_idle", "keepalives_interval",
	    "keepalives_count", "tcp_user_timeout", "dbname",
	    "connect_timeout", "application_name", NULL };
	const char *const vals[] = { "10", "5", "3", "30000", url,
	    PG_CONNECT_TIMEOUT, "postern", NULL };
	PGconn *conn = PQconnectdbParams(keys, vals, 1);

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		(void)pg_error(conn, why, whysz);
		if (errf)
			fprintf(errf, "postgresql: %s", conn ?
			    PQerrorMessage(conn) : "out of memory\n");
		PQfinish(conn);
		return NULL;
	}
	if (migrate(conn, errf) == -1 ||
	    prepare(conn, "generation", q_generation, 0, errf) == -1 ||
	    prepare(conn, "all", q_all, 0, errf) == -1 ||
	    prepare(conn, "put", q_put, 6, errf) == -1 ||
	    prepare(conn, "del", q_del, 1, errf) == -1) {
		(void)pg_error(conn, why, whysz);
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* A field the users file could not hold would break the view the
 * workers read (same format): refuse the row. */
static int
field_ok(const char *s)
{
	return strpbrk(s, ":\n\r") == NULL;
}

static int
load_all(PGconn *conn, struct userdb *out, FILE *errf)
{
	PGresult *r = PQexecPrepared(conn, "all", 0, NULL, NULL, NULL, 0);
	struct userdb db = { 0 };
	int n;

	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
		if (errf)
			fprintf(errf, "postgresql: %s", PQerrorMessage(conn));
		PQclear(r);
		return -1;
	}
	n = PQntuples(r);
	db.users = xcalloc(n ? (size_t)n : 1, sizeof *db.users);
	for (int i = 0; i < n; i++) {
		struct user_entry *u = &db.users[db.nusers];
		const char *name = PQgetvalue(r, i, 0), *addrs = PQgetvalue(r, i, 4);

		if (!userdb_name_valid(name) || !field_ok(PQgetvalue(r, i, 1)) ||
		    !field_ok(addrs) || !field_ok(PQgetvalue(r, i, 5))) {
			log_warnx("users: row for '%.64s' holds a character the "
			    "users format cannot; skipped", field_ok(name) ?
			    name : "?");
			continue;
		}
		u->name = xstrdup(name);
		u->hash = xstrdup(PQgetvalue(r, i, 1));
		u->expires = (time_t)strtoll(PQgetvalue(r, i, 2), NULL, 10);
		u->locked = PQgetvalue(r, i, 3)[0] == 't';
		u->secrets = xstrdup(PQgetvalue(r, i, 5));
		for (const char *p = addrs; *p; ) {
			size_t len = strcspn(p, ",");

			if (len) {
				u->addresses = xreallocarray(u->addresses,
				    u->naddresses + 1, sizeof *u->addresses);
				u->addresses[u->naddresses] = xmalloc(len + 1);
				memcpy(u->addresses[u->naddresses], p, len);
				u->addresses[u->naddresses++][len] = '\0';
			}
			p += len;
			if (*p == ',')
				p++;
		}
		u->line = i + 1;
		db.nusers++;
	}
	PQclear(r);
	userdb_index(&db);
	*out = db;
	return 0;
}

/* ---------------------------------------------------------------- */
/* the auth process                                                   */

/* On the asking side: connect if need be, ask for the generation, and
 * load the table if it moved.  Touches nothing of the loop's but reads
 * pg->generation, which does not change while a question is out. */
static void
pg_ask_work(struct workpool_job *job)
{
	struct pg_ask *a = (struct pg_ask *)job;
	struct userdb_pg *pg = a->pg;
	PGconn *conn;
	PGresult *r;
	long long gen;

	a->answered = a->loaded = 0;
	a->why[0] = '\0';
	if (pg->conn == NULL) {
		if ((conn = pg_open(pg->url, NULL, a->why, sizeof a->why)) ==
		    NULL)
			return;
		pthread_mutex_lock(&pg->lock);
		if (pg->stopping) {
			PQfinish(conn);
			conn = NULL;
		}
		pg->conn = conn;
		pthread_mutex_unlock(&pg->lock);
		if (conn == NULL) {
			(void)strlcpy(a->why, "stopping", sizeof a->why);
			return;
		}
	}
	r = PQexecPrepared(pg->conn, "generation", 0, NULL, NULL, NULL, 0);
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK ||
	    PQntuples(r) != 1) {
		PQclear(r);
		goto fail;
	}
	gen = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (gen != pg->generation) {
		if (load_all(pg->conn, &a->fresh, NULL) == -1)
			goto fail;
		a->loaded = 1;
		a->generation = gen;
	}
	a->answered = 1;
	return;
fail:
	(void)pg_error(pg->conn, a->why, sizeof a->why);
	pthread_mutex_lock(&pg->lock);
	PQfinish(pg->conn);
	pg->conn = NULL;
	pthread_mutex_unlock(&pg->lock);
}

static void
outage(struct userdb_pg *pg, const char *why)
{
	pg->usable = 0;
	if (!pg->down) {
		log_warnx("users: postgresql down (%s); authentication answers "
		    "a temporary error, retrying every %us", why, pg->lifetime);
		pg->down = 1;
	}
}

/* On the loop: take the answer in. */
static void
pg_ask_done(struct workpool_job *job)
{
	struct pg_ask *a = (struct pg_ask *)job;
	struct userdb_pg *pg = a->pg;

	pg->asking = 0;
	if (!a->answered) {
		outage(pg, a->why[0] ? a->why : "unknown error");
		return;
	}
	if (a->loaded) {
		userdb_free(pg->db);
		*pg->db = a->fresh;
		memset(&a->fresh, 0, sizeof a->fresh);
		(*pg->db_generation)++;
		pg->generation = a->generation;
		log_debug("users: loaded %zu users from postgresql",
		    pg->db->nusers);
	}
	if (pg->down) {
		log_info("users: postgresql back");
		pg->down = 0;
	}
	pg->usable = 1;
	if (a->loaded && pg->changed)
		pg->changed(pg->arg);
}

struct userdb_pg *
userdb_pg_new(const char *url, unsigned lifetime, struct event_base *base,
    struct userdb *db, unsigned *generation, void (*changed)(void *),
    void *arg)
{
	struct userdb_pg *pg = xcalloc(1, sizeof *pg);

	pg->url = xstrdup(url);
	pg->lifetime = lifetime ? lifetime : 1;
	pg->generation = -1;
	pthread_mutex_init(&pg->lock, NULL);
	pg->db = db;
	pg->db_generation = generation;
	pg->changed = changed;
	pg->arg = arg;
	pg->ask.job.work = pg_ask_work;
	pg->ask.job.done = pg_ask_done;
	pg->ask.pg = pg;
	/* The first copy here, before any login can want it. */
	pg->next_check = time(NULL) + (time_t)pg->lifetime;
	pg_ask_work(&pg->ask.job);
	pg_ask_done(&pg->ask.job);
	if ((pg->asker = workpool_new(base, 1)) == NULL)
		log_warn("users: no thread to ask postgresql on; asking on "
		    "the loop");
	return pg;
}

void
userdb_pg_free(struct userdb_pg *pg)
{
	if (pg == NULL)
		return;
	/* A question still out may be waiting on a server that does not
	 * answer: end its wait, then let the thread finish. */
	pthread_mutex_lock(&pg->lock);
	pg->stopping = 1;
	if (pg->asking && pg->conn != NULL && PQsocket(pg->conn) != -1)
		(void)shutdown(PQsocket(pg->conn), SHUT_RDWR);
	pthread_mutex_unlock(&pg->lock);
	workpool_free(pg->asker);
	userdb_free(&pg->ask.fresh);
	PQfinish(pg->conn);
	pthread_mutex_destroy(&pg->lock);
	free(pg->url);
	free(pg);
}

void
userdb_pg_refresh(struct userdb_pg *pg, time_t now)
{
	char why[64];

	if (pg->asking) {
		if (pg->usable && now >= pg->asked + PG_ANSWER_WAIT) {
			(void)snprintf(why, sizeof why, "no answer in %ds",
			    PG_ANSWER_WAIT);
			outage(pg, why);
		}
		return;
	}
	if (now < pg->next_check)
		return;
	pg->next_check = now + (time_t)pg->lifetime;
	pg->asking = 1;
	pg->asked = now;
	if (pg->asker != NULL) {
		workpool_submit(pg->asker, &pg->ask.job);
		return;
	}
	pg_ask_work(&pg->ask.job);
	pg_ask_done(&pg->ask.job);
}

int
userdb_pg_usable(const struct userdb_pg *pg)
{
	return pg->usable;
}

/* ---------------------------------------------------------------- */
/* postern user                                                       */

/*
 * One administrator's change is a read-modify-write, as on the users
 * file under its flock: the edit holds a transaction-level advisory lock
 * from before it reads the table until it commits, so two `postern user`
 * runs on any nodes take turns, and neither writes back a row from a
 * snapshot the other has since changed.  READ COMMITTED (the default):
 * the table is read after the lock, so it shows the turn before.  Nodes
 * reading the users are not held; they see the change at the commit.
 */
#define PG_EDIT_LOCK	"7305196848"	/* next to the migrations' key */

struct userdb_pg_edit {
	PGconn	*conn;
	int	 exclusive;	/* in a transaction, under the lock */
};

struct userdb_pg_edit *
userdb_pg_edit_begin(const char *url, int exclusive, struct userdb *db,
    FILE *errf)
{
	struct userdb_pg_edit *e;
	char why[256];
	PGconn *conn = pg_open(url, errf, why, sizeof why);

	memset(db, 0, sizeof *db);
	if (conn == NULL)
		return NULL;
	if ((exclusive && (exec_ok(conn, "BEGIN", errf) == -1 ||
	    exec_ok(conn, "SELECT pg_advisory_xact_lock(" PG_EDIT_LOCK ")",
	    errf) == -1)) || load_all(conn, db, errf) == -1) {
		PQfinish(conn);
		return NULL;
	}
	e = xcalloc(1, sizeof *e);
	e->conn = conn;
	e->exclusive = exclusive;
	return e;
}

static int
pg_edit_command(struct userdb_pg_edit *e, const char *name, int nparams,
    const char *const *params, FILE *errf)
{
	PGresult *r = PQexecPrepared(e->conn, name, nparams, params, NULL,
	    NULL, 0);
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok)
		fprintf(errf, "postgresql: %s", PQerrorMessage(e->conn));
	PQclear(r);
	return ok ? 0 : -1;
}

int
userdb_pg_edit_store(struct userdb_pg_edit *e, const struct user_entry *u,
    FILE *errf)
{
	char expires[32], addrs[8192] = "";
	const char *params[6];

	for (size_t i = 0; i < u->naddresses; i++)
		if ((i && strlcat(addrs, ",", sizeof addrs) >= sizeof addrs) ||
		    strlcat(addrs, u->addresses[i], sizeof addrs) >= sizeof addrs) {
			fprintf(errf, "postern: too many addresses\n");
			return -1;
		}
	(void)snprintf(expires, sizeof expires, "%lld", (long long)u->expires);
	params[0] = u->name;
	params[1] = u->hash;
	params[2] = expires;
	params[3] = u->locked ? "true" : "false";
	params[4] = addrs;
	params[5] = u->secrets ? u->secrets : "";
	return pg_edit_command(e, "put", 6, params, errf);
}

int
userdb_pg_edit_delete(struct userdb_pg_edit *e, const char *name, FILE *errf)
{
	const char *params[] = { name };

	return pg_edit_command(e, "del", 1, params, errf);
}

int
userdb_pg_edit_end(struct userdb_pg_edit *e, int commit, FILE *errf)
{
	int rc = 0;

	if (e == NULL)
		return 0;
	if (e->exclusive && commit)
		rc = exec_ok(e->conn, "COMMIT", errf);
	else if (e->exclusive)
		(void)exec_ok(e->conn, "ROLLBACK", NULL);
	PQfinish(e->conn);
	free(e);
	return rc;
}
