/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire.c - codecs for protocol v1.  Decoders: wire_check(), unpack with
 * msgpack-c, then read typed fields from the top-level map through the
 * small rd_* readers, each of which refuses with a reason naming the key.
 */
#include "wire.h"
#include "ipc.h"

#include <stdlib.h>
#include <string.h>

#define TOP_MAX_KEYS	64	/* top-level keys, known and unknown */

void
wire_doc_free(struct wire_doc *doc)
{
	if (doc->live)
		msgpack_unpacked_destroy(&doc->up);
	doc->live = false;
}

/* ---- small validators ------------------------------------------------- */

bool
version_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		char c = s[i];

		if (i >= WIRE_MAX_VERSION)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr(".+~_-", c) != NULL))
			return false;
	}
	return i > 0;
}

bool
nonce_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= WIRE_MAX_NONCE ||
		    !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i >= 16;
}

static bool
keyid_valid(const char *s)
{
	size_t i;

	for (i = 0; i < KEYID_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[KEYID_HEX_LEN] == '\0';
}

static int
key_cmp(const void *x, const void *y)
{
	const msgpack_object *a = *(const msgpack_object *const *)x;
	const msgpack_object *b = *(const msgpack_object *const *)y;
	size_t n = a->via.str.size < b->via.str.size ? a->via.str.size : b->via.str.size;
	int c = n ? memcmp(a->via.str.ptr, b->via.str.ptr, n) : 0;

	if (c)
		return c;
	return a->via.str.size < b->via.str.size ? -1 : a->via.str.size > b->via.str.size;
}

/* String keys, each once: two readers must never disagree on what a signed
 * map says (a module looking up the first "cmd", another the last). */
static int
check_keys(const msgpack_object *o, struct mu_err *err)
{
	const msgpack_object **keys;
	uint32_t i, n = o->via.map.size;
	int rc = MU_OK;

	for (i = 0; i < n; i++)
		if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR)
			return mu_errf(err, MU_EINVAL, "has a key that is not a string");
	if (n < 2)
		return MU_OK;
	if ((keys = calloc(n, sizeof(*keys))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	for (i = 0; i < n; i++)
		keys[i] = &o->via.map.ptr[i].key;
	qsort(keys, n, sizeof(*keys), key_cmp);
	for (i = 1; i < n && rc == MU_OK; i++)
		if (key_cmp(&keys[i - 1], &keys[i]) == 0)
			rc = mu_errf(err, MU_EINVAL, "has the key '%.*s' twice",
			    (int)(keys[i]->via.str.size > 32 ? 32 : keys[i]->via.str.size),
			    keys[i]->via.str.ptr);
	free(keys);
	return rc;
}

static int
check_map_depth(const msgpack_object *o, int depth, struct mu_err *err)
{
	uint32_t i;
	int rc;

	switch (o->type) {
	case MSGPACK_OBJECT_MAP:
		if (depth > WIRE_MAX_ARGS_DEPTH)
			return mu_errf(err, MU_EINVAL, "nested deeper than %d levels",
			    WIRE_MAX_ARGS_DEPTH);
		if ((rc = check_keys(o, err)) != MU_OK)
			return rc;
		for (i = 0; i < o->via.map.size; i++) {
			rc = check_map_depth(&o->via.map.ptr[i].val, depth + 1, err);
			if (rc)
				return rc;
		}
		return MU_OK;
	case MSGPACK_OBJECT_ARRAY:
		if (depth > WIRE_MAX_ARGS_DEPTH)
			return mu_errf(err, MU_EINVAL, "nested deeper than %d levels",
			    WIRE_MAX_ARGS_DEPTH);
		for (i = 0; i < o->via.array.size; i++) {
			rc = check_map_depth(&o->via.array.ptr[i], depth + 1, err);
			if (rc)
				return rc;
		}
		return MU_OK;
	case MSGPACK_OBJECT_STR:
		if (o->via.str.size > WIRE_MAX_STR)
			return mu_errf(err, MU_EINVAL, "has a string over %u bytes", WIRE_MAX_STR);
		return MU_OK;
	case MSGPACK_OBJECT_EXT:
		return mu_errf(err, MU_EINVAL, "has an ext value");
	default:
		return MU_OK;
	}
}

int
wire_check_map(const msgpack_object *o, struct mu_err *err)
{
	if (o->type != MSGPACK_OBJECT_MAP)
		return mu_errf(err, MU_EINVAL, "is not a map");
	return check_map_depth(o, 1, err);
}

/* A NUL-terminated malloc'd copy of a view, or NULL for an absent one
 * (ptr NULL) or when out of memory.  The caller frees it. */
char *
wire_str_dup(struct wire_str s)
{
	char *p;

	if (s.ptr == NULL || (p = malloc(s.len + 1)) == NULL)
		return NULL;
	memcpy(p, s.ptr, s.len);
	p[s.len] = '\0';
	return p;
}

/*
 * msgpack-c 4 gives an empty string or bin a NULL pointer when nothing
 * with a length came before it; memcmp/memcpy/memchr on NULL is undefined
 * even for zero bytes.  Point them at an empty array once, here, instead
 * of guarding every reader.  (Found by fuzz_selftest_request.)
 */
void
wire_fix_empty(msgpack_object *o)
{
	static const char empty[1];
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		if (o->via.str.ptr == NULL)
			o->via.str.ptr = empty;
		break;
	case MSGPACK_OBJECT_BIN:
		if (o->via.bin.ptr == NULL)
			o->via.bin.ptr = empty;
		break;
	case MSGPACK_OBJECT_ARRAY:
		for (i = 0; i < o->via.array.size; i++)
			wire_fix_empty(&o->via.array.ptr[i]);
		break;
	case MSGPACK_OBJECT_MAP:
		for (i = 0; i < o->via.map.size; i++) {
			wire_fix_empty(&o->via.map.ptr[i].key);
			wire_fix_empty(&o->via.map.ptr[i].val);
		}
		break;
	default:
		break;
	}
}

/* ---- decoding --------------------------------------------------------- */

/* A reader over one top-level map. */
struct rd {
	const msgpack_object *map;
	struct mu_err *err;
};

static bool
key_is(const msgpack_object *k, const char *key)
{
	size_t n = strlen(key);

	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	    memcmp(k->via.str.ptr, key, n) == 0;
}

static const msgpack_object *
rd_find(const struct rd *r, const char *key)
{
	uint32_t i;

	for (i = 0; i < r->map->via.map.size; i++)
		if (key_is(&r->map->via.map.ptr[i].key, key))
			return &r->map->via.map.ptr[i].val;
	return NULL;
}

/* Find key; MU_ENOENT (no message) if absent and optional. */
static int
rd_get(const struct rd *r, const char *key, bool required, msgpack_object_type type,
    const char *tname, const msgpack_object **out)
{
	const msgpack_object *o = rd_find(r, key);

	*out = NULL;
	if (o == NULL) {
		if (required)
			return mu_errf(r->err, MU_EINVAL, "missing key '%s'", key);
		return MU_ENOENT;
	}
	if (o->type != type)
		return mu_errf(r->err, MU_EINVAL, "key '%s' must be %s", key, tname);
	*out = o;
	return MU_OK;
}

static int
rd_str(const struct rd *r, const char *key, bool required, size_t max,
    struct wire_str *out)
{
	const msgpack_object *o;
	int rc;

	out->ptr = NULL, out->len = 0;
	rc = rd_get(r, key, required, MSGPACK_OBJECT_STR, "a string", &o);
	if (rc)
		return rc == MU_ENOENT ? MU_OK : rc;
	if (o->via.str.size > max)
		return mu_errf(r->err, MU_EINVAL, "key '%s' is longer than %zu bytes", key, max);
	out->ptr = o->via.str.ptr, out->len = o->via.str.size;
	return MU_OK;
}

/* A short identifier copied into dst and checked with valid(). */
static int
rd_ident(const struct rd *r, const char *key, bool required, char *dst, size_t dstsz,
    bool (*valid)(const char *), const char *what)
{
	struct wire_str s;
	int rc;

	dst[0] = '\0';
	rc = rd_str(r, key, required, dstsz - 1, &s);
	if (rc || s.ptr == NULL)
		return rc;
	if (memchr(s.ptr, '\0', s.len) != NULL)
		return mu_errf(r->err, MU_EINVAL, "key '%s' contains a NUL byte", key);
	memcpy(dst, s.ptr, s.len);
	dst[s.len] = '\0';
	if (!valid(dst))
		return mu_errf(r->err, MU_EINVAL, "key '%s' is not %s", key, what);
	return MU_OK;
}

static int
rd_uint(const struct rd *r, const char *key, bool required, uint64_t max, uint64_t *out)
{
	const msgpack_object *o;
	int rc;

	*out = 0;
	o = rd_find(r, key);
	if (o != NULL && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return mu_errf(r->err, MU_EINVAL, "key '%s' must not be negative", key);
	rc = rd_get(r, key, required, MSGPACK_OBJECT_POSITIVE_INTEGER,
	    "an unsigned integer", &o);
	if (rc)
		return rc == MU_ENOENT ? MU_OK : rc;
	if (o->via.u64 > max)
		return mu_errf(r->err, MU_EINVAL, "key '%s' is over %llu", key,
		    (unsigned long long)max);
	*out = o->via.u64;
	return MU_OK;
}

static int
rd_int32(const struct rd *r, const char *key, bool *has, int32_t *out)
{
	const msgpack_object *o = rd_find(r, key);

	*has = false, *out = 0;
	if (o == NULL)
		return MU_OK;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT32_MAX)
		*out = (int32_t)o->via.u64;
	else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= INT32_MIN)
		*out = (int32_t)o->via.i64;
	else
		return mu_errf(r->err, MU_EINVAL, "key '%s' must be a 32-bit integer", key);
	*has = true;
	return MU_OK;
}

