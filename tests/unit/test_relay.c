/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for lib/relay.c: the persist relay's frames, topic filters and
 * socket path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay.h"

/* Encode f, check the length header, decode the body into out. */
static void
roundtrip(const struct relay_frame *f, msgpack_sbuffer *sb, struct relay_frame *out)
{
	struct mu_err err = { "" };
	uint32_t len;

	msgpack_sbuffer_clear(sb);
	assert_int_equal(relay_frame_encode(f, sb, &err), MU_OK);
	assert_true(sb->size > 4);
	len = (uint32_t)(uint8_t)sb->data[0] << 24 | (uint32_t)(uint8_t)sb->data[1] << 16 |
	    (uint32_t)(uint8_t)sb->data[2] << 8 | (uint8_t)sb->data[3];
	assert_int_equal(len, sb->size - 4);
	assert_int_equal(relay_frame_decode(sb->data + 4, len, out, &err), MU_OK);
	assert_int_equal(out->type, f->type);
}

static void
test_frames_roundtrip(void **state)
{
	static const uint8_t payload[] = { 0x82, 0, 1, 2, 0xff };
	struct relay_frame f = { .type = RELAY_PUB, .token = 7, .qos = 1, .retain = true,
	    .expiry_s = 600, .topic = { "muster/v1/hosts/h1/jobs", 23 },
	    .payload = { payload, sizeof(payload) } }, d;
	msgpack_sbuffer sb;

	(void)state;
	msgpack_sbuffer_init(&sb);
	roundtrip(&f, &sb, &d);
	assert_int_equal(d.token, 7);
	assert_int_equal(d.qos, 1);
	assert_true(d.retain);
	assert_int_equal(d.expiry_s, 600);
	assert_int_equal(d.topic.len, 23);
	assert_memory_equal(d.payload.ptr, payload, sizeof(payload));
	wire_doc_free(&d.doc);

	f = (struct relay_frame){ .type = RELAY_PUBACK, .token = 7,
	    .reason = { "refused by the broker", 21 } };
	roundtrip(&f, &sb, &d);
	assert_false(d.ok);
	assert_int_equal(d.token, 7);
	assert_memory_equal(d.reason.ptr, "refused by the broker", 21);
	wire_doc_free(&d.doc);

	f = (struct relay_frame){ .type = RELAY_MSG, .retain = true,
	    .topic = { "muster/v1/results/j/h1", 22 }, .payload = { payload, 0 } };
	roundtrip(&f, &sb, &d);
	assert_true(d.retain);
	assert_int_equal(d.payload.len, 0);
	wire_doc_free(&d.doc);

	f = (struct relay_frame){ .type = RELAY_HELLO, .version = RELAY_VERSION };
	roundtrip(&f, &sb, &d);
	assert_int_equal(d.version, RELAY_VERSION);
	wire_doc_free(&d.doc);

	f = (struct relay_frame){ .type = RELAY_READY, .ok = true };
	roundtrip(&f, &sb, &d);
	assert_true(d.ok);
	wire_doc_free(&d.doc);

	f = (struct relay_frame){ .type = RELAY_STOP };
	roundtrip(&f, &sb, &d);
	wire_doc_free(&d.doc);
	msgpack_sbuffer_destroy(&sb);
}

