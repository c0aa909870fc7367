/* SPDX-License-Identifier: Apache-2.0 */
/*
 * persist.c - the persist relay: one broker session shared by the calls of
 * one user, over a Unix socket (persist.h, relay.h).
 */
#include "persist.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "loop.h"
#include "paho_idle.h"
#include "relay.h"

/* Bounds: a misbehaving client costs only its own connection. */
#define PERSIST_MAX_CLIENTS	32
#define PERSIST_MAX_FILTERS	64	/* per client */
#define PERSIST_MAX_INFLIGHT	1024	/* publishes per client awaiting PUBACK */
#define PERSIST_MAX_PENDING	4096	/* publishes and subscribes, all clients */
/* What a client that does not read may have queued before it is dropped:
 * one largest message and change. */
#define PERSIST_MAX_OUTQ	((size_t)RELAY_MAX_FRAME + 64u * 1024)

struct client {
	int fd;				/* -1: slot free */
	uint64_t serial;		/* tells a reused slot from its last owner */
	bool hello;			/* "hello" seen */
	struct ipc_reader in;
	uint8_t *out;			/* frames not yet written, from out_off */
	size_t out_len, out_off, out_cap;
	char *filters[PERSIST_MAX_FILTERS];
	int nfilters;
	unsigned inflight;
};

/* A broker acknowledgement owed to a client. */
struct pending {
	bool sub;			/* SUBACK (in order) or PUBACK (by token) */
	int bus_token;
	int32_t client_token;
	uint64_t serial;
};

struct relay {
	struct ctl *c;
	struct loop *loop;
	struct bus *bus;
	int listen_fd;
	uint64_t idle_ms;
	uint64_t last_activity;		/* monotonic ms */
	uint64_t next_serial;
	int exit_code;
	struct client clients[PERSIST_MAX_CLIENTS];
	struct pending pending[PERSIST_MAX_PENDING];
	size_t npending;
};

/* ---- clients ------------------------------------------------------------- */

static struct client *
client_by_serial(struct relay *r, uint64_t serial)
{
	int i;

	for (i = 0; i < PERSIST_MAX_CLIENTS; i++)
		if (r->clients[i].fd != -1 && r->clients[i].serial == serial)
			return &r->clients[i];
	return NULL;
}

static bool
filter_held_by_other(struct relay *r, const struct client *except, const char *filter)
{
	int i, j;

	for (i = 0; i < PERSIST_MAX_CLIENTS; i++) {
		const struct client *k = &r->clients[i];

		for (j = 0; k != except && k->fd != -1 && j < k->nfilters; j++)
			if (strcmp(k->filters[j], filter) == 0)
				return true;
	}
	return false;
}

/* The broker subscription ends with the last client that wanted it, so
 * an idle relay receives nothing. */
static void
filter_release(struct relay *r, struct client *k, int idx)
{
	struct mu_err err;
	char *f = k->filters[idx];

	k->filters[idx] = k->filters[--k->nfilters];
	if (!filter_held_by_other(r, k, f) && bus_unsubscribe(r->bus, f, &err) != MU_OK)
		log_msg(LOG_WARNING, "%s", err.msg);
	free(f);
}

static void
client_drop(struct relay *r, struct client *k, const char *why)
{
	if (why)
		log_msg(LOG_INFO, "persist: dropping a client: %s", why);
	loop_del_fd(r->loop, k->fd);
	close(k->fd);
	while (k->nfilters > 0)
		filter_release(r, k, k->nfilters - 1);
	ipc_reader_free(&k->in);
	free(k->out);
	memset(k, 0, sizeof(*k));
	k->fd = -1;
	r->last_activity = now_mono_ms();
}

static void on_client(struct loop *l, int fd, short revents, void *arg);

static void
client_flush(struct relay *r, struct client *k)
{
	ssize_t n;

	while (k->out_off < k->out_len) {
		n = send(k->fd, k->out + k->out_off, k->out_len - k->out_off,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			client_drop(r, k, "write failed");
			return;
		}
		k->out_off += (size_t)n;
	}
	if (k->out_off == k->out_len)
		k->out_off = k->out_len = 0;
	loop_add_fd(r->loop, k->fd, POLLIN | (k->out_len ? POLLOUT : 0), on_client, r);
}

/* Queue an encoded frame (header included) for the client; false if the
 * client was dropped. */
