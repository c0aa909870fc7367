/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/mpjson.c: the typing of key=value arguments that the
 * CLI and `muster-runner --run` share, and msgpack <-> JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpjson.h"

/* Arguments as compact JSON with sorted keys. */
static char *
parsed(const char *const *specs, size_t n)
{
	struct mu_err err = { "" };
	json_t *args = json_object();
	char *s;
	size_t i;

	assert_non_null(args);
	for (i = 0; i < n; i++)
		if (mpjson_arg(args, specs[i], &err) != MU_OK)
			fail_msg("%s: %s", specs[i], err.msg);
	s = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(args);
	assert_non_null(s);
	return s;
}

static void
test_arg_types(void **state)
{
	/* Integers only as JSON writes them. */
	static const char *const specs[] = {
		"t=true", "f=false", "zero=0", "negzero=-0", "n=-12",
		"max=9223372036854775807", "min=-9223372036854775808",
		"big=9223372036854775808", "mode=0644", "bond=007", "plus=+5",
		"lead=-01", "zz=00", "exp=1e3", "sp= 1", "dash=-", "empty=",
		"True=True", "eq=a=b", "at=@x", "j:={\"a\":[1,2.5,null]}",
		"js:=\"007\"", "last=1", "last=2",
	};
	char *s;

	(void)state;
	s = parsed(specs, sizeof(specs) / sizeof(specs[0]));
	assert_string_equal(s, "{"
	    "\"True\":\"True\",\"at\":\"@x\",\"big\":\"9223372036854775808\","
	    "\"bond\":\"007\",\"dash\":\"-\",\"empty\":\"\",\"eq\":\"a=b\","
	    "\"exp\":\"1e3\",\"f\":false,\"j\":{\"a\":[1,2.5,null]},"
	    "\"js\":\"007\",\"last\":2,\"lead\":\"-01\","
	    "\"max\":9223372036854775807,\"min\":-9223372036854775808,"
	    "\"mode\":\"0644\",\"n\":-12,\"negzero\":0,\"plus\":\"+5\","
	    "\"sp\":\" 1\",\"t\":true,\"zero\":0,\"zz\":\"00\"}");
	free(s);
}

static void
test_arg_file(void **state)
{
	char path[] = "/tmp/muster-test-args-XXXXXX", spec[64];
	const char *specs[1] = { spec };
	const char *json = "{\"name\": \"base\", \"checks\": [{\"kind\": \"os.release\"}]}\n";
	char *s;
	int fd;

	(void)state;
	assert_true((fd = mkstemp(path)) != -1);
	assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	close(fd);
	snprintf(spec, sizeof(spec), "profile:=@%s", path);
	s = parsed(specs, 1);
	assert_string_equal(s, "{\"profile\":{\"checks\":[{\"kind\":\"os.release\"}],"
	    "\"name\":\"base\"}}");
	free(s);
	unlink(path);
}

static void
test_arg_errors(void **state)
{
	static const struct {
		const char *spec, *why;
	} bad[] = {
		{ "noequals", "is not key=value" },
		{ "=x", "is not key=value" },
		{ ":=1", "has no key" },
		{ "x:={", "'x': bad JSON" },
		{ "x:=0644", "bad JSON" },
		{ "x:=@/nonexistent/muster.json", "unable to open /nonexistent" },
		{ "x:=@", "bad JSON" },
		{ "x:=[[[[[[[[1]]]]]]]]", "nests deeper than 8 levels" },
		{ "x=caf\xe9", "'x' is not UTF-8" },
		{ "caf\xe9=1", "key 'caf\xe9' is not UTF-8" },
	};
	struct mu_err err;
	json_t *args = json_object();
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(mpjson_arg(args, bad[i].spec, &err), MU_EINVAL);
		if (strstr(err.msg, bad[i].why) == NULL)
			fail_msg("%s: '%s' has no '%s'", bad[i].spec, err.msg, bad[i].why);
	}
	assert_int_equal(json_object_size(args), 0);
	/* Seven levels under the key are the most a job's args may hold. */
	assert_int_equal(mpjson_arg(args, "x:=[[[[[[[1]]]]]]]", &err), MU_OK);
	json_decref(args);
}

static void
test_roundtrip(void **state)
{
	json_error_t jerr;
	json_t *in = json_loads("{\"a\":[1,-2,2.5,true,null,\"s\"],\"m\":{\"x\":{}}}", 0, &jerr);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
	json_t *out;

	(void)state;
	assert_non_null(in);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	assert_int_equal(mpjson_pack(&pk, in), 0);
	msgpack_unpacked_init(&up);
	assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
	out = mpjson_from_msgpack(&up.data);
	assert_non_null(out);
	assert_true(json_equal(in, out));
	assert_int_equal(mpjson_depth(in), 3);
	json_decref(in);
	json_decref(out);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arg_types),
		cmocka_unit_test(test_arg_file),
		cmocka_unit_test(test_arg_errors),
		cmocka_unit_test(test_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
