/*
 * keyd.c - the key process: the only postern process that holds the TLS
 * private key after start.  It reads the key as root, then answers
 * private-key operations (ECDSA signatures, the RSA private operation
 * for PKCS#1 v1.5 and PSS signatures padded by the worker) for the
 * workers over a unix socket (SOCK_SEQPACKET, proc/msg.h), so code
 * execution in a worker can use the key while it lasts but never carry
 * it away.  It never talks to the network.
 */
#include "tls/keyd.h"
#include "tls/tls.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "proc/msg.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

struct keyd_conn {
	int			 fd;
	struct event		*ev;
	TAILQ_ENTRY(keyd_conn)	 entry;
};

static struct {
	struct event_base	*base;
	EVP_PKEY		*key;
	unsigned char		 id[KEYD_ID_LEN];
	TAILQ_HEAD(, keyd_conn)	 conns;
} keyd;

int
keyd_key_id(EVP_PKEY *pk, unsigned char id[KEYD_ID_LEN])
{
	unsigned char *der = NULL;
	unsigned int n = 0;
	int len, rc = -1;

	if ((len = i2d_PUBKEY(pk, &der)) > 0 &&
	    EVP_Digest(der, (size_t)len, id, &n, EVP_sha256(), NULL) == 1 &&
	    n == KEYD_ID_LEN)
		rc = 0;
	OPENSSL_free(der);
	return rc;
}

int
keyd_socket_path(const struct conf *c, char *dst, size_t dstsz)
{
	return (size_t)snprintf(dst, dstsz, "%s/private/keyd", c->spool) >=
	    dstsz ? -1 : 0;
}

int
keyd_listen(const struct conf *c, uid_t uid, gid_t gid)
{
	return msg_listen_private(c->spool, "keyd", uid, gid);
}

/* MGF1 (RFC 8017 B.2.1) with md: len octets into mask. */
static int
keyd_mgf1(unsigned char *mask, size_t len, const unsigned char *seed,
    size_t seedlen, const EVP_MD *md)
{
	unsigned char block[EVP_MAX_MD_SIZE], c[4];
	size_t done = 0, mdlen = (size_t)EVP_MD_get_size(md);
	EVP_MD_CTX *x = EVP_MD_CTX_new();
	int rc = 0;

	for (uint32_t i = 0; rc == 0 && done < len; i++) {
		c[0] = (unsigned char)(i >> 24);
		c[1] = (unsigned char)(i >> 16);
		c[2] = (unsigned char)(i >> 8);
		c[3] = (unsigned char)i;
		if (x == NULL || EVP_DigestInit_ex(x, md, NULL) != 1 ||
		    EVP_DigestUpdate(x, seed, seedlen) != 1 ||
		    EVP_DigestUpdate(x, c, 4) != 1 ||
		    EVP_DigestFinal_ex(x, block, NULL) != 1)
			rc = -1;
		else {
			size_t n = len - done < mdlen ? len - done : mdlen;

			memcpy(mask + done, block, n);
			done += n;
		}
	}
	EVP_MD_CTX_free(x);
	return rc;
}

/*
 * The raw RSA operation is a decryption as much as a signature: the
 * key process applies it only to a block shaped as an EMSA-PSS encoding
 * (RFC 8017 section 9.1.1) with SHA-256, -384 or -512 and a salt as long
 * as the hash, which is what TLS signs with rsa_pss_rsae_*.  A
 * ciphertext (blinded or not) has that shape with a chance of about
 * 2^-8 times 2^-(8 x the zero padding), i.e. never.
 */
