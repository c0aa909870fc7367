/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/facts.c: the fact set and its message (round trip,
 * names, bounds, refusals), the job filter decoder (each operator, value
 * types, malformed filters, bounds), facts_match() (each operator, missing
 * facts, type mismatches, numbers as numbers), and a job body carrying a
 * filter through job_encode/job_decode; the text form of a predicate
 * (muster -F): operators, value typing, refusals, meaning on a host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "facts.h"

/* A predicate to pack: V_STR, V_INT or V_BOOL value; or V_RAW: op only. */
enum vt { V_STR, V_INT, V_BOOL, V_NIL };
struct pv {
	const char *fact, *op;
	enum vt t;
	const char *s;
	int64_t i;
};

#define PS(f, o, v)	{ f, o, V_STR, v, 0 }
#define PI(f, o, v)	{ f, o, V_INT, NULL, v }
#define PB(f, o, v)	{ f, o, V_BOOL, NULL, v }

/* Owns the packed filter and its unpacked tree. */
struct packed {
	msgpack_sbuffer sb;
	msgpack_unpacked up;
};

static const msgpack_object *
pack(struct packed *pk, const struct pv *p, size_t n)
{
	msgpack_packer w;
	size_t i;

	msgpack_sbuffer_init(&pk->sb);
	msgpack_packer_init(&w, &pk->sb, msgpack_sbuffer_write);
	msgpack_pack_array(&w, n);
	for (i = 0; i < n; i++) {
		msgpack_pack_array(&w, 3);
		msgpack_pack_str_with_body(&w, p[i].fact, strlen(p[i].fact));
		msgpack_pack_str_with_body(&w, p[i].op, strlen(p[i].op));
		switch (p[i].t) {
		case V_STR:
			msgpack_pack_str_with_body(&w, p[i].s, strlen(p[i].s));
			break;
		case V_INT:
			msgpack_pack_int64(&w, p[i].i);
			break;
		case V_BOOL:
			if (p[i].i)
				msgpack_pack_true(&w);
			else
				msgpack_pack_false(&w);
			break;
		case V_NIL:
			msgpack_pack_nil(&w);
			break;
		}
	}
	msgpack_unpacked_init(&pk->up);
	assert_int_equal(msgpack_unpack_next(&pk->up, pk->sb.data, pk->sb.size, NULL),
	    MSGPACK_UNPACK_SUCCESS);
	return &pk->up.data;
}

static void
packed_free(struct packed *pk)
{
	msgpack_unpacked_destroy(&pk->up);
	msgpack_sbuffer_destroy(&pk->sb);
}

/* Decode the predicates and say whether they match f; -1 if the filter
 * does not decode (why in err). */
static int
match(const struct facts *f, const struct pv *p, size_t n, struct mu_err *err)
{
	struct fact_filter flt;
	struct packed pk;
	int rc;

	if (filter_decode(pack(&pk, p, n), &flt, err) != MU_OK)
		rc = -1;
	else
		rc = facts_match(f, &flt);
	packed_free(&pk);
	return rc;
}

static int
m1(const struct facts *f, struct pv p)
{
	struct mu_err err = { "" };
	int rc = match(f, &p, 1, &err);

	if (rc < 0)
		fail_msg("filter %s %s refused: %s", p.fact, p.op, err.msg);
	return rc;
}

static struct facts
sample(void)
{
	static const char *const groups[] = { "web", "b7" };
	struct facts f = { 0 };
	struct mu_err err;

	assert_int_equal(facts_set_str(&f, "os.id", "debian", &err), MU_OK);
	assert_int_equal(facts_set_str(&f, "os.version_id", "12", &err), MU_OK);
	assert_int_equal(facts_set_str(&f, "kernel", "6.1.0-13-amd64", &err), MU_OK);
	assert_int_equal(facts_set_int(&f, "mem_mb", 3900, &err), MU_OK);
	assert_int_equal(facts_set_int(&f, "temp", -5, &err), MU_OK);
	assert_int_equal(facts_set_bool(&f, "custom.db", true, &err), MU_OK);
	assert_int_equal(facts_set_list(&f, "groups", groups, 2, &err), MU_OK);
	return f;
}

