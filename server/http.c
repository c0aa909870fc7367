/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http.c - muster-server's HTTP side (libmicrohttpd), read-only:
 *
 *	GET /metrics				Prometheus text format
 *	GET /api/hosts?filter=&target=		live presence of every host, or of
 *						those a fact filter and target name
 *	GET /api/hosts/<host>			one host: facts, update, presence
 *	GET /api/jobs				latest jobs with counts by status
 *	GET /api/jobs/<id>			expected, answered, missing (jobs.c)
 *	GET /api/jobs/<id>/results		a job's results, failures first
 *	GET /api/jobs/<id>/hosts/<host>		one host's result, output and data
 *	GET /api/hosts/<host>/history		a host's recent results
 *	GET /api/results?host=&job=&since=	results, newest first (muster history)
 *	GET /api/releases			per channel: the offered version, its
 *						schedule, attempted, failed, halt (halt.c)
 *	GET /api/events				server-sent events for the live page
 *	GET /, /app.js, /style.css		the live page (www.c, or [server] www)
 *
 * List endpoints take limit (1..1000, default 100) and offset (0..10^7);
 * since is a duration back from now ("1h").  Every query value is length-
 * checked and parsed strictly before use; bad ones are a 400.
 *
 * Basic auth ([server] auth_file): lines "user:crypt-hash" (openssl
 * passwd -6, mkpasswd); checked with crypt_r() on every request.  Without
 * the file the server trusts whoever can reach the listen address
 * (127.0.0.1 by default), and serves only requests whose Host is an
 * address of it (host_ok()).
 *
 * Threads: libmicrohttpd runs one thread per connection, so an event
 * stream may block waiting for news (sse_read).  Handlers read the live
 * state under server.lock and the archive through server.reader under
 * server.dblock.
 *
 * Ownership: struct server owns the daemon and the credentials;
 * responses own the buffers handed to them (MHD_RESPMEM_MUST_FREE).
 */
#include "server.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "log.h"
#include "util.h"
#include "www.h"

#define MAX_LIMIT	1000
#define MAX_OFFSET	10000000
#define MAX_PARAM	128
#define SSE_KEEPALIVE_S	15
#define AUTH_MAX_USERS	64
#define REALM		"muster-server"

struct http_auth {
	size_t n;
	struct {
		char user[64];
		char hash[256];
	} u[AUTH_MAX_USERS];
};

/* ---- responses ---------------------------------------------------------------- */

/* On every response.  The page (www/) has no inline script or style and
 * talks only to its own origin (fetch, EventSource): anything else is
 * refused by the browser.  The icon is a data: URL. */
#define CSP	"default-src 'none'; script-src 'self'; style-src 'self'; " \
		"connect-src 'self'; img-src 'self' data:; base-uri 'none'; " \
		"form-action 'none'; frame-ancestors 'none'"

static void
add_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Content-Security-Policy", CSP);
}

static enum MHD_Result
send_buf(struct MHD_Connection *c, unsigned int code, const char *type, char *buf,
    size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	add_headers(r);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
send_json(struct MHD_Connection *c, unsigned int code, json_t *j)
{
	char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (txt == NULL)
		return MHD_NO;
	return send_buf(c, code, "application/json", txt, strlen(txt));
}

static enum MHD_Result
send_error(struct MHD_Connection *c, unsigned int code, const char *msg)
{
	return send_json(c, code, json_pack("{s:s}", "error", msg));
}

/* ---- query values ---------------------------------------------------------------- */

struct page {
	int64_t limit, offset, since;	/* since: wall ms, 0 = all */
	const char *host, *job;
};

static int
param_u64(struct MHD_Connection *c, const char *key, uint64_t max, int64_t *out)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
	uint64_t n = 0;
	size_t i;

	if (v == NULL)
		return MU_OK;
	if (v[0] == '\0' || strlen(v) > 10)
		return MU_EINVAL;
	for (i = 0; v[i] != '\0'; i++) {
		if (v[i] < '0' || v[i] > '9')
			return MU_EINVAL;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	if (n > max)
		return MU_EINVAL;
	*out = (int64_t)n;
	return MU_OK;
}

/* limit, offset, since, host, job: NULL on success, else what was wrong. */
static const char *
page_parse(struct MHD_Connection *c, struct page *p)
{
	const char *v;
	uint64_t d;

	memset(p, 0, sizeof(*p));
	p->limit = 100;
	if (param_u64(c, "limit", MAX_LIMIT, &p->limit) != MU_OK || p->limit < 1)
		return "bad limit (1..1000)";
	if (param_u64(c, "offset", MAX_OFFSET, &p->offset) != MU_OK)
		return "bad offset";
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since")) != NULL) {
		if (strlen(v) > 24 || parse_duration_ms(v, &d) != MU_OK ||
		    d > now_wall_ms())
			return "bad since (a duration: 30m, 2h, 7d)";
		p->since = (int64_t)(now_wall_ms() - d);
	}
	p->host = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "host");
	if (p->host != NULL && (strlen(p->host) > MAX_PARAM || !name_valid(p->host)))
		return "bad host";
	p->job = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "job");
	if (p->job != NULL && (strlen(p->job) > MAX_PARAM || !jobid_valid(p->job)))
		return "bad job";
	return NULL;
}

