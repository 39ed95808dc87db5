/*
 * tls_keyclient.c - the workers' side of the key process (keyd.h): a
 * key with the certificate's public half whose private operations
 * OpenSSL hands to an EC_KEY_METHOD / RSA_METHOD that asks keyd.  The
 * request is synchronous, as OpenSSL expects: one datagram out, one
 * back, at most KEYCLIENT_TIMEOUT_MS, so a dead or stopped keyd fails
 * the handshake instead of hanging the worker's event loop.
 *
 * The method APIs are deprecated in OpenSSL 3 but are still the way to
 * plug a remote key into libssl without writing a provider.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "tls/keyd.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "proc/msg.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/rsa.h>

#define KEYCLIENT_TIMEOUT_MS	2000

static struct {
	struct sockaddr_un	 sun;
	int			 fd;
	uint64_t		 reqid;
	unsigned char		 id[KEYD_ID_LEN];	/* the one key forwarded */
	EC_KEY_METHOD		*ec_method;
	RSA_METHOD		*rsa_method;
	struct msg		 m;
} kc = { .fd = -1 };

static int
keyclient_connect(void)
{
	if (kc.fd != -1)
		return 0;
	/* Non-blocking: with keyd stopped its backlog fills up, and a
	 * blocking connect or send would then hang the worker. */
	if ((kc.fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(kc.fd, (struct sockaddr *)&kc.sun, sizeof kc.sun) == -1) {
		log_warn("tls: cannot reach the key process at %s",
		    kc.sun.sun_path);
		close(kc.fd);
		kc.fd = -1;
		return -1;
	}
	return 0;
}

static void
keyclient_disconnect(void)
{
	if (kc.fd != -1)
		close(kc.fd);
	kc.fd = -1;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 +
	    (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Wait for the answer to reqid; 1 with kc.m holding it, 0 on timeout or
 * EOF, -1 on a malformed message. */
static int
keyclient_wait(uint64_t reqid, const struct timespec *t0)
{
	long left;
	int rc;

	while ((left = KEYCLIENT_TIMEOUT_MS - ms_since(t0)) > 0) {
		struct pollfd pfd = { .fd = kc.fd, .events = POLLIN };

		if (poll(&pfd, 1, (int)left) == -1) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if ((rc = msg_recv(kc.fd, &kc.m)) == -1)
			return -1;
		if (rc == 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return 0;	/* keyd went away */
		}
		if (kc.m.type == MSG_KEY_RESULT && kc.m.reqid == reqid)
			return 1;
		if (kc.m.type != MSG_KEY_RESULT)
			return -1;
		/* an answer to an earlier request: ignore it */
	}
	return 0;
}

/* One private-key operation in keyd: the output's length, or -1. */
static int
keyclient_request(uint32_t op, uint32_t padding, const unsigned char *in,
    size_t inlen, unsigned char *out, size_t outsz)
{
	struct timespec t0;
	const uint8_t *data;
	size_t n;
	uint32_t status;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* A second try on a fresh connection: keyd may have been
	 * restarted since the last handshake. */
	for (int attempt = 0; attempt < 2; attempt++) {
		uint64_t reqid = ++kc.reqid;
		int rc;

		if (keyclient_connect() == -1)
			return -1;
		msg_init(&kc.m, MSG_KEY_OP, reqid);
		msg_put_u32(&kc.m, op);
		msg_put_u32(&kc.m, padding);
		msg_put_data(&kc.m, kc.id, sizeof kc.id);
		msg_put_data(&kc.m, in, inlen);
		if (msg_send(kc.fd, &kc.m) == -1) {
			keyclient_disconnect();
			continue;
		}
		rc = keyclient_wait(reqid, &t0);
		if (rc == 1) {
			if (msg_get_u32(&kc.m, &status) == -1 ||
			    msg_get_data(&kc.m, &data, &n) == -1 ||
			    msg_end(&kc.m) == -1) {
				log_warnx("tls: malformed answer from the key "
				    "process");
				keyclient_disconnect();
				return -1;
			}
			if (status != KEY_STATUS_OK) {
				log_warnx("tls: the key process refused: %s",
				    status == KEY_STATUS_WRONG_KEY ? "it holds "
				    "another key (reloaded)" : "operation failed");
				return -1;
			}
			if (n > outsz)
				return -1;
			memcpy(out, data, n);
			return (int)n;
		}
		keyclient_disconnect();
		if (rc == -1) {
			log_warnx("tls: malformed answer from the key process");
			return -1;
		}
		if (ms_since(&t0) >= KEYCLIENT_TIMEOUT_MS)
			break;
	}
	log_warnx("tls: the key process did not answer");
	return -1;
}

/* ECDSA_sign(): DER signature into sig (ECDSA_size(ec) bytes). */
static int
keyclient_ec_sign(int type, const unsigned char *dgst, int dlen,
    unsigned char *sig, unsigned int *siglen, const BIGNUM *kinv,
    const BIGNUM *r, EC_KEY *ec)
{
	int n;

	if (dlen < 0 || (n = keyclient_request(KEY_OP_ECDSA_SIGN, 0, dgst,
	    (size_t)dlen, sig, (size_t)ECDSA_size(ec))) <= 0)
		return 0;
	*siglen = (unsigned int)n;
	return 1;
}

/* ECDSA_do_sign(): the same, as an ECDSA_SIG. */
static ECDSA_SIG *
keyclient_ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
    const BIGNUM *r, EC_KEY *ec)
{
	unsigned char der[256];
	const unsigned char *p = der;
	int n;

	if (dlen < 0 || ECDSA_size(ec) > (int)sizeof der ||
	    (n = keyclient_request(KEY_OP_ECDSA_SIGN, 0, dgst, (size_t)dlen,
	    der, sizeof der)) <= 0)
		return NULL;
	return d2i_ECDSA_SIG(NULL, &p, n);
}

/* RSA_private_encrypt(): libssl's PKCS#1 v1.5 signatures come here with
 * RSA_PKCS1_PADDING, PSS ones already padded with RSA_NO_PADDING. */
static int
keyclient_rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to,
    RSA *rsa, int padding)
{
	if (flen < 0 || (padding != RSA_PKCS1_PADDING &&
	    padding != RSA_NO_PADDING))
		return -1;
	return keyclient_request(KEY_OP_RSA_SIGN, (uint32_t)padding, from,
	    (size_t)flen, to, (size_t)RSA_size(rsa));
}

/* RSA key exchange (TLS 1.2 kRSA) is switched off for forwarded keys
 * (tls.c), so nothing decrypts with the key. */
static int
keyclient_rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to,
    RSA *rsa, int padding)
{
	return -1;
}