/* ---- the set and its message ---------------------------------------------- */

static void
test_names(void **state)
{
	static const char *const good[] = { "os.id", "mem_mb", "custom.rack", "a", "a-b.c_d",
		"_x", "x.0" };
	static const char *const bad[] = { "", ".a", "a.", "a..b", "OS.id", "-a", "a.-b",
		"a b", "a/b", "x\xc3\xa9" };
	char longname[FACT_NAME_MAX + 2];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(fact_name_valid(good[i], strlen(good[i])));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(fact_name_valid(bad[i], strlen(bad[i])));
	memset(longname, 'a', sizeof(longname));
	assert_true(fact_name_valid(longname, FACT_NAME_MAX));
	assert_false(fact_name_valid(longname, FACT_NAME_MAX + 1));
}

static void
test_roundtrip(void **state)
{
	struct facts_msg m = { .host = "h1", .at = 1234 }, back;
	struct mu_err err;
	msgpack_sbuffer sb;
	const struct fact *x;

	(void)state;
	m.facts = sample();
	assert_int_equal(m.facts.n, 7);
	msgpack_sbuffer_init(&sb);
	assert_int_equal(facts_encode(&m, &sb, &err), MU_OK);
	/* The bound a gatherer counts with holds; the header is small. */
	assert_true(sb.size <= facts_wire_size(&m.facts) + 64);
	assert_int_equal(facts_decode(sb.data, sb.size, &back, &err), MU_OK);
	assert_string_equal(back.host, "h1");
	assert_int_equal(back.at, 1234);
	assert_true(facts_equal(&m.facts, &back.facts));
	x = facts_get(&back.facts, "temp");
	assert_non_null(x);
	assert_int_equal(x->type, FACT_INT);
	assert_int_equal(x->i, -5);
	x = facts_get(&back.facts, "groups");
	assert_int_equal(x->type, FACT_LIST);
	assert_int_equal(x->nlist, 2);
	assert_string_equal(x->list[1], "b7");
	/* Replacing a fact changes the set; the same value again does not. */
	assert_int_equal(facts_set_int(&back.facts, "mem_mb", 3900, &err), MU_OK);
	assert_true(facts_equal(&m.facts, &back.facts));
	assert_int_equal(facts_set_int(&back.facts, "mem_mb", 4000, &err), MU_OK);
	assert_false(facts_equal(&m.facts, &back.facts));
	facts_free(&back.facts);
	facts_free(&m.facts);
	msgpack_sbuffer_destroy(&sb);
}

/* A facts message with one "facts" value packed by fn. */
static void
facts_msg_with(msgpack_sbuffer *sb, void (*fn)(msgpack_packer *))
{
	msgpack_packer w;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&w, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&w, 4);
	msgpack_pack_str_with_body(&w, "v", 1);
	msgpack_pack_uint8(&w, 1);
	msgpack_pack_str_with_body(&w, "host", 4);
	msgpack_pack_str_with_body(&w, "h1", 2);
	msgpack_pack_str_with_body(&w, "at", 2);
	msgpack_pack_uint8(&w, 1);
	msgpack_pack_str_with_body(&w, "facts", 5);
	fn(&w);
}

static void
pk_float(msgpack_packer *w)
{
	msgpack_pack_map(w, 1);
	msgpack_pack_str_with_body(w, "load", 4);
	msgpack_pack_double(w, 1.5);
}

static void
pk_nested(msgpack_packer *w)
{
	msgpack_pack_map(w, 1);
	msgpack_pack_str_with_body(w, "a", 1);
	msgpack_pack_map(w, 0);
}

static void
pk_badname(msgpack_packer *w)
{
	msgpack_pack_map(w, 1);
	msgpack_pack_str_with_body(w, "A", 1);
	msgpack_pack_int(w, 1);
}

