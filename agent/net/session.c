/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session.c - the agent's one MQTT session: connecting with capped
 * exponential back-off plus jitter, subscriptions, presence, and the
 * sending side of the result spool.  Everything it publishes was signed
 * by the parent (parent/sign.c): this process holds the TLS key for the
 * broker, never the host signing key (design.md §3, §8).
 */
#include "agent.h"
#include "inbox.h"
#include "paho_idle.h"
#include "util.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLUSH_INTERVAL_MS	5000
#define MAX_IN_FLIGHT		64
#define SESSION_MSG_MIN		(64u * 1024)	/* module pointers */
#define SESSION_PACKET_SLACK	4096		/* topic, header, properties */
#define SESSION_IDLE_MAX_MS	15000		/* Paho's longest idle wait */

static void session_connect(struct agent *a);
static int session_open(struct agent *a, struct mu_err *err);

static void
reconnect_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)l, (void)id;
	a->net.reconnect_timer = 0;
	session_connect(a);
}

/* The next wait of the back-off: drawn from 50-150 % of the step, so
 * agents that keep failing together do not retry together. */
static uint64_t
backoff_next(struct agent *a)
{
	uint64_t delay = a->net.backoff_ms / 2 + random_below(a->net.backoff_ms + 1);

	a->net.backoff_ms = a->net.backoff_ms * 2 > a->cfg.broker.retry_max_ms ?
	    a->cfg.broker.retry_max_ms : a->net.backoff_ms * 2;
	return delay;
}

/*
 * After a failed attempt: the back-off.  After a session that was up is
 * lost (lost = true), the whole fleet may have lost the broker at the same
 * instant (a restart) and would all retry within the same second: the
 * first wait gets a random 0..reconnect_splay more (the bench's storm).
 * The wake port still reconnects at once.
 */
static void
schedule_reconnect(struct agent *a, bool lost)
{
	uint64_t delay;

	if (a->stopping || a->net.reconnect_timer)
		return;
	delay = backoff_next(a);
	if (lost && a->cfg.broker.reconnect_splay_ms > 0)
		delay += random_below(a->cfg.broker.reconnect_splay_ms + 1);
	a->net.reconnect_timer = loop_add_timer(a->loop, delay, reconnect_fired, a);
	log_info("reconnecting in %.1f s", delay / 1000.0);
}

static void
session_connect(struct agent *a)
{
	struct mu_err err;

	if (a->net.connecting || a->stopping || bus_connected(a->net.bus))
		return;
	if (bus_connect(a->net.bus, &err) != MU_OK) {
		log_warnx("%s", err.msg);
		schedule_reconnect(a, false);
		return;
	}
	a->net.connecting = true;
}

/* ---- presence --------------------------------------------------------- */

/* Publish one presence the parent signed, as it is (retained). */
static int
status_publish(struct agent *a, enum priv_status which, int *token)
{
	char topic[TOPIC_MAX];
	int rc;

	if (!bus_connected(a->net.bus) || a->net.status[which] == NULL)
		return MU_EIO;
	if (a->selftest)	/* presence is the live agent's */
		return MU_OK;
	rc = topic_build(topic, sizeof(topic), a->root, TOPIC_HOST_STATUS, a->cfg.host, NULL);
	if (!rc)
		rc = bus_publish(a->net.bus, topic, a->net.status[which],
		    a->net.status_len[which], 1, true, 0, token, NULL);
	return rc;
}

/*
 * The parent signs presence (sign.c); we keep the latest of each kind.
 * The first will starts the session: the broker must hold one from the
 * first connect on.  A new online status is published at once: the
 * parent sends one when we said we connected, and after each change.
 */
void
session_status(struct agent *a, enum priv_status which, const void *env, size_t len)
{
	uint8_t *copy;
	int token = 0;
	bool first;

	if (which >= PRIV_NSTATUS || (copy = malloc(len ? len : 1)) == NULL)
		return;
	memcpy(copy, env, len);
	free(a->net.status[which]);
	a->net.status[which] = copy;
	a->net.status_len[which] = len;
	first = which == PRIV_STATUS_WILL && a->net.bus == NULL;
	if (first && !a->stopping) {
		struct mu_err err;

		if (session_open(a, &err) != MU_OK) {
			log_err("%s", err.msg);
			loop_stop(a->loop);	/* no client: systemd restarts us */
		}
	} else if (which == PRIV_STATUS_ONLINE)
		status_publish(a, which, &token);
}

/* ---- facts ------------------------------------------------------------ */

