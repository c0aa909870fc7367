/* SPDX-License-Identifier: Apache-2.0 */
/*
 * data.c - the verdict's "data": a tree of nodes that modules fill through
 * '/'-separated paths, packed into a msgpack map at the end.
 *
 * Bounds: at most RUNNER_DATA_MAX_KEYS nodes and RUNNER_DATA_MAX_BYTES of
 * encoding.  The byte count is an upper bound of the msgpack size (every
 * header counted at its widest), kept exact under "last wins" overwrites
 * so that a module setting one key in a loop never runs out.  A set that
 * would pass a bound is dropped whole and marks the data truncated.
 *
 * Depth: the root map is level 1 and a path has at most 7 elements, so the
 * deepest container is the list of "a/b/c/d/e/f/g[]" at level 8, which is
 * what wire_check_map() allows in a verdict.
 */
#include "runner.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HDR	5	/* widest str, map or array header */
#define NUM	9	/* widest int or double */

struct dnode {
	enum dtype type;
	char *key;		/* in a map; NULL in a list and for the root */
	union {
		bool b;
		int64_t i;
		double f;
		struct {
			char *p;
			size_t len;
		} s;
	} v;
	struct dnode **kids;	/* D_MAP, D_LIST */
	size_t n, cap;
};

/* A parsed path: elements point into buf. */
struct dpath {
	char buf[RUNNER_DATA_PATH_MAX + 1];
	char *el[RUNNER_DATA_MAX_DEPTH];
	size_t n;
	bool append;		/* the last element ended in "[]" */
};

/* What a set adds and takes away, worked out before anything changes. */
struct dplan {
	size_t addb, subb, addn, subn;
};

static size_t
val_cost(const struct dval *v)
{
	switch (v->type) {
	case D_STR:
		return HDR + v->len;
	case D_INT:
	case D_FLOAT:
		return NUM;
	case D_MAP:
	case D_LIST:
		return HDR;
	default:
		return 1;
	}
}

/* Bytes of a node's value and everything under it (its key not counted). */
static size_t
value_bytes(const struct dnode *d)
{
	struct dval v = { .type = d->type, .len = d->type == D_STR ? d->v.s.len : 0 };
	size_t i, b = val_cost(&v);

	for (i = 0; i < d->n; i++)
		b += (d->kids[i]->key ? HDR + strlen(d->kids[i]->key) : 0) +
		    value_bytes(d->kids[i]);
	return b;
}

static size_t
descendants(const struct dnode *d)
{
	size_t i, n = d->n;

	for (i = 0; i < d->n; i++)
		n += descendants(d->kids[i]);
	return n;
}

/* Drop a node's value and children, keeping the node and its key. */
static void
node_clear(struct dnode *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		node_clear(d->kids[i]);
		free(d->kids[i]->key);
		free(d->kids[i]);
	}
	free(d->kids);
	d->kids = NULL, d->n = d->cap = 0;
	if (d->type == D_STR)
		free(d->v.s.p);
	memset(&d->v, 0, sizeof(d->v));
	d->type = D_NIL;
}

static struct dnode *
node_find(const struct dnode *map, const char *key)
{
	size_t i;

	for (i = 0; i < map->n; i++)
		if (strcmp(map->kids[i]->key, key) == 0)
			return map->kids[i];
	return NULL;
}

