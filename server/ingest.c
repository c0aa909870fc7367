/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ingest.c - what muster-server takes from the broker: results and live
 * events through a shared subscription ($share/muster-server/R/results/#,
 * so several servers split them and each is archived by one), and every
 * host's status (a plain subscription: each server needs the whole
 * fleet's presence for its page and metrics; the archive drops the second
 * copy by key).
 *
 * The session is persistent (clean start off, a session expiry): while a
 * server is down the broker keeps its share of results, and a restart
 * reads them.  Paho acknowledges a message when the loop takes it from
 * the bus queue, so on SIGTERM the batch is written before exit; when
 * the archive cannot keep up (or fails), the loop stops taking messages,
 * Paho stops acknowledging and the broker holds the rest (back-pressure,
 * not loss).
 *
 * Every message is checked as the CLI checks it (ctl/verify.c, design.md §3):
 * the certificate chains to the CA ([broker] ca), its CN is the topic's
 * host and the body's, the topic's job is the body's.  What fails is
 * counted as forged and never stored.  Certificates arrive with statuses;
 * good ones are archived, and loaded back at start, so that a result
 * delivered before any status after a restart can still be checked.  A
 * result whose certificate is still unknown waits (bounded, HOLD_MS) for
 * a status that brings it.
 *
 * Ownership: struct server owns the bus, the verifier, the batch (rows)
 * and the held messages; ingest_close() frees them after a last flush.
 */
#include "server.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "mpjson.h"
#include "sign.h"

#define BATCH_MAX	2000		/* rows per transaction */
#define BATCH_HARD	20000		/* stop taking messages above this */
#define HOLD_MAX	4096
#define HOLD_MS		30000
#define RETRY_WRITE_MS	1000
#define SHARE_GROUP	"muster-server"
#define BUS_EVENTS	200000		/* ~ 200 MB of 1 KB results at most */

struct held {
	char *topic;
	uint8_t *payload;
	size_t len;
	uint64_t since;		/* monotonic ms */
};

static void on_bus_fd(struct loop *l, int fd, short revents, void *arg);

/* ---- topics --------------------------------------------------------------- */

/* ---- rows ------------------------------------------------------------------- */

static char *
dup_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

static int
batch_add(struct server *s, struct row *r)
{
	struct row **nb;
	size_t cap;

	if (s->nbatch == s->batch_cap) {
		cap = s->batch_cap ? s->batch_cap * 2 : 256;
		if ((nb = realloc(s->batch, cap * sizeof(*nb))) == NULL) {
			row_free(r);
			return MU_ENOMEM;
		}
		s->batch = nb;
		s->batch_cap = cap;
	}
	s->batch[s->nbatch++] = r;
	pthread_mutex_lock(&s->lock);
	if (s->npending++ == 0)
		s->pending_since = now_wall_ms();
	pthread_mutex_unlock(&s->lock);
	return MU_OK;
}

int
ingest_queue(struct server *s, struct row *r)
{
	return batch_add(s, r);
}

static char *
data_json(const msgpack_object *o)
{
	json_t *j;
	char *out;

	if (o == NULL || (j = mpjson_from_msgpack(o)) == NULL)
		return NULL;
	out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}

static int
result_row(struct server *s, const struct result *res)
{
	struct row *r;
	char *summary = wire_str_dup(res->summary), *reason = wire_str_dup(res->reason);
	char *output = wire_str_dup(res->output);

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		free(summary);
		free(reason);
		free(output);
		return MU_ENOMEM;
	}
	r->kind = ROW_RESULT;
	r->summary = summary;
	r->reason = reason;
	r->output = output;
	r->job = strdup(res->job);
	r->host = strdup(res->host);
	r->kind_s = strdup(job_kind_name(res->kind));
	r->status = strdup(result_status_name(res->status));
	r->module = dup_or_null(res->module);
	r->module_version = dup_or_null(res->module_version);
	r->agent_version = dup_or_null(res->agent_version);
	r->data = data_json(res->data);
	r->has_exit_code = res->has_exit_code;
	r->exit_code = res->exit_code;
	r->has_signal = res->has_signal;
	r->signal_ = res->signal;
	r->started_at = (int64_t)res->started_at;
	r->finished_at = (int64_t)res->finished_at;
	if (r->job == NULL || r->host == NULL || r->kind_s == NULL || r->status == NULL) {
		row_free(r);
		return MU_ENOMEM;
	}
	return batch_add(s, r);
}

