/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay.c - the persist relay's frames, topic matching and socket path.
 */
#include "relay.h"
#include "sign.h"
#include "util.h"
#include "wire_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const relay_types[] = {
	[RELAY_HELLO] = "hello", [RELAY_SUB] = "sub", [RELAY_PUB] = "pub",
	[RELAY_UNSUB] = "unsub", [RELAY_STOP] = "stop", [RELAY_READY] = "ready",
	[RELAY_CONNECTED] = "connected", [RELAY_SUBACK] = "suback",
	[RELAY_PUBACK] = "puback", [RELAY_MSG] = "msg",
};
#define NTYPES	((int)(sizeof(relay_types) / sizeof(relay_types[0])))

static int
rd_qos(const struct rd *r, uint8_t *out)
{
	uint64_t q = 0;
	int rc = rd_uint(r, "qos", true, 2, &q);

	*out = (uint8_t)q;
	return rc;
}

int
relay_frame_decode(const void *buf, size_t len, struct relay_frame *f, struct mu_err *err)
{
	uint64_t n = 0;
	bool has;
	struct rd r;
	int t, rc;

	memset(f, 0, sizeof(*f));
	if (len > RELAY_MAX_FRAME)
		return mu_errf(err, MU_EINVAL, "relay frame over %u bytes", RELAY_MAX_FRAME);
	if ((rc = doc_open(buf, len, &f->doc, &r, err)) != MU_OK)
		return rc;
	rc = rd_word(&r, "t", relay_types, NTYPES, &t);
	f->type = (enum relay_type)t;
	switch (rc ? -1 : t) {
	case RELAY_HELLO:
		rc = rd_uint(&r, "version", true, UINT32_MAX, &n);
		f->version = (uint32_t)n;
		break;
	case RELAY_SUB:
		rc = rd_str(&r, "topic", true, RELAY_MAX_TOPIC, &f->topic);
		if (!rc)
			rc = rd_qos(&r, &f->qos);
		break;
	case RELAY_UNSUB:
		rc = rd_str(&r, "topic", true, RELAY_MAX_TOPIC, &f->topic);
		break;
	case RELAY_PUB:
		rc = rd_int32(&r, "token", &has, &f->token);
		if (!rc && !has)
			rc = mu_errf(err, MU_EINVAL, "publish without a token");
		if (!rc)
			rc = rd_str(&r, "topic", true, RELAY_MAX_TOPIC, &f->topic);
		if (!rc)
			rc = rd_bin(&r, "payload", true, RELAY_MAX_PAYLOAD, &f->payload);
		if (!rc)
			rc = rd_qos(&r, &f->qos);
		if (!rc)
			rc = rd_bool(&r, "retain", true, &f->retain);
		if (!rc)
			rc = rd_uint(&r, "expiry", true, UINT32_MAX, &n);
		f->expiry_s = (uint32_t)n;
		break;
	case RELAY_READY:
	case RELAY_SUBACK:
		rc = rd_bool(&r, "ok", true, &f->ok);
		break;
	case RELAY_PUBACK:
		rc = rd_int32(&r, "token", &has, &f->token);
		if (!rc && !has)
			rc = mu_errf(err, MU_EINVAL, "puback without a token");
		if (!rc)
			rc = rd_bool(&r, "ok", true, &f->ok);
		if (!rc)
			rc = rd_str(&r, "reason", false, 128, &f->reason);
		break;
	case RELAY_MSG:
		rc = rd_str(&r, "topic", true, RELAY_MAX_TOPIC, &f->topic);
		if (!rc)
			rc = rd_bin(&r, "payload", true, RELAY_MAX_PAYLOAD, &f->payload);
		if (!rc)
			rc = rd_bool(&r, "retain", true, &f->retain);
		break;
	default:	/* stop, connected: the type says it all */
		break;
	}
	/* A topic is a C string on both sides (Paho's API). */
	if (!rc && f->topic.ptr && (f->topic.len == 0 ||
	    memchr(f->topic.ptr, '\0', f->topic.len) != NULL))
		rc = mu_errf(err, MU_EINVAL, "bad topic in a relay frame");
	return doc_close(&f->doc, rc);
}

