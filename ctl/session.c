/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session.c - the broker session of the CLI and libmuster-client (one
 * code path, design.md §10): connect, pump bus events, subscribe, load the
 * operator key, collect retained messages and the hosts' presence.
 *
 * Nothing here prints: what the user should read goes through ctl_say()
 * (c->say), which the CLI sets to print "muster: TEXT" and the library to
 * keep as the session's error text.  The only signal source is c->sigfd,
 * which the CLI opens and the library leaves at -1.
 */
#include "ctl.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "loop.h"
#include "persist.h"

#define RETAINED_QUIET_MS	200	/* no new retained status for this long: done */
#define SUBACK_WAIT_MS		10000

void
ctl_say(struct ctl *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->say)
		c->say(c, msg);
}

/* ---- configuration ---------------------------------------------------- */

/* *used: the file read, or NULL (no file: defaults and flags). */
int
ctl_load_config(struct ctl *c, const char *path, const char **used)
{
	char home_conf[CONF_PATH_MAX];
	const char *home = getenv("HOME");
	struct mu_err err;

	config_ctl_defaults(&c->cfg);
	if (path == NULL)
		path = getenv("MUSTER_CONFIG");
	if (path == NULL && home != NULL) {
		snprintf(home_conf, sizeof(home_conf), "%s/.config/muster/muster.conf", home);
		if (access(home_conf, F_OK) != 0) {
			*used = NULL;
			return 0;	/* no file: defaults and flags */
		}
		path = home_conf;
	}
	if (path && config_ctl_load(&c->cfg, path, &err) != MU_OK) {
		ctl_say(c, "%s", err.msg);
		return EXIT_USAGE;
	}
	*used = path;
	return 0;
}

/* --broker: comma-separated, each with a scheme Paho knows (as the
 * config file's uri). */
int
ctl_set_uris(struct broker_config *b, const char *v)
{
	static const char *schemes[] = {
		"ssl://", "mqtts://", "wss://", "tcp://", "mqtt://", "ws://",
	};
	char uris[CONF_MAX_URIS][CONF_URI_MAX];
	const char *p = v, *end;
	size_t len, i;
	int n = 0;

	for (;;) {
		while (*p == ' ')
			p++;
		end = strchr(p, ',');
		len = end ? (size_t)(end - p) : strlen(p);
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len == 0 || len >= CONF_URI_MAX || n == CONF_MAX_URIS ||
		    memchr(p, ' ', len) != NULL)
			return -1;
		for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
			if (len > strlen(schemes[i]) &&
			    strncmp(p, schemes[i], strlen(schemes[i])) == 0)
				break;
		if (i == sizeof(schemes) / sizeof(schemes[0]))
			return -1;
		memcpy(uris[n], p, len);
		uris[n++][len] = '\0';
		if (end == NULL)
			break;
		p = end + 1;
	}
	memcpy(b->uris, uris, sizeof(uris));
	b->nuris = n;
	return 0;
}

/* ---- the session ------------------------------------------------------ */

static bool
connected_or_failed(struct ctl *c, struct bus_event *ev, void *arg)
{
	int *rc = arg;

	(void)c;
	if (ev->type == BUS_CONNECTED)
		*rc = 0;
	else if (ev->type == BUS_CONNECT_FAILED) {
		ctl_say(c, "cannot connect to %s: %s", c->cfg.broker.uris[0],
		    ev->reason);
		*rc = EXIT_USAGE;
	} else
		return false;
	return true;
}

int
ctl_connect(struct ctl *c)
{
	struct bus_opts o = { 0 };
	char id[64];
	uint32_t r = 0;
	struct mu_err err;
	uint64_t start;
	int rc = -1;

	if (c->bus)
		return 0;
	/* [cli] persist: borrow the relay's session, else connect directly
	 * (and leave a relay for the next call). */
	if (ctl_persist_connect(c) == 0)
		return 0;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)getpid();
	/* A fresh id per run: two operators never kick each other off. */
	snprintf(id, sizeof(id), "muster-cli-%08x", r);
	o.broker = &c->cfg.broker;
	o.client_id = id;
	o.clean_start = true;
	if (c->session_id[0]) {
		/* The broker keeps the subscriptions and queues what arrives
		 * while this client is away (up to max_queued_messages). */
		o.client_id = c->session_id;
		o.clean_start = false;
		o.session_expiry_s = c->session_expiry_s;
	}
	o.retain_as_published = true;	/* retained results are never answers */
	if (bus_new(&c->bus, &o, &err) != MU_OK || bus_connect(c->bus, &err) != MU_OK) {
		ctl_say(c, "%s", err.msg);
		return EXIT_USAGE;
	}
	/* Pumped in 2 ms steps for the first half second, waking Paho's
	 * receive thread from its 100 ms nap once the socket is there
	 * (bus_nudge()); then the rest of the 15 s at once. */
	start = now_mono_ms();
	while (rc == -1 && !c->interrupted && now_mono_ms() - start < 500) {
		ctl_pump(c, now_mono_ms() + 2, connected_or_failed, &rc, NULL);
		if (rc == -1)
			bus_nudge();
	}
	if (rc == -1 && !c->interrupted)
		ctl_pump(c, start + 15000, connected_or_failed, &rc, NULL);
	if (rc == -1) {
		if (!c->interrupted)
			ctl_say(c, "no answer from the broker at %s",
			    c->cfg.broker.uris[0]);
		return EXIT_USAGE;
	}
	if (rc == 0)
		bus_tune_sockets();
	return rc;
}