/* The facts as the parent signed them, retained (design.md §3). */
static void
facts_publish(struct agent *a)
{
	char topic[TOPIC_MAX];
	int token = 0, rc;

	if (a->net.facts == NULL || a->selftest || !bus_connected(a->net.bus))
		return;
	rc = topic_build(topic, sizeof(topic), a->root, TOPIC_HOST_FACTS, a->cfg.host, NULL);
	if (!rc)
		rc = bus_publish(a->net.bus, topic, a->net.facts, a->net.facts_len, 1, true, 0,
		    &token, NULL);
	if (rc)
		log_warnx("facts: could not publish them (again at the next connect)");
}

/* The parent's facts, signed: kept for each connect, and published now. */
void
session_facts(struct agent *a, const void *env, size_t len)
{
	uint8_t *copy;

	if ((copy = malloc(len ? len : 1)) == NULL) {
		log_warnx("facts from the parent: out of memory");
		return;
	}
	memcpy(copy, env, len);
	free(a->net.facts);
	a->net.facts = copy;
	a->net.facts_len = len;
	facts_publish(a);
}

/* ---- results ---------------------------------------------------------- */

static void
flush_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)l, (void)id;
	a->net.flush_timer = 0;
	spool_flush(a);
}

/*
 * Send every spooled result that Paho does not already hold.  After a
 * reconnect Paho may still be retrying some (session present), so a token
 * it still reports pending is left alone; anything else is sent again.
 */
void
spool_flush(struct agent *a)
{
	struct spooled *s;
	struct mu_err err;
	int inflight = 0;

	if (bus_connected(a->net.bus)) {
		for (s = a->spool.head; s && inflight < MAX_IN_FLIGHT; s = s->next, inflight++) {
			if (s->held || (s->token && bus_token_pending(a->net.bus, s->token)))
				continue;
			if (bus_publish(a->net.bus, s->topic, s->payload, s->len, 1, false, 0,
			    &s->token, &err) != MU_OK) {
				log_warnx("result for job %s: %s", s->job, err.msg);
				s->token = 0;
				break;
			}
		}
	}
	if (a->spool.count && !a->net.flush_timer && !a->stopping)
		a->net.flush_timer = loop_add_timer(a->loop, FLUSH_INTERVAL_MS, flush_fired, a);
}

/* Spool a result the parent numbered and signed; staged: the spool
 * folder's fsync is left to results_commit(). */
static int
result_spool(struct agent *a, const char *job, const void *env, size_t len, bool staged)
{
	char topic[TOPIC_MAX];
	struct mu_err err;
	int rc;

	rc = topic_build(topic, sizeof(topic), a->root, TOPIC_RESULT, job, a->cfg.host);
	if (rc)
		mu_errf(&err, rc, "cannot build the result topic for job %s", job);
	/* The spool keeps the signed envelope: a resend after a restart is
	 * the very same bytes, not a second, different answer. */
	if (!rc && (rc = staged ? spool_stage(&a->spool, job, topic, env, len, &err) :
	    spool_put(&a->spool, job, topic, env, len, &err)) != MU_OK) {
		/* Without a spool, at least try to say it once. */
		if (bus_connected(a->net.bus))
			bus_publish(a->net.bus, topic, env, len, 1, false, 0, NULL, NULL);
	}
	if (rc) {
		log_err("result for job %s: %s", job, err.msg);
		return rc;
	}
	return MU_OK;
}

int
result_stage(struct agent *a, const char *job, const void *body, size_t len)
{
	struct spooled *s;
	int rc;

	/*
	 * Handed again: an earlier network process spooled it and died
	 * before the parent heard so.  That file is the answer (its seq,
	 * its bytes); a second one would be a second, different answer.
	 */
	for (s = a->spool.head; s; s = s->next)
		if (strcmp(s->job, job) == 0) {
			if (s->token == 0)
				s->held = true;
			return MU_OK;
		}
	rc = result_spool(a, job, body, len, true);

	/* From the parent: published once it says "answered". */
	if (rc == MU_OK && a->spool.tail && strcmp(a->spool.tail->job, job) == 0)
		a->spool.tail->held = true;
	return rc;
}

/* The parent has the job's done mark: its spooled result may go out. */
void
result_answered(struct agent *a, const char *job)
{
	struct spooled *s;

	for (s = a->spool.head; s; s = s->next)
		if (s->held && strcmp(s->job, job) == 0) {
			s->held = false;
			spool_flush(a);
			return;
		}
}

