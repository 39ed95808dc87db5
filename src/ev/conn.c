/*
 * conn.c - the client connection pieces shared by the sessions (see
 * conn.h).
 */
#include "ev/conn.h"
#include "lib/netaddr.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

struct bufferevent *
conn_tls_accept(struct event_base *base, int fd, SSL_CTX *ctx)
{
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	struct bufferevent *bev;

	if (ssl == NULL) {
		close(fd);
		return NULL;
	}
	/* On failure libevent (2.1.12) has freed the SSL, as
	 * BEV_OPT_CLOSE_ON_FREE asks, but not closed fd. */
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return NULL;
	}
	/* Clients often close without close_notify; that is not an error
	 * worth a log line per session. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

void
conn_take_secret(struct evbuffer *in, char *dst, size_t n)
{
	struct evbuffer_iovec vec[8];
	int nvec;

	evbuffer_copyout(in, dst, n);
	/* A line of at most a few KiB spans few chains; peek reports how
	 * many it needs, and anything beyond the array is wiped by a
	 * second look after the first part is gone. */
	while (n > 0 && (nvec = evbuffer_peek(in, (ev_ssize_t)n, NULL, vec,
	    8)) > 0) {
		size_t done = 0;

		for (int i = 0; i < nvec && i < 8 && done < n; i++) {
			size_t k = vec[i].iov_len < n - done ?
			    vec[i].iov_len : n - done;

			OPENSSL_cleanse(vec[i].iov_base, k);
			done += k;
		}
		if (done == 0)
			break;
		evbuffer_drain(in, done);
		n -= done;
	}
}

struct bufferevent *
conn_starttls(struct event_base *base, struct bufferevent *plain, SSL_CTX *ctx)
{
	struct evbuffer *in = bufferevent_get_input(plain);
	struct bufferevent *tls;
	SSL *ssl;

	evbuffer_drain(in, evbuffer_get_length(in));
	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	/* As in conn_tls_accept, a failure past the BIO frees the SSL
	 * itself; plain stays the caller's. */
	tls = bufferevent_openssl_filter_new(base, plain, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL)
		return NULL;
	/* The TLS layer moves records into the socket's buffer only up to
	 * this mark: what the client has not read stays in the session's
	 * own output, where conn_output_full() sees it. */
	bufferevent_setwatermark(plain, EV_WRITE, 0, CONN_OUT_MAX);
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	return tls;
}

void
conn_watch_start(struct bufferevent *bev, size_t slack)
{
	bufferevent_setwatermark(bev, EV_READ, 0,
	    evbuffer_get_length(bufferevent_get_input(bev)) + slack);
	bufferevent_enable(bev, EV_READ);
}

void
conn_watch_stop(struct bufferevent *bev)
{
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
}

int
conn_eof_owed(struct bufferevent *bev)
{
	struct evbuffer_ptr eol = evbuffer_search_eol(
	    bufferevent_get_input(bev), NULL, NULL, EVBUFFER_EOL_LF);

	if (eol.pos == -1)
		return 0;
	bufferevent_disable(bev, EV_READ);
	return 1;
}

int
conn_output_full(struct bufferevent *bev)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) <= CONN_OUT_MAX)
		return 0;
	bufferevent_disable(bev, EV_READ);
	return 1;
}

size_t
conn_pending_output(struct bufferevent *bev)
{
	struct bufferevent *under = bufferevent_get_underlying(bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(bev));

	if (under)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

int
conn_tls_error(struct bufferevent *bev, char *dst, size_t dstsz)
{
	unsigned long e;

	if (bufferevent_openssl_get_ssl(bev) == NULL ||
	    (e = bufferevent_get_openssl_error(bev)) == 0)
		return 0;
	ERR_error_string_n(e, dst, dstsz);
	return 1;
}

/* The TLS layer's socket buffer changed: done once all has left. */
static void
conn_under_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	conn_close_check(arg);
}

void
conn_close_arm(struct conn_close *cc, struct event_base *base,
    struct bufferevent *bev, unsigned max_wait, event_callback_fn done,
    void *arg)
{
	struct bufferevent *under = bufferevent_get_underlying(bev);
	struct timeval tv = { 0, 0 };

	cc->bev = bev;
	bufferevent_disable(bev, EV_READ);
	if (cc->ev == NULL)
		cc->ev = evtimer_new(base, done, arg);
	if (conn_pending_output(bev) > 0) {
		tv.tv_sec = max_wait;
		if (under)
			evbuffer_add_cb(bufferevent_get_output(under),
			    conn_under_drained, cc);
	}
	evtimer_add(cc->ev, &tv);
}

