/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for a job's fact filter: job_decode, then filter_decode of
 * its "filter", then facts_match() on a fixed set of facts, as the
 * agent's parent does (lib/facts.c).  The set is built once and kept for
 * the process's life.
 */
#include "fuzz_facts.h"

int
fuzz_outcome(const uint8_t *data, size_t size, struct mu_err *err)
{
	struct fact_filter flt;
	struct job j;
	int rc;

	if ((rc = job_decode(data, size, &j, err)) != MU_OK)
		return rc;
	if (j.filter == NULL) {
		wire_doc_free(&j.doc);
		return mu_errf(err, MU_EINVAL, "no filter");
	}
	rc = filter_decode(j.filter, &flt, err);
	if (rc == MU_OK)
		(void)facts_match(fuzz_host_facts(), &flt);
	wire_doc_free(&j.doc);
	return rc;
}

FUZZ_ENTRY
