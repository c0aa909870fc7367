/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for policy_parse: any bytes give a policy or an error that
 * names the file and a line; a parsed policy answers a check. */
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_request q = { "alice", JOB_RUN, "os.release", "host/web1" };
	struct policy_verdict v;
	struct policy p;
	struct mu_err err;

	if (policy_parse(&p, "fuzz", (const char *)data, size, &err) != MU_OK) {
		if (strncmp(err.msg, "fuzz:", 5) != 0 && strstr(err.msg, "memory") == NULL)
			abort();
		return 0;
	}
	policy_check(&p, &q, &v);
	if (v.allow && v.rule && !v.rule->allow)
		abort();
	policy_free(&p);
	return 0;
}
