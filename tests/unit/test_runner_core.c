/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the runner's building blocks: text.c, data.c, args.c,
 * events.c, api.c and runargs.c (linked from runner_core; see
 * tests/modules/CMakeLists.txt). */
#include <dlfcn.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "runner.h"

static void
test_utf8_clean(void **state)
{
	char s[32];
	size_t n;

	(void)state;
	strcpy(s, "plain");
	assert_int_equal(utf8_clean(s, 5, 5), 5);
	assert_string_equal(s, "plain");

	strcpy(s, "a\xff" "b\xc3\xa9");		/* bad byte, then é */
	n = utf8_clean(s, strlen(s), 32);
	assert_int_equal(n, 5);
	assert_memory_equal(s, "a?b\xc3\xa9", 5);

	strcpy(s, "\xed\xa0\x80");		/* a surrogate */
	assert_int_equal(utf8_clean(s, 3, 3), 3);
	assert_memory_equal(s, "???", 3);

	strcpy(s, "\xc0\xaf");			/* overlong '/' */
	utf8_clean(s, 2, 2);
	assert_memory_equal(s, "??", 2);

	strcpy(s, "ab\xc3\xa9");		/* cut never splits a character */
	assert_int_equal(utf8_clean(s, 4, 3), 2);

	memcpy(s, "a\0b", 3);			/* NUL is not text */
	utf8_clean(s, 3, 3);
	assert_memory_equal(s, "a?b", 3);
}

static void
test_text_set(void **state)
{
	struct text t = { "", false };
	char big[3000];

	(void)state;
	assert_int_equal(text_set(&t, "two\nlines %d", 2), MU_OK);
	assert_string_equal(t.s, "two lines 2");
	assert_true(t.set);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(text_set(&t, "%s", big), MU_OK);
	assert_int_equal(strlen(t.s), RUNNER_TEXT_MAX);
	/* A two-byte character across the limit is left out whole. */
	memset(big, 'x', RUNNER_TEXT_MAX - 1);
	memcpy(big + RUNNER_TEXT_MAX - 1, "\xc3\xa9tail", 7);
	assert_int_equal(text_set(&t, "%s", big), MU_OK);
	assert_int_equal(strlen(t.s), RUNNER_TEXT_MAX - 1);
}

/* Pack the data and unpack it for inspection. */
static const msgpack_object *
packed(struct data *d, msgpack_sbuffer *sb, msgpack_unpacked *up)
{
	size_t off = 0;

	msgpack_sbuffer_init(sb);
	msgpack_unpacked_init(up);
	assert_int_equal(data_pack(d, sb), MU_OK);
	assert_int_equal(msgpack_unpack_next(up, sb->data, sb->size, &off),
	    MSGPACK_UNPACK_SUCCESS);
	assert_true(sb->size <= d->bytes);	/* the estimate is an upper bound */
	assert_int_equal(wire_check_map(&up->data, NULL), MU_OK);
	return &up->data;
}

static const msgpack_object *
get(const msgpack_object *map, const char *key)
{
	uint32_t i;

	assert_int_equal(map->type, MSGPACK_OBJECT_MAP);
	for (i = 0; i < map->via.map.size; i++)
		if (map->via.map.ptr[i].key.via.str.size == strlen(key) &&
		    memcmp(map->via.map.ptr[i].key.via.str.ptr, key, strlen(key)) == 0)
			return &map->via.map.ptr[i].val;
	fail_msg("no key %s", key);
	return NULL;
}

static void
set_int(struct data *d, const char *path, int64_t v)
{
	struct dval val = { .type = D_INT, .i = v };

	assert_int_equal(data_set(d, path, &val, NULL), MU_OK);
}

static void
test_data_paths(void **state)
{
	struct dval s = { .type = D_STR, .s = "v" };
	const msgpack_object *root, *o;
	msgpack_unpacked up;
	msgpack_sbuffer sb;
	struct data d;
	struct mu_err err;

	(void)state;
	assert_int_equal(data_init(&d), MU_OK);
	assert_true(data_empty(&d));
	set_int(&d, "a/b/c", 1);
	set_int(&d, "a/b/c", 2);
	set_int(&d, "a/l[]", 3);
	set_int(&d, "a/l[]", 4);
	set_int(&d, "1/2/3/4/5/6/7", 7);
	set_int(&d, "1/2/3/4/5/6/l[]", 8);
	assert_int_equal(data_set(&d, "1/2/3/4/5/6/7/8", &s, &err), MU_EINVAL);
	assert_int_equal(data_set(&d, "a//b", &s, &err), MU_EINVAL);
	assert_int_equal(data_set(&d, "a[]/b", &s, &err), MU_EINVAL);
	assert_int_equal(data_set(&d, "", &s, &err), MU_EINVAL);
	assert_int_equal(data_set(&d, NULL, &s, &err), MU_EINVAL);
	root = packed(&d, &sb, &up);
	o = get(get(get(root, "a"), "b"), "c");
	assert_int_equal(o->via.i64, 2);
	o = get(get(root, "a"), "l");
	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.size, 2);
	assert_false(d.truncated);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	data_free(&d);
}

