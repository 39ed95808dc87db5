/*
 * bounce.c - RFC 3464 delivery status notifications (see bounce.h).
 *
 *   multipart/report; report-type=delivery-status   (RFC 6522)
 *     1. text/plain               what happened, for a person
 *     2. message/delivery-status  per-message fields (RFC 3464 2.2),
 *                                 then per-recipient fields (2.3)
 *     3. text/rfc822-headers      the original header section (RFC 6522
 *                                 section 4: headers only, never the body)
 */
#include "queue/bounce.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/strutil.h"
#include "queue/qstore.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define BOUNCE_MAX	(QENV_HEADERS_MAX + 1024 * 1024)
/* The report's own lines, around the recipients. */
#define BOUNCE_FRAME	(16 * 1024)

/*
 * How many recipients the report can list within BOUNCE_MAX: a message
 * to thousands of them with long replies would not fit, and a report
 * that cannot be queued is retried with the message, whose deliveries
 * it depends on.  The rest are counted, not listed.
 */
static size_t
bounce_listed(const struct qenv *env, const struct bounce_rcpt *r, size_t n)
{
	size_t room = BOUNCE_MAX - BOUNCE_FRAME - env->headers.len, used = 0;

	for (size_t i = 0; i < n; i++) {
		size_t one = 2 * (strlen(r[i].final) + strlen(r[i].why)) +
		    strlen(r[i].orig) + strlen(r[i].dsn) + 320;

		if (r[i].remote_mta != NULL)
			one += strlen(r[i].remote_mta);
		if (r[i].smtp_diag != NULL)
			one += strlen(r[i].smtp_diag);
		if (used + one > room)
			return i;
		used += one;
	}
	return n;
}

static void
rfc5322_date(char *dst, size_t dstsz, time_t t)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(dst, dstsz, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

static int
has_8bit(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] & 0x80)
			return 1;
	return 0;
}

static int
bounce_human(struct buf *b, const struct conf *c, const struct qenv *env,
    enum bounce_kind kind, const struct bounce_rcpt *r, size_t n,
    size_t unlisted)
{
	char until[64];
	int rc = 0;

	rc |= buf_printf(b, "This is the mail server at %s.\r\n\r\n",
	    c->hostname);
	if (kind == BOUNCE_FAILED)
		rc |= buf_puts(b, "Your message could not be delivered to the "
		    "recipients below.\r\nThis is a permanent error; it was not "
		    "delivered to them and will not\r\nbe retried.\r\n\r\n");
	else {
		rfc5322_date(until, sizeof until, env->arrival +
		    (time_t)c->queue_lifetime);
		rc |= buf_printf(b, "Your message has not been delivered yet to "
		    "the recipients below.\r\nIt stays queued and delivery is "
		    "retried until\r\n%s; you need not send it again.\r\n\r\n",
		    until);
	}
	for (size_t i = 0; i < n; i++)
		rc |= buf_printf(b, "<%s>: %s\r\n", r[i].final, r[i].why);
	if (unlisted > 0)
		rc |= buf_printf(b, "... and %zu more recipient%s, not listed "
		    "here for the size of this report.\r\n", unlisted,
		    unlisted == 1 ? "" : "s");
	rc |= buf_puts(b, "\r\nThe report for programs and the header of your "
	    "message follow.\r\n");
	return rc;
}

static int
bounce_status(struct buf *b, const struct conf *c, const struct qenv *env,
    enum bounce_kind kind, const struct bounce_rcpt *r, size_t n, time_t now)
{
	char date[64];
	int rc = 0;

	/* Per-message fields (RFC 3464 section 2.2). */
	rc |= buf_printf(b, "Reporting-MTA: dns; %s\r\n", c->hostname);
	rc |= buf_printf(b, "X-Postern-Queue-ID: %s\r\n", env->qid);
	if (env->from[0])
		rc |= buf_printf(b, "X-Postern-Sender: rfc822; %s\r\n",
		    env->from);
	rfc5322_date(date, sizeof date, env->arrival);
	rc |= buf_printf(b, "Arrival-Date: %s\r\n", date);
	/* Per-recipient fields (section 2.3), each group after a blank
	 * line. */
	rfc5322_date(date, sizeof date, now);
	for (size_t i = 0; i < n; i++) {
		rc |= buf_puts(b, "\r\n");
		rc |= buf_printf(b, "Final-Recipient: rfc822; %s\r\n",
		    r[i].final);
		if (strcasecmp(r[i].orig, r[i].final) != 0)
			rc |= buf_printf(b, "Original-Recipient: rfc822; %s\r\n",
			    r[i].orig);
		rc |= buf_printf(b, "Action: %s\r\n", kind == BOUNCE_FAILED ?
		    "failed" : "delayed");
		rc |= buf_printf(b, "Status: %s\r\n", r[i].dsn);
		if (r[i].remote_mta != NULL)
			rc |= buf_printf(b, "Remote-MTA: dns; %s\r\n",
			    r[i].remote_mta);
		/* The remote server's reply is an "smtp" diagnostic; our
		 * own reasons get a postern-specific diagnostic-type
		 * (section 2.3.6). */
		if (r[i].smtp_diag != NULL)
			rc |= buf_printf(b, "Diagnostic-Code: smtp; %s\r\n",
			    r[i].smtp_diag);
		else
			rc |= buf_printf(b, "Diagnostic-Code: X-Postern; %s\r\n",
			    r[i].why);
		rc |= buf_printf(b, "Last-Attempt-Date: %s\r\n", date);
		if (kind == BOUNCE_DELAYED) {
			char until[64];
			rfc5322_date(until, sizeof until, env->arrival +
			    (time_t)c->queue_lifetime);
			rc |= buf_printf(b, "Will-Retry-Until: %s\r\n", until);
		}
	}
	return rc;
}

