/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hello.c - a muster module.  The contract is <muster/module.h>; the guide
 * is muster-module(7).
 */
#include <muster/module.h>

static int
hello_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	const char *who = api->arg_str(ctx, "who", "world");

	if (who[0] == '\0') {
		api->reason(ctx, "argument who is empty");
		api->summary(ctx, "nobody to greet");
		return MUSTER_FAIL;
	}
	api->out(ctx, "hello, %s", who);
	api->data_str(ctx, "greeted", who);
	api->summary(ctx, "greeted %s", who);
	return MUSTER_PASS;
}

MUSTER_MODULE("hello", "1.0.0", "Say hello", hello_run);
