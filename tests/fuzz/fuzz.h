/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz.h - shared bits of the wire fuzz targets.
 *
 * Every target defines two functions:
 *   fuzz_outcome(data, size, err)  decodes the input and says how that went:
 *       MU_OK when it was taken (and, where the target has an encoder,
 *       survived the round trip below), else the decoder's code with its
 *       reason in err.  Anything that must never happen abort()s.
 *   LLVMFuzzerTestOneInput         calls it and ignores the outcome: for
 *       libFuzzer a refused input is as good as an accepted one.
 * replay.c (the normal build's regression test) calls fuzz_outcome and
 * checks it against the seed's name: ok-* must be taken, bad-* refused
 * with the reason the target's .expect file gives (see replay.c).
 *
 * FUZZ_ROUNDTRIP(T, dec, enc, same) defines both for one decoder: decode
 * the input into a struct T; if that succeeds, encode it (which must
 * succeed: encoders validate like decoders), decode the encoding (which
 * must succeed), check same(&a, &b) field by field, and check that encoding
 * b gives the very same bytes.  Any failure abort()s, so libFuzzer and the
 * replay test both report the input.
 */
#ifndef MUSTER_FUZZ_H
#define MUSTER_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_outcome(const uint8_t *data, size_t size, struct mu_err *err);

/* The libFuzzer entry point of a target whose fuzz_outcome is defined. */
#define FUZZ_ENTRY							\
int									\
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)		\
{									\
	struct mu_err err;						\
									\
	(void)fuzz_outcome(data, size, &err);				\
	return 0;							\
}

static inline void
fuzz_fail(const char *what, const char *why)
{
	fprintf(stderr, "fuzz: %s%s%s\n", what, why[0] ? ": " : "", why);
	abort();
}

static inline bool
fuzz_view_eq(struct wire_str a, struct wire_str b)
{
	return (a.ptr == NULL) == (b.ptr == NULL) && a.len == b.len &&
	    (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool
fuzz_bytes_eq(struct wire_bytes a, struct wire_bytes b)
{
	return (a.ptr == NULL) == (b.ptr == NULL) && a.len == b.len &&
	    (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Two optional msgpack objects are equal if they pack to the same bytes. */
static inline bool
fuzz_obj_eq(const msgpack_object *a, const msgpack_object *b)
{
	msgpack_sbuffer sa, sb;
	msgpack_packer pa, pb;
	bool eq;

	if (a == NULL || b == NULL)
		return a == b;
	msgpack_sbuffer_init(&sa);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pa, &sa, msgpack_sbuffer_write);
	msgpack_packer_init(&pb, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pa, *a);
	msgpack_pack_object(&pb, *b);
	eq = sa.size == sb.size && memcmp(sa.data, sb.data, sa.size) == 0;
	msgpack_sbuffer_destroy(&sa);
	msgpack_sbuffer_destroy(&sb);
	return eq;
}

#define FUZZ_STREQ(a, b, f)	(strcmp((a)->f, (b)->f) == 0)
#define FUZZ_EQ(a, b, f)	((a)->f == (b)->f)

#define FUZZ_ROUNDTRIP(T, dec, enc, same)					\
int										\
fuzz_outcome(const uint8_t *data, size_t size, struct mu_err *err)		\
{										\
	struct T a, b;								\
	msgpack_sbuffer s1, s2;							\
	struct mu_err e2;							\
	int rc;									\
										\
	if ((rc = dec(data, size, &a, err)) != MU_OK)				\
		return rc;							\
	msgpack_sbuffer_init(&s1);						\
	msgpack_sbuffer_init(&s2);						\
	if (enc(&a, &s1, &e2) != MU_OK)						\
		fuzz_fail(#enc " refused what " #dec " accepted", e2.msg);	\
	if (dec(s1.data, s1.size, &b, &e2) != MU_OK)				\
		fuzz_fail(#dec " refused what " #enc " wrote", e2.msg);		\
	if (!same(&a, &b))							\
		fuzz_fail("fields differ after a round trip", "");		\
	if (enc(&b, &s2, &e2) != MU_OK || s1.size != s2.size ||			\
	    memcmp(s1.data, s2.data, s1.size) != 0)				\
		fuzz_fail("re-encoding is not stable", "");			\
	wire_doc_free(&a.doc);							\
	wire_doc_free(&b.doc);							\
	msgpack_sbuffer_destroy(&s1);						\
	msgpack_sbuffer_destroy(&s2);						\
	return MU_OK;								\
}										\
FUZZ_ENTRY

#endif