int
relay_frame_encode(const struct relay_frame *f, msgpack_sbuffer *out, struct mu_err *err)
{
	static const uint8_t nkeys[] = {
		[RELAY_HELLO] = 2, [RELAY_SUB] = 3, [RELAY_PUB] = 7, [RELAY_UNSUB] = 2,
		[RELAY_STOP] = 1, [RELAY_READY] = 2, [RELAY_CONNECTED] = 1,
		[RELAY_SUBACK] = 2, [RELAY_PUBACK] = 3, [RELAY_MSG] = 4,
	};
	const char *t;
	msgpack_packer pk;
	size_t hdr = out->size, start, n, flen;
	int rc;

	if ((int)f->type < 0 || (int)f->type >= NTYPES)
		return mu_errf(err, MU_EINVAL, "bad relay frame type");
	t = relay_types[f->type];
	if ((f->topic.ptr && f->topic.len > RELAY_MAX_TOPIC) ||
	    (f->payload.ptr && f->payload.len > RELAY_MAX_PAYLOAD))
		return mu_errf(err, MU_EINVAL, "message too large for the persist relay");
	if (msgpack_sbuffer_write(out, "\0\0\0\0", 4) != 0)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	n = nkeys[f->type] + (f->type == RELAY_PUBACK && f->reason.ptr != NULL);
	start = pk_begin(&pk, out, n);
	pk_kv_view(&pk, "t", (struct wire_str){ t, strlen(t) });
	switch (f->type) {
	case RELAY_HELLO:
		pk_kv_uint(&pk, "version", f->version);
		break;
	case RELAY_SUB:
	case RELAY_UNSUB:
		pk_kv_view(&pk, "topic", f->topic);
		if (f->type == RELAY_SUB)
			pk_kv_uint(&pk, "qos", f->qos);
		break;
	case RELAY_PUB:
		pk_key(&pk, "token");
		msgpack_pack_int32(&pk, f->token);
		pk_kv_view(&pk, "topic", f->topic);
		pk_kv_bin(&pk, "payload", f->payload.ptr, f->payload.len);
		pk_kv_uint(&pk, "qos", f->qos);
		pk_kv_bool(&pk, "retain", f->retain);
		pk_kv_uint(&pk, "expiry", f->expiry_s);
		break;
	case RELAY_READY:
	case RELAY_SUBACK:
		pk_kv_bool(&pk, "ok", f->ok);
		break;
	case RELAY_PUBACK:
		pk_key(&pk, "token");
		msgpack_pack_int32(&pk, f->token);
		pk_kv_bool(&pk, "ok", f->ok);
		if (f->reason.ptr)
			pk_kv_view(&pk, "reason", f->reason);
		break;
	case RELAY_MSG:
		pk_kv_view(&pk, "topic", f->topic);
		pk_kv_bin(&pk, "payload", f->payload.ptr, f->payload.len);
		pk_kv_bool(&pk, "retain", f->retain);
		break;
	default:
		break;
	}
	if ((rc = pk_finish(out, start, RELAY_MAX_FRAME, err)) != MU_OK) {
		out->size = hdr;
		return rc;
	}
	flen = out->size - start;
	out->data[hdr] = (char)(flen >> 24), out->data[hdr + 1] = (char)(flen >> 16);
	out->data[hdr + 2] = (char)(flen >> 8), out->data[hdr + 3] = (char)flen;
	return MU_OK;
}

bool
relay_topic_match(const char *filter, const char *topic, size_t tlen)
{
	const char *t = topic, *end = topic + tlen;

	/* $-topics are never matched by a filter that starts with a wildcard. */
	if (tlen > 0 && topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return false;
	for (;;) {
		const char *fe = strchr(filter, '/');
		size_t fl = fe ? (size_t)(fe - filter) : strlen(filter);
		const char *te = memchr(t, '/', (size_t)(end - t));
		size_t tl = te ? (size_t)(te - t) : (size_t)(end - t);

		if (fl == 1 && filter[0] == '#')
			return true;
		if (!(fl == 1 && filter[0] == '+') && (fl != tl || memcmp(filter, t, fl) != 0))
			return false;
		if (fe == NULL || te == NULL) {
			/* "a/#" also matches "a". */
			return fe == NULL && te == NULL ? true :
			    te == NULL && strcmp(fe, "/#") == 0;
		}
		filter = fe + 1;
		t = te + 1;
	}
}

/* The runtime folder: $XDG_RUNTIME_DIR, else /run/user/<uid> if it is
 * there; MU_ENOENT: none. */
static int
runtime_dir(char *out, size_t size)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	struct stat st;
	int n;

	if (x && x[0] == '/')
		n = snprintf(out, size, "%s", x);
	else {
		n = snprintf(out, size, "/run/user/%u", (unsigned)getuid());
		if (stat(out, &st) == -1 || !S_ISDIR(st.st_mode))
			return MU_ENOENT;
	}
	return n > 0 && (size_t)n < size ? MU_OK : MU_ENOENT;
}

int
relay_socket_path(const struct broker_config *b, bool make_dir,
    char out[RELAY_SOCK_PATH_MAX], struct mu_err *err)
{
	char dir[RELAY_SOCK_PATH_MAX], hex[SHA256_HEX_LEN + 1];
	char id[CONF_MAX_URIS * CONF_URI_MAX + PATH_MAX + NAME_MAX_LEN + 16];
	char cert[PATH_MAX];
	size_t off = 0;
	struct stat st;
	int i, n;

	if (runtime_dir(dir, sizeof(dir) - 8) != MU_OK)
		return mu_errf(err, MU_ENOENT, "no runtime folder (XDG_RUNTIME_DIR)");
	strcat(dir, "/muster");
	/* One relay per broker list, client certificate and topic root: a
	 * call with another identity or fleet never uses this session. */
	for (i = 0; i < b->nuris; i++)
		off += (size_t)snprintf(id + off, sizeof(id) - off, "%s,", b->uris[i]);
	/* The certificate by its real path: the relay is given absolute
	 * paths, a call may name the same file relative to its folder. */
	if (b->cert[0] == '\0' || realpath(b->cert, cert) == NULL)
		snprintf(cert, sizeof(cert), "%s", b->cert);
	snprintf(id + off, sizeof(id) - off, "\n%s\n%s", cert, b->topic_root);
	if (sha256_hex(id, strlen(id), hex) != MU_OK)
		return mu_errf(err, MU_EIO, "cannot hash the broker identity");
	n = snprintf(out, RELAY_SOCK_PATH_MAX, "%s/persist-%.16s.sock", dir, hex);
	if (n < 0 || n >= RELAY_SOCK_PATH_MAX)
		return mu_errf(err, MU_ENOENT, "%s: path too long for a socket", dir);
	if (make_dir && mkdir(dir, 0700) == -1 && errno != EEXIST)
		return mu_errf(err, MU_EIO, "%s: %s", dir, strerror(errno));
	/* Ours and closed to others, or the socket is not used at all. */
	if (lstat(dir, &st) == -1)
		return mu_errf(err, MU_ENOENT, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077) != 0)
		return mu_errf(err, MU_EINVAL, "%s: not a 0700 folder of this user", dir);
	return MU_OK;
}
