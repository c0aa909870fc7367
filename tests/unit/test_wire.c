/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/wire*.c (the codecs of wire.h): every codec round-trips,
 * and each refusal rule refuses with a reason naming the problem; the
 * parent <-> network process frames (priv_msg) type by type.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* ---- a tiny map builder for hand-made (often wrong) messages ----------- */

enum kvt { S, U, NEG, B, BIN, NIL, RAW };

struct kv {
	const char *key;
	enum kvt t;
	const char *s;		/* S, BIN, RAW: bytes */
	uint64_t u;		/* U, B; length for BIN/RAW (0 = strlen) */
};

static void
pack_kvs(msgpack_sbuffer *sb, const struct kv *kvs, size_t n, const char *skip)
{
	msgpack_packer pk;
	size_t i, count = 0;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	for (i = 0; i < n; i++)
		count += !(skip && strcmp(kvs[i].key, skip) == 0);
	msgpack_pack_map(&pk, count);
	for (i = 0; i < n; i++) {
		const struct kv *e = &kvs[i];
		size_t len = e->u ? e->u : (e->s ? strlen(e->s) : 0);

		if (skip && strcmp(e->key, skip) == 0)
			continue;
		msgpack_pack_str(&pk, strlen(e->key));
		msgpack_pack_str_body(&pk, e->key, strlen(e->key));
		switch (e->t) {
		case S:
			msgpack_pack_str(&pk, len);
			msgpack_pack_str_body(&pk, e->s, len);
			break;
		case U:
			msgpack_pack_uint64(&pk, e->u);
			break;
		case NEG:
			msgpack_pack_int64(&pk, -(int64_t)e->u);
			break;
		case B:
			if (e->u)
				msgpack_pack_true(&pk);
			else
				msgpack_pack_false(&pk);
			break;
		case BIN:
			msgpack_pack_bin(&pk, len);
			msgpack_pack_bin_body(&pk, e->s, len);
			break;
		case NIL:
			msgpack_pack_nil(&pk);
			break;
		case RAW:
			msgpack_sbuffer_write(sb, e->s, len);
			break;
		}
	}
}

typedef int (*job_decoder)(const void *, size_t, struct job *, struct mu_err *);

static const struct kv job_run[] = {
	{ "v", U, NULL, 1 },
	{ "id", S, "job-1", 0 },
	{ "kind", S, "run", 0 },
	{ "target", S, "host/web1", 0 },
	{ "issued_at", U, NULL, 1700000000000ull },
	{ "not_after", U, NULL, 1700000060000ull },
	{ "operator", S, "alice", 0 },
	{ "aud", S, "muster/v1", 0 },
	{ "module", S, "os.release", 0 },
	{ "module_sha256", S, SHA_A, 0 },
	{ "args", RAW, "\x81\xa2id\xa6" "debian", 11 },
	{ "timeout_ms", U, NULL, 5000 },
	{ "stream", B, NULL, 1 },
	{ "extra", S, "ignored", 0 },
};
#define NJOB_RUN (sizeof(job_run) / sizeof(job_run[0]))

