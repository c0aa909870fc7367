/* SPDX-License-Identifier: Apache-2.0 */
/*
 * disk_usage.c - the disk.usage module: filesystem use against a maximum
 * percentage.
 * The check itself is in common/, shared with qc.install.
 */
#include "chk.h"

static int
disk_usage_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	return chk_main(ctx, api, check_disk_usage);
}

MUSTER_MODULE("disk.usage", "1.0.0",
    "Filesystem use against a maximum percentage", disk_usage_run);
