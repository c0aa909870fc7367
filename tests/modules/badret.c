/* SPDX-License-Identifier: Apache-2.0 */
/* badret: returns 7, which is not a verdict. */
#include <muster/module.h>

static int
badret_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	api->reason(ctx, "this reason is replaced");
	return 7;
}
MUSTER_MODULE("badret", "1.0.0", "Returns 7", badret_run);