static void
pk_dup(msgpack_packer *w)
{
	msgpack_pack_map(w, 2);
	msgpack_pack_str_with_body(w, "a", 1);
	msgpack_pack_int(w, 1);
	msgpack_pack_str_with_body(w, "a", 1);
	msgpack_pack_int(w, 2);
}

static void
pk_too_many(msgpack_packer *w)
{
	char name[16];
	int i;

	msgpack_pack_map(w, FACTS_MAX + 1);
	for (i = 0; i <= FACTS_MAX; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		msgpack_pack_str_with_body(w, name, strlen(name));
		msgpack_pack_int(w, i);
	}
}

static void
pk_long_str(msgpack_packer *w)
{
	static char s[FACT_STR_MAX + 1];

	memset(s, 'x', sizeof(s));
	msgpack_pack_map(w, 1);
	msgpack_pack_str_with_body(w, "a", 1);
	msgpack_pack_str_with_body(w, s, sizeof(s));
}

static void
pk_long_list(msgpack_packer *w)
{
	int i;

	msgpack_pack_map(w, 1);
	msgpack_pack_str_with_body(w, "a", 1);
	msgpack_pack_array(w, FACT_LIST_MAX + 1);
	for (i = 0; i <= FACT_LIST_MAX; i++)
		msgpack_pack_str_with_body(w, "x", 1);
}

static void
pk_list_of_int(msgpack_packer *w)
{
	msgpack_pack_map(w, 1);
	msgpack_pack_str_with_body(w, "a", 1);
	msgpack_pack_array(w, 1);
	msgpack_pack_int(w, 1);
}

static void
test_decode_refusals(void **state)
{
	static const struct { void (*fn)(msgpack_packer *); const char *why; } cases[] = {
		{ pk_float, "not a string, integer, bool" },
		{ pk_nested, "not a string, integer, bool" },
		{ pk_badname, "not a fact name" },
		{ pk_dup, "twice" },
		{ pk_too_many, "more than 256 facts" },
		{ pk_long_str, "over 1024 bytes" },
		{ pk_long_list, "more than 64 items" },
		{ pk_list_of_int, "not a string" },
	};
	struct facts_msg m;
	struct mu_err err;
	msgpack_sbuffer sb;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		facts_msg_with(&sb, cases[i].fn);
		err.msg[0] = '\0';
		assert_int_equal(facts_decode(sb.data, sb.size, &m, &err), MU_EINVAL);
		if (strstr(err.msg, cases[i].why) == NULL)
			fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, cases[i].why);
		assert_null(m.facts.v);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void
test_set_bounds(void **state)
{
	struct facts f = { 0 };
	struct mu_err err;
	char name[16], big[FACT_STR_MAX + 2];
	int i;

	(void)state;
	for (i = 0; i < FACTS_MAX; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		assert_int_equal(facts_set_int(&f, name, i, &err), MU_OK);
	}
	assert_int_equal(facts_set_int(&f, "one.more", 1, &err), MU_EINVAL);
	assert_int_equal(facts_set_int(&f, "f7", 70, &err), MU_OK);	/* a replacement */
	assert_int_equal(facts_get(&f, "f7")->i, 70);
	facts_free(&f);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(facts_set_str(&f, "a", big, &err), MU_EINVAL);
	assert_int_equal(facts_set_str(&f, "Bad", "x", &err), MU_EINVAL);
	assert_int_equal(f.n, 0);
	facts_free(&f);
}

/* ---- filters ------------------------------------------------------------- */

