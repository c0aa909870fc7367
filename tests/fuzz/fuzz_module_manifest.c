/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for module_manifest_decode / _encode. */
#include "fuzz.h"

static bool
same(const struct module_manifest *a, const struct module_manifest *b)
{
	return FUZZ_STREQ(a, b, name) && FUZZ_STREQ(a, b, version) &&
	    FUZZ_EQ(a, b, abi) && FUZZ_STREQ(a, b, sha256) && FUZZ_EQ(a, b, size) &&
	    FUZZ_EQ(a, b, published_at);
}

FUZZ_ROUNDTRIP(module_manifest, module_manifest_decode, module_manifest_encode, same)