static int
rd_bool(const struct rd *r, const char *key, bool required, bool *out)
{
	const msgpack_object *o;
	int rc;

	*out = false;
	rc = rd_get(r, key, required, MSGPACK_OBJECT_BOOLEAN, "a boolean", &o);
	if (rc)
		return rc == MU_ENOENT ? MU_OK : rc;
	*out = o->via.boolean;
	return MU_OK;
}

static int
rd_bin(const struct rd *r, const char *key, bool required, size_t max,
    struct wire_bytes *out)
{
	const msgpack_object *o;
	int rc;

	out->ptr = NULL, out->len = 0;
	rc = rd_get(r, key, required, MSGPACK_OBJECT_BIN, "binary", &o);
	if (rc)
		return rc == MU_ENOENT ? MU_OK : rc;
	if (o->via.bin.size > max)
		return mu_errf(r->err, MU_EINVAL, "key '%s' is larger than %zu bytes", key, max);
	out->ptr = (const uint8_t *)o->via.bin.ptr, out->len = o->via.bin.size;
	return MU_OK;
}

static int
rd_map(const struct rd *r, const char *key, const msgpack_object **out)
{
	struct mu_err why;
	int rc;

	rc = rd_get(r, key, false, MSGPACK_OBJECT_MAP, "a map", out);
	if (rc)
		return rc == MU_ENOENT ? MU_OK : rc;
	if (wire_check_map(*out, &why))
		return mu_errf(r->err, MU_EINVAL, "key '%s' %s", key, why.msg);
	return MU_OK;
}

