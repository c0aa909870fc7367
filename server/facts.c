/* SPDX-License-Identifier: Apache-2.0 */
/*
 * facts.c - what muster-server keeps of each host beyond its presence
 * (issue 24): the latest verified facts (design.md §3), the groups and
 * the self-update map of its latest status, and the /api/hosts filters.
 *
 * Filters are evaluated as the agents evaluate them: the -F text forms
 * are packed with filter_text_pack(), decoded with filter_decode() and
 * run with facts_match(), the one evaluator in lib/facts.c.  So the
 * hosts the server names for a filter are the hosts whose agents would
 * run the job, as far as their latest facts go.
 *
 * Facts are archived (table facts, the newest "at" per host, archive.c)
 * and loaded back at start, so filters answer before the retained facts
 * arrive again.  The database is trusted no more than the broker for
 * certificates, but facts come back as data only: a host's facts decide
 * which hosts a CLI waits for, never what runs.
 *
 * Threads: the loop writes s->info, the HTTP threads read it, both under
 * s->lock.
 *
 * Ownership: s->info and everything in it (facts, update texts) is the
 * server's, freed by hostinfo_free(); a struct host_query owns its
 * buffers until host_query_free().
 */
#include "server.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mpjson.h"

/* ---- the table ------------------------------------------------------------- */

static int
info_cmp(const void *key, const void *elt)
{
	return strcmp(key, ((const struct host_info *)elt)->name);
}

struct host_info *
hostinfo_find(struct server *s, const char *name)
{
	if (s->ninfo == 0)
		return NULL;
	return bsearch(name, s->info, s->ninfo, sizeof(*s->info), info_cmp);
}

