/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire_manifest.c - codecs for what an operator publishes for agents to fetch
 * (design.md §3): module and release manifests, the signed pointers that
 * carry a manifest and its OpenPGP signature, and the module and binary
 * artifacts.
 */
#include "wire_internal.h"

#include <string.h>

/* ---- manifests -------------------------------------------------------- */

static int
rd_kind(struct rd *r, const char *want)
{
	const char *const words[] = { want };
	int i;

	return rd_word(r, "kind", words, 1, &i);
}

/* "withdrawn": an optional array of sha256 hex strings. */
static int
rd_withdrawn(struct rd *r, struct module_manifest *out)
{
	const msgpack_object *a;
	uint32_t i;
	int rc;

	rc = rd_get(r, "withdrawn", false, MSGPACK_OBJECT_ARRAY, "an array", &a);
	if (rc == MU_ENOENT)
		return MU_OK;
	if (rc)
		return rc;
	if (a->via.array.size > WIRE_MAX_WITHDRAWN)
		return mu_errf(r->err, MU_EINVAL, "key 'withdrawn' has more than %d items",
		    WIRE_MAX_WITHDRAWN);
	for (i = 0; i < a->via.array.size; i++) {
		const msgpack_object *o = &a->via.array.ptr[i];
		char *dst = out->withdrawn[i];

		if (o->type != MSGPACK_OBJECT_STR || o->via.str.size != SHA256_HEX_LEN)
			return mu_errf(r->err, MU_EINVAL, "key 'withdrawn' has an invalid sha256");
		memcpy(dst, o->via.str.ptr, SHA256_HEX_LEN);
		dst[SHA256_HEX_LEN] = '\0';
		if (!sha256hex_valid(dst))
			return mu_errf(r->err, MU_EINVAL, "key 'withdrawn' has an invalid sha256");
	}
	out->nwithdrawn = a->via.array.size;
	return MU_OK;
}

int
module_manifest_decode(const void *buf, size_t len, struct module_manifest *out,
    struct mu_err *err)
{
	uint64_t abi = 0;
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_kind(&r, "module");
	if (!rc)
		rc = rd_ident(&r, "name", true, out->name, sizeof(out->name), name_valid,
		    "a module name");
	if (!rc)
		rc = rd_ident(&r, "version", true, out->version, sizeof(out->version),
		    version_valid, "a version");
	if (!rc)
		rc = rd_uint(&r, "abi", true, UINT32_MAX, &abi);
	out->abi = (uint32_t)abi;
	if (!rc)
		rc = rd_ident(&r, "sha256", true, out->sha256, sizeof(out->sha256),
		    sha256hex_valid, "a sha256");
	if (!rc)
		rc = rd_uint(&r, "size", true, WIRE_MAX_BIN, &out->size);
	if (!rc)
		rc = rd_uint(&r, "published_at", true, UINT64_MAX, &out->published_at);
	if (!rc)
		rc = rd_bool(&r, "net", false, &out->net);
	if (!rc)
		rc = rd_withdrawn(&r, out);
	return doc_close(&out->doc, rc);
}