/* Decode kvs (minus 'skip') as a job; return rc and the reason. */
static int
decode_job_kvs(const struct kv *kvs, size_t n, const char *skip, struct mu_err *err)
{
	msgpack_sbuffer sb;
	struct job j;
	int rc;

	msgpack_sbuffer_init(&sb);
	pack_kvs(&sb, kvs, n, skip);
	rc = job_decode(sb.data, sb.size, &j, err);
	if (rc == MU_OK)
		wire_doc_free(&j.doc);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* Replace one key's value in a copy of job_run and decode it. */
static void
assert_job_refused(const struct kv *repl, const char *want)
{
	struct kv kvs[NJOB_RUN];
	struct mu_err err = { "" };
	size_t i;

	memcpy(kvs, job_run, sizeof(kvs));
	for (i = 0; i < NJOB_RUN; i++)
		if (strcmp(kvs[i].key, repl->key) == 0)
			kvs[i] = *repl;
	assert_int_equal(decode_job_kvs(kvs, NJOB_RUN, NULL, &err), MU_EINVAL);
	if (strstr(err.msg, want) == NULL)
		fail_msg("reason '%s' does not contain '%s'", err.msg, want);
}

/* ---- tests ------------------------------------------------------------ */

static void
test_job_decode_valid(void **state)
{
	msgpack_sbuffer sb, again;
	struct mu_err err;
	struct job j, k;

	(void)state;
	msgpack_sbuffer_init(&sb);
	pack_kvs(&sb, job_run, NJOB_RUN, NULL);
	assert_int_equal(job_decode(sb.data, sb.size, &j, &err), MU_OK);
	assert_string_equal(j.id, "job-1");
	assert_int_equal(j.kind, JOB_RUN);
	assert_int_equal(j.target.kind, TARGET_HOST);
	assert_string_equal(j.target.name, "web1");
	assert_int_equal(j.issued_at, 1700000000000ull);
	assert_int_equal(j.not_after, 1700000060000ull);
	assert_int_equal(j.operator_.len, 5);
	assert_memory_equal(j.operator_.ptr, "alice", 5);
	assert_string_equal(j.aud, "muster/v1");
	assert_string_equal(j.module, "os.release");
	assert_string_equal(j.module_sha256, SHA_A);
	assert_non_null(j.args);
	assert_int_equal(j.args->via.map.size, 1);
	assert_int_equal(j.timeout_ms, 5000);
	assert_true(j.stream);

	/* Encode what we decoded, decode again: same job. */
	msgpack_sbuffer_init(&again);
	assert_int_equal(job_encode(&j, &again, &err), MU_OK);
	assert_int_equal(job_decode(again.data, again.size, &k, &err), MU_OK);
	assert_string_equal(k.id, j.id);
	assert_string_equal(k.aud, "muster/v1");
	assert_string_equal(k.module, j.module);
	assert_int_equal(k.args->via.map.size, 1);
	assert_int_equal(k.timeout_ms, 5000);
	assert_true(k.stream);
	wire_doc_free(&k.doc);
	wire_doc_free(&j.doc);
	msgpack_sbuffer_destroy(&again);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_job_missing_keys(void **state)
{
	static const char *const required[] = {
		"v", "id", "kind", "target", "issued_at", "not_after", "module",
	};
	struct mu_err err = { "" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		assert_int_equal(decode_job_kvs(job_run, NJOB_RUN, required[i], &err), MU_EINVAL);
		assert_non_null(strstr(err.msg, "missing key"));
		assert_non_null(strstr(err.msg, required[i]));
	}
	/* Optional keys may go. */
	assert_int_equal(decode_job_kvs(job_run, NJOB_RUN, "args", &err), MU_OK);
	assert_int_equal(decode_job_kvs(job_run, NJOB_RUN, "operator", &err), MU_OK);
	assert_int_equal(decode_job_kvs(job_run, NJOB_RUN, "module_sha256", &err), MU_OK);
	/* "aud" decodes when absent (the agent refuses it with its own
	 * reason); the encoder never writes a job without it. */
	assert_int_equal(decode_job_kvs(job_run, NJOB_RUN, "aud", &err), MU_OK);
}

static void
test_job_aud_and_reserved_ids(void **state)
{
	struct mu_err err = { "" };
	msgpack_sbuffer sb;
	struct job j;

	(void)state;
	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "job-1");
	j.kind = JOB_PING;
	j.target.kind = TARGET_ALL;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(job_encode(&j, &sb, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "aud"));
	snprintf(j.aud, sizeof(j.aud), "muster");
	assert_int_equal(job_encode(&j, &sb, &err), MU_EINVAL);
	snprintf(j.aud, sizeof(j.aud), "staging/v1");
	assert_int_equal(job_encode(&j, &sb, &err), MU_OK);
	/* No real job may be named like a refusal of an unverifiable one. */
	snprintf(j.id, sizeof(j.id), "invalid-0123456789abcdef");
	assert_int_equal(job_encode(&j, &sb, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "reserved"));
	msgpack_sbuffer_destroy(&sb);
	assert_false(aud_valid("muster/v1/x"));
	assert_false(aud_valid("Muster/v1"));
	assert_false(aud_valid("/v1"));
	assert_true(aud_valid("muster/v1"));
	assert_true(jobid_reserved("invalid-x"));
	assert_false(jobid_reserved("Invalid-x"));
}

static void
test_job_bad_values(void **state)
{
	static const struct {
		struct kv kv;
		const char *want;
	} cases[] = {
		{ { "v", U, NULL, 2 }, "version 2" },
		{ { "v", S, "1", 0 }, "'v' must be" },
		{ { "id", S, "a/b", 0 }, "'id' is not a job id" },
		{ { "id", S, "", 0 }, "'id' is not" },
		{ { "id", U, NULL, 7 }, "'id' must be a string" },
		{ { "id", S, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 }, "longer than" },
		{ { "kind", S, "reboot", 0 }, "unknown value 'reboot'" },
		{ { "target", S, "host/Web1", 0 }, "'target'" },
		{ { "target", S, "everyone", 0 }, "'target'" },
		{ { "issued_at", NEG, NULL, 5 }, "must not be negative" },
		{ { "not_after", S, "soon", 0 }, "'not_after' must be an unsigned" },
		{ { "module", S, "../etc/passwd", 0 }, "'module' is not a module name" },
		{ { "module_sha256", S, "ABC", 0 }, "'module_sha256'" },
		{ { "args", S, "x=1", 0 }, "'args' must be a map" },
		{ { "args", RAW, "\x81\x01\x02", 3 }, "not a string" },
		{ { "timeout_ms", U, NULL, 1ull << 40 }, "'timeout_ms' is over" },
		{ { "stream", U, NULL, 1 }, "'stream' must be a boolean" },
		{ { "id", BIN, "job-1", 0 }, "'id' must be a string" },
		{ { "id", S, "jo\0b", 4 }, "NUL" },
		{ { "id", S, "invalid-0123456789abcdef", 0 }, "reserved prefix" },
		{ { "aud", S, "muster", 0 }, "'aud' is not a fleet" },
		{ { "aud", U, NULL, 1 }, "'aud' must be a string" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_job_refused(&cases[i].kv, cases[i].want);
}

/* An args map nested 'depth' levels deep: {"a":{"a":...{"a":1}}}. */
static char *
nested_args(int depth, size_t *len)
{
	char *p = malloc(depth * 3 + 1);
	int i;

	for (i = 0; i < depth; i++)
		memcpy(p + 3 * i, "\x81\xa1" "a", 3);
	p[3 * depth] = 0x01;
	*len = depth * 3 + 1;
	return p;
}

static void
test_job_args_depth(void **state)
{
	struct kv kvs[NJOB_RUN];
	struct mu_err err = { "" };
	size_t i, len;
	char *args;

	(void)state;
	memcpy(kvs, job_run, sizeof(kvs));
	for (i = 0; i < NJOB_RUN; i++) {
		if (strcmp(kvs[i].key, "args") != 0)
			continue;
		args = nested_args(8, &len);
		kvs[i].s = args, kvs[i].u = len;
		assert_int_equal(decode_job_kvs(kvs, NJOB_RUN, NULL, &err), MU_OK);
		free(args);
		args = nested_args(9, &len);
		kvs[i].s = args, kvs[i].u = len;
		assert_int_equal(decode_job_kvs(kvs, NJOB_RUN, NULL, &err), MU_EINVAL);
		assert_non_null(strstr(err.msg, "deeper than 8"));
		free(args);
	}
}

static void
test_job_kinds(void **state)
{
	const struct kv cancel[] = {
		{ "v", U, NULL, 1 }, { "id", S, "c1", 0 }, { "kind", S, "cancel", 0 },
		{ "target", S, "all", 0 }, { "issued_at", U, NULL, 1 },
		{ "not_after", U, NULL, 2 }, { "cancel", S, "job-1", 0 },
	};
	const struct kv ping[] = {
		{ "v", U, NULL, 1 }, { "id", S, "p1", 0 }, { "kind", S, "ping", 0 },
		{ "target", S, "group/db", 0 }, { "issued_at", U, NULL, 1 },
		{ "not_after", U, NULL, 2 },
	};
	struct mu_err err;

	(void)state;
	assert_int_equal(decode_job_kvs(cancel, 7, NULL, &err), MU_OK);
	assert_int_equal(decode_job_kvs(cancel, 7, "cancel", &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "'cancel'"));
	assert_int_equal(decode_job_kvs(ping, 6, NULL, &err), MU_OK);
}

static void
test_structure_refusals(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
		const char *want;
	} cases[] = {
		{ "", 0, "empty" },
		{ "\xc1", 1, "invalid msgpack byte" },
		{ "\x81\xa1v\x01\x00", 5, "trailing" },
		{ "\x82\xa1v\x01", 4, "truncated" },
		{ "\xdf\xff\xff\xff\xff", 5, "truncated" },	/* 2^32-1 pairs */
		{ "\xdd\xff\xff\xff\xff\x00", 6, "truncated" },
		{ "\xdb\xff\xff\xff\xff", 5, "over the" },
		{ "\xc6\xff\xff\xff\xff", 5, "truncated" },
		{ "\x81\xa1v\xd4\x01\x02", 6, "ext" },
		{ "\x91\x01", 2, "not a map" },
		{ "\x82\xa1v\x01\xa1v\x01", 7, "twice" },
		{ "\x81\x01\x01", 3, "not a string" },
		{ "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x01", 12, "deeper" },
	};
	struct mu_err err = { "" };
	struct job j;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(job_decode(cases[i].bytes, cases[i].len, &j, &err), MU_EINVAL);
		if (strstr(err.msg, cases[i].want) == NULL)
			fail_msg("case %zu: reason '%s' lacks '%s'", i, err.msg, cases[i].want);
	}
}

static void
test_too_many_keys(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct mu_err err = { "" };
	struct job j;
	char key[16];
	int i;

	(void)state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 65);
	for (i = 0; i < 65; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		msgpack_pack_str(&pk, strlen(key));
		msgpack_pack_str_body(&pk, key, strlen(key));
		msgpack_pack_nil(&pk);
	}
	assert_int_equal(job_decode(sb.data, sb.size, &j, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "more than 64 keys"));
	msgpack_sbuffer_destroy(&sb);
}

