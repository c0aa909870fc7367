/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sendcore.c - one job's life for the CLI and libmuster-client
 * (sendcore.h): who should answer (with -F: the target hosts whose
 * verified facts match), the job and its announce, publishing, and
 * collecting the results, each job and host once.
 */
#include "sendcore.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

int
send_add_target(struct ctl *c, struct send *s, enum job_target_kind kind, const char *name)
{
	struct job_target *t;

	if (s->ntargets == MAX_TARGETS)
		return ctl_say(c, "too many targets"), -1;
	if (kind != TARGET_ALL && !name_valid(name))
		return ctl_say(c, "'%s' is not a valid name: %s", name,
		    NAME_RULE), -1;
	t = &s->targets[s->ntargets++];
	t->kind = kind;
	snprintf(t->name, sizeof(t->name), "%s", kind == TARGET_ALL ? "" : name);
	return 0;
}

int
send_targets_done(struct ctl *c, struct send *s, const char *options)
{
	/* Filters alone: every host, narrowed by them. */
	if (s->ntargets == 0 && s->filter.n && send_add_target(c, s, TARGET_ALL, NULL) != 0)
		return -1;
	if (s->ntargets == 0)
		return ctl_say(c, "no target: give %s", options), -1;
	return ctl_filter_done(c, &s->filter) != 0 ? -1 : 0;
}

uint64_t
send_run_wait(const struct send *s)
{
	return (s->timeout_ms ? s->timeout_ms : AGENT_TIMEOUT_MS) + WAIT_MARGIN_MS;
}


/* ---- who should answer ------------------------------------------------ */

bool
expected_has(const struct send *s, const char *host)
{
	size_t i;

	for (i = 0; i < s->nexpected; i++)
		if (strcmp(s->expected[i], host) == 0)
			return true;
	return false;
}

/* The index of host in expected, or -1. */
static long
expected_index(const struct send *s, const char *host)
{
	size_t i;

	for (i = 0; i < s->nexpected; i++)
		if (strcmp(s->expected[i], host) == 0)
			return (long)i;
	return -1;
}

/* targets: the bits of the targets whose job expects it (for their
 * announces), added to what it had. */
static void
expected_add(struct send *s, const char *host, uint8_t state, uint64_t targets)
{
	long k = expected_index(s, host);

	if (k >= 0) {
		s->tmask[k] |= targets;
		return;
	}
	if (s->nexpected == MAX_EXPECTED)
		return;
	s->hstate[s->nexpected] = state;
	s->tmask[s->nexpected] = targets;
	snprintf(s->expected[s->nexpected++], NAME_MAX_LEN + 1, "%s", host);
}

static bool
in_group(const struct status *st, const char *group)
{
	size_t i;

	for (i = 0; i < st->ngroups; i++)
		if (strcmp(st->groups[i], group) == 0)
			return true;
	return false;
}

/* The targets the host is one of (a named one, or in a group, or all):
 * bit t for target t; 0 if none. */
static uint64_t
in_targets(const struct send *s, const struct status *st)
{
	uint64_t m = 0;
	int t;

	for (t = 0; t < s->ntargets; t++)
		if (s->targets[t].kind == TARGET_ALL ||
		    (s->targets[t].kind == TARGET_HOST &&
		    strcmp(s->targets[t].name, st->host) == 0) ||
		    (s->targets[t].kind == TARGET_GROUP && in_group(st, s->targets[t].name)))
			m |= UINT64_C(1) << t;
	return m;
}

/* A named host with no status: its facts cannot be checked either. */
static size_t
named_without_status(const struct send *s, const struct host_list *hosts)
{
	size_t i, n = 0;
	int t, u;

	for (t = 0; t < s->ntargets; t++) {
		if (s->targets[t].kind != TARGET_HOST)
			continue;
		for (u = 0; u < t; u++)
			if (s->targets[u].kind == TARGET_HOST &&
			    strcmp(s->targets[u].name, s->targets[t].name) == 0)
				break;
		for (i = 0; u == t && i < hosts->n; i++)
			if (strcmp(hosts->v[i].st.host, s->targets[t].name) == 0)
				break;
		n += u == t && i == hosts->n;
	}
	return n;
}

