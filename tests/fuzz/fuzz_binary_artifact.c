/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for binary_artifact_decode / _encode. */
#include "fuzz.h"

static bool
same(const struct binary_artifact *a, const struct binary_artifact *b)
{
	return fuzz_bytes_eq(a->data, b->data);
}

FUZZ_ROUNDTRIP(binary_artifact, binary_artifact_decode, binary_artifact_encode, same)
