/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/jobuid.c: the [limits] job_uids range, its check against the user
 * database, and handing uids out and back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "jobuid.h"

static void
test_parse(void **state)
{
	struct mu_err err;
	unsigned count;
	uid_t first;

	(void)state;
	assert_int_equal(jobuid_parse("60928-61183", &first, &count, &err), MU_OK);
	assert_int_equal(first, 60928);
	assert_int_equal(count, 256);
	assert_int_equal(jobuid_parse("70000-70000", &first, &count, &err), MU_OK);
	assert_int_equal(count, 1);
	assert_int_equal(jobuid_parse("none", &first, &count, &err), MU_OK);
	assert_int_equal(count, 0);
	assert_int_equal(jobuid_parse("0-10", &first, &count, &err), MU_EINVAL);
	assert_int_equal(jobuid_parse("20-10", &first, &count, &err), MU_EINVAL);
	assert_int_equal(jobuid_parse("10-", &first, &count, &err), MU_EINVAL);
	assert_int_equal(jobuid_parse("-5-10", &first, &count, &err), MU_EINVAL);
	assert_int_equal(jobuid_parse("10-20x", &first, &count, &err), MU_EINVAL);
	assert_int_equal(jobuid_parse("100000-300000", &first, &count, &err), MU_EINVAL);
	assert_int_equal(jobuid_parse("4294967290-4294967294", &first, &count, &err),
	    MU_EINVAL);
}

static void
test_name(void **state)
{
	char buf[JOBUID_NAME_MAX];

	(void)state;
	jobuid_name(60928, buf, sizeof(buf));
	assert_string_equal(buf, "muster-job-60928");
	jobuid_name(0x7fffffff, buf, sizeof(buf));
	assert_string_equal(buf, "muster-job-2147483647");
}

static void
test_take_give_round_robin(void **state)
{
	static struct jobuids j;
	struct mu_err err;
	uid_t a, b, c, d;

	(void)state;
	jobuid_init(&j, 70000, 3);
	assert_int_equal(jobuid_take(&j, &a, &err), MU_OK);
	assert_int_equal(jobuid_take(&j, &b, &err), MU_OK);
	assert_int_equal(jobuid_take(&j, &c, &err), MU_OK);
	assert_int_equal(a, 70000);
	assert_int_equal(b, 70001);
	assert_int_equal(c, 70002);
	assert_int_equal(jobuid_take(&j, &d, &err), MU_ENOENT);	/* all held */
	jobuid_give(&j, b);
	jobuid_give(&j, b);		/* twice: counted once */
	jobuid_give(&j, 12345);		/* not ours: ignored */
	assert_int_equal(j.used, 2);
	assert_int_equal(jobuid_take(&j, &d, &err), MU_OK);
	assert_int_equal(d, 70001);
	/* Round robin: the uid given back first is not the next taken. */
	jobuid_give(&j, a);
	jobuid_give(&j, c);
	assert_int_equal(jobuid_take(&j, &d, &err), MU_OK);
	assert_int_equal(d, 70002);
	assert_int_equal(jobuid_take(&j, &d, &err), MU_OK);
	assert_int_equal(d, 70000);
}

static void
test_check_refuses_known_ids_and_small_ranges(void **state)
{
	struct mu_err err;

	(void)state;
	/* uid 1 (daemon on Debian) is in every user database. */
	assert_int_equal(jobuid_check(1, 5, 4, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "uid 1 is user"));
	assert_int_equal(jobuid_check(4000000000U, 2, 4, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "fewer than [agent] max_jobs 4"));
	assert_int_equal(jobuid_check(0, 0, 4, &err), MU_OK);		/* none */
}

static void
test_config_key(void **state)
{
	struct agent_config c;

	(void)state;
	config_agent_defaults(&c);
	assert_int_equal(c.job_uid_first, 60928);
	assert_int_equal(c.job_uid_count, 256);
	assert_int_equal(c.processes, 128);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_take_give_round_robin),
		cmocka_unit_test(test_check_refuses_known_ids_and_small_ranges),
		cmocka_unit_test(test_config_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