static bool
client_queue(struct relay *r, struct client *k, const void *buf, size_t len)
{
	size_t need;

	if (k->out_off > 0 && k->out_off == k->out_len)
		k->out_off = k->out_len = 0;
	need = k->out_len + len;
	if (need - k->out_off > PERSIST_MAX_OUTQ) {
		client_drop(r, k, "does not read its messages");
		return false;
	}
	if (need > k->out_cap) {
		size_t cap = k->out_cap ? k->out_cap : 4096;
		uint8_t *nb;

		while (cap < need)
			cap *= 2;
		if ((nb = realloc(k->out, cap)) == NULL) {
			client_drop(r, k, "out of memory");
			return false;
		}
		k->out = nb, k->out_cap = cap;
	}
	memcpy(k->out + k->out_len, buf, len);
	k->out_len += len;
	client_flush(r, k);
	return client_by_serial(r, k->serial) == k;
}

static bool
client_send(struct relay *r, struct client *k, const struct relay_frame *f)
{
	msgpack_sbuffer sb;
	struct mu_err err;
	bool ok;

	msgpack_sbuffer_init(&sb);
	if (relay_frame_encode(f, &sb, &err) != MU_OK) {
		msgpack_sbuffer_destroy(&sb);
		client_drop(r, k, err.msg);
		return false;
	}
	ok = client_queue(r, k, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return ok;
}

static bool
pending_add(struct relay *r, bool sub, int bus_token, int32_t client_token, uint64_t serial)
{
	if (r->npending == PERSIST_MAX_PENDING)
		return false;
	r->pending[r->npending++] = (struct pending){ sub, bus_token, client_token, serial };
	return true;
}

/* ---- client requests ------------------------------------------------------ */

static void
do_sub(struct relay *r, struct client *k, const struct relay_frame *f)
{
	struct relay_frame ack = { .type = RELAY_SUBACK };
	char *filter = wire_str_dup(f->topic);
	char *topics[1] = { filter };
	struct mu_err err;
	int i;

	/* Subscribed on the broker again even when already there: that is
	 * what makes the broker send the retained messages for this call. */
	if (filter == NULL || k->nfilters == PERSIST_MAX_FILTERS ||
	    r->npending == PERSIST_MAX_PENDING ||
	    bus_subscribe(r->bus, topics, 1, f->qos, &err) != MU_OK) {
		free(filter);
		client_send(r, k, &ack);	/* ok = false */
		return;
	}
	pending_add(r, true, 0, 0, k->serial);
	for (i = 0; i < k->nfilters; i++)
		if (strcmp(k->filters[i], filter) == 0)
			break;
	if (i < k->nfilters)
		free(filter);
	else
		k->filters[k->nfilters++] = filter;
}

static void
do_unsub(struct relay *r, struct client *k, const struct relay_frame *f)
{
	int i;

	for (i = 0; i < k->nfilters; i++)
		if (strlen(k->filters[i]) == f->topic.len &&
		    memcmp(k->filters[i], f->topic.ptr, f->topic.len) == 0) {
			filter_release(r, k, i);
			return;
		}
}

static void
do_pub(struct relay *r, struct client *k, const struct relay_frame *f)
{
	struct relay_frame ack = { .type = RELAY_PUBACK, .token = f->token };
	char *topic = wire_str_dup(f->topic);
	struct mu_err err;
	int tok = 0;

	if (topic == NULL || k->inflight >= PERSIST_MAX_INFLIGHT ||
	    r->npending == PERSIST_MAX_PENDING)
		snprintf(err.msg, sizeof(err.msg), "persist relay: too many in flight");
	else if (bus_publish(r->bus, topic, f->payload.ptr, f->payload.len, f->qos,
	    f->retain, f->expiry_s, &tok, &err) == MU_OK) {
		pending_add(r, false, tok, f->token, k->serial);
		k->inflight++;
		free(topic);
		return;
	}
	free(topic);
	ack.reason = (struct wire_str){ err.msg, strlen(err.msg) };
	client_send(r, k, &ack);
}

/* One frame from a client; false if the client was dropped. */
static bool
client_frame(struct relay *r, struct client *k, const uint8_t *buf, size_t len)
{
	struct relay_frame f;
	struct mu_err err;
	bool ok = true;

	if (relay_frame_decode(buf, len, &f, &err) != MU_OK) {
		client_drop(r, k, err.msg);
		return false;
	}
	r->last_activity = now_mono_ms();
	if (!k->hello && (f.type != RELAY_HELLO || f.version != RELAY_VERSION)) {
		client_drop(r, k, "no hello");
		ok = false;
	} else if (f.type == RELAY_HELLO) {
		struct relay_frame ready = { .type = RELAY_READY, .ok = bus_connected(r->bus) };
		struct relay_frame conn = { .type = RELAY_CONNECTED };

		k->hello = true;
		ok = client_send(r, k, &ready) && (!ready.ok || client_send(r, k, &conn));
	} else if (f.type == RELAY_SUB)
		do_sub(r, k, &f);
	else if (f.type == RELAY_UNSUB)
		do_unsub(r, k, &f);
	else if (f.type == RELAY_PUB)
		do_pub(r, k, &f);
	else if (f.type == RELAY_STOP) {
		log_msg(LOG_INFO, "persist: asked to stop");
		loop_stop(r->loop);
	} else {
		client_drop(r, k, "unexpected frame");
		ok = false;
	}
	wire_doc_free(&f.doc);
	return ok && client_by_serial(r, k->serial) == k;
}

static void
on_client(struct loop *l, int fd, short revents, void *arg)
{
	struct relay *r = arg;
	struct client *k = NULL;
	const uint8_t *frame;
	uint8_t buf[64 * 1024];
	struct mu_err err;
	size_t flen;
	ssize_t n;
	int i;

	(void)l;
	for (i = 0; i < PERSIST_MAX_CLIENTS && k == NULL; i++)
		if (r->clients[i].fd == fd)
			k = &r->clients[i];
	if (k == NULL)
		return;
	if (revents & POLLOUT) {
		uint64_t serial = k->serial;

		client_flush(r, k);
		if (client_by_serial(r, serial) != k)
			return;
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_drop(r, k, NULL);	/* the call ended */
		return;
	}
	if (ipc_reader_feed(&k->in, buf, (size_t)n, &err) != MU_OK) {
		client_drop(r, k, err.msg);
		return;
	}
	for (;;) {
		int rc = ipc_reader_next(&k->in, &frame, &flen);

		if (rc == MU_ENOENT)
			break;
		if (rc != MU_OK) {
			client_drop(r, k, "frame over the bound");
			return;
		}
		if (!client_frame(r, k, frame, flen))
			return;
	}
}

static bool
peer_uid_ok(int fd)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 &&
	    cr.uid == getuid();
}