int
results_commit(struct agent *a)
{
	struct mu_err err;
	int rc;

	if ((rc = spool_sync(&a->spool, &err)) != MU_OK)
		log_err("spool: %s", err.msg);
	spool_flush(a);
	return rc;
}

void
event_publish(struct agent *a, const char *job, const void *env, size_t len)
{
	char topic[TOPIC_MAX];

	if (!bus_connected(a->net.bus) || topic_build(topic, sizeof(topic), a->root,
	    TOPIC_RESULT_EVENTS, job, a->cfg.host) != MU_OK)
		return;
	bus_publish(a->net.bus, topic, env, len, 0, false, 0, NULL, NULL);
}

/* ---- bus events ------------------------------------------------------- */

/* Jobs, and the module pointers (modsrc.c). */
static void
subscribe_all(struct agent *a)
{
	/* host, all, groups, modules, release, its halt, verdict */
	char topics[CONF_MAX_GROUPS + 6][TOPIC_MAX];
	char *ptrs[CONF_MAX_GROUPS + 6];
	struct mu_err err;
	int i, n = 0;

	if (a->selftest) {
		/* Its one job, its verdict, and the modules (design.md §5). */
		if (topic_build(topics[n], TOPIC_MAX, a->root, TOPIC_SELFTEST_JOBS,
		    a->cfg.host, NULL) == MU_OK)
			n++;
		if (topic_build(topics[n], TOPIC_MAX, a->root, TOPIC_SELFTEST_VERDICT,
		    a->cfg.host, NULL) == MU_OK)
			n++;
		if (modsrc_subscription(a, topics[n], TOPIC_MAX) == MU_OK)
			n++;
		goto subscribe;
	}
	if (release_subscription(a, topics[n], TOPIC_MAX) == MU_OK)
		n++;
	if (release_halt_subscription(a, topics[n], TOPIC_MAX) == MU_OK)
		n++;
	/* The verdict on our staged version, seen by us too (design.md §5). */
	if (topic_build(topics[n], TOPIC_MAX, a->root, TOPIC_SELFTEST_VERDICT, a->cfg.host,
	    NULL) == MU_OK)
		n++;
	if (topic_build(topics[n], TOPIC_MAX, a->root, TOPIC_HOST_JOBS, a->cfg.host, NULL) == MU_OK)
		n++;
	if (topic_build(topics[n], TOPIC_MAX, a->root, TOPIC_ALL_JOBS, NULL, NULL) == MU_OK)
		n++;
	for (i = 0; i < a->cfg.ngroups; i++)
		if (topic_build(topics[n], TOPIC_MAX, a->root, TOPIC_GROUP_JOBS,
		    a->cfg.groups[i], NULL) == MU_OK)
			n++;
	if (modsrc_subscription(a, topics[n], TOPIC_MAX) == MU_OK)
		n++;
subscribe:
	for (i = 0; i < n; i++)
		ptrs[i] = topics[i];
	if (bus_subscribe(a->net.bus, ptrs, n, 1, &err) != MU_OK)
		log_warnx("%s", err.msg);
}

static void
on_connected(struct agent *a, const struct bus_event *ev)
{
	struct spooled *s;

	a->net.connecting = false;
	a->net.backoff_ms = a->cfg.broker.retry_min_ms;
	bus_tune_sockets();
	log_notice("connected to the broker (session %s)",
	    ev->session_present ? "resumed" : "new");
	/*
	 * Without a session Paho has dropped its in-flight publishes without a
	 * word and starts message ids (our tokens) again at 1: an old token
	 * could then name a new message, whose PUBACK would unspool a result
	 * that was never delivered.  Forget them all; the flush resends.
	 */
	if (!ev->session_present)
		for (s = a->spool.head; s; s = s->next)
			s->token = 0;
	/* Results first: the flush resends what Paho no longer holds before
	 * any new publish can be given one of its freed ids. */
	spool_flush(a);
	/* Re-subscribing is harmless when the session was kept, and needed
	 * when it was not. */
	modsrc_connected(a);
	subscribe_all(a);
	/* The online status comes from the parent in answer to "connected",
	 * signed as of now (sign.c); a self-test publishes none. */
	facts_publish(a);
	if (a->selftest)
		selftest_connected(a);
	else
		priv_send_connected(a);	/* the healthy window (update.c) */
}

static void
on_disconnected(struct agent *a, const struct bus_event *ev)
{
	a->net.connecting = false;
	log_warnx("%s: %s", ev->type == BUS_LOST ? "connection lost" : "connect failed",
	    ev->reason);
	schedule_reconnect(a, ev->type == BUS_LOST);
}

