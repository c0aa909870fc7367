/* SPDX-License-Identifier: Apache-2.0 */
/*
 * service_status.c - the service.status module: a systemd unit's active and
 * enabled state.
 * The check itself is in common/, shared with qc.install.
 */
#include "chk.h"

static int
service_status_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	return chk_main(ctx, api, check_service_status);
}

MUSTER_MODULE("service.status", "1.0.0",
    "A systemd unit's active and enabled state", service_status_run);
