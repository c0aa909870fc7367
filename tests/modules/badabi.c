/* SPDX-License-Identifier: Apache-2.0 */
/* badabi: a descriptor for ABI 999. */
#include <muster/module.h>

static int
badabi_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	(void)ctx, (void)api;
	return MUSTER_PASS;
}

__attribute__((visibility("default")))
const struct muster_module muster_module = {
	MUSTER_MODULE_MAGIC, 999, sizeof(struct muster_module),
	"badabi", "1.0.0", "Speaks ABI 999", badabi_run, 0,
};
