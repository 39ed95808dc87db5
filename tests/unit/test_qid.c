/*
 * test_qid.c - queue ids: the format, strictly increasing within a
 * process (so they sort by age, even when the clock stands still), a
 * process number that keeps two processes apart, and the share of the
 * queue each queue manager owns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "queue/qid.h"

static void
test_format_and_order(void **state)
{
	char prev[QID_LEN + 1], cur[QID_LEN + 1];

	qid_init(0x2a);
	qid_next(prev);
	assert_true(qid_valid(prev));
	assert_string_equal(prev + 13, "02A");	/* the process number */
	/* Many in the same microsecond: still strictly increasing. */
	for (int i = 0; i < 100000; i++) {
		qid_next(cur);
		if (strcmp(prev, cur) >= 0)
			fail_msg("not increasing: %s then %s", prev, cur);
		memcpy(prev, cur, sizeof prev);
	}
	/* Two processes at the same moment differ in the last digits. */
	qid_init(1);
	qid_next(cur);
	assert_string_not_equal(cur + 13, prev + 13);
}

static void
test_valid(void **state)
{
	static const struct { const char *s; int want; } rows[] = {
		{ "660D8076A89FB001", 1 }, { "0000000000000000", 1 },
		{ "660d8076a89fb001", 0 },	/* upper case only */
		{ "660D8076A89FB00", 0 }, { "660D8076A89FB0011", 0 },
		{ "660D8076A89FB00G", 0 }, { "../../etc/passwd", 0 },
		{ "", 0 },
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (qid_valid(rows[i].s) != rows[i].want)
			fail_msg("'%s': got %d, want %d", rows[i].s,
			    qid_valid(rows[i].s), rows[i].want);
}

static void
test_owner_spread_and_stable(void **state)
{
	unsigned count[4] = { 0 };
	char q[QID_LEN + 1];

	qid_init(7);
	for (int i = 0; i < 4000; i++) {
		unsigned o;

		qid_next(q);
		o = qid_owner(q, 4);
		assert_true(o < 4);
		assert_int_equal(o, qid_owner(q, 4));	/* stable */
		assert_int_equal(qid_owner(q, 1), 0);
		count[o]++;
	}
	/* Consecutive ids spread over every queue manager. */
	for (int i = 0; i < 4; i++)
		if (count[i] < 600)
			fail_msg("queue manager %d owns only %u of 4000", i,
			    count[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_and_order),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_owner_spread_and_stable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
