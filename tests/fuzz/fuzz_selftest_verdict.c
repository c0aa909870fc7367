/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for selftest_verdict_decode / _encode. */
#include "fuzz.h"

static bool
same(const struct selftest_verdict *a, const struct selftest_verdict *b)
{
	return FUZZ_STREQ(a, b, host) && FUZZ_STREQ(a, b, nonce) && FUZZ_EQ(a, b, ok) &&
	    fuzz_view_eq(a->reason, b->reason);
}

FUZZ_ROUNDTRIP(selftest_verdict, selftest_verdict_decode, selftest_verdict_encode, same)