int
bounce_queue(const struct conf *c, const struct qenv *env,
    enum bounce_kind kind, const struct bounce_rcpt *r, size_t n, time_t now,
    char qid_out[QID_LEN + 1])
{
	struct buf head, body;
	struct qfile qf;
	char date[64], boundary[QID_LEN + CONF_NAME_MAX + 2];
	size_t listed = bounce_listed(env, r, n);
	int rc = 0, eight;

	if (env->from[0] == '\0') {
		errno = EINVAL;		/* never bounce a bounce */
		return -1;
	}
	qid_next(qid_out);
	snprintf(boundary, sizeof boundary, "%s/%s", qid_out, c->hostname);
	rfc5322_date(date, sizeof date, now);
	eight = has_8bit(env->headers.data ? env->headers.data : "",
	    env->headers.len);

	buf_init(&head, 64 * 1024);
	rc |= buf_printf(&head, QSTORE_VERSION_LINE "qid %s\narrival %lld\n"
	    "listener bounce\nbody %s\nfrom \nrcpt %s\n\n", qid_out,
	    (long long)now, eight ? "8BITMIME" : "7BIT", env->from);

	buf_init(&body, BOUNCE_MAX);
	rc |= buf_printf(&body, "Received: by %s (postern) id %s; %s\r\n",
	    c->hostname, qid_out, date);
	rc |= buf_printf(&body, "Date: %s\r\n", date);
	rc |= buf_printf(&body, "From: Mail Delivery System <MAILER-DAEMON@%s>"
	    "\r\n", c->hostname);
	rc |= buf_printf(&body, "To: <%s>\r\n", env->from);
	rc |= buf_printf(&body, "Subject: %s\r\n", kind == BOUNCE_FAILED ?
	    "Undelivered Mail Returned to Sender" :
	    "Delayed Mail (still being retried)");
	rc |= buf_printf(&body, "Message-ID: <%s.dsn@%s>\r\n", qid_out,
	    c->hostname);
	/* RFC 3834 section 5: automatic responses must not trigger more. */
	rc |= buf_puts(&body, "Auto-Submitted: auto-replied\r\n");
	rc |= buf_puts(&body, "MIME-Version: 1.0\r\n");
	rc |= buf_printf(&body, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary);
	rc |= buf_puts(&body, "\r\nThis is a MIME-encapsulated message.\r\n");

	rc |= buf_printf(&body, "\r\n--%s\r\n", boundary);
	rc |= buf_puts(&body, "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	rc |= bounce_human(&body, c, env, kind, r, listed, n - listed);

	rc |= buf_printf(&body, "\r\n--%s\r\n", boundary);
	rc |= buf_puts(&body, "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n");
	rc |= bounce_status(&body, c, env, kind, r, listed, now);

	rc |= buf_printf(&body, "\r\n--%s\r\n", boundary);
	rc |= buf_printf(&body, "Content-Description: Undelivered message "
	    "headers\r\nContent-Type: text/rfc822-headers%s\r\n\r\n",
	    eight ? "\r\nContent-Transfer-Encoding: 8bit" : "");
	if (env->headers.len)
		rc |= buf_append(&body, env->headers.data, env->headers.len);
	rc |= buf_printf(&body, "\r\n--%s--\r\n", boundary);

	if (rc != 0) {
		buf_free(&head);
		buf_free(&body);
		errno = EFBIG;
		return -1;
	}
	if (qstore_create(&qf, c->spool, qid_out, head.data, head.len) == -1) {
		int saved = errno;
		buf_free(&head);
		buf_free(&body);
		errno = saved;
		return -1;
	}
	qstore_write(&qf, body.data, body.len);
	buf_free(&head);
	buf_free(&body);
	return qstore_commit(&qf);
}