/*
 * With -F: the target hosts whose verified facts match are expected,
 * online or not (a matching host that is down is missing, not
 * forgotten); those whose facts do not match stay silent and are not
 * expected; those without facts are not expected either, and counted for
 * the report.  The statuses come first: their certificates check the
 * facts, and their groups say who is in a group.
 */
static int
expected_from_facts(struct ctl *c, struct send *s)
{
	struct host_list hosts;
	struct facts_list fl;
	const struct facts *f;
	size_t i;
	int rc;

	if ((rc = hosts_collect(c, &hosts)) != 0)
		return rc;
	s->presence = true;
	if ((rc = facts_collect(c, NULL, &fl)) != 0) {
		hosts_free(&hosts);
		return rc;
	}
	s->nnofacts = named_without_status(s, &hosts);
	for (i = 0; i < hosts.n; i++) {
		const struct status *st = &hosts.v[i].st;

		if (!in_targets(s, st))
			continue;
		if ((f = facts_find(&fl, st->host)) == NULL)
			s->nnofacts++;
		else if (!facts_match(f, &s->filter.f))
			s->nnomatch++;
		else {
			s->nmatch++;
			expected_add(s, st->host, st->online ? HS_ONLINE : 0,
			    in_targets(s, st));
		}
	}
	facts_list_free(&fl);
	hosts_free(&hosts);
	s->expect_count = s->nexpected;
	return 0;
}

static bool
srv_has(const struct srv_hosts *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strcmp(h->v[i].name, name) == 0)
			return true;
	return false;
}

/* One target through the server: as expected_from_facts() with -F (two
 * lists: the target's hosts, and those the filter matches), else as the
 * presence below (online hosts of a group or all; a named host always). */
static int
server_target(struct ctl *c, struct send *s, int ti, struct mu_err *err)
{
	const struct job_target *t = &s->targets[ti];
	struct srv_hosts all, match = { 0 };
	uint64_t bit = UINT64_C(1) << ti;
	size_t i;

	if (srv_hosts_get(c, t, NULL, &all, err) != 0)
		return -1;
	if (s->filter.n && srv_hosts_get(c, t, &s->filter, &match, err) != 0) {
		srv_hosts_free(&all);
		return -1;
	}
	for (i = 0; i < all.n; i++) {
		const struct srv_host *h = &all.v[i];

		if (!s->filter.n) {
			if (h->online || t->kind == TARGET_HOST)
				expected_add(s, h->name, h->online ? HS_ONLINE : 0, bit);
		} else if (srv_has(&match, h->name)) {
			s->nmatch++;
			expected_add(s, h->name, h->online ? HS_ONLINE : 0, bit);
		} else if (h->has_facts)
			s->nnomatch++;
		else
			s->nnofacts++;
	}
	if (t->kind == TARGET_HOST && all.n == 0) {
		if (s->filter.n)
			s->nnofacts++;		/* unknown: its facts cannot be checked */
		else
			expected_add(s, t->name, 0, bit);
	}
	srv_hosts_free(&match);
	srv_hosts_free(&all);
	return 0;
}

/*
 * With [server] url: the expected hosts as muster-server knows them
 * (expect.c), for -F and for groups and all, where the retained messages
 * would otherwise say.  -1 (reason in err) when the server fails: the
 * caller starts again from the retained messages.
 */