/* A required string that must equal one of a fixed set of words. */
static int
rd_word(const struct rd *r, const char *key, const char *const *words, int nwords,
    int *out)
{
	struct wire_str s;
	int i, rc;

	rc = rd_str(r, key, true, 64, &s);
	if (rc)
		return rc;
	for (i = 0; i < nwords; i++)
		if (strlen(words[i]) == s.len && memcmp(words[i], s.ptr, s.len) == 0) {
			*out = i;
			return MU_OK;
		}
	return mu_errf(r->err, MU_EINVAL, "key '%s' has an unknown value '%.*s'", key,
	    (int)(s.len > 32 ? 32 : s.len), s.ptr);
}

/*
 * Unpack buf into doc and check the envelope shared by every message: a
 * map, not too many keys, no duplicate keys, and "v" == 1.
 */
static int
doc_open(const void *buf, size_t len, struct wire_doc *doc, struct rd *r,
    struct mu_err *err)
{
	const msgpack_object *map, *v;
	size_t off = 0;
	uint32_t i, j;
	int rc;

	memset(doc, 0, sizeof(*doc));
	rc = wire_check(buf, len, err);
	if (rc)
		return rc;
	msgpack_unpacked_init(&doc->up);
	doc->live = true;
	if (msgpack_unpack_next(&doc->up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    off != len) {
		wire_doc_free(doc);
		return mu_errf(err, MU_EINVAL, "not a msgpack message");
	}
	wire_fix_empty(&doc->up.data);
	map = &doc->up.data;
	r->map = map, r->err = err;
	if (map->type != MSGPACK_OBJECT_MAP)
		rc = mu_errf(err, MU_EINVAL, "message is not a map");
	else if (map->via.map.size > TOP_MAX_KEYS)
		rc = mu_errf(err, MU_EINVAL, "message has more than %d keys", TOP_MAX_KEYS);
	for (i = 0; rc == MU_OK && i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;

		if (k->type != MSGPACK_OBJECT_STR) {
			rc = mu_errf(err, MU_EINVAL, "message has a key that is not a string");
			break;
		}
		/* Two decoders must never disagree on what a signed body says. */
		for (j = 0; j < i; j++)
			if (map->via.map.ptr[j].key.via.str.size == k->via.str.size &&
			    memcmp(map->via.map.ptr[j].key.via.str.ptr, k->via.str.ptr,
			    k->via.str.size) == 0) {
				rc = mu_errf(err, MU_EINVAL, "message has the key '%.*s' twice",
				    (int)(k->via.str.size > 32 ? 32 : k->via.str.size),
				    k->via.str.ptr);
				break;
			}
	}
	if (rc == MU_OK) {
		rc = rd_get(r, "v", true, MSGPACK_OBJECT_POSITIVE_INTEGER,
		    "an unsigned integer", &v);
		if (rc == MU_OK && v->via.u64 != WIRE_VERSION)
			rc = mu_errf(err, MU_EINVAL, "protocol version %llu is not supported "
			    "(this side speaks %d)", (unsigned long long)v->via.u64, WIRE_VERSION);
	}
	if (rc)
		wire_doc_free(doc);
	return rc;
}

/* Close a decode: on failure, free the doc so nothing is left to free. */
static int
doc_close(struct wire_doc *doc, int rc)
{
	if (rc)
		wire_doc_free(doc);
	return rc;
}

/* ---- encoding helpers ------------------------------------------------- */

static void
pk_str(msgpack_packer *pk, const char *s, size_t len)
{
	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

static void
pk_key(msgpack_packer *pk, const char *key)
{
	pk_str(pk, key, strlen(key));
}

static void
pk_kv_str(msgpack_packer *pk, const char *key, const char *s)
{
	pk_key(pk, key);
	pk_str(pk, s, strlen(s));
}

static void
pk_kv_view(msgpack_packer *pk, const char *key, struct wire_str s)
{
	pk_key(pk, key);
	pk_str(pk, s.ptr, s.len);
}

static void
pk_kv_uint(msgpack_packer *pk, const char *key, uint64_t v)
{
	pk_key(pk, key);
	msgpack_pack_uint64(pk, v);
}

static void
pk_kv_bin(msgpack_packer *pk, const char *key, const void *p, size_t len)
{
	pk_key(pk, key);
	msgpack_pack_bin(pk, len);
	msgpack_pack_bin_body(pk, p, len);
}

static void
pk_kv_bool(msgpack_packer *pk, const char *key, bool v)
{
	pk_key(pk, key);
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

/* Start a message; returns where it begins in out, for pk_finish(). */
static size_t
pk_begin(msgpack_packer *pk, msgpack_sbuffer *out, size_t nkeys)
{
	size_t start = out->size;

	msgpack_packer_init(pk, out, msgpack_sbuffer_write);
	msgpack_pack_map(pk, nkeys + 1);
	pk_kv_uint(pk, "v", WIRE_VERSION);
	return start;
}

static int
need(bool ok, struct mu_err *err, const char *what)
{
	return ok ? MU_OK : mu_errf(err, MU_EINVAL, "cannot encode: %s", what);
}

static int
need_view(struct wire_str s, size_t max, struct mu_err *err, const char *what)
{
	return need(s.ptr == NULL || s.len <= max, err, what);
}

/*
 * The last check of an encoder whose input nests caller-made maps (args,
 * data): the bytes must pass the same bounds the decoders apply, or they
 * are taken back out of the buffer.
 */
static int
pk_finish(msgpack_sbuffer *out, size_t start, size_t max, struct mu_err *err)
{
	struct mu_err why;

	if (out->size - start > max) {
		out->size = start;
		return mu_errf(err, MU_EINVAL, "cannot encode: message over %zu bytes", max);
	}
	if (wire_check(out->data + start, out->size - start, &why) != MU_OK) {
		out->size = start;
		return mu_errf(err, MU_EINVAL, "cannot encode: %s", why.msg);
	}
	return MU_OK;
}

/* ---- job envelope ----------------------------------------------------- */

int
envelope_decode(const void *buf, size_t len, struct job_envelope *out,
    struct mu_err *err)
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
		rc = rd_bin(&r, "body", true, WIRE_MAX_BODY, &out->body);
	if (!rc && out->body.len == 0)
		rc = mu_errf(err, MU_EINVAL, "key 'body' is empty");
	return doc_close(&out->doc, rc);
}

int
envelope_encode(const char *key, const uint8_t sig[ED25519_SIG_LEN],
    const void *body, size_t body_len, msgpack_sbuffer *out, struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need(key != NULL && keyid_valid(key), err, "bad key id");
	if (!rc)
		rc = need(body != NULL && body_len > 0 && body_len <= WIRE_MAX_BODY, err,
		    "job body empty or too large");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 3);
	pk_kv_str(&pk, "key", key);
	pk_kv_bin(&pk, "sig", sig, ED25519_SIG_LEN);
	pk_kv_bin(&pk, "body", body, body_len);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

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

/* ---- job body --------------------------------------------------------- */

static const char *const job_kinds[] = {
	[JOB_UNKNOWN] = "unknown", [JOB_RUN] = "run", [JOB_PING] = "ping",
	[JOB_VERSION] = "version", [JOB_CANCEL] = "cancel", [JOB_UPDATE] = "update",
};
#define NJOB_KINDS ((int)(sizeof(job_kinds) / sizeof(job_kinds[0])))

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

static int
job_decode_target(struct rd *r, struct job *out)
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
	if (memchr(s.ptr, '\0', s.len) != NULL ||
	    target_parse(target, &out->target, &why) != MU_OK)
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
		rc = job_decode_target(&r, out);
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
	return pk_finish(out, start, WIRE_MAX_BODY, err);
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
		rc = rd_word(&r, "kind", job_kinds, NJOB_KINDS, &kind);
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
		    (int)x->kind >= 0 && (int)x->kind < NJOB_KINDS &&
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
	    (x->output.ptr != NULL) + x->truncated + (x->data != NULL) +
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

/* ---- manifests -------------------------------------------------------- */

static int
rd_kind(struct rd *r, const char *want)
{
	const char *const words[] = { want };
	int i;

	return rd_word(r, "kind", words, 1, &i);
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
	return doc_close(&out->doc, rc);
}

int
module_manifest_encode(const struct module_manifest *m, msgpack_sbuffer *out,
    struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need(name_valid(m->name) && version_valid(m->version) &&
	    sha256hex_valid(m->sha256) && m->size <= WIRE_MAX_BIN, err,
	    "bad name, version, sha256 or size");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 7);
	pk_kv_str(&pk, "kind", "module");
	pk_kv_str(&pk, "name", m->name);
	pk_kv_str(&pk, "version", m->version);
	pk_kv_uint(&pk, "abi", m->abi);
	pk_kv_str(&pk, "sha256", m->sha256);
	pk_kv_uint(&pk, "size", m->size);
	pk_kv_uint(&pk, "published_at", m->published_at);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
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
	rc = rd_kind(&r, "release");
	if (!rc)
		rc = rd_ident(&r, "channel", true, out->channel, sizeof(out->channel),
		    name_valid, "a channel name");
	if (!rc)
		rc = rd_ident(&r, "version", true, out->version, sizeof(out->version),
		    version_valid, "a version");
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
	return doc_close(&out->doc, rc);
}

int
release_manifest_encode(const struct release_manifest *m, msgpack_sbuffer *out,
    struct mu_err *err)
{
	msgpack_packer pk;
	size_t start;
	int rc;