static const char *
event_name(enum event_kind k)
{
	static const char *const names[] = { "accepted", "started", "output", "progress" };

	return (unsigned)k < 4 ? names[k] : "unknown";
}

static int
event_row(struct server *s, const struct event *ev)
{
	struct row *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return MU_ENOMEM;
	r->kind = ROW_EVENT;
	r->job = strdup(ev->job);
	r->host = strdup(ev->host);
	r->status = strdup(event_name(ev->event));
	r->output = wire_str_dup(ev->text);
	r->seq = (int64_t)ev->seq;
	r->at = (int64_t)ev->at;
	r->has_exit_code = ev->has_pct;
	r->exit_code = ev->pct;
	if (r->job == NULL || r->host == NULL || r->status == NULL) {
		row_free(r);
		return MU_ENOMEM;
	}
	return batch_add(s, r);
}

static char *
groups_json(const struct status *st)
{
	json_t *a = json_array();
	char *out;
	size_t i;

	if (a == NULL)
		return NULL;
	for (i = 0; i < st->ngroups; i++)
		json_array_append_new(a, json_string(st->groups[i]));
	out = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return out;
}

static int
status_rows(struct server *s, const struct status *st, const char *fpr)
{
	struct row *r, *c;
	char reason[64];

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return MU_ENOMEM;
	snprintf(reason, sizeof(reason), "%.*s", (int)st->reason.len,
	    st->reason.ptr ? st->reason.ptr : "");
	r->kind = ROW_PRESENCE;
	r->host = strdup(st->host);
	r->status = strdup(st->online ? "online" : "offline");
	r->at = (int64_t)st->at;
	r->reason = dup_or_null(reason);
	r->agent_version = dup_or_null(st->version);
	r->module = dup_or_null(st->channel);
	r->extra = groups_json(st);
	if (r->host == NULL || r->status == NULL) {
		row_free(r);
		return MU_ENOMEM;
	}
	if (batch_add(s, r) != MU_OK)
		return MU_ENOMEM;	/* batch_add() freed it */
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return MU_ENOMEM;
	c->kind = ROW_CERT;
	c->job = strdup(fpr);
	c->data = hex_alloc(st->cert_der.ptr, st->cert_der.len);
	if (c->job == NULL || c->data == NULL) {
		row_free(c);
		return MU_ENOMEM;
	}
	return batch_add(s, c);
}

/* ---- live state ------------------------------------------------------------- */

/* The page hears of a host at once (hosts are few and change rarely). */
static void
status_live(struct server *s, const struct status *st)
{
	struct host_state h;
	json_t *j;
	char *txt;

	memset(&h, 0, sizeof(h));
	snprintf(h.name, sizeof(h.name), "%s", st->host);
	h.online = st->online;
	snprintf(h.version, sizeof(h.version), "%s", st->version);
	snprintf(h.channel, sizeof(h.channel), "%s", st->channel);
	snprintf(h.reason, sizeof(h.reason), "%.*s", (int)st->reason.len,
	    st->reason.ptr ? st->reason.ptr : "");
	h.at = st->at;
	pthread_mutex_lock(&s->lock);
	s->met.statuses++;
	hosts_upsert(s, &h);
	pthread_mutex_unlock(&s->lock);
	j = json_pack("{s:s, s:s, s:s, s:s, s:I}", "host", h.name,
	    "state", h.online ? "online" : "offline", "version", h.version,
	    "channel", h.channel, "at", (json_int_t)h.at);
	if (j != NULL && (txt = json_dumps(j, JSON_COMPACT)) != NULL) {
		sse_push(s, "host", txt);
		free(txt);
	}
	json_decref(j);
}

