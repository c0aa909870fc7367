/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay.h - the frames between a CLI (or library) process and the per-user
 * relay that holds one broker session for it ([cli] persist, design.md
 * §10; the relay is ctl/persist.c, the client side lib/bus_relay.c).
 *
 * The stream on the Unix socket is a sequence of frames as in ipc.h: a
 * 4-byte big-endian length, then that many bytes of one msgpack map
 * {"v":1, "t":<type>, ...}.  Both ends treat the other as untrusted: every
 * frame is length-checked before it is buffered (RELAY_MAX_FRAME), runs the
 * same bounded wire_check() as network messages, then a typed decode.
 *
 *   client -> relay
 *     "hello"   version                first frame; answered "ready"
 *     "sub"     topic (a filter), qos  answered "suback", in order
 *     "pub"     token, topic, payload, qos, retain, expiry
 *                                      answered "puback" with the token
 *     "unsub"   topic                  not answered
 *     "stop"                           the relay exits
 *   relay -> client
 *     "ready"   ok                     ok: the broker session is up, and
 *                                      "connected" follows at once
 *     "connected"
 *     "suback"  ok
 *     "puback"  token, ok, reason?
 *     "msg"     topic, payload, retain  a broker message matching one of
 *                                      the client's filters (retain: the
 *                                      retained flag as delivered)
 *
 * Only what a direct MQTT client would send crosses the socket: signed
 * envelopes and agents' messages.  The operator key never does (the caller
 * signs before it publishes).
 *
 * Ownership: relay_frame_decode() fills a struct whose strings and payload
 * are borrowed views into the frame; the caller frees frame.doc with
 * wire_doc_free() on MU_OK.  Encoders append to a msgpack_sbuffer the
 * caller initialised and frees, length header included.
 */
#ifndef MUSTER_RELAY_H
#define MUSTER_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "wire.h"

#define RELAY_VERSION		1
/* The largest message wire_check() passes: a module or agent binary.  Its
 * topic and fields take a few hundred bytes of it, so a publish within
 * 8 KiB of WIRE_MAX_MSG goes direct or not at all (RELAY_MAX_PAYLOAD). */
#define RELAY_MAX_FRAME		WIRE_MAX_MSG
#define RELAY_MAX_PAYLOAD	(WIRE_MAX_MSG - 8u * 1024)
#define RELAY_MAX_TOPIC		1024
#define RELAY_SOCK_PATH_MAX	108	/* sun_path */

/* Append only: the names index relay.c's table. */
enum relay_type {
	RELAY_HELLO, RELAY_SUB, RELAY_PUB, RELAY_UNSUB, RELAY_STOP,
	RELAY_READY, RELAY_CONNECTED, RELAY_SUBACK, RELAY_PUBACK, RELAY_MSG,
};

struct relay_frame {
	struct wire_doc doc;
	enum relay_type type;
	uint32_t version;		/* HELLO */
	bool ok;			/* READY (connected), SUBACK, PUBACK */
	int32_t token;			/* PUB, PUBACK */
	struct wire_str topic;		/* SUB, UNSUB (the filter), PUB, MSG */
	struct wire_bytes payload;	/* PUB, MSG */
	struct wire_str reason;		/* PUBACK */
	uint8_t qos;			/* SUB, PUB: 0..2 */
	bool retain;			/* PUB; MSG: the retained flag */
	uint32_t expiry_s;		/* PUB */
};

/* Decode one frame's body (without the length header). */
int relay_frame_decode(const void *buf, size_t len, struct relay_frame *out,
    struct mu_err *err);
/* Append one frame, header included; fields as the type uses them. */
int relay_frame_encode(const struct relay_frame *f, msgpack_sbuffer *out,
    struct mu_err *err);

/* MQTT topic filter match (+ and #; a filter's # also matches the parent). */
bool relay_topic_match(const char *filter, const char *topic, size_t topic_len);

/*
 * The per-user socket for this broker, certificate and topic root:
 * $XDG_RUNTIME_DIR/muster/persist-<16 hex of SHA-256>.sock, or under
 * /run/user/<uid> when XDG_RUNTIME_DIR is unset and that folder exists.
 * make_dir: create .../muster with mode 0700 (and check that it is ours
 * and not open to others).  MU_ENOENT when there is no runtime folder
 * (no persist then).
 */
int relay_socket_path(const struct broker_config *b, bool make_dir,
    char out[RELAY_SOCK_PATH_MAX], struct mu_err *err);

#endif