/* Module topics carry retained pointers and artifacts; a job never comes
 * retained (an operator's retained job would be replayed to every new
 * subscriber). */
static void
on_message(struct agent *a, const struct bus_event *ev)
{
	char name[NAME_MAX_LEN + 1], sha[SHA256_HEX_LEN + 1], t[TOPIC_MAX];

	if (topic_parse_module(ev->topic, a->root, name, sha) == MU_OK) {
		if (!a->stopping)
			modsrc_message(a, ev->topic, ev->payload, ev->len);
	} else if (!a->selftest && release_subscription(a, t, sizeof(t)) == MU_OK &&
	    strcmp(ev->topic, t) == 0) {
		if (!a->stopping)
			release_message(a, ev->payload, ev->len);
	} else if (!a->selftest && release_halt_subscription(a, t, sizeof(t)) == MU_OK &&
	    strcmp(ev->topic, t) == 0) {
		if (!a->stopping)
			release_halt_message(a, ev->payload, ev->len);
	} else if (topic_build(t, sizeof(t), a->root, TOPIC_SELFTEST_VERDICT,
	    a->cfg.host, NULL) == MU_OK && strcmp(ev->topic, t) == 0) {
		if (!ev->retained && a->selftest) {
			/* Our verdict: the self-test ends once the result's
			 * acknowledgement and our goodbye are out. */
			if (selftest_verdict(a, ev->payload, ev->len)) {
				spool_flush(a);
				loop_stop(a->loop);
			}
		}
		else if (!ev->retained && ev->len <= WIRE_MAX_STR)
			/* The parent decodes it; we only pass it on. */
			priv_send_verdict(a, ev->payload, ev->len);
	} else if (!ev->retained) {
		/* To the parent, which checks every rule (design.md §8). */
		if (!job_oversize(a, ev->len)) {
			test_stop_at("net-forwarding");	/* acknowledged */
			priv_job(a, ev->topic, ev->payload, ev->len, ev->inbox_seq);
			return;		/* its inbox entry goes when durable */
		}
	}
	/* Jobs are never retained (design.md §3): a retained copy on a job topic
	 * is stale or planted, and is not a job. */
	else if (++a->net.jobs_retained == 1 || a->net.jobs_retained % 100 == 0)
		log_notice("ignored a retained message on a job topic (%llu so far)",
		    (unsigned long long)a->net.jobs_retained);
	/* Not a job after all (a module named "jobs"...): nothing to keep. */
	if (ev->inbox_seq)
		inbox_done(a->net.inbox, ev->inbox_seq);
}

/* After a restart: the jobs acknowledged to the broker whose durable
 * answer from the parent never came, handed over again (the seen-set
 * drops those it has). */
static void
inbox_replay(struct agent *a)
{
	struct bus_event ev = { .type = BUS_MESSAGE };
	const uint8_t *payload;
	const char *topic;
	size_t n = 0;

	while (inbox_replay_next(a->net.inbox, &topic, &payload, &ev.len, &ev.inbox_seq)) {
		ev.topic = (char *)topic;
		ev.payload = (uint8_t *)payload;
		on_message(a, &ev);
		n++;
	}
	if (n)
		log_notice("inbox: %zu jobs received before a restart handed to the parent "
		    "again", n);
}

static void
on_bus_event(struct agent *a, struct bus_event *ev)
{
	struct spooled *s;

	switch (ev->type) {
	case BUS_CONNECTED:
		on_connected(a, ev);
		break;
	case BUS_CONNECT_FAILED:
	case BUS_LOST:
		on_disconnected(a, ev);
		break;
	case BUS_MESSAGE:
		on_message(a, ev);
		break;
	case BUS_PUBLISHED:
		spool_acked(&a->spool, ev->token);
		break;
	case BUS_PUBLISH_FAILED:
		for (s = a->spool.head; s; s = s->next)
			if (s->token == ev->token)
				s->token = 0;
		break;
	case BUS_SUBSCRIBED:
		modsrc_subscribed(a);
		break;
	case BUS_SUBSCRIBE_FAILED:
		log_warnx("subscription refused by the broker");
		break;
	}
}

