/* SPDX-License-Identifier: Apache-2.0 */
/* crashsay: sets a summary and data, prints a line, then dies without a
 * verdict the way arg "how" says: "abort" (abort()), "segv" (a store to
 * the never-mapped first page, as segv.c), "_exit" (_exit(4)) or "loop"
 * (sets data "n" to 0..99999 first, to cross the runner's state budget,
 * then aborts).  What the module said must survive in the result. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <muster/module.h>

static int
crashsay_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	const char *how = api->arg_str(ctx, "how", "abort");
	volatile int *p = (volatile int *)(uintptr_t)api->arg_int(ctx, "addr", 16);
	int64_t i;

	api->summary(ctx, "checked 2 of 3 disks");
	api->data_int(ctx, "checked", 2);
	api->data_str(ctx, "disks/sda", "ok");
	if (strcmp(how, "loop") == 0)
		for (i = 0; i < 100000; i++)
			api->data_int(ctx, "n", i);
	api->out(ctx, "about to die: %s", how);
	if (strcmp(how, "segv") == 0)
		*p = 1;
	else if (strcmp(how, "_exit") == 0)
		_exit(4);
	abort();
}
MUSTER_MODULE("crashsay", "1.0.0", "Says something, then crashes", crashsay_run);