/* ---- messages --------------------------------------------------------------- */

static void
count(struct server *s, uint64_t *v, enum agentmsg_kind t)
{
	pthread_mutex_lock(&s->lock);
	v[t]++;
	pthread_mutex_unlock(&s->lock);
}

static void
forged(struct server *s, enum agentmsg_kind t, const char *topic, const char *why)
{
	count(s, s->met.forged, t);
	log_warnx("forged message on %s: %s (not stored)", topic, why);
}

static int hold(struct server *s, const char *topic, const uint8_t *p, size_t len);
static void schedule_flush(struct server *s, uint64_t ms);

static void
take_result(struct server *s, const char *topic, const char *job, const char *host,
    const uint8_t *p, size_t len, bool may_hold)
{
	struct result r;
	struct mu_err err;
	int rc;

	rc = agentmsg_result(s->hv, job, host, p, len, &r, &err);
	if (rc == MU_ENOENT && may_hold && hold(s, topic, p, len) == MU_OK) {
		schedule_flush(s, 1000);	/* expires what no status vouches for */
		return;
	}
	if (rc != MU_OK) {
		forged(s, AGENTMSG_RESULT, topic, err.msg);
		return;
	}
	if (result_row(s, &r) != MU_OK)
		log_err("result %s/%s: out of memory", job, host);
	wire_doc_free(&r.doc);
}