static void
on_accept(struct loop *l, int fd, short revents, void *arg)
{
	struct relay *r = arg;
	int cfd, i;

	(void)revents;
	if ((cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) == -1)
		return;
	/* Another user never gets a byte (the folder is 0700 as well). */
	if (!peer_uid_ok(cfd)) {
		log_msg(LOG_WARNING, "persist: refused a client of another user");
		close(cfd);
		return;
	}
	for (i = 0; i < PERSIST_MAX_CLIENTS && r->clients[i].fd != -1; i++)
		;
	if (i == PERSIST_MAX_CLIENTS) {
		close(cfd);		/* it connects directly instead */
		return;
	}
	r->clients[i].fd = cfd;
	r->clients[i].serial = ++r->next_serial;
	r->clients[i].in.max_frame = RELAY_MAX_FRAME;
	r->last_activity = now_mono_ms();
	if (loop_add_fd(l, cfd, POLLIN, on_client, r) != 0)
		client_drop(r, &r->clients[i], "out of memory");
}

/* ---- the broker side -------------------------------------------------- */

static void
forward(struct relay *r, const struct bus_event *ev)
{
	struct relay_frame f = { .type = RELAY_MSG };
	msgpack_sbuffer sb;
	struct mu_err err;
	int i, j;

	f.topic = (struct wire_str){ ev->topic, strlen(ev->topic) };
	f.payload = (struct wire_bytes){ ev->payload, ev->len };
	f.retain = ev->retained;
	msgpack_sbuffer_init(&sb);
	if (f.topic.len <= RELAY_MAX_TOPIC && relay_frame_encode(&f, &sb, &err) == MU_OK)
		for (i = 0; i < PERSIST_MAX_CLIENTS; i++) {
			struct client *k = &r->clients[i];

			for (j = 0; k->fd != -1 && k->hello && j < k->nfilters; j++)
				if (relay_topic_match(k->filters[j], ev->topic, f.topic.len)) {
					client_queue(r, k, sb.data, sb.size);
					break;
				}
		}
	msgpack_sbuffer_destroy(&sb);
}

