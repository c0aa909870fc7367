/* SPDX-License-Identifier: Apache-2.0 */
/* Round-trip fuzz target for ipc_event_decode / ipc_event_encode: the
 * runner's frames, which a hostile module can write itself. */
#include "fuzz.h"
#include "ipc.h"

static bool
same(const struct ipc_event *a, const struct ipc_event *b)
{
	return FUZZ_EQ(a, b, type) && fuzz_view_eq(a->text, b->text) &&
	    FUZZ_EQ(a, b, pct) && FUZZ_EQ(a, b, status) &&
	    fuzz_view_eq(a->reason, b->reason) && fuzz_view_eq(a->summary, b->summary) &&
	    fuzz_obj_eq(a->data, b->data) && FUZZ_EQ(a, b, truncated) &&
	    FUZZ_STREQ(a, b, module) && FUZZ_STREQ(a, b, module_version);
}

FUZZ_ROUNDTRIP(ipc_event, ipc_event_decode, ipc_event_encode, same)