int
module_manifest_encode(const struct module_manifest *m, msgpack_sbuffer *out,
    struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	size_t i;

	rc = need(name_valid(m->name) && version_valid(m->version) &&
	    sha256hex_valid(m->sha256) && m->size <= WIRE_MAX_BIN &&
	    m->nwithdrawn <= WIRE_MAX_WITHDRAWN, err,
	    "bad name, version, sha256, size or withdrawn");
	for (i = 0; !rc && i < m->nwithdrawn; i++)
		rc = need(sha256hex_valid(m->withdrawn[i]), err, "bad withdrawn sha256");
	if (rc)
		return rc;
	/* "net" and "withdrawn" only when there is something to say: a
	 * manifest without them stays byte for byte what agents before them
	 * read. */
	start = pk_begin(&pk, out, 7 + (m->net ? 1 : 0) + (m->nwithdrawn > 0));
	pk_kv_str(&pk, "kind", "module");
	pk_kv_str(&pk, "name", m->name);
	pk_kv_str(&pk, "version", m->version);
	pk_kv_uint(&pk, "abi", m->abi);
	pk_kv_str(&pk, "sha256", m->sha256);
	pk_kv_uint(&pk, "size", m->size);
	pk_kv_uint(&pk, "published_at", m->published_at);
	if (m->net)
		pk_kv_bool(&pk, "net", true);
	if (m->nwithdrawn > 0) {
		pk_key(&pk, "withdrawn");
		msgpack_pack_array(&pk, m->nwithdrawn);
		for (i = 0; i < m->nwithdrawn; i++)
			pk_str(&pk, m->withdrawn[i], SHA256_HEX_LEN);
	}
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

/* kind, channel and version: what a release manifest and a halt name. */
static int
rd_release_id(struct rd *r, const char *kind, char channel[NAME_MAX_LEN + 1],
    char version[WIRE_MAX_VERSION + 1])
{
	int rc;

	rc = rd_kind(r, kind);
	if (!rc)
		rc = rd_ident(r, "channel", true, channel, NAME_MAX_LEN + 1, name_valid,
		    "a channel name");
	if (!rc)
		rc = rd_ident(r, "version", true, version, WIRE_MAX_VERSION + 1, version_valid,
		    "a version");
	return rc;
}

/* The rules a schedule keeps, for the decoder and the encoder alike. */
static int
schedule_check(const struct release_step *st, size_t n, struct mu_err *err)
{
	size_t i;

	if (n > RELEASE_MAX_STEPS)
		return mu_errf(err, MU_EINVAL, "schedule has more than %d steps",
		    RELEASE_MAX_STEPS);
	for (i = 0; i < n; i++) {
		if (st[i].pct > 100)
			return mu_errf(err, MU_EINVAL, "schedule step %zu: percent over 100", i + 1);
		if (i > 0 && st[i].at_ms <= st[i - 1].at_ms)
			return mu_errf(err, MU_EINVAL, "schedule step %zu: its time is not "
			    "after step %zu's", i + 1, i);
		if (i > 0 && st[i].pct < st[i - 1].pct)
			return mu_errf(err, MU_EINVAL, "schedule step %zu: its percent is "
			    "below step %zu's", i + 1, i);
	}
	return MU_OK;
}

/* "schedule": an optional array of [at_ms, percent] pairs. */
static int
rd_schedule(struct rd *r, struct release_manifest *out)
{
	const msgpack_object *a, *o;
	uint32_t i;
	int rc;

	rc = rd_get(r, "schedule", false, MSGPACK_OBJECT_ARRAY, "an array", &a);
	if (rc == MU_ENOENT)
		return MU_OK;
	if (rc)
		return rc;
	if (a->via.array.size == 0 || a->via.array.size > RELEASE_MAX_STEPS)
		return mu_errf(r->err, MU_EINVAL, "key 'schedule' wants 1 to %d steps",
		    RELEASE_MAX_STEPS);
	for (i = 0; i < a->via.array.size; i++) {
		o = &a->via.array.ptr[i];
		if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
		    o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    o->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    o->via.array.ptr[1].via.u64 > 100)
			return mu_errf(r->err, MU_EINVAL, "schedule step %u: want [at_ms, "
			    "percent 0..100]", i + 1);
		out->steps[i].at_ms = o->via.array.ptr[0].via.u64;
		out->steps[i].pct = (uint8_t)o->via.array.ptr[1].via.u64;
	}
	out->nsteps = a->via.array.size;
	return schedule_check(out->steps, out->nsteps, r->err);
}

/* "halt": an optional map {failed_pct, min_hosts}. */
static int
rd_halt(struct rd *r, struct release_manifest *out)
{
	const msgpack_object *m;
	struct rd h;
	uint64_t pct = 0, min = 0;
	int rc;

	rc = rd_get(r, "halt", false, MSGPACK_OBJECT_MAP, "a map", &m);
	if (rc == MU_ENOENT)
		return MU_OK;
	if (rc)
		return rc;
	h.map = m;
	h.err = r->err;
	rc = rd_uint(&h, "failed_pct", true, 100, &pct);
	if (!rc)
		rc = rd_uint(&h, "min_hosts", true, RELEASE_MAX_HALT_HOSTS, &min);
	if (!rc && min == 0)
		rc = mu_errf(r->err, MU_EINVAL, "key 'min_hosts' of 'halt' must be at least 1");
	if (rc)
		return rc;
	out->has_halt = true;
	out->halt_failed_pct = (uint8_t)pct;
	out->halt_min_hosts = (uint32_t)min;
	return MU_OK;
}

uint8_t
release_rollout_at(const struct release_manifest *m, uint64_t now_ms, uint64_t *next_ms)
{
	uint8_t pct = 0;
	size_t i;

	if (next_ms)
		*next_ms = 0;
	if (m->nsteps == 0)
		return m->rollout;
	for (i = 0; i < m->nsteps && m->steps[i].at_ms <= now_ms; i++)
		pct = m->steps[i].pct;
	/* The next step that changes something (equal percents do not). */
	for (; next_ms && i < m->nsteps; i++)
		if (m->steps[i].pct > pct) {
			*next_ms = m->steps[i].at_ms;
			break;
		}
	return pct;
}

