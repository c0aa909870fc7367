/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for lib/policy.c: every rule form, first match, globs, default
 * deny with a file, allow-all without one, strict errors with file:line,
 * '*' as every kind, the shipped example, and the fail-closed reload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"

static void
parse_ok(struct policy *p, const char *text)
{
	struct mu_err err = { "" };

	if (policy_parse(p, "pol", text, strlen(text), &err) != MU_OK)
		fail_msg("policy refused: %s", err.msg);
}

/* The verdict's reason for one request: "allowed by pol:N", ... */
static const char *
check(const struct policy *p, const char *op, enum job_kind kind, const char *module,
    const char *target)
{
	static struct policy_verdict v;
	struct policy_request q = { op, kind, module, target };

	policy_check(p, &q, &v);
	assert_true(v.allow == (strncmp(v.why, "allowed", 7) == 0 ||
	    strcmp(v.why, "no policy") == 0));
	return v.why;
}

static void
test_every_rule_form(void **state)
{
	struct policy p;
	struct policy_verdict v;
	struct policy_request q = { "alice", JOB_RUN, "os.release", "host/web1" };

	(void)state;
	parse_ok(&p,
	    "# comment line\n"
	    "\n"
	    "allow alice ping,version,cancel,update all   # trailing comment\n"
	    "allow alice run:os.release host/web1 run_as=nobody timeout<=30s net=no\n"
	    "deny  bob   run:* group/db\n"
	    "allow *     run:disk.* group/web*,host/h? timeout<=2m\n"
	    "\tallow carol ping *\n");
	assert_int_equal(p.nrules, 5);
	assert_string_equal(check(&p, "alice", JOB_PING, NULL, "all"), "allowed by pol:3");
	assert_string_equal(check(&p, "alice", JOB_UPDATE, NULL, "all"), "allowed by pol:3");
	assert_string_equal(check(&p, "alice", JOB_CANCEL, NULL, "host/x"),
	    "no rule matched in pol");
	policy_check(&p, &q, &v);
	assert_true(v.allow);
	assert_int_equal(v.rule->line, 4);
	assert_string_equal(v.rule->run_as, "nobody");
	assert_int_equal(v.rule->timeout_cap_ms, 30000);
	assert_true(v.rule->net_no);
	assert_false(p.rules[0].net_no);
	assert_string_equal(check(&p, "bob", JOB_RUN, "disk.usage", "group/db"),
	    "denied by pol:5");
	assert_string_equal(check(&p, "bob", JOB_RUN, "disk.usage", "group/web-eu"),
	    "allowed by pol:6");
	assert_string_equal(check(&p, "zed", JOB_RUN, "disk.usage", "host/h1"),
	    "allowed by pol:6");
	assert_string_equal(check(&p, "zed", JOB_RUN, "disk.usage", "host/h10"),
	    "no rule matched in pol");
	assert_string_equal(check(&p, "zed", JOB_RUN, "os.release", "group/web"),
	    "no rule matched in pol");
	assert_string_equal(check(&p, "carol", JOB_PING, NULL, "group/any"),
	    "allowed by pol:7");
	assert_string_equal(check(&p, "carol", JOB_VERSION, NULL, "all"),
	    "no rule matched in pol");
	policy_free(&p);
}

static void
test_first_match_wins(void **state)
{
	struct policy p;

	(void)state;
	parse_ok(&p, "deny alice run:pkg.* all\nallow * run:* all\ndeny * run:pkg.version all\n");
	assert_string_equal(check(&p, "alice", JOB_RUN, "pkg.version", "all"), "denied by pol:1");
	assert_string_equal(check(&p, "bob", JOB_RUN, "pkg.version", "all"), "allowed by pol:2");
	policy_free(&p);
	parse_ok(&p, "allow * run:* all\ndeny alice run:pkg.* all\n");
	assert_string_equal(check(&p, "alice", JOB_RUN, "pkg.version", "all"), "allowed by pol:1");
	policy_free(&p);
}

static void
test_globs(void **state)
{
	struct policy p;

	(void)state;
	parse_ok(&p, "allow ops run:[a-m]*,run:net.interfaces host/db[0-9],group/*-eu\n"
	    "allow ops ping host/*\n");
	assert_string_equal(check(&p, "ops", JOB_RUN, "disk.usage", "host/db7"),
	    "allowed by pol:1");
	assert_string_equal(check(&p, "ops", JOB_RUN, "os.release", "host/db7"),
	    "no rule matched in pol");
	assert_string_equal(check(&p, "ops", JOB_RUN, "net.interfaces", "group/web-eu"),
	    "allowed by pol:1");
	assert_string_equal(check(&p, "ops", JOB_RUN, "disk.usage", "host/db77"),
	    "no rule matched in pol");
	assert_string_equal(check(&p, "ops", JOB_PING, NULL, "host/anything"),
	    "allowed by pol:2");
	/* A host glob is not "all": a broadcast needs its own rule. */
	assert_string_equal(check(&p, "ops", JOB_PING, NULL, "all"), "no rule matched in pol");
	policy_free(&p);
}

