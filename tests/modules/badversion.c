/* SPDX-License-Identifier: Apache-2.0 */
/* badversion: a version string the wire format does not allow. */
#include <muster/module.h>

static int
badversion_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	(void)ctx, (void)api;
	return MUSTER_PASS;
}
MUSTER_MODULE("badversion", "1.0 beta", "Bad version string", badversion_run);
