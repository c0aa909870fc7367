/* SPDX-License-Identifier: Apache-2.0 */
/*
 * file_check.c - the file.check module: a file's type, mode, owner, size,
 * sha256 and content.
 * The check itself is in common/, shared with qc.install.
 */
#include "chk.h"

static int
file_check_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	return chk_main(ctx, api, check_file);
}

MUSTER_MODULE("file.check", "1.0.0",
    "A file's type, mode, owner, size, sha256 and content", file_check_run);
