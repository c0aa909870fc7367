/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for module_artifact_decode / _encode. */
#include "fuzz.h"

static bool
same(const struct module_artifact *a, const struct module_artifact *b)
{
	return fuzz_bytes_eq(a->manifest, b->manifest) && fuzz_bytes_eq(a->sig, b->sig) &&
	    fuzz_bytes_eq(a->so, b->so);
}

FUZZ_ROUNDTRIP(module_artifact, module_artifact_decode, module_artifact_encode, same)
