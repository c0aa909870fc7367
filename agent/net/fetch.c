/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fetch.c - the network process's one connection for artifacts (design.md
 * §3 "Modules and releases on the broker", §5): module builds for modsrc.c
 * and release binaries for release.c, up to 64 MiB each.
 *
 * Artifacts do not come over the job session: that session tells the
 * broker to send it nothing bigger than a job (session.c).  They come over
 * this connection, client id "<host>.fetch" (its own id: two clients with
 * one id kick each other off).  Each user asks for the exact topics it
 * waits for (fetch_want) with the function that takes their messages, and
 * gives them up when done (fetch_drop).  The connection opens with the
 * first topic wanted, is retried while any is wanted, and closes when the
 * last one is dropped: a little later for modules, so back-to-back
 * fetches share it; at once for a release, whose self-test, started next,
 * may fetch with the same client id (two would kick each other off).
 *
 * Ownership: a->net.fetch owns the bus, its timers and the list of topics
 * wanted; a handler gets the message's topic and payload for the time of
 * the call only.
 */
#include "agent.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_RETRY_MS	1000		/* connection lost: try again */
#define FETCH_IDLE_MS	5000		/* close it after this long unused */

static struct fetch_topic *
topic_find(struct agent *a, const char *topic)
{
	struct fetch_topic *t;

	for (t = a->net.fetch.topics; t; t = t->next)
		if (strcmp(t->topic, topic) == 0)
			return t;
	return NULL;
}

static void
subscribe_all(struct agent *a)
{
	struct fetch_topic *t;
	char *topic;

	for (t = a->net.fetch.topics; t; t = t->next) {
		topic = t->topic;
		bus_subscribe(a->net.fetch.bus, &topic, 1, 1, NULL);
	}
}

static void
conn_close(struct agent *a)
{
	if (a->net.fetch.retry_timer)
		loop_del_timer(a->loop, a->net.fetch.retry_timer);
	if (a->net.fetch.idle_timer)
		loop_del_timer(a->loop, a->net.fetch.idle_timer);
	a->net.fetch.retry_timer = a->net.fetch.idle_timer = 0;
	if (a->net.fetch.bus == NULL)
		return;
	loop_del_fd(a->loop, bus_fd(a->net.fetch.bus));
	bus_free(a->net.fetch.bus);
	a->net.fetch.bus = NULL;
}

static void
retry_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;
	struct mu_err err;

	(void)l, (void)id;
	a->net.fetch.retry_timer = 0;
	if (a->net.fetch.bus == NULL)
		return;
	/* Down and wanted by nobody: a later want opens a fresh one. */
	if (a->net.fetch.topics == NULL) {
		conn_close(a);
		return;
	}
	if (bus_connect(a->net.fetch.bus, &err) != MU_OK) {
		log_warnx("fetch connection: %s", err.msg);
		a->net.fetch.retry_timer = loop_add_timer(a->loop, FETCH_RETRY_MS, retry_fired, a);
	}
}

static void
conn_event(struct agent *a, struct bus_event *ev)
{
	struct fetch_topic *t;

	switch (ev->type) {
	case BUS_CONNECTED:
		bus_tune_sockets();
		subscribe_all(a);
		break;
	case BUS_CONNECT_FAILED:
	case BUS_LOST:
		log_warnx("fetch connection: %s", ev->reason);
		if (!a->net.fetch.retry_timer)
			a->net.fetch.retry_timer = loop_add_timer(a->loop, FETCH_RETRY_MS,
			    retry_fired, a);
		break;
	case BUS_MESSAGE:
		/* Late, after its topic was dropped: nobody waits for it. */
		if ((t = topic_find(a, ev->topic)) != NULL)
			t->handler(a, ev->topic, ev->payload, ev->len);
		break;
	default:
		break;
	}
}

static void
on_conn_fd(struct loop *l, int fd, short revents, void *arg)
{
	struct agent *a = arg;
	struct bus_event *ev;

	(void)l, (void)fd, (void)revents;
	/* A handler may drop the last topic and so free the bus: stop then
	 * (an event already taken does not depend on it). */
	while (a->net.fetch.bus && (ev = bus_next(a->net.fetch.bus)) != NULL) {
		conn_event(a, ev);
		bus_event_free(ev);
	}
}

static void
idle_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)l, (void)id;
	a->net.fetch.idle_timer = 0;
	if (a->net.fetch.topics == NULL)
		conn_close(a);
}

static int
conn_open(struct agent *a, struct mu_err *err)
{
	struct bus_opts o = { 0 };
	char client_id[NAME_MAX_LEN + 8];
	int rc;

	snprintf(client_id, sizeof(client_id), "%s.fetch", a->cfg.host);
	o.broker = &a->cfg.broker;
	o.client_id = client_id;
	o.clean_start = true;
	if ((rc = bus_new(&a->net.fetch.bus, &o, err)) != MU_OK)
		return rc;
	loop_add_fd(a->loop, bus_fd(a->net.fetch.bus), POLLIN, on_conn_fd, a);
	if (bus_connect(a->net.fetch.bus, err) != MU_OK) {
		log_warnx("fetch connection: %s", err->msg);
		a->net.fetch.retry_timer = loop_add_timer(a->loop, FETCH_RETRY_MS, retry_fired, a);
	}
	return MU_OK;
}

int
fetch_want(struct agent *a, const char *topic, fetch_handler handler, struct mu_err *err)
{
	struct fetch_topic *t;
	char *sub;
	int rc;

	if (topic_find(a, topic) != NULL)
		return MU_OK;
	if (strlen(topic) >= sizeof(t->topic))
		return mu_errf(err, MU_EINVAL, "topic too long: %.64s...", topic);
	if (a->net.fetch.idle_timer) {
		loop_del_timer(a->loop, a->net.fetch.idle_timer);
		a->net.fetch.idle_timer = 0;
	}
	if (a->net.fetch.bus == NULL && (rc = conn_open(a, err)) != MU_OK)
		return rc;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		if (a->net.fetch.topics == NULL)
			conn_close(a);
		return mu_errf(err, MU_ENOMEM, "out of memory");
	}
	snprintf(t->topic, sizeof(t->topic), "%s", topic);
	t->handler = handler;
	t->next = a->net.fetch.topics;
	a->net.fetch.topics = t;
	if (bus_connected(a->net.fetch.bus)) {
		sub = t->topic;
		bus_subscribe(a->net.fetch.bus, &sub, 1, 1, NULL);
	}	/* else: subscribed on connect */
	return MU_OK;
}

void
fetch_drop(struct agent *a, const char *topic, bool linger)
{
	struct fetch_topic **pp, *t;

	for (pp = &a->net.fetch.topics; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->topic, topic) == 0)
			break;
	if ((t = *pp) == NULL)
		return;
	*pp = t->next;
	if (a->net.fetch.bus && bus_connected(a->net.fetch.bus))
		bus_unsubscribe(a->net.fetch.bus, t->topic, NULL);
	free(t);
	if (a->net.fetch.topics != NULL || a->net.fetch.bus == NULL)
		return;
	if (!linger)
		conn_close(a);
	else if (!a->net.fetch.idle_timer)
		a->net.fetch.idle_timer = loop_add_timer(a->loop, FETCH_IDLE_MS, idle_fired, a);
}

void
fetch_free(struct agent *a)
{
	struct fetch_topic *t;

	while ((t = a->net.fetch.topics) != NULL) {
		a->net.fetch.topics = t->next;
		free(t);
	}
	conn_close(a);
}
