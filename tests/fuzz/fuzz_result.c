/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for result_decode / result_encode. */
#include "fuzz.h"

static bool
same(const struct result *a, const struct result *b)
{
	return FUZZ_STREQ(a, b, job) && FUZZ_STREQ(a, b, host) &&
	    FUZZ_EQ(a, b, kind) && FUZZ_EQ(a, b, status) &&
	    fuzz_view_eq(a->reason, b->reason) && fuzz_view_eq(a->summary, b->summary) &&
	    fuzz_view_eq(a->output, b->output) && FUZZ_EQ(a, b, truncated) &&
	    fuzz_obj_eq(a->data, b->data) &&
	    FUZZ_EQ(a, b, has_exit_code) && FUZZ_EQ(a, b, exit_code) &&
	    FUZZ_EQ(a, b, has_signal) && FUZZ_EQ(a, b, signal) &&
	    FUZZ_STREQ(a, b, module) && FUZZ_STREQ(a, b, module_version) &&
	    FUZZ_STREQ(a, b, module_sha256) && FUZZ_EQ(a, b, started_at) &&
	    FUZZ_EQ(a, b, finished_at) && FUZZ_STREQ(a, b, agent_version);
}

FUZZ_ROUNDTRIP(result, result_decode, result_encode, same)
