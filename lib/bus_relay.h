/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bus_relay.h - the client side of the persist relay (relay.h): a broker
 * session borrowed from a per-user background process over a Unix socket,
 * seen through the same calls as a Paho session.  bus.c hands a bus made
 * with bus_new_relay() to these functions; nothing above struct bus knows.
 *
 * Events come from the socket itself, one frame per read-through: the
 * relay reads exactly up to the end of the current frame, so the socket
 * stays readable for poll() while later frames wait in the kernel, and
 * bus_fd() is simply the socket.
 *
 * Ownership: bus_relay_open() returns an owned relay (socket included);
 * bus_relay_free() closes it.  Events follow bus.h (bus_event_free()).
 */
#ifndef MUSTER_BUS_RELAY_H
#define MUSTER_BUS_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "err.h"

struct bus_relay;

/*
 * Connect to the relay's socket at path, check that its peer runs as this
 * user (SO_PEERCRED), say hello and wait up to timeout_ms for "ready".
 * MU_ENOENT: no relay there (a stale socket, no listener, is removed);
 * MU_ESTALE: a relay whose broker session is not up; other codes: a relay
 * that misbehaved.  In every case but MU_OK the caller connects directly.
 */
int bus_relay_open(struct bus_relay **out, const char *path, int timeout_ms,
    struct mu_err *err);
void bus_relay_free(struct bus_relay *r);

int bus_relay_fd(const struct bus_relay *r);
bool bus_relay_connected(const struct bus_relay *r);
/* The next event, or NULL when no whole frame is there yet.  A relay that
 * hangs up or sends a bad frame gives BUS_LOST, once. */
struct bus_event *bus_relay_next(struct bus_relay *r);
int bus_relay_publish(struct bus_relay *r, const char *topic, const void *payload,
    size_t len, int qos, bool retain, uint32_t expiry_s, int *token, struct mu_err *err);
int bus_relay_subscribe(struct bus_relay *r, char *const *topics, int ntopics, int qos,
    struct mu_err *err);
int bus_relay_unsubscribe(struct bus_relay *r, const char *topic, struct mu_err *err);
bool bus_relay_token_pending(struct bus_relay *r, int token);
/* Close the socket (an orderly goodbye: the relay drops this client's
 * filters); later events: none. */
void bus_relay_hangup(struct bus_relay *r);
/* Tell the relay process to exit (muster --persist=stop). */
int bus_relay_stop(struct bus_relay *r, struct mu_err *err);

#endif
