/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for job_decode / job_encode (and a job's filter). */
#include "facts.h"
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
	    FUZZ_STREQ(a, b, cancel) && FUZZ_STREQ(a, b, aud) &&
	    fuzz_obj_eq(a->filter, b->filter);
}

/* The decoder takes a job without "aud" (so that the agent can say why it
 * refuses one: an older sender), but the encoder refuses to write one
 * (design.md §3: aud is required).  So only jobs with an aud are round-trip
 * material; this target refuses the others with its own reason, which the
 * seed bad-no-aud expects. */
static int
job_decode_aud(const void *buf, size_t len, struct job *out, struct mu_err *err)
{
	int rc = job_decode(buf, len, out, err);

	if (rc == MU_OK && out->aud[0] == '\0') {
		wire_doc_free(&out->doc);
		return mu_errf(err, MU_EINVAL, "no aud (job_decode takes it, the agent "
		    "and job_encode do not)");
	}
	/* Likewise a malformed filter: the agent refuses it under the job's
	 * id, and job_encode will not write it. */
	if (rc == MU_OK && out->filter) {
		struct fact_filter f;

		if ((rc = filter_decode(out->filter, &f, err)) != MU_OK)
			wire_doc_free(&out->doc);
	}
	return rc;
}

FUZZ_ROUNDTRIP(job, job_decode_aud, job_encode, same)
