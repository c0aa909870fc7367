/*
 * ipc.c - runner event frames: codec and framing.
 */
#include "ipc.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const ipc_types[] = {
	[IPC_OUT] = "out", [IPC_PROGRESS] = "progress", [IPC_VERDICT] = "verdict",
};

/* Find a key in a decoded top-level map. */
static const msgpack_object *
find(const msgpack_object *map, const char *key)
{
	size_t n = strlen(key);
	uint32_t i;

	for (i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
		    memcmp(k->via.str.ptr, key, n) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

static bool
get_str(const msgpack_object *map, const char *key, struct wire_str *out)
{
	const msgpack_object *o = find(map, key);

	out->ptr = NULL, out->len = 0;
	if (o == NULL)
		return true;
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > WIRE_MAX_STR)
		return false;
	out->ptr = o->via.str.ptr, out->len = o->via.str.size;
	return true;
}

static bool
get_ident(const msgpack_object *map, const char *key, char *dst, size_t dstsz,
    bool (*valid)(const char *))
{
	struct wire_str s;

	dst[0] = '\0';
	if (!get_str(map, key, &s))
		return false;
	if (s.ptr == NULL)
		return true;
	if (s.len >= dstsz || memchr(s.ptr, '\0', s.len) != NULL)
		return false;
	memcpy(dst, s.ptr, s.len);
	dst[s.len] = '\0';
	return valid(dst);
}

static int
decode_verdict(const msgpack_object *map, struct ipc_event *e, struct mu_err *err)
{
	const msgpack_object *o;
	struct wire_str st;

	if (!get_str(map, "status", &st) || st.ptr == NULL ||
	    result_status_parse(st.ptr, st.len, &e->status) != MU_OK ||
	    (e->status != RS_PASS && e->status != RS_FAIL && e->status != RS_ERROR))
		return mu_errf(err, MU_EINVAL, "verdict has no valid status");
	if (!get_str(map, "reason", &e->reason) || !get_str(map, "summary", &e->summary))
		return mu_errf(err, MU_EINVAL, "verdict reason or summary is not a string");
	if ((o = find(map, "truncated")) != NULL) {
		if (o->type != MSGPACK_OBJECT_BOOLEAN)
			return mu_errf(err, MU_EINVAL, "verdict truncated is not a boolean");
		e->truncated = o->via.boolean;
	}
	if ((o = find(map, "data")) != NULL) {
		struct mu_err why;

		if (wire_check_map(o, &why))
			return mu_errf(err, MU_EINVAL, "verdict data %s", why.msg);
		e->data = o;
	}
	if (!get_ident(map, "module", e->module, sizeof(e->module), name_valid) ||
	    !get_ident(map, "module_version", e->module_version,
	    sizeof(e->module_version), version_valid))
		return mu_errf(err, MU_EINVAL, "verdict module or module_version is invalid");
	return MU_OK;
}

static int
decode_body(const msgpack_object *map, struct ipc_event *e, struct mu_err *err)
{
	const msgpack_object *o;
	struct wire_str t;
	int i;

	if (!get_str(map, "t", &t) || t.ptr == NULL)
		return mu_errf(err, MU_EINVAL, "event has no type");
	for (i = 0; i < 3; i++)
		if (strlen(ipc_types[i]) == t.len && memcmp(ipc_types[i], t.ptr, t.len) == 0)
			break;
	if (i == 3)
		return mu_errf(err, MU_EINVAL, "unknown event type");
	e->type = (enum ipc_type)i;
	switch (e->type) {
	case IPC_OUT:
		if (!get_str(map, "text", &e->text) || e->text.ptr == NULL)
			return mu_errf(err, MU_EINVAL, "out event has no text");
		return MU_OK;
	case IPC_PROGRESS:
		o = find(map, "pct");
		if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > 100)
			return mu_errf(err, MU_EINVAL, "progress event has no pct 0..100");
		e->pct = (uint8_t)o->via.u64;
		return MU_OK;
	case IPC_VERDICT:
		return decode_verdict(map, e, err);
	}
	return MU_EINVAL;
}

int
ipc_event_decode(const void *buf, size_t len, struct ipc_event *e, struct mu_err *err)
{
	const msgpack_object *map, *v;
	size_t off = 0;
	int rc;

	memset(e, 0, sizeof(*e));
	if (len > IPC_MAX_FRAME)
		return mu_errf(err, MU_EINVAL, "event larger than %u bytes", IPC_MAX_FRAME);
	rc = wire_check(buf, len, err);
	if (rc)
		return rc;
	msgpack_unpacked_init(&e->doc.up);
	e->doc.live = true;
	if (msgpack_unpack_next(&e->doc.up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS) {
		wire_doc_free(&e->doc);
		return mu_errf(err, MU_EINVAL, "event is not msgpack");
	}
	wire_fix_empty(&e->doc.up.data);
	map = &e->doc.up.data;
	if (map->type != MSGPACK_OBJECT_MAP)
		rc = mu_errf(err, MU_EINVAL, "event is not a map");
	else if ((v = find(map, "v")) == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    v->via.u64 != WIRE_VERSION)
		rc = mu_errf(err, MU_EINVAL, "event has no v=1");
	else
		rc = decode_body(map, e, err);
	if (rc)
		wire_doc_free(&e->doc);
	return rc;
}

static void
pk_kstr(msgpack_packer *pk, const char *key, const char *s, size_t len)
{
	msgpack_pack_str(pk, strlen(key));
	msgpack_pack_str_body(pk, key, strlen(key));
	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

static void
encode_verdict(msgpack_packer *pk, const struct ipc_event *e)
{
	const char *st = result_status_name(e->status);

	pk_kstr(pk, "status", st, strlen(st));
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

int
ipc_event_encode(const struct ipc_event *e, msgpack_sbuffer *out, struct mu_err *err)
{
	msgpack_packer pk;
	size_t n = 2, start;

	if ((int)e->type < 0 || e->type > IPC_VERDICT)
		return mu_errf(err, MU_EINVAL, "bad event type");
	if (e->type == IPC_OUT)
		n += 1;
	else if (e->type == IPC_PROGRESS)
		n += 1;
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
