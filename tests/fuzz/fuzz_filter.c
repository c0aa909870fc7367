/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for a job's fact filter: job_decode, then filter_decode of
 * its "filter", then facts_match() on a fixed set of facts, as the
 * agent's parent does (lib/facts.c).  The set is built once and kept for
 * the process's life.
 */
#include "facts.h"
#include "fuzz.h"

static const struct facts *
host_facts(void)
{
	static const char *const groups[] = { "web", "b7" };
	static struct facts f;
	static bool made;
	struct mu_err err;

	if (!made) {
		made = true;
		if (facts_set_str(&f, "os.id", "debian", &err) != MU_OK ||
		    facts_set_str(&f, "os.version_id", "12", &err) != MU_OK ||
		    facts_set_int(&f, "mem_mb", 3900, &err) != MU_OK ||
		    facts_set_bool(&f, "custom.db", true, &err) != MU_OK ||
		    facts_set_list(&f, "groups", groups, 2, &err) != MU_OK)
			fuzz_fail("cannot build the host's facts", err.msg);
	}
	return &f;
}

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
		(void)facts_match(host_facts(), &flt);
	wire_doc_free(&j.doc);
	return rc;
}

FUZZ_ENTRY
