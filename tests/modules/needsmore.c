/* SPDX-License-Identifier: Apache-2.0 */
/* needsmore: declares a need no runner knows (bit 0x80): refused, never run. */
#include <muster/module.h>

static int
needsmore_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	(void)ctx, (void)api;
	return MUSTER_PASS;
}

MUSTER_MODULE_NEEDS("needsmore", "1.0.0", "Needs the unknown", needsmore_run, 0x80);
