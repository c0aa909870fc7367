/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Round-trip fuzz target for facts_decode / facts_encode (lib/facts.c).
 * struct facts_msg owns its facts (no wire_doc), so FUZZ_ROUNDTRIP does
 * not fit; the same steps are spelt out here.
 */
#include "facts.h"
#include "fuzz.h"

int
fuzz_outcome(const uint8_t *data, size_t size, struct mu_err *err)
{
	struct facts_msg a, b;
	msgpack_sbuffer s1, s2;
	struct mu_err e2;
	int rc;

	if ((rc = facts_decode(data, size, &a, err)) != MU_OK)
		return rc;
	msgpack_sbuffer_init(&s1);
	msgpack_sbuffer_init(&s2);
	if (facts_encode(&a, &s1, &e2) != MU_OK)
		fuzz_fail("facts_encode refused what facts_decode accepted", e2.msg);
	if (facts_decode(s1.data, s1.size, &b, &e2) != MU_OK)
		fuzz_fail("facts_decode refused what facts_encode wrote", e2.msg);
	if (strcmp(a.host, b.host) != 0 || a.at != b.at || !facts_equal(&a.facts, &b.facts))
		fuzz_fail("fields differ after a round trip", "");
	if (facts_encode(&b, &s2, &e2) != MU_OK || s1.size != s2.size ||
	    memcmp(s1.data, s2.data, s1.size) != 0)
		fuzz_fail("re-encoding is not stable", "");
	facts_free(&a.facts);
	facts_free(&b.facts);
	msgpack_sbuffer_destroy(&s1);
	msgpack_sbuffer_destroy(&s2);
	return MU_OK;
}

FUZZ_ENTRY
