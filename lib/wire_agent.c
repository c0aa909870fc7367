/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire_agent.c - codecs for what an agent publishes (design.md §3): the signed
 * agent envelope around every agent message, and the result, event and
 * status bodies inside it.
 */
#include "wire_internal.h"
#include "util.h"

#include <string.h>

/* ---- agent envelope --------------------------------------------------- */

int
agent_envelope_decode(const void *buf, size_t len, struct agent_envelope *out,
    struct mu_err *err)
{
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_ident(&r, "cert", true, out->cert, sizeof(out->cert), sha256hex_valid,
	    "a certificate fingerprint (64 lowercase hex digits)");
	if (!rc)
		rc = rd_bin(&r, "sig", true, WIRE_MAX_HOSTSIG, &out->sig);
	if (!rc && out->sig.len == 0)
		rc = mu_errf(err, MU_EINVAL, "key 'sig' is empty");
	if (!rc)
		rc = rd_bin(&r, "body", true, WIRE_MAX_AGENT_BODY, &out->body);
	if (!rc && out->body.len == 0)
		rc = mu_errf(err, MU_EINVAL, "key 'body' is empty");
	return doc_close(&out->doc, rc);
}

int
agent_envelope_encode(const char *cert, const void *sig, size_t sig_len,
    const void *body, size_t body_len, msgpack_sbuffer *out, struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need(cert != NULL && sha256hex_valid(cert), err, "bad certificate fingerprint");
	if (!rc)
		rc = need(sig != NULL && sig_len > 0 && sig_len <= WIRE_MAX_HOSTSIG, err,
		    "signature empty or too large");
	if (!rc)
		rc = need(body != NULL && body_len > 0 && body_len <= WIRE_MAX_AGENT_BODY,
		    err, "agent message body empty or too large");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 3);
	pk_kv_str(&pk, "cert", cert);
	pk_kv_bin(&pk, "sig", sig, sig_len);
	pk_kv_bin(&pk, "body", body, body_len);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

/* ---- result ----------------------------------------------------------- */

static const char *const result_statuses[] = {
	[RS_PASS] = "pass", [RS_FAIL] = "fail", [RS_ERROR] = "error",
	[RS_TIMEOUT] = "timeout", [RS_CRASHED] = "crashed",
	[RS_CANCELLED] = "cancelled", [RS_REJECTED] = "rejected",
	[RS_INTERRUPTED] = "interrupted",
};
#define NRESULT_STATUSES ((int)(sizeof(result_statuses) / sizeof(result_statuses[0])))

const char *
result_status_name(enum result_status s)
{
	if ((int)s < 0 || (int)s >= NRESULT_STATUSES)
		return "unknown";
	return result_statuses[s];
}

int
result_status_parse(const char *s, size_t len, enum result_status *out)
{
	int i;

	for (i = 0; i < NRESULT_STATUSES; i++)
		if (strlen(result_statuses[i]) == len && memcmp(result_statuses[i], s, len) == 0) {
			*out = (enum result_status)i;
			return MU_OK;
		}
	return MU_EINVAL;
}

static int
result_decode_module(struct rd *r, struct result *out)
{
	int rc;

	rc = rd_ident(r, "module", false, out->module, sizeof(out->module),
	    name_valid, "a module name");
	if (!rc)
		rc = rd_ident(r, "module_version", false, out->module_version,
		    sizeof(out->module_version), version_valid, "a version");
	if (!rc)
		rc = rd_ident(r, "module_sha256", false, out->module_sha256,
		    sizeof(out->module_sha256), sha256hex_valid, "a sha256");
	return rc;
}

static int
result_decode_outcome(struct rd *r, struct result *out)
{
	int rc, st;

	rc = rd_word(r, "status", result_statuses, NRESULT_STATUSES, &st);
	out->status = (enum result_status)st;
	if (!rc && out->kind == JOB_UNKNOWN && out->status != RS_REJECTED)
		rc = mu_errf(r->err, MU_EINVAL, "kind 'unknown' is only valid when rejected");
	if (!rc)
		rc = rd_str(r, "reason", false, WIRE_MAX_STR, &out->reason);
	if (!rc)
		rc = rd_str(r, "summary", false, WIRE_MAX_STR, &out->summary);
	if (!rc)
		rc = rd_str(r, "output", false, WIRE_MAX_STR, &out->output);
	if (!rc)
		rc = rd_bool(r, "truncated", false, &out->truncated);
	if (!rc)
		rc = rd_uint(r, "events_dropped", false, UINT64_MAX, &out->events_dropped);
	if (!rc)
		rc = rd_map(r, "data", &out->data);
	if (!rc)
		rc = rd_int32(r, "exit_code", &out->has_exit_code, &out->exit_code);
	if (!rc)
		rc = rd_int32(r, "signal", &out->has_signal, &out->signal);
	return rc;
}