	rc = need(name_valid(m->channel) && version_valid(m->version) &&
	    sha256hex_valid(m->agent_sha256) && sha256hex_valid(m->runner_sha256) &&
	    m->agent_size <= WIRE_MAX_BIN && m->runner_size <= WIRE_MAX_BIN &&
	    m->rollout <= 100, err, "bad channel, version, hashes, sizes or rollout");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 9);
	pk_kv_str(&pk, "kind", "release");
	pk_kv_str(&pk, "channel", m->channel);
	pk_kv_str(&pk, "version", m->version);
	pk_kv_str(&pk, "agent_sha256", m->agent_sha256);
	pk_kv_uint(&pk, "agent_size", m->agent_size);
	pk_kv_str(&pk, "runner_sha256", m->runner_sha256);
	pk_kv_uint(&pk, "runner_size", m->runner_size);
	pk_kv_uint(&pk, "published_at", m->published_at);
	pk_kv_uint(&pk, "rollout", m->rollout);
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

/* ---- musterd's parent <-> network process messages ---------------------- */

static const char *const priv_names[] = {
	[PRIV_JOB] = "job", [PRIV_MODULE] = "module", [PRIV_SPOOLED] = "spooled",
	[PRIV_RESULT] = "result", [PRIV_EVENT] = "event", [PRIV_MODULE_WANT] = "want",
	[PRIV_POKE] = "poke", [PRIV_STOP] = "stop", [PRIV_RELEASE] = "release",
	[PRIV_UPDATE_CHECK] = "check", [PRIV_NO_UPDATE] = "noupdate",
	[PRIV_UPDATE_STATE] = "update", [PRIV_CONNECTED] = "connected",
	[PRIV_VERDICT] = "verdict", [PRIV_READY] = "ready", [PRIV_FAILED] = "failed",
	[PRIV_DURABLE] = "durable", [PRIV_ANSWERED] = "answered",
};

static const char *const priv_sources[] = {
	[PRIV_SRC_NONE] = "none", [PRIV_SRC_LOCAL] = "local", [PRIV_SRC_CACHE] = "cache",
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
	[PRIV_UPDATE_STATE] = PMF_PAYLOAD,
	[PRIV_CONNECTED] = 0,
	[PRIV_VERDICT] = PMF_PAYLOAD,
	[PRIV_READY] = 0,
	[PRIV_FAILED] = PMF_REASON,
	[PRIV_DURABLE] = PMF_COUNT,
	[PRIV_ANSWERED] = PMF_JOB,
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
		if (!rc && (m->source == PRIV_SRC_NONE) != (m->sha256[0] == '\0'))
			rc = mu_errf(r->err, MU_EINVAL, "a module answer names a build exactly "
			    "when it has one");
	}
	if (!rc && (f & PMF_REASON))
		rc = rd_str(r, "reason", true, WIRE_MAX_STR, &m->reason);
	if (!rc && (f & PMF_PAYLOAD))
		rc = rd_bin(r, "payload", true, WIRE_MAX_BIN, &m->payload);
	if (!rc && (f & PMF_COUNT))
		rc = rd_uint(r, "n", true, UINT64_MAX, &m->n);
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
	    (!(f & PMF_PAYLOAD) || (m->payload.ptr && m->payload.len <= WIRE_MAX_BIN)), err,
	    "bad field in a parent/network message");
	if (!rc && (f & PMF_SOURCE))
		rc = need((m->source == PRIV_SRC_NONE) == (m->sha256[0] == '\0'), err,
		    "a module answer names a build exactly when it has one");
	if (!rc && (f & PMF_SOURCE))
		rc = need_view(m->reason, WIRE_MAX_STR, err, "reason too long");
	if (!rc && (f & PMF_REASON))
		rc = need(m->reason.ptr != NULL && m->reason.len <= WIRE_MAX_STR, err,
		    "reason missing or too long");
	if (rc)
		return rc;
	n += !!(f & PMF_JOB) + !!(f & PMF_NAME) + !!(f & PMF_TOPIC) + !!(f & PMF_PAYLOAD) +
	    2 * !!(f & PMF_SOURCE) - ((f & PMF_SOURCE) && !m->reason.ptr) +
	    !!(f & PMF_REASON) + !!(f & PMF_COUNT) +
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
	if (f & PMF_REASON)
		pk_kv_view(&pk, "reason", m->reason);
	if (f & PMF_PAYLOAD)
		pk_kv_bin(&pk, "payload", m->payload.ptr, m->payload.len);
	if (f & PMF_COUNT)
		pk_kv_uint(&pk, "n", m->n);
	return pk_finish(out, start, WIRE_MAX_MSG, err);
}

