/* SPDX-License-Identifier: Apache-2.0 */
/* segv: stores to an address it cannot know is bad (arg "addr", default
 * 16: in the never-mapped first page, yet not NULL, which UBSan would
 * catch first), so the compiler cannot turn it into a trap instruction. */
#include <stdint.h>

#include <muster/module.h>

static int
segv_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	volatile int *p = (volatile int *)(uintptr_t)api->arg_int(ctx, "addr", 16);

	api->out(ctx, "about to crash");
	*p = 1;
	return MUSTER_PASS;
}
MUSTER_MODULE("segv", "1.0.0", "Crashes with SIGSEGV", segv_run);
