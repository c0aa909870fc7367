/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for selftest_request_decode / _encode. */
#include "fuzz.h"

static bool
same(const struct selftest_request *a, const struct selftest_request *b)
{
	return FUZZ_STREQ(a, b, host) && FUZZ_STREQ(a, b, nonce) &&
	    FUZZ_STREQ(a, b, version);
}

FUZZ_ROUNDTRIP(selftest_request, selftest_request_decode, selftest_request_encode, same)