static void
test_ops(void **state)
{
	struct facts f = sample();

	(void)state;
	assert_true(m1(&f, (struct pv)PS("os.id", "==", "debian")));
	assert_false(m1(&f, (struct pv)PS("os.id", "==", "ubuntu")));
	assert_true(m1(&f, (struct pv)PS("os.id", "!=", "ubuntu")));
	assert_false(m1(&f, (struct pv)PS("os.id", "!=", "debian")));
	assert_true(m1(&f, (struct pv)PI("mem_mb", "<", 4096)));
	assert_false(m1(&f, (struct pv)PI("mem_mb", "<", 3900)));
	assert_true(m1(&f, (struct pv)PI("mem_mb", "<=", 3900)));
	assert_false(m1(&f, (struct pv)PI("mem_mb", "<=", 3899)));
	assert_true(m1(&f, (struct pv)PI("mem_mb", ">", 2048)));
	assert_false(m1(&f, (struct pv)PI("mem_mb", ">", 3900)));
	assert_true(m1(&f, (struct pv)PI("mem_mb", ">=", 3900)));
	assert_false(m1(&f, (struct pv)PI("mem_mb", ">=", 3901)));
	assert_true(m1(&f, (struct pv)PI("temp", "<", 0)));
	assert_true(m1(&f, (struct pv)PI("temp", ">", -6)));
	assert_true(m1(&f, (struct pv)PS("kernel", "~", "6.1.*")));
	assert_false(m1(&f, (struct pv)PS("kernel", "~", "5.*")));
	assert_true(m1(&f, (struct pv)PS("kernel", "~", "*amd64")));
	assert_true(m1(&f, (struct pv)PS("groups", "has", "b7")));
	assert_false(m1(&f, (struct pv)PS("groups", "has", "b")));
	assert_true(m1(&f, (struct pv)PB("custom.db", "==", true)));
	assert_false(m1(&f, (struct pv)PB("custom.db", "==", false)));
	assert_true(m1(&f, (struct pv)PB("custom.db", "!=", false)));
	facts_free(&f);
}

/* "12" from os-release and an integer 12 compare as numbers. */
static void
test_numbers(void **state)
{
	struct facts f = sample();

	(void)state;
	assert_true(m1(&f, (struct pv)PI("os.version_id", ">=", 12)));
	assert_false(m1(&f, (struct pv)PI("os.version_id", ">", 12)));
	assert_true(m1(&f, (struct pv)PI("os.version_id", "==", 12)));
	assert_true(m1(&f, (struct pv)PS("os.version_id", "<", "13")));
	assert_true(m1(&f, (struct pv)PS("mem_mb", "==", "3900")));
	assert_true(m1(&f, (struct pv)PS("mem_mb", "<", "10000")));
	/* Two strings are equal only byte for byte. */
	assert_false(m1(&f, (struct pv)PS("os.version_id", "==", "012")));
	assert_true(m1(&f, (struct pv)PI("os.version_id", "==", 12)));
	facts_free(&f);
}

static void
test_missing_and_mismatch(void **state)
{
	struct facts f = sample();

	(void)state;
	/* A missing fact is false for every operator, != included. */
	assert_false(m1(&f, (struct pv)PS("custom.rack", "==", "b7")));
	assert_false(m1(&f, (struct pv)PS("custom.rack", "!=", "b7")));
	assert_false(m1(&f, (struct pv)PI("custom.rack", "<", 1)));
	assert_false(m1(&f, (struct pv)PS("custom.rack", "~", "*")));
	assert_false(m1(&f, (struct pv)PS("custom.rack", "has", "x")));
	/* A type mismatch is false, != included. */
	assert_false(m1(&f, (struct pv)PI("os.id", "==", 1)));
	assert_false(m1(&f, (struct pv)PI("os.id", "!=", 1)));
	assert_false(m1(&f, (struct pv)PI("os.id", "<", 1)));
	assert_false(m1(&f, (struct pv)PS("os.id", "<", "z")));	/* not numbers */
	assert_false(m1(&f, (struct pv)PB("mem_mb", "==", true)));
	assert_false(m1(&f, (struct pv)PB("mem_mb", "!=", true)));
	assert_false(m1(&f, (struct pv)PS("mem_mb", "~", "3*")));
	assert_false(m1(&f, (struct pv)PS("os.id", "has", "debian")));
	assert_false(m1(&f, (struct pv)PS("groups", "==", "web")));
	assert_false(m1(&f, (struct pv)PS("groups", "~", "w*")));
	assert_false(m1(&f, (struct pv)PI("groups", ">", 0)));
	facts_free(&f);
}

