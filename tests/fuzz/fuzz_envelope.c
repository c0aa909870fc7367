/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for envelope_decode / envelope_encode. */
#include "fuzz.h"

static int
enc(const struct job_envelope *e, msgpack_sbuffer *out, struct mu_err *err)
{
	return envelope_encode(e->key, e->sig, e->body.ptr, e->body.len, out, err);
}

static bool
same(const struct job_envelope *a, const struct job_envelope *b)
{
	return FUZZ_STREQ(a, b, key) && memcmp(a->sig, b->sig, sizeof(a->sig)) == 0 &&
	    fuzz_bytes_eq(a->body, b->body);
}

FUZZ_ROUNDTRIP(job_envelope, envelope_decode, enc, same)
