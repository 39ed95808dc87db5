/*
 * tls.c - OpenSSL contexts (see tls.h).  Runs in the master (to make and
 * check the certificate, in a short-lived child so that no copy of the
 * key is left in the memory the workers inherit) and in the workers,
 * whose key only forwards private operations to the key process
 * (keyd.c).
 */
#include "tls/tls.h"
#include "tls/keyd.h"
#include "lib/fsio.h"
#include "lib/log.h"
#include "lib/strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void
tls_paths(const struct conf *c, char *cert, size_t certsz, char *key,
    size_t keysz)
{
	if (c->tls_cert[0]) {
		strlcpy(cert, c->tls_cert, certsz);
		strlcpy(key, c->tls_key, keysz);
	} else {
		snprintf(cert, certsz, "%s/tls/selfsigned-cert.pem", c->spool);
		snprintf(key, keysz, "%s/tls/selfsigned-key.pem", c->spool);
	}
}

static void
tls_error(char *err, size_t errsz, const char *what, const char *path)
{
	unsigned long e = ERR_get_error();
	char detail[256] = "";

	if (e)
		ERR_error_string_n(e, detail, sizeof detail);
	snprintf(err, errsz, "%s %s%s%s", what, path, e ? ": " : "", detail);
	ERR_clear_error();
}

/* A context with the certificate chain and no key yet. */
static SSL_CTX *
tls_ctx_new(const char *cert, char *err, size_t errsz)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		tls_error(err, errsz, "cannot create a TLS context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Renegotiation has only ever brought attacks to SMTP. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	/* What a client sends is deciphered into a record buffer that
	 * OpenSSL keeps (or frees) as it is: cleansed once read, so that a
	 * password sent with AUTH or PASS does not stay in the worker. */
	SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
	/* Idle sessions give their read/write buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Resumption with tickets (stateless): repeated clients skip the
	 * full handshake. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"postern", 7);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_error(err, errsz, "cannot load the certificate", cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int
tls_ctx_check_key(SSL_CTX *ctx, const char *cert, char *err, size_t errsz)
{
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errsz, "the key does not match the certificate",
		    cert);
		return -1;
	}
	return 0;
}

SSL_CTX *
tls_server_ctx(const char *cert, const char *key, char *err, size_t errsz)
{
	SSL_CTX *ctx = tls_ctx_new(cert, err, errsz);

	if (ctx == NULL)
		return NULL;
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errsz, "cannot load the private key", key);
		goto fail;
	}
	if (tls_ctx_check_key(ctx, cert, err, errsz) == -1)
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_server_ctx_keyd(const char *cert, const char *key, char *err,
    size_t errsz)
{
	SSL_CTX *ctx = tls_ctx_new(cert, err, errsz);
	EVP_PKEY *pub, *pk;

	if (ctx == NULL)
		return NULL;
	pub = X509_get0_pubkey(SSL_CTX_get0_certificate(ctx));
	if (pub == NULL || (pk = keyclient_pkey(pub)) == NULL) {
		/* XXX Keys other than EC and RSA (Ed25519, RSA-PSS) are
		 * loaded here, as before the key process existed. */
		log_warnx("tls: the key process cannot sign with a %s key; "
		    "the workers load %s themselves",
		    pub ? EVP_PKEY_get0_type_name(pub) : "missing", key);
		SSL_CTX_free(ctx);
		return tls_server_ctx(cert, key, err, errsz);
	}
	if (SSL_CTX_use_PrivateKey(ctx, pk) != 1) {
		tls_error(err, errsz, "cannot use the key of", cert);
		EVP_PKEY_free(pk);
		goto fail;
	}
	EVP_PKEY_free(pk);
	/* RSA key exchange would need decryption in the key process, and
	 * gives no forward secrecy: ECDHE/DHE only. */
	if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA &&
	    SSL_CTX_set_cipher_list(ctx, "DEFAULT:!kRSA") != 1) {
		tls_error(err, errsz, "cannot set the ciphers for", cert);
		goto fail;
	}
	if (tls_ctx_check_key(ctx, cert, err, errsz) == -1)
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_describe(SSL *ssl, char *dst, size_t dstsz)
{
	snprintf(dst, dstsz, "version=%s cipher=%s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
}

/* Write a PEM object to path, created with the given mode, atomically. */
static int
write_pem(const char *path, mode_t mode, int (*fn)(BIO *, void *), void *obj)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int rc = -1;

	if (b == NULL)
		return -1;
	if (fn(b, obj) == 1 && (len = BIO_get_mem_data(b, &data)) > 0)
		rc = write_file_atomic(path, data, (size_t)len, mode);
	BIO_free(b);
	return rc;
}

static int
pem_key(BIO *b, void *k)
{
	return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static int
pem_cert(BIO *b, void *x)
{
	return PEM_write_bio_X509(b, x);
}

static int
tls_make_selfsigned(const char *hostname, const char *cert, const char *key)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext = NULL;
	X509V3_CTX v3;
	char san[300];
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	int rc = -1;

	if (pk == NULL || x == NULL)
		goto done;
	X509_set_version(x, 2);
	RAND_bytes(serial, sizeof serial);
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof serial, NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400);
	X509_set_pubkey(x, pk);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)hostname, -1, -1, 0);
	X509_set_issuer_name(x, name);
	snprintf(san, sizeof san, "DNS:%s", hostname);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san))
	    == NULL || X509_add_ext(x, ext, -1) != 1)
		goto done;
	if (X509_sign(x, pk, EVP_sha256()) == 0)
		goto done;
	/* The key first: a certificate without its key is useless. */
	if (write_pem(key, 0600, pem_key, pk) == -1 ||
	    write_pem(cert, 0644, pem_cert, x) == -1)
		goto done;
	rc = 0;
done:
	X509_EXTENSION_free(ext);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pk);
	return rc;
}

static int
tls_prepare_check(const struct conf *c)
{
	char cert[PATH_MAX], key[PATH_MAX], dir[PATH_MAX], err[512];
	SSL_CTX *ctx;

	tls_paths(c, cert, sizeof cert, key, sizeof key);
	if (!c->tls_cert[0]) {
		if ((size_t)snprintf(dir, sizeof dir, "%s/tls", c->spool) >=
		    sizeof dir || (mkdir(dir, 0700) == -1 && errno != EEXIST)) {
			log_warn("tls: mkdir %s", dir);
			return -1;
		}
		if (access(cert, R_OK) == -1 || access(key, R_OK) == -1) {
			if (tls_make_selfsigned(c->hostname, cert, key) == -1) {
				log_warnx("tls: cannot make a self-signed "
				    "certificate in %s", dir);
				return -1;
			}
			log_warnx("tls: made a self-signed certificate for %s "
			    "in %s", c->hostname, cert);
		}
		log_warnx("tls: using a self-signed certificate: clients will "
		    "not trust it; replace it with 'tls cert FILE key FILE'");
	}
	if ((ctx = tls_server_ctx(cert, key, err, sizeof err)) == NULL) {
		log_warnx("tls: %s", err);
		return -1;
	}
	SSL_CTX_free(ctx);
	return 0;
}

int
tls_prepare(const struct conf *c)
{
	pid_t pid;
	int status;

	/* In a child: the workers are forked from the master, and must not
	 * inherit the key from its heap (freed memory is not cleared). */
	if ((pid = fork()) == -1) {
		log_warn("tls: fork");
		return -1;
	}
	if (pid == 0)
		_exit(tls_prepare_check(c) == 0 ? 0 : 1);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			log_warn("tls: waitpid");
			return -1;
		}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
