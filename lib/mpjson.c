/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mpjson.c - msgpack <-> JSON conversions shared by the CLI, the runner's
 * local mode and the test tools.
 */
#include "mpjson.h"
#include "wire.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static json_t *mp_array_json(const msgpack_object *o);
static json_t *mp_map_json(const msgpack_object *o);
static int json_pack_object(msgpack_packer *pk, json_t *j);

json_t *
mpjson_hex(const void *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = p;
	json_t *j;
	char *s;
	size_t i;

	if ((s = malloc(2 * n + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		s[2 * i] = digits[b[i] >> 4];
		s[2 * i + 1] = digits[b[i] & 0xf];
	}
	j = json_stringn(s, 2 * n);
	free(s);
	return j;
}

static json_t *
mp_array_json(const msgpack_object *o)
{
	json_t *a = json_array();
	uint32_t i;

	for (i = 0; a != NULL && i < o->via.array.size; i++)
		if (json_array_append_new(a, mpjson_from_msgpack(&o->via.array.ptr[i])) != 0) {
			json_decref(a);
			a = NULL;
		}
	return a;
}

/* NULL on a non-string or duplicate key: JSON could not show it faithfully. */
static json_t *
mp_map_json(const msgpack_object *o)
{
	json_t *m = json_object();
	uint32_t i;

	for (i = 0; m != NULL && i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		const msgpack_object_str *k = &kv->key.via.str;

		if (kv->key.type != MSGPACK_OBJECT_STR ||
		    json_object_getn(m, k->ptr, k->size) != NULL ||
		    json_object_setn_new(m, k->ptr, k->size, mpjson_from_msgpack(&kv->val)) != 0) {
			json_decref(m);
			m = NULL;
		}
	}
	return m;
}

json_t *
mpjson_from_msgpack(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return o->via.u64 > INT64_MAX ? NULL : json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(o->via.f64);	/* NULL if not finite */
	case MSGPACK_OBJECT_STR:
		return json_stringn(o->via.str.ptr, o->via.str.size);	/* NULL if not UTF-8 */
	case MSGPACK_OBJECT_BIN:
		return mpjson_hex(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		return mp_array_json(o);
	case MSGPACK_OBJECT_MAP:
		return mp_map_json(o);
	default:
		return NULL;	/* ext */
	}
}

static int
json_pack_object(msgpack_packer *pk, json_t *j)
{
	const char *key;
	json_t *val;

	msgpack_pack_map(pk, json_object_size(j));
	json_object_foreach(j, key, val) {
		msgpack_pack_str(pk, strlen(key));
		msgpack_pack_str_body(pk, key, strlen(key));
		if (mpjson_pack(pk, val) != 0)
			return -1;
	}
	return 0;
}

int
mpjson_pack(msgpack_packer *pk, json_t *j)
{
	size_t i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return json_pack_object(pk, j);
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(j));
		for (i = 0; i < json_array_size(j); i++)
			if (mpjson_pack(pk, json_array_get(j, i)) != 0)
				return -1;
		return 0;
	case JSON_STRING:
		msgpack_pack_str(pk, json_string_length(j));
		return msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
	case JSON_INTEGER:
		if (json_integer_value(j) >= 0)
			return msgpack_pack_uint64(pk, (uint64_t)json_integer_value(j));
		return msgpack_pack_int64(pk, json_integer_value(j));
	case JSON_REAL:
		return msgpack_pack_double(pk, json_real_value(j));
	case JSON_TRUE:
		return msgpack_pack_true(pk);
	case JSON_FALSE:
		return msgpack_pack_false(pk);
	case JSON_NULL:
		return msgpack_pack_nil(pk);
	}
	return -1;
}

int
mpjson_depth(json_t *j)
{
	const char *key;
	json_t *val;
	size_t i;
	int d, max = 0;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		json_object_foreach(j, key, val)
			if ((d = mpjson_depth(val)) > max)
				max = d;
		return max + 1;
	case JSON_ARRAY:
		json_array_foreach(j, i, val)
			if ((d = mpjson_depth(val)) > max)
				max = d;
		return max + 1;
	default:
		return 0;
	}
}

/* ---- key=value arguments (the CLI and muster-runner --run) ------------ */

/* An integer as JSON writes one, that fits int64_t. */
static bool
is_int(const char *s, long long *out)
{
	const char *d = s[0] == '-' ? s + 1 : s;
	char *end;

	if (*d < '0' || *d > '9' || (d[0] == '0' && d[1] != '\0'))
		return false;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* NULL if v is not UTF-8. */
static json_t *
arg_scalar(const char *v)
{
	long long n;

	if (strcmp(v, "true") == 0)
		return json_true();
	if (strcmp(v, "false") == 0)
		return json_false();
	if (is_int(v, &n))
		return json_integer(n);
	return json_string(v);
}

static json_t *
arg_json(const char *text, json_error_t *jerr)
{
	if (text[0] == '@')
		return json_load_file(text + 1, JSON_DECODE_ANY, jerr);
	return json_loads(text, JSON_DECODE_ANY, jerr);
}

int
mpjson_arg(json_t *args, const char *spec, struct mu_err *err)
{
	const char *eq = strchr(spec, '=');
	json_error_t jerr;
	size_t klen;
	bool is_json;
	json_t *v;

	if (eq == NULL || eq == spec)
		return mu_errf(err, MU_EINVAL, "argument '%.64s' is not key=value or "
		    "key:=JSON", spec);
	is_json = eq[-1] == ':';
	klen = (size_t)(eq - spec) - is_json;
	if (klen == 0)
		return mu_errf(err, MU_EINVAL, "argument '%.64s' has no key", spec);
	if ((v = is_json ? arg_json(eq + 1, &jerr) : arg_scalar(eq + 1)) == NULL)
		return is_json ? mu_errf(err, MU_EINVAL, "argument '%.*s': bad JSON: %s",
		    (int)klen, spec, jerr.text) : mu_errf(err, MU_EINVAL,
		    "argument '%.*s' is not UTF-8", (int)klen, spec);
	/* The value sits at level 2 of the args map.  Said here, as a value
	 * too deep for msgpack's unpacker would fail later without a reason. */
	if (mpjson_depth(v) > WIRE_MAX_ARGS_DEPTH - 1) {
		json_decref(v);
		return mu_errf(err, MU_EINVAL, "argument '%.*s' nests deeper than %d "
		    "levels", (int)klen, spec, WIRE_MAX_ARGS_DEPTH);
	}
	/* setn_new() takes v even when it fails. */
	if (json_object_setn_new(args, spec, klen, v) != 0)
		return mu_errf(err, MU_EINVAL, "argument key '%.*s' is not UTF-8",
		    (int)klen, spec);
	return MU_OK;
}
