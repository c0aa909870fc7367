/* SPDX-License-Identifier: Apache-2.0 */
/*
 * halt.c - muster-server halts a bad release fleet-wide (design.md §5).
 *
 * Each host's status says where it is with a release ("update": state and
 * version).  Per channel this file counts, for the version the channel
 * offers, the hosts that attempted it (run it, or are staging, testing,
 * installing or verifying it, or failed it) and those that failed it
 * (self-test failed, rolled back).  When the release manifest carries a
 * "halt" rule and at least min_hosts attempted it and more than failed_pct
 * percent of them failed, the server publishes the retained halt on
 * R/releases/<channel>/halt, signed with its signing pair (the agents
 * check it: agent/parent/halt.c).
 *
 * Halts are idempotent rather than coordinated: every server counts the
 * same statuses and reaches the same decision, and none publishes while
 * the topic already holds a halt of that version at or after the
 * release's published_at.  A (re)connected server first waits
 * HALT_SETTLE_MS for the retained halts, so a restart does not halt
 * again what is halted already.  The manifest is read as the broker
 * delivers it (only publishers may write it: broker-config/acl); the
 * server does not hold the publishers' OpenPGP keys.
 *
 * Its own MQTT connection (client id muster-server-<name>.halt, clean
 * session: all it needs is retained).  The hosts' classifications come
 * from ingest.c (halt_host_status()), loop thread only; the channels'
 * counts are read by the HTTP threads (metrics, /api/releases) under
 * s->lock.  Ownership: struct halts (s->halts) owns the bus, the signer,
 * the host and channel tables.
 */
#include "server.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "util.h"

#define HALT_TICK_MS	1000
#define HALT_SETTLE_MS	2000
#define HALT_RETRY_MS	1000
#define HALT_MAX_CHANNELS	256

/* Where one host is: the version it attempted (or runs), and whether it
 * failed that version. */
struct halt_host {
	char name[NAME_MAX_LEN + 1];
	char channel[NAME_MAX_LEN + 1];
	char version[WIRE_MAX_VERSION + 1];
	enum release_stage stage;	/* with version (lib/wire_agent.c) */
};

struct halt_chan {
	char name[NAME_MAX_LEN + 1];
	/* the release the channel offers (its retained pointer) */
	bool have_release;
	struct release_manifest rel;	/* its fields; doc zeroed (not kept) */
	/* the halt its topic holds (any signer: see above) */
	char halted_version[WIRE_MAX_VERSION + 1];
	uint64_t halted_at;
	char halted_reason[RELEASE_HALT_REASON_MAX + 1];
	/* of the offered version, at the last tick: attempted = healthy (runs
	 * it) + testing + failed; pending = the channel's other hosts */
	uint64_t attempted, failed, testing, pending;
	bool warned;		/* its rule is met and we cannot sign: said once */
};

struct halts {
	struct bus *bus;
	struct hostsig_signer *signer;
	bool connecting;
	uint64_t connected_at;		/* monotonic ms; 0 while down */
	uint64_t tick_timer, retry_timer;
	struct halt_host *hosts;	/* sorted by name */
	size_t nhosts, hosts_cap;
	struct halt_chan *chans;	/* under s->lock */
	size_t nchans;
	uint64_t published;		/* halts this server published */
};

static void halt_connect(struct server *s);

/* ---- the hosts ------------------------------------------------------------------ */

