/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire_announce.c - the job announce (design.md §3, R/jobs/<job>): the
 * body the CLI signs before each job so that muster-server knows which
 * hosts should answer it.  It repeats what the job says (kind, module,
 * args, target, filter, window) plus the expected hosts, so that a server
 * can later send the same job again (`muster retry`).
 *
 * The expected hosts are bounded (WIRE_MAX_EXPECTED), each a valid host
 * name, sorted and unique: a reader can search them, and two encodings of
 * one set are the same bytes.
 */
#include "facts.h"
#include "wire_internal.h"

#include <string.h>

/* A job kind an announce may name: what send publishes (not cancel). */
static bool
announced_kind(enum job_kind k)
{
	return k == JOB_RUN || k == JOB_PING || k == JOB_VERSION || k == JOB_UPDATE;
}

/* Each a valid host name, in strictly increasing byte order. */
static int
decode_expected(struct rd *r, struct announce *out)
{
	char prev[NAME_MAX_LEN + 1] = "", cur[NAME_MAX_LEN + 1];
	const msgpack_object *a, *o;
	uint32_t i;
	int rc;

	rc = rd_get(r, "expected", true, MSGPACK_OBJECT_ARRAY, "an array", &a);
	if (rc)
		return rc;
	if (a->via.array.size > WIRE_MAX_EXPECTED)
		return mu_errf(r->err, MU_EINVAL, "key 'expected' has more than %u hosts",
		    WIRE_MAX_EXPECTED);
	for (i = 0; i < a->via.array.size; i++) {
		o = &a->via.array.ptr[i];
		if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
		    o->via.str.size > NAME_MAX_LEN)
			return mu_errf(r->err, MU_EINVAL, "key 'expected' item %u is not "
			    "a host name", i);
		memcpy(cur, o->via.str.ptr, o->via.str.size);
		cur[o->via.str.size] = '\0';
		if (strlen(cur) != o->via.str.size || !name_valid(cur))
			return mu_errf(r->err, MU_EINVAL, "key 'expected' item %u is not "
			    "a host name", i);
		if (i > 0 && strcmp(prev, cur) >= 0)
			return mu_errf(r->err, MU_EINVAL, "key 'expected' is not sorted "
			    "and unique at item %u", i);
		memcpy(prev, cur, sizeof(cur));
	}
	out->expected = a;
	out->nexpected = a->via.array.size;
	return MU_OK;
}

static int
decode_job_fields(struct rd *r, struct announce *out)
{
	struct fact_filter f;
	struct wire_str kind;
	int rc;

	rc = rd_str(r, "job_kind", true, 16, &kind);
	if (!rc && !announced_kind(out->job_kind = job_kind_parse(kind.ptr, kind.len)))
		rc = mu_errf(r->err, MU_EINVAL, "key 'job_kind' has an unknown value "
		    "'%.*s'", (int)kind.len, kind.ptr);
	if (!rc && out->job_kind == JOB_RUN)
		rc = rd_ident(r, "module", true, out->module, sizeof(out->module),
		    name_valid, "a module name");
	if (!rc && out->job_kind == JOB_RUN)
		rc = rd_map(r, "args", &out->args);
	if (!rc)
		rc = rd_uint(r, "timeout_ms", false, UINT32_MAX, &out->timeout_ms);
	if (!rc)
		rc = rd_bool(r, "stream", false, &out->stream);
	/* Stored and shown by the server, so held to the agent's rules here
	 * rather than at the host. */
	if (!rc && rd_find(r, "filter") != NULL)
		rc = rd_get(r, "filter", true, MSGPACK_OBJECT_ARRAY, "an array", &out->filter);
	if (!rc && out->filter != NULL)
		rc = filter_decode(out->filter, &f, r->err);
	return rc;
}

int
announce_decode(const void *buf, size_t len, struct announce *out, struct mu_err *err)
{
	const char *const kinds[] = { "announce" };
	struct rd r;
	int kind, rc;

	memset(out, 0, sizeof(*out));
	if (len > WIRE_MAX_ANNOUNCE)
		return mu_errf(err, MU_EINVAL, "announce body is over %u bytes",
		    WIRE_MAX_ANNOUNCE);
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_word(&r, "kind", kinds, 1, &kind);
	if (!rc)
		rc = rd_ident(&r, "id", true, out->id, sizeof(out->id), jobid_valid,
		    "a job id ([A-Za-z0-9._-]{1,64})");
	if (!rc && jobid_reserved(out->id))
		rc = mu_errf(err, MU_EINVAL, "key 'id' starts with the reserved prefix '"
		    JOBID_RESERVED_PREFIX "'");
	if (!rc)
		rc = rd_ident(&r, "aud", true, out->aud, sizeof(out->aud), aud_valid,
		    "a fleet (<topic_root>/v1)");
	if (!rc)
		rc = rd_uint(&r, "issued_at", true, UINT64_MAX, &out->issued_at);
	if (!rc)
		rc = rd_uint(&r, "not_after", true, UINT64_MAX, &out->not_after);
	if (!rc)
		rc = rd_str(&r, "operator", false, 256, &out->operator_);
	if (!rc)
		rc = rd_target(&r, &out->target);
	if (!rc)
		rc = decode_job_fields(&r, out);
	if (!rc)
		rc = decode_expected(&r, out);
	return doc_close(&out->doc, rc);
}