/* What a hostile peer may send is refused, not trusted. */
static void
test_bad_frames_refused(void **state)
{
	struct relay_frame f = { .type = RELAY_SUB, .qos = 1, .topic = { "a/#", 3 } }, d;
	struct mu_err err = { "" };
	msgpack_sbuffer sb;
	char *p;

	(void)state;
	msgpack_sbuffer_init(&sb);
	roundtrip(&f, &sb, &d);
	wire_doc_free(&d.doc);
	/* qos 3 */
	p = sb.data + sb.size - 1;	/* "qos" is the last value: 1 */
	assert_int_equal(*p, 1);
	*p = 3;
	assert_int_equal(relay_frame_decode(sb.data + 4, sb.size - 4, &d, &err), MU_EINVAL);
	/* truncated */
	*p = 1;
	assert_int_equal(relay_frame_decode(sb.data + 4, sb.size - 5, &d, &err), MU_EINVAL);
	/* a NUL inside a topic (Paho would cut it) */
	f.topic = (struct wire_str){ "a\0b", 3 };
	roundtrip(&(struct relay_frame){ .type = RELAY_UNSUB, .topic = { "ab", 2 } }, &sb, &d);
	wire_doc_free(&d.doc);
	msgpack_sbuffer_clear(&sb);
	assert_int_equal(relay_frame_encode(&f, &sb, &err), MU_OK);
	assert_int_equal(relay_frame_decode(sb.data + 4, sb.size - 4, &d, &err), MU_EINVAL);
	/* a payload over the bound is not even encoded */
	msgpack_sbuffer_clear(&sb);
	f = (struct relay_frame){ .type = RELAY_PUB, .topic = { "t", 1 },
	    .payload = { (const uint8_t *)"", RELAY_MAX_PAYLOAD + 1 } };
	assert_int_equal(relay_frame_encode(&f, &sb, &err), MU_EINVAL);
	assert_int_equal(sb.size, 0);
	/* not a map, unknown type */
	assert_int_equal(relay_frame_decode("\x93\x01\x02\x03", 4, &d, &err), MU_EINVAL);
	assert_int_equal(relay_frame_decode("\x82\xa1v\x01\xa1t\xa3zap", 10, &d, &err),
	    MU_EINVAL);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_topic_match(void **state)
{
	(void)state;
	assert_true(relay_topic_match("a/b", "a/b", 3));
	assert_false(relay_topic_match("a/b", "a/bc", 4));
	assert_false(relay_topic_match("a/b", "a", 1));
	assert_true(relay_topic_match("a/+/c", "a/x/c", 5));
	assert_false(relay_topic_match("a/+/c", "a/x/y/c", 7));
	assert_true(relay_topic_match("a/+", "a/", 2));
	assert_true(relay_topic_match("a/#", "a/x/y", 5));
	assert_true(relay_topic_match("a/#", "a", 1));
	assert_true(relay_topic_match("#", "a/b", 3));
	assert_false(relay_topic_match("#", "$SYS/x", 6));
	assert_false(relay_topic_match("+/x", "$SYS/x", 6));
	assert_true(relay_topic_match("muster/v1/results/j1/+",
	    "muster/v1/results/j1/h1", 23));
	assert_false(relay_topic_match("muster/v1/results/j1/+",
	    "muster/v1/results/j2/h1", 23));
	/* topic_len counts, not a NUL */
	assert_true(relay_topic_match("a/b", "a/bc", 3));
}

static void
test_socket_path(void **state)
{
	struct broker_config b = { .nuris = 1 };
	char dir[] = "/tmp/relay-test-XXXXXX", p1[RELAY_SOCK_PATH_MAX],
	    p2[RELAY_SOCK_PATH_MAX], sub[64];
	struct mu_err err = { "" };
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	setenv("XDG_RUNTIME_DIR", dir, 1);
	snprintf(b.uris[0], sizeof(b.uris[0]), "ssl://mq:8883");
	snprintf(b.topic_root, sizeof(b.topic_root), "muster");
	assert_int_equal(relay_socket_path(&b, true, p1, &err), MU_OK);
	snprintf(sub, sizeof(sub), "%s/muster", dir);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(strncmp(p1, sub, strlen(sub)), 0);
	assert_non_null(strstr(p1, "/persist-"));
	/* another topic root: another relay */
	snprintf(b.topic_root, sizeof(b.topic_root), "fleet");
	assert_int_equal(relay_socket_path(&b, true, p2, &err), MU_OK);
	assert_string_not_equal(p1, p2);
	/* a folder others may enter is not used */
	assert_int_equal(chmod(sub, 0755), 0);
	assert_int_equal(relay_socket_path(&b, true, p2, &err), MU_EINVAL);
	rmdir(sub);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames_roundtrip),
		cmocka_unit_test(test_bad_frames_refused),
		cmocka_unit_test(test_topic_match),
		cmocka_unit_test(test_socket_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
