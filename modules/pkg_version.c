/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pkg_version.c - the pkg.version module: installed version of a package
 * against a minimum.
 * The check itself is in common/, shared with qc.install.
 */
#include "chk.h"

static int
pkg_version_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	return chk_main(ctx, api, check_pkg_version);
}

MUSTER_MODULE("pkg.version", "1.0.0",
    "Installed version of a package against a minimum", pkg_version_run);
