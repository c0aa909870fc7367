/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for policy_parse: any bytes give a policy or an error that
 * names the file and a line; a parsed policy answers a check.  The
 * outcome is policy_parse's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_outcome(const uint8_t *data, size_t size, struct mu_err *err);

int
fuzz_outcome(const uint8_t *data, size_t size, struct mu_err *err)
{
	struct policy_request q = { "alice", JOB_RUN, "os.release", "host/web1" };
	struct policy_verdict v;
	struct policy p;
	int rc;

	if ((rc = policy_parse(&p, "fuzz", (const char *)data, size, err)) != MU_OK) {
		if (strncmp(err->msg, "fuzz:", 5) != 0 && strstr(err->msg, "memory") == NULL)
			abort();
		return rc;
	}
	policy_check(&p, &q, &v);
	if (v.allow && v.rule && !v.rule->allow)
		abort();
	policy_free(&p);
	return MU_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mu_err err;

	(void)fuzz_outcome(data, size, &err);
	return 0;
}