static struct halt_host *
host_slot(struct halts *h, const char *name)
{
	size_t lo = 0, hi = h->nhosts, mid, cap;
	struct halt_host *nv;
	int c;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if ((c = strcmp(h->hosts[mid].name, name)) == 0)
			return &h->hosts[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (h->nhosts == h->hosts_cap) {
		cap = h->hosts_cap ? h->hosts_cap * 2 : 64;
		if ((nv = realloc(h->hosts, cap * sizeof(*nv))) == NULL)
			return NULL;
		h->hosts = nv;
		h->hosts_cap = cap;
	}
	memmove(h->hosts + lo + 1, h->hosts + lo, (h->nhosts - lo) * sizeof(*h->hosts));
	memset(&h->hosts[lo], 0, sizeof(h->hosts[lo]));
	snprintf(h->hosts[lo].name, sizeof(h->hosts[lo].name), "%s", name);
	h->nhosts++;
	return &h->hosts[lo];
}

void
halt_host_status(struct server *s, const struct status *st)
{
	struct halt_host *e;

	if (s->halts == NULL || (e = host_slot(s->halts, st->host)) == NULL)
		return;
	snprintf(e->channel, sizeof(e->channel), "%s", st->channel);
	e->stage = status_release_stage(st, e->version);
}

/* ---- the channels ---------------------------------------------------------------- */

/* The channel's entry, made if new; NULL past HALT_MAX_CHANNELS.  Caller
 * holds s->lock. */
static struct halt_chan *
chan_slot(struct halts *h, const char *name)
{
	struct halt_chan *nv;
	size_t i;

	for (i = 0; i < h->nchans; i++)
		if (strcmp(h->chans[i].name, name) == 0)
			return &h->chans[i];
	if (h->nchans == HALT_MAX_CHANNELS ||
	    (nv = realloc(h->chans, (h->nchans + 1) * sizeof(*nv))) == NULL)
		return NULL;
	h->chans = nv;
	memset(&nv[h->nchans], 0, sizeof(nv[h->nchans]));
	snprintf(nv[h->nchans].name, sizeof(nv[h->nchans].name), "%s", name);
	return &nv[h->nchans++];
}

static void
on_release(struct server *s, const char *channel, const uint8_t *p, size_t len)
{
	struct signed_pointer ptr;
	struct release_manifest m;
	struct halt_chan *c;
	struct mu_err err;

	if (len == 0 || pointer_decode(p, len, &ptr, &err) != MU_OK)
		return;
	if (release_manifest_decode(ptr.manifest.ptr, ptr.manifest.len, &m, &err) == MU_OK) {
		pthread_mutex_lock(&s->lock);
		if (strcmp(m.channel, channel) == 0 && (c = chan_slot(s->halts, channel))) {
			c->have_release = true;
			if (strcmp(c->rel.version, m.version) != 0)
				c->warned = false;
			c->rel = m;
			memset(&c->rel.doc, 0, sizeof(c->rel.doc));	/* m's, freed below */
		}
		pthread_mutex_unlock(&s->lock);
		wire_doc_free(&m.doc);
	}
	wire_doc_free(&ptr.doc);
}

/* The body of a halt in either envelope (not verified: see the top). */
static int
halt_body(const uint8_t *p, size_t len, struct release_halt *out, struct wire_doc *env)
{
	struct job_envelope je;
	struct agent_envelope ae;
	struct mu_err err;
	int rc;

	if (envelope_decode(p, len, &je, &err) == MU_OK) {
		*env = je.doc;
		rc = release_halt_decode(je.body.ptr, je.body.len, out, &err);
	} else if (agent_envelope_decode(p, len, &ae, &err) == MU_OK) {
		*env = ae.doc;
		rc = release_halt_decode(ae.body.ptr, ae.body.len, out, &err);
	} else
		return MU_EINVAL;
	if (rc != MU_OK)
		wire_doc_free(env);
	return rc;
}

static void
on_halt(struct server *s, const char *channel, const uint8_t *p, size_t len)
{
	struct release_halt h;
	struct wire_doc env;
	struct halt_chan *c;

	pthread_mutex_lock(&s->lock);
	if ((c = chan_slot(s->halts, channel)) != NULL && len == 0)
		c->halted_version[0] = '\0';		/* cleared */
	pthread_mutex_unlock(&s->lock);
	if (c == NULL || len == 0 || halt_body(p, len, &h, &env) != MU_OK)
		return;
	pthread_mutex_lock(&s->lock);
	if (strcmp(h.channel, channel) == 0) {
		snprintf(c->halted_version, sizeof(c->halted_version), "%s", h.version);
		c->halted_at = h.at;
		printable_copy(c->halted_reason, sizeof(c->halted_reason), h.reason.ptr,
		    h.reason.len);
	}
	pthread_mutex_unlock(&s->lock);
	wire_doc_free(&h.doc);
	wire_doc_free(&env);
}

/* ---- deciding --------------------------------------------------------------------- */

static bool
halted(const struct halt_chan *c)
{
	return c->halted_version[0] != '\0' && strcmp(c->halted_version, c->rel.version) == 0 &&
	    c->halted_at >= c->rel.published_at;
}

static void
count_channel(const struct halts *h, struct halt_chan *c)
{
	size_t i;

	c->attempted = c->failed = c->testing = c->pending = 0;
	for (i = 0; i < h->nhosts; i++) {
		if (strcmp(h->hosts[i].channel, c->name) != 0)
			continue;
		/* A host that found it halted has not tried it. */
		if (strcmp(h->hosts[i].version, c->rel.version) != 0 ||
		    h->hosts[i].stage == RSTAGE_HALTED) {
			c->pending++;
			continue;
		}
		c->attempted++;
		c->failed += h->hosts[i].stage == RSTAGE_FAILED;
		c->testing += h->hosts[i].stage == RSTAGE_TRYING;
	}
}

static int
publish_halt(struct server *s, struct halt_chan *c, struct mu_err *err)
{
	struct halts *h = s->halts;
	struct release_halt b;
	msgpack_sbuffer body, env;
	char topic[TOPIC_MAX], reason[160];
	int rc;

	snprintf(reason, sizeof(reason), "%" PRIu64 " of %" PRIu64 " hosts that tried it "
	    "failed (the release halts above %u%% of at least %u)", c->failed, c->attempted,
	    c->rel.halt_failed_pct, c->rel.halt_min_hosts);
	memset(&b, 0, sizeof(b));
	snprintf(b.channel, sizeof(b.channel), "%s", c->name);
	snprintf(b.version, sizeof(b.version), "%s", c->rel.version);
	b.reason = (struct wire_str){ reason, strlen(reason) };
	b.at = now_wall_ms();
	b.has_counts = true;
	b.failed = c->failed;
	b.attempted = c->attempted;
	b.cert_der = hostsig_signer_cert(h->signer);
	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(&env);
	rc = release_halt_encode(&b, &body, err);
	if (rc == MU_OK)
		rc = hostsig_wrap(h->signer, body.data, body.size, &env, err);
	if (rc == MU_OK)
		rc = topic_build(topic, sizeof(topic), s->root, TOPIC_RELEASE_HALT, c->name, NULL);
	if (rc == MU_OK)
		rc = bus_publish(h->bus, topic, env.data, env.size, 1, true, 0, NULL, err);
	if (rc == MU_OK) {
		/* Ours until the retained copy comes back: no second publish. */
		snprintf(c->halted_version, sizeof(c->halted_version), "%s", c->rel.version);
		c->halted_at = b.at;
		snprintf(c->halted_reason, sizeof(c->halted_reason), "%s", reason);
		h->published++;
		log_notice("release %s on channel %s halted: %s", c->rel.version, c->name, reason);
	}
	msgpack_sbuffer_destroy(&body);
	msgpack_sbuffer_destroy(&env);
	return rc;
}

static void
tick_fired(struct loop *l, uint64_t id, void *arg)
{
	struct server *s = arg;
	struct halts *h = s->halts;
	struct halt_chan *c;
	struct mu_err err;
	bool settled;
	size_t i;

	(void)id;
	h->tick_timer = loop_add_timer(l, HALT_TICK_MS, tick_fired, s);
	settled = h->connected_at && bus_connected(h->bus) &&
	    now_mono_ms() - h->connected_at >= HALT_SETTLE_MS;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < h->nchans; i++) {
		c = &h->chans[i];
		if (!c->have_release)
			continue;
		count_channel(h, c);
		if (!settled || !c->rel.has_halt || halted(c) || c->attempted == 0 ||
		    c->attempted < c->rel.halt_min_hosts ||
		    c->failed * 100 <= (uint64_t)c->rel.halt_failed_pct * c->attempted)
			continue;
		if (h->signer == NULL) {
			if (!c->warned)
				log_warnx("release %s on channel %s meets its halt rule, but this "
				    "server has no signing pair to halt it with", c->rel.version,
				    c->name);
			c->warned = true;
			continue;
		}
		if (publish_halt(s, c, &err) != MU_OK)
			log_warnx("release halt on %s: %s", c->name, err.msg);
	}
	pthread_mutex_unlock(&s->lock);
}