static void
test_default_deny_and_no_policy(void **state)
{
	struct policy p, none;
	struct mu_err err;
	char path[] = "/tmp/muster-policy-XXXXXX";
	int fd;

	(void)state;
	/* An empty file is a policy: nothing is allowed. */
	parse_ok(&p, "# nothing yet\n");
	assert_true(p.present);
	assert_string_equal(check(&p, "alice", JOB_PING, NULL, "all"), "no rule matched in pol");
	policy_free(&p);
	/* No file at a path where none is required: allow all. */
	assert_int_equal(policy_load(&none, "/nonexistent-muster/policy", true, &err), MU_OK);
	assert_false(none.present);
	assert_string_equal(check(&none, "anyone", JOB_UPDATE, NULL, "all"), "no policy");
	policy_free(&none);
	/* Required (configured explicitly) and missing: an error. */
	assert_int_equal(policy_load(&none, "/nonexistent-muster/policy", false, &err), MU_EIO);
	assert_non_null(strstr(err.msg, "/nonexistent-muster/policy"));
	/* A file loads with its path in the reasons. */
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, "allow a ping all\n", 17), 17);
	close(fd);
	assert_int_equal(policy_load(&p, path, false, &err), MU_OK);
	assert_non_null(strstr(check(&p, "a", JOB_PING, NULL, "all"), path));
	policy_free(&p);
	unlink(path);
}

static void
test_errors_name_file_and_line(void **state)
{
	static const struct { const char *text, *want; } cases[] = {
		{ "permit a ping all\n", "pol:1: rule must start with allow or deny" },
		{ "# c\nallow a ping\n", "pol:2: want allow OPERATOR" },
		{ "allow A ping all\n", "pol:1: bad operator 'A'" },
		{ "allow a reboot all\n", "pol:1: unknown kind 'reboot'" },
		{ "allow a run all\n", "pol:1: unknown kind 'run'" },
		{ "allow a run: all\n", "pol:1: bad module glob ''" },
		{ "allow a run:../x all\n", "pol:1: bad module glob" },
		{ "allow a ping,,version all\n", "pol:1: empty item in the kinds list" },
		{ "allow a ping hosts/x\n", "pol:1: bad target glob 'hosts/x'" },
		{ "allow a ping web1\n", "pol:1: bad target 'web1'" },
		{ "allow a ping all,\n", "pol:1: empty item in the targets list" },
		{ "allow a ping all run_as=Root\n", "pol:1: bad run_as user 'Root'" },
		{ "allow a ping all run_as=x run_as=y\n", "pol:1: run_as given twice" },
		{ "allow a ping all timeout<=ten\n", "pol:1: bad duration 'ten'" },
		{ "allow a ping all timeout<=1s timeout<=2s\n", "pol:1: timeout<= given twice" },
		{ "allow a ping all timeout=1s\n", "pol:1: unknown option 'timeout=1s'" },
		{ "deny a ping all run_as=x\n", "pol:1: options make sense on allow rules only" },
		{ "deny a ping all net=no\n", "pol:1: options make sense on allow rules only" },
		{ "allow a ping all net=off\n", "pol:1: bad net= 'off'" },
		{ "allow a ping all net=no net=yes\n", "pol:1: net= given twice" },
		{ "\n\n\nallow a ping all x y z w v\n", "pol:4: too many words" },
		{ "allow a ping,* all\n", "pol:1: '*' in a kinds list" },
		{ "allow a *,run:x all\n", "pol:1: '*' in a kinds list" },
		{ "allow a ** all\n", "pol:1: unknown kind '**'" },
	};
	struct policy p;
	struct mu_err err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err.msg[0] = '\0';
		assert_int_equal(policy_parse(&p, "pol", cases[i].text, strlen(cases[i].text),
		    &err), MU_EINVAL);
		if (strstr(err.msg, cases[i].want) == NULL)
			fail_msg("'%s': got '%s', want '%s'", cases[i].text, err.msg, cases[i].want);
	}
	assert_int_equal(policy_parse(&p, "pol", "allow a ping all\n\0", 18, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "pol:2: NUL byte"));
}

/* '*' as KINDS is every kind, run jobs of any module included. */
static void
test_star_is_every_kind(void **state)
{
	static const enum job_kind kinds[] = {
		JOB_PING, JOB_VERSION, JOB_CANCEL, JOB_UPDATE, JOB_RUN,
	};
	struct policy p;
	size_t i;

	(void)state;
	parse_ok(&p, "deny mallory * *\nallow ops * group/web\n");
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		assert_string_equal(check(&p, "ops", kinds[i], "any.module", "group/web"),
		    "allowed by pol:2");
		assert_string_equal(check(&p, "ops", kinds[i], "any.module", "group/db"),
		    "no rule matched in pol");
		assert_string_equal(check(&p, "mallory", kinds[i], "x", "all"),
		    "denied by pol:1");
	}
	policy_free(&p);
}

/* The example the packages ship (installed as examples/policy, the same
 * rules as muster-policy(5)) parses and means what its comments say. */
