/* SPDX-License-Identifier: Apache-2.0 */
/*
 * muster-proto - a test tool around the protocol v1 codecs, driven by the
 * interop tests in tests/interop:
 *
 *	muster-proto decode TYPE FILE		msgpack (FILE or - for stdin) -> JSON
 *	muster-proto encode TYPE		JSON on stdin -> msgpack on stdout
 *	muster-proto verify-job KEYDIR FILE	signed envelope -> its job as JSON
 *	muster-proto sign-job KEYFILE		job JSON on stdin -> signed envelope
 *
 * JSON objects use the wire key names; bin values are lowercase hex
 * strings.  Exit 0 on success; 1 when the message is refused, with
 * {"error": reason} on stdout; 2 on a usage, I/O or tool error.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "err.h"
#include "facts.h"
#include "mpjson.h"
#include "names.h"
#include "sign.h"
#include "wire.h"

#define EXIT_REFUSED	1
#define EXIT_TOOL	2
#define MAX_SEEN	32	/* keys one message reads */
#define MAX_BLOBS	4	/* bin fields one message holds */
#define MAX_OBJECTS	3	/* maps or arrays one message holds (args, filter,
				 * an announce's expected) */

/* struct facts_msg owns its facts and has no wire_doc: this one's doc
 * stays zero (wire_doc_free() is then a no-op) and codec.free frees it. */
struct proto_facts {
	struct wire_doc doc;
	struct facts_msg f;
};

/* Every decoded struct starts with its struct wire_doc. */
union msg {
	struct proto_facts fa;
	struct job_envelope env;
	struct agent_envelope aenv;
	struct job job;
	struct announce ann;
	struct result res;
	struct event ev;
	struct status st;
	struct module_manifest mm;
	struct release_manifest rm;
	struct signed_pointer ptr;
	struct module_artifact ma;
	struct binary_artifact ba;
	struct selftest_request sq;
	struct selftest_verdict sv;
};

/* Storage for what an encoder's input borrows while we build it from JSON. */
struct hold {
	uint8_t *blobs[MAX_BLOBS];
	size_t nblobs;
	msgpack_sbuffer sb[MAX_OBJECTS];	/* args, data or filter, packed from JSON */
	msgpack_unpacked up[MAX_OBJECTS];	/* ... and unpacked as objects */
	size_t nused;
};

/* A reader of one JSON object into a struct; the first failure sticks. */
struct jr {
	json_t *o;
	struct hold *h;
	struct mu_err *err;
	int rc;
	const char *seen[MAX_SEEN];
	size_t nseen;
};

/* A writer of a struct into a JSON object; the first failure sticks. */
struct jw {
	json_t *o;
	const char *bad;	/* key that could not be shown in JSON */
};

/* Word tables, in the order of the enums in wire.h. */
static const char *const kind_words[] = {
	"unknown", "run", "ping", "version", "cancel", "update",
};
static const char *const status_words[] = {
	"pass", "fail", "error", "timeout", "crashed", "cancelled", "rejected",
	"interrupted",
};
static const char *const event_words[] = {
	"accepted", "started", "output", "progress",
};
static const char *const state_words[] = { "offline", "online" };
#define NWORDS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static struct wire_doc *
msg_doc(union msg *m)
{
	/* A union points to each member, a struct to its first member. */
	return (struct wire_doc *)(void *)m;
}


/* ---- the JSON writer -------------------------------------------------- */

static void
jw_set(struct jw *w, const char *key, json_t *v)
{
	if (w->bad != NULL)
		json_decref(v);
	else if (json_object_set_new(w->o, key, v) != 0)
		w->bad = key;	/* v was NULL or is released */
}

static void
jw_str(struct jw *w, const char *key, const char *s)
{
	jw_set(w, key, json_string(s));
}

/* An optional identifier: "" means absent. */
static void
jw_opt(struct jw *w, const char *key, const char *s)
{
	if (s[0] != '\0')
		jw_str(w, key, s);
}

static void
jw_view(struct jw *w, const char *key, struct wire_str s)
{
	if (s.ptr != NULL)
		jw_set(w, key, json_stringn(s.ptr, s.len));
}

static void
jw_uint(struct jw *w, const char *key, uint64_t v)
{
	jw_set(w, key, v > INT64_MAX ? NULL : json_integer((json_int_t)v));
}

static void
jw_bool(struct jw *w, const char *key, bool v)
{
	jw_set(w, key, json_boolean(v));
}

static void
jw_hex(struct jw *w, const char *key, const void *p, size_t n)
{
	if (p != NULL)
		jw_set(w, key, mpjson_hex(p, n));
}

static void
jw_obj(struct jw *w, const char *key, const msgpack_object *o)
{
	if (o != NULL)
		jw_set(w, key, mpjson_from_msgpack(o));
}

static void
jw_word(struct jw *w, const char *key, const char *const *words, int n, int i)
{
	jw_str(w, key, i >= 0 && i < n ? words[i] : "?");
}

/* ---- the JSON reader -------------------------------------------------- */

/*
 * Every key is optional here: a missing one leaves the struct's zero
 * value, so the encoders' own checks are what refuse an incomplete struct.
 * Readers return r->rc, the first failure, and do nothing after one.
 */