/* ---- archive rows as JSON --------------------------------------------------------- */

struct rows_ctx {
	json_t *array;
	const char *const *names;	/* column names */
	const char *types;
};

static int
row_json(void *arg, const struct arc_val *cols, int ncols)
{
	struct rows_ctx *x = arg;
	json_t *o = json_object(), *v;
	int i;

	if (o == NULL)
		return MU_ENOMEM;
	for (i = 0; i < ncols; i++) {
		if (cols[i].null)
			continue;
		if (x->types[i] == 'i')
			v = json_integer(cols[i].i);
		else if (x->types[i] == 'j')	/* stored JSON text */
			v = json_loads(cols[i].s, 0, NULL);
		else
			v = json_string(cols[i].s);	/* NULL if not UTF-8: left out */
		if (v != NULL)
			json_object_set_new(o, x->names[i], v);
	}
	json_array_append_new(x->array, o);
	return MU_OK;
}

/* Run a query on the reading handle; the rows as an array of objects. */
static json_t *
query_rows(struct server *s, const char *sql, const struct arc_param *p, int np,
    const char *const *names, const char *types)
{
	char qtypes[32];
	struct rows_ctx x = { json_array(), names, types };
	struct mu_err err;
	size_t i;
	int rc;

	if (x.array == NULL || strlen(types) >= sizeof(qtypes))
		return NULL;
	for (i = 0; types[i] != '\0'; i++)
		qtypes[i] = types[i] == 'i' ? 'i' : 't';
	qtypes[i] = '\0';
	pthread_mutex_lock(&s->dblock);
	rc = s->reader.ops->query(s->reader.h, sql, p, np, qtypes, row_json, &x, &err);
	pthread_mutex_unlock(&s->dblock);
	if (rc != MU_OK) {
		log_err("api: %s", err.msg);
		json_decref(x.array);
		return NULL;
	}
	return x.array;
}

static const char *const result_cols[] = {
	"job", "host", "kind", "status", "module", "module_version", "summary",
	"reason", "started_at", "finished_at", "received_at", "exit_code", "signal",
	"agent_version", "output", "data",
};
#define RESULT_TYPES	"ttttttttiiiiittj"
#define RESULT_SELECT	"SELECT job, host, kind, status, module, module_version, summary," \
	" reason, started_at, finished_at, received_at, exit_code, sig, agent_version," \
	" output, data FROM results"

static const char sql_results[] = RESULT_SELECT
    " WHERE (CAST($1 AS TEXT) IS NULL OR host = $1)"
    " AND (CAST($2 AS TEXT) IS NULL OR job = $2)"
    " AND received_at >= $3 ORDER BY received_at DESC, host LIMIT $4 OFFSET $5";
static const char sql_job_results[] = RESULT_SELECT
    " WHERE job = $1 ORDER BY CASE status WHEN 'pass' THEN 1 ELSE 0 END, host"
    " LIMIT $2 OFFSET $3";
/* expected: the announce's count of expected hosts (NULL, left out, when
 * the job was not announced), for the page's list of jobs. */
static const char sql_jobs[] =
    "SELECT job, max(kind), max(module), count(*),"
    " count(*) FILTER (WHERE status = 'pass'), count(*) FILTER (WHERE status = 'fail'),"
    " min(received_at), max(received_at),"
    " (SELECT a.nexpected FROM announces a WHERE a.job = results.job)"
    " FROM results WHERE received_at >= $1"
    " GROUP BY job ORDER BY max(received_at) DESC, job LIMIT $2 OFFSET $3";