static void
test_shipped_example(void **state)
{
	const char *src = getenv("MUSTER_SOURCE_DIR");
	char path[4096];
	struct policy p;
	struct mu_err err = { "" };

	(void)state;
	if (src == NULL)
		fail_msg("MUSTER_SOURCE_DIR is not set (ctest sets it)");
	snprintf(path, sizeof(path), "%s/packaging/policy.example", src);
	if (policy_load(&p, path, false, &err) != MU_OK)
		fail_msg("%s", err.msg);
	assert_int_equal(p.nrules, 4);
	assert_non_null(strstr(check(&p, "bob", JOB_PING, NULL, "host/h1"), "allowed"));
	assert_non_null(strstr(check(&p, "alice", JOB_RUN, "qc.install", "all"), "allowed"));
	assert_non_null(strstr(check(&p, "alice", JOB_RUN, "pkg.version", "all"), "denied"));
	assert_non_null(strstr(check(&p, "alice", JOB_UPDATE, NULL, "all"), "denied"));
	assert_non_null(strstr(check(&p, "release", JOB_UPDATE, NULL, "group/canary"),
	    "allowed"));
	assert_non_null(strstr(check(&p, "release", JOB_UPDATE, NULL, "all"), "denied"));
	policy_free(&p);
}

static void
put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* A file that does not load never widens what is allowed: the valid one in
 * force stays; with none in force (started without a file) every job is
 * refused, naming file:line, until it loads; a file that disappears leaves
 * what is in force. */
static void
test_reload_fails_closed(void **state)
{
	char dir[] = "/tmp/muster-policy-XXXXXX", path[64];
	struct policy cur;
	struct mu_err err = { "" };
	const char *why;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/policy", dir);
	assert_int_equal(policy_load(&cur, path, true, &err), MU_OK);
	assert_false(cur.present);
	assert_int_equal(policy_reload(&cur, path, true, &err), POLICY_NONE);
	assert_string_equal(check(&cur, "a", JOB_RUN, "m", "all"), "no policy");

	/* No policy in force, a broken file appears: refuse everything. */
	put(path, "allow a ping all\nallow a pong all\n");
	assert_int_equal(policy_reload(&cur, path, true, &err), POLICY_REFUSING);
	assert_non_null(strstr(err.msg, ":2: unknown kind 'pong'"));
	why = check(&cur, "a", JOB_PING, NULL, "all");
	assert_non_null(strstr(why, "every job is refused until the policy loads: "));
	assert_non_null(strstr(why, path));
	assert_non_null(strstr(why, ":2: unknown kind 'pong'"));
	/* Gone while refusing: still refusing. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(policy_reload(&cur, path, true, &err), POLICY_GONE);
	assert_non_null(strstr(check(&cur, "a", JOB_PING, NULL, "all"), "every job is refused"));
	/* Fixed: its rules are in force. */
	put(path, "allow a ping all\n");
	assert_int_equal(policy_reload(&cur, path, true, &err), POLICY_LOADED);
	assert_non_null(strstr(check(&cur, "a", JOB_PING, NULL, "all"), "allowed by"));
	assert_non_null(strstr(check(&cur, "a", JOB_VERSION, NULL, "all"), "no rule matched"));

	/* A valid policy in force, a broken edit: kept. */
	put(path, "allow a ping,version all\nallow b\n");
	assert_int_equal(policy_reload(&cur, path, true, &err), POLICY_KEPT);
	assert_non_null(strstr(err.msg, ":2: want allow OPERATOR"));
	assert_non_null(strstr(check(&cur, "a", JOB_PING, NULL, "all"), "allowed by"));
	assert_non_null(strstr(check(&cur, "a", JOB_VERSION, NULL, "all"), "no rule matched"));
	/* Removed: kept, not "everything allowed". */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(policy_reload(&cur, path, true, &err), POLICY_GONE);
	assert_true(cur.present);
	assert_non_null(strstr(check(&cur, "a", JOB_VERSION, NULL, "all"), "no rule matched"));
	/* Named explicitly (missing not ok) and missing: kept too. */
	assert_int_equal(policy_reload(&cur, path, false, &err), POLICY_KEPT);
	assert_non_null(strstr(check(&cur, "a", JOB_PING, NULL, "all"), "allowed by"));
	policy_free(&cur);

	/* Named explicitly, no policy in force, unreadable: refuse. */
	memset(&cur, 0, sizeof(cur));
	assert_int_equal(policy_reload(&cur, path, false, &err), POLICY_REFUSING);
	assert_non_null(strstr(check(&cur, "a", JOB_PING, NULL, "all"), path));
	policy_free(&cur);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_rule_form),
		cmocka_unit_test(test_first_match_wins),
		cmocka_unit_test(test_globs),
		cmocka_unit_test(test_default_deny_and_no_policy),
		cmocka_unit_test(test_errors_name_file_and_line),
		cmocka_unit_test(test_star_is_every_kind),
		cmocka_unit_test(test_shipped_example),
		cmocka_unit_test(test_reload_fails_closed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