int
release_manifest_decode(const void *buf, size_t len, struct release_manifest *out,
    struct mu_err *err)
{
	uint64_t rollout = 0;
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_release_id(&r, "release", out->channel, out->version);
	if (!rc)
		rc = rd_ident(&r, "agent_sha256", true, out->agent_sha256,
		    sizeof(out->agent_sha256), sha256hex_valid, "a sha256");
	if (!rc)
		rc = rd_uint(&r, "agent_size", true, WIRE_MAX_BIN, &out->agent_size);
	if (!rc)
		rc = rd_ident(&r, "runner_sha256", true, out->runner_sha256,
		    sizeof(out->runner_sha256), sha256hex_valid, "a sha256");
	if (!rc)
		rc = rd_uint(&r, "runner_size", true, WIRE_MAX_BIN, &out->runner_size);
	if (!rc)
		rc = rd_uint(&r, "published_at", true, UINT64_MAX, &out->published_at);
	if (!rc)
		rc = rd_uint(&r, "rollout", true, 100, &rollout);
	out->rollout = (uint8_t)rollout;
	if (!rc)
		rc = rd_schedule(&r, out);
	if (!rc)
		rc = rd_halt(&r, out);
	return doc_close(&out->doc, rc);
}

int
release_manifest_encode(const struct release_manifest *m, msgpack_sbuffer *out,
    struct mu_err *err)
{
	msgpack_packer pk;
	struct mu_err why;
	size_t start, i;
	int rc;