/* The entry for name, added (zeroed) when new.  Caller holds s->lock. */
static struct host_info *
info_get(struct server *s, const char *name)
{
	struct host_info *e, *nv;
	size_t lo = 0, hi = s->ninfo, mid, cap;

	if ((e = hostinfo_find(s, name)) != NULL)
		return e;
	if (s->ninfo == s->info_cap) {
		cap = s->info_cap ? s->info_cap * 2 : 64;
		if ((nv = realloc(s->info, cap * sizeof(*nv))) == NULL)
			return NULL;
		s->info = nv;
		s->info_cap = cap;
	}
	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (strcmp(s->info[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(s->info + lo + 1, s->info + lo, (s->ninfo - lo) * sizeof(*s->info));
	e = &s->info[lo];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	s->ninfo++;
	return e;
}

void
hostinfo_free(struct server *s)
{
	size_t i;

	for (i = 0; i < s->ninfo; i++) {
		facts_free(&s->info[i].facts);
		free(s->info[i].update);
		free(s->info[i].cert);
		free(s->info[i].groups);
	}
	free(s->info);
	s->info = NULL;
	s->ninfo = s->info_cap = 0;
}

/* An older status (by "at") never overwrites a newer one, as in
 * hosts_upsert(). */
int
hostinfo_status(struct server *s, const struct status *st)
{
	struct host_info *e;
	json_t *j = NULL;
	char *upd = NULL, *cert, (*groups)[NAME_MAX_LEN + 1] = NULL;
	size_t i;

	if ((cert = hex_alloc(st->cert_der.ptr, st->cert_der.len)) == NULL)
		return MU_ENOMEM;
	if (st->ngroups > 0 && (groups = calloc(st->ngroups, sizeof(*groups))) == NULL) {
		free(cert);
		return MU_ENOMEM;
	}
	for (i = 0; i < st->ngroups; i++)
		memcpy(groups[i], st->groups[i], sizeof(groups[i]));
	if (st->update != NULL && (j = mpjson_from_msgpack(st->update)) != NULL) {
		upd = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	pthread_mutex_lock(&s->lock);
	if ((e = info_get(s, st->host)) == NULL || e->status_at > st->at) {
		pthread_mutex_unlock(&s->lock);
		free(upd);
		free(cert);
		free(groups);
		return e == NULL ? MU_ENOMEM : MU_OK;
	}
	free(e->cert);
	e->cert = cert;
	free(e->groups);
	e->groups = groups;
	e->status_at = st->at;
	e->ngroups = st->ngroups;
	free(e->update);
	e->update = upd;
	pthread_mutex_unlock(&s->lock);
	return MU_OK;
}

/* Keeps m's facts (moved out of m) when newer than the stored ones. */
int
hostinfo_facts(struct server *s, struct facts_msg *m)
{
	struct host_info *e;

	pthread_mutex_lock(&s->lock);
	if ((e = info_get(s, m->host)) == NULL) {
		pthread_mutex_unlock(&s->lock);
		return MU_ENOMEM;
	}
	if (!e->has_facts || m->at > e->facts_at) {
		facts_free(&e->facts);
		e->facts = m->facts;
		memset(&m->facts, 0, sizeof(m->facts));
		e->facts_at = m->at;
		e->has_facts = true;
	}
	pthread_mutex_unlock(&s->lock);
	return MU_OK;
}

/* ---- JSON ------------------------------------------------------------------- */

static json_t *
fact_json(const struct fact *x)
{
	json_t *a;
	size_t i;

	switch (x->type) {
	case FACT_STR:
		return json_string(x->s);	/* NULL if not UTF-8: left out */
	case FACT_INT:
		return json_integer((json_int_t)x->i);
	case FACT_BOOL:
		return json_boolean(x->b);
	case FACT_LIST:
		if ((a = json_array()) == NULL)
			return NULL;
		for (i = 0; i < x->nlist; i++)
			json_array_append_new(a, json_string(x->list[i]));
		return a;
	}
	return NULL;
}

json_t *
facts_to_json(const struct facts *f)
{
	json_t *o = json_object(), *v;
	size_t i;

	if (o == NULL)
		return NULL;
	for (i = 0; i < f->n; i++)
		if ((v = fact_json(&f->v[i])) != NULL)
			json_object_set_new(o, f->v[i].name, v);
	return o;
}

static int
fact_from_json(struct facts *f, const char *name, json_t *v, struct mu_err *err)
{
	const char *items[FACT_LIST_MAX];
	size_t i;

	if (json_is_string(v))
		return facts_set_str(f, name, json_string_value(v), err);
	if (json_is_integer(v))
		return facts_set_int(f, name, (int64_t)json_integer_value(v), err);
	if (json_is_boolean(v))
		return facts_set_bool(f, name, json_is_true(v), err);
	if (!json_is_array(v) || json_array_size(v) > FACT_LIST_MAX)
		return mu_errf(err, MU_EINVAL, "fact %s: not a fact value", name);
	for (i = 0; i < json_array_size(v); i++)
		if ((items[i] = json_string_value(json_array_get(v, i))) == NULL)
			return mu_errf(err, MU_EINVAL, "fact %s: a list item is not a string", name);
	return facts_set_list(f, name, items, json_array_size(v), err);
}

/* Every bound facts_set_*() checks applies again: the row is data. */
int
facts_from_json(json_t *o, struct facts *out, struct mu_err *err)
{
	const char *name;
	json_t *v;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return mu_errf(err, MU_EINVAL, "facts are not an object");
	json_object_foreach(o, name, v) {
		if ((rc = fact_from_json(out, name, v, err)) != MU_OK) {
			facts_free(out);
			return rc;
		}
	}
	return MU_OK;
}

/* ---- loading ------------------------------------------------------------------ */

static int
facts_row(void *arg, const struct arc_val *cols, int ncols)
{
	struct server *s = arg;
	struct facts_msg m;
	struct mu_err err;
	json_t *j;
	int rc;

	if (ncols < 3 || cols[0].null || cols[1].null || cols[2].null ||
	    !name_valid(cols[0].s))
		return MU_OK;
	memset(&m, 0, sizeof(m));
	snprintf(m.host, sizeof(m.host), "%s", cols[0].s);
	m.at = (uint64_t)cols[1].i;
	if ((j = json_loads(cols[2].s, 0, NULL)) == NULL) {
		log_info("archived facts of %s not taken: not JSON", m.host);
		return MU_OK;
	}
	rc = facts_from_json(j, &m.facts, &err);
	json_decref(j);
	if (rc != MU_OK) {
		log_info("archived facts of %s not taken: %s", m.host, err.msg);
		return MU_OK;
	}
	rc = hostinfo_facts(s, &m);
	facts_free(&m.facts);
	return rc;
}

int
facts_load(struct server *s, struct mu_err *err)
{
	int rc;

	if ((rc = archive_facts(&s->arc, facts_row, s, err)) != MU_OK)
		return rc;
	log_info("facts of %zu hosts from the archive", s->ninfo);
	return MU_OK;
}

/* ---- queries -------------------------------------------------------------------- */

int
host_query_parse(struct host_query *q, const char *const *filters, size_t nfilters,
    const char *target, struct mu_err *err)
{
	msgpack_packer pk;
	size_t i;
	int rc;

	memset(q, 0, sizeof(*q));
	q->target.kind = TARGET_ALL;
	if (target != NULL && (rc = target_parse(target, &q->target, err)) != MU_OK)
		return rc;
	if (nfilters == 0)
		return MU_OK;
	if (nfilters > FILTER_MAX)
		return mu_errf(err, MU_EINVAL, "more than %d filters", FILTER_MAX);
	q->has_filter = true;
	msgpack_sbuffer_init(&q->preds);
	msgpack_sbuffer_init(&q->packed);
	msgpack_unpacked_init(&q->up);
	msgpack_packer_init(&pk, &q->preds, msgpack_sbuffer_write);
	for (i = 0; i < nfilters; i++)
		if ((rc = filter_text_pack(filters[i], &pk, err)) != MU_OK)
			return rc;
	msgpack_packer_init(&pk, &q->packed, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (uint32_t)nfilters);
	msgpack_sbuffer_write(&q->packed, q->preds.data, q->preds.size);
	if (msgpack_unpack_next(&q->up, q->packed.data, q->packed.size, NULL) !=
	    MSGPACK_UNPACK_SUCCESS)
		return mu_errf(err, MU_EINVAL, "cannot pack the filter");
	/* What an agent would refuse is refused here too. */
	return filter_decode(&q->up.data, &q->f, err);
}

void
host_query_free(struct host_query *q)
{
	if (q->has_filter) {
		msgpack_unpacked_destroy(&q->up);
		msgpack_sbuffer_destroy(&q->packed);
		msgpack_sbuffer_destroy(&q->preds);
	}
	memset(q, 0, sizeof(*q));
}

static bool
in_group(const struct host_info *info, const char *group)
{
	size_t i;

	for (i = 0; info != NULL && i < info->ngroups; i++)
		if (strcmp(info->groups[i], group) == 0)
			return true;
	return false;
}

/* Hosts without stored facts never match a filter (an agent without
 * facts could not say it matches either). */
bool
host_query_match(const struct host_query *q, const char *host, const struct host_info *info)
{
	switch (q->target.kind) {
	case TARGET_HOST:
		if (strcmp(host, q->target.name) != 0)
			return false;
		break;
	case TARGET_GROUP:
		if (!in_group(info, q->target.name))
			return false;
		break;
	case TARGET_ALL:
		break;
	}
	if (!q->has_filter)
		return true;
	return info != NULL && info->has_facts && facts_match(&info->facts, &q->f);
}
