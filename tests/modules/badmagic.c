/* SPDX-License-Identifier: Apache-2.0 */
/* badmagic: a descriptor with the wrong magic. */
#include <muster/module.h>

static int
badmagic_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	(void)ctx, (void)api;
	return MUSTER_PASS;
}

__attribute__((visibility("default")))
const struct muster_module muster_module = {
	0x0123456789abcdefULL, MUSTER_ABI, sizeof(struct muster_module),
	"badmagic", "1.0.0", "Wrong magic", badmagic_run, 0,
};