static void
test_data_bounds(void **state)
{
	char key[32], big[2000];
	struct dval s = { .type = D_STR, .s = big };
	size_t bytes, i;
	struct data d;

	(void)state;
	assert_int_equal(data_init(&d), MU_OK);
	/* Overwriting one key never runs out. */
	set_int(&d, "k", 0);
	bytes = d.bytes;
	for (i = 0; i < 100000; i++)
		set_int(&d, "k", (int64_t)i);
	assert_int_equal(d.bytes, bytes);
	assert_int_equal(d.nodes, 1);
	/* Replacing a subtree gives its room back. */
	set_int(&d, "t/a/b", 1);
	set_int(&d, "t/a/c", 1);
	set_int(&d, "t", 5);
	assert_int_equal(d.nodes, 2);
	for (i = 0; i < 2 * RUNNER_DATA_MAX_KEYS; i++) {
		snprintf(key, sizeof(key), "many/%zu", i);
		set_int(&d, key, (int64_t)i);
	}
	assert_true(d.truncated);
	assert_int_equal(d.nodes, RUNNER_DATA_MAX_KEYS);
	data_free(&d);

	assert_int_equal(data_init(&d), MU_OK);
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "s%zu", i);
		assert_int_equal(data_set(&d, key, &s, NULL), MU_OK);
	}
	assert_true(d.truncated);
	assert_true(d.bytes <= RUNNER_DATA_MAX_BYTES);
	data_free(&d);
}

static void
test_args(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
	struct args a;
	const struct muster_value *v;
	size_t off = 0;

	(void)state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "s", 1);
	msgpack_pack_str_with_body(&pk, "hi", 2);
	msgpack_pack_str_with_body(&pk, "big", 3);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	msgpack_pack_str_with_body(&pk, "s", 1);
	msgpack_pack_str_with_body(&pk, "again", 5);
	msgpack_unpacked_init(&up);
	assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(args_build(&a, &up.data, NULL), MU_OK);
	v = value_get(a.root, "s");
	assert_non_null(v);
	assert_string_equal(v->s, "again");		/* the last one wins */
	v = value_get(a.root, "big");
	assert_int_equal(v->type, MUSTER_T_INT);
	assert_false(v->int_ok);			/* does not fit an int64_t */
	assert_null(value_get(a.root, "none"));
	assert_null(value_get(NULL, "s"));
	args_free(&a);
	assert_int_equal(args_build(&a, NULL, NULL), MU_OK);
	assert_int_equal(a.root->type, MUSTER_T_MAP);
	assert_int_equal(a.root->len, 0);
	args_free(&a);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

