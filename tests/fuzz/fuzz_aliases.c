/*
 * fuzz_aliases.c - the aliases(5) parser (aliases_parse) and the
 * expansion the queue manager runs on it (aliases_expand), with a small
 * fixed users table.  Inputs naming :include: files are parsed but not
 * expanded: the fuzzer must not read arbitrary files (or block on
 * /dev/stdin).
 */
#include "fuzz.h"
#include "deliver/aliases.h"
#include "deliver/aliases_expand.h"

#include <strings.h>

static const char *users[] = { "hoge", "root", "demo", "postmaster" };

static const char *
fake_user(void *arg, const char *local, const char *domain)
{
	for (size_t i = 0; i < sizeof users / sizeof users[0]; i++)
		if (strcasecmp(local, users[i]) == 0)
			return users[i];
	return NULL;
}

static int
fake_is_local(void *arg, const char *domain)
{
	return strcasecmp(domain, "example.test") == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	struct aliases al;
	struct alias_ctx ctx = { &al, fake_user, fake_is_local, NULL, 0 };

	memset(&al, 0, sizeof al);
	if (aliases_parse("fuzz", text, &al, fuzz_devnull()) == 0 &&
	    memmem(data, size, ":include:", 9) == NULL) {
		for (size_t i = 0; i < al.nentries; i++) {
			struct alias_expansion ex;

			FUZZ_ASSERT(aliases_lookup(&al, al.entries[i].name) !=
			    NULL);
			aliases_expand(&ctx, al.entries[i].name, NULL, &ex);
			FUZZ_ASSERT(ex.n <= ALIAS_RESULTS_MAX + 1);
			for (size_t k = 0; k < ex.n; k++)
				FUZZ_ASSERT(ex.r[k].target != NULL);
			alias_expansion_free(&ex);
			if (i >= 32)
				break;		/* bounded time per input */
		}
	}
	aliases_free(&al);
	free(text);
	return 0;
}