	rc = need(name_valid(m->channel) && version_valid(m->version) &&
	    sha256hex_valid(m->agent_sha256) && sha256hex_valid(m->runner_sha256) &&
	    m->agent_size <= WIRE_MAX_BIN && m->runner_size <= WIRE_MAX_BIN &&
	    m->rollout <= 100 && (!m->has_halt || (m->halt_failed_pct <= 100 &&
	    m->halt_min_hosts >= 1 && m->halt_min_hosts <= RELEASE_MAX_HALT_HOSTS)), err,
	    "bad channel, version, hashes, sizes, rollout or halt");
	if (!rc && m->nsteps > 0 && schedule_check(m->steps, m->nsteps, &why) != MU_OK)
		return mu_errf(err, MU_EINVAL, "cannot encode: %s", why.msg);
	if (rc)
		return rc;
	/* "schedule" and "halt" only when set: a manifest without them stays
	 * byte for byte what agents before them read. */
	start = pk_begin(&pk, out, 9 + (m->nsteps > 0) + m->has_halt);
	pk_kv_str(&pk, "kind", "release");
	pk_kv_str(&pk, "channel", m->channel);
	pk_kv_str(&pk, "version", m->version);
	pk_kv_str(&pk, "agent_sha256", m->agent_sha256);
	pk_kv_uint(&pk, "agent_size", m->agent_size);
	pk_kv_str(&pk, "runner_sha256", m->runner_sha256);
	pk_kv_uint(&pk, "runner_size", m->runner_size);
	pk_kv_uint(&pk, "published_at", m->published_at);
	pk_kv_uint(&pk, "rollout", m->rollout);
	if (m->nsteps > 0) {
		pk_key(&pk, "schedule");
		msgpack_pack_array(&pk, m->nsteps);
		for (i = 0; i < m->nsteps; i++) {
			msgpack_pack_array(&pk, 2);
			msgpack_pack_uint64(&pk, m->steps[i].at_ms);
			msgpack_pack_uint8(&pk, m->steps[i].pct);
		}
	}
	if (m->has_halt) {
		pk_key(&pk, "halt");
		msgpack_pack_map(&pk, 2);
		pk_kv_uint(&pk, "failed_pct", m->halt_failed_pct);
		pk_kv_uint(&pk, "min_hosts", m->halt_min_hosts);
	}
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

/* ---- release halts ------------------------------------------------------ */

int
release_halt_decode(const void *buf, size_t len, struct release_halt *out,
    struct mu_err *err)
{
	bool has_f, has_a;
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_release_id(&r, "halt", out->channel, out->version);
	if (!rc)
		rc = rd_str(&r, "reason", true, RELEASE_HALT_REASON_MAX, &out->reason);
	if (!rc)
		rc = rd_uint(&r, "at", true, UINT64_MAX, &out->at);
	has_f = rd_find(&r, "failed") != NULL;
	has_a = rd_find(&r, "attempted") != NULL;
	if (!rc && has_f != has_a)
		rc = mu_errf(err, MU_EINVAL, "keys 'failed' and 'attempted' go together");
	if (!rc)
		rc = rd_uint(&r, "failed", false, UINT32_MAX, &out->failed);
	if (!rc)
		rc = rd_uint(&r, "attempted", false, UINT32_MAX, &out->attempted);
	if (!rc && out->failed > out->attempted)
		rc = mu_errf(err, MU_EINVAL, "more hosts failed than attempted");
	out->has_counts = has_f;
	if (!rc)
		rc = rd_bin(&r, "cert_der", false, RELEASE_HALT_CERT_MAX, &out->cert_der);
	if (!rc)
		rc = rd_str(&r, "operator", false, 256, &out->operator_);
	return doc_close(&out->doc, rc);
}

int
release_halt_encode(const struct release_halt *h, msgpack_sbuffer *out, struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need(name_valid(h->channel) && version_valid(h->version) &&
	    h->reason.ptr != NULL && (!h->has_counts || (h->failed <= h->attempted &&
	    h->attempted <= UINT32_MAX)) && h->cert_der.len <= RELEASE_HALT_CERT_MAX, err,
	    "bad channel, version, reason, counts or certificate");
	if (!rc)
		rc = need_view(h->reason, RELEASE_HALT_REASON_MAX, err, "reason too long");
	if (!rc)
		rc = need_view(h->operator_, 256, err, "operator too long");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 5 + 2 * h->has_counts + (h->cert_der.ptr != NULL) +
	    (h->operator_.ptr != NULL));
	pk_kv_str(&pk, "kind", "halt");
	pk_kv_str(&pk, "channel", h->channel);
	pk_kv_str(&pk, "version", h->version);
	pk_kv_view(&pk, "reason", h->reason);
	pk_kv_uint(&pk, "at", h->at);
	if (h->has_counts) {
		pk_kv_uint(&pk, "failed", h->failed);
		pk_kv_uint(&pk, "attempted", h->attempted);
	}
	if (h->cert_der.ptr)
		pk_kv_bin(&pk, "cert_der", h->cert_der.ptr, h->cert_der.len);
	if (h->operator_.ptr)
		pk_kv_view(&pk, "operator", h->operator_);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

/* ---- pointers and artifacts ------------------------------------------- */

static int
rd_signed(struct rd *r, struct wire_bytes *manifest, struct wire_bytes *sig)
{
	int rc;

	rc = rd_bin(r, "manifest", true, WIRE_MAX_MANIFEST, manifest);
	if (!rc)
		rc = rd_bin(r, "sig", true, WIRE_MAX_PGPSIG, sig);
	if (!rc && (manifest->len == 0 || sig->len == 0))
		rc = mu_errf(r->err, MU_EINVAL, "manifest or signature is empty");
	return rc;
}

static int
need_signed(struct wire_bytes manifest, struct wire_bytes sig, struct mu_err *err)
{
	return need(manifest.ptr && manifest.len > 0 && manifest.len <= WIRE_MAX_MANIFEST &&
	    sig.ptr && sig.len > 0 && sig.len <= WIRE_MAX_PGPSIG, err,
	    "manifest or signature empty or too large");
}

int
pointer_decode(const void *buf, size_t len, struct signed_pointer *out,
    struct mu_err *err)
{
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_signed(&r, &out->manifest, &out->sig);
	return doc_close(&out->doc, rc);
}

int
pointer_encode(const struct signed_pointer *p, msgpack_sbuffer *out,
    struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need_signed(p->manifest, p->sig, err);
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 2);
	pk_kv_bin(&pk, "manifest", p->manifest.ptr, p->manifest.len);
	pk_kv_bin(&pk, "sig", p->sig.ptr, p->sig.len);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

int
module_artifact_decode(const void *buf, size_t len, struct module_artifact *out,
    struct mu_err *err)
{
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_signed(&r, &out->manifest, &out->sig);
	if (!rc)
		rc = rd_bin(&r, "so", true, WIRE_MAX_BIN, &out->so);
	return doc_close(&out->doc, rc);
}

int
module_artifact_encode(const struct module_artifact *a, msgpack_sbuffer *out,
    struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need_signed(a->manifest, a->sig, err);
	if (!rc)
		rc = need(a->so.ptr && a->so.len <= WIRE_MAX_BIN, err, "module too large");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 3);
	pk_kv_bin(&pk, "manifest", a->manifest.ptr, a->manifest.len);
	pk_kv_bin(&pk, "sig", a->sig.ptr, a->sig.len);
	pk_kv_bin(&pk, "so", a->so.ptr, a->so.len);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

int
binary_artifact_decode(const void *buf, size_t len, struct binary_artifact *out,
    struct mu_err *err)
{
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_bin(&r, "data", true, WIRE_MAX_BIN, &out->data);
	return doc_close(&out->doc, rc);
}

int
binary_artifact_encode(const struct binary_artifact *a, msgpack_sbuffer *out,
    struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need(a->data.ptr && a->data.len <= WIRE_MAX_BIN, err, "binary too large");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 1);
	pk_kv_bin(&pk, "data", a->data.ptr, a->data.len);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}
