/*
 * test_msgq.c - messages that wait for room in a SOCK_SEQPACKET socket
 * (src/proc/msgq.c): none lost or reordered past EAGAIN, a bound on
 * what waits, and a peer that goes away reported once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "proc/msg.h"
#include "proc/msgq.h"

/* Many more than the socket's send buffer holds (a few hundred). */
#define BURST	2000

struct pair {
	struct event_base	*base;
	int			 sv[2];		/* [0] the queue's, [1] the peer */
	struct msgq		*q;
	int			 lost;
	struct msg		 m;
};

static void
count_lost(void *arg)
{
	struct pair *p = arg;

	p->lost++;
}

static int
setup(void **state)
{
	struct pair *p = calloc(1, sizeof *p);

	assert_non_null(p);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK,
	    0, p->sv), 0);
	assert_non_null(p->base = event_base_new());
	p->q = msgq_new(p->base, p->sv[0], count_lost, p);
	*state = p;
	return 0;
}

static int
teardown(void **state)
{
	struct pair *p = *state;

	msgq_free(p->q);
	close(p->sv[0]);
	if (p->sv[1] != -1)
		close(p->sv[1]);
	event_base_free(p->base);
	free(p);
	return 0;
}

static int
send_one(struct pair *p, uint64_t reqid)
{
	msg_init(&p->m, MSG_AUTH_STEP, reqid);
	msg_put_str(&p->m, "payload");
	return msgq_send(p->q, &p->m);
}

static void
test_order_kept_past_eagain(void **state)
{
	struct pair *p = *state;
	uint64_t want = 1;
	int rounds = 0;

	for (uint64_t i = 1; i <= BURST; i++)
		assert_int_equal(send_one(p, i), 0);
	/* The socket took some; the rest wait. */
	assert_true(msgq_len(p->q) > 0 && msgq_len(p->q) < BURST);
	while (want <= BURST) {
		assert_true(++rounds < 1000);
		while (msg_recv(p->sv[1], &p->m) == 1) {
			assert_int_equal(p->m.reqid, want);
			want++;
		}
		event_base_loop(p->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	assert_int_equal(msgq_len(p->q), 0);
	assert_int_equal(p->lost, 0);
	/* Empty again: the next one goes straight out. */
	assert_int_equal(send_one(p, want), 0);
	assert_int_equal(msgq_len(p->q), 0);
	assert_int_equal(msg_recv(p->sv[1], &p->m), 1);
	assert_int_equal(p->m.reqid, want);
}

static void
test_bounded(void **state)
{
	struct pair *p = *state;
	uint64_t i = 1;

	while (msgq_len(p->q) < MSGQ_MAX)
		assert_int_equal(send_one(p, i++), 0);
	errno = 0;
	assert_int_equal(send_one(p, i), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(msgq_len(p->q), MSGQ_MAX);
	/* A message that overflowed is refused as such. */
	p->m.bad = 1;
	assert_int_equal(msgq_send(p->q, &p->m), -1);
}

static void
test_peer_gone(void **state)
{
	struct pair *p = *state;

	for (uint64_t i = 1; msgq_len(p->q) == 0; i++)
		assert_int_equal(send_one(p, i), 0);
	close(p->sv[1]);
	p->sv[1] = -1;
	event_base_loop(p->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(p->lost, 1);
	/* Reported once; later sends fail at once, with the reason. */
	event_base_loop(p->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(p->lost, 1);
	errno = 0;
	assert_int_equal(send_one(p, 1), -1);
	assert_true(errno == ECONNRESET || errno == EPIPE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_kept_past_eagain,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_gone, setup,
		    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
