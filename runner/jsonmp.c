/*
 * jsonmp.c - JSON <-> msgpack for the edit-run loop: --run arguments to
 * the job's args, and a verdict's data back to JSON for the screen.
 */
#include "runner.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define JSON_MAX_DEPTH	16

static int
pack_str(msgpack_packer *pk, const char *s, size_t len)
{
	if (msgpack_pack_str(pk, len) != 0 || msgpack_pack_str_body(pk, s, len) != 0)
		return MU_ENOMEM;
	return MU_OK;
}

static int
json_object_to_msgpack(msgpack_packer *pk, json_t *j, int depth, struct mu_err *err)
{
	const char *key;
	json_t *v;
	int rc;

	if (msgpack_pack_map(pk, json_object_size(j)) != 0)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	json_object_foreach(j, key, v) {
		if (pack_str(pk, key, strlen(key)) != MU_OK)
			return mu_errf(err, MU_ENOMEM, "out of memory");
		if ((rc = json_to_msgpack(pk, v, depth + 1, err)) != MU_OK)
			return rc;
	}
	return MU_OK;
}

static int
json_array_to_msgpack(msgpack_packer *pk, json_t *j, int depth, struct mu_err *err)
{
	size_t i;
	json_t *v;
	int rc;

	if (msgpack_pack_array(pk, json_array_size(j)) != 0)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	json_array_foreach(j, i, v)
		if ((rc = json_to_msgpack(pk, v, depth + 1, err)) != MU_OK)
			return rc;
	return MU_OK;
}

int
json_to_msgpack(msgpack_packer *pk, const struct json_t *cj, int depth, struct mu_err *err)
{
	json_t *j = (json_t *)cj;	/* jansson's iterators take no const */
	int rc = 0;

	if (depth > WIRE_MAX_ARGS_DEPTH)
		return mu_errf(err, MU_EINVAL, "args nest deeper than %d levels",
		    WIRE_MAX_ARGS_DEPTH);
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return json_object_to_msgpack(pk, j, depth, err);
	case JSON_ARRAY:
		return json_array_to_msgpack(pk, j, depth, err);
	case JSON_STRING:
		rc = pack_str(pk, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		rc = msgpack_pack_int64(pk, json_integer_value(j));
		break;
	case JSON_REAL:
		rc = msgpack_pack_double(pk, json_real_value(j));
		break;
	case JSON_TRUE:
		rc = msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		rc = msgpack_pack_false(pk);
		break;
	case JSON_NULL:
		rc = msgpack_pack_nil(pk);
		break;
	}
	return rc != 0 ? mu_errf(err, MU_ENOMEM, "out of memory") : MU_OK;
}

/* A JSON string from bytes that may not be UTF-8. */
struct json_t *
json_text(const char *p, size_t len)
{
	json_t *j;
	char *s;

	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(s, p, len);
	len = utf8_clean(s, len, len);
	j = json_stringn(s, len);
	free(s);
	return j;
}

static json_t *
json_hex(const char *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	json_t *j;
	size_t i;
	char *s;

	if ((s = malloc(len * 2 + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		s[2 * i] = hex[(unsigned char)p[i] >> 4];
		s[2 * i + 1] = hex[(unsigned char)p[i] & 0xf];
	}
	j = json_stringn(s, len * 2);
	free(s);
	return j;
}

static json_t *
map_to_json(const msgpack_object *o, int depth)
{
	const msgpack_object_kv *kv;
	json_t *j = json_object(), *v, *k;
	uint32_t i;

	for (i = 0; j != NULL && i < o->via.map.size; i++) {
		kv = &o->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR)
			continue;
		k = json_text(kv->key.via.str.ptr, kv->key.via.str.size);
		v = msgpack_to_json(&kv->val, depth + 1);
		if (k == NULL || v == NULL) {
			json_decref(v);
			v = NULL;
		}
		/* setn_new() takes v even when it fails. */
		if (v == NULL || json_object_setn_new(j, json_string_value(k),
		    json_string_length(k), v) != 0) {
			json_decref(j);
			j = NULL;
		}
		json_decref(k);
	}
	return j;
}

static json_t *
array_to_json(const msgpack_object *o, int depth)
{
	json_t *j = json_array();
	uint32_t i;

	for (i = 0; j != NULL && i < o->via.array.size; i++)
		if (json_array_append_new(j, msgpack_to_json(&o->via.array.ptr[i],
		    depth + 1)) != 0) {
			json_decref(j);
			j = NULL;
		}
	return j;
}

struct json_t *
msgpack_to_json(const msgpack_object *o, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return json_null();
	switch (o->type) {
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			return json_real((double)o->via.u64);
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer(o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return isfinite(o->via.f64) ? json_real(o->via.f64) : json_null();
	case MSGPACK_OBJECT_STR:
		return json_text(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return json_hex(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		return array_to_json(o, depth);
	case MSGPACK_OBJECT_MAP:
		return map_to_json(o, depth);
	default:
		return json_null();
	}
}

/* key=value: true and false are booleans, whole numbers integers, the
 * rest strings.  "key:=007" or "key:='\"true\"'" says otherwise. */
static json_t *
arg_scalar(const char *v)
{
	const char *p = v;
	long long n;
	char *end;

	if (strcmp(v, "true") == 0)
		return json_true();
	if (strcmp(v, "false") == 0)
		return json_false();
	if (*p == '-')
		p++;
	if (*p >= '0' && *p <= '9' && strspn(p, "0123456789") == strlen(p)) {
		errno = 0;
		n = strtoll(v, &end, 10);
		if (errno == 0 && *end == '\0')
			return json_integer(n);
	}
	return json_string(v);
}

int
arg_parse(const char *spec, struct json_t *args, struct mu_err *err)
{
	const char *eq = strchr(spec, '=');
	json_error_t jerr;
	size_t klen;
	bool is_json;
	json_t *v;
	char *key;
	int rc;

	if (eq == NULL || eq == spec)
		return mu_errf(err, MU_EINVAL, "argument '%.64s' is not key=value or "
		    "key:=JSON", spec);
	is_json = eq[-1] == ':';
	klen = (size_t)(eq - spec) - is_json;
	if (klen == 0)
		return mu_errf(err, MU_EINVAL, "argument '%.64s' has no key", spec);
	if (is_json)
		v = json_loads(eq + 1, JSON_DECODE_ANY, &jerr);
	else
		v = arg_scalar(eq + 1);
	if (v == NULL)
		return is_json ? mu_errf(err, MU_EINVAL, "argument '%.*s': bad JSON: %s",
		    (int)klen, spec, jerr.text) : mu_errf(err, MU_EINVAL,
		    "argument '%.*s' is not UTF-8", (int)klen, spec);
	if ((key = strndup(spec, klen)) == NULL) {
		json_decref(v);
		return mu_errf(err, MU_ENOMEM, "out of memory");
	}
	rc = json_object_set_new(args, key, v) == 0 ? MU_OK :
	    mu_errf(err, MU_EINVAL, "argument key '%.64s' is not UTF-8", key);
	free(key);
	return rc;
}