static void
test_all_must_hold(void **state)
{
	struct facts f = sample(), none = { 0 };
	struct pv both[] = { PS("os.id", "==", "debian"), PI("mem_mb", "<", 4096) };
	struct pv one[] = { PS("os.id", "==", "debian"), PI("mem_mb", ">", 4096) };
	struct mu_err err;
	struct fact_filter empty;

	(void)state;
	assert_int_equal(match(&f, both, 2, &err), 1);
	assert_int_equal(match(&f, one, 2, &err), 0);
	assert_int_equal(match(&none, both, 2, &err), 0);
	/* No filter, or an empty one, matches every host. */
	assert_int_equal(filter_decode(NULL, &empty, &err), MU_OK);
	assert_true(facts_match(&none, &empty));
	assert_int_equal(match(&none, both, 0, &err), 1);
	facts_free(&f);
}

static void
expect_refused(const struct pv *p, size_t n, const char *why)
{
	struct facts f = { 0 };
	struct mu_err err = { "" };

	assert_int_equal(match(&f, p, n, &err), -1);
	if (strstr(err.msg, why) == NULL)
		fail_msg("'%s' does not say '%s'", err.msg, why);
}

static void
test_malformed(void **state)
{
	struct pv p[FILTER_MAX + 1];
	struct fact_filter flt;
	struct packed pk;
	struct mu_err err = { "" };
	msgpack_object o = { .type = MSGPACK_OBJECT_MAP };
	size_t i;

	(void)state;
	expect_refused((struct pv[]){ PS("os.id", "=", "debian") }, 1,
	    "unknown operator '='");
	expect_refused((struct pv[]){ PS("os.id", "like", "debian") }, 1,
	    "unknown operator 'like'");
	expect_refused((struct pv[]){ PS("OS", "==", "x") }, 1, "not a fact name");
	expect_refused((struct pv[]){ PI("os.id", "~", 1) }, 1, "'~' wants a string");
	expect_refused((struct pv[]){ PI("groups", "has", 1) }, 1, "'has' wants a string");
	expect_refused((struct pv[]){ PB("mem_mb", "<", true) }, 1, "does not take a bool");
	expect_refused((struct pv[]){ { "os.id", "==", V_NIL, NULL, 0 } }, 1,
	    "not a string, integer or bool");
	expect_refused((struct pv[]){ PS("a", "==", "x"), PS("b", "==", "y"),
	    PS("c", "=~", "z") }, 3, "predicate 3");
	for (i = 0; i <= FILTER_MAX; i++)
		p[i] = (struct pv)PS("os.id", "==", "debian");
	expect_refused(p, FILTER_MAX + 1, "more than 32 predicates");
	assert_int_equal(match(&(struct facts){ 0 }, p, FILTER_MAX, &err), 0);
	/* Not an array at all, and a predicate that is not a triple. */
	assert_int_equal(filter_decode(&o, &flt, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "not an array"));
	{
		msgpack_packer w;

		msgpack_sbuffer_init(&pk.sb);
		msgpack_packer_init(&w, &pk.sb, msgpack_sbuffer_write);
		msgpack_pack_array(&w, 1);
		msgpack_pack_array(&w, 2);
		msgpack_pack_str_with_body(&w, "a", 1);
		msgpack_pack_str_with_body(&w, "==", 2);
		msgpack_unpacked_init(&pk.up);
		msgpack_unpack_next(&pk.up, pk.sb.data, pk.sb.size, NULL);
		assert_int_equal(filter_decode(&pk.up.data, &flt, &err), MU_EINVAL);
		assert_non_null(strstr(err.msg, "not [fact, op, value]"));
		packed_free(&pk);
	}
	{
		char big[FACT_STR_MAX + 2];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		expect_refused((struct pv[]){ PS("a", "==", big) }, 1, "over 1024 bytes");
	}
}

