/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for lib/names.c: name rules, targets and topics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "names.h"

static void
test_name_valid(void **state)
{
	char long63[64], long64[65];

	(void)state;
	memset(long63, 'a', 63);
	long63[63] = '\0';
	memset(long64, 'a', 64);
	long64[64] = '\0';
	assert_true(name_valid("web1"));
	assert_true(name_valid("0host.example-1_x"));
	assert_true(name_valid(long63));
	assert_false(name_valid(long64));
	assert_false(name_valid(""));
	assert_false(name_valid(NULL));
	assert_false(name_valid("-lead"));
	assert_false(name_valid(".lead"));
	assert_false(name_valid("Upper"));
	assert_false(name_valid("a/b"));
	assert_false(name_valid("a+"));
	assert_false(name_valid("a#"));
	assert_false(name_valid("a b"));
}

static void
test_jobid_valid(void **state)
{
	char id64[65], id65[66];

	(void)state;
	memset(id64, 'Z', 64);
	id64[64] = '\0';
	memset(id65, 'Z', 65);
	id65[65] = '\0';
	assert_true(jobid_valid("Job-1.2_3"));
	assert_true(jobid_valid("-x"));
	assert_true(jobid_valid(id64));
	assert_false(jobid_valid(id65));
	assert_false(jobid_valid(""));
	assert_false(jobid_valid("a/b"));
	assert_false(jobid_valid("a b"));
}

static void
test_sha256hex(void **state)
{
	char h[66];

	(void)state;
	memset(h, 'a', 64);
	h[64] = '\0';
	assert_true(sha256hex_valid(h));
	h[10] = 'A';
	assert_false(sha256hex_valid(h));
	h[10] = 'a';
	h[64] = 'a', h[65] = '\0';
	assert_false(sha256hex_valid(h));
	h[63] = '\0';
	assert_false(sha256hex_valid(h));
}

static void
test_target(void **state)
{
	struct job_target t;
	struct mu_err err;
	char buf[80];

	(void)state;
	assert_int_equal(target_parse("host/web1", &t, &err), MU_OK);
	assert_int_equal(t.kind, TARGET_HOST);
	assert_string_equal(t.name, "web1");
	assert_int_equal(target_format(&t, buf, sizeof(buf)), MU_OK);
	assert_string_equal(buf, "host/web1");
	assert_int_equal(target_parse("group/db", &t, &err), MU_OK);
	assert_int_equal(t.kind, TARGET_GROUP);
	assert_int_equal(target_parse("all", &t, &err), MU_OK);
	assert_int_equal(t.kind, TARGET_ALL);
	assert_int_equal(target_format(&t, buf, sizeof(buf)), MU_OK);
	assert_string_equal(buf, "all");
	assert_int_equal(target_parse("host/", &t, &err), MU_EINVAL);
	assert_int_equal(target_parse("host/a/b", &t, &err), MU_EINVAL);
	assert_int_equal(target_parse("hosts/a", &t, &err), MU_EINVAL);
	assert_int_equal(target_parse("all/", &t, &err), MU_EINVAL);
	assert_int_equal(target_parse(NULL, &t, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "missing"));
	assert_int_equal(target_format(&t, buf, 3), MU_EINVAL);
}

static void
test_topics(void **state)
{
	const char *sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char buf[TOPIC_MAX];

	(void)state;
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_HOST_JOBS, "web1", NULL), MU_OK);
	assert_string_equal(buf, "muster/v1/hosts/web1/jobs");
	assert_int_equal(topic_build(buf, sizeof(buf), "acme", TOPIC_GROUP_JOBS, "db", NULL), MU_OK);
	assert_string_equal(buf, "acme/v1/groups/db/jobs");
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_ALL_JOBS, NULL, NULL), MU_OK);
	assert_string_equal(buf, "muster/v1/all/jobs");
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_HOST_STATUS, "h", NULL), MU_OK);
	assert_string_equal(buf, "muster/v1/hosts/h/status");
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_RESULT, "J-1", "h"), MU_OK);
	assert_string_equal(buf, "muster/v1/results/J-1/h");
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_RESULT_EVENTS, "J-1", "h"), MU_OK);
	assert_string_equal(buf, "muster/v1/results/J-1/h/events");
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_MODULE, "os.release", NULL), MU_OK);
	assert_string_equal(buf, "muster/v1/modules/os.release");
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_MODULE_ARTIFACT, "m", sha), MU_OK);
	assert_int_equal(strncmp(buf, "muster/v1/modules/m/0123", 24), 0);
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_RELEASE, "canary", NULL), MU_OK);
	assert_string_equal(buf, "muster/v1/releases/canary");
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_ARTIFACT, sha, NULL), MU_OK);
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_SELFTEST_REQUEST, "h", NULL), MU_OK);
	assert_string_equal(buf, "muster/v1/hosts/h/selftest/request");
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_SELFTEST_JOBS, "h", NULL), MU_OK);
	assert_string_equal(buf, "muster/v1/hosts/h/selftest/jobs");
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_SELFTEST_VERDICT, "h", NULL), MU_OK);
	assert_string_equal(buf, "muster/v1/hosts/h/selftest/verdict");

	/* Names that would change the topic's shape are refused. */
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_HOST_JOBS, "+", NULL), MU_EINVAL);
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_HOST_JOBS, "a/b", NULL), MU_EINVAL);
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_RESULT, "a#", "h"), MU_EINVAL);
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_ARTIFACT, "abc", NULL), MU_EINVAL);
	assert_int_equal(topic_build(buf, sizeof(buf), "a/b", TOPIC_ALL_JOBS, NULL, NULL), MU_EINVAL);
	assert_int_equal(topic_build(buf, 10, "muster", TOPIC_ALL_JOBS, NULL, NULL), MU_EINVAL);
}