/* A ctx whose args are {"f": 1.5, "i": -3, "big": UINT64_MAX, "s": "x"}. */
static void
float_ctx(struct muster_ctx *ctx, int evfd)
{
	msgpack_unpacked up;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t off = 0;

	assert_int_equal(ctx_init(ctx, evfd, 65536), MU_OK);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	msgpack_pack_str_with_body(&pk, "f", 1);
	msgpack_pack_double(&pk, 1.5);
	msgpack_pack_str_with_body(&pk, "i", 1);
	msgpack_pack_int64(&pk, -3);
	msgpack_pack_str_with_body(&pk, "big", 3);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	msgpack_pack_str_with_body(&pk, "s", 1);
	msgpack_pack_str_with_body(&pk, "x", 1);
	msgpack_unpacked_init(&up);
	assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(args_build(&ctx->args, &up.data, NULL), MU_OK);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_api_float(void **state)
{
	const struct muster_api *api = &runner_api;
	struct muster_ctx ctx;

	(void)state;
	float_ctx(&ctx, -1);
	assert_int_equal(api->size, sizeof(struct muster_api));
	assert_true(MUSTER_API_HAS(api, value_float));
	assert_true(MUSTER_API_HAS(api, arg_float));
	assert_true(api->arg_float(&ctx, "f", 0) == 1.5);
	assert_true(api->arg_float(&ctx, "i", 0) == -3.0);	/* ints convert */
	assert_true(api->arg_float(&ctx, "big", 0) == 18446744073709551615.0);
	assert_true(api->arg_float(&ctx, "s", 7) == 7.0);	/* not a number */
	assert_true(api->arg_float(&ctx, "none", 8) == 8.0);
	assert_true(api->arg_float(&ctx, NULL, 9) == 9.0);
	assert_true(api->value_float(NULL, 0.5) == 0.5);
	assert_true(api->value_float(api->arg(&ctx, NULL), 0.25) == 0.25);	/* a map */
	assert_int_equal(api->arg_int(&ctx, "f", 4), 4);	/* floats stay floats */
	/* The rest of the contract module.h states. */
	assert_null(api->arg(&ctx, "none"));
	assert_int_equal(api->value_len(api->arg(&ctx, NULL)), 4);
	assert_string_equal(api->value_key_at(api->arg(&ctx, NULL), 3), "s");
	assert_string_equal(api->value_str(api->value_at(api->arg(&ctx, NULL), 3), ""), "x");
	assert_null(api->value_at(api->arg(&ctx, NULL), 4));
	ctx_free(&ctx);
}

/* The checked getters, fail()/error() and next_kv() of issue 23, on the
 * ctx float_ctx() makes. */
static void
test_api_checked(void **state)
{
	const struct muster_api *api = &runner_api;
	struct muster_ctx ctx;
	char text[] = "A=1\nno\n B = two \r\n=x\n", *cur = text, *k, *v;
	const char *s;
	int64_t i;
	double d;
	int b;

	(void)state;
	float_ctx(&ctx, -1);
	assert_true(MUSTER_API_HAS(api, next_kv));
	assert_int_equal(api->get_float(&ctx, "f", 0, 0, &d), MUSTER_ARG_OK);
	assert_true(d == 1.5);
	assert_int_equal(api->get_int(&ctx, "i", 0, 0, &i), MUSTER_ARG_OK);
	assert_int_equal(i, -3);
	assert_int_equal(api->get_int(&ctx, "none", 0, 5, &i), MUSTER_ARG_ABSENT);
	assert_int_equal(i, 5);
	assert_int_equal(api->get_str(&ctx, "i", 0, NULL, &s), MUSTER_ARG_CONVERTED);
	assert_string_equal(s, "-3");
	assert_int_equal(ctx.arg_errors, 0);
	assert_false(ctx.reason.set);
	/* A mismatch: the default, and the reason names the first one. */
	assert_int_equal(api->get_int(&ctx, "big", 0, 9, &i), MUSTER_ARG_BAD);
	assert_int_equal(i, 9);
	assert_int_equal(api->get_bool(&ctx, "s", 0, 1, &b), MUSTER_ARG_BAD);
	assert_int_equal(b, 1);
	assert_int_equal(api->get_str(&ctx, NULL, MUSTER_ARG_REQUIRED, "d", &s),
	    MUSTER_ARG_BAD);
	assert_int_equal(api->arg_errors(&ctx), 3);
	assert_string_equal(ctx.reason.s,
	    "argument \"big\" must be an integer, not an integer past 2^63");
	assert_string_equal(ctx.summary.s, "bad arguments");
	assert_int_equal(api->error(&ctx, "e %d", 1), MUSTER_ERROR);
	assert_string_equal(ctx.reason.s, "e 1");
	assert_string_equal(ctx.summary.s, "bad arguments");	/* kept */
	ctx.summary.set = false;
	/* Parenthesised: cmocka has a fail() macro. */
	assert_int_equal((api->fail)(&ctx, "f %d", 2), MUSTER_FAIL);
	assert_string_equal(ctx.summary.s, "f 2");
	assert_int_equal(api->next_kv(&cur, '=', &k, &v), 1);
	assert_string_equal(k, "A");
	assert_string_equal(v, "1");
	assert_int_equal(api->next_kv(&cur, '=', &k, &v), 1);
	assert_string_equal(k, "B");
	assert_string_equal(v, "two");
	assert_int_equal(api->next_kv(&cur, '=', &k, &v), 0);
	assert_null(api->next_line(&cur));
	ctx_free(&ctx);
}

/* A module built against this header, run by a runner whose api stops
 * before value_float: MUSTER_API_HAS() must keep it off the new helpers. */
static void
test_api_older_runner(void **state)
{
	const char *dir = getenv("MUSTER_BUILD_DIR");
	const msgpack_object *root, *typed;
	struct muster_api old = runner_api;
	struct mu_err err = { "" };
	struct muster_ctx ctx;
	msgpack_unpacked up;
	msgpack_sbuffer sb;
	struct module m;
	char path[4096];
	int fd;

	(void)state;
	if (dir == NULL)
		skip();
	snprintf(path, sizeof(path), "%s/tests/modules/echoargs.so", dir);
	if (module_open(path, &m, &err) != MU_OK)
		fail_msg("%s", err.msg);
	assert_int_equal(module_check(&m, "echoargs", &err), MU_OK);
	assert_true((fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) != -1);
	float_ctx(&ctx, fd);
	old.size = offsetof(struct muster_api, value_float);
	old.value_float = NULL, old.arg_float = NULL;
	assert_false(MUSTER_API_HAS(&old, value_float));
	assert_false(MUSTER_API_HAS(&old, get_int));
	assert_false(MUSTER_API_HAS(&old, next_kv));
	assert_true(MUSTER_API_HAS(&old, free));
	assert_int_equal(m.desc->run(&ctx, &old), MUSTER_PASS);
	root = packed(&ctx.data, &sb, &up);
	typed = get(root, "typed");
	assert_int_equal(get(typed, "has_float")->via.boolean, false);
	assert_int_equal(get(get(root, "args"), "f")->type, MSGPACK_OBJECT_STR);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	ctx_free(&ctx);
	close(fd);
	dlclose(m.handle);
}

static void out(struct muster_ctx *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
out(struct muster_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	assert_int_equal(events_vout(ctx, fmt, ap), MU_OK);
	va_end(ap);
}

/* Read back every frame in the pipe; return the number of out frames and
 * the total text length. */
static size_t
frames(int fd, size_t *textlen, bool *truncated)
{
	struct ipc_reader rd = { 0 };
	struct ipc_event e;
	const uint8_t *f;
	size_t flen, n = 0;
	uint8_t buf[65536];
	ssize_t got;

	*textlen = 0;
	while ((got = read(fd, buf, sizeof(buf))) > 0) {
		assert_int_equal(ipc_reader_feed(&rd, buf, (size_t)got, NULL), MU_OK);
		while (ipc_reader_next(&rd, &f, &flen) == MU_OK) {
			assert_int_equal(ipc_event_decode(f, flen, &e, NULL), MU_OK);
			if (e.type == IPC_OUT) {
				n++;
				*textlen += e.text.len;
			} else if (e.type == IPC_VERDICT)
				*truncated = e.truncated;
			wire_doc_free(&e.doc);
		}
	}
	ipc_reader_free(&rd);
	return n;
}

static void
test_events_budget(void **state)
{
	struct muster_ctx ctx;
	size_t textlen, n;
	bool truncated = false;
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(ctx_init(&ctx, p[1], 20), MU_OK);
	out(&ctx, "one\ntwo\n");		/* 4 + 4 */
	out(&ctx, "%s", "three");		/* 6: 14 */
	out(&ctx, "a longer line");		/* cut to 5: 20 */
	out(&ctx, "dropped");
	assert_true(ctx.out_truncated);
	assert_int_equal(ctx.out_used, 20);
	assert_int_equal(events_verdict(&ctx, RS_PASS, "m", "1"), MU_OK);
	close(p[1]);
	n = frames(p[0], &textlen, &truncated);
	assert_int_equal(n, 4);
	assert_int_equal(textlen, 3 + 3 + 5 + 5);
	assert_true(truncated);
	close(p[0]);
	ctx_free(&ctx);
}

static void
test_events_broken_pipe(void **state)
{
	struct muster_ctx ctx;
	int p[2];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	assert_int_equal(ctx_init(&ctx, p[1], 100), MU_OK);
	assert_int_equal(events_progress(&ctx, 5), MU_EIO);
	assert_true(ctx.ev_broken);
	assert_int_equal(events_verdict(&ctx, RS_PASS, NULL, NULL), MU_EIO);
	close(p[1]);
	ctx_free(&ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_clean),
		cmocka_unit_test(test_text_set),
		cmocka_unit_test(test_data_paths),
		cmocka_unit_test(test_data_bounds),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_api_float),
		cmocka_unit_test(test_api_checked),
		cmocka_unit_test(test_api_older_runner),
		cmocka_unit_test(test_events_budget),
		cmocka_unit_test(test_events_broken_pipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