static int
expected_from_server(struct ctl *c, struct send *s, struct mu_err *err)
{
	bool need = s->filter.n > 0;
	int t;

	for (t = 0; t < s->ntargets; t++)
		need |= s->targets[t].kind != TARGET_HOST;
	if (!need)
		return 1;
	for (t = 0; t < s->ntargets; t++)
		if (server_target(c, s, t, err) != 0) {
			s->nexpected = 0;
			s->nmatch = s->nnomatch = s->nnofacts = 0;
			return -1;
		}
	/* The certificates came with the list: no statuses needed. */
	s->presence = true;
	s->expect_count = s->nexpected;
	return 0;
}

static int
expected_from_presence(struct ctl *c, struct send *s)
{
	struct host_list hosts = { 0 };
	struct mu_err err;
	bool need = false;
	size_t i;
	int t, rc;

	if (s->expect < 0 && c->cfg.server_url[0] != '\0') {
		if ((rc = expected_from_server(c, s, &err)) == 0)
			return 0;
		if (rc < 0)
			ctl_say(c, "muster-server: %s; the expected hosts come "
			    "from the retained messages", err.msg);
	}
	if (s->filter.n && s->expect < 0)
		return expected_from_facts(c, s);
	for (t = 0; t < s->ntargets; t++)
		if (s->targets[t].kind == TARGET_HOST)
			expected_add(s, s->targets[t].name, 0, UINT64_C(1) << t);
		else
			need = true;
	s->expect_count = s->nexpected;
	if (!need)
		return 0;
	if (s->expect >= 0) {
		s->expect_count += (size_t)s->expect;
		return 0;
	}
	if ((rc = hosts_collect(c, &hosts)) != 0)
		return rc;
	s->presence = true;
	for (i = 0; i < hosts.n; i++) {
		const struct status *st = &hosts.v[i].st;
		long k;

		/* A named host (added above) is known online from here too. */
		if (st->online && (k = expected_index(s, st->host)) >= 0)
			s->hstate[k] |= HS_ONLINE;
		for (t = 0; st->online && t < s->ntargets; t++)
			if (s->targets[t].kind == TARGET_ALL ||
			    (s->targets[t].kind == TARGET_GROUP && in_group(st, s->targets[t].name)))
				expected_add(s, st->host, HS_ONLINE, UINT64_C(1) << t);
	}
	hosts_free(&hosts);
	s->expect_count = s->nexpected;
	return 0;
}

/* ---- jobs ------------------------------------------------------------- */

static void
make_id(char *buf, size_t len)
{
	uint8_t r[4] = { 0 };
	time_t now = time(NULL);
	struct tm tm;

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		r[0] = (uint8_t)getpid();
	gmtime_r(&now, &tm);
	snprintf(buf, len, "%04d%02d%02dT%02d%02d%02d-%02x%02x%02x%02x", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, r[0], r[1], r[2], r[3]);
}

static int
job_build(struct ctl *c, struct send *s, int t, msgpack_sbuffer *env, uint64_t *issued_at,
    uint64_t *not_after)
{
	const char *user = getenv("USER");
	msgpack_unpacked up;
	msgpack_sbuffer body;
	struct mu_err err;
	struct job j;
	int rc;

	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "%s", s->ids[t]);
	j.kind = s->kind;
	j.target = s->targets[t];
	j.issued_at = now_wall_ms();
	j.not_after = j.issued_at + s->ttl_ms;
	*issued_at = j.issued_at;
	*not_after = j.not_after;
	if (user && strlen(user) < 256)
		j.operator_ = (struct wire_str){ user, strlen(user) };
	/* The fleet this job is for: agents of another topic root refuse it
	 * even when they trust the same operator key (design.md §3). */
	aud_format(j.aud, sizeof(j.aud), c->root);
	msgpack_unpacked_init(&up);
	if (s->kind == JOB_RUN) {
		snprintf(j.module, sizeof(j.module), "%s", s->module);
		if (s->pin[0])
			snprintf(j.module_sha256, sizeof(j.module_sha256), "%s", s->pin);
		if (s->have_args && msgpack_unpack_next(&up, s->args.data, s->args.size, NULL) ==
		    MSGPACK_UNPACK_SUCCESS)
			j.args = &up.data;
		j.timeout_ms = s->timeout_ms;
		j.stream = s->stream;
	}
	if (s->kind == JOB_CANCEL)
		snprintf(j.cancel, sizeof(j.cancel), "%s", s->cancel);
	j.filter = ctl_filter_obj(&s->filter);
	msgpack_sbuffer_init(&body);
	rc = job_encode(&j, &body, &err);
	if (rc == MU_OK)
		rc = envelope_sign(c->key, body.data, body.size, env, &err);
	if (rc != MU_OK)
		ctl_say(c, "%s", err.msg);
	msgpack_sbuffer_destroy(&body);
	msgpack_unpacked_destroy(&up);
	return rc == MU_OK ? 0 : EXIT_USAGE;
}