int
result_decode(const void *buf, size_t len, struct result *out, struct mu_err *err)
{
	struct rd r;
	int rc, kind = 0;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_ident(&r, "job", true, out->job, sizeof(out->job), jobid_valid, "a job id");
	if (!rc)
		rc = rd_ident(&r, "host", true, out->host, sizeof(out->host), name_valid,
		    "a host name");
	if (!rc)
		rc = rd_word(&r, "kind", job_kinds, njob_kinds, &kind);
	out->kind = (enum job_kind)kind;
	if (!rc)
		rc = result_decode_outcome(&r, out);
	if (!rc)
		rc = result_decode_module(&r, out);
	if (!rc)
		rc = rd_uint(&r, "started_at", true, UINT64_MAX, &out->started_at);
	if (!rc)
		rc = rd_uint(&r, "finished_at", true, UINT64_MAX, &out->finished_at);
	if (!rc)
		rc = rd_ident(&r, "agent_version", true, out->agent_version,
		    sizeof(out->agent_version), version_valid, "a version");
	if (!rc)
		rc = rd_uint(&r, "seq", false, UINT64_MAX, &out->seq);
	out->has_seq = !rc && rd_find(&r, "seq") != NULL;
	return doc_close(&out->doc, rc);
}

static int
result_check(const struct result *x, struct mu_err *err)
{
	int rc;

	rc = need(jobid_valid(x->job) && name_valid(x->host), err, "bad job id or host");
	if (!rc)
		rc = need((int)x->status >= 0 && (int)x->status < NRESULT_STATUSES &&
		    (int)x->kind >= 0 && (int)x->kind < njob_kinds &&
		    (x->kind != JOB_UNKNOWN || x->status == RS_REJECTED), err,
		    "bad kind or status");
	if (!rc)
		rc = need_view(x->reason, WIRE_MAX_STR, err, "reason too long");
	if (!rc)
		rc = need_view(x->summary, WIRE_MAX_STR, err, "summary too long");
	if (!rc)
		rc = need_view(x->output, WIRE_MAX_STR, err, "output too long");
	if (!rc && x->data)
		rc = need(wire_check_map(x->data, NULL) == MU_OK, err, "bad data map");
	if (!rc)
		rc = need((!x->module[0] || name_valid(x->module)) &&
		    (!x->module_version[0] || version_valid(x->module_version)) &&
		    (!x->module_sha256[0] || sha256hex_valid(x->module_sha256)), err,
		    "bad module fields");
	if (!rc)
		rc = need(version_valid(x->agent_version), err, "bad agent version");
	return rc;
}

static void
result_pack_optional(msgpack_packer *pk, const struct result *x)
{
	if (x->reason.ptr)
		pk_kv_view(pk, "reason", x->reason);
	if (x->summary.ptr)
		pk_kv_view(pk, "summary", x->summary);
	if (x->output.ptr)
		pk_kv_view(pk, "output", x->output);
	if (x->truncated)
		pk_kv_bool(pk, "truncated", true);
	if (x->events_dropped)
		pk_kv_uint(pk, "events_dropped", x->events_dropped);
	if (x->data) {
		pk_key(pk, "data");
		msgpack_pack_object(pk, *x->data);
	}
	if (x->has_exit_code) {
		pk_key(pk, "exit_code");
		msgpack_pack_int32(pk, x->exit_code);
	}
	if (x->has_signal) {
		pk_key(pk, "signal");
		msgpack_pack_int32(pk, x->signal);
	}
	if (x->module[0])
		pk_kv_str(pk, "module", x->module);
	if (x->module_version[0])
		pk_kv_str(pk, "module_version", x->module_version);
	if (x->module_sha256[0])
		pk_kv_str(pk, "module_sha256", x->module_sha256);
}

