/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ipc.c - runner event frames: codec and framing.
 */
#include "ipc.h"
#include "util.h"
#include "wire_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const ipc_types[] = {
	[IPC_OUT] = "out", [IPC_PROGRESS] = "progress", [IPC_VERDICT] = "verdict",
	[IPC_STATE] = "state",
};

/* ---- decoding: the readers of the network's messages (wire_internal.h) ---- */

static int
ipc_decode_verdict(struct rd *r, struct ipc_event *e)
{
	struct wire_str st;
	int rc;

	rc = rd_str(r, "status", true, 16, &st);
	if (!rc && (result_status_parse(st.ptr, st.len, &e->status) != MU_OK ||
	    (e->status != RS_PASS && e->status != RS_FAIL && e->status != RS_ERROR)))
		rc = mu_errf(r->err, MU_EINVAL, "verdict has no valid status");
	if (!rc)
		rc = rd_str(r, "reason", false, WIRE_MAX_STR, &e->reason);
	if (!rc)
		rc = rd_str(r, "summary", false, WIRE_MAX_STR, &e->summary);
	if (!rc)
		rc = rd_bool(r, "truncated", false, &e->truncated);
	if (!rc)
		rc = rd_map(r, "data", &e->data);
	if (!rc)
		rc = rd_ident(r, "module", false, e->module, sizeof(e->module), name_valid,
		    "a module name");
	if (!rc)
		rc = rd_ident(r, "module_version", false, e->module_version,
		    sizeof(e->module_version), version_valid, "a version");
	return rc;
}

static int
ipc_decode_state(struct rd *r, struct ipc_event *e)
{
	int rc;

	rc = rd_str(r, "summary", false, WIRE_MAX_STR, &e->summary);
	if (!rc)
		rc = rd_bool(r, "truncated", false, &e->truncated);
	if (!rc)
		rc = rd_map(r, "data", &e->data);
	return rc;
}

int
ipc_event_decode(const void *buf, size_t len, struct ipc_event *e, struct mu_err *err)
{
	uint64_t pct = 0;
	struct rd r;
	int t, rc;

	memset(e, 0, sizeof(*e));
	if (len > IPC_MAX_FRAME)
		return mu_errf(err, MU_EINVAL, "event larger than %u bytes", IPC_MAX_FRAME);
	if ((rc = doc_open(buf, len, &e->doc, &r, err)) != MU_OK)
		return rc;
	rc = rd_word(&r, "t", ipc_types, 4, &t);
	e->type = (enum ipc_type)t;
	if (!rc && e->type == IPC_OUT) {
		rc = rd_str(&r, "text", true, WIRE_MAX_STR, &e->text);
	} else if (!rc && e->type == IPC_PROGRESS) {
		rc = rd_uint(&r, "pct", true, 100, &pct);
		e->pct = (uint8_t)pct;
	} else if (!rc && e->type == IPC_STATE) {
		rc = ipc_decode_state(&r, e);
	} else if (!rc)
		rc = ipc_decode_verdict(&r, e);
	return doc_close(&e->doc, rc);
}

