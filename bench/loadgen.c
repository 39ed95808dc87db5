/*
 * loadgen.c - the benchmark's own load generator, for what Postfix's
 * smtp-source cannot do.  Threads with blocking sockets (simple and
 * accurate enough for a client; the server is what is measured).
 *
 *   loadgen tls  HOST PORT THREADS SECONDS          full TLS handshakes/s
 *   loadgen auth HOST PORT THREADS SECONDS USER PASS FROM TO
 *                 AUTH PLAIN + one 1 KiB message per implicit-TLS connection
 *   loadgen idle HOST PORT COUNT HOLD-SECONDS       COUNT sessions after EHLO,
 *                 held open; prints its line once they are (or once no
 *                 more can be opened), then holds them
 *
 * Prints one line: "ops=N seconds=S rate=R errors=E".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host, *user, *pass, *from, *to;
static int port;
static double seconds;
static atomic_long ops, errors;
static SSL_CTX *ctx;
static char auth_b64[1024];

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
tcp_connect(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct timeval tv = { 10, 0 };

	inet_pton(AF_INET, host, &sin.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read one SMTP reply (all lines); returns its code or -1. */
static int
ssl_reply(SSL *ssl)
{
	char buf[4096];
	size_t len = 0;

	for (;;) {
		int n = SSL_read(ssl, buf + len, (int)(sizeof buf - 1 - len));
		char *line;

		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		/* the last complete line decides */
		for (line = buf; ; ) {
			char *eol = strstr(line, "\r\n");
			if (eol == NULL)
				break;
			if (eol - line >= 4 && line[3] == ' ')
				return atoi(line);
			line = eol + 2;
		}
		if (len >= sizeof buf - 1)
			return -1;
	}
}

static int
ssl_cmd(SSL *ssl, const char *cmd, int want)
{
	if (cmd && SSL_write(ssl, cmd, (int)strlen(cmd)) <= 0)
		return -1;
	return ssl_reply(ssl) == want ? 0 : -1;
}

static void *
tls_worker(void *arg)
{
	int auth = arg != NULL;
	double end = now() + seconds;
	char msg[1200];
	size_t hl;

	/* A 1 KiB message: a header, then lines of 'x'. */
	hl = (size_t)snprintf(msg, sizeof msg, "Subject: bench\r\n\r\n");
	while (hl < 1024 - 80) {
		memset(msg + hl, 'x', 76);
		memcpy(msg + hl + 76, "\r\n", 2);
		hl += 78;
	}
	memcpy(msg + hl, ".\r\n", 4);
	msg[hl + 4] = '\0';
	while (now() < end) {
		int fd = tcp_connect(), ok = 0;
		SSL *ssl;
		char cmd[1200];

		if (fd == -1) {
			errors++;
			continue;
		}
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_connect(ssl) == 1 && ssl_reply(ssl) == 220) {
			if (!auth)
				ok = ssl_cmd(ssl, "QUIT\r\n", 221) == 0;
			else {
				snprintf(cmd, sizeof cmd, "EHLO bench\r\n");
				ok = ssl_cmd(ssl, cmd, 250) == 0;
				snprintf(cmd, sizeof cmd, "AUTH PLAIN %s\r\n", auth_b64);
				ok = ok && ssl_cmd(ssl, cmd, 235) == 0;
				snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>\r\n", from);
				ok = ok && ssl_cmd(ssl, cmd, 250) == 0;
				snprintf(cmd, sizeof cmd, "RCPT TO:<%s>\r\n", to);
				ok = ok && ssl_cmd(ssl, cmd, 250) == 0;
				ok = ok && ssl_cmd(ssl, "DATA\r\n", 354) == 0;
				ok = ok && ssl_cmd(ssl, msg, 250) == 0;
				ok = ok && ssl_cmd(ssl, "QUIT\r\n", 221) == 0;
			}
		}
		if (ok)
			ops++;
		else
			errors++;
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
	}
	return NULL;
}

static int
run_threads(int n, int auth)
{
	pthread_t *t = calloc((size_t)n, sizeof *t);
	double start = now();

	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, tls_worker, auth ? (void *)1 : NULL);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	double el = now() - start;
	printf("ops=%ld seconds=%.2f rate=%.1f errors=%ld\n", (long)ops, el,
	    ops / el, (long)errors);
	free(t);
	return 0;
}

/*
 * Open count sessions, EHLO each, hold them, report how many made it.
 * Non-blocking, at most IDLE_INFLIGHT sessions between connect and the
 * EHLO reply at a time, and a deadline: a server that stops greeting
 * (a process limit reached) leaves the rest in its listen queue, and
 * they are counted as not open rather than waited for.  The "ops=" line
 * is printed once the count is reached or nothing has progressed for
 * IDLE_STALL seconds; then the sessions are held for hold seconds (or
 * until SIGTERM).
 */