int
result_encode(const struct result *x, msgpack_sbuffer *out, struct mu_err *err)
{
	msgpack_packer pk;
	size_t n = 7, start;
	int rc;

	rc = result_check(x, err);
	if (rc)
		return rc;
	n += (x->reason.ptr != NULL) + (x->summary.ptr != NULL) +
	    (x->output.ptr != NULL) + x->truncated + (x->events_dropped != 0) +
	    (x->data != NULL) +
	    x->has_exit_code + x->has_signal + (x->module[0] != '\0') +
	    (x->module_version[0] != '\0') + (x->module_sha256[0] != '\0') + x->has_seq;
	start = pk_begin(&pk, out, n);
	pk_kv_str(&pk, "job", x->job);
	pk_kv_str(&pk, "host", x->host);
	pk_kv_str(&pk, "kind", job_kind_name(x->kind));
	pk_kv_str(&pk, "status", result_status_name(x->status));
	result_pack_optional(&pk, x);
	pk_kv_uint(&pk, "started_at", x->started_at);
	pk_kv_uint(&pk, "finished_at", x->finished_at);
	pk_kv_str(&pk, "agent_version", x->agent_version);
	if (x->has_seq)
		pk_kv_uint(&pk, "seq", x->seq);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

int
result_with_seq(const void *buf, size_t len, uint64_t seq, msgpack_sbuffer *out,
    struct mu_err *err)
{
	struct result r;
	int rc;

	if ((rc = result_decode(buf, len, &r, err)) != MU_OK)
		return rc;
	r.has_seq = true;
	r.seq = seq;
	rc = result_encode(&r, out, err);
	wire_doc_free(&r.doc);
	return rc;
}

/* ---- event ------------------------------------------------------------ */

static const char *const event_kinds[] = {
	[EV_ACCEPTED] = "accepted", [EV_STARTED] = "started",
	[EV_OUTPUT] = "output", [EV_PROGRESS] = "progress",
};
#define NEVENT_KINDS ((int)(sizeof(event_kinds) / sizeof(event_kinds[0])))

int
event_decode(const void *buf, size_t len, struct event *out, struct mu_err *err)
{
	uint64_t pct = 0;
	struct rd r;
	int rc, ev = 0;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_ident(&r, "job", true, out->job, sizeof(out->job), jobid_valid, "a job id");
	if (!rc)
		rc = rd_ident(&r, "host", true, out->host, sizeof(out->host), name_valid,
		    "a host name");
	if (!rc)
		rc = rd_uint(&r, "seq", true, UINT64_MAX, &out->seq);
	if (!rc)
		rc = rd_uint(&r, "at", true, UINT64_MAX, &out->at);
	if (!rc)
		rc = rd_word(&r, "event", event_kinds, NEVENT_KINDS, &ev);
	out->event = (enum event_kind)ev;
	if (!rc)
		rc = rd_str(&r, "text", false, WIRE_MAX_STR, &out->text);
	if (!rc)
		rc = rd_uint(&r, "pct", false, 100, &pct);
	out->has_pct = rd_find(&r, "pct") != NULL;
	out->pct = (uint8_t)pct;
	return doc_close(&out->doc, rc);
}

int
event_encode(const struct event *e, msgpack_sbuffer *out, struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need(jobid_valid(e->job) && name_valid(e->host), err, "bad job id or host");
	if (!rc)
		rc = need((int)e->event >= 0 && (int)e->event < NEVENT_KINDS &&
		    (!e->has_pct || e->pct <= 100), err, "bad event or pct");
	if (!rc)
		rc = need_view(e->text, WIRE_MAX_STR, err, "text too long");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 5 + (e->text.ptr != NULL) + e->has_pct);
	pk_kv_str(&pk, "job", e->job);
	pk_kv_str(&pk, "host", e->host);
	pk_kv_uint(&pk, "seq", e->seq);
	pk_kv_uint(&pk, "at", e->at);
	pk_kv_str(&pk, "event", event_kinds[e->event]);
	if (e->text.ptr)
		pk_kv_view(&pk, "text", e->text);
	if (e->has_pct)
		pk_kv_uint(&pk, "pct", e->pct);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

/* ---- status ----------------------------------------------------------- */

static int
status_decode_groups(struct rd *r, struct status *out)
{
	const msgpack_object *a;
	uint32_t i;
	int rc;

	rc = rd_get(r, "groups", true, MSGPACK_OBJECT_ARRAY, "an array", &a);
	if (rc)
		return rc;
	if (a->via.array.size > WIRE_MAX_GROUPS)
		return mu_errf(r->err, MU_EINVAL, "key 'groups' has more than %d items",
		    WIRE_MAX_GROUPS);
	for (i = 0; i < a->via.array.size; i++) {
		const msgpack_object *g = &a->via.array.ptr[i];
		char *dst = out->groups[i];

		if (g->type != MSGPACK_OBJECT_STR || g->via.str.size > NAME_MAX_LEN)
			return mu_errf(r->err, MU_EINVAL, "key 'groups' has an invalid name");
		memcpy(dst, g->via.str.ptr, g->via.str.size);
		dst[g->via.str.size] = '\0';
		if (strlen(dst) != g->via.str.size || !name_valid(dst))
			return mu_errf(r->err, MU_EINVAL, "key 'groups' has an invalid name");
	}
	out->ngroups = a->via.array.size;
	return MU_OK;
}

int
status_decode(const void *buf, size_t len, struct status *out, struct mu_err *err)
{
	static const char *const states[] = { "offline", "online" };
	struct rd r;
	int rc, st = 0;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_ident(&r, "host", true, out->host, sizeof(out->host), name_valid,
	    "a host name");
	if (!rc)
		rc = rd_word(&r, "state", states, 2, &st);
	out->online = st == 1;
	if (!rc)
		rc = rd_str(&r, "reason", false, WIRE_MAX_STR, &out->reason);
	if (!rc)
		rc = rd_ident(&r, "version", true, out->version, sizeof(out->version),
		    version_valid, "a version");
	if (!rc)
		rc = rd_ident(&r, "channel", true, out->channel, sizeof(out->channel),
		    name_valid, "a channel name");
	if (!rc)
		rc = status_decode_groups(&r, out);
	if (!rc)
		rc = rd_uint(&r, "started_at", true, UINT64_MAX, &out->started_at);
	if (!rc)
		rc = rd_uint(&r, "at", true, UINT64_MAX, &out->at);
	if (!rc)
		rc = rd_bin(&r, "cert_der", true, WIRE_MAX_CERT, &out->cert_der);
	if (!rc && out->cert_der.len == 0)
		rc = mu_errf(err, MU_EINVAL, "key 'cert_der' is empty");
	if (!rc)
		rc = rd_map(&r, "update", &out->update);
	return doc_close(&out->doc, rc);
}

int
status_encode(const struct status *s, msgpack_sbuffer *out, struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	size_t i;
	int rc;

	rc = need(name_valid(s->host) && version_valid(s->version) &&
	    name_valid(s->channel) && s->ngroups <= WIRE_MAX_GROUPS, err,
	    "bad host, version, channel or groups");
	for (i = 0; !rc && i < s->ngroups; i++)
		rc = need(name_valid(s->groups[i]), err, "bad group name");
	if (!rc)
		rc = need_view(s->reason, WIRE_MAX_STR, err, "reason too long");
	if (!rc)
		rc = need(s->cert_der.ptr != NULL && s->cert_der.len > 0 &&
		    s->cert_der.len <= WIRE_MAX_CERT, err, "certificate missing or too large");
	if (!rc && s->update)
		rc = wire_check_map(s->update, err);
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 8 + (s->reason.ptr != NULL) + (s->update != NULL));
	pk_kv_str(&pk, "host", s->host);
	pk_kv_str(&pk, "state", s->online ? "online" : "offline");
	if (s->reason.ptr)
		pk_kv_view(&pk, "reason", s->reason);
	pk_kv_str(&pk, "version", s->version);
	pk_kv_str(&pk, "channel", s->channel);
	pk_key(&pk, "groups");
	msgpack_pack_array(&pk, s->ngroups);
	for (i = 0; i < s->ngroups; i++)
		pk_str(&pk, s->groups[i], strlen(s->groups[i]));
	pk_kv_uint(&pk, "started_at", s->started_at);
	pk_kv_uint(&pk, "at", s->at);
	pk_kv_bin(&pk, "cert_der", s->cert_der.ptr, s->cert_der.len);
	if (s->update) {
		pk_key(&pk, "update");
		msgpack_pack_object(&pk, *s->update);
	}
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

void
status_update_field(const struct status *st, const char *key, char *out, size_t len)
{
	const msgpack_object_map *m;
	size_t klen = strlen(key);
	uint32_t i;

	out[0] = '\0';
	if (st->update == NULL || st->update->type != MSGPACK_OBJECT_MAP)
		return;
	m = &st->update->via.map;
	for (i = 0; i < m->size; i++)
		if (m->ptr[i].key.type == MSGPACK_OBJECT_STR &&
		    m->ptr[i].key.via.str.size == klen &&
		    memcmp(m->ptr[i].key.via.str.ptr, key, klen) == 0 &&
		    m->ptr[i].val.type == MSGPACK_OBJECT_STR) {
			printable_copy(out, len, m->ptr[i].val.via.str.ptr,
			    m->ptr[i].val.via.str.size);
			return;
		}
}

static bool
word_in(const char *w, const char *const *words)
{
	for (; *words; words++)
		if (strcmp(w, *words) == 0)
			return true;
	return false;
}

enum release_stage
status_release_stage(const struct status *st, char version[WIRE_MAX_VERSION + 1])
{
	static const char *const failing[] = { "failed", "rolled_back", NULL };
	static const char *const trying[] = { "staging", "testing", "installing",
	    "verifying", NULL };
	char state[32];

	status_update_field(st, "state", state, sizeof(state));
	status_update_field(st, "version", version, WIRE_MAX_VERSION + 1);
	if (version_valid(version)) {
		if (word_in(state, failing))
			return RSTAGE_FAILED;
		if (word_in(state, trying))
			return RSTAGE_TRYING;
		if (strcmp(state, "halted") == 0)
			return RSTAGE_HALTED;
	}
	memcpy(version, st->version, WIRE_MAX_VERSION + 1);
	return RSTAGE_RUNS;
}
