/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire_job.c - codecs for what the operator signs and an agent runs (design.md §3):
 * the job envelope (key id, Ed25519 signature, signed body) and the job
 * body inside it.
 */
#include "facts.h"
#include "wire_internal.h"

#include <string.h>

static bool
keyid_valid(const char *s)
{
	size_t i;

	for (i = 0; i < KEYID_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[KEYID_HEX_LEN] == '\0';
}

/* ---- job envelope ----------------------------------------------------- */

int
envelope_decode(const void *buf, size_t len, struct job_envelope *out,
    struct mu_err *err)
{
	return envelope_decode_max(buf, len, WIRE_MAX_BODY, out, err);
}

int
envelope_decode_max(const void *buf, size_t len, size_t max_body,
    struct job_envelope *out, struct mu_err *err)
{
	struct wire_bytes sig;
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_ident(&r, "key", true, out->key, sizeof(out->key), keyid_valid,
	    "a key id (16 lowercase hex digits)");
	if (!rc)
		rc = rd_bin(&r, "sig", true, ED25519_SIG_LEN, &sig);
	if (!rc && sig.len != ED25519_SIG_LEN)
		rc = mu_errf(err, MU_EINVAL, "key 'sig' must be %d bytes", ED25519_SIG_LEN);
	if (!rc)
		memcpy(out->sig, sig.ptr, ED25519_SIG_LEN);
	if (!rc)
		rc = rd_bin(&r, "body", true, max_body, &out->body);
	if (!rc && out->body.len == 0)
		rc = mu_errf(err, MU_EINVAL, "key 'body' is empty");
	return doc_close(&out->doc, rc);
}

int
envelope_encode(const char *key, const uint8_t sig[ED25519_SIG_LEN],
    const void *body, size_t body_len, msgpack_sbuffer *out, struct mu_err *err)
{
	return envelope_encode_max(key, sig, body, body_len, WIRE_MAX_BODY, out, err);
}

int
envelope_encode_max(const char *key, const uint8_t sig[ED25519_SIG_LEN],
    const void *body, size_t body_len, size_t max_body, msgpack_sbuffer *out,
    struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need(key != NULL && keyid_valid(key), err, "bad key id");
	if (!rc)
		rc = need(body != NULL && body_len > 0 && body_len <= max_body, err,
		    "job body empty or too large");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 3);
	pk_kv_str(&pk, "key", key);
	pk_kv_bin(&pk, "sig", sig, ED25519_SIG_LEN);
	pk_kv_bin(&pk, "body", body, body_len);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

/* ---- job body --------------------------------------------------------- */

const char *const job_kinds[] = {
	[JOB_UNKNOWN] = "unknown", [JOB_RUN] = "run", [JOB_PING] = "ping",
	[JOB_VERSION] = "version", [JOB_CANCEL] = "cancel", [JOB_UPDATE] = "update",
};
#define NJOB_KINDS ((int)(sizeof(job_kinds) / sizeof(job_kinds[0])))
const int njob_kinds = NJOB_KINDS;

const char *
job_kind_name(enum job_kind k)
{
	if ((int)k < 0 || (int)k >= NJOB_KINDS)
		return "unknown";
	return job_kinds[k];
}

enum job_kind
job_kind_parse(const char *s, size_t len)
{
	int i;

	for (i = 1; i < NJOB_KINDS; i++)
		if (strlen(job_kinds[i]) == len && memcmp(job_kinds[i], s, len) == 0)
			return (enum job_kind)i;
	return JOB_UNKNOWN;
}

/* "target": host/<name>, group/<name> or all (also an announce's). */
int
rd_target(struct rd *r, struct job_target *out)
{
	char target[NAME_MAX_LEN + 8];
	struct mu_err why;
	struct wire_str s;
	int rc;

	rc = rd_str(r, "target", true, sizeof(target) - 1, &s);
	if (rc)
		return rc;
	memcpy(target, s.ptr, s.len);
	target[s.len] = '\0';
	if (memchr(s.ptr, '\0', s.len) != NULL || target_parse(target, out, &why) != MU_OK)
		return mu_errf(r->err, MU_EINVAL, "key 'target' is not host/<name>, "
		    "group/<name> or all");
	return MU_OK;
}

static int
job_decode_kind_fields(struct rd *r, struct job *out)
{
	int rc = MU_OK;

	if (out->kind == JOB_RUN) {
		rc = rd_ident(r, "module", true, out->module, sizeof(out->module),
		    name_valid, "a module name");
		if (!rc)
			rc = rd_ident(r, "module_sha256", false, out->module_sha256,
			    sizeof(out->module_sha256), sha256hex_valid,
			    "a sha256 (64 lowercase hex digits)");
		if (!rc)
			rc = rd_map(r, "args", &out->args);
		if (!rc)
			rc = rd_uint(r, "timeout_ms", false, UINT32_MAX, &out->timeout_ms);
		if (!rc)
			rc = rd_bool(r, "stream", false, &out->stream);
	} else if (out->kind == JOB_CANCEL) {
		rc = rd_ident(r, "cancel", true, out->cancel, sizeof(out->cancel),
		    jobid_valid, "a job id");
	}
	return rc;
}

int
job_decode(const void *buf, size_t len, struct job *out, struct mu_err *err)
{
	struct wire_str kind;
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > WIRE_MAX_BODY)
		return mu_errf(err, MU_EINVAL, "job body is over %u bytes", WIRE_MAX_BODY);
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_ident(&r, "id", true, out->id, sizeof(out->id), jobid_valid,
	    "a job id ([A-Za-z0-9._-]{1,64})");
	if (!rc && jobid_reserved(out->id))
		rc = mu_errf(err, MU_EINVAL, "key 'id' starts with the reserved prefix '"
		    JOBID_RESERVED_PREFIX "'");
	if (!rc)
		rc = rd_str(&r, "kind", true, 16, &kind);
	if (!rc && (out->kind = job_kind_parse(kind.ptr, kind.len)) == JOB_UNKNOWN)
		rc = mu_errf(err, MU_EINVAL, "key 'kind' has an unknown value '%.*s'",
		    (int)kind.len, kind.ptr);
	if (!rc)
		rc = rd_target(&r, &out->target);
	if (!rc)
		rc = rd_uint(&r, "issued_at", true, UINT64_MAX, &out->issued_at);
	if (!rc)
		rc = rd_uint(&r, "not_after", true, UINT64_MAX, &out->not_after);
	if (!rc)
		rc = rd_str(&r, "operator", false, 256, &out->operator_);
	if (!rc)
		rc = rd_ident(&r, "aud", false, out->aud, sizeof(out->aud), aud_valid,
		    "a fleet (<topic_root>/v1)");
	if (!rc)
		rc = job_decode_kind_fields(&r, out);
	if (!rc && rd_find(&r, "filter") != NULL)
		rc = rd_get(&r, "filter", true, MSGPACK_OBJECT_ARRAY, "an array", &out->filter);
	return doc_close(&out->doc, rc);
}

