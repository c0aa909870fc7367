/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jobs.c - job announces (design.md §3, R/jobs/<job>): muster-server reads
 * the announce the CLI signs before each job, checks it against its own
 * operator keys ([trust] operators), stores it (the announces table), and
 * from then on can say per job who was expected, who answered with what,
 * who is missing and which missing hosts are offline: GET /api/jobs/<id>,
 * the muster_job_* metrics and the SSE "announce" event.
 *
 * An announce is believed only when its envelope verifies with a key of
 * [trust] operators, its body is a well-formed announce, its id is the
 * topic's and its aud this fleet's; anything else is counted by reason
 * (muster_announces_refused_total) and never stored.  Announces are not
 * shared between servers (a plain subscription): every server keeps the
 * open jobs for its metrics, and the archive keeps the first copy by job id.
 *
 * Threads: jobs_take() and jobs_stored() run on the loop; the live list
 * and the counters change under server.lock, which jobs_metrics()'s
 * caller holds.  jobs_view() runs on HTTP threads and reads the archive
 * through the reading handle (server.dblock) and the hosts under the lock.
 *
 * Ownership: struct jobs hangs off struct server (jobs_open() /
 * jobs_close()); it owns the keyring and the live jobs' name lists.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "mpjson.h"
#include "sign.h"

#define LIVE_MAX	1024		/* open jobs known to the metrics */
#define SERIES_MAX	64		/* open jobs with per-job series */
#define OPEN_GRACE_MS	60000		/* a job is open until not_after + this */

/* An announced job whose window is not over (metrics). */
struct live_job {
	char id[JOBID_MAX_LEN + 1];
	uint64_t issued_at, not_after;
	size_t nexpected, nanswered;
	char **names;		/* sorted expected hosts; one allocation */
};

struct jobs {
	bool on;		/* [trust] operators set: announces are read */
	struct keyring ring;
	struct live_job *live;	/* by issued_at, oldest first */
	size_t nlive;
	uint64_t total;
	uint64_t refused[JOBS_NREFUSED];
};

static const char *const refused_names[JOBS_NREFUSED] = {
	[JOBS_FORGED] = "forged", [JOBS_UNKNOWN_KEY] = "unknown_key",
	[JOBS_MALFORMED] = "malformed", [JOBS_WRONG_TOPIC] = "wrong_topic",
};

/* ---- the live list ---------------------------------------------------------- */

static void
live_free(struct live_job *j)
{
	free(j->names);
	j->names = NULL;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
names_have(char **names, size_t n, const char *host)
{
	return names != NULL && bsearch(&host, names, n, sizeof(*names), name_cmp) != NULL;
}

/* The expected hosts of a stored announce (JSON text) as one sorted
 * allocation: the pointers, then the strings. */
static char **
names_from_json(const char *txt, size_t *n)
{
	json_t *a = json_loads(txt, 0, NULL);
	size_t i, bytes = 0, nn;
	char **v, *p;

	*n = 0;
	if (!json_is_array(a)) {
		json_decref(a);
		return NULL;
	}
	nn = json_array_size(a);
	for (i = 0; i < nn; i++)
		bytes += strlen(json_string_value(json_array_get(a, i)) ?
		    json_string_value(json_array_get(a, i)) : "") + 1;
	if ((v = malloc(nn * sizeof(*v) + bytes + 1)) == NULL) {
		json_decref(a);
		return NULL;
	}
	p = (char *)(v + nn);
	for (i = 0; i < nn; i++) {
		const char *s = json_string_value(json_array_get(a, i));

		s = s ? s : "";
		v[i] = p;
		p = stpcpy(p, s) + 1;
	}
	json_decref(a);
	/* Sorted on the wire; sorted again so that a hand-made row cannot
	 * break bsearch. */
	qsort(v, nn, sizeof(*v), name_cmp);
	*n = nn;
	return v;
}

/* Drop the jobs whose window is over. Under the lock. */
static void
live_expire(struct jobs *J, uint64_t now)
{
	size_t i, k = 0;

	for (i = 0; i < J->nlive; i++) {
		if (J->live[i].not_after + OPEN_GRACE_MS <= now)
			live_free(&J->live[i]);
		else
			J->live[k++] = J->live[i];
	}
	J->nlive = k;
}

/* The answers already archived for a new live job (results may come
 * before their announce: another server's share, a slow announce). */
static int
count_answer(void *arg, const struct arc_val *cols, int ncols)
{
	struct live_job *j = arg;

	if (ncols >= 1 && !cols[0].null && names_have(j->names, j->nexpected, cols[0].s))
		j->nanswered++;
	return MU_OK;
}

static void
live_add(struct server *s, const char *id, uint64_t issued_at, uint64_t not_after,
    const char *expected_json)
{
	struct jobs *J = s->jobs;
	struct live_job j, *slot;
	struct arc_param p[] = { ARC_T(id) };
	struct mu_err err;
	size_t i;

	if (not_after + OPEN_GRACE_MS <= now_wall_ms())
		return;
	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "%s", id);
	j.issued_at = issued_at;
	j.not_after = not_after;
	j.names = names_from_json(expected_json, &j.nexpected);
	if (s->arc.ops->query(s->arc.h, "SELECT host FROM results WHERE job = $1", p, 1,
	    "t", count_answer, &j, &err) != MU_OK)
		log_warnx("announce %s: %s", id, err.msg);
	pthread_mutex_lock(&s->lock);
	live_expire(J, now_wall_ms());
	if (J->nlive == LIVE_MAX) {
		live_free(&J->live[0]);
		memmove(J->live, J->live + 1, (J->nlive - 1) * sizeof(*J->live));
		J->nlive--;
	}
	/* Keep the order by issued_at (announces come nearly in order). */
	for (i = J->nlive; i > 0 && J->live[i - 1].issued_at > issued_at; i--)
		;
	memmove(J->live + i + 1, J->live + i, (J->nlive - i) * sizeof(*J->live));
	slot = &J->live[i];
	*slot = j;
	J->nlive++;
	pthread_mutex_unlock(&s->lock);
}

