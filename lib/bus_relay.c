/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bus_relay.c - a broker session borrowed from the persist relay.
 */
#include "bus_relay.h"
#include "relay.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "loop.h"

/* Publishes awaiting their "puback": a CLI has a handful at a time. */
#define RELAY_MAX_INFLIGHT	1024

struct bus_relay {
	int fd;
	bool connected;		/* "connected" seen, no hang-up since */
	bool lost;		/* BUS_LOST handed out: nothing more comes */
	int next_token;
	/* The frame being read: its header, then its body. */
	uint8_t hdr[4];
	size_t hdr_len;
	uint8_t *body;
	size_t body_len, body_have;
	int inflight[RELAY_MAX_INFLIGHT];
	size_t ninflight;
};

/* ---- reading frames ---------------------------------------------------- */

/*
 * Read at most up to the end of the current frame.  MU_OK with *frame set
 * (owned by the caller) when one is whole, MU_ENOENT when more must come,
 * MU_EIO on hang-up, MU_EINVAL for a frame over the bound.
 */
static int
read_frame(struct bus_relay *r, uint8_t **frame, size_t *len)
{
	ssize_t n;

	*frame = NULL;
	while (r->hdr_len < 4) {
		n = recv(r->fd, r->hdr + r->hdr_len, 4 - r->hdr_len, MSG_DONTWAIT);
		if (n == 0)
			return MU_EIO;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? MU_ENOENT : MU_EIO;
		r->hdr_len += (size_t)n;
		if (r->hdr_len < 4)
			continue;
		r->body_len = (size_t)r->hdr[0] << 24 | (size_t)r->hdr[1] << 16 |
		    (size_t)r->hdr[2] << 8 | r->hdr[3];
		if (r->body_len == 0 || r->body_len > RELAY_MAX_FRAME)
			return MU_EINVAL;
		if ((r->body = malloc(r->body_len)) == NULL)
			return MU_EIO;
		r->body_have = 0;
	}
	while (r->body_have < r->body_len) {
		n = recv(r->fd, r->body + r->body_have, r->body_len - r->body_have,
		    MSG_DONTWAIT);
		if (n == 0)
			return MU_EIO;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? MU_ENOENT : MU_EIO;
		r->body_have += (size_t)n;
	}
	*frame = r->body, *len = r->body_len;
	r->body = NULL;
	r->hdr_len = 0;
	return MU_OK;
}

/* All of buf, blocking; MSG_NOSIGNAL: a relay that left must not kill a
 * library's host process with SIGPIPE. */
static int
send_full(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return MU_EIO;
		buf += n;
		len -= (size_t)n;
	}
	return MU_OK;
}

static int
send_frame(struct bus_relay *r, const struct relay_frame *f, struct mu_err *err)
{
	msgpack_sbuffer sb;
	int rc;

	if (r->fd == -1)
		return mu_errf(err, MU_EIO, "persist relay: connection closed");
	msgpack_sbuffer_init(&sb);
	if ((rc = relay_frame_encode(f, &sb, err)) == MU_OK &&
	    send_full(r->fd, sb.data, sb.size) != MU_OK)
		rc = mu_errf(err, MU_EIO, "persist relay: %s", strerror(errno));
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* ---- opening ------------------------------------------------------------ */

static int
peer_is_us(int fd)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 &&
	    cr.uid == getuid();
}

/* Wait for the "ready" frame; the "connected" after it stays queued in the
 * socket for bus_relay_next(). */
static int
await_ready(struct bus_relay *r, int timeout_ms, struct mu_err *err)
{
	uint64_t deadline = now_mono_ms() + (uint64_t)timeout_ms;
	struct relay_frame f;
	struct pollfd pfd = { r->fd, POLLIN, 0 };
	uint8_t *frame;
	size_t len;
	int rc;

	for (;;) {
		uint64_t now = now_mono_ms();

		rc = read_frame(r, &frame, &len);
		if (rc == MU_OK)
			break;
		if (rc != MU_ENOENT)
			return mu_errf(err, MU_EIO, "persist relay hung up");
		if (now >= deadline)
			return mu_errf(err, MU_EIO, "persist relay did not answer");
		if (poll(&pfd, 1, (int)(deadline - now)) < 0 && errno != EINTR)
			return mu_errf(err, MU_EIO, "poll: %s", strerror(errno));
	}
	rc = relay_frame_decode(frame, len, &f, err);
	if (rc == MU_OK) {
		if (f.type != RELAY_READY)
			rc = mu_errf(err, MU_EINVAL, "persist relay: no ready frame");
		else if (!f.ok)
			rc = mu_errf(err, MU_ESTALE, "persist relay: broker session not up");
		wire_doc_free(&f.doc);
	}
	free(frame);
	return rc;
}

