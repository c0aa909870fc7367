/* SPDX-License-Identifier: Apache-2.0 */
/* hang: never returns; sleeps, or spins with busy=true. */
#include <unistd.h>

#include <muster/module.h>

static int
hang_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	volatile unsigned long spin = 0;
	int busy = api->arg_bool(ctx, "busy", 0);

	api->out(ctx, "hanging%s", busy ? " (busy)" : "");
	for (;;) {
		if (busy)
			spin++;
		else
			pause();
	}
	return MUSTER_PASS;
}
MUSTER_MODULE("hang", "1.0.0", "Never returns", hang_run);
