/* SPDX-License-Identifier: Apache-2.0 */
/* exit3: calls exit(3) in the middle of run(). */
#include <stdlib.h>

#include <muster/module.h>

static int
exit3_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	api->out(ctx, "exiting with 3");
	exit(3);
}
MUSTER_MODULE("exit3", "1.0.0", "Calls exit(3)", exit3_run);