static struct live_job *
live_find(struct jobs *J, const char *id)
{
	size_t i;

	for (i = J->nlive; i > 0; i--)
		if (strcmp(J->live[i - 1].id, id) == 0)
			return &J->live[i - 1];
	return NULL;
}

/* Announces read back at start, added once the query is done (live_add()
 * queries the same handle). */
struct reload {
	struct {
		char *id, *expected;
		uint64_t issued_at, not_after;
	} v[LIVE_MAX];
	size_t n;
};

static int
reload_row(void *arg, const struct arc_val *cols, int ncols)
{
	struct reload *x = arg;

	if (ncols != 4 || cols[0].null || cols[3].null || x->n == LIVE_MAX)
		return MU_OK;
	x->v[x->n].id = strdup(cols[0].s);
	x->v[x->n].expected = strdup(cols[3].s);
	x->v[x->n].issued_at = (uint64_t)cols[1].i;
	x->v[x->n].not_after = (uint64_t)cols[2].i;
	x->n++;
	return MU_OK;
}

static void
reload_open(struct server *s)
{
	struct arc_param p[] = { ARC_I(now_wall_ms() - OPEN_GRACE_MS) };
	struct reload *x = calloc(1, sizeof(*x));
	struct mu_err err;
	size_t i;

	if (x == NULL)
		return;
	if (s->arc.ops->query(s->arc.h, "SELECT job, issued_at, not_after, expected"
	    " FROM announces WHERE not_after > $1 ORDER BY issued_at DESC LIMIT 1024",
	    p, 1, "tiit", reload_row, x, &err) != MU_OK)
		log_warnx("open jobs not reloaded: %s", err.msg);
	for (i = 0; i < x->n; i++) {
		if (x->v[i].id != NULL && x->v[i].expected != NULL)
			live_add(s, x->v[i].id, x->v[i].issued_at, x->v[i].not_after,
			    x->v[i].expected);
		free(x->v[i].id);
		free(x->v[i].expected);
	}
	if (x->n > 0)
		log_info("%zu open jobs back from the archive", x->n);
	free(x);
}

/* ---- taking announces ------------------------------------------------------- */

static void
refuse(struct server *s, enum jobs_refusal why, const char *topic, const char *msg)
{
	pthread_mutex_lock(&s->lock);
	s->jobs->refused[why]++;
	pthread_mutex_unlock(&s->lock);
	log_warnx("announce on %s refused (%s): %s", topic, refused_names[why], msg);
}

