/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire.c - what every codec of protocol v1 is built from (wire_internal.h):
 * the decoders run wire_check(), unpack with msgpack-c, then read typed
 * fields from the top-level map through the small rd_* readers, each of
 * which refuses with a reason naming the key; the encoders write through
 * the pk_* writers.  Also the validators and helpers wire.h exports.
 */
#include "wire_internal.h"

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
static void
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

static bool
key_is(const msgpack_object *k, const char *key)
{
	size_t n = strlen(key);

	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	    memcmp(k->via.str.ptr, key, n) == 0;
}

const msgpack_object *
rd_find(const struct rd *r, const char *key)
{
	uint32_t i;

	for (i = 0; i < r->map->via.map.size; i++)
		if (key_is(&r->map->via.map.ptr[i].key, key))
			return &r->map->via.map.ptr[i].val;
	return NULL;
}

/* Find key; MU_ENOENT (no message) if absent and optional. */
int
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

int
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
int
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

int
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

int
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

int
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

int
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

int
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
int
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
int
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
int
doc_close(struct wire_doc *doc, int rc)
{
	if (rc)
		wire_doc_free(doc);
	return rc;
}

/* ---- encoding helpers ------------------------------------------------- */

void
pk_str(msgpack_packer *pk, const char *s, size_t len)
{
	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

void
pk_key(msgpack_packer *pk, const char *key)
{
	pk_str(pk, key, strlen(key));
}

void
pk_kv_str(msgpack_packer *pk, const char *key, const char *s)
{
	pk_key(pk, key);
	pk_str(pk, s, strlen(s));
}

void
pk_kv_view(msgpack_packer *pk, const char *key, struct wire_str s)
{
	pk_key(pk, key);
	pk_str(pk, s.ptr, s.len);
}

void
pk_kv_uint(msgpack_packer *pk, const char *key, uint64_t v)
{
	pk_key(pk, key);
	msgpack_pack_uint64(pk, v);
}

void
pk_kv_bin(msgpack_packer *pk, const char *key, const void *p, size_t len)
{
	pk_key(pk, key);
	msgpack_pack_bin(pk, len);
	msgpack_pack_bin_body(pk, p, len);
}

void
pk_kv_bool(msgpack_packer *pk, const char *key, bool v)
{
	pk_key(pk, key);
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

/* Start a message; returns where it begins in out, for pk_finish(). */
size_t
pk_begin(msgpack_packer *pk, msgpack_sbuffer *out, size_t nkeys)
{
	size_t start = out->size;

	msgpack_packer_init(pk, out, msgpack_sbuffer_write);
	msgpack_pack_map(pk, nkeys + 1);
	pk_kv_uint(pk, "v", WIRE_VERSION);
	return start;
}

int
need(bool ok, struct mu_err *err, const char *what)
{
	return ok ? MU_OK : mu_errf(err, MU_EINVAL, "cannot encode: %s", what);
}

int
need_view(struct wire_str s, size_t max, struct mu_err *err, const char *what)
{
	return need(s.ptr == NULL || s.len <= max, err, what);
}

/*
 * The last check of an encoder whose input nests caller-made maps (args,
 * data): the bytes must pass the same bounds the decoders apply, or they
 * are taken back out of the buffer.
 */
int
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