void
announce_host(const struct announce *a, size_t i, char out[NAME_MAX_LEN + 1])
{
	const msgpack_object *o = &a->expected->via.array.ptr[i];

	memcpy(out, o->via.str.ptr, o->via.str.size);
	out[o->via.str.size] = '\0';
}

static int
announce_check(const struct announce *a, const char (*expected)[NAME_MAX_LEN + 1],
    size_t n, struct mu_err *err)
{
	char target[NAME_MAX_LEN + 8];
	struct fact_filter f;
	size_t i;
	int rc;

	rc = need(jobid_valid(a->id) && !jobid_reserved(a->id), err, "bad job id");
	if (!rc)
		rc = need(aud_valid(a->aud), err, "bad or missing aud (want <topic_root>/v1)");
	if (!rc)
		rc = need(announced_kind(a->job_kind), err, "bad job kind for an announce");
	if (!rc)
		rc = need(target_format(&a->target, target, sizeof(target)) == MU_OK, err,
		    "bad target");
	if (!rc)
		rc = need_view(a->operator_, 256, err, "operator too long");
	if (!rc && a->job_kind == JOB_RUN)
		rc = need(name_valid(a->module), err, "bad module name");
	if (!rc && a->args)
		rc = need(a->job_kind == JOB_RUN && wire_check_map(a->args, NULL) == MU_OK,
		    err, "args must be a map of depth <= 8 with string keys (run only)");
	if (!rc)
		rc = need(a->timeout_ms <= UINT32_MAX, err, "timeout too large");
	if (!rc && a->filter)
		rc = filter_decode(a->filter, &f, err);
	if (!rc)
		rc = need(n <= WIRE_MAX_EXPECTED, err, "too many expected hosts");
	for (i = 0; !rc && i < n; i++)
		rc = need(name_valid(expected[i]) &&
		    (i == 0 || strcmp(expected[i - 1], expected[i]) < 0), err,
		    "expected hosts must be valid names, sorted and unique");
	return rc;
}

int
announce_encode(const struct announce *a, const char (*expected)[NAME_MAX_LEN + 1],
    size_t nexpected, msgpack_sbuffer *out, struct mu_err *err)
{
	char target[NAME_MAX_LEN + 8];
	msgpack_packer pk;
	size_t i, n = 8, start;
	int rc;

	rc = announce_check(a, expected, nexpected, err);
	if (rc)
		return rc;
	target_format(&a->target, target, sizeof(target));
	n += (a->operator_.ptr != NULL) + (a->filter != NULL) + (a->timeout_ms != 0) +
	    a->stream + (a->job_kind == JOB_RUN) + (a->args != NULL);
	start = pk_begin(&pk, out, n);
	pk_kv_str(&pk, "kind", "announce");
	pk_kv_str(&pk, "id", a->id);
	pk_kv_str(&pk, "aud", a->aud);
	pk_kv_uint(&pk, "issued_at", a->issued_at);
	pk_kv_uint(&pk, "not_after", a->not_after);
	if (a->operator_.ptr)
		pk_kv_view(&pk, "operator", a->operator_);
	pk_kv_str(&pk, "target", target);
	if (a->filter) {
		pk_key(&pk, "filter");
		msgpack_pack_object(&pk, *a->filter);
	}
	pk_kv_str(&pk, "job_kind", job_kind_name(a->job_kind));
	if (a->job_kind == JOB_RUN)
		pk_kv_str(&pk, "module", a->module);
	if (a->args) {
		pk_key(&pk, "args");
		msgpack_pack_object(&pk, *a->args);
	}
	if (a->timeout_ms)
		pk_kv_uint(&pk, "timeout_ms", a->timeout_ms);
	if (a->stream)
		pk_kv_bool(&pk, "stream", true);
	pk_key(&pk, "expected");
	msgpack_pack_array(&pk, nexpected);
	for (i = 0; i < nexpected; i++)
		pk_str(&pk, expected[i], strlen(expected[i]));
	return pk_finish(out, start, WIRE_MAX_ANNOUNCE, err);
}
