/*
 * fuzz_smtp_cmd.c - the SMTP command line splitter (smtp_cmd_parse):
 * any octets, as one line without its CRLF, as smtp_process_input
 * hands them over.
 */
#include "fuzz.h"
#include "smtp/smtp_cmd.h"

#include <strings.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = fuzz_strndup(data, size);
	struct smtp_cmd cmd;
	int rc = smtp_cmd_parse(line, size, &cmd);

	if (memchr(data, '\0', size) != NULL || size == 0)
		FUZZ_ASSERT(rc == -1);
	if (rc == 0) {
		/* The argument lies inside the line and is terminated. */
		FUZZ_ASSERT(cmd.arg >= line && cmd.arg <= line + size);
		FUZZ_ASSERT(cmd.arg + strlen(cmd.arg) <= line + size);
		if (cmd.def != NULL) {
			FUZZ_ASSERT(strcasecmp(line, cmd.def->verb) == 0);
			FUZZ_ASSERT(cmd.def->id >= 0 && cmd.def->id < CMD__COUNT);
		}
		/* No trailing blank survives in the argument. */
		if (*cmd.arg) {
			char last = cmd.arg[strlen(cmd.arg) - 1];
			FUZZ_ASSERT(last != ' ' && last != '\t');
		}
	}
	free(line);
	return 0;
}
