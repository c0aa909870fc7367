/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for wire_check alone: whatever it accepts, msgpack-c must
 * unpack as exactly one object using every byte, and the canonical
 * re-packing of that object must pass wire_check too.
 */
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msgpack_unpacked up;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct mu_err err;
	size_t off = 0;

	if (wire_check(data, size, &err) != MU_OK)
		return 0;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)data, size, &off) !=
	    MSGPACK_UNPACK_SUCCESS || off != size)
		fuzz_fail("msgpack-c refused what wire_check accepted", "");
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, up.data);
	if (wire_check(sb.data, sb.size, &err) != MU_OK)
		fuzz_fail("wire_check refused a re-packing of what it accepted", err.msg);
	msgpack_sbuffer_destroy(&sb);
	msgpack_unpacked_destroy(&up);
	return 0;
}