/* A job body carries the filter through its codec; job_encode refuses a
 * filter the agent would refuse. */
static void
test_job_filter(void **state)
{
	struct pv good[] = { PS("os.id", "==", "debian") };
	struct pv bad[] = { PS("os.id", "=", "debian") };
	struct job j = { 0 }, back;
	struct fact_filter flt;
	struct packed pk;
	struct mu_err err;
	msgpack_sbuffer sb;

	(void)state;
	snprintf(j.id, sizeof(j.id), "j1");
	j.kind = JOB_PING;
	j.target.kind = TARGET_ALL;
	j.issued_at = 1, j.not_after = 2;
	snprintf(j.aud, sizeof(j.aud), "muster/v1");
	j.filter = pack(&pk, good, 1);
	msgpack_sbuffer_init(&sb);
	assert_int_equal(job_encode(&j, &sb, &err), MU_OK);
	assert_int_equal(job_decode(sb.data, sb.size, &back, &err), MU_OK);
	assert_non_null(back.filter);
	assert_int_equal(filter_decode(back.filter, &flt, &err), MU_OK);
	assert_int_equal(flt.n, 1);
	assert_int_equal(flt.p[0].op, FOP_EQ);
	wire_doc_free(&back.doc);
	packed_free(&pk);
	msgpack_sbuffer_destroy(&sb);

	j.filter = pack(&pk, bad, 1);
	msgpack_sbuffer_init(&sb);
	assert_int_equal(job_encode(&j, &sb, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "unknown operator"));
	packed_free(&pk);
	msgpack_sbuffer_destroy(&sb);

	/* Without a filter the body has no "filter" key. */
	j.filter = NULL;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(job_encode(&j, &sb, &err), MU_OK);
	assert_int_equal(job_decode(sb.data, sb.size, &back, &err), MU_OK);
	assert_null(back.filter);
	wire_doc_free(&back.doc);
	msgpack_sbuffer_destroy(&sb);
}

/* ---- the text form (muster -F) -------------------------------------------- */

/* Parse one text predicate and decode it as the agent would: the
 * predicate in *out borrows from pk (free with packed_free).  The parse's
 * code; on MU_OK filter_decode must have taken it. */
static int
text1(struct packed *pk, const char *text, struct filter_pred *out, struct mu_err *err)
{
	struct fact_filter flt;
	msgpack_packer w;
	int rc;

	msgpack_sbuffer_init(&pk->sb);
	msgpack_unpacked_init(&pk->up);
	msgpack_packer_init(&w, &pk->sb, msgpack_sbuffer_write);
	msgpack_pack_array(&w, 1);
	if ((rc = filter_text_pack(text, &w, err)) != MU_OK) {
		/* Nothing packed: the buffer holds only the array's head. */
		assert_int_equal(pk->sb.size, 1);
		return rc;
	}
	assert_int_equal(msgpack_unpack_next(&pk->up, pk->sb.data, pk->sb.size, NULL),
	    MSGPACK_UNPACK_SUCCESS);
	if (filter_decode(&pk->up.data, &flt, err) != MU_OK)
		fail_msg("'%s' packed a filter the agent refuses: %s", text, err->msg);
	*out = flt.p[0];
	return MU_OK;
}