static void
on_bus_fd(struct loop *l, int fd, short revents, void *arg)
{
	struct agent *a = arg;
	struct bus_event *ev;

	(void)l, (void)fd, (void)revents;
	while ((ev = bus_next(a->net.bus)) != NULL) {
		on_bus_event(a, ev);
		bus_event_free(ev);
	}
	if (a->net.bus && bus_inbox_failures(a->net.bus) > a->net.inbox_failures) {
		a->net.inbox_failures = bus_inbox_failures(a->net.bus);
		log_err("inbox: %llu jobs could not be written down before they were "
		    "acknowledged (disk?): a crash now would lose them",
		    (unsigned long long)a->net.inbox_failures);
	}
}

/* ---- start, poke, stop ------------------------------------------------ */

/* A new MQTT client for this host (the will is already encoded). */
static int
bus_open(struct agent *a, struct mu_err *err)
{
	struct bus_opts o = { 0 };
	char will_topic[TOPIC_MAX], selftest_id[NAME_MAX_LEN + 16];
	int rc;

	if (topic_build(will_topic, sizeof(will_topic), a->root, TOPIC_HOST_STATUS,
	    a->cfg.host, NULL) != MU_OK)
		return mu_errf(err, MU_EINVAL, "cannot build the status topic");
	o.broker = &a->cfg.broker;
	o.client_id = a->cfg.host;
	o.clean_start = false;
	o.session_expiry_s = a->cfg.max_ttl_ms / 1000 > UINT32_MAX ? UINT32_MAX :
	    (uint32_t)(a->cfg.max_ttl_ms / 1000);
	o.will_topic = will_topic;
	o.will_payload = a->net.status[PRIV_STATUS_WILL];
	o.will_len = a->net.status_len[PRIV_STATUS_WILL];
	if (a->selftest) {
		/* Its own id (two clients with one id kick each other off), a
		 * fresh session, and no will: presence is the live agent's. */
		snprintf(selftest_id, sizeof(selftest_id), "%s.selftest", a->cfg.host);
		o.client_id = selftest_id;
		o.clean_start = true;
		o.session_expiry_s = 0;
		o.will_topic = NULL;
		o.will_payload = NULL;
		o.will_len = 0;
	}
	/* Nothing bigger than a job (or a module pointer) is ever needed on
	 * this session: the broker keeps oversized messages away (MQTT 5).
	 * Module and release artifacts come over their own connection (fetch.c). */
	o.max_packet = (uint32_t)((a->cfg.max_job > SESSION_MSG_MIN ? a->cfg.max_job :
	    SESSION_MSG_MIN) + SESSION_PACKET_SLACK);
	/* Every job topic ends so (hosts/H/jobs, groups/G/jobs, all/jobs,
	 * hosts/H/selftest/jobs). */
	o.inbox = a->net.inbox;
	o.durable_suffix = "/jobs";
	if ((rc = bus_new(&a->net.bus, &o, err)) != MU_OK)
		return rc;
	loop_add_fd(a->loop, bus_fd(a->net.bus), POLLIN, on_bus_fd, a);
	return MU_OK;
}

/* The first connect, once the parent's will is here (session_status()):
 * the broker publishes it for us when the session dies without a goodbye. */
static int
session_open(struct agent *a, struct mu_err *err)
{
	int rc;

	if ((rc = bus_open(a, err)) != MU_OK)
		return rc;
	a->net.backoff_ms = a->cfg.broker.retry_min_ms;
	session_connect(a);
	return MU_OK;
}

/*
 * Replace the MQTT client while disconnected.  Paho's receive thread,
 * once running, notices a new connection's TCP handshake only at the end
 * of a fixed one-second wait; a fresh client starts fresh threads, whose
 * first wait is 10 ms.  The broker keeps our session (same client id), and
 * the spool resends whatever the old client held.
 */
static int
bus_renew(struct agent *a, struct mu_err *err)
{
	struct spooled *s;

	loop_del_fd(a->loop, bus_fd(a->net.bus));
	bus_free(a->net.bus);
	a->net.bus = NULL;
	a->net.connecting = false;
	for (s = a->spool.head; s; s = s->next)
		s->token = 0;
	return bus_open(a, err);
}

/*
 * A trusted poke from the wake port: reconnect now if we are down;
 * otherwise prove the session is alive with a status publish.
 */
void
session_poke(struct agent *a)
{
	struct mu_err err;

	if (bus_connected(a->net.bus))
		return;		/* the parent's fresh online status says it */
	if (a->net.bus == NULL)
		return;		/* not started: the parent's will comes first */
	if (a->net.reconnect_timer) {
		loop_del_timer(a->loop, a->net.reconnect_timer);
		a->net.reconnect_timer = 0;
	}
	a->net.backoff_ms = a->cfg.broker.retry_min_ms;
	log_info("poked: reconnecting now");
	if (bus_renew(a, &err) != MU_OK) {
		log_err("%s", err.msg);
		loop_stop(a->loop);	/* no client: systemd restarts us */
		return;
	}
	session_connect(a);
}

