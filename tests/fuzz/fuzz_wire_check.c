/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for wire_check alone: whatever it accepts, msgpack-c must
 * unpack as exactly one object using every byte, and the canonical
 * re-packing of that object must pass wire_check too.  The outcome is
 * wire_check's.
 */
#include "fuzz.h"

int
fuzz_outcome(const uint8_t *data, size_t size, struct mu_err *err)
{
	msgpack_unpacked up;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct mu_err e2;
	size_t off = 0;
	int rc;

	if ((rc = wire_check(data, size, err)) != MU_OK)
		return rc;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)data, size, &off) !=
	    MSGPACK_UNPACK_SUCCESS || off != size)
		fuzz_fail("msgpack-c refused what wire_check accepted", "");
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, up.data);
	if (wire_check(sb.data, sb.size, &e2) != MU_OK)
		fuzz_fail("wire_check refused a re-packing of what it accepted", e2.msg);
	msgpack_sbuffer_destroy(&sb);
	msgpack_unpacked_destroy(&up);
	return MU_OK;
}

FUZZ_ENTRY
