/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire_priv.c - codec for the frames between musterd's privileged parent and
 * its network process (design.md §8; the frame types are listed in wire.h).
 */
#include "wire_internal.h"

#include <string.h>

/* ---- musterd's parent <-> network process messages ---------------------- */

static const char *const priv_names[] = {
	[PRIV_JOB] = "job", [PRIV_MODULE] = "module", [PRIV_SPOOLED] = "spooled",
	[PRIV_RESULT] = "result", [PRIV_EVENT] = "event", [PRIV_MODULE_WANT] = "want",
	[PRIV_POKE] = "poke", [PRIV_STOP] = "stop", [PRIV_RELEASE] = "release",
	[PRIV_UPDATE_CHECK] = "check", [PRIV_NO_UPDATE] = "noupdate",
	[PRIV_STATUS] = "status", [PRIV_CONNECTED] = "connected",
	[PRIV_VERDICT] = "verdict", [PRIV_READY] = "ready", [PRIV_FAILED] = "failed",
	[PRIV_DURABLE] = "durable", [PRIV_ANSWERED] = "answered", [PRIV_FACTS] = "facts",
	[PRIV_RELEASE_STATE] = "relstate", [PRIV_SELFTEST] = "selftest",
	[PRIV_HALT] = "halt", [PRIV_HALTED] = "halted",
};

static const char *const priv_sources[] = {
	[PRIV_SRC_NONE] = "none", [PRIV_SRC_LOCAL] = "local", [PRIV_SRC_CACHE] = "cache",
	[PRIV_SRC_NOWHERE] = "nowhere",
};

const char *
priv_type_name(enum priv_type t)
{
	return t > 0 && t < PRIV_NTYPES ? priv_names[t] : "unknown";
}

/* Which fields each type carries (required when set). */
#define PMF_JOB		0x01
#define PMF_NAME		0x02
#define PMF_SHA		0x04
#define PMF_TOPIC	0x08
#define PMF_SOURCE	0x10
#define PMF_PAYLOAD	0x20
#define PMF_LOCAL	0x40
#define PMF_REASON	0x80	/* a required reason (PMF_SOURCE: optional) */
#define PMF_COUNT	0x100	/* n, a required count */
#define PMF_VERSION	0x200	/* a required version */
#define PMF_WHY		0x400	/* an optional reason */

static const unsigned priv_fields[PRIV_NTYPES] = {
	[PRIV_JOB] = PMF_TOPIC | PMF_PAYLOAD,
	[PRIV_MODULE] = PMF_JOB | PMF_SOURCE,
	[PRIV_SPOOLED] = PMF_JOB,
	[PRIV_RESULT] = PMF_JOB | PMF_PAYLOAD,
	[PRIV_EVENT] = PMF_JOB | PMF_PAYLOAD,
	[PRIV_MODULE_WANT] = PMF_JOB | PMF_NAME | PMF_LOCAL,
	[PRIV_POKE] = 0,
	[PRIV_STOP] = 0,
	[PRIV_RELEASE] = PMF_PAYLOAD,
	[PRIV_UPDATE_CHECK] = PMF_JOB,
	[PRIV_NO_UPDATE] = PMF_JOB | PMF_REASON,
	[PRIV_STATUS] = PMF_PAYLOAD | PMF_COUNT,
	[PRIV_CONNECTED] = 0,
	[PRIV_VERDICT] = PMF_PAYLOAD,
	[PRIV_READY] = 0,
	[PRIV_FAILED] = PMF_REASON,
	[PRIV_DURABLE] = PMF_COUNT,
	[PRIV_ANSWERED] = PMF_JOB,
	[PRIV_FACTS] = PMF_PAYLOAD,
	[PRIV_RELEASE_STATE] = PMF_NAME | PMF_VERSION | PMF_WHY,
	[PRIV_SELFTEST] = PMF_PAYLOAD,
	[PRIV_HALT] = PMF_PAYLOAD,
	[PRIV_HALTED] = PMF_VERSION | PMF_COUNT,
};

static bool
topic_text_valid(const char *s)
{
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e || *s == '+' || *s == '#')
			return false;
	return true;
}

static int
priv_decode_fields(struct rd *r, struct priv_msg *m, unsigned f)
{
	int src, rc = MU_OK;

	if (f & PMF_JOB)
		rc = rd_ident(r, "job", true, m->job, sizeof(m->job), jobid_valid, "a job id");
	if (!rc && (f & PMF_NAME))
		rc = rd_ident(r, "name", true, m->name, sizeof(m->name), name_valid,
		    "a module name");
	/* A build: MODULE (local or cache), or the pin of a MODULE_WANT. */
	if (!rc && (f & (PMF_SOURCE | PMF_NAME)))
		rc = rd_ident(r, "sha256", false, m->sha256, sizeof(m->sha256),
		    sha256hex_valid, "a sha256");
	if (!rc && (f & PMF_LOCAL))
		rc = rd_ident(r, "local", false, m->local, sizeof(m->local), sha256hex_valid,
		    "a sha256");
	if (!rc && (f & PMF_TOPIC))
		rc = rd_ident(r, "topic", true, m->topic, sizeof(m->topic), topic_text_valid,
		    "a topic");
	if (!rc && (f & PMF_SOURCE)) {
		rc = rd_word(r, "source", priv_sources, PRIV_NSOURCES, &src);
		m->source = (enum priv_source)src;
		if (!rc)
			rc = rd_str(r, "reason", false, WIRE_MAX_STR, &m->reason);
		if (!rc && priv_source_has_build(m->source) != (m->sha256[0] != '\0'))
			rc = mu_errf(r->err, MU_EINVAL, "a module answer names a build exactly "
			    "when it has one");
	}
	if (!rc && (f & PMF_REASON))
		rc = rd_str(r, "reason", true, WIRE_MAX_STR, &m->reason);
	if (!rc && (f & PMF_WHY))
		rc = rd_str(r, "reason", false, WIRE_MAX_STR, &m->reason);
	if (!rc && (f & PMF_VERSION))
		rc = rd_ident(r, "version", true, m->version, sizeof(m->version), version_valid,
		    "a version");
	if (!rc && (f & PMF_PAYLOAD))
		rc = rd_bin(r, "payload", true, WIRE_MAX_BIN, &m->payload);
	if (!rc && (f & PMF_COUNT))
		rc = rd_uint(r, "n", true, m->type == PRIV_STATUS ? PRIV_NSTATUS - 1 : UINT64_MAX,
		    &m->n);
	return rc;
}