/* The job id of R/jobs/<id>, or false for any other topic. */
bool
jobs_topic(const struct server *s, const char *topic, char id[JOBID_MAX_LEN + 1])
{
	size_t n = strlen(s->root);
	const char *rest;

	if (strncmp(topic, s->root, n) != 0 || strncmp(topic + n, "/v1/jobs/", 9) != 0)
		return false;
	rest = topic + n + 9;
	if (strlen(rest) > JOBID_MAX_LEN)
		snprintf(id, JOBID_MAX_LEN + 1, "%s", "-");	/* not a job id */
	else
		snprintf(id, JOBID_MAX_LEN + 1, "%s", rest);
	return true;
}

static char *
json_text(json_t *j)
{
	char *out = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	json_decref(j);
	return out;
}

static char *
expected_json(const struct announce *a)
{
	char h[NAME_MAX_LEN + 1];
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr != NULL && i < a->nexpected; i++) {
		announce_host(a, i, h);
		json_array_append_new(arr, json_string(h));
	}
	return json_text(arr);
}

static struct row *
announce_row(const struct announce *a, const char *keyid)
{
	char target[NAME_MAX_LEN + 8];
	struct row *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	target_format(&a->target, target, sizeof(target));
	r->kind = ROW_ANNOUNCE;
	r->job = strdup(a->id);
	r->kind_s = strdup(job_kind_name(a->job_kind));
	r->module = a->module[0] ? strdup(a->module) : NULL;
	r->data = a->args ? json_text(mpjson_from_msgpack(a->args)) : NULL;
	r->target = strdup(target);
	r->filter = a->filter ? json_text(mpjson_from_msgpack(a->filter)) : NULL;
	r->operator_ = wire_str_dup(a->operator_);
	r->keyid = strdup(keyid);
	r->expected = expected_json(a);
	r->issued_at = (int64_t)a->issued_at;
	r->not_after = (int64_t)a->not_after;
	r->has_timeout = a->timeout_ms != 0;
	r->timeout_ms = (int64_t)a->timeout_ms;
	r->nexpected = (int64_t)a->nexpected;
	if (r->job == NULL || r->kind_s == NULL || r->target == NULL || r->keyid == NULL ||
	    r->expected == NULL || (a->args && r->data == NULL) ||
	    (a->filter && r->filter == NULL)) {
		row_free(r);
		return NULL;
	}
	return r;
}

/* Verify, then queue for the archive; refusals are counted by reason. */
void
jobs_take(struct server *s, const char *topic, const char *id, const uint8_t *p,
    size_t len)
{
	char aud[AUD_MAX_LEN + 1];
	struct job_envelope env;
	struct announce a;
	struct mu_err err;
	struct row *r;
	int rc;

	if (!s->jobs->on) {
		refuse(s, JOBS_UNKNOWN_KEY, topic, "no [trust] operators configured");
		return;
	}
	if (envelope_decode_max(p, len, WIRE_MAX_ANNOUNCE, &env, &err) != MU_OK) {
		refuse(s, JOBS_MALFORMED, topic, err.msg);
		return;
	}
	if ((rc = envelope_verify(&s->jobs->ring, &env, &err)) != MU_OK) {
		refuse(s, rc == MU_ETRUST ? JOBS_UNKNOWN_KEY : JOBS_FORGED, topic, err.msg);
		wire_doc_free(&env.doc);
		return;
	}
	if (announce_decode(env.body.ptr, env.body.len, &a, &err) != MU_OK) {
		refuse(s, JOBS_MALFORMED, topic, err.msg);
		wire_doc_free(&env.doc);
		return;
	}
	aud_format(aud, sizeof(aud), s->root);
	if (strcmp(a.id, id) != 0)
		refuse(s, JOBS_WRONG_TOPIC, topic, "the body names another job");
	else if (strcmp(a.aud, aud) != 0)
		refuse(s, JOBS_WRONG_TOPIC, topic, "for another fleet (aud)");
	else if ((r = announce_row(&a, env.key)) == NULL)
		log_err("announce %s: out of memory", a.id);
	else if (ingest_queue(s, r) == MU_OK) {
		pthread_mutex_lock(&s->lock);
		s->jobs->total++;
		pthread_mutex_unlock(&s->lock);
		log_debug("announce %s: %zu hosts expected", a.id, a.nexpected);
	}
	wire_doc_free(&a.doc);
	wire_doc_free(&env.doc);
}

/* After a batch is written (loop thread): answers of live jobs first,
 * then the new announces, whose own count reads the archive (so a result
 * of the same batch is counted once). */
