/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pointer.h - the signed pointer that `muster module publish` (module.c) and
 * `muster release publish | rollout` (release.c) put on the broker
 * ({"v":1, "manifest", "sig"}, design.md §3 "Modules and releases on the
 * broker"): its published_at and its signature, made in one place so both
 * commands keep the same rollback rule.
 *
 * Ownership: the caller owns every buffer.  pointer_sign() appends to the
 * caller's msgpack_sbuffer and, when asked for it, hands the detached
 * signature over in *sig, which the caller frees with free().
 */
#ifndef MUSTER_CTL_POINTER_H
#define MUSTER_CTL_POINTER_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

struct ctl;

/*
 * The published_at of a pointer that replaces the one on topic: now, or one
 * past the current one when that is not older.  Hosts refuse a pointer
 * older than the newest they accepted (rollback protection), two publishes
 * can share a millisecond and a clock can step back.  current: the
 * published_at of the pointer the broker holds on topic (a topic holds one
 * retained message), NULL when it holds none that decodes.  A current one
 * at UINT64_MAX has no successor: EXIT_USAGE, said on stderr; else 0.
 */
int pointer_next_published_at(uint64_t now, const uint64_t *current, const char *topic,
    uint64_t *out);

/*
 * Sign manifest (an encoded module or release manifest) with the
 * [publisher] key and append the signed pointer to ptr.  sig and siglen:
 * NULL, or where the signature goes for a caller that also needs it (a
 * module artifact carries it too).  An exit code; the reason on stderr.
 */
int pointer_sign(struct ctl *c, const msgpack_sbuffer *manifest, msgpack_sbuffer *ptr,
    void **sig, size_t *siglen);

#endif
