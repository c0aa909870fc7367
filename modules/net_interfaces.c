/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_interfaces.c - the net.interfaces module: network interfaces, flags, MTU
 * and addresses.
 * The check itself is in common/, shared with qc.install.
 */
#include "chk.h"

static int
net_interfaces_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	return chk_main(ctx, api, check_net_interfaces);
}

MUSTER_MODULE("net.interfaces", "1.0.0",
    "Network interfaces, flags, MTU and addresses", net_interfaces_run);