/* ---- runner event frames (lib/ipc.h): the same readers as the network's --- */

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

int
ipc_event_decode(const void *buf, size_t len, struct ipc_event *e, struct mu_err *err)
{
	static const char *const types[] = {
		[IPC_OUT] = "out", [IPC_PROGRESS] = "progress", [IPC_VERDICT] = "verdict",
	};
	uint64_t pct = 0;
	struct rd r;
	int t, rc;

	memset(e, 0, sizeof(*e));
	if (len > IPC_MAX_FRAME)
		return mu_errf(err, MU_EINVAL, "event larger than %u bytes", IPC_MAX_FRAME);
	if ((rc = doc_open(buf, len, &e->doc, &r, err)) != MU_OK)
		return rc;
	rc = rd_word(&r, "t", types, 3, &t);
	e->type = (enum ipc_type)t;
	if (!rc && e->type == IPC_OUT) {
		rc = rd_str(&r, "text", true, WIRE_MAX_STR, &e->text);
	} else if (!rc && e->type == IPC_PROGRESS) {
		rc = rd_uint(&r, "pct", true, 100, &pct);
		e->pct = (uint8_t)pct;
	} else if (!rc)
		rc = ipc_decode_verdict(&r, e);
	return doc_close(&e->doc, rc);
}
