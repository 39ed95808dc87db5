/*
 * fuzz_conf.c - the configuration parser (conf_parse_string), lexer
 * included.  A configuration that parses must print (postern config
 * check) and parse again without errors.
 */
#include "fuzz.h"
#include "conf/conf.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	struct conf c;

	memset(&c, 0, sizeof c);
	if (conf_parse_string("fuzz", text, &c, fuzz_devnull()) == 0)
		conf_print(&c, fuzz_devnull());
	conf_free(&c);
	free(text);
	return 0;
}