void
keyclient_init(const struct conf *c)
{
	memset(&kc.sun, 0, sizeof kc.sun);
	kc.sun.sun_family = AF_UNIX;
	if (keyd_socket_path(c, kc.sun.sun_path, sizeof kc.sun.sun_path) == -1)
		fatalx("tls: spool path too long for a unix socket");
	/* Now, while the worker may still be root; later reconnects go
	 * through the socket's group (root:postern 0660). */
	(void)keyclient_connect();
}

static EVP_PKEY *
keyclient_ec(EVP_PKEY *pub)
{
	const EC_KEY *src = EVP_PKEY_get0_EC_KEY(pub);
	EC_KEY *ec;
	EVP_PKEY *pk;

	if (kc.ec_method == NULL) {
		int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **);

		if ((kc.ec_method = EC_KEY_METHOD_new(EC_KEY_OpenSSL())) == NULL)
			return NULL;
		EC_KEY_METHOD_get_sign(EC_KEY_OpenSSL(), NULL, &sign_setup,
		    NULL);
		EC_KEY_METHOD_set_sign(kc.ec_method, keyclient_ec_sign,
		    sign_setup, keyclient_ec_sign_sig);
	}
	if (src == NULL || (ec = EC_KEY_dup(src)) == NULL)
		return NULL;
	/* The method before the EVP_PKEY: a key with a method of its own
	 * takes OpenSSL's legacy path, which calls the method. */
	if (EC_KEY_set_method(ec, kc.ec_method) != 1 ||
	    (pk = EVP_PKEY_new()) == NULL) {
		EC_KEY_free(ec);
		return NULL;
	}
	if (EVP_PKEY_assign_EC_KEY(pk, ec) != 1) {
		EC_KEY_free(ec);
		EVP_PKEY_free(pk);
		return NULL;
	}
	return pk;
}

static EVP_PKEY *
keyclient_rsa(EVP_PKEY *pub)
{
	const RSA *src = EVP_PKEY_get0_RSA(pub);
	RSA *rsa;
	EVP_PKEY *pk;

	if (kc.rsa_method == NULL) {
		if ((kc.rsa_method = RSA_meth_dup(RSA_PKCS1_OpenSSL())) == NULL)
			return NULL;
		RSA_meth_set1_name(kc.rsa_method, "postern keyd");
		RSA_meth_set_priv_enc(kc.rsa_method, keyclient_rsa_priv_enc);
		RSA_meth_set_priv_dec(kc.rsa_method, keyclient_rsa_priv_dec);
	}
	if (src == NULL || (rsa = RSAPublicKey_dup(src)) == NULL)
		return NULL;
	if (RSA_set_method(rsa, kc.rsa_method) != 1 ||
	    (pk = EVP_PKEY_new()) == NULL) {
		RSA_free(rsa);
		return NULL;
	}
	if (EVP_PKEY_assign_RSA(pk, rsa) != 1) {
		RSA_free(rsa);
		EVP_PKEY_free(pk);
		return NULL;
	}
	return pk;
}

EVP_PKEY *
keyclient_pkey(EVP_PKEY *pub)
{
	if (keyd_key_id(pub, kc.id) == -1)
		return NULL;
	switch (EVP_PKEY_get_base_id(pub)) {
	case EVP_PKEY_EC:
		return keyclient_ec(pub);
	case EVP_PKEY_RSA:
		return keyclient_rsa(pub);
	default:
		return NULL;
	}
}

void
keyclient_shutdown(void)
{
	keyclient_disconnect();
	/* EC_KEY_METHOD_free does not take NULL */
	if (kc.ec_method)
		EC_KEY_METHOD_free(kc.ec_method);
	RSA_meth_free(kc.rsa_method);
	kc.ec_method = NULL;
	kc.rsa_method = NULL;
}