static int
jr_fail(struct jr *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
jr_fail(struct jr *r, const char *fmt, ...)
{
	va_list ap;

	if (r->rc)
		return r->rc;
	va_start(ap, fmt);
	vsnprintf(r->err->msg, sizeof(r->err->msg), fmt, ap);
	va_end(ap);
	return r->rc = MU_EINVAL;
}

/* Mark key as read and return its value, or NULL if absent or failed. */
static json_t *
jr_any(struct jr *r, const char *key)
{
	if (r->nseen < MAX_SEEN)
		r->seen[r->nseen++] = key;
	return r->rc ? NULL : json_object_get(r->o, key);
}

/* The value of key if present with JSON type want (true: any boolean). */
static json_t *
jr_get(struct jr *r, const char *key, json_type want, const char *tname)
{
	json_t *v = jr_any(r, key);
	json_type t;

	if (v == NULL)
		return NULL;
	t = json_typeof(v) == JSON_FALSE ? JSON_TRUE : json_typeof(v);
	if (t != want) {
		jr_fail(r, "JSON key '%s' must be %s", key, tname);
		return NULL;
	}
	return v;
}

static int
jr_ident(struct jr *r, const char *key, char *dst, size_t dstsz)
{
	json_t *v = jr_get(r, key, JSON_STRING, "a string");

	if (v == NULL)
		return r->rc;
	if (json_string_length(v) >= dstsz ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return jr_fail(r, "JSON key '%s' does not fit the struct", key);
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return MU_OK;
}

static int
jr_view(struct jr *r, const char *key, struct wire_str *out)
{
	json_t *v = jr_get(r, key, JSON_STRING, "a string");

	if (v != NULL)
		out->ptr = json_string_value(v), out->len = json_string_length(v);
	return r->rc;
}

static int
jr_uint(struct jr *r, const char *key, uint64_t max, uint64_t *out)
{
	json_t *v = jr_get(r, key, JSON_INTEGER, "an integer");

	if (v == NULL)
		return r->rc;
	if (json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
		return jr_fail(r, "JSON key '%s' is out of range", key);
	*out = (uint64_t)json_integer_value(v);
	return MU_OK;
}

static int
jr_int32(struct jr *r, const char *key, bool *has, int32_t *out)
{
	json_t *v = jr_get(r, key, JSON_INTEGER, "an integer");

	if (v == NULL)
		return r->rc;
	if (json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX)
		return jr_fail(r, "JSON key '%s' is out of range", key);
	*out = (int32_t)json_integer_value(v);
	*has = true;
	return MU_OK;
}

static int
jr_bool(struct jr *r, const char *key, bool *out)
{
	json_t *v = jr_get(r, key, JSON_TRUE, "a boolean");

	if (v != NULL)
		*out = json_is_true(v);
	return r->rc;
}

/* A string that must be one of words; *out is its index. */
static int
jr_word(struct jr *r, const char *key, const char *const *words, int n, int *out)
{
	json_t *v = jr_get(r, key, JSON_STRING, "a string");
	int i;

	if (v == NULL)
		return r->rc;
	for (i = 0; i < n; i++)
		if (strcmp(words[i], json_string_value(v)) == 0) {
			*out = i;
			return MU_OK;
		}
	return jr_fail(r, "JSON key '%s' has an unknown value", key);
}

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A hex string decoded into a blob the hold owns. */
static int
jr_hex(struct jr *r, const char *key, struct wire_bytes *out)
{
	json_t *v = jr_get(r, key, JSON_STRING, "a hex string");
	const char *s;
	uint8_t *b;
	size_t i, n;

	if (v == NULL)
		return r->rc;
	s = json_string_value(v), n = json_string_length(v);
	if (n % 2 != 0 || r->h->nblobs == MAX_BLOBS)
		return jr_fail(r, "JSON key '%s' is not a hex string", key);
	if ((b = malloc(n / 2 + 1)) == NULL)
		return jr_fail(r, "out of memory");
	r->h->blobs[r->h->nblobs++] = b;
	for (i = 0; i < n; i += 2) {
		int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);

		if (hi < 0 || lo < 0)
			return jr_fail(r, "JSON key '%s' is not a hex string", key);
		b[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	out->ptr = b, out->len = n / 2;
	return MU_OK;
}

/* Any JSON value (args, data, filter) as a msgpack object the hold owns. */
static int
jr_object(struct jr *r, const char *key, const msgpack_object **out)
{
	json_t *v = jr_any(r, key);
	msgpack_packer pk;
	size_t off = 0, i;

	if (v == NULL)
		return r->rc;
	if (r->h->nused == MAX_OBJECTS)
		return jr_fail(r, "more than %d maps or arrays in a message", MAX_OBJECTS);
	i = r->h->nused++;
	msgpack_packer_init(&pk, &r->h->sb[i], msgpack_sbuffer_write);
	if (mpjson_pack(&pk, v) != 0 ||
	    msgpack_unpack_next(&r->h->up[i], r->h->sb[i].data, r->h->sb[i].size, &off) !=
	    MSGPACK_UNPACK_SUCCESS)
		return jr_fail(r, "JSON key '%s' cannot be packed", key);
	*out = &r->h->up[i].data;
	return MU_OK;
}

/* Refuse keys no reader asked for (typos in tests); "v" must be 1. */
static void
jr_done(struct jr *r)
{
	const char *key;
	json_t *val;
	size_t i;

	json_object_foreach(r->o, key, val) {
		if (strcmp(key, "v") == 0 && json_is_integer(val) &&
		    json_integer_value(val) == WIRE_VERSION)
			continue;
		for (i = 0; i < r->nseen && strcmp(r->seen[i], key) != 0; i++)
			;
		if (i == r->nseen)
			jr_fail(r, "JSON key '%s' is unknown or has a bad value", key);
	}
}

/* ---- per message: struct -> JSON (tj_*) and JSON -> struct (fj_*) ------ */

static void
tj_envelope(struct jw *w, const union msg *m)
{
	jw_str(w, "key", m->env.key);
	jw_hex(w, "sig", m->env.sig, ED25519_SIG_LEN);
	jw_hex(w, "body", m->env.body.ptr, m->env.body.len);
}

static void
fj_envelope(struct jr *r, union msg *m)
{
	struct wire_bytes sig = { NULL, 0 };

	jr_ident(r, "key", m->env.key, sizeof(m->env.key));
	jr_hex(r, "sig", &sig);
	if (sig.ptr != NULL && sig.len != ED25519_SIG_LEN)
		jr_fail(r, "JSON key 'sig' must be %d bytes", ED25519_SIG_LEN);
	else if (sig.ptr != NULL)
		memcpy(m->env.sig, sig.ptr, ED25519_SIG_LEN);
	jr_hex(r, "body", &m->env.body);
}

static void
tj_agent_envelope(struct jw *w, const union msg *m)
{
	jw_str(w, "cert", m->aenv.cert);
	jw_hex(w, "sig", m->aenv.sig.ptr, m->aenv.sig.len);
	jw_hex(w, "body", m->aenv.body.ptr, m->aenv.body.len);
}

static void
fj_agent_envelope(struct jr *r, union msg *m)
{
	jr_ident(r, "cert", m->aenv.cert, sizeof(m->aenv.cert));
	jr_hex(r, "sig", &m->aenv.sig);
	jr_hex(r, "body", &m->aenv.body);
}

static void
tj_job(struct jw *w, const union msg *m)
{
	const struct job *j = &m->job;
	char target[NAME_MAX_LEN + 8];

	if (target_format(&j->target, target, sizeof(target)) != MU_OK)
		snprintf(target, sizeof(target), "?");
	jw_str(w, "id", j->id);
	jw_word(w, "kind", kind_words, NWORDS(kind_words), j->kind);
	jw_str(w, "target", target);
	jw_uint(w, "issued_at", j->issued_at);
	jw_uint(w, "not_after", j->not_after);
	jw_view(w, "operator", j->operator_);
	jw_opt(w, "aud", j->aud);
	if (j->kind == JOB_RUN) {
		jw_str(w, "module", j->module);
		jw_opt(w, "module_sha256", j->module_sha256);
		jw_obj(w, "args", j->args);
		jw_uint(w, "timeout_ms", j->timeout_ms);
		jw_bool(w, "stream", j->stream);
	}
	if (j->kind == JOB_CANCEL)
		jw_str(w, "cancel", j->cancel);
	jw_obj(w, "filter", j->filter);
}

/* Split the target without checking the name: the encoder must do that. */
static int
fj_target(struct jr *r, struct job_target *t)
{
	char s[NAME_MAX_LEN + 8] = "";
	const char *name = "";

	if (jr_ident(r, "target", s, sizeof(s)) != MU_OK || s[0] == '\0')
		return r->rc;	/* absent or empty: a host with no name */
	if (strncmp(s, "host/", 5) == 0)
		t->kind = TARGET_HOST, name = s + 5;
	else if (strncmp(s, "group/", 6) == 0)
		t->kind = TARGET_GROUP, name = s + 6;
	else if (strcmp(s, "all") == 0)
		t->kind = TARGET_ALL;
	else
		return jr_fail(r, "JSON key 'target' is not host/..., group/... or all");
	if (strlen(name) >= sizeof(t->name))
		return jr_fail(r, "JSON key 'target' does not fit the struct");
	memcpy(t->name, name, strlen(name) + 1);
	return MU_OK;
}

static void
fj_job(struct jr *r, union msg *m)
{
	struct job *j = &m->job;
	int kind = JOB_UNKNOWN;

	jr_ident(r, "id", j->id, sizeof(j->id));
	jr_word(r, "kind", kind_words, NWORDS(kind_words), &kind);
	j->kind = (enum job_kind)kind;
	fj_target(r, &j->target);
	jr_uint(r, "issued_at", UINT64_MAX, &j->issued_at);
	jr_uint(r, "not_after", UINT64_MAX, &j->not_after);
	jr_view(r, "operator", &j->operator_);
	jr_ident(r, "aud", j->aud, sizeof(j->aud));
	jr_ident(r, "module", j->module, sizeof(j->module));
	jr_ident(r, "module_sha256", j->module_sha256, sizeof(j->module_sha256));
	jr_object(r, "args", &j->args);
	jr_uint(r, "timeout_ms", UINT64_MAX, &j->timeout_ms);
	jr_bool(r, "stream", &j->stream);
	jr_ident(r, "cancel", j->cancel, sizeof(j->cancel));
	jr_object(r, "filter", &j->filter);
}

static void
tj_announce(struct jw *w, const union msg *m)
{
	const struct announce *a = &m->ann;
	char target[NAME_MAX_LEN + 8];

	if (target_format(&a->target, target, sizeof(target)) != MU_OK)
		snprintf(target, sizeof(target), "?");
	jw_str(w, "kind", "announce");
	jw_str(w, "id", a->id);
	jw_str(w, "aud", a->aud);
	jw_uint(w, "issued_at", a->issued_at);
	jw_uint(w, "not_after", a->not_after);
	jw_view(w, "operator", a->operator_);
	jw_str(w, "target", target);
	jw_obj(w, "filter", a->filter);
	jw_word(w, "job_kind", kind_words, NWORDS(kind_words), a->job_kind);
	jw_opt(w, "module", a->module);
	jw_obj(w, "args", a->args);
	if (a->timeout_ms)
		jw_uint(w, "timeout_ms", a->timeout_ms);
	if (a->stream)
		jw_bool(w, "stream", true);
	jw_obj(w, "expected", a->expected);
}

/* "kind" is read to be checked, not kept: the encoder writes "announce". */
static void
fj_announce(struct jr *r, union msg *m)
{
	struct announce *a = &m->ann;
	char kind[16] = "";
	int jk = JOB_UNKNOWN;

	jr_ident(r, "kind", kind, sizeof(kind));
	if (r->rc == MU_OK && strcmp(kind, "announce") != 0)
		jr_fail(r, "JSON key 'kind' is not announce");
	jr_ident(r, "id", a->id, sizeof(a->id));
	jr_ident(r, "aud", a->aud, sizeof(a->aud));
	jr_uint(r, "issued_at", UINT64_MAX, &a->issued_at);
	jr_uint(r, "not_after", UINT64_MAX, &a->not_after);
	jr_view(r, "operator", &a->operator_);
	fj_target(r, &a->target);
	jr_object(r, "filter", &a->filter);
	jr_word(r, "job_kind", kind_words, NWORDS(kind_words), &jk);
	a->job_kind = (enum job_kind)jk;
	jr_ident(r, "module", a->module, sizeof(a->module));
	jr_object(r, "args", &a->args);
	jr_uint(r, "timeout_ms", UINT64_MAX, &a->timeout_ms);
	jr_bool(r, "stream", &a->stream);
	jr_object(r, "expected", &a->expected);
	if (a->expected != NULL && a->expected->type == MSGPACK_OBJECT_ARRAY)
		a->nexpected = a->expected->via.array.size;
}

static void
tj_result(struct jw *w, const union msg *m)
{
	const struct result *x = &m->res;

	jw_str(w, "job", x->job);
	jw_str(w, "host", x->host);
	jw_word(w, "kind", kind_words, NWORDS(kind_words), x->kind);
	jw_word(w, "status", status_words, NWORDS(status_words), x->status);
	jw_view(w, "reason", x->reason);
	jw_view(w, "summary", x->summary);
	jw_view(w, "output", x->output);
	jw_bool(w, "truncated", x->truncated);
	jw_obj(w, "data", x->data);
	if (x->has_exit_code)
		jw_set(w, "exit_code", json_integer(x->exit_code));
	if (x->has_signal)
		jw_set(w, "signal", json_integer(x->signal));
	jw_opt(w, "module", x->module);
	jw_opt(w, "module_version", x->module_version);
	jw_opt(w, "module_sha256", x->module_sha256);
	jw_uint(w, "started_at", x->started_at);
	jw_uint(w, "finished_at", x->finished_at);
	jw_str(w, "agent_version", x->agent_version);
	if (x->has_seq)
		jw_uint(w, "seq", x->seq);
}

static void
fj_result(struct jr *r, union msg *m)
{
	struct result *x = &m->res;
	int kind = JOB_UNKNOWN, status = RS_PASS;

	jr_ident(r, "job", x->job, sizeof(x->job));
	jr_ident(r, "host", x->host, sizeof(x->host));
	jr_word(r, "kind", kind_words, NWORDS(kind_words), &kind);
	jr_word(r, "status", status_words, NWORDS(status_words), &status);
	x->kind = (enum job_kind)kind, x->status = (enum result_status)status;
	jr_view(r, "reason", &x->reason);
	jr_view(r, "summary", &x->summary);
	jr_view(r, "output", &x->output);
	jr_bool(r, "truncated", &x->truncated);
	jr_object(r, "data", &x->data);
	jr_int32(r, "exit_code", &x->has_exit_code, &x->exit_code);
	jr_int32(r, "signal", &x->has_signal, &x->signal);
	jr_ident(r, "module", x->module, sizeof(x->module));
	jr_ident(r, "module_version", x->module_version, sizeof(x->module_version));
	jr_ident(r, "module_sha256", x->module_sha256, sizeof(x->module_sha256));
	jr_uint(r, "started_at", UINT64_MAX, &x->started_at);
	jr_uint(r, "finished_at", UINT64_MAX, &x->finished_at);
	jr_ident(r, "agent_version", x->agent_version, sizeof(x->agent_version));
	x->has_seq = json_object_get(r->o, "seq") != NULL;
	jr_uint(r, "seq", UINT64_MAX, &x->seq);
}

static void
tj_event(struct jw *w, const union msg *m)
{
	const struct event *e = &m->ev;

	jw_str(w, "job", e->job);
	jw_str(w, "host", e->host);
	jw_uint(w, "seq", e->seq);
	jw_uint(w, "at", e->at);
	jw_word(w, "event", event_words, NWORDS(event_words), e->event);
	jw_view(w, "text", e->text);
	if (e->has_pct)
		jw_uint(w, "pct", e->pct);
}

static void
fj_event(struct jr *r, union msg *m)
{
	struct event *e = &m->ev;
	uint64_t pct = UINT64_MAX;
	int ev = EV_ACCEPTED;

	jr_ident(r, "job", e->job, sizeof(e->job));
	jr_ident(r, "host", e->host, sizeof(e->host));
	jr_uint(r, "seq", UINT64_MAX, &e->seq);
	jr_uint(r, "at", UINT64_MAX, &e->at);
	jr_word(r, "event", event_words, NWORDS(event_words), &ev);
	e->event = (enum event_kind)ev;
	jr_view(r, "text", &e->text);
	jr_uint(r, "pct", UINT8_MAX, &pct);
	e->has_pct = pct != UINT64_MAX;
	e->pct = (uint8_t)pct;
}

static void
tj_status(struct jw *w, const union msg *m)
{
	const struct status *s = &m->st;
	json_t *groups = json_array();
	size_t i;

	jw_str(w, "host", s->host);
	jw_str(w, "state", s->online ? "online" : "offline");
	jw_view(w, "reason", s->reason);
	jw_str(w, "version", s->version);
	jw_str(w, "channel", s->channel);
	for (i = 0; groups != NULL && i < s->ngroups; i++)
		json_array_append_new(groups, json_string(s->groups[i]));
	jw_set(w, "groups", groups);
	jw_uint(w, "started_at", s->started_at);
	jw_uint(w, "at", s->at);
	jw_hex(w, "cert_der", s->cert_der.ptr, s->cert_der.len);
}

static int
fj_groups(struct jr *r, struct status *s)
{
	json_t *a = jr_get(r, "groups", JSON_ARRAY, "an array"), *g;
	size_t i;

	if (a == NULL)
		return r->rc;
	if (json_array_size(a) > WIRE_MAX_GROUPS)
		return jr_fail(r, "JSON key 'groups' has too many items");
	json_array_foreach(a, i, g) {
		if (!json_is_string(g) || json_string_length(g) > NAME_MAX_LEN ||
		    strlen(json_string_value(g)) != json_string_length(g))
			return jr_fail(r, "JSON key 'groups' does not fit the struct");
		memcpy(s->groups[i], json_string_value(g), json_string_length(g) + 1);
	}
	s->ngroups = json_array_size(a);
	return MU_OK;
}

static void
fj_status(struct jr *r, union msg *m)
{
	struct status *s = &m->st;
	int state = 0;

	jr_ident(r, "host", s->host, sizeof(s->host));
	jr_word(r, "state", state_words, NWORDS(state_words), &state);
	s->online = state == 1;
	jr_view(r, "reason", &s->reason);
	jr_ident(r, "version", s->version, sizeof(s->version));
	jr_ident(r, "channel", s->channel, sizeof(s->channel));
	fj_groups(r, s);
	jr_uint(r, "started_at", UINT64_MAX, &s->started_at);
	jr_uint(r, "at", UINT64_MAX, &s->at);
	jr_hex(r, "cert_der", &s->cert_der);
}

static void
tj_facts(struct jw *w, const union msg *m)
{
	const struct facts *f = &m->fa.f.facts;
	json_t *o = json_object(), *v, *l;
	size_t i, j;

	jw_str(w, "host", m->fa.f.host);
	jw_uint(w, "at", m->fa.f.at);
	for (i = 0; o != NULL && i < f->n; i++) {
		const struct fact *x = &f->v[i];

		switch (x->type) {
		case FACT_STR:
			v = json_string(x->s);
			break;
		case FACT_INT:
			v = json_integer(x->i);
			break;
		case FACT_BOOL:
			v = json_boolean(x->b);
			break;
		default:
			v = l = json_array();
			for (j = 0; l != NULL && j < x->nlist; j++)
				json_array_append_new(l, json_string(x->list[j]));
			break;
		}
		json_object_set_new(o, x->name, v);
	}
	jw_set(w, "facts", o);
}

/* One JSON value into the set; a float or a nested value is refused here
 * (JSON cannot say what msgpack would be made of it). */
static int
fj_fact(struct jr *r, struct facts *f, const char *name, json_t *v)
{
	const char *items[FACT_LIST_MAX];
	json_t *x;
	size_t i;
	int rc;

	switch (json_typeof(v)) {
	case JSON_STRING:
		rc = facts_set_str(f, name, json_string_value(v), r->err);
		break;
	case JSON_INTEGER:
		rc = facts_set_int(f, name, json_integer_value(v), r->err);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		rc = facts_set_bool(f, name, json_is_true(v), r->err);
		break;
	case JSON_ARRAY:
		if (json_array_size(v) > FACT_LIST_MAX)
			return jr_fail(r, "JSON fact '%s' does not fit the struct", name);
		json_array_foreach(v, i, x) {
			if (!json_is_string(x))
				return jr_fail(r, "JSON fact '%s' does not fit the struct", name);
			items[i] = json_string_value(x);
		}
		rc = facts_set_list(f, name, items, json_array_size(v), r->err);
		break;
	default:
		return jr_fail(r, "JSON fact '%s' does not fit the struct", name);
	}
	return rc ? (r->rc = rc) : MU_OK;
}

static void
fj_facts(struct jr *r, union msg *m)
{
	json_t *o, *v;
	const char *name;

	jr_ident(r, "host", m->fa.f.host, sizeof(m->fa.f.host));
	jr_uint(r, "at", UINT64_MAX, &m->fa.f.at);
	if ((o = jr_get(r, "facts", JSON_OBJECT, "an object")) == NULL)
		return;
	json_object_foreach(o, name, v)
		if (fj_fact(r, &m->fa.f.facts, name, v) != MU_OK)
			return;
}

static void
free_facts(union msg *m)
{
	facts_free(&m->fa.f.facts);
}

/* The constant "kind" of a manifest: optional in JSON, but must match. */
static void
fj_kind(struct jr *r, const char *want)
{
	const char *const words[] = { want };
	int i;

	jr_word(r, "kind", words, 1, &i);
}

static void
tj_module_manifest(struct jw *w, const union msg *m)
{
	jw_str(w, "kind", "module");
	jw_str(w, "name", m->mm.name);
	jw_str(w, "version", m->mm.version);
	jw_uint(w, "abi", m->mm.abi);
	jw_str(w, "sha256", m->mm.sha256);
	jw_uint(w, "size", m->mm.size);
	jw_uint(w, "published_at", m->mm.published_at);
}

static void
fj_module_manifest(struct jr *r, union msg *m)
{
	uint64_t abi = 0;

	fj_kind(r, "module");
	jr_ident(r, "name", m->mm.name, sizeof(m->mm.name));
	jr_ident(r, "version", m->mm.version, sizeof(m->mm.version));
	jr_uint(r, "abi", UINT32_MAX, &abi);
	m->mm.abi = (uint32_t)abi;
	jr_ident(r, "sha256", m->mm.sha256, sizeof(m->mm.sha256));
	jr_uint(r, "size", UINT64_MAX, &m->mm.size);
	jr_uint(r, "published_at", UINT64_MAX, &m->mm.published_at);
}

static void
tj_release_manifest(struct jw *w, const union msg *m)
{
	jw_str(w, "kind", "release");
	jw_str(w, "channel", m->rm.channel);
	jw_str(w, "version", m->rm.version);
	jw_str(w, "agent_sha256", m->rm.agent_sha256);
	jw_uint(w, "agent_size", m->rm.agent_size);
	jw_str(w, "runner_sha256", m->rm.runner_sha256);
	jw_uint(w, "runner_size", m->rm.runner_size);
	jw_uint(w, "published_at", m->rm.published_at);
	jw_uint(w, "rollout", m->rm.rollout);
}

static void
fj_release_manifest(struct jr *r, union msg *m)
{
	uint64_t rollout = 0;

	fj_kind(r, "release");
	jr_ident(r, "channel", m->rm.channel, sizeof(m->rm.channel));
	jr_ident(r, "version", m->rm.version, sizeof(m->rm.version));
	jr_ident(r, "agent_sha256", m->rm.agent_sha256, sizeof(m->rm.agent_sha256));
	jr_uint(r, "agent_size", UINT64_MAX, &m->rm.agent_size);
	jr_ident(r, "runner_sha256", m->rm.runner_sha256, sizeof(m->rm.runner_sha256));
	jr_uint(r, "runner_size", UINT64_MAX, &m->rm.runner_size);
	jr_uint(r, "published_at", UINT64_MAX, &m->rm.published_at);
	jr_uint(r, "rollout", UINT8_MAX, &rollout);
	m->rm.rollout = (uint8_t)rollout;
}

static void
tj_pointer(struct jw *w, const union msg *m)
{
	jw_hex(w, "manifest", m->ptr.manifest.ptr, m->ptr.manifest.len);
	jw_hex(w, "sig", m->ptr.sig.ptr, m->ptr.sig.len);
}

static void
fj_pointer(struct jr *r, union msg *m)
{
	jr_hex(r, "manifest", &m->ptr.manifest);
	jr_hex(r, "sig", &m->ptr.sig);
}

static void
tj_module_artifact(struct jw *w, const union msg *m)
{
	jw_hex(w, "manifest", m->ma.manifest.ptr, m->ma.manifest.len);
	jw_hex(w, "sig", m->ma.sig.ptr, m->ma.sig.len);
	jw_hex(w, "so", m->ma.so.ptr, m->ma.so.len);
}

static void
fj_module_artifact(struct jr *r, union msg *m)
{
	jr_hex(r, "manifest", &m->ma.manifest);
	jr_hex(r, "sig", &m->ma.sig);
	jr_hex(r, "so", &m->ma.so);
}

static void
tj_binary_artifact(struct jw *w, const union msg *m)
{
	jw_hex(w, "data", m->ba.data.ptr, m->ba.data.len);
}

static void
fj_binary_artifact(struct jr *r, union msg *m)
{
	jr_hex(r, "data", &m->ba.data);
}

static void
tj_selftest_request(struct jw *w, const union msg *m)
{
	jw_str(w, "host", m->sq.host);
	jw_str(w, "nonce", m->sq.nonce);
	jw_str(w, "version", m->sq.version);
}

static void
fj_selftest_request(struct jr *r, union msg *m)
{
	jr_ident(r, "host", m->sq.host, sizeof(m->sq.host));
	jr_ident(r, "nonce", m->sq.nonce, sizeof(m->sq.nonce));
	jr_ident(r, "version", m->sq.version, sizeof(m->sq.version));
}

static void
tj_selftest_verdict(struct jw *w, const union msg *m)
{
	jw_str(w, "host", m->sv.host);
	jw_str(w, "nonce", m->sv.nonce);
	jw_bool(w, "ok", m->sv.ok);
	jw_view(w, "reason", m->sv.reason);
}

static void
fj_selftest_verdict(struct jr *r, union msg *m)
{
	jr_ident(r, "host", m->sv.host, sizeof(m->sv.host));
	jr_ident(r, "nonce", m->sv.nonce, sizeof(m->sv.nonce));
	jr_bool(r, "ok", &m->sv.ok);
	jr_view(r, "reason", &m->sv.reason);
}

/* ---- the codec table -------------------------------------------------- */

typedef int decode_fn(const void *, size_t, union msg *, struct mu_err *);
typedef int encode_fn(const union msg *, msgpack_sbuffer *, struct mu_err *);

/* Type-safe adapters from the union to each codec's own struct. */
#define ADAPT(fn, member)						\
static int								\
dec_##fn(const void *buf, size_t len, union msg *m, struct mu_err *err)	\
{									\
	return fn##_decode(buf, len, &m->member, err);			\
}									\
static int								\
enc_##fn(const union msg *m, msgpack_sbuffer *out, struct mu_err *err)	\
{									\
	return fn##_encode(&m->member, out, err);			\
}

ADAPT(job, job)
ADAPT(result, res)
ADAPT(event, ev)
ADAPT(status, st)
ADAPT(module_manifest, mm)
ADAPT(release_manifest, rm)
ADAPT(pointer, ptr)
ADAPT(module_artifact, ma)
ADAPT(binary_artifact, ba)
ADAPT(selftest_request, sq)
ADAPT(selftest_verdict, sv)

static int
dec_envelope(const void *buf, size_t len, union msg *m, struct mu_err *err)
{
	return envelope_decode(buf, len, &m->env, err);
}

static int
enc_envelope(const union msg *m, msgpack_sbuffer *out, struct mu_err *err)
{
	return envelope_encode(m->env.key, m->env.sig, m->env.body.ptr,
	    m->env.body.len, out, err);
}

static int
dec_agent_envelope(const void *buf, size_t len, union msg *m, struct mu_err *err)
{
	return agent_envelope_decode(buf, len, &m->aenv, err);
}

static int
enc_agent_envelope(const union msg *m, msgpack_sbuffer *out, struct mu_err *err)
{
	return agent_envelope_encode(m->aenv.cert, m->aenv.sig.ptr, m->aenv.sig.len,
	    m->aenv.body.ptr, m->aenv.body.len, out, err);
}

static int
dec_facts(const void *buf, size_t len, union msg *m, struct mu_err *err)
{
	memset(&m->fa.doc, 0, sizeof(m->fa.doc));
	return facts_decode(buf, len, &m->fa.f, err);
}

static int
dec_announce(const void *buf, size_t len, union msg *m, struct mu_err *err)
{
	return announce_decode(buf, len, &m->ann, err);
}

/* The encoder takes the expected hosts as names: each must be a string
 * that fits one (the encoder checks the rest). */
static int
enc_announce(const union msg *m, msgpack_sbuffer *out, struct mu_err *err)
{
	const struct announce *a = &m->ann;
	char (*names)[NAME_MAX_LEN + 1];
	size_t i, n = a->expected != NULL ? a->nexpected : 0;
	int rc = MU_OK;

	if (a->expected != NULL && a->expected->type != MSGPACK_OBJECT_ARRAY)
		return mu_errf(err, MU_EINVAL, "cannot encode: expected is not an array");
	if ((names = calloc(n + 1, sizeof(*names))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	for (i = 0; rc == MU_OK && i < n; i++) {
		const msgpack_object *o = &a->expected->via.array.ptr[i];

		if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > NAME_MAX_LEN)
			rc = mu_errf(err, MU_EINVAL, "cannot encode: expected hosts must be "
			    "valid names, sorted and unique");
		else if (o->via.str.size > 0)
			memcpy(names[i], o->via.str.ptr, o->via.str.size);
	}
	if (rc == MU_OK)
		rc = announce_encode(a, names, n, out, err);
	free(names);
	return rc;
}

static int
enc_facts(const union msg *m, msgpack_sbuffer *out, struct mu_err *err)
{
	return facts_encode(&m->fa.f, out, err);
}

static const struct codec {
	const char *name;
	decode_fn *decode;
	encode_fn *encode;
	void (*to_json)(struct jw *, const union msg *);
	void (*from_json)(struct jr *, union msg *);
	void (*free)(union msg *);	/* what the struct owns, if anything */
} codecs[] = {
	{ "envelope", dec_envelope, enc_envelope, tj_envelope, fj_envelope, NULL },
	{ "agent-envelope", dec_agent_envelope, enc_agent_envelope, tj_agent_envelope,
	    fj_agent_envelope, NULL },
	{ "job", dec_job, enc_job, tj_job, fj_job, NULL },
	{ "announce", dec_announce, enc_announce, tj_announce, fj_announce, NULL },
	{ "result", dec_result, enc_result, tj_result, fj_result, NULL },
	{ "event", dec_event, enc_event, tj_event, fj_event, NULL },
	{ "status", dec_status, enc_status, tj_status, fj_status, NULL },
	{ "module-manifest", dec_module_manifest, enc_module_manifest,
	    tj_module_manifest, fj_module_manifest, NULL },
	{ "release-manifest", dec_release_manifest, enc_release_manifest,
	    tj_release_manifest, fj_release_manifest, NULL },
	{ "pointer", dec_pointer, enc_pointer, tj_pointer, fj_pointer, NULL },
	{ "module-artifact", dec_module_artifact, enc_module_artifact,
	    tj_module_artifact, fj_module_artifact, NULL },
	{ "binary-artifact", dec_binary_artifact, enc_binary_artifact,
	    tj_binary_artifact, fj_binary_artifact, NULL },
	{ "selftest-request", dec_selftest_request, enc_selftest_request,
	    tj_selftest_request, fj_selftest_request, NULL },
	{ "selftest-verdict", dec_selftest_verdict, enc_selftest_verdict,
	    tj_selftest_verdict, fj_selftest_verdict, NULL },
	{ "facts", dec_facts, enc_facts, tj_facts, fj_facts, free_facts },
};

static const struct codec *
codec_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
		if (strcmp(codecs[i].name, name) == 0)
			return &codecs[i];
	return NULL;
}

/* ---- input and output ------------------------------------------------- */

static int
usage(void)
{
	size_t i;

	fprintf(stderr, "usage: muster-proto decode TYPE FILE\n"
	    "       muster-proto encode TYPE < JSON\n"
	    "       muster-proto verify-job KEYDIR FILE\n"
	    "       muster-proto sign-job KEYFILE < JSON\n"
	    "TYPE:");
	for (i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
		fprintf(stderr, " %s", codecs[i].name);
	fprintf(stderr, "\n");
	return EXIT_TOOL;
}

/* Print {"error": msg} (bytes outside printable ASCII as '?') and return rc. */
static int
fail(int rc, const char *step, const char *msg)
{
	char clean[sizeof(((struct mu_err *)0)->msg) + 64];
	json_t *o;
	size_t i;

	snprintf(clean, sizeof(clean), "%s%s%s", step, step[0] ? ": " : "", msg);
	for (i = 0; clean[i] != '\0'; i++)
		if (clean[i] < 0x20 || clean[i] > 0x7e)
			clean[i] = '?';
	if ((o = json_pack("{s:s}", "error", clean)) != NULL) {
		json_dumpf(o, stdout, JSON_COMPACT);
		json_decref(o);
	}
	printf("\n");
	return rc;
}

/* Read all of path ("-" = stdin), up to one byte over the largest message. */
static int
read_all(const char *path, uint8_t **out, size_t *outlen)
{
	const size_t max = WIRE_MAX_MSG + 1;
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t len = 0, cap = 65536, n;
	uint8_t *buf, *nb;
	int rc = -1;

	if (f == NULL)
		return -1;
	if ((buf = malloc(cap)) == NULL)
		goto done;
	while ((n = fread(buf + len, 1, cap - len, f)) > 0 && (len += n) < max) {
		if (len < cap)
			continue;
		cap = cap * 2 < max ? cap * 2 : max;
		if ((nb = realloc(buf, cap)) == NULL)
			goto done;
		buf = nb;
	}
	if (!ferror(f))
		rc = 0;
done:
	if (f != stdin)
		fclose(f);
	if (rc != 0)
		free(buf);
	*out = rc == 0 ? buf : NULL, *outlen = len;
	return rc;
}

static int
write_all(const void *p, size_t n)
{
	if (fwrite(p, 1, n, stdout) != n || fflush(stdout) != 0) {
		fprintf(stderr, "muster-proto: write error\n");
		return EXIT_TOOL;
	}
	return 0;
}

static int
print_json(const struct codec *c, const union msg *m)
{
	struct jw w = { json_object(), NULL };
	int rc = 0;

	if (w.o != NULL)
		c->to_json(&w, m);
	if (w.o == NULL || w.bad != NULL)
		rc = fail(EXIT_TOOL, "tool", "decoded value cannot be shown in JSON");
	else if (json_dumpf(w.o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII) != 0 ||
	    printf("\n") < 0 || fflush(stdout) != 0)
		rc = EXIT_TOOL;
	json_decref(w.o);
	return rc;
}

static json_t *
read_json(void)
{
	json_error_t jerr;
	json_t *o = json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr);

	if (o == NULL)
		fprintf(stderr, "muster-proto: stdin:%d: %s\n", jerr.line, jerr.text);
	else if (!json_is_object(o)) {
		fprintf(stderr, "muster-proto: stdin is not a JSON object\n");
		json_decref(o);
		o = NULL;
	}
	return o;
}

static void
hold_init(struct hold *h)
{
	size_t i;

	memset(h, 0, sizeof(*h));
	for (i = 0; i < MAX_OBJECTS; i++) {
		msgpack_sbuffer_init(&h->sb[i]);
		msgpack_unpacked_init(&h->up[i]);
	}
}

static void
hold_free(struct hold *h)
{
	size_t i;

	for (i = 0; i < h->nblobs; i++)
		free(h->blobs[i]);
	for (i = 0; i < MAX_OBJECTS; i++) {
		msgpack_sbuffer_destroy(&h->sb[i]);
		msgpack_unpacked_destroy(&h->up[i]);
	}
}

/* Fill m from a JSON object with c's reader; everything m borrows is in o or h. */
static int
from_json(const struct codec *c, json_t *o, union msg *m, struct hold *h,
    struct mu_err *err)
{
	struct jr r = { .o = o, .h = h, .err = err };

	memset(m, 0, sizeof(*m));
	c->from_json(&r, m);
	jr_done(&r);
	return r.rc;
}

/* ---- commands --------------------------------------------------------- */

static int
cmd_decode(const char *type, const char *path)
{
	const struct codec *c = codec_find(type);
	struct mu_err err;
	union msg m;
	uint8_t *buf;
	size_t len;
	int rc;

	if (c == NULL)
		return usage();
	if (read_all(path, &buf, &len) != 0) {
		fprintf(stderr, "muster-proto: cannot read %s\n", path);
		return EXIT_TOOL;
	}
	if (c->decode(buf, len, &m, &err) != MU_OK)
		rc = fail(EXIT_REFUSED, "", err.msg);
	else {
		rc = print_json(c, &m);
		wire_doc_free(msg_doc(&m));
		if (c->free)
			c->free(&m);
	}
	free(buf);
	return rc;
}

static int
cmd_encode(const char *type)
{
	const struct codec *c = codec_find(type);
	msgpack_sbuffer out;
	struct mu_err err;
	struct hold h;
	union msg m;
	json_t *o;
	int rc;

	if (c == NULL)
		return usage();
	if ((o = read_json()) == NULL)
		return EXIT_TOOL;
	hold_init(&h);
	msgpack_sbuffer_init(&out);
	if (from_json(c, o, &m, &h, &err) != MU_OK ||
	    c->encode(&m, &out, &err) != MU_OK)
		rc = fail(EXIT_REFUSED, "", err.msg);
	else
		rc = write_all(out.data, out.size);
	if (c->free)
		c->free(&m);
	msgpack_sbuffer_destroy(&out);
	hold_free(&h);
	json_decref(o);
	return rc;
}

static int
sign_job(const struct sign_key *k, json_t *o, msgpack_sbuffer *out)
{
	const struct codec *c = codec_find("job");
	msgpack_sbuffer body;
	struct mu_err err;
	struct hold h;
	union msg m;
	int rc;

	hold_init(&h);
	msgpack_sbuffer_init(&body);
	if (from_json(c, o, &m, &h, &err) != MU_OK ||
	    job_encode(&m.job, &body, &err) != MU_OK)
		rc = fail(EXIT_REFUSED, "job", err.msg);
	else if (envelope_sign(k, body.data, body.size, out, &err) != MU_OK)
		rc = fail(EXIT_REFUSED, "sign", err.msg);
	else
		rc = 0;
	msgpack_sbuffer_destroy(&body);
	hold_free(&h);
	return rc;
}

static int
cmd_sign_job(const char *keyfile)
{
	struct sign_key *k;
	msgpack_sbuffer out;
	struct mu_err err;
	json_t *o;
	int rc;

	if (sign_key_load_private(keyfile, &k, &err) != MU_OK)
		return fail(EXIT_TOOL, "key", err.msg);
	if ((o = read_json()) == NULL) {
		sign_key_free(k);
		return EXIT_TOOL;
	}
	msgpack_sbuffer_init(&out);
	rc = sign_job(k, o, &out);
	if (rc == 0)
		rc = write_all(out.data, out.size);
	msgpack_sbuffer_destroy(&out);
	json_decref(o);
	sign_key_free(k);
	return rc;
}

/* Envelope, then signature, then body: the order the agent checks in. */
static int
verify_job(const struct keyring *ring, const uint8_t *buf, size_t len)
{
	struct job_envelope env;
	struct mu_err err;
	union msg m;
	int rc;

	if (envelope_decode(buf, len, &env, &err) != MU_OK)
		return fail(EXIT_REFUSED, "envelope", err.msg);
	if ((rc = envelope_verify(ring, &env, &err)) != MU_OK)
		rc = fail(EXIT_REFUSED, rc == MU_ETRUST ? "untrusted" : "signature",
		    err.msg);
	else if (job_decode(env.body.ptr, env.body.len, &m.job, &err) != MU_OK)
		rc = fail(EXIT_REFUSED, "job", err.msg);
	else {
		rc = print_json(codec_find("job"), &m);
		wire_doc_free(&m.job.doc);
	}
	wire_doc_free(&env.doc);
	return rc;
}

static void
keyring_warn(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "muster-proto: %s\n", msg);
}

static int
cmd_verify_job(const char *keydir, const char *path)
{
	struct keyring ring = { NULL, 0 };
	struct mu_err err;
	uint8_t *buf;
	size_t len;
	int rc;

	if (keyring_load_dir(&ring, keydir, keyring_warn, NULL, &err) != MU_OK)
		return fail(EXIT_TOOL, "keyring", err.msg);
	if (read_all(path, &buf, &len) != 0) {
		fprintf(stderr, "muster-proto: cannot read %s\n", path);
		keyring_free(&ring);
		return EXIT_TOOL;
	}
	rc = verify_job(&ring, buf, len);
	free(buf);
	keyring_free(&ring);
	return rc;
}

int
main(int argc, char *argv[])
{
	if (argc == 4 && strcmp(argv[1], "decode") == 0)
		return cmd_decode(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "encode") == 0)
		return cmd_encode(argv[2]);
	if (argc == 4 && strcmp(argv[1], "verify-job") == 0)
		return cmd_verify_job(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "sign-job") == 0)
		return cmd_sign_job(argv[2]);
	return usage();
}
