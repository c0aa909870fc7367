/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for pointer_decode / pointer_encode. */
#include "fuzz.h"

static bool
same(const struct signed_pointer *a, const struct signed_pointer *b)
{
	return fuzz_bytes_eq(a->manifest, b->manifest) && fuzz_bytes_eq(a->sig, b->sig);
}

FUZZ_ROUNDTRIP(signed_pointer, pointer_decode, pointer_encode, same)