void
jobs_stored(struct server *s, struct row **rows, size_t n)
{
	struct live_job *j;
	json_t *ev;
	char *txt;
	size_t i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < n; i++)
		if (rows[i]->kind == ROW_RESULT && rows[i]->stored &&
		    (j = live_find(s->jobs, rows[i]->job)) != NULL &&
		    names_have(j->names, j->nexpected, rows[i]->host))
			j->nanswered++;
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < n; i++) {
		if (rows[i]->kind != ROW_ANNOUNCE || !rows[i]->stored)
			continue;
		live_add(s, rows[i]->job, (uint64_t)rows[i]->issued_at,
		    (uint64_t)rows[i]->not_after, rows[i]->expected);
		ev = json_pack("{s:s, s:I, s:s, s:s?, s:s, s:I, s:I}", "job", rows[i]->job,
		    "expected", (json_int_t)rows[i]->nexpected, "kind", rows[i]->kind_s,
		    "module", rows[i]->module, "target", rows[i]->target,
		    "issued_at", (json_int_t)rows[i]->issued_at,
		    "not_after", (json_int_t)rows[i]->not_after);
		if ((txt = json_text(ev)) != NULL) {
			sse_push(s, "announce", txt);
			free(txt);
		}
	}
}

/* ---- metrics (caller holds s->lock) ------------------------------------------- */

void
jobs_metrics(struct server *s, FILE *f)
{
	struct jobs *J = s->jobs;
	uint64_t now = now_wall_ms();
	size_t i, nopen = 0, first;
	int r;

	if (J == NULL)
		return;
	fputs("# HELP muster_announces_total Job announces verified and taken.\n"
	    "# TYPE muster_announces_total counter\n", f);
	fprintf(f, "muster_announces_total %llu\n", (unsigned long long)J->total);
	fputs("# HELP muster_announces_refused_total Job announces refused (not stored), "
	    "by reason.\n# TYPE muster_announces_refused_total counter\n", f);
	for (r = 0; r < JOBS_NREFUSED; r++)
		fprintf(f, "muster_announces_refused_total{reason=\"%s\"} %llu\n",
		    refused_names[r], (unsigned long long)J->refused[r]);
	for (i = 0; i < J->nlive; i++)
		nopen += J->live[i].not_after + OPEN_GRACE_MS > now;
	fputs("# HELP muster_jobs_open Announced jobs not past their not_after + 1 min.\n"
	    "# TYPE muster_jobs_open gauge\n", f);
	fprintf(f, "muster_jobs_open %zu\n", nopen);
	first = J->nlive > SERIES_MAX ? J->nlive - SERIES_MAX : 0;
	fputs("# HELP muster_job_expected Hosts an open job expects (newest 64 jobs).\n"
	    "# TYPE muster_job_expected gauge\n", f);
	for (i = J->nlive; i > first; i--)
		if (J->live[i - 1].not_after + OPEN_GRACE_MS > now)
			fprintf(f, "muster_job_expected{job=\"%s\"} %zu\n", J->live[i - 1].id,
			    J->live[i - 1].nexpected);
	fputs("# HELP muster_job_answered Expected hosts that answered an open job.\n"
	    "# TYPE muster_job_answered gauge\n", f);
	for (i = J->nlive; i > first; i--)
		if (J->live[i - 1].not_after + OPEN_GRACE_MS > now)
			fprintf(f, "muster_job_answered{job=\"%s\"} %zu\n", J->live[i - 1].id,
			    J->live[i - 1].nanswered);
	fputs("# HELP muster_job_missing Expected hosts without an answer to an open job.\n"
	    "# TYPE muster_job_missing gauge\n", f);
	for (i = J->nlive; i > first; i--)
		if (J->live[i - 1].not_after + OPEN_GRACE_MS > now)
			fprintf(f, "muster_job_missing{job=\"%s\"} %zu\n", J->live[i - 1].id,
			    J->live[i - 1].nexpected - J->live[i - 1].nanswered);
}

/* ---- GET /api/jobs/<id> ---------------------------------------------------------- */

struct view {
	json_t *announce;	/* object or NULL */
	char *expected_txt;
	json_t *results;	/* array */
};

static json_t *
json_or_null(const struct arc_val *v)
{
	json_t *j;

	if (v->null || (j = json_loads(v->s, JSON_DECODE_ANY, NULL)) == NULL)
		return json_null();
	return j;
}

static json_t *
str_or_null(const struct arc_val *v)
{
	return v->null ? json_null() : json_string(v->s);
}

