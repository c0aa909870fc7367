/* SPDX-License-Identifier: Apache-2.0 */
/*
 * facts.c - a host's facts, their message, and job fact filters
 * (design.md §3).  Ownership as in facts.h.
 */
#include "facts.h"
#include "wire_internal.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

/* ---- names and the set ---------------------------------------------------- */

bool
fact_name_valid(const char *s, size_t len)
{
	bool seg_start = true;
	size_t i;

	if (len == 0 || len > FACT_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (seg_start)
				return false;	/* empty segment */
			seg_start = true;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		    (c == '-' && !seg_start)))
			return false;
		seg_start = false;
	}
	return !seg_start;
}

static void
fact_clear(struct fact *x)
{
	size_t i;

	free(x->s);
	for (i = 0; i < x->nlist; i++)
		free(x->list[i]);
	free(x->list);
	x->s = NULL, x->list = NULL, x->nlist = 0;
}

void
facts_free(struct facts *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		fact_clear(&f->v[i]);
	free(f->v);
	f->v = NULL, f->n = 0;
}

/* The slot of name, found or made (sorted insertion: a set encodes the
 * same bytes whatever order it was built in, so "changed" is a memcmp). */
static int
fact_slot(struct facts *f, const char *name, struct fact **out, struct mu_err *err)
{
	size_t lo = 0, hi = f->n, len = strlen(name);
	struct fact *v;

	if (!fact_name_valid(name, len))
		return mu_errf(err, MU_EINVAL, "'%.*s' is not a fact name (dotted "
		    "[a-z0-9_-] segments, at most %d bytes)", (int)(len > 80 ? 80 : len), name,
		    FACT_NAME_MAX);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(f->v[mid].name, name);

		if (c == 0) {
			fact_clear(&f->v[mid]);
			*out = &f->v[mid];
			return MU_OK;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (f->n >= FACTS_MAX)
		return mu_errf(err, MU_EINVAL, "more than %d facts", FACTS_MAX);
	v = realloc(f->v, (f->n + 1) * sizeof(*v));
	if (v == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	f->v = v;
	memmove(&v[lo + 1], &v[lo], (f->n - lo) * sizeof(*v));
	memset(&v[lo], 0, sizeof(*v));
	memcpy(v[lo].name, name, len + 1);
	f->n++;
	*out = &v[lo];
	return MU_OK;
}

static int
str_bounded(const char *s, const char *name, struct mu_err *err)
{
	if (strlen(s) > FACT_STR_MAX)
		return mu_errf(err, MU_EINVAL, "fact %s: a string over %d bytes", name,
		    FACT_STR_MAX);
	return MU_OK;
}

int
facts_set_str(struct facts *f, const char *name, const char *s, struct mu_err *err)
{
	struct fact *x;
	char *copy;
	int rc;

	if ((rc = str_bounded(s, name, err)) != MU_OK)
		return rc;
	if ((copy = strdup(s)) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	if ((rc = fact_slot(f, name, &x, err)) != MU_OK) {
		free(copy);
		return rc;
	}
	x->type = FACT_STR, x->s = copy;
	return MU_OK;
}

int
facts_set_int(struct facts *f, const char *name, int64_t v, struct mu_err *err)
{
	struct fact *x;
	int rc;

	if ((rc = fact_slot(f, name, &x, err)) != MU_OK)
		return rc;
	x->type = FACT_INT, x->i = v;
	return MU_OK;
}

int
facts_set_bool(struct facts *f, const char *name, bool v, struct mu_err *err)
{
	struct fact *x;
	int rc;

	if ((rc = fact_slot(f, name, &x, err)) != MU_OK)
		return rc;
	x->type = FACT_BOOL, x->b = v;
	return MU_OK;
}

int
facts_set_list(struct facts *f, const char *name, const char *const *items, size_t n,
    struct mu_err *err)
{
	struct fact *x;
	char **list;
	size_t i;
	int rc;

	if (n > FACT_LIST_MAX)
		return mu_errf(err, MU_EINVAL, "fact %s: a list of more than %d items", name,
		    FACT_LIST_MAX);
	for (i = 0; i < n; i++)
		if ((rc = str_bounded(items[i], name, err)) != MU_OK)
			return rc;
	if ((list = calloc(n ? n : 1, sizeof(*list))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	for (i = 0; i < n; i++)
		if ((list[i] = strdup(items[i])) == NULL) {
			while (i-- > 0)
				free(list[i]);
			free(list);
			return mu_errf(err, MU_ENOMEM, "out of memory");
		}
	if ((rc = fact_slot(f, name, &x, err)) != MU_OK) {
		for (i = 0; i < n; i++)
			free(list[i]);
		free(list);
		return rc;
	}
	x->type = FACT_LIST, x->list = list, x->nlist = n;
	return MU_OK;
}

const struct fact *
facts_get(const struct facts *f, const char *name)
{
	size_t lo = 0, hi = f->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(f->v[mid].name, name);

		if (c == 0)
			return &f->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int
facts_merge(struct facts *dst, struct facts *src, struct mu_err *err)
{
	struct fact *x;
	size_t i;
	int rc = MU_OK;

	for (i = 0; i < src->n; i++) {
		if ((rc = fact_slot(dst, src->v[i].name, &x, err)) != MU_OK)
			break;
		*x = src->v[i];			/* takes the value's memory */
		memset(&src->v[i], 0, sizeof(src->v[i]));
	}
	facts_free(src);
	return rc;
}

static bool
fact_equal(const struct fact *x, const struct fact *y)
{
	size_t i;

	if (strcmp(x->name, y->name) != 0 || x->type != y->type)
		return false;
	switch (x->type) {
	case FACT_STR:
		return strcmp(x->s, y->s) == 0;
	case FACT_INT:
		return x->i == y->i;
	case FACT_BOOL:
		return x->b == y->b;
	case FACT_LIST:
		if (x->nlist != y->nlist)
			return false;
		for (i = 0; i < x->nlist; i++)
			if (strcmp(x->list[i], y->list[i]) != 0)
				return false;
		return true;
	}
	return false;
}

bool
facts_equal(const struct facts *x, const struct facts *y)
{
	size_t i;

	if (x->n != y->n)
		return false;
	for (i = 0; i < x->n; i++)
		if (!fact_equal(&x->v[i], &y->v[i]))
			return false;
	return true;
}

/* msgpack's worst case: a 5-byte header per string, array and map, 9
 * bytes per integer. */
size_t
facts_wire_size(const struct facts *f)
{
	size_t n = 5, i, j;

	for (i = 0; i < f->n; i++) {
		const struct fact *x = &f->v[i];

		n += 5 + strlen(x->name);
		switch (x->type) {
		case FACT_STR:
			n += 5 + strlen(x->s);
			break;
		case FACT_INT:
			n += 9;
			break;
		case FACT_BOOL:
			n += 1;
			break;
		case FACT_LIST:
			n += 5;
			for (j = 0; j < x->nlist; j++)
				n += 5 + strlen(x->list[j]);
			break;
		}
	}
	return n;
}

/* ---- the facts message ---------------------------------------------------- */

/* A msgpack string as a NUL-terminated copy in dst (dstsz > max); false if
 * it is not a string, is longer than max or holds a NUL. */
static bool
obj_str(const msgpack_object *o, size_t max, char *dst)
{
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		return false;
	memcpy(dst, o->via.str.ptr, o->via.str.size);
	dst[o->via.str.size] = '\0';
	return true;
}

static int
facts_decode_value(struct facts *f, const char *name, const msgpack_object *o,
    struct mu_err *err)
{
	char s[FACT_STR_MAX + 1];

	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		if (!obj_str(o, FACT_STR_MAX, s))
			return mu_errf(err, MU_EINVAL, "fact %s: a string over %d bytes or "
			    "with a NUL", name, FACT_STR_MAX);
		return facts_set_str(f, name, s, err);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			return mu_errf(err, MU_EINVAL, "fact %s: an integer over 2^63-1", name);
		return facts_set_int(f, name, (int64_t)o->via.u64, err);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return facts_set_int(f, name, o->via.i64, err);
	case MSGPACK_OBJECT_BOOLEAN:
		return facts_set_bool(f, name, o->via.boolean, err);
	case MSGPACK_OBJECT_ARRAY: {
		const char *items[FACT_LIST_MAX];
		char (*buf)[FACT_STR_MAX + 1];
		uint32_t i, n = o->via.array.size;
		int rc;

		if (n > FACT_LIST_MAX)
			return mu_errf(err, MU_EINVAL, "fact %s: a list of more than %d items",
			    name, FACT_LIST_MAX);
		if ((buf = malloc((n ? n : 1) * sizeof(*buf))) == NULL)
			return mu_errf(err, MU_ENOMEM, "out of memory");
		for (i = 0; i < n; i++) {
			if (!obj_str(&o->via.array.ptr[i], FACT_STR_MAX, buf[i])) {
				free(buf);
				return mu_errf(err, MU_EINVAL, "fact %s: a list item that is not "
				    "a string of at most %d bytes", name, FACT_STR_MAX);
			}
			items[i] = buf[i];
		}
		rc = facts_set_list(f, name, items, n, err);
		free(buf);
		return rc;
	}
	default:
		return mu_errf(err, MU_EINVAL, "fact %s: not a string, integer, bool or "
		    "list of strings", name);
	}
}

static int
facts_decode_map(struct rd *r, struct facts *f)
{
	char name[FACT_NAME_MAX + 1];
	const msgpack_object *m;
	uint32_t i;
	int rc;

	rc = rd_get(r, "facts", true, MSGPACK_OBJECT_MAP, "a map", &m);
	if (rc)
		return rc;
	if (m->via.map.size > FACTS_MAX)
		return mu_errf(r->err, MU_EINVAL, "key 'facts' has more than %d facts",
		    FACTS_MAX);
	for (i = 0; rc == MU_OK && i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];

		if (!obj_str(&kv->key, FACT_NAME_MAX, name) ||
		    !fact_name_valid(name, strlen(name)))
			return mu_errf(r->err, MU_EINVAL, "key 'facts' has a name that is not "
			    "a fact name");
		if (facts_get(f, name) != NULL)
			return mu_errf(r->err, MU_EINVAL, "key 'facts' has %s twice", name);
		rc = facts_decode_value(f, name, &kv->val, r->err);
	}
	return rc;
}

int
facts_decode(const void *buf, size_t len, struct facts_msg *out, struct mu_err *err)
{
	struct wire_doc doc;
	struct rd r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > FACTS_MAX_MSG)
		return mu_errf(err, MU_EINVAL, "facts message is over %u bytes", FACTS_MAX_MSG);
	rc = doc_open(buf, len, &doc, &r, err);
	if (rc)
		return rc;
	rc = rd_ident(&r, "host", true, out->host, sizeof(out->host), name_valid,
	    "a host name");
	if (!rc)
		rc = rd_uint(&r, "at", true, UINT64_MAX, &out->at);
	if (!rc)
		rc = facts_decode_map(&r, &out->facts);
	/* Everything was copied: the tree is not kept. */
	wire_doc_free(&doc);
	if (rc)
		facts_free(&out->facts);
	return rc;
}

int
facts_encode(const struct facts_msg *m, msgpack_sbuffer *out, struct mu_err *err)
{
	const struct facts *f = &m->facts;
	msgpack_packer pk;
	size_t i, j, start;
	int rc;

	rc = need(name_valid(m->host), err, "bad host name");
	if (!rc)
		rc = need(f->n <= FACTS_MAX, err, "too many facts");
	for (i = 0; !rc && i < f->n; i++)
		rc = need(fact_name_valid(f->v[i].name, strlen(f->v[i].name)), err,
		    "bad fact name");
	if (rc)
		return rc;
	start = pk_begin(&pk, out, 3);
	pk_kv_str(&pk, "host", m->host);
	pk_kv_uint(&pk, "at", m->at);
	pk_key(&pk, "facts");
	msgpack_pack_map(&pk, f->n);
	for (i = 0; i < f->n; i++) {
		const struct fact *x = &f->v[i];

		pk_str(&pk, x->name, strlen(x->name));
		switch (x->type) {
		case FACT_STR:
			pk_str(&pk, x->s, strlen(x->s));
			break;
		case FACT_INT:
			msgpack_pack_int64(&pk, x->i);
			break;
		case FACT_BOOL:
			if (x->b)
				msgpack_pack_true(&pk);
			else
				msgpack_pack_false(&pk);
			break;
		case FACT_LIST:
			msgpack_pack_array(&pk, x->nlist);
			for (j = 0; j < x->nlist; j++)
				pk_str(&pk, x->list[j], strlen(x->list[j]));
			break;
		}
	}
	return pk_finish(out, start, FACTS_MAX_MSG, err);
}

/* ---- filters -------------------------------------------------------------- */

static const char *const filter_ops[] = {
	[FOP_EQ] = "==", [FOP_NE] = "!=", [FOP_LT] = "<", [FOP_LE] = "<=",
	[FOP_GT] = ">", [FOP_GE] = ">=", [FOP_GLOB] = "~", [FOP_HAS] = "has",
};
#define NFILTER_OPS ((int)(sizeof(filter_ops) / sizeof(filter_ops[0])))

const char *
filter_op_name(enum filter_op op)
{
	return (int)op >= 0 && (int)op < NFILTER_OPS ? filter_ops[op] : "?";
}

static int
filter_decode_pred(const msgpack_object *o, uint32_t idx, struct filter_pred *p,
    struct mu_err *err)
{
	const msgpack_object *name, *op, *val;
	int i;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
		return mu_errf(err, MU_EINVAL, "filter predicate %u is not [fact, op, value]",
		    idx + 1);
	name = &o->via.array.ptr[0], op = &o->via.array.ptr[1], val = &o->via.array.ptr[2];
	if (name->type != MSGPACK_OBJECT_STR ||
	    !fact_name_valid(name->via.str.ptr, name->via.str.size))
		return mu_errf(err, MU_EINVAL, "filter predicate %u: the fact is not a fact "
		    "name", idx + 1);
	p->fact = (struct wire_str){ name->via.str.ptr, name->via.str.size };
	if (op->type != MSGPACK_OBJECT_STR)
		return mu_errf(err, MU_EINVAL, "filter predicate %u: the operator is not a "
		    "string", idx + 1);
	for (i = 0; i < NFILTER_OPS; i++)
		if (strlen(filter_ops[i]) == op->via.str.size &&
		    memcmp(filter_ops[i], op->via.str.ptr, op->via.str.size) == 0)
			break;
	if (i == NFILTER_OPS)
		return mu_errf(err, MU_EINVAL, "filter predicate %u: unknown operator '%.*s' "
		    "(want == != < <= > >= ~ has)", idx + 1,
		    (int)(op->via.str.size > 8 ? 8 : op->via.str.size), op->via.str.ptr);
	p->op = (enum filter_op)i;
	switch (val->type) {
	case MSGPACK_OBJECT_STR:
		if (val->via.str.size > FACT_STR_MAX ||
		    memchr(val->via.str.ptr, '\0', val->via.str.size) != NULL)
			return mu_errf(err, MU_EINVAL, "filter predicate %u: the value is over "
			    "%d bytes or holds a NUL", idx + 1, FACT_STR_MAX);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (val->via.u64 > INT64_MAX)
			return mu_errf(err, MU_EINVAL, "filter predicate %u: the value is over "
			    "2^63-1", idx + 1);
		/* fall through */
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		if (p->op == FOP_GLOB || p->op == FOP_HAS)
			return mu_errf(err, MU_EINVAL, "filter predicate %u: '%s' wants a string",
			    idx + 1, filter_ops[p->op]);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		if (p->op != FOP_EQ && p->op != FOP_NE)
			return mu_errf(err, MU_EINVAL, "filter predicate %u: '%s' does not take "
			    "a bool", idx + 1, filter_ops[p->op]);
		break;
	default:
		return mu_errf(err, MU_EINVAL, "filter predicate %u: the value is not a "
		    "string, integer or bool", idx + 1);
	}
	p->value = val;
	return MU_OK;
}

int
filter_decode(const msgpack_object *arr, struct fact_filter *out, struct mu_err *err)
{
	uint32_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	if (arr == NULL)
		return MU_OK;
	if (arr->type != MSGPACK_OBJECT_ARRAY)
		return mu_errf(err, MU_EINVAL, "filter is not an array");
	if (arr->via.array.size > FILTER_MAX)
		return mu_errf(err, MU_EINVAL, "filter has more than %d predicates", FILTER_MAX);
	for (i = 0; i < arr->via.array.size; i++)
		if ((rc = filter_decode_pred(&arr->via.array.ptr[i], i, &out->p[i], err)) != MU_OK) {
			memset(out, 0, sizeof(*out));
			return rc;
		}
	out->n = arr->via.array.size;
	return MU_OK;
}

/* A whole decimal integer (optional '-'), as from os-release's "12". */
static bool
str_number(const char *s, size_t len, int64_t *out)
{
	char buf[24];
	char *end;
	size_t i;

	if (len == 0 || len >= sizeof(buf))
		return false;
	for (i = s[0] == '-'; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	if (len == (size_t)(s[0] == '-'))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*out = strtoll(buf, &end, 10);
	return errno == 0 && *end == '\0';
}

/* The fact as a number, if it is one. */
static bool
fact_number(const struct fact *x, int64_t *out)
{
	if (x->type == FACT_INT) {
		*out = x->i;
		return true;
	}
	return x->type == FACT_STR && str_number(x->s, strlen(x->s), out);
}

static bool
value_number(const msgpack_object *v, int64_t *out)
{
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		*out = (int64_t)v->via.u64;	/* <= INT64_MAX (filter_decode) */
		return true;
	}
	if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = v->via.i64;
		return true;
	}
	return v->type == MSGPACK_OBJECT_STR && str_number(v->via.str.ptr, v->via.str.size, out);
}

/* -1, 0, 1; or 2 when the two cannot be compared (a type mismatch). */
static int
compare(const struct fact *x, const msgpack_object *v)
{
	int64_t a, b;

	/* Two strings are compared as strings even when both are digits:
	 * "012" is not "12" for ==, only for the ordering operators. */
	if (x->type == FACT_STR && v->type == MSGPACK_OBJECT_STR) {
		size_t n = strlen(x->s);

		if (n == v->via.str.size && memcmp(x->s, v->via.str.ptr, n) == 0)
			return 0;
		return 1;
	}
	if (x->type == FACT_BOOL && v->type == MSGPACK_OBJECT_BOOLEAN)
		return x->b == v->via.boolean ? 0 : 1;
	if (fact_number(x, &a) && value_number(v, &b))
		return a < b ? -1 : a > b;
	return 2;
}

static bool
ordered(const struct fact *x, const msgpack_object *v, int64_t *a, int64_t *b)
{
	return fact_number(x, a) && value_number(v, b);
}

static bool
pred_holds(const struct facts *facts, const struct filter_pred *p)
{
	char name[FACT_NAME_MAX + 1], pat[FACT_STR_MAX + 1];
	const struct fact *x;
	int64_t a, b;
	size_t i;
	int c;

	if (p->fact.len > FACT_NAME_MAX)
		return false;
	memcpy(name, p->fact.ptr, p->fact.len);
	name[p->fact.len] = '\0';
	if ((x = facts_get(facts, name)) == NULL)
		return false;
	switch (p->op) {
	case FOP_EQ:
		return compare(x, p->value) == 0;
	case FOP_NE:
		c = compare(x, p->value);
		return c != 0 && c != 2;
	case FOP_LT:
		return ordered(x, p->value, &a, &b) && a < b;
	case FOP_LE:
		return ordered(x, p->value, &a, &b) && a <= b;
	case FOP_GT:
		return ordered(x, p->value, &a, &b) && a > b;
	case FOP_GE:
		return ordered(x, p->value, &a, &b) && a >= b;
	case FOP_GLOB:
		if (x->type != FACT_STR || p->value->type != MSGPACK_OBJECT_STR ||
		    p->value->via.str.size > FACT_STR_MAX)
			return false;
		memcpy(pat, p->value->via.str.ptr, p->value->via.str.size);
		pat[p->value->via.str.size] = '\0';
		return fnmatch(pat, x->s, 0) == 0;
	case FOP_HAS:
		if (x->type != FACT_LIST || p->value->type != MSGPACK_OBJECT_STR)
			return false;
		for (i = 0; i < x->nlist; i++)
			if (strlen(x->list[i]) == p->value->via.str.size &&
			    memcmp(x->list[i], p->value->via.str.ptr, p->value->via.str.size) == 0)
				return true;
		return false;
	}
	return false;
}

bool
facts_match(const struct facts *facts, const struct fact_filter *filter)
{
	size_t i;

	for (i = 0; i < filter->n; i++)
		if (!pred_holds(facts, &filter->p[i]))
			return false;
	return true;
}

/* ---- the text form (muster -F) -------------------------------------------- */

#define BLANK(c)	((c) == ' ' || (c) == '\t')
#define OP_CHARS	"=!<>~"

static const char *
skip_blanks(const char *p)
{
	while (BLANK(*p))
		p++;
	return p;
}

/* The operator at p, its length in *len; -1 if there is none.  "has" is a
 * word: only after a blank, and followed by one or the end. */
static int
text_op(const char *p, bool blank_before, size_t *len)
{
	static const struct {
		const char *s;
		enum filter_op op;
	} ops[] = {
		{ "==", FOP_EQ }, { "!=", FOP_NE }, { "<=", FOP_LE }, { ">=", FOP_GE },
		{ "=", FOP_EQ }, { "<", FOP_LT }, { ">", FOP_GT }, { "~", FOP_GLOB },
	};
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strncmp(p, ops[i].s, strlen(ops[i].s)) == 0) {
			*len = strlen(ops[i].s);
			return (int)ops[i].op;
		}
	if (blank_before && strncmp(p, "has", 3) == 0 && (BLANK(p[3]) || p[3] == '\0')) {
		*len = 3;
		return FOP_HAS;
	}
	return -1;
}

/* An integer as JSON writes one (no leading zeros) that fits int64_t, as
 * muster run's key=value arguments are typed (lib/mpjson.c). */
static bool
text_int(const char *s, size_t len, int64_t *out)
{
	const char *d = len && s[0] == '-' ? s + 1 : s;
	size_t dl = len - (size_t)(d - s);

	if (dl == 0 || (d[0] == '0' && dl > 1))
		return false;
	return str_number(s, len, out);
}

/* The value after the operator: its bytes (quotes taken off) in *v, *vlen;
 * *quoted when it was in double quotes. */
static int
text_value(const char *p, const char **v, size_t *vlen, bool *quoted, struct mu_err *err)
{
	size_t n;

	p = skip_blanks(p);
	n = strlen(p);
	while (n > 0 && BLANK(p[n - 1]))
		n--;
	*quoted = n > 0 && p[0] == '"';
	if (n == 0)
		return mu_errf(err, MU_EINVAL, "no value (\"\" is the empty string)");
	if (*quoted && (n < 2 || p[n - 1] != '"'))
		return mu_errf(err, MU_EINVAL, "the value's quote is not closed");
	/* "os.id=~deb", "mem_mb=<4096": an operator typo, not a value. */
	if (!*quoted && strchr(OP_CHARS, p[0]) != NULL)
		return mu_errf(err, MU_EINVAL, "the value starts with '%c' (not an operator: "
		    "want == != < <= > >= ~ has; quote a value that starts so)", p[0]);
	if (*quoted)
		p++, n -= 2;
	if (n > FACT_STR_MAX)
		return mu_errf(err, MU_EINVAL, "the value is over %d bytes", FACT_STR_MAX);
	*v = p;
	*vlen = n;
	return MU_OK;
}

int
filter_text_pack(const char *text, msgpack_packer *pk, struct mu_err *err)
{
	const char *name, *p, *v = NULL;
	size_t nlen, oplen, vlen = 0;
	bool quoted;
	int64_t num = 0;
	int op, rc;

	name = skip_blanks(text);
	for (p = name; *p != '\0' && !BLANK(*p) && strchr(OP_CHARS, *p) == NULL; p++)
		;
	nlen = (size_t)(p - name);
	if (nlen == 0)
		return mu_errf(err, MU_EINVAL, "no fact name before the operator");
	if (!fact_name_valid(name, nlen))
		return mu_errf(err, MU_EINVAL, "'%.*s' is not a fact name (dotted, lower case: "
		    "a-z, 0-9, '_', '-')", (int)(nlen > 64 ? 64 : nlen), name);
	p = skip_blanks(p);
	if ((op = text_op(p, p > name + nlen, &oplen)) < 0)
		return mu_errf(err, MU_EINVAL, "no operator after '%.*s' (want = == != < <= > "
		    ">= ~ or has)", (int)nlen, name);
	if ((rc = text_value(p + oplen, &v, &vlen, &quoted, err)) != MU_OK)
		return rc;
	if ((op == FOP_LT || op == FOP_LE || op == FOP_GT || op == FOP_GE) &&
	    !text_int(v, vlen, &num))
		return mu_errf(err, MU_EINVAL, "'%s' compares integers, and '%.*s' is not one",
		    filter_ops[op], (int)(vlen > 64 ? 64 : vlen), v);
	msgpack_pack_array(pk, 3);
	msgpack_pack_str_with_body(pk, name, nlen);
	msgpack_pack_str_with_body(pk, filter_ops[op], strlen(filter_ops[op]));
	if (op == FOP_LT || op == FOP_LE || op == FOP_GT || op == FOP_GE)
		msgpack_pack_int64(pk, num);
	else if (quoted || op == FOP_GLOB || op == FOP_HAS)
		msgpack_pack_str_with_body(pk, v, vlen);
	else if (vlen == 4 && memcmp(v, "true", 4) == 0)
		msgpack_pack_true(pk);
	else if (vlen == 5 && memcmp(v, "false", 5) == 0)
		msgpack_pack_false(pk);
	else if (text_int(v, vlen, &num))
		msgpack_pack_int64(pk, num);
	else
		msgpack_pack_str_with_body(pk, v, vlen);
	return MU_OK;
}
