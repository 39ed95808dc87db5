/*
 * qenv.c - queue file reader (see qenv.h).  The file is untrusted only
 * in the sense that a crash or an administrator may have damaged it:
 * every record is checked and anything odd makes the file "corrupt".
 */
#include "queue/qenv.h"
#include "queue/qstore.h"
#include "lib/strutil.h"
#include "lib/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define READ_CHUNK	(64 * 1024)

/* Read more of the file into b at file offset *off; 0 at EOF. */
static ssize_t
read_more(int fd, struct buf *b, off_t *off)
{
	char chunk[READ_CHUNK];
	ssize_t n;

	do
		n = pread(fd, chunk, sizeof chunk, *off);
	while (n == -1 && errno == EINTR);
	if (n > 0) {
		if (buf_append(b, chunk, (size_t)n) == -1)
			return -1;
		*off += n;
	}
	return n;
}

/* "content SIZE CRC ENVCRC" (version 3 on) or "content SIZE CRC":
 * exactly as QSTORE_SEAL_FMT writes it. */
static int
parse_seal(struct qenv *e, const char *val)
{
	const char *crc = val + QSTORE_SEAL_SIZE_DIGITS + 1;
	const char *env_crc = crc + QSTORE_SEAL_CRC_DIGITS + 1;
	size_t crcs = e->version >= 3 ? 2 : 1;
	char *end;

	if (strlen(val) != QSTORE_SEAL_SIZE_DIGITS +
	    crcs * (1 + QSTORE_SEAL_CRC_DIGITS) ||
	    strspn(val, "0123456789") != QSTORE_SEAL_SIZE_DIGITS ||
	    val[QSTORE_SEAL_SIZE_DIGITS] != ' ' ||
	    strspn(crc, "0123456789abcdef") != QSTORE_SEAL_CRC_DIGITS)
		return -1;
	if (crcs == 2 && (crc[QSTORE_SEAL_CRC_DIGITS] != ' ' ||
	    strspn(env_crc, "0123456789abcdef") != QSTORE_SEAL_CRC_DIGITS))
		return -1;
	e->seal_size = strtoull(val, &end, 10);
	e->seal_crc = (uint32_t)strtoul(crc, &end, 16);
	if (crcs == 2)
		e->seal_env_crc = (uint32_t)strtoul(env_crc, &end, 16);
	e->sealed = 1;
	return 0;
}

static int
parse_record(struct qenv *e, char *line, char *why, size_t whysz)
{
	char *val = strchr(line, ' ');

	if (val == NULL) {
		if (strcmp(line, "from") == 0) {
			free(e->from);
			e->from = xstrdup("");
			return 0;
		}
		snprintf(why, whysz, "bad envelope record '%.40s'", line);
		return -1;
	}
	*val++ = '\0';
	if (strcmp(line, "postern-queue") == 0) {
		/* Only the first line (qenv_read): a second one, from a
		 * stale block, must not change how the rest is checked. */
		if (e->version != 0) {
			snprintf(why, whysz, "second version record");
			return -1;
		}
		if (strcmp(val, "1") != 0 && strcmp(val, "2") != 0 &&
		    strcmp(val, "3") != 0) {
			snprintf(why, whysz, "unknown queue file version %.20s",
			    val);
			return -1;
		}
		e->version = val[0] - '0';
	} else if (strcmp(line, "qid") == 0) {
		if (!qid_valid(val)) {
			snprintf(why, whysz, "bad qid record");
			return -1;
		}
		strlcpy(e->qid, val, sizeof e->qid);
	} else if (strcmp(line, "arrival") == 0)
		e->arrival = (time_t)strtoll(val, NULL, 10);
	else if (strcmp(line, "listener") == 0)
		(void)strlcpy(e->listener, val, sizeof e->listener); /* log only */
	else if (strcmp(line, "body") == 0)
		e->body_8bit = strcmp(val, "8BITMIME") == 0;
	else if (strcmp(line, "from") == 0) {
		free(e->from);
		e->from = xstrdup(val);
	} else if (strcmp(line, "content") == 0) {
		if (parse_seal(e, val) == -1) {
			snprintf(why, whysz, "bad content record");
			return -1;
		}
	} else if (strcmp(line, "rcpt") == 0) {
		e->rcpts = xreallocarray(e->rcpts, e->nrcpts + 1,
		    sizeof *e->rcpts);
		e->rcpts[e->nrcpts++] = xstrdup(val);
	}
	/* client, helo, protocol and future records: not needed here */
	return 0;
}

static void
scan_headers(struct qenv *e, const char *p, size_t len)
{
	const char *end;
	size_t hlen;

	/* The header section ends at the first empty line (RFC 5322
	 * section 2.1); without one, the whole (bounded) start counts. */
	if (len >= 2 && p[0] == '\r' && p[1] == '\n')
		hlen = 0;
	else if ((end = memmem(p, len, "\r\n\r\n", 4)) != NULL)
		hlen = (size_t)(end - p) + 2;
	else
		hlen = len;
	if (hlen > QENV_HEADERS_MAX)
		hlen = QENV_HEADERS_MAX;
	buf_append(&e->headers, p, hlen);
	for (size_t i = 0; i + 9 <= hlen; i++)
		if ((i == 0 || p[i - 1] == '\n') &&
		    strncasecmp(p + i, "received:", 9) == 0)
			e->nreceived++;
}

