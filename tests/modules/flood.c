/* SPDX-License-Identifier: Apache-2.0 */
/* flood: writes "bytes" (default 10 MB) of output in 100-byte lines; or,
 * with "lines" = N, N short lines (just their number: many output frames
 * in few bytes, for the per-job bound on stream events). */
#include <muster/module.h>

static int
flood_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	int64_t bytes = api->arg_int(ctx, "bytes", 10 * 1000 * 1000), n;
	int64_t lines = api->arg_int(ctx, "lines", -1);

	if (lines >= 0)
		for (n = 0; n < lines; n++)
			api->out(ctx, "%lld", (long long)n);
	else
		for (n = 0; n * 100 < bytes; n++)
			api->out(ctx, "line %09lld %s", (long long)n,
			    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	api->data_int(ctx, "lines", n);
	api->summary(ctx, "wrote %lld lines", (long long)n);
	return MUSTER_PASS;
}
MUSTER_MODULE("flood", "1.0.0", "Floods the output", flood_run);