#define IDLE_INFLIGHT	256
#define IDLE_STALL	5.0
#define IDLE_DEADLINE	60.0

enum idle_state { I_FREE, I_CONNECTING, I_GREETING, I_EHLO, I_OPEN, I_DEAD };

struct idle_conn {
	int		 fd;
	enum idle_state	 st;
	size_t		 len;
	char		 buf[1024];
};

static volatile sig_atomic_t idle_stop;

static void
idle_sigterm(int sig)
{
	(void)sig;
	idle_stop = 1;
}

/* A complete last reply line in c->buf: its code, else 0 (need more). */
static int
idle_reply(struct idle_conn *c)
{
	char *line = c->buf, *eol;

	c->buf[c->len] = '\0';
	while ((eol = strstr(line, "\r\n")) != NULL) {
		if (eol - line >= 4 && line[3] == ' ')
			return atoi(line);
		line = eol + 2;
	}
	return c->len >= sizeof c->buf - 1 ? -1 : 0;
}

static int
run_idle(int count, int hold)
{
	struct idle_conn *cs = calloc((size_t)count, sizeof *cs);
	struct rlimit rl;
	int ep = epoll_create1(0), started = 0, inflight = 0, open_ = 0;
	double last = now(), t0 = now();
	struct epoll_event evs[256];

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)count + 100) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)count + 100 ? rl.rlim_max :
		    (rlim_t)count + 100;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGTERM, idle_sigterm);
	while (open_ + errors < count && !idle_stop &&
	    now() - last < IDLE_STALL && now() - t0 < IDLE_DEADLINE) {
		int n;

		while (inflight < IDLE_INFLIGHT && started < count) {
			struct idle_conn *c = &cs[started];
			struct sockaddr_in sin = { .sin_family = AF_INET,
			    .sin_port = htons((uint16_t)port) };
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT,
			    .data.ptr = c };

			started++;
			inet_pton(AF_INET, host, &sin.sin_addr);
			c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			if (c->fd == -1 || (connect(c->fd, (struct sockaddr *)&sin,
			    sizeof sin) == -1 && errno != EINPROGRESS)) {
				if (c->fd != -1)
					close(c->fd);
				c->st = I_DEAD;
				errors++;
				continue;
			}
			c->st = I_CONNECTING;
			epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
			inflight++;
		}
		n = epoll_wait(ep, evs, 256, 200);
		for (int i = 0; i < n; i++) {
			struct idle_conn *c = evs[i].data.ptr;
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
			ssize_t r;
			int code;

			if (c->st == I_CONNECTING) {
				int err = 0;
				socklen_t el = sizeof err;

				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err)
					goto dead;
				c->st = I_GREETING;
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				continue;
			}
			r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
			if (r <= 0)
				goto dead;
			c->len += (size_t)r;
			if ((code = idle_reply(c)) == 0)
				continue;
			if (c->st == I_GREETING && code == 220) {
				c->len = 0;
				if (write(c->fd, "EHLO idle\r\n", 11) != 11)
					goto dead;
				c->st = I_EHLO;
				continue;
			}
			if (c->st == I_EHLO && code == 250) {
				c->st = I_OPEN;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				inflight--;
				open_++;
				last = now();
				continue;
			}
dead:
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			c->st = I_DEAD;
			inflight--;
			errors++;
			last = now();
		}
	}
	printf("ops=%d seconds=%.2f rate=0 errors=%ld\n", open_, now() - t0,
	    (long)errors);
	fflush(stdout);
	for (int i = 0; i < hold * 10 && !idle_stop; i++)
		usleep(100000);
	for (int i = 0; i < started; i++)
		if (cs[i].st != I_DEAD)
			close(cs[i].fd);
	close(ep);
	free(cs);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: loadgen tls|auth|idle HOST PORT N SECONDS "
		    "[USER PASS FROM TO]\n");
		return 64;
	}
	host = argv[2];
	port = atoi(argv[3]);
	seconds = atof(argv[5]);
	if (strcmp(argv[1], "idle") == 0)
		return run_idle(atoi(argv[4]), atoi(argv[5]));
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* Full handshakes every time: no session cache on the client. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (strcmp(argv[1], "tls") == 0)
		return run_threads(atoi(argv[4]), 0);
	if (strcmp(argv[1], "auth") == 0 && argc == 10) {
		char plain[600];
		size_t n;
		user = argv[6];
		pass = argv[7];
		from = argv[8];
		to = argv[9];
		n = (size_t)snprintf(plain, sizeof plain, "%c%s%c%s", 0, user, 0,
		    pass);
		EVP_EncodeBlock((unsigned char *)auth_b64,
		    (const unsigned char *)plain, (int)n);
		return run_threads(atoi(argv[4]), 1);
	}
	fprintf(stderr, "loadgen: bad mode or arguments\n");
	return 64;
}