/* ---- the connection ---------------------------------------------------------------- */

/* R/releases/<channel> or R/releases/<channel>/halt: the channel, and
 * whether it is the halt. */
static bool
release_topic(const struct server *s, const char *topic, char *channel, bool *halt)
{
	char want[TOPIC_MAX];
	size_t n = (size_t)snprintf(want, sizeof(want), "%s/v1/releases/", s->root);
	const char *rest;
	size_t len;

	if (strncmp(topic, want, n) != 0)
		return false;
	rest = topic + n;
	len = strcspn(rest, "/");
	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	memcpy(channel, rest, len);
	channel[len] = '\0';
	*halt = strcmp(rest + len, "/halt") == 0;
	return name_valid(channel) && (*halt || rest[len] == '\0');
}

static void
retry_fired(struct loop *l, uint64_t id, void *arg)
{
	struct server *s = arg;

	(void)l, (void)id;
	s->halts->retry_timer = 0;
	halt_connect(s);
}

static void
on_bus_fd(struct loop *l, int fd, short revents, void *arg)
{
	struct server *s = arg;
	struct halts *h = s->halts;
	char rel[TOPIC_MAX], halt[TOPIC_MAX], *topics[2] = { rel, halt };
	char channel[NAME_MAX_LEN + 1];
	struct bus_event *ev;
	bool is_halt;

	(void)l, (void)fd, (void)revents;
	while ((ev = bus_next(h->bus)) != NULL) {
		switch (ev->type) {
		case BUS_CONNECTED:
			h->connecting = false;
			h->connected_at = now_mono_ms();
			snprintf(rel, sizeof(rel), "%s/v1/releases/+", s->root);
			snprintf(halt, sizeof(halt), "%s/v1/releases/+/halt", s->root);
			bus_subscribe(h->bus, topics, 2, 1, NULL);
			break;
		case BUS_CONNECT_FAILED:
		case BUS_LOST:
			h->connecting = false;
			h->connected_at = 0;
			log_warnx("release halt connection: %s", ev->reason);
			if (!h->retry_timer && !s->stopping)
				h->retry_timer = loop_add_timer(s->loop, HALT_RETRY_MS, retry_fired, s);
			break;
		case BUS_MESSAGE:
			if (release_topic(s, ev->topic, channel, &is_halt)) {
				if (is_halt)
					on_halt(s, channel, ev->payload, ev->len);
				else
					on_release(s, channel, ev->payload, ev->len);
			}
			break;
		default:
			break;
		}
		bus_event_free(ev);
	}
}

