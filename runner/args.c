/* SPDX-License-Identifier: Apache-2.0 */
/*
 * args.c - the job's "args" map as a tree of struct muster_value.
 *
 * The tree is built once before run() and never changes, so the value
 * accessors hand out pointers into it: no allocation per call, and every
 * string a module gets is a NUL-terminated copy that lives until run()
 * returns, as module.h promises: runner_free() frees the arena after the
 * verdict, before the module's destructors run.  Nodes and strings
 * (get_str()'s converted integers too) come from one arena and go in one
 * arena_free().
 */
#include "runner.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK	(64u * 1024)
#define ARENA_ALIGN	16

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	_Alignas(ARENA_ALIGN) unsigned char mem[];
};

void *
arena_alloc(struct arena *a, size_t size)
{
	struct arena_chunk *c = a->head;
	size_t cap;
	void *p;

	size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (size == 0)
		size = ARENA_ALIGN;
	if (c == NULL || c->cap - c->used < size) {
		cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
		if ((c = malloc(sizeof(*c) + cap)) == NULL)
			return NULL;
		c->used = 0, c->cap = cap;
		c->next = a->head;
		a->head = c;
	}
	p = c->mem + c->used;
	c->used += size;
	memset(p, 0, size);
	return p;
}

void
arena_free(struct arena *a)
{
	struct arena_chunk *c, *next;

	for (c = a->head; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	a->head = NULL;
}

static char *
arena_strndup(struct arena *a, const char *s, size_t len)
{
	char *p = arena_alloc(a, len + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static int build(struct arena *, const msgpack_object *, struct muster_value *);

static int
build_list(struct arena *a, const msgpack_object *o, struct muster_value *v)
{
	uint32_t i;
	int rc;

	v->type = MUSTER_T_LIST;
	v->len = o->via.array.size;
	if (v->len == 0)
		return MU_OK;
	if ((v->items = arena_alloc(a, v->len * sizeof(*v->items))) == NULL)
		return MU_ENOMEM;
	for (i = 0; i < o->via.array.size; i++)
		if ((rc = build(a, &o->via.array.ptr[i], &v->items[i])) != MU_OK)
			return rc;
	return MU_OK;
}

static int
build_map(struct arena *a, const msgpack_object *o, struct muster_value *v)
{
	const msgpack_object_kv *kv;
	uint32_t i;
	int rc;

	v->type = MUSTER_T_MAP;
	v->len = o->via.map.size;
	if (v->len == 0)
		return MU_OK;
	if ((v->items = arena_alloc(a, v->len * sizeof(*v->items))) == NULL ||
	    (v->keys = arena_alloc(a, v->len * sizeof(*v->keys))) == NULL)
		return MU_ENOMEM;
	for (i = 0; i < o->via.map.size; i++) {
		kv = &o->via.map.ptr[i];
		/* wire_check_map() let only string keys through. */
		if (kv->key.type == MSGPACK_OBJECT_STR)
			v->keys[i] = arena_strndup(a, kv->key.via.str.ptr, kv->key.via.str.size);
		else
			v->keys[i] = arena_strndup(a, "", 0);
		if (v->keys[i] == NULL)
			return MU_ENOMEM;
		if ((rc = build(a, &kv->val, &v->items[i])) != MU_OK)
			return rc;
	}
	return MU_OK;
}

/* Depth is bounded by wire_check_map(), which job_decode() ran. */
static int
build(struct arena *a, const msgpack_object *o, struct muster_value *v)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		v->type = MUSTER_T_NIL;
		return MU_OK;
	case MSGPACK_OBJECT_BOOLEAN:
		v->type = MUSTER_T_BOOL, v->b = o->via.boolean;
		return MU_OK;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		v->type = MUSTER_T_INT, v->f = (double)o->via.u64;
		v->int_ok = o->via.u64 <= INT64_MAX;
		v->i = v->int_ok ? (int64_t)o->via.u64 : 0;
		return MU_OK;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		v->type = MUSTER_T_INT, v->int_ok = true, v->i = o->via.i64;
		v->f = (double)o->via.i64;
		return MU_OK;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		v->type = MUSTER_T_FLOAT, v->f = o->via.f64;
		return MU_OK;
	case MSGPACK_OBJECT_STR:
		v->type = MUSTER_T_STR, v->len = o->via.str.size;
		v->s = arena_strndup(a, o->via.str.ptr, o->via.str.size);
		return v->s == NULL ? MU_ENOMEM : MU_OK;
	case MSGPACK_OBJECT_BIN:
		v->type = MUSTER_T_BIN, v->len = o->via.bin.size;
		return MU_OK;
	case MSGPACK_OBJECT_ARRAY:
		return build_list(a, o, v);
	case MSGPACK_OBJECT_MAP:
		return build_map(a, o, v);
	default:
		v->type = MUSTER_T_NONE;
		return MU_OK;
	}
}

int
args_build(struct args *args, const msgpack_object *map, struct mu_err *err)
{
	int rc;

	memset(args, 0, sizeof(*args));
	if ((args->root = arena_alloc(&args->arena, sizeof(*args->root))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory for the arguments");
	args->root->type = MUSTER_T_MAP;
	if (map == NULL)
		return MU_OK;
	if (map->type != MSGPACK_OBJECT_MAP)
		return mu_errf(err, MU_EINVAL, "args is not a map");
	if ((rc = build_map(&args->arena, map, args->root)) != MU_OK)
		return mu_errf(err, rc, "out of memory for the arguments");
	return MU_OK;
}

void
args_free(struct args *args)
{
	arena_free(&args->arena);
	args->root = NULL;
}

/* The last of duplicate keys wins, as in the JSON an operator wrote. */
const struct muster_value *
value_get(const struct muster_value *v, const char *key)
{
	const struct muster_value *found = NULL;
	size_t i;

	if (v == NULL || key == NULL || v->type != MUSTER_T_MAP)
		return NULL;
	for (i = 0; i < v->len; i++)
		if (strcmp(v->keys[i], key) == 0)
			found = &v->items[i];
	return found;
}