int
qenv_read(int fd, struct qenv *e, char *why, size_t whysz)
{
	struct buf b;
	struct stat st;
	off_t off = 0;
	char *envend = NULL, *line, *save = NULL;
	ssize_t n;
	size_t envlen, want, seal_at = 0;
	uint32_t env_crc = 0;

	memset(e, 0, sizeof *e);
	buf_init(&e->headers, QENV_HEADERS_MAX + 1);
	buf_init(&b, QENV_ENVELOPE_MAX + QENV_HEADERS_MAX + 2 * READ_CHUNK);
	if (fstat(fd, &st) == -1) {
		snprintf(why, whysz, "fstat: %s", strerror(errno));
		goto fail;
	}
	while (envend == NULL) {
		if ((n = read_more(fd, &b, &off)) <= 0 || b.len >
		    QENV_ENVELOPE_MAX) {
			snprintf(why, whysz, "%s", n == -1 ? strerror(errno) :
			    "no end of envelope");
			goto fail;
		}
		envend = memmem(b.data, b.len, "\n\n", 2);
	}
	envlen = (size_t)(envend - b.data) + 2;
	e->content = (off_t)envlen;
	e->size = st.st_size - e->content;
	/* Enough of the content for its header section. */
	want = envlen + QENV_HEADERS_MAX + 4;
	while (b.len < want && off < st.st_size &&
	    (n = read_more(fd, &b, &off)) > 0)
		;
	scan_headers(e, b.data + envlen, b.len - envlen);

	/* The version comes first: a first block a crash left stale or
	 * zero is not taken for an envelope of the version before seals. */
	if (strncmp(b.data, "postern-queue ", 14) != 0) {
		snprintf(why, whysz, "envelope does not start with its version");
		goto fail;
	}
	/* From version 3 the seal is the envelope's last record and holds
	 * the CRC-32 of every octet before it: taken here, before the
	 * records are split in place, for whatever version the file says
	 * it is (checked below). */
	if (envlen > QSTORE_SEAL_LEN + 1 &&
	    b.data[envlen - 2 - QSTORE_SEAL_LEN] == '\n' &&
	    strncmp(b.data + envlen - 1 - QSTORE_SEAL_LEN, "content ", 8) == 0) {
		seal_at = envlen - 1 - QSTORE_SEAL_LEN;
		env_crc = (uint32_t)crc32_z(0L, (const Bytef *)b.data, seal_at);
	}
	/* By offset: the reads above may have moved the buffer. */
	b.data[envlen - 1] = '\0';
	for (line = strtok_r(b.data, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save))
		if (parse_record(e, line, why, whysz) == -1)
			goto fail;
	if (e->qid[0] == '\0' || e->from == NULL || e->nrcpts == 0) {
		snprintf(why, whysz, "envelope without qid, from or rcpt");
		goto fail;
	}
	if ((e->version >= 2 && !e->sealed) ||
	    (e->version >= 3 && seal_at == 0)) {
		snprintf(why, whysz, "envelope without its seal (a crash before "
		    "its commit?)");
		goto fail;
	}
	/* A block of an older file in a long envelope: its records may
	 * read well, another message's recipients among them. */
	if (e->version >= 3 && env_crc != e->seal_env_crc) {
		snprintf(why, whysz, "envelope with CRC-32 %08lx, sealed with "
		    "%08lx (a crash before its commit?)", (unsigned long)env_crc,
		    (unsigned long)e->seal_env_crc);
		goto fail;
	}
	if (e->sealed && e->seal_size != (uint64_t)e->size) {
		snprintf(why, whysz, "content of %lld octets, sealed with %llu "
		    "(a crash before its commit?)", (long long)e->size,
		    (unsigned long long)e->seal_size);
		goto fail;
	}
	buf_free(&b);
	return 0;
fail:
	buf_free(&b);
	qenv_free(e);
	return -1;
}

int
qenv_check_content(int fd, const struct qenv *e, char *why, size_t whysz)
{
	char chunk[READ_CHUNK];
	off_t off = e->content;
	uint64_t total = 0;
	uLong crc = crc32_z(0L, Z_NULL, 0);
	ssize_t n;

	if (!e->sealed)
		return 0;
	for (;;) {
		do
			n = pread(fd, chunk, sizeof chunk, off);
		while (n == -1 && errno == EINTR);
		if (n == -1) {
			snprintf(why, whysz, "read: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		crc = crc32_z(crc, (const Bytef *)chunk, (size_t)n);
		total += (uint64_t)n;
		off += n;
	}
	if (total != e->seal_size || (uint32_t)crc != e->seal_crc) {
		snprintf(why, whysz, "content of %llu octets with CRC-32 %08lx, "
		    "sealed with %llu and %08lx (a crash before its commit?)",
		    (unsigned long long)total, (unsigned long)(uint32_t)crc,
		    (unsigned long long)e->seal_size,
		    (unsigned long)e->seal_crc);
		return -1;
	}
	return 0;
}

void
qenv_free(struct qenv *e)
{
	for (size_t i = 0; i < e->nrcpts; i++)
		free(e->rcpts[i]);
	free(e->rcpts);
	free(e->from);
	buf_free(&e->headers);
	memset(e, 0, sizeof *e);
}