static const char sql_presence[] =
    "SELECT host, state, at, reason, version, channel, received_at FROM presence"
    " WHERE host = $1 AND received_at >= $2 ORDER BY at DESC LIMIT $3 OFFSET $4";

static enum MHD_Result
api_results(struct server *s, struct MHD_Connection *c, const struct page *p)
{
	struct arc_param a[] = { ARC_T(p->host), ARC_T(p->job), ARC_I(p->since),
	    ARC_I(p->limit), ARC_I(p->offset) };
	json_t *rows = query_rows(s, sql_results, a, 5, result_cols, RESULT_TYPES);

	if (rows == NULL)
		return send_error(c, 500, "archive query failed");
	return send_json(c, 200, json_pack("{s:o}", "results", rows));
}

static enum MHD_Result
api_job_results(struct server *s, struct MHD_Connection *c, const char *job,
    const struct page *p)
{
	struct arc_param a[] = { ARC_T(job), ARC_I(p->limit), ARC_I(p->offset) };
	json_t *rows = query_rows(s, sql_job_results, a, 3, result_cols, RESULT_TYPES);

	if (rows == NULL)
		return send_error(c, 500, "archive query failed");
	return send_json(c, 200, json_pack("{s:s, s:o}", "job", job, "results", rows));
}

static enum MHD_Result
api_jobs(struct server *s, struct MHD_Connection *c, const struct page *p)
{
	static const char *const names[] = { "job", "kind", "module", "total", "pass",
	    "fail", "first", "last", "expected" };
	struct arc_param a[] = { ARC_I(p->since), ARC_I(p->limit), ARC_I(p->offset) };
	json_t *rows = query_rows(s, sql_jobs, a, 3, names, "tttiiiiii");

	if (rows == NULL)
		return send_error(c, 500, "archive query failed");
	return send_json(c, 200, json_pack("{s:o}", "jobs", rows));
}

static enum MHD_Result
api_releases(struct server *s, struct MHD_Connection *c)
{
	json_t *a;

	pthread_mutex_lock(&s->lock);
	a = halt_releases_json(s);
	pthread_mutex_unlock(&s->lock);
	return send_json(c, 200, json_pack("{s:o}", "releases", a));
}

static enum MHD_Result
api_host_history(struct server *s, struct MHD_Connection *c, const char *host,
    const struct page *p)
{
	static const char *const pnames[] = { "host", "state", "at", "reason", "version",
	    "channel", "received_at" };
	struct arc_param a[] = { ARC_T(host), ARC_T(NULL), ARC_I(p->since), ARC_I(p->limit),
	    ARC_I(p->offset) };
	struct arc_param b[] = { ARC_T(host), ARC_I(p->since), ARC_I(p->limit),
	    ARC_I(p->offset) };
	json_t *res = query_rows(s, sql_results, a, 5, result_cols, RESULT_TYPES);
	json_t *pres = query_rows(s, sql_presence, b, 4, pnames, "ttittti");

	if (res == NULL || pres == NULL) {
		json_decref(res);
		json_decref(pres);
		return send_error(c, 500, "archive query failed");
	}
	return send_json(c, 200, json_pack("{s:s, s:o, s:o}", "host", host, "results", res,
	    "presence", pres));
}

/* ---- hosts: filters and one host's page (facts.c) ---------------------------------- */

/* A filter's text form: a name, an operator and a value. */
#define MAX_FILTER_TEXT	(FACT_NAME_MAX + FACT_STR_MAX + 16)

struct filter_args {
	const char *v[FILTER_MAX + 1];
	size_t n;
	bool bad;
};

static enum MHD_Result
filter_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct filter_args *a = cls;

	(void)kind;
	if (strcmp(key, "filter") != 0)
		return MHD_YES;
	if (value == NULL || strlen(value) > MAX_FILTER_TEXT || a->n == FILTER_MAX + 1) {
		a->bad = true;
		return MHD_NO;
	}
	a->v[a->n++] = value;
	return MHD_YES;
}

/* filter= (repeated) and target= into q; NULL on success, else the 400's
 * reason (in err). */
