/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for lib/ipc.c: runner event codec and frame reassembly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include <cmocka.h>

#include "ipc.h"

static void
test_event_roundtrip(void **state)
{
	struct ipc_event e = { .type = IPC_VERDICT, .status = RS_FAIL,
	    .reason = { "disk full", 9 }, .summary = { "/ at 97%", 8 },
	    .truncated = true, .module = "disk.usage", .module_version = "1.0" }, d;
	msgpack_sbuffer sb;
	struct mu_err err = { "" };

	(void)state;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(ipc_event_encode(&e, &sb, &err), MU_OK);
	assert_int_equal(ipc_event_decode(sb.data, sb.size, &d, &err), MU_OK);
	assert_int_equal(d.type, IPC_VERDICT);
	assert_int_equal(d.status, RS_FAIL);
	assert_memory_equal(d.reason.ptr, "disk full", 9);
	assert_int_equal(d.summary.len, 8);
	assert_true(d.truncated);
	assert_string_equal(d.module, "disk.usage");
	assert_string_equal(d.module_version, "1.0");
	assert_null(d.data);
	wire_doc_free(&d.doc);

	msgpack_sbuffer_clear(&sb);
	e = (struct ipc_event){ .type = IPC_OUT, .text = { "hello", 5 } };
	assert_int_equal(ipc_event_encode(&e, &sb, &err), MU_OK);
	assert_int_equal(ipc_event_decode(sb.data, sb.size, &d, &err), MU_OK);
	assert_int_equal(d.type, IPC_OUT);
	assert_memory_equal(d.text.ptr, "hello", 5);
	wire_doc_free(&d.doc);

	msgpack_sbuffer_clear(&sb);
	e = (struct ipc_event){ .type = IPC_PROGRESS, .pct = 70 };
	assert_int_equal(ipc_event_encode(&e, &sb, &err), MU_OK);
	assert_int_equal(ipc_event_decode(sb.data, sb.size, &d, &err), MU_OK);
	assert_int_equal(d.pct, 70);
	wire_doc_free(&d.doc);
	msgpack_sbuffer_destroy(&sb);
}

/* A state carries summary, data and truncated, and nothing of a verdict's
 * status or reason even when the caller left them set. */
static void
test_state_roundtrip(void **state)
{
	struct ipc_event e = { .type = IPC_STATE, .status = RS_FAIL,
	    .reason = { "not sent", 8 }, .summary = { "2 of 3", 6 },
	    .module = "disk.usage" }, d;
	msgpack_sbuffer sb, data;
	msgpack_packer pk;
	msgpack_unpacked up;
	struct mu_err err = { "" };

	(void)state;
	msgpack_sbuffer_init(&data);
	msgpack_packer_init(&pk, &data, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str(&pk, 1);
	msgpack_pack_str_body(&pk, "n", 1);
	msgpack_pack_int(&pk, 2);
	msgpack_unpacked_init(&up);
	assert_int_equal(msgpack_unpack_next(&up, data.data, data.size, NULL),
	    MSGPACK_UNPACK_SUCCESS);
	e.data = &up.data;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(ipc_event_encode(&e, &sb, &err), MU_OK);
	assert_int_equal(ipc_event_decode(sb.data, sb.size, &d, &err), MU_OK);
	assert_int_equal(d.type, IPC_STATE);
	assert_memory_equal(d.summary.ptr, "2 of 3", 6);
	assert_null(d.reason.ptr);
	assert_string_equal(d.module, "");
	assert_non_null(d.data);
	assert_int_equal(d.data->via.map.size, 1);
	assert_false(d.truncated);
	wire_doc_free(&d.doc);

	msgpack_sbuffer_clear(&sb);
	e = (struct ipc_event){ .type = IPC_STATE, .truncated = true };
	assert_int_equal(ipc_event_encode(&e, &sb, &err), MU_OK);
	assert_int_equal(ipc_event_decode(sb.data, sb.size, &d, &err), MU_OK);
	assert_true(d.truncated);
	assert_null(d.summary.ptr);
	assert_null(d.data);
	wire_doc_free(&d.doc);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&data);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_event_refusals(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
		const char *want;
	} cases[] = {
		{ "\x81\xa1t\xa3out", 7, "'v'" },
		{ "\x82\xa1v\x01\xa1t\xa4nope", 11, "unknown value 'nope'" },
		{ "\x82\xa1v\x01\xa1t\xa3out", 10, "'text'" },
		{ "\x83\xa1v\x01\xa1t\xa8progress\xa3pct\x65", 20, "'pct'" },
		{ "\x83\xa1v\x01\xa1t\xa7verdict\xa6status\xa7" "crashed", 29, "status" },
		{ "\x93\x01\x02\x03", 4, "not a map" },
		/* The same readers as the network's: a key twice is refused. */
		{ "\x83\xa1v\x01\xa1t\xa3out\xa1t\xa3out", 16, "twice" },
	};
	struct mu_err err = { "" };
	struct ipc_event d;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ipc_event_decode(cases[i].bytes, cases[i].len, &d, &err),
		    MU_EINVAL);
		if (strstr(err.msg, cases[i].want) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].want);
	}
}

static void
test_frames(void **state)
{
	struct ipc_reader r = { 0 };
	const uint8_t *frame;
	struct mu_err err;
	uint8_t wire[64];
	size_t len, i;
	int fds[2];
	ssize_t n;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(ipc_frame_write(fds[1], "abc", 3), MU_OK);
	assert_int_equal(ipc_frame_write(fds[1], "", 0), MU_OK);
	assert_int_equal(ipc_frame_write(fds[1], "hello", 5), MU_OK);
	n = read(fds[0], wire, sizeof(wire));
	assert_int_equal(n, 4 + 3 + 4 + 4 + 5);
	/* Feed one byte at a time: frames come out whole and in order. */
	for (i = 0; i < (size_t)n; i++)
		assert_int_equal(ipc_reader_feed(&r, wire + i, 1, &err), MU_OK);
	assert_int_equal(ipc_reader_next(&r, &frame, &len), MU_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(frame, "abc", 3);
	assert_int_equal(ipc_reader_next(&r, &frame, &len), MU_OK);
	assert_int_equal(len, 0);
	assert_int_equal(ipc_reader_next(&r, &frame, &len), MU_OK);
	assert_memory_equal(frame, "hello", 5);
	assert_int_equal(ipc_reader_next(&r, &frame, &len), MU_ENOENT);
	ipc_reader_free(&r);

	/* A header announcing more than the limit is refused at once. */
	memcpy(wire, "\x00\x04\x00\x01", 4);
	assert_int_equal(ipc_reader_feed(&r, wire, 4, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "over"));
	ipc_reader_free(&r);
	close(fds[0]);
	assert_int_equal(ipc_frame_write(fds[1], "x", 1), MU_EIO);	/* EPIPE */
	close(fds[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event_roundtrip),
		cmocka_unit_test(test_state_roundtrip),
		cmocka_unit_test(test_event_refusals),
		cmocka_unit_test(test_frames),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
