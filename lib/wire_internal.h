/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire_internal.h - the readers and writers every codec of lib/wire_*.c and
 * lib/ipc.c is built from (defined in wire.c).  Not for use outside lib/:
 * programs call the codecs of wire.h and ipc.h.
 *
 * A decoder is doc_open(), then rd_* calls on the top-level map, then
 * doc_close(); an encoder is the need*() checks, pk_begin(), pk_kv_* calls
 * and pk_finish().
 *
 * Ownership: as in wire.h.  doc_open() fills the caller's wire_doc; the
 * rd_* readers copy identifiers into the caller's arrays and return views
 * that borrow from the input buffer (strings, bins) or from the doc (maps).
 * On failure doc_open() and doc_close() leave the doc freed.  The pk_*
 * writers append to the caller's msgpack_sbuffer; pk_finish() takes a
 * refused message back out of it.
 */
#ifndef MUSTER_WIRE_INTERNAL_H
#define MUSTER_WIRE_INTERNAL_H

#include "wire.h"

/* A reader over one top-level map; every refusal goes to err. */
struct rd {
	const msgpack_object *map;
	struct mu_err *err;
};

/*
 * Unpack buf into doc and check the envelope shared by every message: a
 * map, not too many keys, no duplicate keys, and "v" == 1.
 */
int doc_open(const void *buf, size_t len, struct wire_doc *doc, struct rd *r,
    struct mu_err *err);
/* Close a decode: on failure (rc != MU_OK), free the doc; returns rc. */
int doc_close(struct wire_doc *doc, int rc);

/*
 * The readers.  Each returns MU_OK or MU_EINVAL with a reason naming the
 * key; an absent optional key is MU_OK with the output zeroed (or NULL),
 * except rd_get(), which says MU_ENOENT for it.
 */
const msgpack_object *rd_find(const struct rd *r, const char *key);
int rd_get(const struct rd *r, const char *key, bool required, msgpack_object_type type,
    const char *tname, const msgpack_object **out);
int rd_str(const struct rd *r, const char *key, bool required, size_t max,
    struct wire_str *out);
/* A short identifier copied into dst and checked with valid(). */
int rd_ident(const struct rd *r, const char *key, bool required, char *dst, size_t dstsz,
    bool (*valid)(const char *), const char *what);
int rd_uint(const struct rd *r, const char *key, bool required, uint64_t max,
    uint64_t *out);
int rd_int32(const struct rd *r, const char *key, bool *has, int32_t *out);
int rd_bool(const struct rd *r, const char *key, bool required, bool *out);
int rd_bin(const struct rd *r, const char *key, bool required, size_t max,
    struct wire_bytes *out);
/* An optional map, checked with wire_check_map(). */
int rd_map(const struct rd *r, const char *key, const msgpack_object **out);
/* A required string that must equal one of words; *out is its index. */
int rd_word(const struct rd *r, const char *key, const char *const *words, int nwords,
    int *out);

/* The writers: a key and its value. */
void pk_str(msgpack_packer *pk, const char *s, size_t len);
void pk_key(msgpack_packer *pk, const char *key);
void pk_kv_str(msgpack_packer *pk, const char *key, const char *s);
void pk_kv_view(msgpack_packer *pk, const char *key, struct wire_str s);
void pk_kv_uint(msgpack_packer *pk, const char *key, uint64_t v);
void pk_kv_bin(msgpack_packer *pk, const char *key, const void *p, size_t len);
void pk_kv_bool(msgpack_packer *pk, const char *key, bool v);
/* Start a message of nkeys keys besides "v"; returns where it begins in
 * out, for pk_finish(). */
size_t pk_begin(msgpack_packer *pk, msgpack_sbuffer *out, size_t nkeys);
/* Apply the decoders' bounds (max bytes, wire_check()) to the message that
 * begins at start; a refused one is taken back out of out. */
int pk_finish(msgpack_sbuffer *out, size_t start, size_t max, struct mu_err *err);

/* An encoder's checks: MU_EINVAL "cannot encode: what" unless ok (or the
 * view is absent or at most max bytes). */
int need(bool ok, struct mu_err *err, const char *what);
int need_view(struct wire_str s, size_t max, struct mu_err *err, const char *what);

/* Job kinds by name, indexed by enum job_kind, "unknown" included: a
 * result names the kind of the job it answers, JOB_UNKNOWN for one it
 * refused unread (wire_job.c). */
extern const char *const job_kinds[];
extern const int njob_kinds;

/* A job's or an announce's "target" (wire_job.c). */
int rd_target(struct rd *r, struct job_target *out);

/* Result statuses by name (wire_agent.c); also read by the runner's
 * verdict frames (ipc.c).  MU_EINVAL for an unknown name. */
int result_status_parse(const char *s, size_t len, enum result_status *out);

#endif
