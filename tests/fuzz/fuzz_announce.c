/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for announce_decode / announce_encode (the job
 * announce, R/jobs/<job>: its expected hosts and its filter included). */
#include "fuzz.h"

#include <stdlib.h>

static bool
same(const struct announce *a, const struct announce *b)
{
	return FUZZ_STREQ(a, b, id) && FUZZ_STREQ(a, b, aud) &&
	    FUZZ_EQ(a, b, issued_at) && FUZZ_EQ(a, b, not_after) &&
	    fuzz_view_eq(a->operator_, b->operator_) &&
	    FUZZ_EQ(a, b, target.kind) && FUZZ_STREQ(a, b, target.name) &&
	    fuzz_obj_eq(a->filter, b->filter) && FUZZ_EQ(a, b, job_kind) &&
	    FUZZ_STREQ(a, b, module) && fuzz_obj_eq(a->args, b->args) &&
	    FUZZ_EQ(a, b, timeout_ms) && FUZZ_EQ(a, b, stream) &&
	    FUZZ_EQ(a, b, nexpected) && fuzz_obj_eq(a->expected, b->expected);
}

/* The encoder takes the expected hosts apart: copy them out. */
static int
enc(const struct announce *a, msgpack_sbuffer *out, struct mu_err *err)
{
	char (*names)[NAME_MAX_LEN + 1] = calloc(a->nexpected + 1, sizeof(*names));
	size_t i;
	int rc;

	if (names == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	for (i = 0; i < a->nexpected; i++)
		announce_host(a, i, names[i]);
	rc = announce_encode(a, names, a->nexpected, out, err);
	free(names);
	return rc;
}

FUZZ_ROUNDTRIP(announce, announce_decode, enc, same)
