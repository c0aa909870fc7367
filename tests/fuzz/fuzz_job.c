/* Round-trip fuzz target for job_decode / job_encode. */
#include "fuzz.h"

static bool
same(const struct job *a, const struct job *b)
{
	return FUZZ_STREQ(a, b, id) && FUZZ_EQ(a, b, kind) &&
	    FUZZ_EQ(a, b, target.kind) && FUZZ_STREQ(a, b, target.name) &&
	    FUZZ_EQ(a, b, issued_at) && FUZZ_EQ(a, b, not_after) &&
	    fuzz_view_eq(a->operator_, b->operator_) && FUZZ_STREQ(a, b, module) &&
	    FUZZ_STREQ(a, b, module_sha256) && fuzz_obj_eq(a->args, b->args) &&
	    FUZZ_EQ(a, b, timeout_ms) && FUZZ_EQ(a, b, stream) &&
	    FUZZ_STREQ(a, b, cancel);
}

FUZZ_ROUNDTRIP(job, job_decode, job_encode, same)