static void
pk_kstr(msgpack_packer *pk, const char *key, const char *s, size_t len)
{
	msgpack_pack_str(pk, strlen(key));
	msgpack_pack_str_body(pk, key, strlen(key));
	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

/* Everything of a verdict but its status; a state's fields are a subset. */
static void
encode_fields(msgpack_packer *pk, const struct ipc_event *e)
{
	if (e->reason.ptr)
		pk_kstr(pk, "reason", e->reason.ptr, e->reason.len);
	if (e->summary.ptr)
		pk_kstr(pk, "summary", e->summary.ptr, e->summary.len);
	if (e->data) {
		msgpack_pack_str(pk, 4);
		msgpack_pack_str_body(pk, "data", 4);
		msgpack_pack_object(pk, *e->data);
	}
	if (e->truncated) {
		msgpack_pack_str(pk, 9);
		msgpack_pack_str_body(pk, "truncated", 9);
		msgpack_pack_true(pk);
	}
	if (e->module[0])
		pk_kstr(pk, "module", e->module, strlen(e->module));
	if (e->module_version[0])
		pk_kstr(pk, "module_version", e->module_version, strlen(e->module_version));
}

static void
encode_verdict(msgpack_packer *pk, const struct ipc_event *e)
{
	const char *st = result_status_name(e->status);

	pk_kstr(pk, "status", st, strlen(st));
	encode_fields(pk, e);
}

int
ipc_event_encode(const struct ipc_event *e, msgpack_sbuffer *out, struct mu_err *err)
{
	msgpack_packer pk;
	size_t n = 2, start;

	if ((int)e->type < 0 || e->type > IPC_STATE)
		return mu_errf(err, MU_EINVAL, "bad event type");
	if (e->type == IPC_OUT)
		n += 1;
	else if (e->type == IPC_PROGRESS)
		n += 1;
	else if (e->type == IPC_STATE)
		n += (e->summary.ptr != NULL) + (e->data != NULL) + e->truncated;
	else
		n += 1 + (e->reason.ptr != NULL) + (e->summary.ptr != NULL) +
		    (e->data != NULL) + e->truncated + (e->module[0] != '\0') +
		    (e->module_version[0] != '\0');
	start = out->size;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	msgpack_pack_str(&pk, 1);
	msgpack_pack_str_body(&pk, "v", 1);
	msgpack_pack_uint8(&pk, WIRE_VERSION);
	pk_kstr(&pk, "t", ipc_types[e->type], strlen(ipc_types[e->type]));
	if (e->type == IPC_OUT)
		pk_kstr(&pk, "text", e->text.ptr ? e->text.ptr : "", e->text.len);
	else if (e->type == IPC_PROGRESS) {
		msgpack_pack_str(&pk, 3);
		msgpack_pack_str_body(&pk, "pct", 3);
		msgpack_pack_uint8(&pk, e->pct > 100 ? 100 : e->pct);
	} else if (e->type == IPC_STATE) {
		struct ipc_event st = *e;

		/* Only the fields counted above. */
		st.reason.ptr = NULL;
		st.module[0] = st.module_version[0] = '\0';
		encode_fields(&pk, &st);
	} else
		encode_verdict(&pk, e);
	/* A pack call that ran out of memory leaves a short message: catch it
	 * here rather than send a frame the agent must refuse. */
	if (out->size - start > IPC_MAX_FRAME || wire_check(out->data + start,
	    out->size - start, err) != MU_OK) {
		out->size = start;
		return mu_errf(err, MU_EINVAL, "event could not be encoded within %u bytes",
		    IPC_MAX_FRAME);
	}
	return MU_OK;
}

int
ipc_frame_write(int fd, const void *payload, size_t len)
{
	uint8_t hdr[4];
	int rc;

	if (len > IPC_MAX_FRAME)
		return MU_EINVAL;
	hdr[0] = (uint8_t)(len >> 24), hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8), hdr[3] = (uint8_t)len;
	rc = write_full(fd, hdr, 4);
	if (!rc)
		rc = write_full(fd, payload, len);
	return rc;
}

int
ipc_reader_feed(struct ipc_reader *r, const void *data, size_t len, struct mu_err *err)
{
	size_t max = r->max_frame ? r->max_frame : IPC_MAX_FRAME;
	uint8_t *nbuf;
	size_t need;

	if (len == 0)
		return MU_OK;
	/* Drop frames already handed out before growing. */
	if (r->consumed > 0) {
		memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
		r->len -= r->consumed;
		r->consumed = 0;
	}
	if (len > max + 4 || r->len + len > 2 * (max + 4))
		return mu_errf(err, MU_EINVAL, "frame stream overflows its buffer");
	need = r->len + len;
	if (need > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;

		while (cap < need)
			cap *= 2;
		if ((nbuf = realloc(r->buf, cap)) == NULL)
			return mu_errf(err, MU_ENOMEM, "out of memory");
		r->buf = nbuf, r->cap = cap;
	}
	memcpy(r->buf + r->len, data, len);
	r->len += len;
	if (r->len >= 4) {
		uint32_t flen = (uint32_t)r->buf[0] << 24 | (uint32_t)r->buf[1] << 16 |
		    (uint32_t)r->buf[2] << 8 | r->buf[3];

		if (flen > max)
			return mu_errf(err, MU_EINVAL, "frame of %u bytes is over %zu", flen,
			    max);
	}
	return MU_OK;
}

int
ipc_reader_next(struct ipc_reader *r, const uint8_t **frame, size_t *len)
{
	const uint8_t *p;
	size_t avail = r->len - r->consumed;
	uint32_t flen;

	if (r->buf == NULL || avail < 4)
		return MU_ENOENT;
	p = r->buf + r->consumed;
	flen = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (flen > (r->max_frame ? r->max_frame : IPC_MAX_FRAME))
		return MU_EINVAL;
	if (avail - 4 < flen)
		return MU_ENOENT;
	*frame = p + 4;
	*len = flen;
	r->consumed += 4 + flen;
	return MU_OK;
}

void
ipc_reader_free(struct ipc_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}
