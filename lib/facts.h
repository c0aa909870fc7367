/* SPDX-License-Identifier: Apache-2.0 */
/*
 * facts.h - a host's facts and the fact filters of jobs (design.md §3):
 * the facts message {"v":1, "host", "at", "facts":{...}} (a flat map of
 * dotted names to a string, an integer, a bool or a list of strings), the
 * job body's "filter" (an array of [fact, op, value]), and facts_match(),
 * the pure evaluator the agent's parent runs on its own facts.
 *
 * Ownership:
 *  - struct facts owns everything in it (names inline, strings and lists
 *    malloc'd): facts_set_*() copy, facts_free() frees; facts_decode()
 *    fills a fresh one that the caller frees on MU_OK (on failure nothing
 *    is left to free).  A zeroed struct facts is an empty set.
 *  - struct fact_filter borrows: its names and values point into the
 *    msgpack object it was decoded from (a job's wire_doc), so it lives as
 *    long as that job struct; nothing to free.
 */
#ifndef MUSTER_FACTS_H
#define MUSTER_FACTS_H

#include "wire.h"

#define FACTS_MAX		256		/* facts per host */
#define FACT_NAME_MAX		NAME_MAX_LEN	/* bytes of a dotted name */
#define FACT_STR_MAX		1024		/* bytes of a string value or list item */
#define FACT_LIST_MAX		64		/* items of a list value */
#define FACTS_MAX_MSG		(128u * 1024)	/* an encoded facts body */
#define FILTER_MAX		32		/* predicates of a job's filter */
#define FACTS_CUSTOM_PREFIX	"custom."

enum fact_type { FACT_STR, FACT_INT, FACT_BOOL, FACT_LIST };

struct fact {
	char name[FACT_NAME_MAX + 1];
	enum fact_type type;
	int64_t i;		/* FACT_INT */
	bool b;			/* FACT_BOOL */
	char *s;		/* FACT_STR: NUL-terminated, owned */
	char **list;		/* FACT_LIST: nlist owned strings */
	size_t nlist;
};

struct facts {
	struct fact *v;		/* sorted by name, no duplicates */
	size_t n;
};

/* Dotted lowercase names: segments of [a-z0-9_-], the first character of
 * each [a-z0-9_], joined by single dots, 1..FACT_NAME_MAX bytes. */
bool fact_name_valid(const char *s, size_t len);

void facts_free(struct facts *f);
/* Set (add or replace) one fact.  MU_EINVAL for a bad name or a value
 * over the bounds, MU_ENOMEM; over FACTS_MAX facts: MU_EINVAL. */
int facts_set_str(struct facts *f, const char *name, const char *s, struct mu_err *err);
int facts_set_int(struct facts *f, const char *name, int64_t v, struct mu_err *err);
int facts_set_bool(struct facts *f, const char *name, bool v, struct mu_err *err);
int facts_set_list(struct facts *f, const char *name, const char *const *items, size_t n,
    struct mu_err *err);
const struct fact *facts_get(const struct facts *f, const char *name);
/* Move every fact of src into dst (replacing same names); src is emptied. */
int facts_merge(struct facts *dst, struct facts *src, struct mu_err *err);
bool facts_equal(const struct facts *x, const struct facts *y);
/* At least the bytes the set takes in a facts message (the "facts" map),
 * so a gatherer can leave out what would push it over FACTS_MAX_MSG. */
size_t facts_wire_size(const struct facts *f);

/* The facts message (the body a host signs). */
struct facts_msg {
	char host[NAME_MAX_LEN + 1];
	uint64_t at;		/* unix ms */
	struct facts facts;
};

int facts_decode(const void *buf, size_t len, struct facts_msg *out, struct mu_err *err);
int facts_encode(const struct facts_msg *m, msgpack_sbuffer *out, struct mu_err *err);

/* ---- filters ------------------------------------------------------------ */

enum filter_op { FOP_EQ, FOP_NE, FOP_LT, FOP_LE, FOP_GT, FOP_GE, FOP_GLOB, FOP_HAS };

struct filter_pred {
	struct wire_str fact;			/* a valid fact name */
	enum filter_op op;
	const msgpack_object *value;		/* str, int or bool (below) */
};

struct fact_filter {
	size_t n;
	struct filter_pred p[FILTER_MAX];
};

const char *filter_op_name(enum filter_op op);
/*
 * Decode a job's "filter" (a msgpack array; NULL: no filter, n = 0).  At
 * most FILTER_MAX predicates, each [fact, op, value]: fact a valid name,
 * op one of == != < <= > >= ~ has, value a string of at most FACT_STR_MAX
 * bytes, an integer or a bool; ~ and has want a string, < <= > >= an
 * integer or a string.  Anything else is MU_EINVAL with a reason naming
 * the predicate.
 */
int filter_decode(const msgpack_object *arr, struct fact_filter *out, struct mu_err *err);

/*
 * Whether every predicate holds on facts.  A missing fact, or a value of
 * another type, makes a predicate false (!= included).  Numbers compare as
 * numbers: an integer against an integer, or against a string that is a
 * whole decimal integer ("12" from os-release); strings otherwise compare
 * byte for byte (== and != only); ~ is fnmatch(3) of a string fact; has
 * is whether a list fact holds the string exactly.
 */
bool facts_match(const struct facts *facts, const struct fact_filter *filter);

/*
 * One predicate in its text form (muster -F, muster(1) "FACT FILTERS"):
 * NAME OP VALUE.  OP is one of == != < <= > >= ~ (= is ==), or the word
 * has between blanks; blanks around NAME, OP and VALUE are ignored.
 * VALUE in double quotes is a string as written (no escapes); otherwise
 * true and false are bools, an integer without leading zeros that fits
 * int64 is an integer, anything else a string; ~ and has take it as a
 * string, < <= > >= want an integer.  Packs [fact, op, value] on pk, which
 * filter_decode() accepts; MU_EINVAL with a reason (not naming the text)
 * and nothing packed.
 */
int filter_text_pack(const char *text, msgpack_packer *pk, struct mu_err *err);

#endif
