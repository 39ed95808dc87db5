/*
 * test_sasl.c - SASL server mechanisms against the published exchanges
 * of RFC 2195 (CRAM-MD5), RFC 7677 (SCRAM-SHA-256) and RFC 2831
 * (DIGEST-MD5), plus PLAIN/LOGIN and malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/base64.h"
#include "sasl/sasl.h"
#include "sasl/sasl_int.h"
#include "sasl/sasl_client.h"

/* A one-user backend: secrets computed from a known password. */
static struct {
	const char *user, *password;
	char scram[256], cram[256], digest[256];
	int tempfail, later;
	char taken[64];		/* the password a "later" backend kept */
} fake;

static int
fake_verify(void *arg, const char *user, const char *password)
{
	if (fake.tempfail)
		return -1;
	if (fake.later) {
		snprintf(fake.taken, sizeof fake.taken, "%s", password);
		return SASL_VERIFY_LATER;
	}
	return strcmp(user, fake.user) == 0 &&
	    strcmp(password, fake.password) == 0;
}

static int
fake_secret(void *arg, const char *user, const char *kind, char *dst,
    size_t dstsz)
{
	const char *s = NULL;

	if (fake.tempfail)
		return -1;
	if (strcmp(user, fake.user) != 0)
		return 0;
	if (strcmp(kind, "scram-sha-256") == 0)
		s = fake.scram;
	else if (strcmp(kind, "cram-md5") == 0)
		s = fake.cram;
	else if (strcmp(kind, "digest-md5") == 0)
		s = fake.digest;
	if (s == NULL || !*s)
		return 0;
	snprintf(dst, dstsz, "%s", s);
	return (int)strlen(s);
}

static const struct sasl_backend fake_be = { NULL, fake_verify, fake_secret,
    NULL };

static void
set_user(const char *user, const char *password)
{
	memset(&fake, 0, sizeof fake);
	fake.user = user;
	fake.password = password;
}

static enum sasl_status
step_str(struct sasl_server *s, const char *in, struct buf *out)
{
	return sasl_server_step(s, (const unsigned char *)in, in ? strlen(in) : 0,
	    out);
}

