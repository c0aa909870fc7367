/* SPDX-License-Identifier: Apache-2.0 */
/*
 * persist.h - [cli] persist: reuse one broker session across calls
 * (design.md §10, docs/operations.md).
 *
 * The first call with persist on connects directly as always and leaves a
 * per-user background process, the relay, that holds its own MQTT session
 * and listens on a Unix socket (relay.h for the path and the frames).
 * Later calls borrow that session through the socket: struct bus in relay
 * mode, so no command knows the difference.  The relay only carries what
 * an MQTT client would: signed envelopes out, agents' messages in; the
 * caller signs and verifies, and the operator key never leaves it.  Only
 * the same uid gets in (SO_PEERCRED, and the 0700 folder).
 *
 * Ownership: the relay process owns its session, its socket file and its
 * lock file, and removes the socket when it leaves.
 */
#ifndef MUSTER_CTL_PERSIST_H
#define MUSTER_CTL_PERSIST_H

#include "ctl.h"

/* How long a call waits for the relay's "ready". */
#define PERSIST_READY_MS	1000

/*
 * With [cli] persist set (and no persistent watch session): borrow the
 * relay's session into c->bus and return 0.  Otherwise, or when the relay
 * is missing, stale, or not connected, start a relay for the next calls
 * (a detached process) and return -1: the caller connects directly.
 * Never prints; a relay that cannot start only costs the next call its
 * speed.
 */
int ctl_persist_connect(struct ctl *c);

/* muster --persist=stop: end the relay for this configuration; an exit
 * code (0 also when none was running). */
int ctl_persist_stop(struct ctl *c);

/* muster --persist-serve (internal, started by ctl_persist_connect()): be
 * the relay until idle for [cli] persist, a stop, SIGTERM or a lost
 * broker session; an exit code. */
int ctl_persist_serve(struct ctl *c);

#endif