void
conn_close_check(struct conn_close *cc)
{
	struct timeval now = { 0, 0 };

	if (cc->ev && conn_pending_output(cc->bev) == 0)
		evtimer_add(cc->ev, &now);
}

void
conn_close_free(struct conn_close *cc)
{
	if (cc->ev)
		event_free(cc->ev);
	cc->ev = NULL;
	cc->bev = NULL;
}

/* At the end of the loop's turn: write what the session added. */
static void
conn_direct_flush(evutil_socket_t unused, short ev, void *arg)
{
	struct conn_direct *cd = arg;
	struct evbuffer *out = bufferevent_get_output(cd->bev);
	int n, saved;

	/* With EV_WRITE on, libevent is finishing an earlier write. */
	if (evbuffer_get_length(out) == 0 ||
	    (bufferevent_get_enabled(cd->bev) & EV_WRITE))
		return;
	/* A socket bufferevent keeps the front of its output frozen so
	 * that only its own writes drain it; this is one of those. */
	evbuffer_unfreeze(out, 1);
	n = evbuffer_write(out, bufferevent_getfd(cd->bev));
	saved = errno;
	evbuffer_freeze(out, 1);
	if (n == -1 && saved != EAGAIN && saved != EINTR) {
		/* libevent's next write fails the same way and reports it
		 * through the session's event callback, as it always has. */
		bufferevent_enable(cd->bev, EV_WRITE);
		return;
	}
	if (evbuffer_get_length(out) > 0) {
		bufferevent_enable(cd->bev, EV_WRITE);
		return;
	}
	cd->drained(cd->bev, cd->arg);		/* may free the session */
}

static void
conn_direct_added(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct conn_direct *cd = arg;

	if (info->n_added > 0)
		event_active(cd->flush_ev, EV_WRITE, 1);  /* no-op if queued */
}

int
conn_direct_start(struct conn_direct *cd, struct event_base *base,
    struct bufferevent *bev, bufferevent_data_cb drained, void *arg)
{
	memset(cd, 0, sizeof *cd);
	cd->bev = bev;
	cd->drained = drained;
	cd->arg = arg;
	if ((cd->flush_ev = event_new(base, -1, 0, conn_direct_flush,
	    cd)) == NULL)
		return -1;
	if ((cd->added_cb = evbuffer_add_cb(bufferevent_get_output(bev),
	    conn_direct_added, cd)) == NULL) {
		event_free(cd->flush_ev);
		cd->flush_ev = NULL;
		return -1;
	}
	bufferevent_disable(bev, EV_WRITE);
	return 0;
}

void
conn_direct_resume(struct conn_direct *cd)
{
	if (cd->added_cb &&
	    evbuffer_get_length(bufferevent_get_output(cd->bev)) == 0)
		bufferevent_disable(cd->bev, EV_WRITE);
}

void
conn_direct_free(struct conn_direct *cd)
{
	if (cd->added_cb == NULL)
		return;
	evbuffer_remove_cb_entry(bufferevent_get_output(cd->bev),
	    cd->added_cb);
	cd->added_cb = NULL;
	event_free(cd->flush_ev);
	cd->flush_ev = NULL;
}

void
conn_direct_stop(struct conn_direct *cd)
{
	if (cd->added_cb == NULL)
		return;
	conn_direct_free(cd);
	/* Whatever is still owed, and all that follows, goes out the
	 * usual way. */
	bufferevent_enable(cd->bev, EV_WRITE);
}

void
conn_deadline_update(struct event *deadline_ev, unsigned secs, int line_done,
    int partial)
{
	struct timeval tv = { (time_t)secs, 0 };

	if (line_done || !partial)
		evtimer_del(deadline_ev);
	if (partial && !evtimer_pending(deadline_ev, NULL))
		evtimer_add(deadline_ev, &tv);
}

void
conn_local_address(struct bufferevent *bev, char *dst, size_t dstsz)
{
	struct bufferevent *under = bufferevent_get_underlying(bev);

	sockname_format(bufferevent_getfd(under ? under : bev), dst, dstsz);
}