static const char *
host_query_get(struct MHD_Connection *c, struct host_query *q, struct mu_err *err)
{
	struct filter_args a = { .n = 0 };
	const char *target;

	memset(q, 0, sizeof(*q));
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, filter_arg, &a);
	if (a.bad)
		return "bad filter (too long, empty or too many)";
	target = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "target");
	if (target != NULL && strlen(target) > MAX_PARAM)
		return "bad target";
	if (host_query_parse(q, a.v, a.n, target, err) != MU_OK)
		return err->msg;
	return NULL;
}

static enum MHD_Result
api_hosts(struct server *s, struct MHD_Connection *c, const struct page *p)
{
	struct host_query q;
	struct mu_err err;
	const char *bad;
	json_t *a, *o;
	size_t i, matched = 0;
	bool paged = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit") != NULL;
	const char *certs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "certs");

	if ((bad = host_query_get(c, &q, &err)) != NULL) {
		enum MHD_Result ret = send_error(c, 400, bad);

		host_query_free(&q);
		return ret;
	}
	if ((a = json_array()) == NULL) {
		host_query_free(&q);
		return MHD_NO;
	}
	pthread_mutex_lock(&s->lock);
	/* Every host by default (the page draws the whole fleet); paged
	 * only when asked, after the filter. */
	for (i = 0; i < s->nhosts; i++) {
		const struct host_state *h = &s->hosts[i];
		const struct host_info *info = hostinfo_find(s, h->name);

		if (!host_query_match(&q, h->name, info) || matched++ < (size_t)p->offset)
			continue;	/* offset counts matching hosts */
		if (paged && json_array_size(a) >= (size_t)p->limit)
			break;
		o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}",
		    "host", h->name, "state", h->online ? "online" : "offline",
		    "version", h->version, "channel", h->channel, "reason", h->reason,
		    "at", (json_int_t)h->at);
		if (o == NULL)
			continue;
		json_object_set_new(o, "facts_at", info != NULL && info->has_facts ?
		    json_integer((json_int_t)info->facts_at) : json_null());
		/* certs=1: the CLI checks each against its own CA (it trusts
		 * the server no more than the broker), then verifies results
		 * without the retained statuses (RabbitMQ, docs/brokers.md). */
		if (certs != NULL && strcmp(certs, "1") == 0 && info != NULL &&
		    info->cert != NULL)
			json_object_set_new(o, "cert", json_string(info->cert));
		json_array_append_new(a, o);
	}
	pthread_mutex_unlock(&s->lock);
	host_query_free(&q);
	return send_json(c, 200, json_pack("{s:o}", "hosts", a));
}

#define HOST_PRESENCE_MAX	50

static const char sql_host_presence[] =
    "SELECT state, at, reason, version, channel FROM presence"
    " WHERE host = $1 ORDER BY at DESC LIMIT $2";

/* GET /api/hosts/<host>: the live state, the latest facts and update map,
 * and the last presence changes from the archive. */
static enum MHD_Result
api_host(struct server *s, struct MHD_Connection *c, const char *host)
{
	static const char *const pnames[] = { "state", "at", "reason", "version", "channel" };
	struct arc_param a[] = { ARC_T(host), ARC_I(HOST_PRESENCE_MAX) };
	const struct host_state *h;
	const struct host_info *info;
	json_t *o = NULL, *g, *pres;
	size_t i;

	pthread_mutex_lock(&s->lock);
	if ((h = hosts_find(s, host)) != NULL) {
		info = hostinfo_find(s, host);
		o = json_pack("{s:s, s:b, s:s, s:s, s:s, s:I}", "host", h->name,
		    "online", h->online, "version", h->version, "channel", h->channel,
		    "reason", h->reason, "at", (json_int_t)h->at);
		g = json_array();
		for (i = 0; info != NULL && i < info->ngroups; i++)
			json_array_append_new(g, json_string(info->groups[i]));
		if (o != NULL) {
			json_object_set_new(o, "groups", g ? g : json_array());
			json_object_set_new(o, "update", info != NULL && info->update != NULL ?
			    json_loads(info->update, 0, NULL) : json_null());
			json_object_set_new(o, "facts", info != NULL && info->has_facts ?
			    facts_to_json(&info->facts) : json_null());
			json_object_set_new(o, "facts_at", info != NULL && info->has_facts ?
			    json_integer((json_int_t)info->facts_at) : json_null());
		} else
			json_decref(g);
	}
	pthread_mutex_unlock(&s->lock);
	if (h == NULL)
		return send_error(c, 404, "unknown host");
	if (o == NULL)
		return MHD_NO;
	if ((pres = query_rows(s, sql_host_presence, a, 2, pnames, "tittt")) == NULL) {
		json_decref(o);
		return send_error(c, 500, "archive query failed");
	}
	json_object_set_new(o, "presence", pres);
	return send_json(c, 200, o);
}

