/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for agent_envelope_decode / agent_envelope_encode. */
#include "fuzz.h"

static int
enc(const struct agent_envelope *e, msgpack_sbuffer *out, struct mu_err *err)
{
	return agent_envelope_encode(e->cert, e->sig.ptr, e->sig.len, e->body.ptr,
	    e->body.len, out, err);
}

static bool
same(const struct agent_envelope *a, const struct agent_envelope *b)
{
	return FUZZ_STREQ(a, b, cert) && fuzz_bytes_eq(a->sig, b->sig) &&
	    fuzz_bytes_eq(a->body, b->body);
}

FUZZ_ROUNDTRIP(agent_envelope, agent_envelope_decode, enc, same)