static void
acknowledge(struct relay *r, const struct bus_event *ev)
{
	bool sub = ev->type == BUS_SUBSCRIBED || ev->type == BUS_SUBSCRIBE_FAILED;
	bool ok = ev->type == BUS_SUBSCRIBED || ev->type == BUS_PUBLISHED;
	struct relay_frame f = { .type = sub ? RELAY_SUBACK : RELAY_PUBACK, .ok = ok };
	struct client *k;
	size_t i;

	/* Subscribes are answered in order (the bus gives no token for them);
	 * publishes by token. */
	for (i = 0; i < r->npending; i++)
		if (r->pending[i].sub == sub && (sub || r->pending[i].bus_token == ev->token))
			break;
	if (i == r->npending)
		return;
	f.token = r->pending[i].client_token;
	k = client_by_serial(r, r->pending[i].serial);
	memmove(&r->pending[i], &r->pending[i + 1], (r->npending - i - 1) * sizeof(r->pending[0]));
	r->npending--;
	if (k == NULL)
		return;		/* the call has ended */
	if (!sub && k->inflight > 0)
		k->inflight--;
	if (!ok && !sub)
		f.reason = (struct wire_str){ ev->reason, strlen(ev->reason) };
	client_send(r, k, &f);
}

static void
on_bus(struct loop *l, int fd, short revents, void *arg)
{
	struct relay *r = arg;
	struct bus_event *ev;

	(void)fd, (void)revents;
	while ((ev = bus_next(r->bus)) != NULL) {
		if (ev->type == BUS_MESSAGE)
			forward(r, ev);
		else if (ev->type == BUS_LOST) {
			/* Calls see the socket close, as they would see a broker
			 * drop them; the next call starts a new relay. */
			log_msg(LOG_WARNING, "persist: broker session lost: %s", ev->reason);
			r->exit_code = 1;
			loop_stop(l);
		} else if (ev->type != BUS_CONNECTED && ev->type != BUS_CONNECT_FAILED)
			acknowledge(r, ev);
		bus_event_free(ev);
	}
}

static void
on_signal(struct loop *l, int fd, short revents, void *arg)
{
	struct signalfd_siginfo si;

	(void)revents, (void)arg;
	if (read(fd, &si, sizeof(si)) == sizeof(si))
		loop_stop(l);
}

static void
on_idle_check(struct loop *l, uint64_t id, void *arg)
{
	struct relay *r = arg;
	uint64_t now = now_mono_ms();
	int i, n = 0;

	(void)id;
	for (i = 0; i < PERSIST_MAX_CLIENTS; i++)
		n += r->clients[i].fd != -1;
	if (n > 0)
		r->last_activity = now;
	if (now - r->last_activity >= r->idle_ms) {
		log_msg(LOG_INFO, "persist: idle for %llu ms, leaving",
		    (unsigned long long)r->idle_ms);
		loop_stop(l);
		return;
	}
	loop_add_timer(l, r->idle_ms < 1000 ? r->idle_ms : 1000, on_idle_check, r);
}

/* ---- the relay process ------------------------------------------------ */

/* Connect to the broker and wait (at most 15 s) for the outcome. */
static int
relay_connect(struct relay *r)
{
	struct bus_opts o = { 0 };
	struct pollfd pfd;
	struct bus_event *ev;
	struct mu_err err;
	uint64_t deadline = now_mono_ms() + 15000;
	char id[64];
	uint32_t rnd = 0;
	int rc = -1;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)getpid();
	snprintf(id, sizeof(id), "muster-persist-%08x", rnd);
	o.broker = &r->c->cfg.broker;
	o.client_id = id;
	o.clean_start = true;
	o.retain_as_published = true;	/* as the CLI's own session */
	if (bus_new(&r->bus, &o, &err) != MU_OK || bus_connect(r->bus, &err) != MU_OK) {
		log_msg(LOG_WARNING, "persist: %s", err.msg);
		return -1;
	}
	pfd = (struct pollfd){ bus_fd(r->bus), POLLIN, 0 };
	while (rc == -1 && now_mono_ms() < deadline) {
		poll(&pfd, 1, 50);
		bus_nudge();	/* Paho's first receive nap (bus.h) */
		while (rc == -1 && (ev = bus_next(r->bus)) != NULL) {
			if (ev->type == BUS_CONNECTED)
				rc = 0;
			else if (ev->type == BUS_CONNECT_FAILED) {
				log_msg(LOG_WARNING, "persist: cannot connect: %s", ev->reason);
				rc = 1;
			}
			bus_event_free(ev);
		}
	}
	if (rc == 0)
		bus_tune_sockets();
	return rc == 0 ? 0 : -1;
}

