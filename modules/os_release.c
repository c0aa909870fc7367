/* SPDX-License-Identifier: Apache-2.0 */
/*
 * os_release.c - the os.release module: read os-release and match ID and
 * VERSION_ID.
 * The check itself is in common/, shared with qc.install.
 */
#include "chk.h"

static int
os_release_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	return chk_main(ctx, api, check_os_release);
}

MUSTER_MODULE("os.release", "1.0.0",
    "Read os-release and match ID and VERSION_ID", os_release_run);