static json_t *
int_or_null(const struct arc_val *v)
{
	return v->null ? json_null() : json_integer(v->i);
}

/* job_kind, module, args, target, filter, operator, issued_at, not_after,
 * timeout_ms, received_at, expected */
static int
announce_cols(void *arg, const struct arc_val *c, int n)
{
	struct view *v = arg;

	if (n != 11 || v->announce != NULL)
		return MU_OK;
	v->announce = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "kind", str_or_null(&c[0]), "module", str_or_null(&c[1]),
	    "args", json_or_null(&c[2]), "target", str_or_null(&c[3]),
	    "filter", json_or_null(&c[4]), "operator", str_or_null(&c[5]),
	    "issued_at", int_or_null(&c[6]), "not_after", int_or_null(&c[7]),
	    "timeout_ms", int_or_null(&c[8]), "received_at", int_or_null(&c[9]));
	v->expected_txt = c[10].null ? NULL : strdup(c[10].s);
	return v->announce != NULL ? MU_OK : MU_ENOMEM;
}

/* host, status, summary, reason, module, module_version, started_at, finished_at */
static int
result_cols(void *arg, const struct arc_val *c, int n)
{
	struct view *v = arg;
	json_t *o;

	if (n != 8)
		return MU_OK;
	o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "host", str_or_null(&c[0]), "status", str_or_null(&c[1]),
	    "summary", str_or_null(&c[2]), "reason", str_or_null(&c[3]),
	    "module", str_or_null(&c[4]), "module_version", str_or_null(&c[5]),
	    "started_at", int_or_null(&c[6]), "finished_at", int_or_null(&c[7]));
	if (o == NULL)
		return MU_ENOMEM;
	json_array_append_new(v->results, o);
	return MU_OK;
}

static const char *
res_str(json_t *r, const char *key)
{
	const char *s = json_string_value(json_object_get(r, key));

	return s ? s : "";
}

/* Failures first (anything but pass), then by host. */
static int
result_order(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int px = strcmp(res_str(x, "status"), "pass") == 0;
	int py = strcmp(res_str(y, "status"), "pass") == 0;

	if (px != py)
		return px - py;
	return strcmp(res_str(x, "host"), res_str(y, "host"));
}

static int
view_query(struct server *s, const char *job, struct view *v, struct mu_err *err)
{
	struct arc_param p[] = { ARC_T(job) };
	int rc;

	pthread_mutex_lock(&s->dblock);
	rc = s->reader.ops->query(s->reader.h,
	    "SELECT job_kind, module, args, target, filter, operator, issued_at,"
	    " not_after, timeout_ms, received_at, expected FROM announces WHERE job = $1",
	    p, 1, "tttttt" "iiiit", announce_cols, v, err);
	if (rc == MU_OK)
		rc = s->reader.ops->query(s->reader.h,
		    "SELECT host, status, summary, reason, module, module_version, started_at,"
		    " finished_at FROM results WHERE job = $1", p, 1, "ttttttii",
		    result_cols, v, err);
	pthread_mutex_unlock(&s->dblock);
	return rc;
}

static const char *const status_keys[] = {
	"pass", "fail", "error", "timeout", "crashed", "rejected",
};
#define NSTATUS_KEYS	6

/* The counts, the missing hosts (with their live presence) and which
 * results were expected. */