/* The job id of a results topic (ROOT/v1/results/JOB/HOST[/events]) in
 * buf, or NULL. */
static const char *
topic_job(const struct ctl *c, const char *topic, char *buf, size_t size)
{
	size_t rl = strlen(c->root), n;
	const char *p, *end;

	if (strncmp(topic, c->root, rl) != 0 || strncmp(topic + rl, "/v1/results/", 12) != 0)
		return NULL;
	p = topic + rl + 12;
	if ((end = strchr(p, '/')) == NULL || (n = (size_t)(end - p)) == 0 || n >= size)
		return NULL;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

void
ctl_pump(struct ctl *c, uint64_t deadline, ctl_event_fn *fn, void *arg,
    ctl_tick_fn *tick)
{
	struct pollfd pfd[2] = { { bus_fd(c->bus), POLLIN, 0 }, { c->sigfd, POLLIN, 0 } };
	struct signalfd_siginfo si;
	struct bus_event *ev;
	uint64_t now;
	int wait;

	for (;;) {
		while ((ev = bus_next(c->bus)) != NULL) {
			char job[JOBID_MAX_LEN + 1];
			bool done;

			/* A result or event of a job that is not the one being
			 * waited for (the library's other open jobs) goes to its
			 * own job instead of being dropped as not ours. */
			if (c->route && ev->type == BUS_MESSAGE &&
			    topic_job(c, ev->topic, job, sizeof(job)) != NULL &&
			    c->route(c, ev, job)) {
				bus_event_free(ev);
				continue;
			}
			done = fn(c, ev, arg);

			bus_event_free(ev);
			if (done)
				return;
		}
		now = now_mono_ms();
		if (c->interrupted || (deadline && now >= deadline))
			return;
		wait = tick ? 200 : -1;
		if (deadline && (wait == -1 || deadline - now < (uint64_t)wait))
			wait = (int)(deadline - now);
		if (poll(pfd, 2, wait) > 0 && (pfd[1].revents & POLLIN) &&
		    read(c->sigfd, &si, sizeof(si)) == sizeof(si))
			c->interrupted = true;
		if (tick && tick(c, arg))
			return;
	}
}

int
ctl_subscribe(struct ctl *c, const char *topic)
{
	char *topics[1] = { (char *)topic };
	struct mu_err err;

	if (bus_subscribe(c->bus, topics, 1, 1, &err) != MU_OK) {
		ctl_say(c, "%s", err.msg);
		return EXIT_USAGE;
	}
	return 0;
}

int
ctl_load_key(struct ctl *c)
{
	struct mu_err err;

	if (c->key)
		return 0;
	if (c->cfg.operator_key[0] == '\0') {
		ctl_say(c, "no operator key: set [operator] key= or --operator-key");
		return EXIT_USAGE;
	}
	if (sign_key_load_private(c->cfg.operator_key, &c->key, &err) != MU_OK) {
		ctl_say(c, "%s", err.msg);
		return EXIT_USAGE;
	}
	return 0;
}

/* Take one retained message (may steal ev->payload); true: no need to
 * wait for more. */
struct retained {
	retained_fn *take;
	void *arg;
	bool subacked, lost, done;
	uint64_t last;
};

static bool
on_retained(struct ctl *c, struct bus_event *ev, void *arg)
{
	struct retained *r = arg;

	(void)c;
	if (ev->type == BUS_LOST) {
		ctl_say(c, "lost the broker: %s", ev->reason);
		r->lost = true;
		return true;
	}
	if (ev->type == BUS_SUBSCRIBED || ev->type == BUS_SUBSCRIBE_FAILED) {
		r->subacked = true;
		r->last = now_mono_ms();
		return true;	/* a new deadline: the quiet spell starts */
	}
	/* Only what the broker keeps: a live publish is not the state. */
	if (ev->type == BUS_MESSAGE && ev->retained && ev->len > 0) {
		r->done = r->take(ev, r->arg);
		r->last = now_mono_ms();
	}
	return r->done;
}

/*
 * Subscribe to filter and hand each retained message to take() (which may
 * steal ev->payload), until nothing has come for quiet_ms after the SUBACK
 * or the last message, or take() says it has what it wanted.  Mosquitto
 * sends retained messages right after the SUBACK, so a quiet spell means
 * we have them all.
 */
int
retained_collect(struct ctl *c, const char *filter, uint64_t quiet_ms,
    retained_fn *take, void *arg)
{
	struct retained r = { .take = take, .arg = arg };
	uint64_t deadline = now_mono_ms() + SUBACK_WAIT_MS, until;
	int rc;

	if ((rc = ctl_subscribe(c, filter)) != 0)
		return rc;
	while (!c->interrupted && !r.lost) {
		if (r.done)
			return 0;
		if (r.subacked) {
			until = r.last + quiet_ms;
			if (now_mono_ms() >= until)
				return 0;
		} else if (now_mono_ms() >= deadline) {
			ctl_say(c, "no SUBACK for %s", filter);
			return EXIT_USAGE;
		} else
			until = deadline;
		ctl_pump(c, until, on_retained, &r, NULL);
	}
	return EXIT_USAGE;
}

/* ---- presence ---- */

struct collect {
	struct host_list *list;
	bool subscribed;
	uint64_t last;
};

/* Keep a status that passed the check (verify.c); count the others. */
static void
host_put(struct ctl *c, struct host_list *h, struct bus_event *ev)
{
	struct host_status hs = { 0 }, *v;
	struct mu_err err;
	size_t i;

	if (verify_status(c, ev->topic, ev->payload, ev->len, &hs.st, &err) != MU_OK) {
		forged_note(c, ev->topic, err.msg);
		return;
	}
	hs.raw = ev->payload;
	for (i = 0; i < h->n; i++)
		if (strcmp(h->v[i].st.host, hs.st.host) == 0) {
			wire_doc_free(&h->v[i].st.doc);
			free(h->v[i].raw);
			h->v[i] = hs;
			ev->payload = NULL;
			return;
		}
	if ((v = reallocarray(h->v, h->n + 1, sizeof(*v))) == NULL) {
		wire_doc_free(&hs.st.doc);
		return;
	}
	h->v = v;
	h->v[h->n++] = hs;
	ev->payload = NULL;	/* owned by the list now */
}

static bool
on_status(struct ctl *c, struct bus_event *ev, void *arg)
{
	struct collect *k = arg;

	if (ev->type == BUS_SUBSCRIBED || ev->type == BUS_SUBSCRIBE_FAILED) {
		k->subscribed = true;
		k->last = now_mono_ms();
		return true;	/* the quiet spell starts: a new deadline */
	} else if (ev->type == BUS_MESSAGE && ev->len > 0) {
		host_put(c, k->list, ev);
		k->last = now_mono_ms();
	}
	return false;
}

int
hosts_collect(struct ctl *c, struct host_list *out)
{
	struct collect k = { .list = out };
	char topic[TOPIC_MAX];
	uint64_t deadline;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = EXIT_USAGE;
	if (topic_filter(topic, sizeof(topic), c->root, TOPIC_HOST_STATUS, "+", NULL) ||
	    (rc = ctl_subscribe(c, topic)) != 0)
		return rc;
	/* The broker sends retained messages right after the SUBACK; a quiet
	 * spell after the SUBACK or the last of them means we have them all. */
	deadline = now_mono_ms() + 5000;
	while (!c->interrupted && now_mono_ms() < deadline) {
		if (k.subscribed && now_mono_ms() - k.last >= RETAINED_QUIET_MS)
			break;
		ctl_pump(c, k.subscribed && k.last + RETAINED_QUIET_MS < deadline ?
		    k.last + RETAINED_QUIET_MS : deadline, on_status, &k, NULL);
	}
	if (c->interrupted) {
		hosts_free(out);
		return EXIT_USAGE;
	}
	return 0;
}

void
hosts_free(struct host_list *h)
{
	size_t i;

	for (i = 0; i < h->n; i++) {
		wire_doc_free(&h->v[i].st.doc);
		free(h->v[i].raw);
	}
	free(h->v);
	memset(h, 0, sizeof(*h));
}