static void
want_text(const char *text, const char *fact, enum filter_op op, msgpack_object_type t,
    const char *s, int64_t i)
{
	struct filter_pred p;
	struct packed pk;
	struct mu_err err = { "" };

	if (text1(&pk, text, &p, &err) != MU_OK)
		fail_msg("'%s' refused: %s", text, err.msg);
	assert_int_equal(p.fact.len, strlen(fact));
	assert_memory_equal(p.fact.ptr, fact, p.fact.len);
	assert_int_equal(p.op, op);
	if (t == MSGPACK_OBJECT_POSITIVE_INTEGER && i < 0)
		t = MSGPACK_OBJECT_NEGATIVE_INTEGER;
	assert_int_equal(p.value->type, t);
	if (t == MSGPACK_OBJECT_STR) {
		assert_int_equal(p.value->via.str.size, strlen(s));
		assert_memory_equal(p.value->via.str.ptr, s, strlen(s));
	} else if (t == MSGPACK_OBJECT_BOOLEAN)
		assert_int_equal(p.value->via.boolean, i);
	else if (t == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		assert_int_equal(p.value->via.i64, i);
	else
		assert_int_equal(p.value->via.u64, i);
	packed_free(&pk);
}

static void
want_text_refused(const char *text, const char *reason)
{
	struct filter_pred p;
	struct packed pk;
	struct mu_err err = { "" };

	if (text1(&pk, text, &p, &err) == MU_OK)
		fail_msg("'%s' was taken", text);
	if (strstr(err.msg, reason) == NULL)
		fail_msg("'%s': '%s' does not say '%s'", text, err.msg, reason);
	packed_free(&pk);
}

#define T_STR	MSGPACK_OBJECT_STR
#define T_INT	MSGPACK_OBJECT_POSITIVE_INTEGER
#define T_BOOL	MSGPACK_OBJECT_BOOLEAN

static void
test_text_ops_and_types(void **state)
{
	(void)state;
	/* Each operator, glued or spaced; = is ==. */
	want_text("os.id=debian", "os.id", FOP_EQ, T_STR, "debian", 0);
	want_text("os.id==debian", "os.id", FOP_EQ, T_STR, "debian", 0);
	want_text("  os.id  ==  debian  ", "os.id", FOP_EQ, T_STR, "debian", 0);
	want_text("os.id!=ubuntu", "os.id", FOP_NE, T_STR, "ubuntu", 0);
	want_text("mem_mb<4096", "mem_mb", FOP_LT, T_INT, NULL, 4096);
	want_text("mem_mb <= 4096", "mem_mb", FOP_LE, T_INT, NULL, 4096);
	want_text("mem_mb>-1", "mem_mb", FOP_GT, T_INT, NULL, -1);
	want_text("mem_mb>=0", "mem_mb", FOP_GE, T_INT, NULL, 0);
	want_text("custom.rack~b7*", "custom.rack", FOP_GLOB, T_STR, "b7*", 0);
	want_text("groups has web", "groups", FOP_HAS, T_STR, "web", 0);
	want_text("groups\thas\tweb", "groups", FOP_HAS, T_STR, "web", 0);
	/* Values are typed like run's key=value; quotes keep a string. */
	want_text("os.version_id=12", "os.version_id", FOP_EQ, T_INT, NULL, 12);
	want_text("custom.n=-3", "custom.n", FOP_EQ, T_INT, NULL, -3);
	want_text("custom.serial=012", "custom.serial", FOP_EQ, T_STR, "012", 0);
	want_text("custom.big=9223372036854775808", "custom.big", FOP_EQ, T_STR,
	    "9223372036854775808", 0);
	want_text("custom.db=true", "custom.db", FOP_EQ, T_BOOL, NULL, 1);
	want_text("custom.db!=false", "custom.db", FOP_NE, T_BOOL, NULL, 0);
	want_text("custom.db=\"true\"", "custom.db", FOP_EQ, T_STR, "true", 0);
	want_text("os.version_id=\"12\"", "os.version_id", FOP_EQ, T_STR, "12", 0);
	want_text("custom.note=\"\"", "custom.note", FOP_EQ, T_STR, "", 0);
	want_text("custom.note=\" a b \"", "custom.note", FOP_EQ, T_STR, " a b ", 0);
	want_text("custom.note=a b", "custom.note", FOP_EQ, T_STR, "a b", 0);
	want_text("custom.note=\"=x\"", "custom.note", FOP_EQ, T_STR, "=x", 0);
	/* ~ and has take the value as a string, whatever it looks like. */
	want_text("custom.slot~12", "custom.slot", FOP_GLOB, T_STR, "12", 0);
	want_text("custom.roles has true", "custom.roles", FOP_HAS, T_STR, "true", 0);
	/* Ordering: integers, quoted or not. */
	want_text("mem_mb<\"4096\"", "mem_mb", FOP_LT, T_INT, NULL, 4096);
	/* "has" is an operator only as a word. */
	want_text("has=x", "has", FOP_EQ, T_STR, "x", 0);
	want_text("has has x", "has", FOP_HAS, T_STR, "x", 0);
}

static void
test_text_refused(void **state)
{
	char big[FACT_STR_MAX + 16];

	(void)state;
	want_text_refused("", "no fact name");
	want_text_refused("=debian", "no fact name");
	want_text_refused("OS.id=debian", "'OS.id' is not a fact name");
	want_text_refused("os..id=debian", "is not a fact name");
	want_text_refused("os.id", "no operator after 'os.id'");
	want_text_refused("os.id debian", "no operator after 'os.id'");
	want_text_refused("groupshas web", "no operator");
	want_text_refused("groups hasweb", "no operator");
	want_text_refused("os.id=", "no value");
	want_text_refused("groups has", "no value");
	want_text_refused("groups has   ", "no value");
	want_text_refused("os.id=\"debian", "quote is not closed");
	want_text_refused("os.id=\"", "quote is not closed");
	want_text_refused("os.id=~deb", "starts with '~'");
	want_text_refused("mem_mb=<4096", "starts with '<'");
	want_text_refused("os.id===x", "starts with '='");
	want_text_refused("mem_mb<4k", "'<' compares integers, and '4k' is not one");
	want_text_refused("mem_mb>=true", "'>=' compares integers");
	want_text_refused("os.version_id>11.5", "'>' compares integers");
	want_text_refused("mem_mb<012", "compares integers");
	memset(big, 'x', sizeof(big));
	memcpy(big, "a=", 2);
	big[2 + FACT_STR_MAX] = '\0';
	want_text("a=x", "a", FOP_EQ, T_STR, "x", 0);
	{
		struct filter_pred p;
		struct packed pk;
		struct mu_err err;

		assert_int_equal(text1(&pk, big, &p, &err), MU_OK);	/* at the bound */
		packed_free(&pk);
	}
	big[2 + FACT_STR_MAX] = 'x';
	big[3 + FACT_STR_MAX] = '\0';
	want_text_refused(big, "over 1024 bytes");
}

/* What the text means on a host: the CLI's expectation and the agent's
 * verdict come from the same facts_match(). */
static void
test_text_matches(void **state)
{
	static const struct {
		const char *text;
		bool match;
	} cases[] = {
		{ "os.id=debian", true }, { "os.id!=debian", false },
		{ "os.version_id=12", true }, { "os.version_id>=12", true },
		{ "os.version_id<12", false }, { "os.version_id=\"12\"", true },
		{ "mem_mb<4096", true }, { "mem_mb>4096", false },
		{ "kernel~6.1.*", true }, { "kernel~5.*", false },
		{ "groups has b7", true }, { "groups has db", false },
		{ "custom.db=true", true }, { "custom.db=\"true\"", false },
		{ "custom.rack=b7", false }, { "custom.rack!=b7", false },	/* missing */
		{ "temp>-10", true },
	};
	struct facts f = sample();
	struct fact_filter flt;
	struct filter_pred p;
	struct packed pk;
	struct mu_err err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(text1(&pk, cases[i].text, &p, &err), MU_OK);
		flt.n = 1;
		flt.p[0] = p;
		if (facts_match(&f, &flt) != cases[i].match)
			fail_msg("'%s' should %smatch", cases[i].text, cases[i].match ? "" : "not ");
		packed_free(&pk);
	}
	facts_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_decode_refusals),
		cmocka_unit_test(test_set_bounds),
		cmocka_unit_test(test_ops),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_missing_and_mismatch),
		cmocka_unit_test(test_all_must_hold),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_job_filter),
		cmocka_unit_test(test_text_ops_and_types),
		cmocka_unit_test(test_text_refused),
		cmocka_unit_test(test_text_matches),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