/* /api/jobs/<id>: expected, answered, missing (server/jobs.c) */
static enum MHD_Result
api_job(struct server *s, struct MHD_Connection *c, const char *job)
{
	struct json_t *j;
	struct mu_err err;
	int rc;

	if ((rc = jobs_view(s, job, &j, &err)) == MU_ENOENT)
		return send_error(c, 404, err.msg);
	if (rc != MU_OK) {
		log_err("api: %s", err.msg);
		return send_error(c, 500, "archive query failed");
	}
	return send_json(c, 200, j);
}

/* /api/jobs/<id>/hosts/<host>: one result, every column */
static enum MHD_Result
api_job_host(struct server *s, struct MHD_Connection *c, const char *job,
    const char *host)
{
	static const char sql[] = RESULT_SELECT " WHERE job = $1 AND host = $2";
	struct arc_param a[] = { ARC_T(job), ARC_T(host) };
	json_t *rows = query_rows(s, sql, a, 2, result_cols, RESULT_TYPES), *r;

	if (rows == NULL)
		return send_error(c, 500, "archive query failed");
	if ((r = json_array_get(rows, 0)) == NULL) {
		json_decref(rows);
		return send_error(c, 404, "no result of this host for this job");
	}
	json_incref(r);
	json_decref(rows);
	return send_json(c, 200, json_pack("{s:o}", "result", r));
}

/* /api/jobs/<id>/hosts/<host> from its tail "/hosts/<host>" */
static enum MHD_Result
api_job_tail(struct server *s, struct MHD_Connection *c, const char *job,
    const char *tail)
{
	if (strncmp(tail, "/hosts/", 7) == 0 && strlen(tail + 7) <= NAME_MAX_LEN &&
	    name_valid(tail + 7))
		return api_job_host(s, c, job, tail + 7);
	return send_error(c, 404, "not found");
}

/* /api/jobs/<id>[/results|/hosts/<h>] and /api/hosts/<h>/history */
static enum MHD_Result
api_path(struct server *s, struct MHD_Connection *c, const char *url, const struct page *p)
{
	char name[JOBID_MAX_LEN + 1];
	const char *rest, *slash;
	size_t n;

	if (strncmp(url, "/api/jobs/", 10) == 0)
		rest = url + 10;
	else if (strncmp(url, "/api/hosts/", 11) == 0)
		rest = url + 11;
	else
		return send_error(c, 404, "not found");
	if (rest == url + 11 && strchr(rest, '/') == NULL) {
		if (strlen(rest) > NAME_MAX_LEN || !name_valid(rest))
			return send_error(c, 404, "not found");
		return api_host(s, c, rest);
	}
	if (rest == url + 10 && strchr(rest, '/') == NULL && strlen(rest) <= JOBID_MAX_LEN &&
	    jobid_valid(rest))
		return api_job(s, c, rest);
	if ((slash = strchr(rest, '/')) == NULL || (n = (size_t)(slash - rest)) == 0 ||
	    n >= sizeof(name))
		return send_error(c, 404, "not found");
	memcpy(name, rest, n);
	name[n] = '\0';
	if (rest == url + 10 && strcmp(slash, "/results") == 0 && jobid_valid(name))
		return api_job_results(s, c, name, p);
	if (rest == url + 10 && jobid_valid(name))
		return api_job_tail(s, c, name, slash);
	if (rest == url + 11 && strcmp(slash, "/history") == 0 && name_valid(name))
		return api_host_history(s, c, name, p);
	return send_error(c, 404, "not found");
}

/* ---- server-sent events ---------------------------------------------------------------- */

struct sse {
	struct server *s;
	uint64_t next;		/* the ring sequence number to send next */
	char *cur;
	size_t len, off;
};