static void
test_topic_parse_jobs(void **state)
{
	struct job_target t, back;
	char buf[TOPIC_MAX];

	(void)state;
	assert_int_equal(topic_parse_jobs("muster/v1/hosts/web1/jobs", "muster", &t), MU_OK);
	assert_int_equal(t.kind, TARGET_HOST);
	assert_string_equal(t.name, "web1");
	assert_int_equal(topic_parse_jobs("muster/v1/groups/db/jobs", "muster", &t), MU_OK);
	assert_int_equal(t.kind, TARGET_GROUP);
	assert_int_equal(topic_parse_jobs("muster/v1/all/jobs", "muster", &t), MU_OK);
	assert_int_equal(t.kind, TARGET_ALL);
	assert_int_equal(topic_parse_jobs("muster/v1/hosts/web1/status", "muster", &t), MU_EINVAL);
	assert_int_equal(topic_parse_jobs("muster/v1/hosts//jobs", "muster", &t), MU_EINVAL);
	assert_int_equal(topic_parse_jobs("musterx/v1/all/jobs", "muster", &t), MU_EINVAL);
	assert_int_equal(topic_parse_jobs("other/v1/all/jobs", "muster", &t), MU_EINVAL);
	assert_int_equal(topic_parse_jobs("muster/v2/all/jobs", "muster", &t), MU_EINVAL);
	assert_int_equal(topic_parse_jobs("muster/v1/hosts/A/jobs", "muster", &t), MU_EINVAL);

	/* Round trip through topic_for_target. */
	strcpy(back.name, "g1");
	back.kind = TARGET_GROUP;
	assert_int_equal(topic_for_target(buf, sizeof(buf), "muster", &back), MU_OK);
	assert_int_equal(topic_parse_jobs(buf, "muster", &t), MU_OK);
	assert_int_equal(t.kind, TARGET_GROUP);
	assert_string_equal(t.name, "g1");
}

static void
test_topic_parse_module(void **state)
{
	char name[NAME_MAX_LEN + 1], sha[SHA256_HEX_LEN + 1], buf[TOPIC_MAX];
	char good[SHA256_HEX_LEN + 1];

	(void)state;
	memset(good, 'a', SHA256_HEX_LEN);
	good[SHA256_HEX_LEN] = '\0';
	assert_int_equal(topic_parse_module("muster/v1/modules/os.release", "muster", name, sha),
	    MU_OK);
	assert_string_equal(name, "os.release");
	assert_string_equal(sha, "");
	assert_int_equal(topic_build(buf, sizeof(buf), "muster", TOPIC_MODULE_ARTIFACT,
	    "os.release", good), MU_OK);
	assert_int_equal(topic_parse_module(buf, "muster", name, sha), MU_OK);
	assert_string_equal(name, "os.release");
	assert_string_equal(sha, good);
	/* Not a module topic, a bad name, a bad or short hash, extra levels. */
	assert_int_equal(topic_parse_module("muster/v1/hosts/h1/jobs", "muster", name, sha),
	    MU_EINVAL);
	assert_int_equal(topic_parse_module("muster/v1/modules/", "muster", name, sha), MU_EINVAL);
	assert_int_equal(topic_parse_module("muster/v1/modules/A", "muster", name, sha), MU_EINVAL);
	assert_int_equal(topic_parse_module("muster/v1/modules/m/abc", "muster", name, sha),
	    MU_EINVAL);
	snprintf(buf, sizeof(buf), "muster/v1/modules/m/%s/x", good);
	assert_int_equal(topic_parse_module(buf, "muster", name, sha), MU_EINVAL);
	snprintf(buf, sizeof(buf), "muster/v1/modules/m/%.63sA", good);
	assert_int_equal(topic_parse_module(buf, "muster", name, sha), MU_EINVAL);
	assert_int_equal(topic_parse_module("other/v1/modules/m", "muster", name, sha),
	    MU_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_jobid_valid),
		cmocka_unit_test(test_sha256hex),
		cmocka_unit_test(test_target),
		cmocka_unit_test(test_topics),
		cmocka_unit_test(test_topic_parse_jobs),
		cmocka_unit_test(test_topic_parse_module),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