static void
halt_connect(struct server *s)
{
	struct mu_err err;

	if (s->halts->connecting || bus_connected(s->halts->bus))
		return;
	if (bus_connect(s->halts->bus, &err) != MU_OK) {
		log_warnx("release halt connection: %s", err.msg);
		s->halts->retry_timer = loop_add_timer(s->loop, HALT_RETRY_MS, retry_fired, s);
		return;
	}
	s->halts->connecting = true;
}

/* The signing pair: required when the file named it, optional (a warning,
 * no halts) when only derived from [broker]. */
static int
signer_open(struct server *s, struct mu_err *err)
{
	struct mu_err why;

	if (hostsig_signer_load(s->cfg.sign_key, s->cfg.sign_cert, &s->halts->signer,
	    &why) == MU_OK) {
		log_info("release halts: signed with %s", s->cfg.sign_cert);
		return MU_OK;
	}
	if (s->cfg.sign_set)
		return mu_errf(err, MU_EINVAL, "[server] sign_key/sign_cert: %s", why.msg);
	log_warnx("release halts: no signing pair (%s): releases are counted but not "
	    "halted; gen-pki --server NAME issues srv/NAME.sign.{key,crt}", why.msg);
	return MU_OK;
}

int
halt_open(struct server *s, struct mu_err *err)
{
	struct bus_opts o = { 0 };
	char id[NAME_MAX_LEN + 40];
	int rc;

	if ((s->halts = calloc(1, sizeof(*s->halts))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	if ((rc = signer_open(s, err)) != MU_OK)
		return rc;
	snprintf(id, sizeof(id), "muster-server-%s.halt", s->cfg.name);
	o.broker = &s->cfg.broker;
	o.client_id = id;
	o.clean_start = true;	/* all it reads is retained */
	if ((rc = bus_new(&s->halts->bus, &o, err)) != MU_OK)
		return rc;
	loop_add_fd(s->loop, bus_fd(s->halts->bus), POLLIN, on_bus_fd, s);
	s->halts->tick_timer = loop_add_timer(s->loop, HALT_TICK_MS, tick_fired, s);
	halt_connect(s);
	return MU_OK;
}

void
halt_close(struct server *s)
{
	struct halts *h = s->halts;

	if (h == NULL)
		return;
	if (h->tick_timer)
		loop_del_timer(s->loop, h->tick_timer);
	if (h->retry_timer)
		loop_del_timer(s->loop, h->retry_timer);
	if (h->bus) {
		loop_del_fd(s->loop, bus_fd(h->bus));
		if (bus_connected(h->bus))
			bus_disconnect(h->bus, 500);
		bus_free(h->bus);
	}
	hostsig_signer_free(h->signer);
	free(h->hosts);
	pthread_mutex_lock(&s->lock);
	free(h->chans);
	s->halts = NULL;
	pthread_mutex_unlock(&s->lock);
	free(h);
}

/* ---- what the HTTP threads read (s->lock held) ------------------------------------- */

void
halt_metrics(struct server *s, FILE *f)
{
	const struct halt_chan *c;
	size_t i;

	if (s->halts == NULL)
		return;
	fputs("# HELP muster_release_attempted Hosts that attempted the version their "
	    "channel offers.\n# TYPE muster_release_attempted gauge\n", f);
	for (i = 0; i < s->halts->nchans; i++)
		if ((c = &s->halts->chans[i])->have_release)
			fprintf(f, "muster_release_attempted{channel=\"%s\",version=\"%s\"} %"
			    PRIu64 "\n", c->name, c->rel.version, c->attempted);
	fputs("# HELP muster_release_failed Hosts that failed the version their channel "
	    "offers.\n# TYPE muster_release_failed gauge\n", f);
	for (i = 0; i < s->halts->nchans; i++)
		if ((c = &s->halts->chans[i])->have_release)
			fprintf(f, "muster_release_failed{channel=\"%s\",version=\"%s\"} %" PRIu64
			    "\n", c->name, c->rel.version, c->failed);
	fputs("# HELP muster_release_halted Whether the version the channel offers is "
	    "halted.\n# TYPE muster_release_halted gauge\n", f);
	for (i = 0; i < s->halts->nchans; i++)
		if ((c = &s->halts->chans[i])->have_release)
			fprintf(f, "muster_release_halted{channel=\"%s\",version=\"%s\"} %d\n",
			    c->name, c->rel.version, halted(c));
	fprintf(f, "# HELP muster_release_halts_published_total Release halts this server "
	    "published.\n# TYPE muster_release_halts_published_total counter\n"
	    "muster_release_halts_published_total %" PRIu64 "\n", s->halts->published);
}

json_t *
halt_releases_json(struct server *s)
{
	json_t *a = json_array(), *o, *sched;
	const struct halt_chan *c;
	size_t i, j;

	if (s->halts == NULL)
		return a;
	for (i = 0; i < s->halts->nchans; i++) {
		if (!(c = &s->halts->chans[i])->have_release)
			continue;
		sched = json_array();
		for (j = 0; j < c->rel.nsteps; j++)
			json_array_append_new(sched, json_pack("[I, i]",
			    (json_int_t)c->rel.steps[j].at_ms, (int)c->rel.steps[j].pct));
		o = json_pack("{s:s, s:s, s:I, s:i, s:o, s:I, s:I, s:I, s:I, s:I}",
		    "channel", c->name, "version", c->rel.version,
		    "published_at", (json_int_t)c->rel.published_at,
		    "rollout", (int)release_rollout_at(&c->rel, now_wall_ms(), NULL),
		    "schedule", sched, "attempted", (json_int_t)c->attempted,
		    "healthy", (json_int_t)(c->attempted - c->testing - c->failed),
		    "testing", (json_int_t)c->testing, "failed", (json_int_t)c->failed,
		    "pending", (json_int_t)c->pending);
		json_object_set_new(o, "halt_rule", c->rel.has_halt ? json_pack("{s:i, s:I}",
		    "failed_pct", (int)c->rel.halt_failed_pct, "min_hosts",
		    (json_int_t)c->rel.halt_min_hosts) : json_null());
		json_object_set_new(o, "halted", halted(c) ? json_pack("{s:s, s:I, s:s}",
		    "version", c->halted_version, "at", (json_int_t)c->halted_at,
		    "reason", c->halted_reason) : json_null());
		json_array_append_new(a, o);
	}
	return a;
}