static int
keyd_pss_shaped(const uint8_t *in, size_t inlen)
{
	const EVP_MD *mds[] = { EVP_sha256(), EVP_sha384(), EVP_sha512() };
	size_t k = (size_t)EVP_PKEY_get_size(keyd.key);
	size_t embits = (size_t)EVP_PKEY_get_bits(keyd.key) - 1;
	size_t emlen = (embits + 7) / 8, top = 8 * emlen - embits;
	const uint8_t *em = in;
	unsigned char db[1024];

	if (inlen != k || emlen > sizeof db)
		return 0;
	if (emlen < k) {		/* a leading zero octet */
		if (in[0] != 0)
			return 0;
		em++;
	}
	if (em[emlen - 1] != 0xbc || (top && (em[0] >> (8 - top)) != 0))
		return 0;
	for (size_t i = 0; i < sizeof mds / sizeof mds[0]; i++) {
		size_t hlen = (size_t)EVP_MD_get_size(mds[i]);
		size_t dblen, pslen, j;

		if (emlen < 2 * hlen + 2)
			continue;
		dblen = emlen - hlen - 1;
		if (keyd_mgf1(db, dblen, em + dblen, hlen, mds[i]) == -1)
			continue;
		for (j = 0; j < dblen; j++)
			db[j] ^= em[j];
		if (top)
			db[0] &= (unsigned char)(0xff >> top);
		pslen = dblen - hlen - 1;
		for (j = 0; j < pslen && db[j] == 0; j++)
			;
		if (j == pslen && db[pslen] == 0x01) {
			OPENSSL_cleanse(db, sizeof db);
			return 1;
		}
	}
	OPENSSL_cleanse(db, sizeof db);
	return 0;
}

/* One private-key operation; the output in out/outlen. */
static enum msg_key_status
keyd_op(uint32_t op, uint32_t padding, const uint8_t *in, size_t inlen,
    unsigned char *out, size_t *outlen)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, keyd.key, NULL);
	enum msg_key_status st = KEY_STATUS_FAIL;

	if (ctx == NULL || EVP_PKEY_sign_init(ctx) != 1)
		goto done;
	switch (op) {
	case KEY_OP_ECDSA_SIGN:
		/* The input is the digest; no digest is set, so it is
		 * signed as given and the result is DER. */
		if (!EVP_PKEY_is_a(keyd.key, "EC"))
			goto done;
		break;
	case KEY_OP_RSA_SIGN:
		/* PKCS#1 v1.5 over a DigestInfo, or the raw operation over
		 * a block the worker padded (PSS, TLS 1.3).  Decryption is
		 * not offered: the workers refuse RSA key exchange. */
		if (!EVP_PKEY_is_a(keyd.key, "RSA") ||
		    (padding != RSA_PKCS1_PADDING && padding != RSA_NO_PADDING) ||
		    (padding == RSA_NO_PADDING && !keyd_pss_shaped(in, inlen)) ||
		    EVP_PKEY_CTX_set_rsa_padding(ctx, (int)padding) != 1)
			goto done;
		break;
	default:
		goto done;
	}
	if (EVP_PKEY_sign(ctx, out, outlen, in, inlen) == 1)
		st = KEY_STATUS_OK;
done:
	if (st != KEY_STATUS_OK) {
		char e[256] = "";

		ERR_error_string_n(ERR_get_error(), e, sizeof e);
		log_warnx("keyd: operation %u failed: %s", (unsigned)op, e);
		ERR_clear_error();
	}
	EVP_PKEY_CTX_free(ctx);
	return st;
}

static int
keyd_handle_op(struct keyd_conn *c, struct msg *m)
{
	const uint8_t *id, *in;
	size_t idlen, inlen, outlen = 0;
	uint32_t op, padding;
	unsigned char out[1024];	/* RSA 8192 bits */
	enum msg_key_status st;
	struct msg *r;

	if (msg_get_u32(m, &op) == -1 || msg_get_u32(m, &padding) == -1 ||
	    msg_get_data(m, &id, &idlen) == -1 ||
	    msg_get_data(m, &in, &inlen) == -1 || msg_end(m) == -1)
		return -1;
	if (idlen != KEYD_ID_LEN || memcmp(id, keyd.id, KEYD_ID_LEN) != 0)
		st = KEY_STATUS_WRONG_KEY;
	else if ((size_t)EVP_PKEY_get_size(keyd.key) > sizeof out)
		st = KEY_STATUS_FAIL;
	else {
		outlen = sizeof out;
		st = keyd_op(op, padding, in, inlen, out, &outlen);
	}
	if (st != KEY_STATUS_OK)
		outlen = 0;
	r = xmalloc(sizeof *r);
	msg_init(r, MSG_KEY_RESULT, m->reqid);
	msg_put_u32(r, st);
	msg_put_data(r, out, outlen);
	if (msg_send(c->fd, r) == -1 && errno != EPIPE)
		log_warn("keyd: send");
	free(r);
	OPENSSL_cleanse(out, sizeof out);
	return 0;
}

