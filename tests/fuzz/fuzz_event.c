/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for event_decode / event_encode. */
#include "fuzz.h"

static bool
same(const struct event *a, const struct event *b)
{
	return FUZZ_STREQ(a, b, job) && FUZZ_STREQ(a, b, host) &&
	    FUZZ_EQ(a, b, seq) && FUZZ_EQ(a, b, at) && FUZZ_EQ(a, b, event) &&
	    fuzz_view_eq(a->text, b->text) && FUZZ_EQ(a, b, has_pct) &&
	    FUZZ_EQ(a, b, pct);
}

FUZZ_ROUNDTRIP(event, event_decode, event_encode, same)