/* The socket, 0600, in place of a stale one (we hold the lock). */
static int
relay_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, rc;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) == -1)
		return -1;
	unlink(path);
	old = umask(0177);	/* born 0600: no window with wider rights */
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc == -1 || chmod(path, 0600) == -1 || listen(fd, 64) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
ctl_persist_serve(struct ctl *c)
{
	char path[RELAY_SOCK_PATH_MAX], lock[RELAY_SOCK_PATH_MAX + 8];
	struct relay *r;
	struct mu_err err;
	int lock_fd, i, rc = 1;

	if (c->cfg.persist_ms == 0) {
		fprintf(stderr, "muster: --persist-serve needs --persist=DUR\n");
		return EXIT_USAGE;
	}
	if (relay_socket_path(&c->cfg.broker, true, path, &err) != MU_OK) {
		fprintf(stderr, "muster: %s\n", err.msg);
		return EXIT_USAGE;
	}
	/* One relay per socket: a second one started by a concurrent call
	 * leaves at once. */
	snprintf(lock, sizeof(lock), "%.*s.lock", (int)(strlen(path) - 5), path);
	lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock_fd == -1 || flock(lock_fd, LOCK_EX | LOCK_NB) == -1) {
		if (lock_fd != -1)
			close(lock_fd);
		return 0;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL || (r->loop = loop_new()) == NULL) {
		free(r);
		close(lock_fd);
		return 1;
	}
	r->c = c;
	r->idle_ms = c->cfg.persist_ms;
	r->last_activity = now_mono_ms();
	for (i = 0; i < PERSIST_MAX_CLIENTS; i++)
		r->clients[i].fd = -1;
	/* Paho's receive thread naps 100 ms after each empty poll; while the
	 * session is idle (waiting for a result) paho_idle.c skips that nap,
	 * so a result is forwarded when it comes.  A quarter of the keepalive,
	 * as the agent: the PINGREQ still leaves in time. */
	if (c->cfg.broker.keepalive_ms / 4 > 1000)
		paho_idle_enable((unsigned)(c->cfg.broker.keepalive_ms / 4));
	/* Listen only once connected: a call that finds the socket can use it. */
	if (relay_connect(r) == 0 && (r->listen_fd = relay_listen(path)) != -1) {
		loop_add_fd(r->loop, r->listen_fd, POLLIN, on_accept, r);
		loop_add_fd(r->loop, bus_fd(r->bus), POLLIN, on_bus, r);
		if (c->sigfd != -1)
			loop_add_fd(r->loop, c->sigfd, POLLIN, on_signal, r);
		loop_add_timer(r->loop, r->idle_ms < 1000 ? r->idle_ms : 1000, on_idle_check, r);
		loop_run(r->loop);
		rc = r->exit_code;
		/* Gone before anyone can connect to a relay that stopped. */
		unlink(path);
		close(r->listen_fd);
		/* No longer listening: a new relay may start while this one
		 * still says goodbye to the broker (Paho's teardown is slow). */
		close(lock_fd);
		lock_fd = -1;
		for (i = 0; i < PERSIST_MAX_CLIENTS; i++)
			if (r->clients[i].fd != -1)
				client_drop(r, &r->clients[i], NULL);
	}
	if (r->bus && bus_connected(r->bus))
		bus_disconnect(r->bus, 200);
	bus_free(r->bus);
	loop_free(r->loop);
	free(r);
	if (lock_fd != -1)
		close(lock_fd);
	return rc;
}

int
ctl_persist_stop(struct ctl *c)
{
	char path[RELAY_SOCK_PATH_MAX];
	struct mu_err err;
	int rc;

	if (relay_socket_path(&c->cfg.broker, false, path, &err) != MU_OK)
		return 0;
	rc = bus_stop_relay(path, &err);
	if (rc != MU_OK && rc != MU_ENOENT) {
		fprintf(stderr, "muster: %s\n", err.msg);
		return EXIT_USAGE;
	}
	return 0;
}
