/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for release_manifest_decode / _encode. */
#include "fuzz.h"

static bool
same(const struct release_manifest *a, const struct release_manifest *b)
{
	return FUZZ_STREQ(a, b, channel) && FUZZ_STREQ(a, b, version) &&
	    FUZZ_STREQ(a, b, agent_sha256) && FUZZ_EQ(a, b, agent_size) &&
	    FUZZ_STREQ(a, b, runner_sha256) && FUZZ_EQ(a, b, runner_size) &&
	    FUZZ_EQ(a, b, published_at) && FUZZ_EQ(a, b, rollout) &&
	    FUZZ_EQ(a, b, nsteps) && memcmp(a->steps, b->steps,
	    a->nsteps * sizeof(a->steps[0])) == 0 && FUZZ_EQ(a, b, has_halt) &&
	    FUZZ_EQ(a, b, halt_failed_pct) && FUZZ_EQ(a, b, halt_min_hosts);
}

FUZZ_ROUNDTRIP(release_manifest, release_manifest_decode, release_manifest_encode,
    same)