int
priv_msg_decode(const void *buf, size_t len, struct priv_msg *out, struct mu_err *err)
{
	struct rd r;
	int t, rc;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_word(&r, "t", priv_names + 1, PRIV_NTYPES - 1, &t);
	out->type = (enum priv_type)(t + 1);
	if (!rc)
		rc = priv_decode_fields(&r, out, priv_fields[out->type]);
	return doc_close(&out->doc, rc);
}

int
priv_msg_encode(const struct priv_msg *m, msgpack_sbuffer *out, struct mu_err *err)
{
	unsigned f;
	msgpack_packer pk;
	size_t start, n = 1;
	int rc;

	if (m->type <= 0 || m->type >= PRIV_NTYPES)
		return mu_errf(err, MU_EINVAL, "unknown message type");
	f = priv_fields[m->type];
	rc = need((!(f & PMF_JOB) || jobid_valid(m->job)) &&
	    (!(f & PMF_NAME) || name_valid(m->name)) &&
	    (m->sha256[0] == '\0' || sha256hex_valid(m->sha256)) &&
	    (m->local[0] == '\0' || ((f & PMF_LOCAL) && sha256hex_valid(m->local))) &&
	    (!(f & PMF_TOPIC) || topic_text_valid(m->topic)) &&
	    (!(f & PMF_VERSION) || version_valid(m->version)) &&
	    (m->type != PRIV_STATUS || m->n < PRIV_NSTATUS) &&
	    (!(f & PMF_PAYLOAD) || (m->payload.ptr && m->payload.len <= WIRE_MAX_BIN)), err,
	    "bad field in a parent/network message");
	if (!rc && (f & PMF_SOURCE))
		rc = need(priv_source_has_build(m->source) == (m->sha256[0] != '\0'), err,
		    "a module answer names a build exactly when it has one");
	if (!rc && (f & PMF_SOURCE))
		rc = need_view(m->reason, WIRE_MAX_STR, err, "reason too long");
	if (!rc && (f & PMF_REASON))
		rc = need(m->reason.ptr != NULL && m->reason.len <= WIRE_MAX_STR, err,
		    "reason missing or too long");
	if (!rc && (f & PMF_WHY))
		rc = need_view(m->reason, WIRE_MAX_STR, err, "reason too long");
	if (rc)
		return rc;
	n += !!(f & PMF_JOB) + !!(f & PMF_NAME) + !!(f & PMF_TOPIC) + !!(f & PMF_PAYLOAD) +
	    2 * !!(f & PMF_SOURCE) - ((f & PMF_SOURCE) && !m->reason.ptr) +
	    !!(f & PMF_REASON) + !!(f & PMF_COUNT) + !!(f & PMF_VERSION) +
	    ((f & PMF_WHY) && m->reason.ptr) +
	    ((f & (PMF_SOURCE | PMF_NAME)) && m->sha256[0]) + ((f & PMF_LOCAL) && m->local[0]);
	start = pk_begin(&pk, out, n);
	pk_kv_str(&pk, "t", priv_names[m->type]);
	if (f & PMF_JOB)
		pk_kv_str(&pk, "job", m->job);
	if (f & PMF_NAME)
		pk_kv_str(&pk, "name", m->name);
	if ((f & (PMF_SOURCE | PMF_NAME)) && m->sha256[0])
		pk_kv_str(&pk, "sha256", m->sha256);
	if ((f & PMF_LOCAL) && m->local[0])
		pk_kv_str(&pk, "local", m->local);
	if (f & PMF_TOPIC)
		pk_kv_str(&pk, "topic", m->topic);
	if (f & PMF_SOURCE) {
		pk_kv_str(&pk, "source", priv_sources[m->source]);
		if (m->reason.ptr)
			pk_kv_view(&pk, "reason", m->reason);
	}
	if ((f & PMF_REASON) || ((f & PMF_WHY) && m->reason.ptr))
		pk_kv_view(&pk, "reason", m->reason);
	if (f & PMF_VERSION)
		pk_kv_str(&pk, "version", m->version);
	if (f & PMF_PAYLOAD)
		pk_kv_bin(&pk, "payload", m->payload.ptr, m->payload.len);
	if (f & PMF_COUNT)
		pk_kv_uint(&pk, "n", m->n);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}