static void
test_cram_md5_rfc2195(void **state)
{
	struct sasl_server s;
	struct buf out;

	set_user("tim", "tanstaaftanstaaf");
	assert_true(sasl_cram_md5_secret("tanstaaftanstaaf", fake.cram,
	    sizeof fake.cram) > 0);
	buf_init(&out, 0);
	sasl_server_init(&s, sasl_mech_lookup("CRAM-MD5"), &fake_be,
	    "postoffice.reston.mci.net", "smtp");
	sasl_server_set_nonce(&s, "<1896.697170952@postoffice.reston.mci.net>");
	assert_int_equal(step_str(&s, NULL, &out), SASL_CONTINUE);
	assert_string_equal(out.data, "<1896.697170952@postoffice.reston.mci.net>");
	assert_int_equal(step_str(&s, "tim b913a602c7eda7a495b4e6e7334d3890", &out),
	    SASL_OK);
	assert_string_equal(s.user, "tim");
	sasl_server_free(&s);

	/* A wrong digest, a wrong user, and a malformed response. */
	const char *bad[][2] = {
		{ "tim b913a602c7eda7a495b4e6e7334d3891", "fail" },
		{ "tom b913a602c7eda7a495b4e6e7334d3890", "fail" },
		{ "tim b913a602c7eda7a495b4e6e7334d389", "malformed" },
		{ "timb913a602c7eda7a495b4e6e7334d3890x", "malformed" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sasl_server_init(&s, sasl_mech_lookup("CRAM-MD5"), &fake_be,
		    "postoffice.reston.mci.net", "smtp");
		sasl_server_set_nonce(&s,
		    "<1896.697170952@postoffice.reston.mci.net>");
		step_str(&s, NULL, &out);
		enum sasl_status st = step_str(&s, bad[i][0], &out);
		if (st != (strcmp(bad[i][1], "fail") == 0 ? SASL_FAIL :
		    SASL_MALFORMED))
			fail_msg("'%s': got %d, want %s", bad[i][0], st, bad[i][1]);
		sasl_server_free(&s);
	}
	/* Server-first: an initial response is a protocol error. */
	sasl_server_init(&s, sasl_mech_lookup("CRAM-MD5"), &fake_be, "h", "smtp");
	assert_int_equal(step_str(&s, "tim", &out), SASL_MALFORMED);
	sasl_server_free(&s);
	buf_free(&out);
}

static void
test_scram_sha256_rfc7677(void **state)
{
	static const unsigned char salt[] = {
		0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
		0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81 };
	struct sasl_server s;
	struct buf out;
	char salt64[32];

	base64_encode(salt64, salt, sizeof salt);
	assert_string_equal(salt64, "W22ZaJ0SNY7soEsUEjb6gQ==");
	set_user("user", "pencil");
	assert_true(sasl_scram_secret("pencil", salt, sizeof salt, 4096,
	    fake.scram, sizeof fake.scram) > 0);
	buf_init(&out, 0);
	sasl_server_init(&s, sasl_mech_lookup("SCRAM-SHA-256"), &fake_be, "h",
	    "smtp");
	sasl_server_set_nonce(&s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	assert_int_equal(step_str(&s, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &out),
	    SASL_CONTINUE);
	assert_string_equal(out.data, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfux"
	    "FIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
	assert_int_equal(step_str(&s, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2Ra"
	    "TCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    &out), SASL_CONTINUE);
	assert_string_equal(out.data,
	    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	assert_int_equal(step_str(&s, "", &out), SASL_OK);
	assert_string_equal(s.user, "user");
	sasl_server_free(&s);

	/* The same exchange with a wrong proof fails; so does an unknown
	 * user (who still gets a salt, so nothing is revealed). */
	sasl_server_init(&s, sasl_mech_lookup("SCRAM-SHA-256"), &fake_be, "h",
	    "smtp");
	sasl_server_set_nonce(&s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	step_str(&s, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &out);
	assert_int_equal(step_str(&s, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2Ra"
	    "TCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVA=",
	    &out), SASL_FAIL);
	sasl_server_free(&s);
	sasl_server_init(&s, sasl_mech_lookup("SCRAM-SHA-256"), &fake_be, "h",
	    "smtp");
	assert_int_equal(step_str(&s, "n,,n=nobody,r=rOprNGfwEbeRWgbNEkqO", &out),
	    SASL_CONTINUE);
	assert_non_null(strstr(out.data, ",s="));
	sasl_server_free(&s);

	/* Malformed first messages. */
	const char *bad[] = { "p=tls-unique,,n=user,r=abcdefgh", "n,n=user",
	    "n,,n=user", "n,,r=abcdefgh", "n,,n=us=2Xer,r=abcdefgh",
	    "x,,n=user,r=abcdefgh", "n,,n=user,r=abc" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sasl_server_init(&s, sasl_mech_lookup("SCRAM-SHA-256"), &fake_be,
		    "h", "smtp");
		enum sasl_status st = step_str(&s, bad[i], &out);
		if (st != SASL_MALFORMED)
			fail_msg("'%s': got %d, want MALFORMED", bad[i], st);
		sasl_server_free(&s);
	}
	/* c= must match the gs2 header, r= the full nonce. */
	sasl_server_init(&s, sasl_mech_lookup("SCRAM-SHA-256"), &fake_be, "h",
	    "smtp");
	sasl_server_set_nonce(&s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	step_str(&s, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &out);
	assert_int_equal(step_str(&s, "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2Ra"
	    "TCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    &out), SASL_MALFORMED);
	sasl_server_free(&s);
	buf_free(&out);
}

static void
test_digest_md5_rfc2831(void **state)
{
	struct sasl_server s;
	struct buf out;

	set_user("chris", "secret");
	assert_true(sasl_digest_md5_secret("chris", "elwood.innosoft.com",
	    "secret", fake.digest, sizeof fake.digest) > 0);
	buf_init(&out, 0);
	sasl_server_init(&s, sasl_mech_lookup("DIGEST-MD5"), &fake_be,
	    "elwood.innosoft.com", "imap");
	sasl_server_set_nonce(&s, "OA6MG9tEQGm2hh");
	assert_int_equal(step_str(&s, NULL, &out), SASL_CONTINUE);
	assert_non_null(strstr(out.data, "nonce=\"OA6MG9tEQGm2hh\""));
	assert_non_null(strstr(out.data, "realm=\"elwood.innosoft.com\""));
	assert_int_equal(step_str(&s, "charset=utf-8,username=\"chris\","
	    "realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",nc=00000001,"
	    "cnonce=\"OA6MHXh6VqTrRk\",digest-uri=\"imap/elwood.innosoft.com\","
	    "response=d388dad90d4bbd760a152321f2143af7,qop=auth", &out),
	    SASL_CONTINUE);
	assert_string_equal(out.data, "rspauth=ea40f60335c427b5527b84dbabcdfffd");
	assert_int_equal(step_str(&s, "", &out), SASL_OK);
	sasl_server_free(&s);

	/* Wrong response, replayed nonce, other service, repeated directive. */
	const char *bad[][2] = {
		{ "username=\"chris\",realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",digest-uri=\"imap/elwood.innosoft.com\",response=d388dad90d4bbd760a152321f2143af8,qop=auth", "fail" },
		{ "username=\"chris\",realm=\"elwood.innosoft.com\",nonce=\"XXXXXXXXXXXXXX\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",digest-uri=\"imap/elwood.innosoft.com\",response=d388dad90d4bbd760a152321f2143af7,qop=auth", "fail" },
		{ "username=\"chris\",realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",digest-uri=\"smtp/elwood.innosoft.com\",response=d388dad90d4bbd760a152321f2143af7,qop=auth", "fail" },
		{ "username=\"chris\",username=\"chris\",nonce=\"OA6MG9tEQGm2hh\"", "malformed" },
		{ "username=\"chris", "malformed" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sasl_server_init(&s, sasl_mech_lookup("DIGEST-MD5"), &fake_be,
		    "elwood.innosoft.com", "imap");
		sasl_server_set_nonce(&s, "OA6MG9tEQGm2hh");
		step_str(&s, NULL, &out);
		enum sasl_status st = step_str(&s, bad[i][0], &out);
		if (st != (strcmp(bad[i][1], "fail") == 0 ? SASL_FAIL :
		    SASL_MALFORMED))
			fail_msg("case %zu: got %d, want %s", i, st, bad[i][1]);
		sasl_server_free(&s);
	}
	buf_free(&out);
}

/* RFC 2831 section 2.1.2.1: the response for a digest-uri, with the
 * RFC's user, password, nonces and qop=auth. */
static void
digest_response_for(const char *uri, char out[33])
{
	unsigned char h[16], a1[16 + 64];
	char hex1[33], hex2[33], buf[512];
	unsigned int len;
	size_t n;

	EVP_Digest("chris:elwood.innosoft.com:secret", 32, h, &len, EVP_md5(),
	    NULL);
	memcpy(a1, h, 16);
	n = 16 + (size_t)snprintf((char *)a1 + 16, 64,
	    ":OA6MG9tEQGm2hh:OA6MHXh6VqTrRk");
	EVP_Digest(a1, n, h, &len, EVP_md5(), NULL);
	sasl_hex(hex1, h, 16);
	n = (size_t)snprintf(buf, sizeof buf, "AUTHENTICATE:%s", uri);
	EVP_Digest(buf, n, h, &len, EVP_md5(), NULL);
	sasl_hex(hex2, h, 16);
	n = (size_t)snprintf(buf, sizeof buf, "%s:OA6MG9tEQGm2hh:00000001:"
	    "OA6MHXh6VqTrRk:auth:%s", hex1, hex2);
	EVP_Digest(buf, n, h, &len, EVP_md5(), NULL);
	sasl_hex(out, h, 16);
}

/* The server's names, as authd knows them: its host name, a domain,
 * the address the client connected to. */
static int
fake_host_is_ours(void *arg, const char *host)
{
	return strcmp(host, "elwood.innosoft.com") == 0 ||
	    strcmp(host, "innosoft.com") == 0 || strcmp(host, "::1") == 0 ||
	    strcmp(host, "192.0.2.1") == 0;
}

/* digest-uri = serv-type "/" host [ "/" serv-name ] must name this
 * service and this server (RFC 2831 section 2.1.2), whatever the
 * response: each row carries the right response for its digest-uri. */
static void
test_digest_md5_uri(void **state)
{
	static const struct sasl_backend be = { NULL, fake_verify,
	    fake_secret, fake_host_is_ours };
	static const struct { const char *uri; const char *refused; } rows[] = {
		{ "imap/elwood.innosoft.com", NULL },
		{ "IMAP/elwood.innosoft.com", NULL },
		{ "imap/innosoft.com", NULL },
		{ "imap/192.0.2.1", NULL },
		{ "imap/::1", NULL },
		{ "imap/[::1]", NULL },
		{ "imap/elwood.innosoft.com/innosoft.com", NULL },
		{ "smtp/elwood.innosoft.com", "names another service" },
		{ "imaps/elwood.innosoft.com", "names another service" },
		{ "ima/elwood.innosoft.com", "names another service" },
		{ "imap", "names another service" },
		{ "/elwood.innosoft.com", "names another service" },
		{ "imap/", "names another host" },
		{ "imap/mail.other.example", "names another host" },
		{ "imap/192.0.2.2", "names another host" },
		{ "imap/[192.0.2.2]", "names another host" },
		{ "imap/[::1", "names another host" },
		{ "imap/elwood.innosoft.com/other.example", "names another host" },
		{ "imap/elwood.innosoft.com/", "names another host" },
		{ "imap/mail.other.example/innosoft.com", "names another host" },
	};
	struct sasl_server s;
	struct buf out;
	char resp[33], msg[512];

	set_user("chris", "secret");
	assert_true(sasl_digest_md5_secret("chris", "elwood.innosoft.com",
	    "secret", fake.digest, sizeof fake.digest) > 0);
	buf_init(&out, 0);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		enum sasl_status st;

		digest_response_for(rows[i].uri, resp);
		snprintf(msg, sizeof msg, "username=\"chris\",realm=\"elwood."
		    "innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",nc=00000001,"
		    "cnonce=\"OA6MHXh6VqTrRk\",digest-uri=\"%s\",response=%s,"
		    "qop=auth", rows[i].uri, resp);
		sasl_server_init(&s, sasl_mech_lookup("DIGEST-MD5"), &be,
		    "elwood.innosoft.com", "imap");
		sasl_server_set_nonce(&s, "OA6MG9tEQGm2hh");
		step_str(&s, NULL, &out);
		st = step_str(&s, msg, &out);
		if (st != (rows[i].refused ? SASL_FAIL : SASL_CONTINUE))
			fail_msg("'%s': got %d, want %s", rows[i].uri, st,
			    rows[i].refused ? "FAIL" : "CONTINUE");
		if (rows[i].refused ? strstr(s.refusal, rows[i].refused) == NULL ||
		    strstr(s.refusal, rows[i].uri) == NULL : s.refusal[0] != '\0')
			fail_msg("'%s': refusal '%s'", rows[i].uri, s.refusal);
		/* The log line gets the digest-uri, never the response. */
		if (strstr(s.refusal, resp) != NULL)
			fail_msg("'%s': the response in '%s'", rows[i].uri,
			    s.refusal);
		sasl_server_free(&s);
	}
	/* Without the backend's answer, the host name alone is ours. */
	digest_response_for("imap/192.0.2.1", resp);
	snprintf(msg, sizeof msg, "username=\"chris\",realm=\"elwood.innosoft."
	    "com\",nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTr"
	    "Rk\",digest-uri=\"imap/192.0.2.1\",response=%s,qop=auth", resp);
	sasl_server_init(&s, sasl_mech_lookup("DIGEST-MD5"), &fake_be,
	    "elwood.innosoft.com", "imap");
	sasl_server_set_nonce(&s, "OA6MG9tEQGm2hh");
	step_str(&s, NULL, &out);
	assert_int_equal(step_str(&s, msg, &out), SASL_FAIL);
	sasl_server_free(&s);
	buf_free(&out);
}

static void
test_plain_login(void **state)
{
	struct sasl_server s;
	struct buf out;
	static const unsigned char ok[] = "\0hoge\0secret";
	static const unsigned char authz[] = "hoge\0hoge\0secret";
	static const unsigned char proxy[] = "root\0hoge\0secret";
	static const unsigned char wrong[] = "\0hoge\0Secret";
	static const unsigned char nonul[] = "hoge secret";
	static const unsigned char onenul[] = "\0hogesecret";
	static const struct { const unsigned char *in; size_t n; enum sasl_status want; } rows[] = {
		{ ok, sizeof ok - 1, SASL_OK },
		{ authz, sizeof authz - 1, SASL_OK },
		{ proxy, sizeof proxy - 1, SASL_FAIL },
		{ wrong, sizeof wrong - 1, SASL_FAIL },
		{ nonul, sizeof nonul - 1, SASL_MALFORMED },
		{ onenul, sizeof onenul - 1, SASL_MALFORMED },
		{ (const unsigned char *)"\0hoge\0", 6, SASL_MALFORMED },
		{ (const unsigned char *)"\0\0secret", 8, SASL_MALFORMED },
	};

	set_user("hoge", "secret");
	buf_init(&out, 0);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		sasl_server_init(&s, sasl_mech_lookup("plain"), &fake_be, "h",
		    "smtp");
		enum sasl_status st = sasl_server_step(&s, rows[i].in, rows[i].n,
		    &out);
		if (st != rows[i].want)
			fail_msg("row %zu: got %d, want %d", i, st, rows[i].want);
		sasl_server_free(&s);
	}
	/* No initial response: an empty challenge first. */
	sasl_server_init(&s, sasl_mech_lookup("PLAIN"), &fake_be, "h", "smtp");
	assert_int_equal(sasl_server_step(&s, NULL, 0, &out), SASL_CONTINUE);
	assert_int_equal(out.len, 0);
	assert_int_equal(sasl_server_step(&s, ok, sizeof ok - 1, &out), SASL_OK);
	sasl_server_free(&s);

	/* LOGIN, with and without the user name as initial response. */
	sasl_server_init(&s, sasl_mech_lookup("LOGIN"), &fake_be, "h", "smtp");
	assert_int_equal(step_str(&s, NULL, &out), SASL_CONTINUE);
	assert_string_equal(out.data, "Username:");
	assert_int_equal(step_str(&s, "hoge", &out), SASL_CONTINUE);
	assert_string_equal(out.data, "Password:");
	assert_int_equal(step_str(&s, "secret", &out), SASL_OK);
	sasl_server_free(&s);
	sasl_server_init(&s, sasl_mech_lookup("LOGIN"), &fake_be, "h", "smtp");
	assert_int_equal(step_str(&s, "hoge", &out), SASL_CONTINUE);
	assert_string_equal(out.data, "Password:");
	assert_int_equal(step_str(&s, "nope", &out), SASL_FAIL);
	sasl_server_free(&s);

	/* A backend that cannot answer gives a temporary failure. */
	fake.tempfail = 1;
	sasl_server_init(&s, sasl_mech_lookup("PLAIN"), &fake_be, "h", "smtp");
	assert_int_equal(sasl_server_step(&s, ok, sizeof ok - 1, &out),
	    SASL_TEMPFAIL);
	sasl_server_free(&s);
	buf_free(&out);
}

/* A backend that verifies on a thread: the step waits, and the verdict
 * finishes it; nothing else is taken meanwhile or afterwards. */
static void
test_verdict_given_later(void **state)
{
	static const unsigned char ok[] = "\0hoge\0secret";
	static const struct { int verdict; enum sasl_status want; } rows[] = {
		{ 1, SASL_OK }, { 0, SASL_FAIL }, { -1, SASL_TEMPFAIL },
	};
	struct sasl_server s;
	struct buf out;

	set_user("hoge", "secret");
	fake.later = 1;
	buf_init(&out, 0);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		sasl_server_init(&s, sasl_mech_lookup("PLAIN"), &fake_be, "h",
		    "smtp");
		/* A verdict before any step is out of turn. */
		assert_int_equal(sasl_server_verdict(&s, 1), SASL_MALFORMED);
		assert_int_equal(sasl_server_step(&s, ok, sizeof ok - 1, &out),
		    SASL_PENDING);
		assert_string_equal(fake.taken, "secret");
		assert_string_equal(s.user, "hoge");
		/* The client cannot step on while the verdict is due. */
		assert_int_equal(sasl_server_step(&s, ok, sizeof ok - 1, &out),
		    SASL_MALFORMED);
		assert_int_equal(sasl_server_verdict(&s, rows[i].verdict),
		    rows[i].want);
		/* One verdict per verification. */
		assert_int_equal(sasl_server_verdict(&s, 1), SASL_MALFORMED);
		sasl_server_free(&s);
	}
	/* LOGIN: the password step waits the same way. */
	sasl_server_init(&s, sasl_mech_lookup("LOGIN"), &fake_be, "h", "smtp");
	assert_int_equal(step_str(&s, "hoge", &out), SASL_CONTINUE);
	assert_int_equal(step_str(&s, "pw2", &out), SASL_PENDING);
	assert_string_equal(fake.taken, "pw2");
	assert_int_equal(sasl_server_verdict(&s, 0), SASL_FAIL);
	sasl_server_free(&s);
	buf_free(&out);
}

static void
test_base64_strict(void **state)
{
	static const struct { const char *in; long want; } rows[] = {
		{ "", 0 }, { "Zg==", 1 }, { "Zm8=", 2 }, { "Zm9v", 3 },
		{ "Zg=", -1 }, { "Zg", -1 }, { "Z===", -1 }, { "Zh==", -1 },
		{ "Zm9=", -1 }, { "Zm 9v", -1 }, { "Zm9v\n", -1 }, { "=m9v", -1 },
		{ "Zg==Zg==", -1 }, { "Zm9*", -1 },
	};
	unsigned char out[64];

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		long got = base64_decode(out, rows[i].in, strlen(rows[i].in));
		if (got != rows[i].want)
			fail_msg("'%s': got %ld, want %ld", rows[i].in, got,
			    rows[i].want);
	}
	char enc[16];
	base64_encode(enc, (const unsigned char *)"foob", 4);
	assert_string_equal(enc, "Zm9vYg==");
}

static void
test_client_scram_rfc7677(void **state)
{
	struct sasl_client c;
	struct buf out;
	int ir;
	const char *sf = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

	buf_init(&out, 0);
	sasl_client_init(&c, sasl_mech_lookup("SCRAM-SHA-256"), "user", "pencil");
	sasl_client_set_nonce(&c, "rOprNGfwEbeRWgbNEkqO");
	assert_int_equal(sasl_client_step(&c, NULL, 0, &out, &ir), SASL_CONTINUE);
	assert_true(ir);
	assert_string_equal(out.data, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
	assert_int_equal(sasl_client_step(&c, (const unsigned char *)sf,
	    strlen(sf), &out, &ir), SASL_CONTINUE);
	assert_string_equal(out.data, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2R"
	    "aTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
	/* A server that proves the wrong thing is refused. */
	{
		struct sasl_client bad = c;
		bad.saved.data = NULL;	/* shares nothing freed below */
		const char *v = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=";
		assert_int_equal(sasl_client_step(&bad, (const unsigned char *)v,
		    strlen(v), &out, &ir), SASL_FAIL);
	}
	const char *v = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
	assert_int_equal(sasl_client_step(&c, (const unsigned char *)v,
	    strlen(v), &out, &ir), SASL_OK);
	sasl_client_free(&c);
	/* A server nonce that does not extend ours is a protocol error. */
	sasl_client_init(&c, sasl_mech_lookup("SCRAM-SHA-256"), "user", "pencil");
	sasl_client_set_nonce(&c, "abcdefgh");
	sasl_client_step(&c, NULL, 0, &out, &ir);
	assert_int_equal(sasl_client_step(&c, (const unsigned char *)sf,
	    strlen(sf), &out, &ir), SASL_MALFORMED);
	sasl_client_free(&c);
	buf_free(&out);
}

/* The client's checks of server-first-message (RFC 5802 section 7,
 * RFC 7677 section 4) and of server-final-message. */
static void
test_client_scram_server_first(void **state)
{
#define N "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define S "s=W22ZaJ0SNY7soEsUEjb6gQ=="
	static const struct {
		const char *sf;
		enum sasl_status want;
		const char *error;	/* in c.error; NULL: none */
	} rows[] = {
		{ N "," S ",i=4096", SASL_CONTINUE, NULL },
		{ N "," S ",i=4096,x=an extension", SASL_CONTINUE, NULL },
		{ N "," S ",i=1000000", SASL_CONTINUE, NULL },
		{ N "," S ",i=1", SASL_MALFORMED,
		    "asks for 1 SCRAM iterations, fewer than the 4096" },
		{ N "," S ",i=4095", SASL_MALFORMED, "fewer than the 4096" },
		{ N "," S ",i=1000001", SASL_MALFORMED,
		    "more than 1000000 SCRAM iterations" },
		{ N "," S ",i=99999999999999999999999", SASL_MALFORMED,
		    "more than 1000000" },
		{ N "," S ",i=04096", SASL_MALFORMED, "not a number" },
		{ N "," S ",i=-4096", SASL_MALFORMED, "not a number" },
		{ N "," S ",i=4096x", SASL_MALFORMED, "not a number" },
		{ N "," S ",i=", SASL_MALFORMED, "not a number" },
		{ "m=must-know," N "," S ",i=4096", SASL_MALFORMED,
		    "extension (m=)" },
		{ S "," N ",i=4096", SASL_MALFORMED, "r=, s=, i= expected" },
		{ N "," S, SASL_MALFORMED, "r=, s=, i= expected" },
		{ N ",i=4096," S, SASL_MALFORMED, "r=, s=, i= expected" },
		{ N ",s=,i=4096", SASL_MALFORMED, "salt is empty or not base64" },
		{ N ",s=W22ZaJ0SNY7soEsUEjb6g,i=4096", SASL_MALFORMED,
		    "salt is empty" },
		{ "r=rOprNGfwEbeRWgbNEkqO," S ",i=4096", SASL_MALFORMED,
		    "nonce does not extend ours" },
		{ "r=XOprNGfwEbeRWgbNEkqO%hvY," S ",i=4096", SASL_MALFORMED,
		    "nonce does not extend ours" },
		{ "r=rOprNGfwEbeRWgbNEkqO\x7f," S ",i=4096", SASL_MALFORMED,
		    "nonce holds a character" },
		{ "e=unknown-user", SASL_MALFORMED,
		    "refused the SCRAM exchange: unknown-user" },
	};
	struct sasl_client c;
	struct buf out;
	int ir;

	buf_init(&out, 0);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		enum sasl_status st;

		sasl_client_init(&c, sasl_mech_lookup("SCRAM-SHA-256"), "user",
		    "pencil");
		sasl_client_set_nonce(&c, "rOprNGfwEbeRWgbNEkqO");
		sasl_client_step(&c, NULL, 0, &out, &ir);
		st = sasl_client_step(&c, (const unsigned char *)rows[i].sf,
		    strlen(rows[i].sf), &out, &ir);
		if (st != rows[i].want)
			fail_msg("'%s': got %d, want %d (%s)", rows[i].sf, st,
			    rows[i].want, c.error);
		if (rows[i].error ? strstr(c.error, rows[i].error) == NULL :
		    c.error[0] != '\0')
			fail_msg("'%s': got error '%s', want '%s'", rows[i].sf,
			    c.error, rows[i].error ? rows[i].error : "");
		/* Nothing that depends on the password leaves on a refusal. */
		if (st != SASL_CONTINUE && out.len != 0)
			fail_msg("'%s': a response of %zu octets", rows[i].sf,
			    out.len);
		sasl_client_free(&c);
	}
	/* A NUL inside is refused, not cut short. */
	{
		static const char nul[] = N "," S ",i=4096\0,i=1";

		sasl_client_init(&c, sasl_mech_lookup("SCRAM-SHA-256"), "user",
		    "pencil");
		sasl_client_set_nonce(&c, "rOprNGfwEbeRWgbNEkqO");
		sasl_client_step(&c, NULL, 0, &out, &ir);
		assert_int_equal(sasl_client_step(&c, (const unsigned char *)nul,
		    sizeof nul - 1, &out, &ir), SASL_MALFORMED);
		sasl_client_free(&c);
	}
	/* server-final: the RFC 7677 signature, with an extension after
	 * it; a server error is reported as the server gave it. */
	static const struct {
		const char *v;
		enum sasl_status want;
		const char *error;
	} finals[] = {
		{ "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", SASL_OK, NULL },
		{ "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1", SASL_OK,
		    NULL },
		{ "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", SASL_FAIL,
		    "could not prove" },
		{ "e=invalid-proof", SASL_FAIL,
		    "refused the SCRAM exchange: invalid-proof" },
		{ "", SASL_FAIL, "could not prove" },
	};
	for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++) {
		const char *sf = N "," S ",i=4096";
		enum sasl_status st;

		sasl_client_init(&c, sasl_mech_lookup("SCRAM-SHA-256"), "user",
		    "pencil");
		sasl_client_set_nonce(&c, "rOprNGfwEbeRWgbNEkqO");
		sasl_client_step(&c, NULL, 0, &out, &ir);
		assert_int_equal(sasl_client_step(&c, (const unsigned char *)sf,
		    strlen(sf), &out, &ir), SASL_CONTINUE);
		st = sasl_client_step(&c, (const unsigned char *)finals[i].v,
		    strlen(finals[i].v), &out, &ir);
		if (st != finals[i].want || (finals[i].error ?
		    strstr(c.error, finals[i].error) == NULL : c.error[0] != '\0'))
			fail_msg("'%s': got %d '%s', want %d '%s'", finals[i].v,
			    st, c.error, finals[i].want,
			    finals[i].error ? finals[i].error : "");
		sasl_client_free(&c);
	}
	buf_free(&out);
#undef N
#undef S
}

/* Every client mechanism against the server side, through the fake
 * backend: right password in, wrong password out. */
static void
test_client_server_round_trip(void **state)
{
	static const char *mechs[] = { "PLAIN", "LOGIN", "CRAM-MD5",
	    "SCRAM-SHA-256" };

	set_user("hoge", "round trip pw");
	sasl_cram_md5_secret("round trip pw", fake.cram, sizeof fake.cram);
	{
		static const unsigned char salt[] = "0123456789abcdef";
		sasl_scram_secret("round trip pw", salt, 16, 4096, fake.scram,
		    sizeof fake.scram);
	}
	for (size_t m = 0; m < sizeof mechs / sizeof mechs[0]; m++)
		for (int wrong = 0; wrong < 2; wrong++) {
			struct sasl_client c;
			struct sasl_server s;
			struct buf cout, sout;
			enum sasl_status cs, ss;
			int ir, rounds = 0;

			buf_init(&cout, 0);
			buf_init(&sout, 0);
			sasl_client_init(&c, sasl_mech_lookup(mechs[m]), "hoge",
			    wrong ? "not it" : "round trip pw");
			sasl_server_init(&s, sasl_mech_lookup(mechs[m]), &fake_be,
			    "h", "smtp");
			cs = sasl_client_step(&c, NULL, 0, &cout, &ir);
			ss = sasl_server_step(&s, ir ? (const unsigned char *)
			    (cout.data ? cout.data : "") : NULL, cout.len, &sout);
			while (ss == SASL_CONTINUE && cs == SASL_CONTINUE &&
			    rounds++ < 5) {
				cs = sasl_client_step(&c, (const unsigned char *)
				    (sout.data ? sout.data : ""), sout.len, &cout,
				    &ir);
				if (cs == SASL_OK) {	/* SCRAM: acknowledge */
					ss = sasl_server_step(&s,
					    (const unsigned char *)"", 0, &sout);
					break;
				}
				if (cs != SASL_CONTINUE)
					break;
				ss = sasl_server_step(&s, (const unsigned char *)
				    (cout.data ? cout.data : ""), cout.len, &sout);
			}
			if ((ss == SASL_OK) != !wrong)
				fail_msg("%s wrong=%d: server %d client %d",
				    mechs[m], wrong, ss, cs);
			sasl_client_free(&c);
			sasl_server_free(&s);
			buf_free(&cout);
			buf_free(&sout);
		}
	assert_ptr_equal(sasl_client_choose("LOGIN PLAIN CRAM-MD5"),
	    sasl_mech_lookup("CRAM-MD5"));
	assert_ptr_equal(sasl_client_choose("LOGIN PLAIN"),
	    sasl_mech_lookup("PLAIN"));
	assert_ptr_equal(sasl_client_choose("GSSAPI XOAUTH2"), NULL);
	assert_ptr_equal(sasl_client_choose("SCRAM-SHA-256-PLUS LOGIN"),
	    sasl_mech_lookup("LOGIN"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cram_md5_rfc2195),
		cmocka_unit_test(test_scram_sha256_rfc7677),
		cmocka_unit_test(test_digest_md5_rfc2831),
		cmocka_unit_test(test_digest_md5_uri),
		cmocka_unit_test(test_plain_login),
		cmocka_unit_test(test_verdict_given_later),
		cmocka_unit_test(test_base64_strict),
		cmocka_unit_test(test_client_scram_rfc7677),
		cmocka_unit_test(test_client_scram_server_first),
		cmocka_unit_test(test_client_server_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
