/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire_selftest.c - codecs for the self-test handshake after a self-update
 * (design.md §5): the server's request and the verdict it returns.
 */
#include "wire_internal.h"

#include <string.h>

/* ---- self-test handshake ---------------------------------------------- */

int
selftest_request_decode(const void *buf, size_t len, struct selftest_request *out,
    struct mu_err *err)
{
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_ident(&r, "host", true, out->host, sizeof(out->host), name_valid,
	    "a host name");
	if (!rc)
		rc = rd_ident(&r, "nonce", true, out->nonce, sizeof(out->nonce), nonce_valid,
		    "a nonce ([0-9a-f]{16,128})");
	if (!rc)
		rc = rd_ident(&r, "version", true, out->version, sizeof(out->version),
		    version_valid, "a version");
	return doc_close(&out->doc, rc);
}

int
selftest_request_encode(const struct selftest_request *q, msgpack_sbuffer *out,
    struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need(name_valid(q->host) && nonce_valid(q->nonce) && version_valid(q->version),
	    err, "bad host, nonce or version");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 3);
	pk_kv_str(&pk, "host", q->host);
	pk_kv_str(&pk, "nonce", q->nonce);
	pk_kv_str(&pk, "version", q->version);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

int
selftest_verdict_decode(const void *buf, size_t len, struct selftest_verdict *out,
    struct mu_err *err)
{
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = doc_open(buf, len, &out->doc, &r, err);
	if (rc)
		return rc;
	rc = rd_ident(&r, "host", true, out->host, sizeof(out->host), name_valid,
	    "a host name");
	if (!rc)
		rc = rd_ident(&r, "nonce", true, out->nonce, sizeof(out->nonce), nonce_valid,
		    "a nonce ([0-9a-f]{16,128})");
	if (!rc)
		rc = rd_bool(&r, "ok", true, &out->ok);
	if (!rc)
		rc = rd_str(&r, "reason", false, WIRE_MAX_STR, &out->reason);
	return doc_close(&out->doc, rc);
}

int
selftest_verdict_encode(const struct selftest_verdict *v, msgpack_sbuffer *out,
    struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need(name_valid(v->host) && nonce_valid(v->nonce), err, "bad host or nonce");
	if (!rc)
		rc = need_view(v->reason, WIRE_MAX_STR, err, "reason too long");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 2 + 1 + (v->reason.ptr != NULL));
	pk_kv_str(&pk, "host", v->host);
	pk_kv_str(&pk, "nonce", v->nonce);
	pk_kv_bool(&pk, "ok", v->ok);
	if (v->reason.ptr)
		pk_kv_view(&pk, "reason", v->reason);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}
