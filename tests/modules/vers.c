/* SPDX-License-Identifier: Apache-2.0 */
/* vers: one module ("vers") built in three versions (VERS_VERSION, from
 * tests/modules/CMakeLists.txt: vers1.so, vers2.so, vers10.so), to publish
 * one over another and withdraw one.  Passes, and says its version. */
#include <muster/module.h>

static int
vers_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	api->summary(ctx, "version %s", VERS_VERSION);
	api->data_str(ctx, "version", VERS_VERSION);
	return MUSTER_PASS;
}
MUSTER_MODULE("vers", VERS_VERSION, "The same module in several versions", vers_run);
