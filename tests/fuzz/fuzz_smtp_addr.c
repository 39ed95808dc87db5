/*
 * fuzz_smtp_addr.c - MAIL FROM / RCPT TO arguments (smtp_addr_parse)
 * and bare paths (smtp_addr_parse_path).  The first octet picks MAIL or
 * RCPT; the rest is the argument after the verb, as the session passes
 * it (a C string: lines with a NUL never get this far).
 */
#include "fuzz.h"
#include "smtp/smtp_addr.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_param params[SMTP_PARAMS_MAX];
	struct mailaddr a, b;
	size_t nparams = 0;
	enum addr_kind kind;
	char *arg, out[SMTP_PATH_MAX + 1], local[SMTP_LOCAL_MAX + 1];

	if (size < 1)
		return 0;
	kind = (data[0] & 1) ? ADDR_RCPT : ADDR_MAIL;
	data++, size--;
	/* The session bounds lines at SMTP_LINE_MAX (512) octets. */
	if (size > 4096)
		return 0;
	arg = fuzz_strndup(data, size);
	if (smtp_addr_parse(arg, kind, &a, params, &nparams) == 0) {
		FUZZ_ASSERT(nparams <= SMTP_PARAMS_MAX);
		FUZZ_ASSERT(strlen(a.local) <= SMTP_LOCAL_MAX);
		FUZZ_ASSERT(strlen(a.domain) <= SMTP_DOMAIN_MAX);
		for (size_t i = 0; i < nparams; i++)
			FUZZ_ASSERT(params[i].key != NULL && *params[i].key);
		if (kind == ADDR_RCPT)
			FUZZ_ASSERT(!smtp_addr_is_null(&a));
		smtp_addr_format(&a, out, sizeof out);
		FUZZ_ASSERT(strlen(out) <= SMTP_PATH_MAX);
		/* What we formatted parses again to the same address: the
		 * spool and the logs depend on that. */
		if (!smtp_addr_is_null(&a) && a.domain[0]) {
			FUZZ_ASSERT(smtp_addr_parse_path(out, strlen(out), &b) == 0);
			FUZZ_ASSERT(strcmp(a.local, b.local) == 0);
			FUZZ_ASSERT(strcmp(a.domain, b.domain) == 0);
		}
		if (smtp_addr_simple_local(&a, local, sizeof local) == 0)
			FUZZ_ASSERT(strlen(local) <= SMTP_LOCAL_MAX);
	}
	free(arg);
	/* The path parser alone, on the raw octets (NULs included). */
	if (smtp_addr_parse_path((const char *)data, size, &b) == 0) {
		FUZZ_ASSERT(strlen(b.local) <= SMTP_LOCAL_MAX);
		FUZZ_ASSERT(strlen(b.domain) <= SMTP_DOMAIN_MAX);
	}
	(void)smtp_domain_valid((const char *)data, size);
	return 0;
}