/* ---- the announce (design.md §3) ------------------------------------- */

static int
name_order(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * The signed announce of job t, for muster-server: the job's kind, module,
 * args, target, filter and window, and the hosts expected to answer it
 * (those of s->expected that target t covers), sorted.
 */
static int
announce_build(struct ctl *c, struct send *s, int t, uint64_t issued_at,
    uint64_t not_after, msgpack_sbuffer *env, struct mu_err *err)
{
	const char *user = getenv("USER");
	char (*names)[NAME_MAX_LEN + 1];
	msgpack_unpacked up;
	msgpack_sbuffer body;
	struct announce a;
	size_t i, n = 0;
	int rc;

	if ((names = calloc(s->nexpected + 1, sizeof(*names))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	for (i = 0; i < s->nexpected; i++)
		if (s->tmask[i] & (UINT64_C(1) << t))
			memcpy(names[n++], s->expected[i], sizeof(names[0]));
	qsort(names, n, sizeof(*names), name_order);
	memset(&a, 0, sizeof(a));
	snprintf(a.id, sizeof(a.id), "%s", s->ids[t]);
	aud_format(a.aud, sizeof(a.aud), c->root);
	a.issued_at = issued_at;
	a.not_after = not_after;
	if (user && strlen(user) < 256)
		a.operator_ = (struct wire_str){ user, strlen(user) };
	a.target = s->targets[t];
	a.filter = ctl_filter_obj(&s->filter);
	a.job_kind = s->kind;
	msgpack_unpacked_init(&up);
	if (s->kind == JOB_RUN) {
		snprintf(a.module, sizeof(a.module), "%s", s->module);
		if (s->have_args && msgpack_unpack_next(&up, s->args.data, s->args.size, NULL) ==
		    MSGPACK_UNPACK_SUCCESS)
			a.args = &up.data;
		a.timeout_ms = s->timeout_ms;
		a.stream = s->stream;
	}
	msgpack_sbuffer_init(&body);
	rc = announce_encode(&a, names, n, &body, err);
	if (rc == MU_OK)
		rc = envelope_sign_max(c->key, body.data, body.size, WIRE_MAX_ANNOUNCE, env, err);
	msgpack_sbuffer_destroy(&body);
	msgpack_unpacked_destroy(&up);
	free(names);
	return rc;
}

/* Said once per command: the job goes out all the same (an older broker
 * ACL without muster/v1/jobs/+ refuses it), only the server is in the
 * dark about whom to expect. */
static void
announce_failed(struct ctl *c, struct send *s, const char *why)
{
	if (s->ann_warned)
		return;
	s->ann_warned = true;
	ctl_say(c, "the job announce did not go out (%s); the job does, "
	    "but muster-server will not know which hosts should answer", why);
}

/* Publish job t's announce before the job (QoS 1, not retained, the
 * job's expiry).  Never fails the command. */
static void
announce_publish(struct ctl *c, struct send *s, int t, uint64_t issued_at,
    uint64_t not_after, uint32_t expiry_s)
{
	char topic[TOPIC_MAX];
	msgpack_sbuffer env;
	struct mu_err err;
	int token = 0;

	if (s->kind == JOB_CANCEL)
		return;
	msgpack_sbuffer_init(&env);
	if (topic_build(topic, sizeof(topic), c->root, TOPIC_JOB_ANNOUNCE, s->ids[t],
	    NULL) != MU_OK)
		announce_failed(c, s, "bad topic");
	else if (announce_build(c, s, t, issued_at, not_after, &env, &err) != MU_OK)
		announce_failed(c, s, err.msg);
	else if (bus_publish(c->bus, topic, env.data, env.size, 1, false, expiry_s, &token,
	    &err) != MU_OK)
		announce_failed(c, s, err.msg);
	else
		s->ann_tokens[s->nann++] = token;
	msgpack_sbuffer_destroy(&env);
}

/* An acknowledgement of an announce (true): a refusal is said, not
 * counted against the jobs. */
static bool
announce_ack(struct ctl *c, struct send *s, const struct bus_event *ev)
{
	int i;

	if (ev->type != BUS_PUBLISHED && ev->type != BUS_PUBLISH_FAILED)
		return false;
	for (i = 0; i < s->nann; i++)
		if (s->ann_tokens[i] == ev->token) {
			if (ev->type == BUS_PUBLISH_FAILED)
				announce_failed(c, s, ev->reason[0] ? ev->reason :
				    "the broker refused it");
			s->ann_tokens[i] = s->ann_tokens[--s->nann];
			return true;
		}
	return false;
}

/* ---- collecting results ----------------------------------------------- */

static bool
answered(const struct send *s, const char *job, const char *host)
{
	size_t i;

	for (i = 0; i < s->nanswers; i++)
		if (strcmp(s->answers[i].r.job, job) == 0 && strcmp(s->answers[i].r.host, host) == 0)
			return true;
	return false;
}

bool
host_answered(const struct send *s, const char *host)
{
	size_t i;

	for (i = 0; i < s->nanswers; i++)
		if (strcmp(s->answers[i].r.host, host) == 0)
			return true;
	return false;
}

bool
send_has_job(const struct send *s, const char *job)
{
	int t;

	for (t = 0; t < s->ntargets; t++)
		if (strcmp(s->ids[t], job) == 0)
			return true;
	return false;
}

/* Keep a verified result as the answer of its (job, host), once. */
static void
keep_result(struct ctl *c, struct send *s, struct result *r, uint8_t *raw)
{
	struct answer *v;

	if (!send_has_job(s, r->job) || answered(s, r->job, r->host) ||
	    (v = reallocarray(s->answers, s->nanswers + 1, sizeof(*v))) == NULL) {
		/* A duplicate (QoS 1 may repeat) or not ours: ignore. */
		wire_doc_free(&r->doc);
		free(raw);
		return;
	}
	s->answers = v;
	s->answers[s->nanswers].r = *r;
	s->answers[s->nanswers++].raw = raw;
	if (c->on_result)
		c->on_result(c, &s->answers[s->nanswers - 1].r);
}

static void
hold_result(struct ctl *c, struct send *s, struct bus_event *ev)
{
	struct held *v;
	char *t;

	if (s->nheld == MAX_HELD || (t = strdup(ev->topic)) == NULL ||
	    (v = reallocarray(s->held, s->nheld + 1, sizeof(*v))) == NULL) {
		forged_note(c, ev->topic, "signed by an unknown certificate");
		return;
	}
	s->held = v;
	s->held[s->nheld++] = (struct held){ t, ev->payload, ev->len };
	ev->payload = NULL;
}

static void
take_result(struct ctl *c, struct send *s, struct bus_event *ev)
{
	struct mu_err err;
	struct result r;
	int rc;

	/* A retained result is an old message or a planted one, never an
	 * answer to the job we just sent. */
	if (ev->retained)
		return;
	rc = verify_result(c, ev->topic, ev->payload, ev->len, &r, &err);
	if (rc == MU_ENOENT) {
		hold_result(c, s, ev);
	} else if (rc != MU_OK) {
		forged_note(c, ev->topic, err.msg);
	} else {
		keep_result(c, s, &r, ev->payload);
		ev->payload = NULL;	/* the answer owns it now (or freed it) */
	}
}

/* Results held for a certificate: try again (a status came), or, at the
 * end, count what is still unknown as forged. */
static void
retry_held(struct ctl *c, struct send *s, bool last)
{
	struct mu_err err;
	struct result r;
	size_t i, n = 0;
	int rc;

	for (i = 0; i < s->nheld; i++) {
		struct held *h = &s->held[i];

		rc = verify_result(c, h->topic, h->raw, h->len, &r, &err);
		if (rc == MU_ENOENT && !last) {
			s->held[n++] = *h;
			continue;
		}
		if (rc == MU_OK) {
			keep_result(c, s, &r, h->raw);
			h->raw = NULL;
		} else
			forged_note(c, h->topic, err.msg);
		free(h->topic);
		free(h->raw);
	}
	s->nheld = n;
}

/* A status on the way: its certificate may be what a held result needs. */
static void
take_status(struct ctl *c, struct send *s, struct bus_event *ev)
{
	struct mu_err err;
	struct status st;

	if (ev->len == 0)
		return;
	long i;

	if (verify_status(c, ev->topic, ev->payload, ev->len, &st, &err) != MU_OK) {
		forged_note(c, ev->topic, err.msg);
		return;
	}
	/* Presence of a named host, for the report of who did not answer. */
	if ((i = expected_index(s, st.host)) >= 0)
		s->hstate[i] = (uint8_t)(st.online ? s->hstate[i] | HS_ONLINE :
		    s->hstate[i] & ~HS_ONLINE);
	wire_doc_free(&st.doc);
	if (s->nheld)
		retry_held(c, s, false);
}

static bool
topic_ends(const char *topic, const char *suffix)
{
	size_t tl = strlen(topic), sl = strlen(suffix);

	return tl > sl && strcmp(topic + tl - sl, suffix) == 0;
}

static void
take_event(struct ctl *c, struct send *s, struct bus_event *ev)
{
	struct mu_err err;
	struct event e;
	long i;
	int rc;

	if (ev->retained)
		return;
	/* Events are best-effort live output: one whose certificate is not
	 * known yet is not worth holding. */
	if ((rc = verify_event(c, ev->topic, ev->payload, ev->len, &e, &err)) != MU_OK) {
		forged_note(c, ev->topic, rc == MU_ENOENT ? "signed by an unknown certificate" :
		    err.msg);
		return;
	}
	/* Any event of our job means the host took it: "still running" if it
	 * has not answered when we stop waiting. */
	if (send_has_job(s, e.job) && (i = expected_index(s, e.host)) >= 0)
		s->hstate[i] |= HS_ACCEPTED;
	if (c->on_event)
		c->on_event(c, &e);
	wire_doc_free(&e.doc);
}

bool
send_done(const struct send *s)
{
	size_t i;

	for (i = 0; i < s->nexpected; i++)
		if (!host_answered(s, s->expected[i]))
			return false;
	return s->nanswers >= s->expect_count;
}

bool
send_event(struct ctl *c, struct bus_event *ev, void *arg)
{
	struct send *s = arg;

	if (ev->type == BUS_LOST) {
		/* Said by the caller, which knows its terminal. */
		snprintf(s->lost_reason, sizeof(s->lost_reason), "%s",
		    ev->reason[0] ? ev->reason : "?");
		s->lost = true;
		return true;
	}
	if (announce_ack(c, s, ev))
		return false;
	if (ev->type == BUS_PUBLISHED)
		s->unacked--;
	if (ev->type == BUS_PUBLISH_FAILED)
		s->pub_failed = true;
	/* Waiting for the broker to have the jobs (muster_job_send()): the
	 * last PUBACK ends it, not the next message after it. */
	if (ev->type == BUS_PUBLISHED || ev->type == BUS_PUBLISH_FAILED)
		return s->stop_acked && s->unacked <= 0;
	if (ev->type != BUS_MESSAGE)
		return false;
	if (topic_ends(ev->topic, "/events"))
		take_event(c, s, ev);
	else if (topic_ends(ev->topic, "/status"))
		take_status(c, s, ev);
	else if (topic_ends(ev->topic, "/facts"))
		;	/* -F: the expected set is fixed when the job goes out */
	else
		take_result(c, s, ev);
	return (s->expect_count > 0 && send_done(s)) ||
	    (s->stop_at > 0 && s->nanswers >= s->stop_at) ||
	    (s->stop_acked && s->unacked <= 0);
}

static bool
on_subacks(struct ctl *c, struct bus_event *ev, void *arg)
{
	struct send *s = arg;

	if (ev->type == BUS_SUBSCRIBED || ev->type == BUS_SUBSCRIBE_FAILED)
		s->subacks--;
	/* Retained statuses follow their SUBACK: keep their certificates. */
	if (ev->type == BUS_MESSAGE && topic_ends(ev->topic, "/status"))
		take_status(c, s, ev);
	return s->subacks <= 0;
}

void
count_status(const struct send *s, int counts[RS_INTERRUPTED + 1])
{
	size_t i;

	memset(counts, 0, sizeof(int) * (RS_INTERRUPTED + 1));
	for (i = 0; i < s->nanswers; i++)
		counts[s->answers[i].r.status]++;
}

static int
subscribe_results(struct ctl *c, struct send *s)
{
	char topic[TOPIC_MAX + 16];
	int t, rc;

	/* Results name their certificate; statuses carry it.  Without the
	 * presence already collected, ask for the statuses of who may answer. */
	for (t = 0; !s->presence && t < s->ntargets; t++) {
		rc = EXIT_USAGE;
		if (topic_filter(topic, sizeof(topic), c->root, TOPIC_HOST_STATUS,
		    s->targets[t].kind == TARGET_HOST ? s->targets[t].name : "+", NULL) ||
		    (rc = ctl_subscribe(c, topic)) != 0)
			return rc;
		s->subacks++;
		if (s->targets[t].kind != TARGET_HOST)
			s->presence = true;
	}
	for (t = 0; t < s->ntargets; t++) {
		rc = EXIT_USAGE;
		if (topic_filter(topic, sizeof(topic), c->root, TOPIC_RESULT, s->ids[t], "+") ||
		    (rc = ctl_subscribe(c, topic)) != 0)
			return rc;
		s->subacks++;
		if (s->stream) {
			snprintf(topic, sizeof(topic), "%s/v1/results/%s/+/events", c->root, s->ids[t]);
			if ((rc = ctl_subscribe(c, topic)) != 0)
				return rc;
			s->subacks++;
		}
	}
	ctl_pump(c, now_mono_ms() + 10000, on_subacks, s, NULL);
	return 0;
}

static bool
on_puback(struct ctl *c, struct bus_event *ev, void *arg)
{
	struct send *s = arg;

	(void)c;
	if (announce_ack(c, s, ev))
		return false;
	if (ev->type == BUS_PUBLISHED)
		s->unacked--;
	else if (ev->type == BUS_PUBLISH_FAILED || ev->type == BUS_LOST)
		s->pub_failed = true;
	return s->unacked <= 0 || s->pub_failed;
}

static int
publish_jobs(struct ctl *c, struct send *s)
{
	char topic[TOPIC_MAX];
	msgpack_sbuffer env;
	struct mu_err err;
	uint64_t issued_at, not_after, now;
	uint32_t expiry;
	int t, rc = 0;

	for (t = 0; rc == 0 && t < s->ntargets; t++) {
		msgpack_sbuffer_init(&env);
		rc = job_build(c, s, t, &env, &issued_at, &not_after);
		if (rc == 0 && topic_for_target(topic, sizeof(topic), c->root, &s->targets[t]))
			rc = EXIT_USAGE;
		/* Expiry = the job's remaining lifetime, rounded up (0 would
		 * mean "never"): a broker drops what a host would refuse
		 * anyway. */
		now = now_wall_ms();
		expiry = not_after > now ? (uint32_t)((not_after - now + 999) / 1000) : 1;
		/* The announce first: Paho sends in order, so the server
		 * hears whom to expect before any host can answer. */
		if (rc == 0)
			announce_publish(c, s, t, issued_at, not_after, expiry);
		if (rc == 0 && bus_publish(c->bus, topic, env.data, env.size, 1, false,
		    expiry, NULL, &err) != MU_OK) {
			ctl_say(c, "%s", err.msg);
			rc = EXIT_USAGE;
		}
		if (rc == 0)
			s->unacked++;
		msgpack_sbuffer_destroy(&env);
	}
	return rc;
}

void
send_free(struct send *s)
{
	size_t i;

	for (i = 0; i < s->nanswers; i++) {
		wire_doc_free(&s->answers[i].r.doc);
		free(s->answers[i].raw);
	}
	free(s->answers);
	for (i = 0; i < s->nheld; i++) {
		free(s->held[i].topic);
		free(s->held[i].raw);
	}
	free(s->held);
	free(s->expected);
	free(s->hstate);
	free(s->tmask);
	msgpack_sbuffer_destroy(&s->args);
	ctl_filter_free(&s->filter);
}


/* ---- the steps (sendcore.h) ------------------------------------------- */

int
send_init(struct send *s, enum job_kind kind)
{
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->ttl_ms = 600000;
	s->wait_ms = 30000;
	s->expect = -1;
	msgpack_sbuffer_init(&s->args);
	s->expected = calloc(MAX_EXPECTED, sizeof(*s->expected));
	s->hstate = calloc(MAX_EXPECTED, sizeof(*s->hstate));
	s->tmask = calloc(MAX_EXPECTED, sizeof(*s->tmask));
	return s->expected && s->hstate && s->tmask ? 0 : EXIT_USAGE;
}

int
send_start(struct ctl *c, struct send *s)
{
	int t, rc;

	if ((rc = ctl_load_key(c)) != 0 || (rc = ctl_connect(c)) != 0)
		return rc;
	if ((rc = expected_from_presence(c, s)) != 0)
		return rc;
	for (t = 0; t < s->ntargets; t++)
		make_id(s->ids[t], sizeof(s->ids[t]));
	if (s->wait_ms && (rc = subscribe_results(c, s)) != 0)
		return rc;
	s->t0 = now_mono_ms();
	return publish_jobs(c, s);
}

int
send_acked(struct ctl *c, struct send *s)
{
	/* Not waiting for answers, but for the broker to have the jobs:
	 * QoS 1 means nothing until the PUBACK. */
	ctl_pump(c, now_mono_ms() + 10000, on_puback, s, NULL);
	if (s->unacked > 0 || s->pub_failed) {
		ctl_say(c, "the broker did not take the job%s", s->ntargets > 1 ? "s" : "");
		return EXIT_USAGE;
	}
	return 0;
}

bool
send_collect(struct ctl *c, struct send *s, ctl_tick_fn *tick)
{
	if (!s->lost)
		ctl_pump(c, s->t0 + s->wait_ms, send_event, s, tick);
	return s->expect_count > 0 && send_done(s);
}

void
send_finish(struct ctl *c, struct send *s)
{
	/* Answers before the PUBACK are possible in theory; leave nothing in
	 * flight (the CLI may exit without tearing the session down). */
	if (s->unacked > 0 && !s->lost && !s->pub_failed)
		ctl_pump(c, now_mono_ms() + 2000, on_puback, s, NULL);
	retry_held(c, s, true);
}
