/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for release_halt_decode / _encode. */
#include "fuzz.h"

static bool
same(const struct release_halt *a, const struct release_halt *b)
{
	return FUZZ_STREQ(a, b, channel) && FUZZ_STREQ(a, b, version) &&
	    fuzz_view_eq(a->reason, b->reason) && FUZZ_EQ(a, b, at) &&
	    FUZZ_EQ(a, b, has_counts) && FUZZ_EQ(a, b, failed) && FUZZ_EQ(a, b, attempted) &&
	    fuzz_bytes_eq(a->cert_der, b->cert_der) && fuzz_view_eq(a->operator_, b->operator_);
}

FUZZ_ROUNDTRIP(release_halt, release_halt_decode, release_halt_encode, same)
