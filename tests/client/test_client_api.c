/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for libmuster-client's calls that need no broker: argument
 * checks, the error codes' texts, and the session errors that come before
 * any connection (no configuration, a bad setting, an unreadable operator
 * key).  Through the shared library and its public header only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <muster/client.h>

static void
test_strerror(void **state)
{
	int rc, k;

	(void)state;
	for (rc = MUSTER_OK; rc <= MUSTER_EINTERNAL; rc++) {
		assert_non_null(muster_strerror(rc));
		assert_true(strlen(muster_strerror(rc)) > 0);
		for (k = MUSTER_OK; k < rc; k++)
			assert_string_not_equal(muster_strerror(k), muster_strerror(rc));
	}
	assert_string_equal(muster_strerror(-1), "unknown error");
	assert_string_equal(muster_client_version(), MUSTER_VERSION);
}

static void
test_null_arguments(void **state)
{
	const muster_result *r = (const muster_result *)1;
	struct muster_summary sum = { .size = sizeof(sum) };
	size_t len = 7;
	muster_job *j = (muster_job *)1;

	(void)state;
	assert_int_equal(muster_session_open(NULL, NULL, NULL, 0), MUSTER_EINVAL);
	assert_int_equal(muster_job_send(NULL, NULL, &j), MUSTER_EINVAL);
	assert_null(j);
	assert_int_equal(muster_job_next(NULL, &r), MUSTER_EINVAL);
	assert_null(r);
	assert_int_equal(muster_job_wait(NULL, NULL, NULL), MUSTER_EINVAL);
	assert_int_equal(muster_job_summary(NULL, &sum), MUSTER_EINVAL);
	assert_null(muster_job_id(NULL, 0));
	assert_null(muster_job_missing(NULL, 0));
	assert_non_null(muster_session_error(NULL));
	assert_null(muster_result_host(NULL));
	assert_null(muster_result_json(NULL));
	assert_null(muster_result_output(NULL, &len));
	assert_int_equal(len, 0);
	assert_int_equal(muster_result_started_at(NULL), 0);
	muster_session_close(NULL);
	muster_job_free(NULL);
}

/* No file anywhere and no broker_uri: MUSTER_ECONFIG, said in errbuf. */
static void
test_no_configuration(void **state)
{
	struct muster_settings st = { .size = sizeof(st), .persist = -1 };
	muster_session *s = (muster_session *)1;
	char err[256];

	(void)state;
	unsetenv("MUSTER_CONFIG");
	setenv("HOME", "/nonexistent", 1);
	assert_int_equal(muster_session_open(&st, &s, err, sizeof(err)), MUSTER_ECONFIG);
	assert_null(s);
	assert_non_null(strstr(err, "no configuration"));
	/* errlen 0: nothing written, the code still says why. */
	assert_int_equal(muster_session_open(NULL, &s, NULL, 0), MUSTER_ECONFIG);
	st.size = 0;
	assert_int_equal(muster_session_open(&st, &s, err, sizeof(err)), MUSTER_EINVAL);
}

static void
test_bad_settings(void **state)
{
	struct muster_settings st = { .size = sizeof(st), .persist = -1 };
	muster_session *s;
	char err[256];

	(void)state;
	unsetenv("MUSTER_CONFIG");
	setenv("HOME", "/nonexistent", 1);
	st.broker_uri = "localhost";	/* no scheme */
	assert_int_equal(muster_session_open(&st, &s, err, sizeof(err)), MUSTER_ECONFIG);
	assert_non_null(strstr(err, "broker_uri"));
	st.broker_uri = "ssl://127.0.0.1:1";
	st.topic_root = "Bad Root";
	assert_int_equal(muster_session_open(&st, &s, err, sizeof(err)), MUSTER_ECONFIG);
	assert_non_null(strstr(err, "topic_root"));
	st.topic_root = NULL;
	st.config = "/nonexistent/muster.conf";
	assert_int_equal(muster_session_open(&st, &s, err, sizeof(err)), MUSTER_ECONFIG);
	assert_non_null(strstr(err, "/nonexistent/muster.conf"));
}

/* The key is loaded before the broker is dialled: a key that cannot be
 * read is MUSTER_EKEY, whatever the broker. */
static void
test_unreadable_key(void **state)
{
	struct muster_settings st = { .size = sizeof(st), .persist = -1 };
	muster_session *s;
	char err[256];

	(void)state;
	unsetenv("MUSTER_CONFIG");
	setenv("HOME", "/nonexistent", 1);
	st.broker_uri = "ssl://127.0.0.1:1";
	assert_int_equal(muster_session_open(&st, &s, err, sizeof(err)), MUSTER_EKEY);
	assert_non_null(strstr(err, "operator key"));
	st.operator_key = "/nonexistent/op.key";
	assert_int_equal(muster_session_open(&st, &s, err, sizeof(err)), MUSTER_EKEY);
	assert_non_null(strstr(err, "/nonexistent/op.key"));
	/* Too small a buffer: cut, still terminated. */
	assert_int_equal(muster_session_open(&st, &s, err, 4), MUSTER_EKEY);
	assert_int_equal(strlen(err), 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_null_arguments),
		cmocka_unit_test(test_no_configuration),
		cmocka_unit_test(test_bad_settings),
		cmocka_unit_test(test_unreadable_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
