/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for status_decode / status_encode. */
#include "fuzz.h"

static bool
same(const struct status *a, const struct status *b)
{
	size_t i;

	if (!(FUZZ_STREQ(a, b, host) && FUZZ_EQ(a, b, online) &&
	    fuzz_view_eq(a->reason, b->reason) && FUZZ_STREQ(a, b, version) &&
	    FUZZ_STREQ(a, b, channel) && FUZZ_EQ(a, b, ngroups) &&
	    FUZZ_EQ(a, b, started_at) && FUZZ_EQ(a, b, at) &&
	    fuzz_bytes_eq(a->cert_der, b->cert_der)))
		return false;
	for (i = 0; i < a->ngroups; i++)
		if (!FUZZ_STREQ(a, b, groups[i]))
			return false;
	return true;
}

FUZZ_ROUNDTRIP(status, status_decode, status_encode, same)