static void
test_envelope(void **state)
{
	uint8_t sig[ED25519_SIG_LEN];
	struct job_envelope env;
	msgpack_sbuffer sb;
	struct mu_err err = { "" };
	const struct kv short_sig[] = {
		{ "v", U, NULL, 1 }, { "key", S, "0011223344556677", 0 },
		{ "sig", BIN, "abc", 0 }, { "body", BIN, "\x80", 0 },
	};
	const struct kv good[] = {
		{ "v", U, NULL, 1 }, { "key", S, "0011223344556677", 0 },
		{ "sig", BIN, (const char *)sig, 64 }, { "body", BIN, "\x80", 0 },
	};
	const struct kv bad_key[] = {
		{ "v", U, NULL, 1 }, { "key", S, "00112233445566", 0 },
		{ "sig", BIN, (const char *)sig, 64 }, { "body", BIN, "\x80", 0 },
	};

	(void)state;
	memset(sig, 0x5a, sizeof(sig));
	msgpack_sbuffer_init(&sb);
	assert_int_equal(envelope_encode("0011223344556677", sig, "\x80", 1, &sb, &err), MU_OK);
	assert_int_equal(envelope_decode(sb.data, sb.size, &env, &err), MU_OK);
	assert_string_equal(env.key, "0011223344556677");
	assert_memory_equal(env.sig, sig, 64);
	assert_int_equal(env.body.len, 1);
	/* The body is borrowed from the input, not copied. */
	assert_true(env.body.ptr >= (const uint8_t *)sb.data &&
	    env.body.ptr < (const uint8_t *)sb.data + sb.size);
	wire_doc_free(&env.doc);
	msgpack_sbuffer_clear(&sb);

	pack_kvs(&sb, short_sig, 4, NULL);
	assert_int_equal(envelope_decode(sb.data, sb.size, &env, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "'sig' must be 64 bytes"));
	msgpack_sbuffer_clear(&sb);
	pack_kvs(&sb, bad_key, 4, NULL);
	assert_int_equal(envelope_decode(sb.data, sb.size, &env, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "'key'"));
	msgpack_sbuffer_clear(&sb);
	pack_kvs(&sb, good, 4, "body");
	assert_int_equal(envelope_decode(sb.data, sb.size, &env, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "missing key 'body'"));
	assert_int_equal(envelope_encode("nothex", sig, "\x80", 1, &sb, &err), MU_EINVAL);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_result(void **state)
{
	struct result r, d;
	msgpack_sbuffer sb, data;
	msgpack_unpacked up;
	msgpack_packer pk;
	struct mu_err err = { "" };

	(void)state;
	msgpack_sbuffer_init(&data);
	msgpack_packer_init(&pk, &data, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str(&pk, 2);
	msgpack_pack_str_body(&pk, "id", 2);
	msgpack_pack_str(&pk, 6);
	msgpack_pack_str_body(&pk, "debian", 6);
	msgpack_unpacked_init(&up);
	assert_int_equal(msgpack_unpack_next(&up, data.data, data.size, NULL),
	    MSGPACK_UNPACK_SUCCESS);

	memset(&r, 0, sizeof(r));
	strcpy(r.job, "job-1");
	strcpy(r.host, "web1");
	r.kind = JOB_RUN;
	r.status = RS_CRASHED;
	r.summary = (struct wire_str){ "segfault", 8 };
	r.output = (struct wire_str){ "line1\nline2", 11 };
	r.truncated = true;
	r.events_dropped = 2002;
	r.data = &up.data;
	r.has_signal = true;
	r.signal = 11;
	r.has_exit_code = true;
	r.exit_code = -3;
	strcpy(r.module, "os.release");
	strcpy(r.module_version, "1.0.2");
	strcpy(r.module_sha256, SHA_A);
	r.started_at = 10, r.finished_at = 20;
	strcpy(r.agent_version, "0.1.0");
	r.has_seq = true;
	r.seq = UINT64_MAX;	/* the whole range survives a round trip */

	msgpack_sbuffer_init(&sb);
	assert_int_equal(result_encode(&r, &sb, &err), MU_OK);
	assert_int_equal(result_decode(sb.data, sb.size, &d, &err), MU_OK);
	assert_string_equal(d.job, "job-1");
	assert_string_equal(d.host, "web1");
	assert_int_equal(d.kind, JOB_RUN);
	assert_int_equal(d.status, RS_CRASHED);
	assert_int_equal(d.summary.len, 8);
	assert_memory_equal(d.output.ptr, "line1\nline2", 11);
	assert_null(d.reason.ptr);
	assert_true(d.truncated);
	assert_true(d.events_dropped == 2002);
	assert_non_null(d.data);
	assert_int_equal(d.data->via.map.size, 1);
	assert_true(d.has_signal && d.signal == 11);
	assert_true(d.has_exit_code && d.exit_code == -3);
	assert_string_equal(d.module_version, "1.0.2");
	assert_int_equal(d.finished_at, 20);
	assert_string_equal(d.agent_version, "0.1.0");
	assert_true(d.has_seq);
	assert_true(d.seq == UINT64_MAX);
	wire_doc_free(&d.doc);

	/* "unknown" kind only with rejected; no seq, none decoded. */
	r.has_seq = false;
	r.kind = JOB_UNKNOWN;
	msgpack_sbuffer_clear(&sb);
	assert_int_equal(result_encode(&r, &sb, &err), MU_EINVAL);
	r.status = RS_REJECTED;
	r.reason = (struct wire_str){ "bad signature", 13 };
	assert_int_equal(result_encode(&r, &sb, &err), MU_OK);
	assert_int_equal(result_decode(sb.data, sb.size, &d, &err), MU_OK);
	assert_int_equal(d.status, RS_REJECTED);
	assert_int_equal(d.kind, JOB_UNKNOWN);
	assert_memory_equal(d.reason.ptr, "bad signature", 13);
	assert_false(d.has_seq);
	wire_doc_free(&d.doc);

	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&data);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_result_refusals(void **state)
{
	const struct kv res[] = {
		{ "v", U, NULL, 1 }, { "job", S, "j", 0 }, { "host", S, "h", 0 },
		{ "kind", S, "ping", 0 }, { "status", S, "pass", 0 },
		{ "started_at", U, NULL, 1 }, { "finished_at", U, NULL, 2 },
		{ "agent_version", S, "0.1", 0 },
	};
	struct kv bad[8], withseq[9];
	msgpack_sbuffer sb;
	struct mu_err err = { "" };
	struct result r;

	(void)state;
	msgpack_sbuffer_init(&sb);
	pack_kvs(&sb, res, 8, NULL);
	assert_int_equal(result_decode(sb.data, sb.size, &r, &err), MU_OK);
	wire_doc_free(&r.doc);
	msgpack_sbuffer_clear(&sb);
	pack_kvs(&sb, res, 8, "agent_version");
	assert_int_equal(result_decode(sb.data, sb.size, &r, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "agent_version"));
	memcpy(bad, res, sizeof(bad));
	bad[4].s = "maybe";
	msgpack_sbuffer_clear(&sb);
	pack_kvs(&sb, bad, 8, NULL);
	assert_int_equal(result_decode(sb.data, sb.size, &r, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "'status'"));
	/* seq is optional, but when present an unsigned integer. */
	memcpy(withseq, res, sizeof(res));
	withseq[8] = (struct kv){ "seq", S, "7", 0 };
	msgpack_sbuffer_clear(&sb);
	pack_kvs(&sb, withseq, 9, NULL);
	assert_int_equal(result_decode(sb.data, sb.size, &r, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "seq"));
	msgpack_sbuffer_destroy(&sb);
}

static void
test_event(void **state)
{
	struct event e, d;
	msgpack_sbuffer sb;
	struct mu_err err;

	(void)state;
	memset(&e, 0, sizeof(e));
	strcpy(e.job, "j1");
	strcpy(e.host, "h1");
	e.seq = 3, e.at = 99, e.event = EV_PROGRESS, e.has_pct = true, e.pct = 40;
	e.text = (struct wire_str){ "half", 4 };
	msgpack_sbuffer_init(&sb);
	assert_int_equal(event_encode(&e, &sb, &err), MU_OK);
	assert_int_equal(event_decode(sb.data, sb.size, &d, &err), MU_OK);
	assert_int_equal(d.event, EV_PROGRESS);
	assert_true(d.has_pct);
	assert_int_equal(d.pct, 40);
	assert_int_equal(d.seq, 3);
	assert_memory_equal(d.text.ptr, "half", 4);
	wire_doc_free(&d.doc);
	e.pct = 101;
	assert_int_equal(event_encode(&e, &sb, &err), MU_EINVAL);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_status(void **state)
{
	struct status s, d;
	msgpack_sbuffer sb;
	struct mu_err err;

	(void)state;
	memset(&s, 0, sizeof(s));
	strcpy(s.host, "web1");
	s.online = false;
	s.reason = (struct wire_str){ "lost", 4 };
	strcpy(s.version, "0.1.0");
	strcpy(s.channel, "stable");
	s.ngroups = 2;
	strcpy(s.groups[0], "web");
	strcpy(s.groups[1], "eu");
	s.started_at = 5, s.at = 6;
	msgpack_sbuffer_init(&sb);
	/* No certificate: we never send what we would refuse. */
	assert_int_equal(status_encode(&s, &sb, &err), MU_EINVAL);
	s.cert_der = (struct wire_bytes){ (const uint8_t *)"\x30\x03\x02\x01\x01", 5 };
	assert_int_equal(status_encode(&s, &sb, &err), MU_OK);
	assert_int_equal(status_decode(sb.data, sb.size, &d, &err), MU_OK);
	assert_false(d.online);
	assert_int_equal(d.ngroups, 2);
	assert_string_equal(d.groups[1], "eu");
	assert_int_equal(d.cert_der.len, 5);
	assert_memory_equal(d.cert_der.ptr, "\x30\x03\x02\x01\x01", 5);
	assert_memory_equal(d.reason.ptr, "lost", 4);
	wire_doc_free(&d.doc);
	strcpy(s.groups[1], "EU");
	assert_int_equal(status_encode(&s, &sb, &err), MU_EINVAL);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_agent_envelope(void **state)
{
	static const char fpr[] = "0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef";
	static const uint8_t sig[72] = { 0x30, 0x46 }, body[] = { 0x81, 0xa1, 'v', 1 };
	struct agent_envelope e;
	msgpack_sbuffer sb;
	struct mu_err err;

	(void)state;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(agent_envelope_encode(fpr, sig, sizeof(sig), body, sizeof(body),
	    &sb, &err), MU_OK);
	assert_int_equal(agent_envelope_decode(sb.data, sb.size, &e, &err), MU_OK);
	assert_string_equal(e.cert, fpr);
	assert_int_equal(e.sig.len, sizeof(sig));
	assert_memory_equal(e.sig.ptr, sig, sizeof(sig));
	assert_int_equal(e.body.len, sizeof(body));
	wire_doc_free(&e.doc);
	/* Refused on the way out as on the way in. */
	sb.size = 0;
	assert_int_equal(agent_envelope_encode("0123", sig, sizeof(sig), body, sizeof(body),
	    &sb, &err), MU_EINVAL);
	assert_int_equal(agent_envelope_encode(fpr, sig, 0, body, sizeof(body), &sb, &err),
	    MU_EINVAL);
	assert_int_equal(agent_envelope_encode(fpr, sig, WIRE_MAX_HOSTSIG + 1, body,
	    sizeof(body), &sb, &err), MU_EINVAL);
	assert_int_equal(agent_envelope_encode(fpr, sig, sizeof(sig), body, 0, &sb, &err),
	    MU_EINVAL);
	assert_int_equal(sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_manifests(void **state)
{
	struct module_manifest m, dm;
	struct release_manifest r, dr;
	msgpack_sbuffer sb;
	struct mu_err err = { "" };

	(void)state;
	memset(&m, 0, sizeof(m));
	strcpy(m.name, "os.release");
	strcpy(m.version, "1.2.3");
	m.abi = 1;
	strcpy(m.sha256, SHA_A);
	m.size = 12345, m.published_at = 777;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(module_manifest_encode(&m, &sb, &err), MU_OK);
	assert_int_equal(module_manifest_decode(sb.data, sb.size, &dm, &err), MU_OK);
	assert_string_equal(dm.name, "os.release");
	assert_int_equal(dm.abi, 1);
	assert_int_equal(dm.size, 12345);
	assert_int_equal(dm.published_at, 777);
	assert_false(dm.net);
	/* Nothing declared: no "net" key at all ("v" and 7, as before it). */
	assert_int_equal((unsigned char)sb.data[0], 0x80 | 8);
	wire_doc_free(&dm.doc);
	msgpack_sbuffer_clear(&sb);
	m.net = true;
	assert_int_equal(module_manifest_encode(&m, &sb, &err), MU_OK);
	assert_int_equal((unsigned char)sb.data[0], 0x80 | 9);
	assert_int_equal(module_manifest_decode(sb.data, sb.size, &dm, &err), MU_OK);
	assert_true(dm.net);
	assert_int_equal(dm.nwithdrawn, 0);
	wire_doc_free(&dm.doc);
	m.net = false;
	/* What it withdraws, when it says (muster module withdraw). */
	msgpack_sbuffer_clear(&sb);
	m.nwithdrawn = 2;
	strcpy(m.withdrawn[0], SHA_A);
	memset(m.withdrawn[1], 'b', SHA256_HEX_LEN);
	m.withdrawn[1][SHA256_HEX_LEN] = '\0';
	assert_int_equal(module_manifest_encode(&m, &sb, &err), MU_OK);
	assert_int_equal(module_manifest_decode(sb.data, sb.size, &dm, &err), MU_OK);
	assert_int_equal(dm.nwithdrawn, 2);
	assert_string_equal(dm.withdrawn[0], SHA_A);
	assert_string_equal(dm.withdrawn[1], m.withdrawn[1]);
	wire_doc_free(&dm.doc);
	m.withdrawn[1][3] = 'X';
	msgpack_sbuffer_clear(&sb);
	assert_int_equal(module_manifest_encode(&m, &sb, &err), MU_EINVAL);
	m.nwithdrawn = WIRE_MAX_WITHDRAWN + 1;
	assert_int_equal(module_manifest_encode(&m, &sb, &err), MU_EINVAL);
	m.nwithdrawn = 0;
	msgpack_sbuffer_clear(&sb);
	assert_int_equal(module_manifest_encode(&m, &sb, &err), MU_OK);
	/* A module manifest is not a release manifest. */
	assert_int_equal(release_manifest_decode(sb.data, sb.size, &dr, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "'kind'"));

	memset(&r, 0, sizeof(r));
	strcpy(r.channel, "canary");
	strcpy(r.version, "0.2.0");
	strcpy(r.agent_sha256, SHA_A);
	strcpy(r.runner_sha256, SHA_A);
	r.agent_size = 1, r.runner_size = 2, r.published_at = 3, r.rollout = 50;
	msgpack_sbuffer_clear(&sb);
	assert_int_equal(release_manifest_encode(&r, &sb, &err), MU_OK);
	assert_int_equal(release_manifest_decode(sb.data, sb.size, &dr, &err), MU_OK);
	assert_string_equal(dr.channel, "canary");
	assert_int_equal(dr.rollout, 50);
	wire_doc_free(&dr.doc);
	r.rollout = 101;
	assert_int_equal(release_manifest_encode(&r, &sb, &err), MU_EINVAL);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_artifacts(void **state)
{
	struct signed_pointer p = { .manifest = { (const uint8_t *)"MAN", 3 },
	    .sig = { (const uint8_t *)"SIG", 3 } }, dp;
	struct module_artifact a = { .manifest = { (const uint8_t *)"MAN", 3 },
	    .sig = { (const uint8_t *)"SIG", 3 }, .so = { (const uint8_t *)"\x7f" "ELF", 4 } }, da;
	struct binary_artifact b = { .data = { (const uint8_t *)"bin", 3 } }, db;
	msgpack_sbuffer sb;
	struct mu_err err = { "" };

	(void)state;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(pointer_encode(&p, &sb, &err), MU_OK);
	assert_int_equal(pointer_decode(sb.data, sb.size, &dp, &err), MU_OK);
	assert_memory_equal(dp.manifest.ptr, "MAN", 3);
	assert_memory_equal(dp.sig.ptr, "SIG", 3);
	wire_doc_free(&dp.doc);
	/* A pointer lacks 'so': not a module artifact. */
	assert_int_equal(module_artifact_decode(sb.data, sb.size, &da, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "'so'"));
	msgpack_sbuffer_clear(&sb);
	assert_int_equal(module_artifact_encode(&a, &sb, &err), MU_OK);
	assert_int_equal(module_artifact_decode(sb.data, sb.size, &da, &err), MU_OK);
	assert_int_equal(da.so.len, 4);
	wire_doc_free(&da.doc);
	msgpack_sbuffer_clear(&sb);
	assert_int_equal(binary_artifact_encode(&b, &sb, &err), MU_OK);
	assert_int_equal(binary_artifact_decode(sb.data, sb.size, &db, &err), MU_OK);
	assert_memory_equal(db.data.ptr, "bin", 3);
	wire_doc_free(&db.doc);
	p.sig.len = 0;
	assert_int_equal(pointer_encode(&p, &sb, &err), MU_EINVAL);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_selftest(void **state)
{
	struct selftest_request q = { .host = "web1", .nonce = "00112233445566778899aabbccddeeff",
	    .version = "0.2.0" }, dq;
	struct selftest_verdict v = { .host = "web1", .nonce = "00112233445566778899aabbccddeeff",
	    .ok = true }, dv;
	msgpack_sbuffer sb;
	struct mu_err err = { "" };

	(void)state;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(selftest_request_encode(&q, &sb, &err), MU_OK);
	assert_int_equal(selftest_request_decode(sb.data, sb.size, &dq, &err), MU_OK);
	assert_string_equal(dq.nonce, q.nonce);
	assert_string_equal(dq.version, "0.2.0");
	wire_doc_free(&dq.doc);
	msgpack_sbuffer_clear(&sb);
	assert_int_equal(selftest_verdict_encode(&v, &sb, &err), MU_OK);
	assert_int_equal(selftest_verdict_decode(sb.data, sb.size, &dv, &err), MU_OK);
	assert_true(dv.ok);
	assert_null(dv.reason.ptr);
	wire_doc_free(&dv.doc);
	strcpy(q.nonce, "short");
	assert_int_equal(selftest_request_encode(&q, &sb, &err), MU_EINVAL);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_big_string_bound(void **state)
{
	size_t n = WIRE_MAX_STR + 1;
	char *big = malloc(n);
	struct kv kv = { "operator", S, big, n };
	struct mu_err err = { "" };

	(void)state;
	memset(big, 'x', n);
	assert_job_refused(&kv, "over the 65536 byte limit");
	(void)err;
	free(big);
}

/* ---- parent <-> network process frames (priv_msg) ---------------------- */

#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* Encode m, decode it again, compare every field. */
static void
assert_priv_roundtrip(const struct priv_msg *m)
{
	msgpack_sbuffer sb;
	struct priv_msg d;
	struct mu_err err = { "" };

	msgpack_sbuffer_init(&sb);
	if (priv_msg_encode(m, &sb, &err) != MU_OK)
		fail_msg("encode %s: %s", priv_type_name(m->type), err.msg);
	if (priv_msg_decode(sb.data, sb.size, &d, &err) != MU_OK)
		fail_msg("decode %s: %s", priv_type_name(m->type), err.msg);
	assert_int_equal(d.type, m->type);
	assert_string_equal(d.job, m->job);
	assert_string_equal(d.name, m->name);
	assert_string_equal(d.sha256, m->sha256);
	assert_string_equal(d.local, m->local);
	assert_string_equal(d.topic, m->topic);
	assert_int_equal(d.source, m->source);
	assert_int_equal(d.reason.ptr == NULL, m->reason.ptr == NULL);
	assert_int_equal(d.reason.len, m->reason.len);
	if (m->reason.len)
		assert_memory_equal(d.reason.ptr, m->reason.ptr, m->reason.len);
	assert_int_equal(d.payload.len, m->payload.len);
	if (m->payload.len)
		assert_memory_equal(d.payload.ptr, m->payload.ptr, m->payload.len);
	wire_doc_free(&d.doc);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_priv_each_type(void **state)
{
	static const uint8_t body[] = { 0x81, 0xa1, 'v', 0x01 };
	struct priv_msg m;
	int t;

	(void)state;
	/* The run and result frames; the self-update ones have their own test. */
	for (t = PRIV_JOB; t <= PRIV_STOP; t++) {
		memset(&m, 0, sizeof(m));
		m.type = (enum priv_type)t;
		switch (m.type) {
		case PRIV_JOB:
			strcpy(m.topic, "muster/v1/hosts/web1/jobs");
			m.payload = (struct wire_bytes){ body, sizeof(body) };
			break;
		case PRIV_MODULE:
			strcpy(m.job, "job-1");
			m.source = PRIV_SRC_CACHE;
			strcpy(m.sha256, SHA_A);
			m.reason = (struct wire_str){ "fetched", 7 };
			break;
		case PRIV_SPOOLED:
			strcpy(m.job, "job-1");
			break;
		case PRIV_RESULT:
		case PRIV_EVENT:
			strcpy(m.job, "job-1");
			m.payload = (struct wire_bytes){ body, sizeof(body) };
			break;
		case PRIV_MODULE_WANT:
			strcpy(m.job, "job-1");
			strcpy(m.name, "os.release");
			strcpy(m.sha256, SHA_A);
			strcpy(m.local, SHA_B);
			break;
		default:	/* poke, stop: no fields */
			break;
		}
		assert_priv_roundtrip(&m);
		assert_string_not_equal(priv_type_name(m.type), "unknown");
	}
	/* The optional parts left out. */
	memset(&m, 0, sizeof(m));
	m.type = PRIV_MODULE_WANT;
	strcpy(m.job, "job-1");
	strcpy(m.name, "os.release");
	assert_priv_roundtrip(&m);
	memset(&m, 0, sizeof(m));
	m.type = PRIV_MODULE;
	strcpy(m.job, "job-1");
	m.source = PRIV_SRC_NONE;
	assert_priv_roundtrip(&m);
	assert_string_equal(priv_type_name((enum priv_type)0), "unknown");
	assert_string_equal(priv_type_name(PRIV_NTYPES), "unknown");
}

/* Decode kvs minus skip; expect a refusal whose reason holds want. */
static void
assert_priv_refused(const struct kv *kvs, size_t n, const char *skip, const char *want)
{
	msgpack_sbuffer sb;
	struct priv_msg d;
	struct mu_err err = { "" };

	msgpack_sbuffer_init(&sb);
	pack_kvs(&sb, kvs, n, skip);
	if (priv_msg_decode(sb.data, sb.size, &d, &err) == MU_OK)
		fail_msg("accepted without '%s'", skip ? skip : "(nothing)");
	if (want != NULL && strstr(err.msg, want) == NULL)
		fail_msg("reason '%s' does not contain '%s'", err.msg, want);
	msgpack_sbuffer_destroy(&sb);
}

static int
priv_decode_kvs(const struct kv *kvs, size_t n, struct priv_msg *d)
{
	msgpack_sbuffer sb;
	struct mu_err err = { "" };
	int rc;

	msgpack_sbuffer_init(&sb);
	pack_kvs(&sb, kvs, n, NULL);
	rc = priv_msg_decode(sb.data, sb.size, d, &err);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static const struct kv priv_job[] = {
	{ "v", U, NULL, 1 }, { "t", S, "job", 0 },
	{ "topic", S, "muster/v1/all/jobs", 0 }, { "payload", BIN, "\x80", 1 },
};
static const struct kv priv_module[] = {
	{ "v", U, NULL, 1 }, { "t", S, "module", 0 }, { "job", S, "job-1", 0 },
	{ "source", S, "local", 0 }, { "sha256", S, SHA_A, 0 },
};
static const struct kv priv_spooled[] = {
	{ "v", U, NULL, 1 }, { "t", S, "spooled", 0 }, { "job", S, "job-1", 0 },
};
static const struct kv priv_result[] = {
	{ "v", U, NULL, 1 }, { "t", S, "result", 0 }, { "job", S, "job-1", 0 },
	{ "payload", BIN, "\x80", 1 },
};
static const struct kv priv_event[] = {
	{ "v", U, NULL, 1 }, { "t", S, "event", 0 }, { "job", S, "job-1", 0 },
	{ "payload", BIN, "\x80", 1 },
};
static const struct kv priv_want[] = {
	{ "v", U, NULL, 1 }, { "t", S, "want", 0 }, { "job", S, "job-1", 0 },
	{ "name", S, "os.release", 0 },
};

#define PRIV_KVS(a)	a, sizeof(a) / sizeof(a[0])

/* Each required field, left out, is refused and named. */
static void
test_priv_missing_fields(void **state)
{
	static const struct {
		const struct kv *kvs;
		size_t n;
	} all[] = {
		{ PRIV_KVS(priv_job) }, { PRIV_KVS(priv_module) }, { PRIV_KVS(priv_spooled) },
		{ PRIV_KVS(priv_result) }, { PRIV_KVS(priv_event) }, { PRIV_KVS(priv_want) },
	};
	struct priv_msg d;
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		/* Whole, it decodes: the refusals below are the missing key's. */
		assert_int_equal(priv_decode_kvs(all[i].kvs, all[i].n, &d), MU_OK);
		wire_doc_free(&d.doc);
		for (k = 0; k < all[i].n; k++) {
			/* The module answer's sha256 is checked against its source:
			 * its absence is refused by that rule (below). */
			const char *key = all[i].kvs[k].key;

			assert_priv_refused(all[i].kvs, all[i].n, key,
			    strcmp(key, "sha256") == 0 ? "exactly when" :
			    strcmp(key, "v") == 0 || strcmp(key, "t") == 0 ? NULL : key);
		}
	}
}

/* Which side may send a type is the agent's rule (priv_rules[] in
 * agent/common/priv_send.c), not the codec's: a result decodes wherever it comes from.  What a type does not
 * carry is ignored on decode and refused on encode. */
static void
test_priv_direction_and_extras(void **state)
{
	struct kv kvs[] = {
		{ "v", U, NULL, 1 }, { "t", S, "spooled", 0 }, { "job", S, "job-1", 0 },
		{ "local", S, SHA_A, 0 }, { "payload", BIN, "xyz", 3 },
	};
	struct priv_msg d, m;
	msgpack_sbuffer sb;
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(priv_decode_kvs(PRIV_KVS(priv_result), &d), MU_OK);
	assert_int_equal(d.type, PRIV_RESULT);
	wire_doc_free(&d.doc);
	assert_int_equal(priv_decode_kvs(kvs, 5, &d), MU_OK);
	assert_int_equal(d.type, PRIV_SPOOLED);
	assert_string_equal(d.local, "");
	assert_null(d.payload.ptr);
	wire_doc_free(&d.doc);
	/* An encoder never writes a field its type does not have. */
	memset(&m, 0, sizeof(m));
	m.type = PRIV_SPOOLED;
	strcpy(m.job, "job-1");
	strcpy(m.local, SHA_A);
	msgpack_sbuffer_init(&sb);
	assert_int_equal(priv_msg_encode(&m, &sb, &err), MU_EINVAL);
	m.type = (enum priv_type)0;
	assert_int_equal(priv_msg_encode(&m, &sb, &err), MU_EINVAL);
	m.type = PRIV_NTYPES;
	assert_int_equal(priv_msg_encode(&m, &sb, &err), MU_EINVAL);
	msgpack_sbuffer_destroy(&sb);
	/* Unknown or mistyped "t". */
	kvs[1] = (struct kv){ "t", S, "hello", 0 };
	assert_priv_refused(kvs, 3, NULL, NULL);
	kvs[1] = (struct kv){ "t", U, NULL, PRIV_SPOOLED };
	assert_priv_refused(kvs, 3, NULL, NULL);
	kvs[1] = (struct kv){ "t", S, "unknown", 0 };
	assert_priv_refused(kvs, 3, NULL, NULL);
}

/* A module answer names a build exactly when it has one. */
static void
test_priv_module_source(void **state)
{
	struct kv kvs[] = {
		{ "v", U, NULL, 1 }, { "t", S, "module", 0 }, { "job", S, "job-1", 0 },
		{ "source", S, "none", 0 }, { "sha256", S, SHA_A, 0 },
		{ "reason", S, "not published", 0 },
	};
	struct priv_msg m;
	msgpack_sbuffer sb;
	struct mu_err err = { "" };

	(void)state;
	assert_priv_refused(kvs, 6, NULL, "exactly when");
	kvs[3].s = "cache";
	assert_priv_refused(kvs, 6, "sha256", "exactly when");
	kvs[3].s = "broker";
	assert_priv_refused(kvs, 6, NULL, NULL);
	kvs[3].s = "none";
	kvs[4] = (struct kv){ "sha256", S, "AAAA", 0 };
	assert_priv_refused(kvs, 6, NULL, "sha256");
	kvs[3].s = "local";
	kvs[4] = (struct kv){ "sha256", S, SHA_A, 0 };
	kvs[5] = (struct kv){ "reason", BIN, "x", 1 };
	assert_priv_refused(kvs, 6, NULL, "reason");
	/* The encoder holds the same rule. */
	memset(&m, 0, sizeof(m));
	m.type = PRIV_MODULE;
	strcpy(m.job, "job-1");
	m.source = PRIV_SRC_NONE;
	strcpy(m.sha256, SHA_A);
	msgpack_sbuffer_init(&sb);
	assert_int_equal(priv_msg_encode(&m, &sb, &err), MU_EINVAL);
	m.source = PRIV_SRC_CACHE;
	m.sha256[0] = '\0';
	assert_int_equal(priv_msg_encode(&m, &sb, &err), MU_EINVAL);
	msgpack_sbuffer_destroy(&sb);
}

/* A payload over WIRE_MAX_BIN is refused both ways. */
static void
test_priv_oversized(void **state)
{
	size_t n = WIRE_MAX_BIN + 1;
	char *big = calloc(1, n);
	struct kv kvs[] = {
		{ "v", U, NULL, 1 }, { "t", S, "result", 0 }, { "job", S, "job-1", 0 },
		{ "payload", BIN, big, n },
	};
	struct priv_msg m;
	msgpack_sbuffer sb;
	struct mu_err err = { "" };

	(void)state;
	assert_non_null(big);
	assert_priv_refused(kvs, 4, NULL, "payload");
	memset(&m, 0, sizeof(m));
	m.type = PRIV_RESULT;
	strcpy(m.job, "job-1");
	m.payload = (struct wire_bytes){ (const uint8_t *)big, n };
	msgpack_sbuffer_init(&sb);
	assert_int_equal(priv_msg_encode(&m, &sb, &err), MU_EINVAL);
	assert_int_equal(sb.size, 0);
	/* At the limit it passes. */
	m.payload.len = WIRE_MAX_BIN;
	assert_int_equal(priv_msg_encode(&m, &sb, &err), MU_OK);
	msgpack_sbuffer_destroy(&sb);
	free(big);
}

/* The fuzz seeds say what they are: ok-* decode, bad-* are refused (else
 * the replay test of fuzz_priv_msg would pass on seeds that test nothing). */
static void
test_priv_corpus(void **state)
{
	const char *src = getenv("MUSTER_SOURCE_DIR");
	char dir[4096], path[4352];
	struct dirent *de;
	struct priv_msg d;
	struct mu_err err;
	uint8_t buf[8192];
	size_t len, nok = 0, nbad = 0;
	FILE *f;
	DIR *dp;
	int rc;

	(void)state;
	if (src == NULL)
		skip();
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/fuzz_priv_msg", src);
	assert_non_null(dp = opendir(dir));
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_non_null(f = fopen(path, "rb"));
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		rc = priv_msg_decode(buf, len, &d, &err);
		if (rc == MU_OK)
			wire_doc_free(&d.doc);
		if (strncmp(de->d_name, "ok-", 3) == 0) {
			if (rc != MU_OK)
				fail_msg("%s refused: %s", de->d_name, err.msg);
			nok++;
		} else if (strncmp(de->d_name, "bad-", 4) == 0) {
			if (rc == MU_OK)
				fail_msg("%s accepted", de->d_name);
			nbad++;
		}
	}
	closedir(dp);
	assert_true(nok >= 8 && nbad >= 8);
}

/* The self-update frames between musterd's parent and network process:
 * each round-trips, and a frame without its required field is refused. */
static void
test_priv_update(void **state)
{
	static const uint8_t ptr[] = { 0x81, 0xa1, 'v', 0x01 };
	struct priv_msg m, d;
	msgpack_sbuffer sb;
	struct mu_err err;
	int t;

	(void)state;
	for (t = PRIV_RELEASE; t < PRIV_NTYPES; t++) {
		memset(&m, 0, sizeof(m));
		m.type = (enum priv_type)t;
		snprintf(m.job, sizeof(m.job), "upd-1");
		m.reason = (struct wire_str){ "same version", 12 };
		m.payload = (struct wire_bytes){ ptr, sizeof(ptr) };
		snprintf(m.name, sizeof(m.name), "staging");
		snprintf(m.version, sizeof(m.version), "1.2.3");
		m.n = PRIV_STATUS_GOODBYE;
		msgpack_sbuffer_init(&sb);
		assert_int_equal(priv_msg_encode(&m, &sb, &err), MU_OK);
		assert_int_equal(priv_msg_decode(sb.data, sb.size, &d, &err), MU_OK);
		assert_int_equal(d.type, t);
		if (t == PRIV_RELEASE_STATE) {
			assert_string_equal(d.name, "staging");
			assert_string_equal(d.version, "1.2.3");
			assert_int_equal(d.reason.len, 12);
		}
		if (t == PRIV_STATUS)
			assert_int_equal(d.n, PRIV_STATUS_GOODBYE);
		if (t == PRIV_NO_UPDATE || t == PRIV_UPDATE_CHECK)
			assert_string_equal(d.job, "upd-1");
		if (t == PRIV_NO_UPDATE)
			assert_int_equal(d.reason.len, 12);
		if (t == PRIV_RELEASE || t == PRIV_STATUS || t == PRIV_VERDICT ||
		    t == PRIV_SELFTEST || t == PRIV_FACTS)
			assert_memory_equal(d.payload.ptr, ptr, sizeof(ptr));
		wire_doc_free(&d.doc);
		msgpack_sbuffer_destroy(&sb);
	}
	/* A status names one of the three presences; a relstate a version. */
	memset(&m, 0, sizeof(m));
	m.type = PRIV_STATUS;
	m.n = PRIV_NSTATUS;
	m.payload = (struct wire_bytes){ ptr, sizeof(ptr) };
	msgpack_sbuffer_init(&sb);
	assert_int_not_equal(priv_msg_encode(&m, &sb, &err), MU_OK);
	msgpack_sbuffer_destroy(&sb);
	memset(&m, 0, sizeof(m));
	m.type = PRIV_RELEASE_STATE;
	snprintf(m.name, sizeof(m.name), "refused");
	snprintf(m.version, sizeof(m.version), "1 2");
	msgpack_sbuffer_init(&sb);
	assert_int_not_equal(priv_msg_encode(&m, &sb, &err), MU_OK);
	msgpack_sbuffer_destroy(&sb);
	/* noupdate without its reason: not encoded, and not decoded. */
	memset(&m, 0, sizeof(m));
	m.type = PRIV_NO_UPDATE;
	snprintf(m.job, sizeof(m.job), "upd-1");
	msgpack_sbuffer_init(&sb);
	assert_int_not_equal(priv_msg_encode(&m, &sb, &err), MU_OK);
	msgpack_sbuffer_destroy(&sb);
	{
		/* {"v":1,"t":"noupdate","job":"upd-1"} */
		static const uint8_t bad[] = { 0x83, 0xa1, 'v', 0x01, 0xa1, 't', 0xa8,
		    'n', 'o', 'u', 'p', 'd', 'a', 't', 'e', 0xa3, 'j', 'o', 'b', 0xa5,
		    'u', 'p', 'd', '-', '1' };

		assert_int_not_equal(priv_msg_decode(bad, sizeof(bad), &d, &err), MU_OK);
	}
}

/* ---- job announce ------------------------------------------------------- */

static const struct kv ann_run[] = {
	{ "v", U, NULL, 1 },
	{ "kind", S, "announce", 0 },
	{ "id", S, "job-1", 0 },
	{ "aud", S, "muster/v1", 0 },
	{ "issued_at", U, NULL, 1700000000000ull },
	{ "not_after", U, NULL, 1700000060000ull },
	{ "operator", S, "alice", 0 },
	{ "target", S, "group/web", 0 },
	{ "filter", RAW, "\x91\x93\xa5os.id\xa2==\xa6" "debian", 18 },
	{ "job_kind", S, "run", 0 },
	{ "module", S, "os.release", 0 },
	{ "args", RAW, "\x81\xa2id\xa6" "debian", 11 },
	{ "timeout_ms", U, NULL, 5000 },
	{ "expected", RAW, "\x92\xa4web1\xa4web2", 11 },
};
#define NANN_RUN (sizeof(ann_run) / sizeof(ann_run[0]))

/* Replace one key's value (or drop it: repl->t == NIL and skip) and decode. */
static int
decode_ann_kvs(const struct kv *repl, const char *skip, struct mu_err *err)
{
	struct kv kvs[NANN_RUN];
	struct announce a;
	msgpack_sbuffer sb;
	size_t i;
	int rc;

	memcpy(kvs, ann_run, sizeof(kvs));
	for (i = 0; repl && i < NANN_RUN; i++)
		if (strcmp(kvs[i].key, repl->key) == 0)
			kvs[i] = *repl;
	msgpack_sbuffer_init(&sb);
	pack_kvs(&sb, kvs, NANN_RUN, skip);
	rc = announce_decode(sb.data, sb.size, &a, err);
	if (rc == MU_OK)
		wire_doc_free(&a.doc);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static void
assert_ann_refused(const struct kv *repl, const char *skip, const char *want)
{
	struct mu_err err = { "" };

	assert_int_equal(decode_ann_kvs(repl, skip, &err), MU_EINVAL);
	if (strstr(err.msg, want) == NULL)
		fail_msg("reason '%s' does not contain '%s'", err.msg, want);
}

/* A hand-made announce decodes to every field; encode(decode(x)) decodes
 * to the same; each rule refuses with a reason naming the key. */
static void
test_announce(void **state)
{
	char names[3][NAME_MAX_LEN + 1] = { "db1", "web1", "web2" };
	char h[NAME_MAX_LEN + 1];
	struct announce a, b;
	struct mu_err err;
	msgpack_sbuffer sb, sb2;

	(void)state;
	msgpack_sbuffer_init(&sb);
	pack_kvs(&sb, ann_run, NANN_RUN, NULL);
	assert_int_equal(announce_decode(sb.data, sb.size, &a, &err), MU_OK);
	assert_string_equal(a.id, "job-1");
	assert_string_equal(a.aud, "muster/v1");
	assert_int_equal(a.job_kind, JOB_RUN);
	assert_string_equal(a.module, "os.release");
	assert_int_equal(a.target.kind, TARGET_GROUP);
	assert_string_equal(a.target.name, "web");
	assert_non_null(a.args);
	assert_non_null(a.filter);
	assert_int_equal(a.timeout_ms, 5000);
	assert_int_equal(a.not_after, 1700000060000ull);
	assert_int_equal(a.nexpected, 2);
	announce_host(&a, 1, h);
	assert_string_equal(h, "web2");

	/* Round trip with another expected set (a borrows from sb: kept
	 * until a is encoded). */
	msgpack_sbuffer_init(&sb2);
	assert_int_equal(announce_encode(&a, names, 3, &sb2, &err), MU_OK);
	wire_doc_free(&a.doc);
	msgpack_sbuffer_destroy(&sb);
	sb = sb2;
	assert_int_equal(announce_decode(sb.data, sb.size, &b, &err), MU_OK);
	assert_int_equal(b.nexpected, 3);
	announce_host(&b, 0, h);
	assert_string_equal(h, "db1");
	assert_string_equal(b.module, "os.release");
	assert_non_null(b.args);
	assert_non_null(b.filter);
	assert_int_equal(b.operator_.len, 5);
	wire_doc_free(&b.doc);
	msgpack_sbuffer_destroy(&sb);

	/* The encoder refuses what the decoder would. */
	memset(&a, 0, sizeof(a));
	snprintf(a.id, sizeof(a.id), "job-2");
	snprintf(a.aud, sizeof(a.aud), "muster/v1");
	a.job_kind = JOB_PING;
	a.target.kind = TARGET_ALL;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(announce_encode(&a, names, 3, &sb, &err), MU_OK);
	assert_int_equal(announce_encode(&a, names + 1, 0, &sb, &err), MU_OK);
	snprintf(names[2], sizeof(names[2]), "web1");	/* not unique */
	assert_int_equal(announce_encode(&a, names, 3, &sb, &err), MU_EINVAL);
	snprintf(names[2], sizeof(names[2]), "a1");	/* not sorted */
	assert_int_equal(announce_encode(&a, names, 3, &sb, &err), MU_EINVAL);
	a.job_kind = JOB_CANCEL;
	assert_int_equal(announce_encode(&a, names, 2, &sb, &err), MU_EINVAL);
	msgpack_sbuffer_destroy(&sb);

	/* Decoder refusals, one rule each. */
	assert_int_equal(decode_ann_kvs(NULL, NULL, &err), MU_OK);
	assert_ann_refused(&(struct kv){ "kind", S, "job", 0 }, NULL, "kind");
	assert_ann_refused(NULL, "aud", "aud");
	assert_ann_refused(NULL, "expected", "expected");
	assert_ann_refused(NULL, "module", "module");
	assert_ann_refused(NULL, "job_kind", "job_kind");
	assert_ann_refused(&(struct kv){ "job_kind", S, "cancel", 0 }, NULL, "job_kind");
	assert_ann_refused(&(struct kv){ "id", S, "invalid-0011223344556677", 0 }, NULL,
	    "reserved");
	assert_ann_refused(&(struct kv){ "target", S, "hosts/x", 0 }, NULL, "target");
	assert_ann_refused(&(struct kv){ "expected", RAW, "\x92\xa4web2\xa4web1", 11 },
	    NULL, "sorted");
	assert_ann_refused(&(struct kv){ "expected", RAW, "\x92\xa4web1\xa4web1", 11 },
	    NULL, "sorted");
	assert_ann_refused(&(struct kv){ "expected", RAW, "\x91\xa4W/b1", 6 }, NULL,
	    "host name");
	assert_ann_refused(&(struct kv){ "expected", RAW, "\x91\x01", 2 }, NULL,
	    "host name");
	assert_ann_refused(&(struct kv){ "filter", RAW, "\x91\x93\xa5os.id\xa2=~\xa1x", 13 },
	    NULL, "filter");
	assert_ann_refused(&(struct kv){ "timeout_ms", U, NULL, (uint64_t)UINT32_MAX + 1 },
	    NULL, "timeout_ms");
}

/* At most WIRE_MAX_EXPECTED hosts: the bound is encoded and decoded, one
 * more is refused by both, and the body of the largest fits its envelope. */
static void
test_announce_bound(void **state)
{
	char (*names)[NAME_MAX_LEN + 1];
	struct job_envelope env;
	struct announce a, d;
	msgpack_sbuffer sb, eb;
	struct mu_err err;
	uint8_t sig[ED25519_SIG_LEN] = { 0 };
	size_t i;

	(void)state;
	names = calloc(WIRE_MAX_EXPECTED + 1, sizeof(*names));
	assert_non_null(names);
	/* Longest names: a worst case for the body bound. */
	for (i = 0; i <= WIRE_MAX_EXPECTED; i++)
		snprintf(names[i], sizeof(names[i]), "h%08zu%.54s", i,
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	memset(&a, 0, sizeof(a));
	snprintf(a.id, sizeof(a.id), "job-3");
	snprintf(a.aud, sizeof(a.aud), "muster/v1");
	a.job_kind = JOB_VERSION;
	a.target.kind = TARGET_ALL;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(announce_encode(&a, names, WIRE_MAX_EXPECTED + 1, &sb, &err),
	    MU_EINVAL);
	assert_int_equal(announce_encode(&a, names, WIRE_MAX_EXPECTED, &sb, &err), MU_OK);
	assert_int_equal(announce_decode(sb.data, sb.size, &d, &err), MU_OK);
	assert_int_equal(d.nexpected, WIRE_MAX_EXPECTED);
	wire_doc_free(&d.doc);
	/* Over the job bound, within the announce's. */
	assert_true(sb.size > WIRE_MAX_BODY);
	msgpack_sbuffer_init(&eb);
	assert_int_equal(envelope_encode(SHA_A, sig, sb.data, sb.size, &eb, &err),
	    MU_EINVAL);
	assert_int_equal(envelope_encode_max("0011223344556677", sig, sb.data, sb.size,
	    WIRE_MAX_ANNOUNCE, &eb, &err), MU_OK);
	assert_int_equal(envelope_decode(eb.data, eb.size, &env, &err), MU_EINVAL);
	assert_int_equal(envelope_decode_max(eb.data, eb.size, WIRE_MAX_ANNOUNCE, &env,
	    &err), MU_OK);
	assert_int_equal(env.body.len, sb.size);
	wire_doc_free(&env.doc);
	msgpack_sbuffer_destroy(&eb);
	msgpack_sbuffer_destroy(&sb);
	/* One more than the bound, hand-packed, is refused by the decoder. */
	{
		msgpack_packer pk;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 9);
#define KS(k, v) do { msgpack_pack_str(&pk, strlen(k)); msgpack_pack_str_body(&pk, k, strlen(k)); \
	msgpack_pack_str(&pk, strlen(v)); msgpack_pack_str_body(&pk, v, strlen(v)); } while (0)
		msgpack_pack_str(&pk, 1);
		msgpack_pack_str_body(&pk, "v", 1);
		msgpack_pack_uint8(&pk, 1);
		KS("kind", "announce");
		KS("id", "job-4");
		KS("aud", "muster/v1");
		KS("target", "all");
		KS("job_kind", "ping");
#undef KS
		msgpack_pack_str(&pk, 9);
		msgpack_pack_str_body(&pk, "issued_at", 9);
		msgpack_pack_uint8(&pk, 1);
		msgpack_pack_str(&pk, 9);
		msgpack_pack_str_body(&pk, "not_after", 9);
		msgpack_pack_uint8(&pk, 2);
		msgpack_pack_str(&pk, 8);
		msgpack_pack_str_body(&pk, "expected", 8);
		msgpack_pack_array(&pk, WIRE_MAX_EXPECTED + 1);
		for (i = 0; i <= WIRE_MAX_EXPECTED; i++) {
			msgpack_pack_str(&pk, 9);
			msgpack_pack_str_body(&pk, names[i], 9);
		}
		assert_int_equal(announce_decode(sb.data, sb.size, &d, &err), MU_EINVAL);
		assert_non_null(strstr(err.msg, "more than"));
		msgpack_sbuffer_destroy(&sb);
	}
	free(names);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_job_decode_valid),
		cmocka_unit_test(test_job_missing_keys),
		cmocka_unit_test(test_job_aud_and_reserved_ids),
		cmocka_unit_test(test_job_bad_values),
		cmocka_unit_test(test_job_args_depth),
		cmocka_unit_test(test_job_kinds),
		cmocka_unit_test(test_structure_refusals),
		cmocka_unit_test(test_too_many_keys),
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_result),
		cmocka_unit_test(test_result_refusals),
		cmocka_unit_test(test_event),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_manifests),
		cmocka_unit_test(test_artifacts),
		cmocka_unit_test(test_selftest),
		cmocka_unit_test(test_agent_envelope),
		cmocka_unit_test(test_big_string_bound),
		cmocka_unit_test(test_priv_each_type),
		cmocka_unit_test(test_priv_missing_fields),
		cmocka_unit_test(test_priv_direction_and_extras),
		cmocka_unit_test(test_priv_module_source),
		cmocka_unit_test(test_priv_oversized),
		cmocka_unit_test(test_priv_corpus),
		cmocka_unit_test(test_priv_update),
		cmocka_unit_test(test_announce),
		cmocka_unit_test(test_announce_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