static void
take_event(struct server *s, const char *topic, const char *job, const char *host,
    const uint8_t *p, size_t len)
{
	struct event ev;
	struct mu_err err;

	if (agentmsg_event(s->hv, job, host, p, len, &ev, &err) != MU_OK) {
		forged(s, AGENTMSG_EVENT, topic, err.msg);
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->met.events++;
	pthread_mutex_unlock(&s->lock);
	if (event_row(s, &ev) != MU_OK)
		log_err("event %s/%s: out of memory", job, host);
	wire_doc_free(&ev.doc);
}

static void retry_held(struct server *s);

static void
take_status(struct server *s, const char *topic, const char *host, const uint8_t *p,
    size_t len)
{
	char fpr[SHA256_HEX_LEN + 1];
	struct status st;
	struct mu_err err;

	if (agentmsg_status(s->hv, host, p, len, &st, fpr, &err) != MU_OK) {
		forged(s, AGENTMSG_STATUS, topic, err.msg);
		return;
	}
	if (status_rows(s, &st, fpr) != MU_OK)
		log_err("status of %s: out of memory", host);
	status_live(s, &st);
	if (hostinfo_status(s, &st) != MU_OK)
		log_err("status of %s: out of memory", host);
	halt_host_status(s, &st);
	wire_doc_free(&st.doc);
	if (s->nheld > 0)
		retry_held(s);
}

/* Statuses and facts are retained (design.md §3); nothing else is. */
static bool
is_retained_topic(const struct server *s, const char *topic)
{
	char job[JOBID_MAX_LEN + 1], host[NAME_MAX_LEN + 1];
	enum agentmsg_kind t;

	if (agentmsg_facts_topic(topic, s->root, host) == MU_OK)
		return true;
	return agentmsg_topic(topic, s->root, &t, job, host) == MU_OK &&
	    t == AGENTMSG_STATUS;
}

/* A facts row for the archive (newer "at" only, archive.c). */
static int
facts_row(struct server *s, const struct facts_msg *m)
{
	struct row *r;
	json_t *j;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return MU_ENOMEM;
	r->kind = ROW_FACTS;
	r->host = strdup(m->host);
	r->at = (int64_t)m->at;
	if ((j = facts_to_json(&m->facts)) != NULL)
		r->data = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (r->host == NULL || r->data == NULL) {
		row_free(r);
		return MU_ENOMEM;
	}
	return batch_add(s, r);
}

/*
 * Facts are checked as statuses are (agentmsg.c): a bad envelope,
 * certificate, signature or host name is refused and counted; one named
 * by a certificate no status has brought yet waits like a result.
 */
static void
take_facts(struct server *s, const char *topic, const char *host, const uint8_t *p,
    size_t len, bool may_hold)
{
	struct agent_envelope env;
	struct facts_msg m;
	struct mu_err err, why;
	int rc;

	rc = agentmsg_facts(s->hv, host, p, len, &m, &err);
	if (rc == MU_ENOENT && may_hold && hold(s, topic, p, len) == MU_OK) {
		schedule_flush(s, 1000);
		return;
	}
	if (rc != MU_OK) {
		bool malformed = agent_envelope_decode(p, len, &env, &why) != MU_OK;

		if (!malformed)
			wire_doc_free(&env.doc);
		pthread_mutex_lock(&s->lock);
		s->facts_refused[malformed ? 1 : 0]++;
		pthread_mutex_unlock(&s->lock);
		log_warnx("%s facts on %s: %s (not stored)", malformed ? "malformed" : "forged",
		    topic, err.msg);
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->facts_total++;
	pthread_mutex_unlock(&s->lock);
	if (facts_row(s, &m) != MU_OK || hostinfo_facts(s, &m) != MU_OK)
		log_err("facts of %s: out of memory", host);
	facts_free(&m.facts);
}

static void
take(struct server *s, const char *topic, const uint8_t *p, size_t len, bool may_hold)
{
	char job[JOBID_MAX_LEN + 1], host[NAME_MAX_LEN + 1];
	enum agentmsg_kind t = AGENTMSG_RESULT;

	if (agentmsg_facts_topic(topic, s->root, host) == MU_OK) {
		if (len > 0)		/* else a cleared retained message */
			take_facts(s, topic, host, p, len, may_hold);
		return;
	}
	if (jobs_topic(s, topic, job)) {
		jobs_take(s, topic, job, p, len);
		return;
	}
	if (agentmsg_topic(topic, s->root, &t, job, host) != MU_OK) {
		count(s, s->met.rejected, t);
		log_debug("ignored message on %s", topic);
		return;
	}
	if (len == 0 && t == AGENTMSG_STATUS)
		return;		/* a cleared retained status */
	switch (t) {
	case AGENTMSG_RESULT:
		take_result(s, topic, job, host, p, len, may_hold);
		break;
	case AGENTMSG_EVENT:
		take_event(s, topic, job, host, p, len);
		break;
	case AGENTMSG_STATUS:
		take_status(s, topic, host, p, len);
		break;
	}
}

/* ---- results waiting for a certificate ------------------------------------- */

static int
hold(struct server *s, const char *topic, const uint8_t *p, size_t len)
{
	struct held *h;

	if (s->nheld >= HOLD_MAX)
		return MU_ENOMEM;
	if (s->held == NULL && (s->held = calloc(HOLD_MAX, sizeof(*s->held))) == NULL)
		return MU_ENOMEM;
	h = &s->held[s->nheld];
	h->topic = strdup(topic);
	h->payload = malloc(len ? len : 1);
	if (h->topic == NULL || h->payload == NULL) {
		free(h->topic);
		free(h->payload);
		return MU_ENOMEM;
	}
	memcpy(h->payload, p, len);
	h->len = len;
	h->since = now_mono_ms();
	s->nheld++;
	return MU_OK;
}

/* Try the held results again; those still unknown stay until HOLD_MS,
 * then count as forged.  Works on a detached list, so take() may hold
 * again without touching the one being walked. */
static void
held_pass(struct server *s, bool expire_only)
{
	struct held *list = s->held;
	size_t i, n = s->nheld;
	uint64_t now = now_mono_ms();

	if (n == 0)
		return;
	s->held = NULL;
	s->nheld = 0;
	for (i = 0; i < n; i++) {
		bool old = now - list[i].since >= HOLD_MS;

		if (expire_only && !old)
			hold(s, list[i].topic, list[i].payload, list[i].len);
		else
			take(s, list[i].topic, list[i].payload, list[i].len, !old);
		free(list[i].topic);
		free(list[i].payload);
	}
	free(list);
}

static void
retry_held(struct server *s)
{
	held_pass(s, false);
}

/* ---- the batch -------------------------------------------------------------- */

static void flush_fired(struct loop *l, uint64_t id, void *arg);

static void
schedule_flush(struct server *s, uint64_t ms)
{
	if (s->flush_timer == 0)
		s->flush_timer = loop_add_timer(s->loop, ms, flush_fired, s);
}

static void
flush_fired(struct loop *l, uint64_t id, void *arg)
{
	struct server *s = arg;

	(void)l;
	(void)id;
	s->flush_timer = 0;
	ingest_flush(s);
	if (s->nheld > 0) {
		held_pass(s, true);
		schedule_flush(s, 1000);
	}
}

/* The page's share of a written batch, new results only:
 * [[job, host, status, module or kind, received_at], ...]. */
static void
push_results(struct server *s, struct row **rows, size_t n)
{
	json_t *a = json_array();
	char *txt;
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < n; i++)
		if (rows[i]->kind == ROW_RESULT && rows[i]->stored)
			json_array_append_new(a, json_pack("[s,s,s,s?,I]", rows[i]->job,
			    rows[i]->host, rows[i]->status,
			    rows[i]->module ? rows[i]->module : rows[i]->kind_s,
			    (json_int_t)rows[i]->received_at));
	if (json_array_size(a) > 0 && (txt = json_dumps(a, JSON_COMPACT)) != NULL) {
		sse_push(s, "results", txt);
		free(txt);
	}
	json_decref(a);
}

/* Write up to BATCH_MAX rows per transaction; on failure keep them and
 * retry (the bus stays paused above BATCH_HARD). */
void
ingest_flush(struct server *s)
{
	struct mu_err err;
	uint64_t t0, stamp;
	size_t n, stored, i, nres;
	int rc;

	while (s->nbatch > 0) {
		n = s->nbatch < BATCH_MAX ? s->nbatch : BATCH_MAX;
		stamp = now_wall_ms();
		for (i = nres = 0; i < n; i++) {
			s->batch[i]->received_at = stamp;
			nres += s->batch[i]->kind == ROW_RESULT;
		}
		t0 = now_mono_ms();
		rc = archive_write(&s->arc, s->batch, n, &stored, &err);
		pthread_mutex_lock(&s->lock);
		s->met.last_batch_ms = now_mono_ms() - t0;
		if (rc != MU_OK)
			s->met.archive_errors++;
		else {
			for (i = 0; i < n; i++)
				if (s->batch[i]->kind == ROW_RESULT && s->batch[i]->stored)
					metrics_result(s, s->batch[i]->status, s->batch[i]->module,
					    s->batch[i]->started_at, s->batch[i]->finished_at);
			s->met.archived += stored;
			s->met.duplicates += nres > stored ? nres - stored : 0;
			s->npending -= n;
			s->pending_since = s->npending ? now_wall_ms() : 0;
		}
		pthread_mutex_unlock(&s->lock);
		if (rc != MU_OK) {
			log_err("archive: %s (%zu rows kept, retrying)", err.msg, s->nbatch);
			schedule_flush(s, RETRY_WRITE_MS);
			return;
		}
		push_results(s, s->batch, n);
		jobs_stored(s, s->batch, n);
		for (i = 0; i < n; i++)
			row_free(s->batch[i]);
		s->nbatch -= n;
		memmove(s->batch, s->batch + n, s->nbatch * sizeof(*s->batch));
	}
	/* Taking messages again after a pause. */
	if (s->bus != NULL && !s->stopping)
		loop_add_fd(s->loop, bus_fd(s->bus), POLLIN, on_bus_fd, s);
}

/* ---- the session -------------------------------------------------------------- */

static void
reconnect_fired(struct loop *l, uint64_t id, void *arg)
{
	struct server *s = arg;
	struct mu_err err;

	(void)l;
	(void)id;
	s->reconnect_timer = 0;
	if (s->connecting || s->stopping || bus_connected(s->bus))
		return;
	if (bus_connect(s->bus, &err) != MU_OK) {
		log_warnx("connect: %s", err.msg);
		s->reconnect_timer = loop_add_timer(s->loop, s->retry_ms, reconnect_fired, s);
		return;
	}
	s->connecting = true;
}

static void
schedule_reconnect(struct server *s)
{
	if (s->reconnect_timer == 0 && !s->stopping)
		s->reconnect_timer = loop_add_timer(s->loop, s->retry_ms, reconnect_fired, s);
	s->retry_ms = s->retry_ms * 2 > s->cfg.broker.retry_max_ms ?
	    s->cfg.broker.retry_max_ms : s->retry_ms * 2;
}

static void
subscribe_all(struct server *s)
{
	char results[TOPIC_MAX], status[TOPIC_MAX], facts[TOPIC_MAX];
	char *topics[3] = { results, status, facts };
	struct mu_err err;

	/* MQTT 3.1.1 has no shared subscriptions (RabbitMQ 3.10: one server
	 * per fleet, docs/brokers.md), and a broker may refuse "$share/..." as
	 * a topic outside the ACL. */
	if (s->cfg.broker.protocol == 4)
		snprintf(results, sizeof(results), "%s/v1/results/#", s->root);
	else
		snprintf(results, sizeof(results), "$share/%s/%s/v1/results/#", SHARE_GROUP,
		    s->root);
	snprintf(status, sizeof(status), "%s/v1/hosts/+/status", s->root);
	/* Every server keeps every host's facts, as with statuses. */
	snprintf(facts, sizeof(facts), "%s/v1/hosts/+/facts", s->root);
	if (bus_subscribe(s->bus, topics, 3, 1, &err) != MU_OK)
		log_err("subscribe: %s", err.msg);
	/* Job announces: every server reads all of them (jobs.c). */
	snprintf(results, sizeof(results), "%s/v1/jobs/+", s->root);
	if (jobs_on(s) && bus_subscribe(s->bus, topics, 1, 1, &err) != MU_OK)
		log_err("subscribe: %s", err.msg);
}

static void
on_bus_event(struct server *s, struct bus_event *ev)
{
	switch (ev->type) {
	case BUS_CONNECTED:
		s->connecting = false;
		s->retry_ms = s->cfg.broker.retry_min_ms;
		bus_tune_sockets();
		log_notice("connected to the broker (session %s)",
		    ev->session_present ? "resumed" : "new");
		subscribe_all(s);
		break;
	case BUS_CONNECT_FAILED:
		s->connecting = false;
		log_warnx("cannot connect: %s", ev->reason);
		schedule_reconnect(s);
		break;
	case BUS_LOST:
		log_warnx("connection lost: %s", ev->reason);
		schedule_reconnect(s);
		break;
	case BUS_MESSAGE:
		if (ev->retained && !is_retained_topic(s, ev->topic)) {
			/* A result is never retained (design.md §3): stale or planted. */
			log_debug("ignored a retained message on %s", ev->topic);
			break;
		}
		take(s, ev->topic, ev->payload, ev->len, true);
		break;
	case BUS_SUBSCRIBE_FAILED:
		log_err("subscription refused: %s", ev->reason);
		break;
	default:
		break;
	}
}

static void
on_bus_fd(struct loop *l, int fd, short revents, void *arg)
{
	struct server *s = arg;
	struct bus_event *ev;

	(void)revents;
	while (s->nbatch < BATCH_HARD && (ev = bus_next(s->bus)) != NULL) {
		on_bus_event(s, ev);
		bus_event_free(ev);
	}
	if (s->nbatch >= BATCH_MAX)
		ingest_flush(s);
	if (s->nbatch >= BATCH_HARD)
		loop_del_fd(l, fd);	/* back-pressure until a write succeeds */
	if (s->nbatch > 0)
		schedule_flush(s, s->cfg.batch_ms);
}

static int
cert_row(void *arg, const struct arc_val *cols, int ncols)
{
	struct server *s = arg;
	uint8_t der[WIRE_MAX_CERT];
	struct mu_err err;
	const char *cn, *hex;
	size_t i, n;

	if (ncols < 1 || cols[0].null || (hex = cols[0].s) == NULL)
		return MU_OK;
	n = strlen(hex) / 2;
	if (n == 0 || n > sizeof(der))
		return MU_OK;
	for (i = 0; i < n; i++) {
		unsigned int b;

		if (sscanf(hex + 2 * i, "%2x", &b) != 1)
			return MU_OK;
		der[i] = (uint8_t)b;
	}
	/* Checked against the CA again: the database is not trusted more
	 * than the broker. */
	if (hostsig_cert_add(s->hv, der, n, &cn, &err) != MU_OK)
		log_info("archived certificate not taken: %s", err.msg);
	return MU_OK;
}

int
ingest_open(struct server *s, struct mu_err *err)
{
	struct bus_opts o = { 0 };
	struct hostsig_stats st;
	char id[NAME_MAX_LEN + 32];
	int rc;

	if (s->cfg.broker.ca[0] == '\0')
		return mu_errf(err, MU_EINVAL, "no CA to check hosts against: set [broker] ca");
	if ((rc = hostsig_verifier_new(s->cfg.broker.ca, &s->hv, err)) != MU_OK)
		return rc;
	if ((rc = archive_certs(&s->arc, cert_row, s, err)) != MU_OK)
		return rc;
	hostsig_verifier_stats(s->hv, &st);
	log_info("%zu host certificates from the archive", st.certs);
	if ((rc = facts_load(s, err)) != MU_OK)
		return rc;
	/* One id per server name: a restart resumes its own session. */
	snprintf(id, sizeof(id), "muster-server-%s", s->cfg.name);
	o.broker = &s->cfg.broker;
	o.client_id = id;
	o.clean_start = false;
	o.session_expiry_s = (uint32_t)(s->cfg.session_expiry_ms / 1000);
	o.retain_as_published = true;	/* so a retained result can be told apart */
	/* A broadcast's results arrive faster than signatures are checked:
	 * hold a whole burst here rather than refuse (see bus.h). */
	o.max_events = BUS_EVENTS;
	if ((rc = bus_new(&s->bus, &o, err)) != MU_OK)
		return rc;
	s->retry_ms = s->cfg.broker.retry_min_ms;
	loop_add_fd(s->loop, bus_fd(s->bus), POLLIN, on_bus_fd, s);
	reconnect_fired(s->loop, 0, s);
	return MU_OK;
}

/* Take what the bus already holds (Paho acknowledged it), write it, and
 * leave with an orderly disconnect: the session keeps the rest. */
void
ingest_close(struct server *s)
{
	struct bus_event *ev;
	size_t i;

	s->stopping = true;
	if (s->bus != NULL) {
		/* Disconnect first: nothing new is acknowledged after it. */
		loop_del_fd(s->loop, bus_fd(s->bus));
		if (bus_connected(s->bus))
			bus_disconnect(s->bus, 1000);
		while ((ev = bus_next(s->bus)) != NULL) {
			if (ev->type == BUS_MESSAGE)
				take(s, ev->topic, ev->payload, ev->len, false);
			bus_event_free(ev);
		}
	}
	ingest_flush(s);
	for (i = 0; i < s->nbatch; i++)
		row_free(s->batch[i]);
	if (s->nbatch > 0)
		log_err("archive: %zu rows not written at exit", s->nbatch);
	free(s->batch);
	s->batch = NULL;
	s->nbatch = 0;
	for (i = 0; i < s->nheld; i++) {
		free(s->held[i].topic);
		free(s->held[i].payload);
	}
	free(s->held);
	s->held = NULL;
	s->nheld = 0;
	bus_free(s->bus);
	s->bus = NULL;
	hostsig_verifier_free(s->hv);
	s->hv = NULL;
}