static ssize_t
sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *x = cls;
	struct server *s = x->s;
	struct timespec ts;
	size_t n;

	(void)pos;
	if (x->off >= x->len) {
		free(x->cur);
		x->cur = NULL;
		x->off = x->len = 0;
		pthread_mutex_lock(&s->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += SSE_KEEPALIVE_S;
		while (!s->http_stopping && x->next == s->sse_head)
			if (pthread_cond_timedwait(&s->sse_cond, &s->lock, &ts) == ETIMEDOUT)
				break;
		if (s->http_stopping) {
			pthread_mutex_unlock(&s->lock);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		if (x->next == s->sse_head)
			x->cur = strdup(": keep-alive\n\n");
		else if (s->sse_head - x->next > SSE_RING) {
			/* Fell behind the ring: the page reloads its state. */
			x->cur = strdup("event: resync\ndata: {}\n\n");
			x->next = s->sse_head;
		} else
			x->cur = strdup(s->sse[x->next++ % SSE_RING]);
		pthread_mutex_unlock(&s->lock);
		if (x->cur == NULL)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		x->len = strlen(x->cur);
	}
	n = x->len - x->off < max ? x->len - x->off : max;
	memcpy(buf, x->cur + x->off, n);
	x->off += n;
	return (ssize_t)n;
}

static void
sse_free(void *cls)
{
	struct sse *x = cls;

	free(x->cur);
	free(x);
}

static enum MHD_Result
api_events(struct server *s, struct MHD_Connection *c)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	struct sse *x;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return MHD_NO;
	x->s = s;
	x->cur = strdup("event: hello\ndata: {}\n\n");
	x->len = x->cur ? strlen(x->cur) : 0;
	pthread_mutex_lock(&s->lock);
	x->next = s->sse_head;
	pthread_mutex_unlock(&s->lock);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8192, sse_read, x, sse_free);
	if (r == NULL) {
		sse_free(x);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	add_headers(r);
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- static files and /metrics ------------------------------------------------------------ */

static enum MHD_Result
send_static(struct server *s, struct MHD_Connection *c, const char *url)
{
	const struct www_file *f;
	char path[CONF_PATH_MAX + 64];
	uint8_t *data;
	size_t len;
	char *copy;

	if (strcmp(url, "/") == 0)
		url = "/index.html";
	if ((f = www_find(url + 1)) == NULL)
		return send_error(c, 404, "not found");
	/* [server] www: the same names, read from a folder (development). */
	if (s->cfg.www[0] != '\0') {
		snprintf(path, sizeof(path), "%s/%s", s->cfg.www, f->name);
		if (read_file(path, 16 << 20, &data, &len, NULL) != MU_OK)
			return send_error(c, 404, "not found");
		return send_buf(c, 200, f->type, (char *)data, len);
	}
	if ((copy = malloc(f->len ? f->len : 1)) == NULL)
		return MHD_NO;
	memcpy(copy, f->data, f->len);
	return send_buf(c, 200, f->type, copy, f->len);
}

static enum MHD_Result
send_metrics(struct server *s, struct MHD_Connection *c)
{
	char *buf;
	size_t len;

	if (metrics_render(s, &buf, &len) != MU_OK)
		return MHD_NO;
	return send_buf(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
}

/* ---- basic auth ---------------------------------------------------------------------------- */

static int
auth_load(const char *path, struct http_auth **out, struct mu_err *err)
{
	struct http_auth *a;
	char line[512], *colon, *end;
	FILE *f;
	int ln = 0;

	if ((f = fopen(path, "re")) == NULL)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		fclose(f);
		return mu_errf(err, MU_ENOMEM, "out of memory");
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		ln++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		colon = strchr(line, ':');
		end = colon ? colon + 1 : NULL;
		if (colon == NULL || colon == line || (size_t)(colon - line) >= sizeof(a->u[0].user) ||
		    end[0] != '$' || strlen(end) >= sizeof(a->u[0].hash) || a->n >= AUTH_MAX_USERS) {
			fclose(f);
			free(a);
			return mu_errf(err, MU_EINVAL, "%s:%d: want user:$id$...crypt hash "
			    "(at most %d users)", path, ln, AUTH_MAX_USERS);
		}
		*colon = '\0';
		memcpy(a->u[a->n].user, line, strlen(line) + 1);	/* lengths checked above */
		memcpy(a->u[a->n].hash, end, strlen(end) + 1);
		a->n++;
	}
	fclose(f);
	if (a->n == 0) {
		free(a);
		return mu_errf(err, MU_EINVAL, "%s: no users", path);
	}
	*out = a;
	return MU_OK;
}

int
http_auth_check(const char *path, struct mu_err *err)
{
	struct http_auth *a;
	int rc;

	if ((rc = auth_load(path, &a, err)) == MU_OK)
		free(a);
	return rc;
}

/*
 * One crypt_r() per request whatever the user name: for a name not in the
 * file, against the first user's hash (same method and cost) with the
 * answer thrown away, so the time taken does not tell which names exist.
 * Every name is compared, none skipped early.
 */
static bool
auth_ok(const struct http_auth *a, struct MHD_Connection *c)
{
	struct crypt_data *cd;
	char *user, *pass = NULL;
	const char *h, *hash;
	bool ok = false;
	size_t i, found = a->n;

	if ((user = MHD_basic_auth_get_username_password(c, &pass)) == NULL)
		return false;
	if (pass != NULL && strlen(pass) <= 256 && (cd = calloc(1, sizeof(*cd))) != NULL) {
		for (i = 0; i < a->n; i++)
			if (found == a->n && strcmp(a->u[i].user, user) == 0)
				found = i;
		hash = a->u[found < a->n ? found : 0].hash;
		h = crypt_r(pass, hash, cd);
		ok = found < a->n && h != NULL && h[0] != '*' && strlen(h) == strlen(hash) &&
		    CRYPTO_memcmp(h, hash, strlen(h)) == 0;
		free(cd);
	}
	MHD_free(user);
	MHD_free(pass);
	return ok;
}

static enum MHD_Result
send_auth_fail(struct MHD_Connection *c)
{
	static const char msg[] = "{\"error\":\"authentication required\"}";
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg,
	    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	add_headers(r);
	ret = MHD_queue_basic_auth_fail_response(c, REALM, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- the Host header ---------------------------------------------------------------------------- */

/*
 * Without auth, only a Host naming us by address: a web page the operator
 * visits cannot then read the API through a name of its own that it
 * points at us (DNS rebinding: the browser sends that name as Host).
 * Accepted, each with or without ":port" (the configured port): the
 * listen address (IPv6 in brackets); for a wildcard listen (0.0.0.0, ::)
 * any address literal, since we answer on all of ours and no rebinding
 * name is one; for a loopback or wildcard listen also "localhost".  No
 * name other than localhost is accepted: serving by name takes auth_file.
 */
static bool
addr_loopback(int af, const void *a)
{
	const uint8_t *b = a;

	if (af == AF_INET)
		return b[0] == 127;
	return memcmp(a, &in6addr_loopback, sizeof(struct in6_addr)) == 0;
}

static bool
addr_any(int af, const void *a)
{
	static const uint8_t zero[16];

	return memcmp(a, zero, af == AF_INET ? 4 : 16) == 0;
}

/* Split "host[:port]" / "[v6][:port]" into host (out, NUL-ended) and
 * check the port; false if malformed or another port. */
static bool
host_split(const char *v, int port, char *out, size_t outsz, bool *bracketed)
{
	const char *end, *colon;
	char want[8];
	size_t n;

	*bracketed = v[0] == '[';
	if (*bracketed) {
		if ((end = strchr(v, ']')) == NULL)
			return false;
		v++;
		colon = end[1] == '\0' ? NULL : end + 1;
		if (colon != NULL && colon[0] != ':')
			return false;
	} else {
		colon = strchr(v, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return false;		/* IPv6 without brackets */
		end = colon != NULL ? colon : v + strlen(v);
	}
	n = (size_t)(end - v);
	if (n == 0 || n >= outsz)
		return false;
	memcpy(out, v, n);
	out[n] = '\0';
	snprintf(want, sizeof(want), "%d", port);
	return colon == NULL || strcmp(colon + 1, want) == 0;
}

static bool
host_ok(const struct server *s, struct MHD_Connection *c)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	uint8_t listen[16], got[16];
	int laf, gaf;
	char host[256];
	bool br;

	if (v == NULL || !host_split(v, s->cfg.port, host, sizeof(host), &br))
		return false;
	laf = inet_pton(AF_INET, s->cfg.listen, listen) == 1 ? AF_INET : AF_INET6;
	if (laf == AF_INET6 && inet_pton(AF_INET6, s->cfg.listen, listen) != 1)
		return false;
	if (strcasecmp(host, "localhost") == 0 && !br)
		return addr_loopback(laf, listen) || addr_any(laf, listen);
	/* An address literal: IPv4 bare, IPv6 only in brackets. */
	if (!br && inet_pton(AF_INET, host, got) == 1)
		gaf = AF_INET;
	else if (br && inet_pton(AF_INET6, host, got) == 1)
		gaf = AF_INET6;
	else
		return false;
	if (addr_any(laf, listen))
		return true;
	if (gaf == laf && memcmp(got, listen, gaf == AF_INET ? 4 : 16) == 0)
		return true;
	/* The loopback forms of a loopback listen address. */
	return addr_loopback(laf, listen) && addr_loopback(gaf, got);
}

/* ---- routing ---------------------------------------------------------------------------------- */

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **ctx)
{
	struct server *s = cls;
	struct page p;
	const char *bad;

	(void)version;
	(void)upload;
	/* Refused on the first call, with the headers: a body is never read. */
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_error(c, 405, "read-only");
	if (s->auth == NULL && !host_ok(s, c))
		return send_error(c, 421, "Host is not this server's address; serving by "
		    "name needs [server] auth_file");
	if (*ctx == NULL) {	/* first call: headers only */
		*ctx = (void *)1;
		return MHD_YES;
	}
	if (*upload_size != 0)
		return send_error(c, 413, "no request bodies");
	if (s->auth != NULL && !auth_ok(s->auth, c))
		return send_auth_fail(c);
	if (strcmp(url, "/metrics") == 0)
		return send_metrics(s, c);
	if (strncmp(url, "/api/", 5) != 0)
		return send_static(s, c, url);
	if ((bad = page_parse(c, &p)) != NULL)
		return send_error(c, 400, bad);
	if (strcmp(url, "/api/events") == 0)
		return api_events(s, c);
	if (strcmp(url, "/api/hosts") == 0)
		return api_hosts(s, c, &p);
	if (strcmp(url, "/api/jobs") == 0)
		return api_jobs(s, c, &p);
	if (strcmp(url, "/api/results") == 0)
		return api_results(s, c, &p);
	if (strcmp(url, "/api/releases") == 0)
		return api_releases(s, c);
	return api_path(s, c, url, &p);
}

static int
listen_addr(const struct server *s, struct sockaddr_storage *ss, unsigned int *flags,
    struct mu_err *err)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s->cfg.listen, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)s->cfg.port);
		return MU_OK;
	}
	if (inet_pton(AF_INET6, s->cfg.listen, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)s->cfg.port);
		*flags |= MHD_USE_IPv6;
		return MU_OK;
	}
	return mu_errf(err, MU_EINVAL, "[server] listen: bad address %s", s->cfg.listen);
}

