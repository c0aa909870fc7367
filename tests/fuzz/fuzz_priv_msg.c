/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for priv_msg_decode / priv_msg_encode: the frames
 * between musterd's parent and its network process (agent/common/priv.c), which
 * the parent decodes from a process it does not trust. */
#include "fuzz.h"

static bool
same(const struct priv_msg *a, const struct priv_msg *b)
{
	return FUZZ_EQ(a, b, type) && FUZZ_STREQ(a, b, job) && FUZZ_STREQ(a, b, name) &&
	    FUZZ_STREQ(a, b, sha256) && FUZZ_STREQ(a, b, local) &&
	    FUZZ_STREQ(a, b, topic) && FUZZ_EQ(a, b, source) &&
	    fuzz_view_eq(a->reason, b->reason) && fuzz_bytes_eq(a->payload, b->payload);
}

FUZZ_ROUNDTRIP(priv_msg, priv_msg_decode, priv_msg_encode, same)