void
session_stop(struct agent *a)
{
	uint64_t deadline;
	struct bus_event *ev;
	bool said_goodbye = true, up = true;
	int token = 0, i;

	a->stopping = true;
	if (a->net.bus == NULL)
		goto out;
	if (bus_connected(a->net.bus)) {
		said_goodbye = a->selftest ||
		    status_publish(a, PRIV_STATUS_GOODBYE, &token) != MU_OK || token == 0;
		/*
		 * Wait for the goodbye's own acknowledgement (and the spool's):
		 * MQTTAsync_disconnect() does not send publishes still in Paho's
		 * queue, so without the wait the DISCONNECT often overtakes the
		 * offline status and the broker keeps the host "online".
		 */
		deadline = now_mono_ms() + 1000;
		while (up && now_mono_ms() < deadline && (a->spool.count || !said_goodbye)) {
			while ((ev = bus_next(a->net.bus)) != NULL) {
				if (ev->type == BUS_PUBLISHED) {
					spool_acked(&a->spool, ev->token);
					said_goodbye = said_goodbye || ev->token == token;
				} else if (ev->type == BUS_PUBLISH_FAILED)
					said_goodbye = said_goodbye || ev->token == token;
				else if (ev->type == BUS_MESSAGE)
					/* Paho has acknowledged it: answer it, or it is lost. */
					on_message(a, ev);
				else if (ev->type == BUS_LOST)
					up = false;
				bus_event_free(ev);
			}
			usleep(5000);
		}
		if (!said_goodbye)
			log_warnx("the offline status was not acknowledged in time");
		if (up)
			bus_disconnect(a->net.bus, 1000);
	}
	loop_del_fd(a->loop, bus_fd(a->net.bus));
	bus_free(a->net.bus);
	a->net.bus = NULL;
out:
	for (i = 0; i < PRIV_NSTATUS; i++) {
		free(a->net.status[i]);
		a->net.status[i] = NULL;
	}
	free(a->net.selftest_req);
	a->net.selftest_req = NULL;
}

/* ---- the network process's share of musterd --------------------------- */

int
net_start(struct agent *a, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 16];
	unsigned idle_ms = SESSION_IDLE_MAX_MS;
	int rc;

	/* Paho's threads sleep while the session is idle (paho_idle.h); a
	 * quarter of the keepalive keeps its PINGREQ on time. */
	if (a->cfg.broker.keepalive_ms > 0 && a->cfg.broker.keepalive_ms / 4 < idle_ms)
		idle_ms = (unsigned)(a->cfg.broker.keepalive_ms / 4);
	if (!paho_idle_enable(idle_ms))
		log_debug("session: Paho keeps its 1 s timers (keepalive too short)");
	/* One process (ROLE_BOTH) opened the spool already, for the journal. */
	if (a->role == ROLE_NET) {
		struct spooled *s;

		if ((rc = spool_open(&a->spool, a->net_dir, NULL, err)) != MU_OK)
			return rc;
		/* What an earlier network process spooled waits for the parent
		 * too: it says "answered" for what it has marked done, or hands
		 * the result again (result_stage()) if it never heard it was
		 * spooled (priv.c spooled_release()). */
		for (s = a->spool.head; s; s = s->next)
			s->held = true;
	}
	if ((rc = modsrc_init(a, err)) != MU_OK)
		return rc;
	if ((size_t)snprintf(path, sizeof(path), "%s/inbox", a->net_dir) >= sizeof(path))
		return mu_errf(err, MU_EINVAL, "state_dir too long");
	if ((rc = inbox_open(&a->net.inbox, path, err)) != MU_OK)
		return rc;
	/* The session starts once the parent's will is here (session_status()). */
	inbox_replay(a);
	return MU_OK;
}

void
net_stop(struct agent *a)
{
	session_stop(a);
	release_free(a);
	modsrc_free(a);
	fetch_free(a);	/* after its users, which drop their topics */
	if (a->role == ROLE_NET)
		spool_close(&a->spool);
	/* After the bus, which borrowed it. */
	inbox_close(a->net.inbox);
	a->net.inbox = NULL;
	free(a->net.held);
	a->net.held = NULL;
	a->net.nheld = a->net.capheld = 0;
}