static void
keyd_conn_free(struct keyd_conn *c)
{
	TAILQ_REMOVE(&keyd.conns, c, entry);
	event_free(c->ev);
	close(c->fd);
	free(c);
}

static void
keyd_conn_read(evutil_socket_t fd, short ev, void *arg)
{
	struct keyd_conn *c = arg;
	struct msg *m = xmalloc(sizeof *m);
	int rc, bad = 0;

	while ((rc = msg_recv(fd, m)) == 1) {
		if (m->type != MSG_KEY_OP || keyd_handle_op(c, m) == -1) {
			bad = 1;
			break;
		}
	}
	free(m);
	if (bad || rc == -1) {
		log_warnx("keyd: malformed message from a worker; dropping it");
		keyd_conn_free(c);
	} else if (rc == 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		keyd_conn_free(c);	/* the worker went away */
}

static void
keyd_accept(evutil_socket_t lfd, short ev, void *arg)
{
	struct keyd_conn *c;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC))
	    != -1) {
		c = xcalloc(1, sizeof *c);
		c->fd = fd;
		TAILQ_INSERT_TAIL(&keyd.conns, c, entry);
		c->ev = event_new(keyd.base, fd, EV_READ | EV_PERSIST,
		    keyd_conn_read, c);
		event_add(c->ev, NULL);
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		log_warn("keyd: accept");
}

static void
keyd_sigterm(evutil_socket_t sig, short ev, void *arg)
{
	event_base_loopbreak(keyd.base);
}

void
keyd_main(const struct conf *conf, int listen_fd)
{
	char cert[PATH_MAX], key[PATH_MAX];
	struct event *ev_listen, *ev_term, *ev_int;
	sigset_t none;
	FILE *f;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	log_set_procname("postern/keyd");
	/* No core dumps and no ptrace by the workers' user. */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	tls_paths(conf, cert, sizeof cert, key, sizeof key);
	if ((f = fopen(key, "re")) == NULL)
		fatal("keyd: %s", key);
	/* No stdio buffer: the key's text is not left behind in one. */
	setvbuf(f, NULL, _IONBF, 0);
	keyd.key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (keyd.key == NULL || keyd_key_id(keyd.key, keyd.id) == -1)
		fatalx("keyd: cannot load the private key %s", key);
	log_info("keyd: serving the %s key of %s", EVP_PKEY_get0_type_name(
	    keyd.key), cert);

	TAILQ_INIT(&keyd.conns);
	if ((keyd.base = event_base_new()) == NULL)
		fatalx("keyd: event_base_new failed");
	ev_listen = event_new(keyd.base, listen_fd, EV_READ | EV_PERSIST,
	    keyd_accept, NULL);
	ev_term = evsignal_new(keyd.base, SIGTERM, keyd_sigterm, NULL);
	ev_int = evsignal_new(keyd.base, SIGINT, keyd_sigterm, NULL);
	event_add(ev_listen, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	event_base_dispatch(keyd.base);
	while (!TAILQ_EMPTY(&keyd.conns))
		keyd_conn_free(TAILQ_FIRST(&keyd.conns));
	event_free(ev_listen);
	event_free(ev_term);
	event_free(ev_int);
	event_base_free(keyd.base);
	EVP_PKEY_free(keyd.key);
	exit(0);
}
