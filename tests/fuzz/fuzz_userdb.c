/*
 * fuzz_userdb.c - the users file parser (userdb_parse) and the line
 * writer behind `postern user`: every entry the parser accepts must be
 * written back as a line that parses to the same account.
 */
#include "fuzz.h"
#include "auth/userdb.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	struct userdb db, again;
	char line[8192];

	if (userdb_parse("fuzz", text, &db, fuzz_devnull()) == 0) {
		for (size_t i = 0; i < db.nusers; i++) {
			const struct user_entry *u = &db.users[i];

			FUZZ_ASSERT(userdb_name_valid(u->name));
			FUZZ_ASSERT(userdb_lookup(&db, u->name) != NULL);
			for (size_t k = 0; k < u->naddresses; k++)
				FUZZ_ASSERT(userdb_lookup_address(&db,
				    u->addresses[k]) != NULL);
			if (userdb_format(u, line, sizeof line) < 0)
				continue;
			FUZZ_ASSERT(userdb_parse("again", line, &again,
			    fuzz_devnull()) == 0);
			FUZZ_ASSERT(again.nusers == 1);
			FUZZ_ASSERT(strcmp(again.users[0].name, u->name) == 0);
			FUZZ_ASSERT(strcmp(again.users[0].hash, u->hash) == 0);
			FUZZ_ASSERT(again.users[0].locked == u->locked);
			FUZZ_ASSERT(again.users[0].expires == u->expires);
			FUZZ_ASSERT(again.users[0].naddresses == u->naddresses);
			userdb_free(&again);
		}
	}
	userdb_free(&db);
	free(text);
	return 0;
}