static json_t *
view_build(struct server *s, const char *job, struct view *v)
{
	size_t nexp = 0, i, k, nres = json_array_size(v->results), answered = 0;
	size_t offline = 0, silent = 0, unexpected = 0, st[NSTATUS_KEYS + 1] = { 0 };
	char **names = v->expected_txt ? names_from_json(v->expected_txt, &nexp) : NULL;
	json_t **res = calloc(nres + 1, sizeof(*res));
	json_t *missing = json_array(), *unexp = json_array(), *expected = json_array();
	json_t *results = json_array(), *counts, *out;
	bool *got = calloc(nexp + 1, sizeof(*got));

	if (res == NULL || got == NULL || missing == NULL || unexp == NULL ||
	    expected == NULL || results == NULL || (v->expected_txt && names == NULL && nexp)) {
		free(res), free(got), free(names);
		json_decref(missing), json_decref(unexp), json_decref(expected);
		json_decref(results);
		return NULL;
	}
	for (i = 0; i < nres; i++)
		res[i] = json_array_get(v->results, i);
	qsort(res, nres, sizeof(*res), result_order);
	for (i = 0; i < nres; i++) {
		const char *host = res_str(res[i], "host"), **hit;
		bool exp = false;

		hit = names ? bsearch(&host, names, nexp, sizeof(*names), name_cmp) : NULL;
		if (hit != NULL) {
			exp = true;
			got[(char **)hit - names] = true;
			answered++;
		} else if (v->announce != NULL) {
			unexpected++;
			json_array_append_new(unexp, json_string(host));
		}
		for (k = 0; k < NSTATUS_KEYS; k++)
			if (strcmp(res_str(res[i], "status"), status_keys[k]) == 0)
				break;
		st[k]++;
		json_object_set_new(res[i], "expected", json_boolean(exp));
		json_array_append(results, res[i]);
	}
	if (v->announce == NULL)
		answered = nres;	/* nothing was expected: every answer counts */
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < nexp; i++) {
		const struct host_state *h = hosts_find(s, names[i]);

		json_array_append_new(expected, json_string(names[i]));
		if (got[i])
			continue;
		if (h != NULL && h->online)
			silent++;
		else
			offline++;
		json_array_append_new(missing, json_pack("{s:s, s:b, s:o}", "host", names[i],
		    "online", h != NULL && h->online,
		    "at", h != NULL ? json_integer((json_int_t)h->at) : json_null()));
	}
	pthread_mutex_unlock(&s->lock);
	counts = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "expected", (json_int_t)nexp, "answered", (json_int_t)answered,
	    "missing", (json_int_t)(offline + silent), "offline", (json_int_t)offline,
	    "silent", (json_int_t)silent, "unexpected", (json_int_t)unexpected,
	    "pass", (json_int_t)st[0], "fail", (json_int_t)st[1], "error", (json_int_t)st[2],
	    "timeout", (json_int_t)st[3], "crashed", (json_int_t)st[4],
	    "rejected", (json_int_t)st[5], "other", (json_int_t)st[6]);
	out = json_pack("{s:s, s:b, s:O?, s:o, s:o, s:o, s:o, s:o}", "job", job,
	    "announced", v->announce != NULL, "announce", v->announce, "counts", counts,
	    "expected", expected, "missing", missing, "unexpected", unexp,
	    "results", results);
	free(res);
	free(got);
	free(names);
	return out;
}

int
jobs_view(struct server *s, const char *job, json_t **out, struct mu_err *err)
{
	struct view v = { NULL, NULL, json_array() };
	int rc;

	*out = NULL;
	if (v.results == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	rc = view_query(s, job, &v, err);
	if (rc == MU_OK && v.announce == NULL && json_array_size(v.results) == 0)
		rc = mu_errf(err, MU_ENOENT, "no announce and no result for this job");
	if (rc == MU_OK && (*out = view_build(s, job, &v)) == NULL)
		rc = mu_errf(err, MU_ENOMEM, "out of memory");
	json_decref(v.announce);
	json_decref(v.results);
	free(v.expected_txt);
	return rc;
}

/* ---- start and stop ------------------------------------------------------------- */

static void
ring_warn(void *arg, const char *msg)
{
	(void)arg;
	log_warnx("[trust] operators: %s", msg);
}

int
jobs_open(struct server *s, struct mu_err *err)
{
	int rc;

	if ((s->jobs = calloc(1, sizeof(*s->jobs))) == NULL ||
	    (s->jobs->live = calloc(LIVE_MAX, sizeof(*s->jobs->live))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	if (s->cfg.operators[0] == '\0') {
		log_notice("no [trust] operators: job announces are not read");
		return MU_OK;
	}
	if ((rc = keyring_load_dir(&s->jobs->ring, s->cfg.operators, ring_warn, NULL,
	    err)) != MU_OK)
		return rc;
	s->jobs->on = true;
	log_info("%zu operator keys for job announces (%s)", s->jobs->ring.nkeys,
	    s->cfg.operators);
	/* The open jobs, back from the archive after a restart. */
	reload_open(s);
	return MU_OK;
}

bool
jobs_on(const struct server *s)
{
	return s->jobs != NULL && s->jobs->on;
}

void
jobs_close(struct server *s)
{
	size_t i;

	if (s->jobs == NULL)
		return;
	for (i = 0; i < s->jobs->nlive; i++)
		live_free(&s->jobs->live[i]);
	free(s->jobs->live);
	keyring_free(&s->jobs->ring);
	free(s->jobs);
	s->jobs = NULL;
}
