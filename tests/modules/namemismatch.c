/* SPDX-License-Identifier: Apache-2.0 */
/* namemismatch: the file is namemismatch.so, the descriptor says otherwise. */
#include <muster/module.h>

static int
namemismatch_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	(void)ctx, (void)api;
	return MUSTER_PASS;
}
MUSTER_MODULE("othername", "1.0.0", "Named unlike its file", namemismatch_run);
