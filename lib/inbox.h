/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inbox.h - messages made durable before the broker is told they arrived.
 *
 * Paho 1.3 sends the PUBACK of a QoS 1 message right after its message
 * callback returns; nothing later can hold it back.  So a job is written
 * here, and fdatasync'ed, inside that callback (design.md §3: "acknowledged
 * only once durable on the host").  Its consumer (musterd's parent, behind
 * the network process) makes it durable again in its own way (the
 * seen-set) and says so; only then is the inbox entry marked done.  After
 * any restart, entries not marked done are handed over again, and the
 * consumer removes duplicates.  A done mark is not synced: a lost one only
 * replays a message the consumer has already seen.
 *
 * On disk, appended: records of a 16-byte header (u32 body length, u8
 * type 'M' message or 'D' done, 3 zero bytes, u64 seq; big-endian), the
 * body (M: u16 topic length, topic, payload; D: nothing), and a u32
 * FNV-1a of header and body.  A torn or corrupt tail (a crash while
 * writing; its message was never acknowledged) is cut off at open.  The
 * file is emptied whenever nothing is pending and it has grown past
 * INBOX_COMPACT_BYTES.
 *
 * Threads: inbox_put() may be called from any thread (Paho's); everything
 * else from the owner's.  Ownership: inbox_open() allocates, inbox_close()
 * frees; inbox_replay_next() lends the message until the next call.
 */
#ifndef MUSTER_INBOX_H
#define MUSTER_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define INBOX_COMPACT_BYTES	(1u << 20)
#define INBOX_MAX_BYTES		(256u << 20)	/* bigger at open: refused */

struct inbox;

int inbox_open(struct inbox **out, const char *path, struct mu_err *err);
void inbox_close(struct inbox *ib);

/* Append one message and fdatasync it; *seq (> 0) names it for
 * inbox_done().  MU_EIO with errno set if it is not on disk. */
int inbox_put(struct inbox *ib, const char *topic, const void *payload, size_t len,
    uint64_t *seq);

/* The consumer has it safely: forget it (no sync; see above). */
void inbox_done(struct inbox *ib, uint64_t seq);

/* After open, the messages found not done, oldest first: true and the
 * message each call, false when there are no more. */
bool inbox_replay_next(struct inbox *ib, const char **topic, const uint8_t **payload,
    size_t *len, uint64_t *seq);

/* Messages put or replayed and not yet done. */
size_t inbox_pending(struct inbox *ib);

#endif