static int
job_check(const struct job *j, struct mu_err *err)
{
	char target[NAME_MAX_LEN + 8];
	int rc;

	rc = need(jobid_valid(j->id), err, "bad job id");
	if (!rc)
		rc = need(!jobid_reserved(j->id), err, "job ids starting with '"
		    JOBID_RESERVED_PREFIX "' are reserved for refusals");
	if (!rc)
		rc = need(aud_valid(j->aud), err, "bad or missing aud (want <topic_root>/v1)");
	if (!rc)
		rc = need(j->kind > JOB_UNKNOWN && j->kind < NJOB_KINDS, err, "bad job kind");
	if (!rc)
		rc = need(target_format(&j->target, target, sizeof(target)) == MU_OK, err,
		    "bad target");
	if (!rc)
		rc = need_view(j->operator_, 256, err, "operator too long");
	if (!rc && j->kind == JOB_RUN) {
		rc = need(name_valid(j->module), err, "bad module name");
		if (!rc && j->module_sha256[0])
			rc = need(sha256hex_valid(j->module_sha256), err, "bad module_sha256");
		if (!rc && j->args)
			rc = need(wire_check_map(j->args, NULL) == MU_OK, err,
			    "args must be a map of depth <= 8 with string keys");
		if (!rc)
			rc = need(j->timeout_ms <= UINT32_MAX, err, "timeout too large");
	}
	if (!rc && j->kind == JOB_CANCEL)
		rc = need(jobid_valid(j->cancel), err, "bad cancel id");
	if (!rc && j->filter) {
		struct fact_filter f;

		rc = filter_decode(j->filter, &f, err);
	}
	return rc;
}

int
job_encode(const struct job *j, msgpack_sbuffer *out, struct mu_err *err)
{
	char target[NAME_MAX_LEN + 8];
	msgpack_packer pk;
	size_t n = 6, start;
	int rc;

	rc = job_check(j, err);
	if (rc)
		return rc;
	target_format(&j->target, target, sizeof(target));
	n += j->operator_.ptr != NULL;
	if (j->kind == JOB_RUN)
		n += 1 + (j->module_sha256[0] != '\0') + (j->args != NULL) +
		    (j->timeout_ms != 0) + j->stream;
	if (j->kind == JOB_CANCEL)
		n++;
	n += j->filter != NULL;
	start = pk_begin(&pk, out, n);
	pk_kv_str(&pk, "id", j->id);
	pk_kv_str(&pk, "kind", job_kind_name(j->kind));
	pk_kv_str(&pk, "target", target);
	pk_kv_uint(&pk, "issued_at", j->issued_at);
	pk_kv_uint(&pk, "not_after", j->not_after);
	if (j->operator_.ptr)
		pk_kv_view(&pk, "operator", j->operator_);
	pk_kv_str(&pk, "aud", j->aud);
	if (j->kind == JOB_RUN) {
		pk_kv_str(&pk, "module", j->module);
		if (j->module_sha256[0])
			pk_kv_str(&pk, "module_sha256", j->module_sha256);
		if (j->args) {
			pk_key(&pk, "args");
			msgpack_pack_object(&pk, *j->args);
		}
		if (j->timeout_ms)
			pk_kv_uint(&pk, "timeout_ms", j->timeout_ms);
		if (j->stream)
			pk_kv_bool(&pk, "stream", true);
	}
	if (j->kind == JOB_CANCEL)
		pk_kv_str(&pk, "cancel", j->cancel);
	if (j->filter) {
		pk_key(&pk, "filter");
		msgpack_pack_object(&pk, *j->filter);
	}
	return pk_finish(out, start, WIRE_MAX_BODY, err);
}