int
http_open(struct server *s, struct mu_err *err)
{
	struct sockaddr_storage ss;
	unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_ERROR_LOG;
	int rc;

	if (s->cfg.auth_file[0] != '\0' && (rc = auth_load(s->cfg.auth_file, &s->auth, err)) != MU_OK)
		return rc;
	if ((rc = listen_addr(s, &ss, &flags, err)) != MU_OK)
		return rc;
	s->httpd = MHD_start_daemon(flags, (uint16_t)s->cfg.port, NULL, NULL, handle, s,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)128,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)64,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
	    /* Idle connections give their thread back; event streams send a
	     * keep-alive every SSE_KEEPALIVE_S, well inside this. */
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)(4 * SSE_KEEPALIVE_S),
	    MHD_OPTION_END);
	if (s->httpd == NULL)
		return mu_errf(err, MU_EIO, "cannot listen on %s port %d: %s", s->cfg.listen,
		    s->cfg.port, strerror(errno));
	return MU_OK;
}

void
http_close(struct server *s)
{
	size_t i;

	pthread_mutex_lock(&s->lock);
	s->http_stopping = true;
	pthread_cond_broadcast(&s->sse_cond);
	pthread_mutex_unlock(&s->lock);
	if (s->httpd != NULL)
		MHD_stop_daemon(s->httpd);
	s->httpd = NULL;
	for (i = 0; i < SSE_RING; i++) {
		free(s->sse[i]);
		s->sse[i] = NULL;
	}
	free(s->auth);
	s->auth = NULL;
}
