/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.c - the live state the HTTP threads read (hosts, counters, the
 * SSE ring) and the Prometheus text format of /metrics.
 *
 * Everything here is under server.lock: the loop writes, HTTP threads
 * read.  Label values are names, versions and statuses the wire decoders
 * already validated; they are escaped anyway (label_put), so a change of
 * those rules cannot break the format.  The number of (status, module)
 * series is capped (MET_MAX_SERIES): beyond it results are counted under
 * module="other", so a flood of module names cannot grow memory.
 *
 * Ownership: the host table, the series and the SSE messages belong to
 * struct server and are freed by metrics_free() / http_close().
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double dur_bounds[MET_DUR_BUCKETS] = {
	0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

/* ---- hosts ------------------------------------------------------------------ */

static int
host_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct host_state *)elem)->name);
}

struct host_state *
hosts_find(struct server *s, const char *name)
{
	if (s->nhosts == 0)
		return NULL;	/* bsearch() wants a non-NULL base */
	return bsearch(name, s->hosts, s->nhosts, sizeof(*s->hosts), host_cmp);
}

/* Insert or replace; an older status (by "at") never overwrites a newer. */
int
hosts_upsert(struct server *s, const struct host_state *h)
{
	struct host_state *e, *nv;
	size_t lo = 0, hi = s->nhosts, mid, cap;

	if ((e = hosts_find(s, h->name)) != NULL) {
		if (h->at >= e->at)
			*e = *h;
		return MU_OK;
	}
	if (s->nhosts == s->hosts_cap) {
		cap = s->hosts_cap ? s->hosts_cap * 2 : 64;
		if ((nv = realloc(s->hosts, cap * sizeof(*nv))) == NULL)
			return MU_ENOMEM;
		s->hosts = nv;
		s->hosts_cap = cap;
	}
	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (strcmp(s->hosts[mid].name, h->name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(s->hosts + lo + 1, s->hosts + lo, (s->nhosts - lo) * sizeof(*s->hosts));
	s->hosts[lo] = *h;
	s->nhosts++;
	return MU_OK;
}

/* ---- counters ---------------------------------------------------------------- */

static struct result_series *
series_for(struct metrics *m, const char *status, const char *module)
{
	struct result_series *nv;
	size_t i;

	for (i = 0; i < m->nseries; i++)
		if (strcmp(m->series[i].status, status) == 0 &&
		    strcmp(m->series[i].module, module) == 0)
			return &m->series[i];
	if (m->nseries >= MET_MAX_SERIES) {
		m->series_overflow++;
		if (strcmp(module, "other") == 0)
			return NULL;
		return series_for(m, status, "other");
	}
	if ((nv = realloc(m->series, (m->nseries + 1) * sizeof(*nv))) == NULL)
		return NULL;
	m->series = nv;
	nv = &m->series[m->nseries++];
	memset(nv, 0, sizeof(*nv));
	snprintf(nv->status, sizeof(nv->status), "%s", status);
	snprintf(nv->module, sizeof(nv->module), "%s", module);
	return nv;
}

void
metrics_result(struct server *s, const char *status, const char *module,
    int64_t started_at, int64_t finished_at)
{
	struct metrics *m = &s->met;
	struct result_series *e;
	double d;
	size_t i;

	/* Reserve one series for the overflow bucket. */
	if (m->nseries + 1 >= MET_MAX_SERIES)
		e = series_for(m, status, "other");
	else
		e = series_for(m, status, module ? module : "");
	if (e != NULL)
		e->n++;
	if (finished_at < started_at || started_at <= 0)
		return;
	d = (double)(finished_at - started_at) / 1000.0;
	for (i = 0; i < MET_DUR_BUCKETS; i++)
		if (d <= dur_bounds[i])
			m->dur[i]++;
	m->dur_count++;
	m->dur_sum += d;
}

void
metrics_free(struct metrics *m)
{
	free(m->series);
	m->series = NULL;
	m->nseries = 0;
}

/* ---- SSE ring ----------------------------------------------------------------- */

/* "event: E\ndata: JSON\n\n"; the oldest message falls off the ring, and a
 * stream that fell that far behind resynchronises (http.c). */
void
sse_push(struct server *s, const char *event, const char *json)
{
	char *msg;
	size_t slot;

	if (asprintf(&msg, "event: %s\ndata: %s\n\n", event, json) < 0)
		return;
	pthread_mutex_lock(&s->lock);
	slot = s->sse_head % SSE_RING;
	free(s->sse[slot]);
	s->sse[slot] = msg;
	s->sse_head++;
	pthread_cond_broadcast(&s->sse_cond);
	pthread_mutex_unlock(&s->lock);
}

/* ---- the text format ---------------------------------------------------------- */

static void
label_put(FILE *f, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void
head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct host_group {
	bool online;
	const char *version, *channel;
	uint64_t n;
};

static void
render_hosts(struct server *s, FILE *f)
{
	struct host_group *g = NULL, *ng;
	size_t i, j, ng_n = 0;

	head(f, "muster_hosts", "gauge",
	    "Hosts by state, agent version and channel (retained status).");
	for (i = 0; i < s->nhosts; i++) {
		const struct host_state *h = &s->hosts[i];

		for (j = 0; j < ng_n; j++)
			if (g[j].online == h->online && strcmp(g[j].version, h->version) == 0 &&
			    strcmp(g[j].channel, h->channel) == 0)
				break;
		if (j == ng_n) {
			if ((ng = realloc(g, (ng_n + 1) * sizeof(*g))) == NULL)
				break;
			g = ng;
			g[ng_n++] = (struct host_group){ h->online, h->version, h->channel, 0 };
		}
		g[j].n++;
	}
	for (j = 0; j < ng_n; j++) {
		fprintf(f, "muster_hosts{state=\"%s\",version=\"",
		    g[j].online ? "online" : "offline");
		label_put(f, g[j].version);
		fputs("\",channel=\"", f);
		label_put(f, g[j].channel);
		fprintf(f, "\"} %llu\n", (unsigned long long)g[j].n);
	}
	free(g);
}

static void
render_results(struct server *s, FILE *f)
{
	const struct metrics *m = &s->met;
	size_t i;

	head(f, "muster_results_total", "counter",
	    "Verified results received, by status and module (\"\" for built-in kinds).");
	for (i = 0; i < m->nseries; i++) {
		fprintf(f, "muster_results_total{status=\"%s\",module=\"", m->series[i].status);
		label_put(f, m->series[i].module);
		fprintf(f, "\"} %llu\n", (unsigned long long)m->series[i].n);
	}
	head(f, "muster_job_duration_seconds", "histogram",
	    "Run time of jobs on hosts (finished_at - started_at of results).");
	for (i = 0; i < MET_DUR_BUCKETS; i++)
		fprintf(f, "muster_job_duration_seconds_bucket{le=\"%g\"} %llu\n",
		    dur_bounds[i], (unsigned long long)m->dur[i]);
	fprintf(f, "muster_job_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
	    (unsigned long long)m->dur_count);
	fprintf(f, "muster_job_duration_seconds_sum %.6f\n", m->dur_sum);
	fprintf(f, "muster_job_duration_seconds_count %llu\n",
	    (unsigned long long)m->dur_count);
}

static void
render_messages(struct server *s, FILE *f)
{
	static const char *const types[3] = { "result", "event", "status" };
	const struct metrics *m = &s->met;
	int t;

	head(f, "muster_messages_forged_total", "counter",
	    "Agent messages whose host signature, certificate or names did not check out "
	    "(not stored).");
	for (t = 0; t < 3; t++)
		fprintf(f, "muster_messages_forged_total{type=\"%s\"} %llu\n", types[t],
		    (unsigned long long)m->forged[t]);
	head(f, "muster_messages_rejected_total", "counter",
	    "Messages on topics that are not muster agent topics (ignored).");
	for (t = 0; t < 3; t++)
		fprintf(f, "muster_messages_rejected_total{type=\"%s\"} %llu\n", types[t],
		    (unsigned long long)m->rejected[t]);
	head(f, "muster_events_total", "counter", "Verified live events received.");
	fprintf(f, "muster_events_total %llu\n", (unsigned long long)m->events);
	head(f, "muster_status_messages_total", "counter", "Verified status messages received.");
	fprintf(f, "muster_status_messages_total %llu\n", (unsigned long long)m->statuses);
	head(f, "muster_facts_total", "counter", "Verified facts messages received.");
	fprintf(f, "muster_facts_total %llu\n", (unsigned long long)s->facts_total);
	head(f, "muster_facts_refused_total", "counter",
	    "Facts messages refused: a host signature, certificate or name that did not "
	    "check out (forged), or not an agent envelope (malformed).");
	fprintf(f, "muster_facts_refused_total{reason=\"forged\"} %llu\n",
	    (unsigned long long)s->facts_refused[0]);
	fprintf(f, "muster_facts_refused_total{reason=\"malformed\"} %llu\n",
	    (unsigned long long)s->facts_refused[1]);
}

static void
render_archive(struct server *s, FILE *f)
{
	const struct metrics *m = &s->met;
	uint64_t now = now_wall_ms();
	double lag = s->pending_since && now > s->pending_since ?
	    (double)(now - s->pending_since) / 1000.0 : 0;

	head(f, "muster_archive_results_total", "counter", "Result rows written by this server.");
	fprintf(f, "muster_archive_results_total %llu\n", (unsigned long long)m->archived);
	head(f, "muster_archive_duplicates_total", "counter",
	    "Results already in the archive (re-deliveries), not stored again.");
	fprintf(f, "muster_archive_duplicates_total %llu\n", (unsigned long long)m->duplicates);
	head(f, "muster_archive_errors_total", "counter", "Failed batch writes (retried).");
	fprintf(f, "muster_archive_errors_total %llu\n", (unsigned long long)m->archive_errors);
	head(f, "muster_archive_pruned_rows_total", "counter", "Rows removed by retention.");
	fprintf(f, "muster_archive_pruned_rows_total %llu\n", (unsigned long long)m->pruned);
	head(f, "muster_archive_size_bytes", "gauge", "Space the archive's data takes.");
	fprintf(f, "muster_archive_size_bytes %llu\n", (unsigned long long)m->archive_bytes);
	head(f, "muster_archive_pending_rows", "gauge", "Verified rows not yet written.");
	fprintf(f, "muster_archive_pending_rows %zu\n", s->npending);
	head(f, "muster_archive_lag_seconds", "gauge",
	    "Age of the oldest verified row not yet written (0 when none).");
	fprintf(f, "muster_archive_lag_seconds %.3f\n", lag);
	head(f, "muster_archive_last_batch_seconds", "gauge", "Duration of the last batch write.");
	fprintf(f, "muster_archive_last_batch_seconds %.3f\n", (double)m->last_batch_ms / 1000.0);
}

int
metrics_render(struct server *s, char **out, size_t *len)
{
	FILE *f;

	if ((f = open_memstream(out, len)) == NULL)
		return MU_ENOMEM;
	pthread_mutex_lock(&s->lock);
	head(f, "muster_server_info", "gauge", "This muster-server.");
	fputs("muster_server_info{version=\"" SERVER_VERSION "\",name=\"", f);
	label_put(f, s->cfg.name);
	fputs("\"} 1\n", f);
	render_hosts(s, f);
	render_results(s, f);
	render_messages(s, f);
	render_archive(s, f);
	jobs_metrics(s, f);
	halt_metrics(s, f);
	pthread_mutex_unlock(&s->lock);
	if (fclose(f) != 0) {
		free(*out);
		*out = NULL;
		return MU_ENOMEM;
	}
	return MU_OK;
}