int
bus_relay_open(struct bus_relay **out, const char *path, int timeout_ms,
    struct mu_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct relay_frame hello = { .type = RELAY_HELLO, .version = RELAY_VERSION };
	struct bus_relay *r;
	int rc;

	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return mu_errf(err, MU_EINVAL, "%s: path too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	r->next_token = 1;
	if ((r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		free(r);
		return mu_errf(err, MU_EIO, "socket: %s", strerror(errno));
	}
	if (connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		/* A socket file nobody listens on: a relay that died (kill -9).
		 * Remove it so that the next relay can bind. */
		if (errno == ECONNREFUSED)
			unlink(path);
		rc = mu_errf(err, MU_ENOENT, "%s: %s", path, strerror(errno));
	} else if (!peer_is_us(r->fd))
		rc = mu_errf(err, MU_ETRUST, "%s: relay runs as another user", path);
	else if ((rc = send_frame(r, &hello, err)) == MU_OK)
		rc = await_ready(r, timeout_ms, err);
	if (rc != MU_OK) {
		bus_relay_free(r);
		return rc;
	}
	*out = r;
	return MU_OK;
}

void
bus_relay_free(struct bus_relay *r)
{
	if (r == NULL)
		return;
	if (r->fd != -1)
		close(r->fd);
	free(r->body);
	free(r);
}

int
bus_relay_fd(const struct bus_relay *r)
{
	return r->fd;
}

bool
bus_relay_connected(const struct bus_relay *r)
{
	return r->connected;
}

/* ---- events ------------------------------------------------------------- */

static struct bus_event *
event_new(enum bus_event_type type)
{
	struct bus_event *ev = calloc(1, sizeof(*ev));

	if (ev)
		ev->type = type;
	return ev;
}

static void
inflight_drop(struct bus_relay *r, int token)
{
	size_t i;

	for (i = 0; i < r->ninflight; i++)
		if (r->inflight[i] == token) {
			r->inflight[i] = r->inflight[--r->ninflight];
			return;
		}
}

/* One decoded frame as a bus event; NULL for a frame that is not one. */
static struct bus_event *
frame_event(struct bus_relay *r, const struct relay_frame *f)
{
	struct bus_event *ev = NULL;

	switch (f->type) {
	case RELAY_CONNECTED:
		r->connected = true;
		ev = event_new(BUS_CONNECTED);
		break;
	case RELAY_SUBACK:
		ev = event_new(f->ok ? BUS_SUBSCRIBED : BUS_SUBSCRIBE_FAILED);
		break;
	case RELAY_PUBACK:
		inflight_drop(r, f->token);
		if ((ev = event_new(f->ok ? BUS_PUBLISHED : BUS_PUBLISH_FAILED)) != NULL) {
			ev->token = f->token;
			if (!f->ok)
				printable_copy(ev->reason, sizeof(ev->reason),
				    f->reason.ptr ? f->reason.ptr : "publish failed",
				    f->reason.ptr ? f->reason.len : 14);
		}
		break;
	case RELAY_MSG:
		if ((ev = event_new(BUS_MESSAGE)) == NULL)
			break;
		ev->retained = f->retain;
		ev->len = f->payload.len;
		if ((ev->topic = wire_str_dup(f->topic)) == NULL ||
		    (ev->len && (ev->payload = malloc(ev->len)) == NULL)) {
			free(ev->topic);
			free(ev);
			return NULL;
		}
		if (ev->len)
			memcpy(ev->payload, f->payload.ptr, ev->len);
		break;
	default:
		break;
	}
	return ev;
}

struct bus_event *
bus_relay_next(struct bus_relay *r)
{
	struct bus_event *ev = NULL;
	struct relay_frame f;
	struct mu_err err;
	uint8_t *frame;
	size_t len;
	int rc;

	while (!r->lost && r->fd != -1 && ev == NULL) {
		rc = read_frame(r, &frame, &len);
		if (rc == MU_ENOENT)
			return NULL;
		if (rc == MU_OK && relay_frame_decode(frame, len, &f, &err) == MU_OK) {
			ev = frame_event(r, &f);
			wire_doc_free(&f.doc);
			free(frame);
			continue;
		}
		free(frame);
		/* A relay that left or broke the protocol: the session is gone,
		 * as when a broker drops a direct connection. */
		r->lost = true;
		r->connected = false;
		if ((ev = event_new(BUS_LOST)) != NULL)
			snprintf(ev->reason, sizeof(ev->reason), "%s",
			    rc == MU_OK ? "persist relay sent a bad frame" :
			    "persist relay closed the connection");
	}
	return ev;
}

/* ---- requests ----------------------------------------------------------- */

int
bus_relay_publish(struct bus_relay *r, const char *topic, const void *payload,
    size_t len, int qos, bool retain, uint32_t expiry_s, int *token, struct mu_err *err)
{
	struct relay_frame f = { .type = RELAY_PUB };
	int rc;

	if (r->lost)
		return mu_errf(err, MU_EIO, "publish to %s: persist relay gone", topic);
	if (r->ninflight == RELAY_MAX_INFLIGHT)
		return mu_errf(err, MU_EIO, "publish to %s: too many in flight", topic);
	f.token = r->next_token;
	r->next_token = r->next_token == INT32_MAX ? 1 : r->next_token + 1;
	f.topic = (struct wire_str){ topic, strlen(topic) };
	f.payload = (struct wire_bytes){ payload, len };
	f.qos = (uint8_t)qos;
	f.retain = retain;
	f.expiry_s = expiry_s;
	if ((rc = send_frame(r, &f, err)) != MU_OK)
		return rc;
	r->inflight[r->ninflight++] = f.token;
	if (token)
		*token = f.token;
	return MU_OK;
}

int
bus_relay_subscribe(struct bus_relay *r, char *const *topics, int ntopics, int qos,
    struct mu_err *err)
{
	struct relay_frame f = { .type = RELAY_SUB };
	int i, rc;

	/* Paho answers a list with one SUBACK; the relay answers each filter.
	 * The CLI subscribes one filter per call, so that is all this takes. */
	if (ntopics != 1)
		return mu_errf(err, MU_EINVAL, "persist relay: one filter per subscribe");
	for (i = 0; i < ntopics; i++) {
		f.topic = (struct wire_str){ topics[i], strlen(topics[i]) };
		f.qos = (uint8_t)qos;
		if ((rc = send_frame(r, &f, err)) != MU_OK)
			return rc;
	}
	return MU_OK;
}

int
bus_relay_unsubscribe(struct bus_relay *r, const char *topic, struct mu_err *err)
{
	struct relay_frame f = { .type = RELAY_UNSUB };

	f.topic = (struct wire_str){ topic, strlen(topic) };
	return send_frame(r, &f, err);
}

bool
bus_relay_token_pending(struct bus_relay *r, int token)
{
	size_t i;

	for (i = 0; i < r->ninflight; i++)
		if (r->inflight[i] == token)
			return true;
	return false;
}

void
bus_relay_hangup(struct bus_relay *r)
{
	if (r->fd != -1)
		close(r->fd);
	r->fd = -1;
	r->lost = true;
	r->connected = false;
}

int
bus_relay_stop(struct bus_relay *r, struct mu_err *err)
{
	struct relay_frame f = { .type = RELAY_STOP };
	uint64_t deadline = now_mono_ms() + 2000;
	struct pollfd pfd = { r->fd, POLLIN, 0 };
	uint8_t buf[4096];
	ssize_t n;
	int rc;

	if ((rc = send_frame(r, &f, err)) != MU_OK)
		return rc;
	/* Until it hangs up (it has stopped listening by then), so that a
	 * call right after the stop starts a new relay rather than race the
	 * old one for its lock. */
	while (now_mono_ms() < deadline) {
		if (poll(&pfd, 1, (int)(deadline - now_mono_ms())) <= 0)
			continue;
		n = recv(r->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return MU_OK;
	}
	return mu_errf(err, MU_EIO, "persist relay did not stop within 2 s");
}