static int
node_add(struct dnode *parent, const char *key, enum dtype type, struct dnode **out)
{
	struct dnode *d, **kids;
	size_t cap;

	if (parent->n == parent->cap) {
		cap = parent->cap ? parent->cap * 2 : 4;
		if ((kids = reallocarray(parent->kids, cap, sizeof(*kids))) == NULL)
			return MU_ENOMEM;
		parent->kids = kids, parent->cap = cap;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return MU_ENOMEM;
	if (key != NULL && (d->key = strdup(key)) == NULL) {
		free(d);
		return MU_ENOMEM;
	}
	d->type = type;
	parent->kids[parent->n++] = d;
	*out = d;
	return MU_OK;
}

static int
path_parse(const char *path, struct dpath *p, struct mu_err *err)
{
	size_t len = strnlen(path, RUNNER_DATA_PATH_MAX + 1), el;
	char *s;

	memset(p, 0, sizeof(*p));
	if (len == 0 || len > RUNNER_DATA_PATH_MAX)
		return mu_errf(err, MU_EINVAL, "a data key is 1 to %d bytes",
		    RUNNER_DATA_PATH_MAX);
	memcpy(p->buf, path, len);
	/* Keys end up as JSON object keys too. */
	utf8_clean(p->buf, len, len);
	for (s = p->buf; ; s++) {
		if (p->n == RUNNER_DATA_MAX_DEPTH)
			return mu_errf(err, MU_EINVAL, "more than %d levels",
			    RUNNER_DATA_MAX_DEPTH);
		p->el[p->n++] = s;
		if ((s = strchr(s, '/')) == NULL)
			break;
		*s = '\0';
	}
	for (el = 0; el < p->n; el++) {
		len = strlen(p->el[el]);
		if (len >= 2 && strcmp(p->el[el] + len - 2, "[]") == 0) {
			if (el + 1 < p->n)
				return mu_errf(err, MU_EINVAL, "'[]' may only end the key");
			p->append = true;
			p->el[el][len - 2] = '\0';
		}
		if (p->el[el][0] == '\0')
			return mu_errf(err, MU_EINVAL, "empty element in the key");
	}
	return MU_OK;
}

/* Replacing an existing node's value: what goes away. */
static void
plan_replace(struct dplan *pl, const struct dnode *d)
{
	pl->subb += value_bytes(d);
	pl->subn += descendants(d);
}

static void
plan(const struct data *dt, const struct dpath *p, const struct dval *v,
    struct dplan *pl)
{
	const struct dnode *at = dt->root, *d = NULL;
	size_t el;

	memset(pl, 0, sizeof(*pl));
	for (el = 0; el < p->n; el++) {
		d = at != NULL ? node_find(at, p->el[el]) : NULL;
		if (d == NULL) {
			pl->addb += HDR + strlen(p->el[el]);
			pl->addn++;
		}
		if (el + 1 < p->n) {
			/* An intermediate: must be a map. */
			if (d != NULL && d->type != D_MAP) {
				plan_replace(pl, d);
				pl->addb += HDR;
			} else if (d == NULL)
				pl->addb += HDR;
			at = d != NULL && d->type == D_MAP ? d : NULL;
			continue;
		}
		if (p->append) {
			if (d != NULL && d->type != D_LIST) {
				plan_replace(pl, d);
				pl->addb += HDR;
			} else if (d == NULL)
				pl->addb += HDR;
			pl->addb += val_cost(v);
			pl->addn++;
		} else {
			if (d != NULL)
				plan_replace(pl, d);
			pl->addb += val_cost(v);
		}
	}
}

static void
node_value(struct dnode *d, const struct dval *v, char *s)
{
	d->type = v->type;
	switch (v->type) {
	case D_BOOL:
		d->v.b = v->b;
		break;
	case D_INT:
		d->v.i = v->i;
		break;
	case D_FLOAT:
		d->v.f = v->f;
		break;
	case D_STR:
		d->v.s.p = s, d->v.s.len = v->len;
		break;
	default:
		break;
	}
}

/* Walk to (creating or retyping) the node that holds the value. */
static int
walk(struct dnode *root, const struct dpath *p, struct dnode **out)
{
	struct dnode *at = root, *d;
	size_t el;
	int rc;

	for (el = 0; el < p->n; el++) {
		enum dtype want = el + 1 < p->n ? D_MAP : p->append ? D_LIST : D_NIL;

		if ((d = node_find(at, p->el[el])) == NULL) {
			if ((rc = node_add(at, p->el[el], want, &d)) != MU_OK)
				return rc;
		} else if (want != D_NIL && d->type != want) {
			node_clear(d);
			d->type = want;
		}
		at = d;
	}
	if (p->append) {
		if ((rc = node_add(at, NULL, D_NIL, &d)) != MU_OK)
			return rc;
		at = d;
	}
	*out = at;
	return MU_OK;
}

int
data_set(struct data *dt, const char *path, const struct dval *in, struct mu_err *err)
{
	struct dval v = *in;
	struct dpath p;
	struct dplan pl;
	struct dnode *d;
	char *s = NULL;
	int rc;

	if (path == NULL)
		return mu_errf(err, MU_EINVAL, "the data key is NULL");
	if ((rc = path_parse(path, &p, err)) != MU_OK)
		return rc;
	/* JSON has no NaN or infinity; the CLI must be able to show data. */
	if (v.type == D_FLOAT && !isfinite(v.f))
		v.type = D_NIL;
	if (v.type == D_STR && v.s == NULL)
		v.type = D_NIL;
	if (v.type == D_STR) {
		v.len = strnlen(v.s, RUNNER_DATA_MAX_BYTES + 1);
		if (v.len > RUNNER_DATA_MAX_BYTES) {
			dt->truncated = true;
			return MU_OK;
		}
	}
	plan(dt, &p, &v, &pl);
	if (dt->bytes + pl.addb - pl.subb > RUNNER_DATA_MAX_BYTES ||
	    dt->nodes + pl.addn - pl.subn > RUNNER_DATA_MAX_KEYS) {
		dt->truncated = true;
		return MU_OK;
	}
	if (v.type == D_STR) {
		if ((s = malloc(v.len + 1)) == NULL)
			return mu_errf(err, MU_ENOMEM, "out of memory");
		memcpy(s, v.s, v.len);
		s[v.len] = '\0';
		v.len = utf8_clean(s, v.len, v.len);
	}
	if ((rc = walk(dt->root, &p, &d)) != MU_OK) {
		free(s);
		return mu_errf(err, rc, "out of memory");
	}
	node_clear(d);
	node_value(d, &v, s);
	dt->bytes = dt->bytes + pl.addb - pl.subb;
	dt->nodes = dt->nodes + pl.addn - pl.subn;
	return MU_OK;
}

int
data_init(struct data *dt)
{
	memset(dt, 0, sizeof(*dt));
	if ((dt->root = calloc(1, sizeof(*dt->root))) == NULL)
		return MU_ENOMEM;
	dt->root->type = D_MAP;
	dt->bytes = HDR;
	return MU_OK;
}

bool
data_empty(const struct data *dt)
{
	return dt->root == NULL || dt->root->n == 0;
}

static int
pack_str(msgpack_packer *pk, const char *s, size_t len)
{
	if (msgpack_pack_str(pk, len) != 0)
		return MU_ENOMEM;
	return msgpack_pack_str_body(pk, s, len) != 0 ? MU_ENOMEM : MU_OK;
}

/* msgpack_sbuffer_write() fails only for want of memory. */
static int
pack_node(msgpack_packer *pk, const struct dnode *d)
{
	size_t i;
	int rc = 0;

	switch (d->type) {
	case D_NIL:
		rc = msgpack_pack_nil(pk);
		break;
	case D_BOOL:
		rc = d->v.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
		break;
	case D_INT:
		rc = msgpack_pack_int64(pk, d->v.i);
		break;
	case D_FLOAT:
		rc = msgpack_pack_double(pk, d->v.f);
		break;
	case D_STR:
		return pack_str(pk, d->v.s.p, d->v.s.len);
	case D_MAP:
		rc = msgpack_pack_map(pk, d->n);
		for (i = 0; rc == 0 && i < d->n; i++) {
			rc = pack_str(pk, d->kids[i]->key, strlen(d->kids[i]->key));
			if (rc == 0)
				rc = pack_node(pk, d->kids[i]);
		}
		break;
	case D_LIST:
		rc = msgpack_pack_array(pk, d->n);
		for (i = 0; rc == 0 && i < d->n; i++)
			rc = pack_node(pk, d->kids[i]);
		break;
	}
	return rc != 0 ? MU_ENOMEM : MU_OK;
}

int
data_pack(const struct data *dt, msgpack_sbuffer *sb)
{
	msgpack_packer pk;

	if (dt->root == NULL)
		return MU_EINVAL;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	return pack_node(&pk, dt->root);
}

void
data_free(struct data *dt)
{
	if (dt->root != NULL) {
		node_clear(dt->root);
		free(dt->root);
	}
	memset(dt, 0, sizeof(*dt));
}
