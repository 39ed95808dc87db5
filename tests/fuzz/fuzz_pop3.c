/*
 * fuzz_pop3.c - the POP3 command line splitter (pop3_cmd_parse,
 * pop3_cmd_split, pop3_cmd_number) and the response stuffer
 * (pop3_stuff).  The first octet picks which.
 *
 * The stuffer has an independent oracle: its output is a multi-line
 * response, so the SMTP DATA reader (the same dot rules, RFC 1939
 * section 3 and RFC 5321 section 4.5.2) must find its one terminator at
 * the very end, never earlier, and no bare CR or LF before it.  A
 * message holding "\r\n.\r\n" must not end a RETR early.
 */
#include "fuzz.h"
#include "pop3/pop3_cmd.h"
#include "pop3/pop3_stuff.h"
#include "smtp/smtp_data.h"

#include <strings.h>

static void
discard(void *arg, const char *p, size_t n)
{
	*(size_t *)arg += n;
}

static void
fuzz_cmd(const uint8_t *data, size_t size)
{
	char *line = fuzz_strndup(data, size), *av[POP3_ARGS_MAX];
	struct pop3_cmd cmd;
	int rc = pop3_cmd_parse(line, size, &cmd), n;
	unsigned long num;

	if (size == 0 || memchr(data, '\0', size))
		FUZZ_ASSERT(rc == -1);
	if (rc == 0) {
		FUZZ_ASSERT(cmd.arg != NULL);
		FUZZ_ASSERT(cmd.arg >= line && cmd.arg <= line + size);
		if (cmd.def)
			FUZZ_ASSERT(strcasecmp(cmd.def->verb,
			    pop3_cmd_name(cmd.def->id)) == 0);
		n = pop3_cmd_split(cmd.arg, av, POP3_ARGS_MAX);
		FUZZ_ASSERT(n <= POP3_ARGS_MAX);
		for (int i = 0; i < n; i++)
			if (pop3_cmd_number(av[i], &num) == 0)
				FUZZ_ASSERT(num <= 999999999ul);
	}
	free(line);
}

static void
fuzz_stuff(const uint8_t *data, size_t size)
{
	struct pop3_stuff ps;
	struct data_reader dr;
	struct buf out;
	size_t used = 0, emitted = 0, off = 0;
	long top = -1;
	enum data_result r;

	if (size < 1)
		return;
	if (data[0] & 0x80)
		top = data[0] & 0x0f;		/* TOP msg n, n small */
	data++, size--;
	buf_init(&out, 0);
	pop3_stuff_init(&ps, top);
	/* In a few chunks, as RETR reads the file. */
	while (off < size) {
		size_t chunk = size - off < 7 ? size - off : 7 + off % 13;

		if (chunk > size - off)
			chunk = size - off;
		FUZZ_ASSERT(pop3_stuff_feed(&ps, (const char *)data + off, chunk,
		    &out) == 0);
		off += chunk;
	}
	FUZZ_ASSERT(pop3_stuff_finish(&ps, &out) == 0);
	data_reader_init(&dr);
	r = data_reader_feed(&dr, out.data, out.len, &used, discard, &emitted);
	/* Whatever the file holds (bare CR and LF become CRLF), the
	 * response ends exactly at its terminator. */
	FUZZ_ASSERT(r == DATA_END && used == out.len);
	buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_stuff(data + 1, size - 1);
	else
		fuzz_cmd(data + 1, size - 1);
	return 0;
}
