/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sys_info.c - the sys.info module: kernel, uptime, load, memory and CPUs.
 * The check itself is in common/, shared with qc.install.
 */
#include "chk.h"

static int
sys_info_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	return chk_main(ctx, api, check_sys_info);
}

MUSTER_MODULE("sys.info", "1.0.0",
    "Kernel, uptime, load, memory and CPUs", sys_info_run);
