/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bus.h - the MQTT session (Paho MQTTAsync) as seen by a single-threaded
 * event loop.
 *
 * Paho runs its own threads and calls back on them.  Those callbacks only
 * copy what they were given into a locked queue and bump an eventfd; the
 * owner polls bus_fd() and drains the queue with bus_next() on its own
 * thread, so no program state is ever touched from a Paho thread.  The
 * queue is bounded: when it is full, message callbacks return 0 and Paho
 * delivers the message again later (back-pressure, not loss).
 *
 * Reconnection is the owner's job (no Paho auto-reconnect): it calls
 * bus_connect() when it decides to, so it controls back-off and jitter and
 * can reconnect at once when poked.
 *
 * Ownership: bus_new() allocates the bus; bus_free() disconnects and frees
 * it.  bus_next() hands over one event that the caller frees with
 * bus_event_free().  Payloads passed to bus_publish() are copied by Paho.
 */
#ifndef MUSTER_BUS_H
#define MUSTER_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

struct bus;

struct bus_opts {
	const struct broker_config *broker;
	const char *client_id;
	bool clean_start;		/* false: keep the session across reconnects */
	uint32_t session_expiry_s;	/* MQTT 5 session expiry (clean_start off) */
	const char *will_topic;		/* optional: retained QoS 1 will */
	const void *will_payload;
	size_t will_len;
	/* MQTT 5 "retain as published" on every subscription: a message
	 * published with the retain flag keeps it when forwarded live, so a
	 * consumer can ignore retained results (design.md §3). */
	bool retain_as_published;
	/* MQTT 5 Maximum Packet Size (0 = no limit): the broker does not send
	 * this client anything bigger, so an oversized message costs the
	 * client nothing at all (Paho's receive buffer grows to the largest
	 * packet it ever reads and never shrinks). */
	uint32_t max_packet;
	/* Messages held for the owner before Paho is told to redeliver later
	 * (0 = 4096).  Paho 1.3's redelivery of a refused message waits for
	 * later traffic, so a consumer of bursts (muster-server) holds more. */
	size_t max_events;
	/* Jobs acknowledged only once durable (design.md §3, inbox.h): a
	 * message that is not retained and whose topic ends with
	 * durable_suffix is written to this inbox and fdatasync'ed before
	 * the callback returns (Paho sends the PUBACK right after); its event
	 * carries inbox_seq.  Borrowed: it outlives the bus. */
	struct inbox *inbox;
	const char *durable_suffix;
};

enum bus_event_type {
	BUS_CONNECTED,		/* session_present set */
	BUS_CONNECT_FAILED,	/* reason set */
	BUS_LOST,		/* connection lost; reason set */
	BUS_MESSAGE,		/* topic, payload, len, retained */
	BUS_PUBLISHED,		/* token acknowledged (QoS 1: PUBACK) */
	BUS_PUBLISH_FAILED,	/* token failed */
	BUS_SUBSCRIBED,
	BUS_SUBSCRIBE_FAILED,
};

struct bus_event {
	enum bus_event_type type;
	int token;
	bool session_present;
	bool retained;
	uint64_t inbox_seq;	/* BUS_MESSAGE in the inbox: its seq, else 0 */
	char *topic;
	uint8_t *payload;
	size_t len;
	char reason[128];
	struct bus_event *next;
};

int bus_new(struct bus **out, const struct bus_opts *opts, struct mu_err *err);
/*
 * A bus that borrows the session of the persist relay listening at path
 * (relay.h; bus_relay.h for the codes): already connected, its
 * BUS_CONNECTED waiting in bus_next().  Subscriptions take one filter per
 * call.  bus_disconnect() leaves the relay's session up.
 */
int bus_new_relay(struct bus **out, const char *path, int timeout_ms, struct mu_err *err);
/* Ask the relay at path to exit (muster --persist=stop); MU_ENOENT: none. */
int bus_stop_relay(const char *path, struct mu_err *err);
/* Messages that should have gone to the inbox and could not (a disk
 * error): acknowledged all the same; the owner reports them. */
uint64_t bus_inbox_failures(struct bus *b);
void bus_free(struct bus *b);

/* The eventfd to poll for readability; read it with bus_next(). */
int bus_fd(const struct bus *b);
/* Pop the next event, or NULL when the queue is empty (this also clears
 * the eventfd). */
struct bus_event *bus_next(struct bus *b);
void bus_event_free(struct bus_event *ev);

/* Start one asynchronous connect attempt; the outcome arrives as
 * BUS_CONNECTED or BUS_CONNECT_FAILED. */
int bus_connect(struct bus *b, struct mu_err *err);
bool bus_connected(const struct bus *b);

/* Publish; *token (optional) identifies the BUS_PUBLISHED/FAILED event.
 * expiry_s > 0 sets the MQTT 5 message expiry interval. */
int bus_publish(struct bus *b, const char *topic, const void *payload, size_t len,
    int qos, bool retain, uint32_t expiry_s, int *token, struct mu_err *err);
int bus_subscribe(struct bus *b, char *const *topics, int ntopics, int qos,
    struct mu_err *err);
int bus_unsubscribe(struct bus *b, const char *topic, struct mu_err *err);
/* Whether Paho still holds this publish token (in flight or queued). */
bool bus_token_pending(struct bus *b, int token);
/* Orderly MQTT disconnect (the broker then drops the will). */
int bus_disconnect(struct bus *b, int timeout_ms);

/*
 * Paho opens its sockets without TCP_NODELAY (Nagle costs ~40 ms per hop,
 * design.md §9) and without FD_CLOEXEC.  Call after every connect: sets both
 * on every connected TCP socket of the process.
 */
void bus_tune_sockets(void);

/*
 * Paho 1.3's receive thread sleeps 100 ms whenever a poll finds nothing to
 * do, and also when it runs before the connect has made its socket: a
 * connect that starts then waits up to 100 ms for its TLS handshake to be
 * read (the CLI's "1 run in 10 takes 130 ms").  While a caller waits for a
 * connect it may call this every few ms: once Paho's TCP socket exists, a
 * receive thread that is in that sleep (per /proc/self/task/TID/syscall)
 * gets SIGURG, whose handler (installed here, SA_RESTART off) does nothing
 * but end the sleep.  Returns how many threads were woken.  Never used by
 * the agent, whose connect time does not matter and whose threads should
 * not be signalled.
 */
int bus_nudge(void);

#endif
