/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hello.c - a muster module: greets `who` and reports the kernel release,
 * asked of `uname -r` through run_cmd().  The contract is <muster/module.h>;
 * the guide is muster-module(7).  The test (CMakeLists.txt) puts a fake
 * uname first with MUSTER_TOOLS_DIR=tests/tools.
 */
#include <errno.h>
#include <string.h>

#include <muster/module.h>

static int
hello_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	const char *argv[] = { "uname", "-r", NULL };
	struct muster_cmd_result res;
	const char *who;
	char *cur, *kernel;
	int verdict;

	/* get_str(), error() and next_line() came after the first runner. */
	if (!MUSTER_API_HAS(api, next_line)) {
		api->reason(ctx, "this muster-runner is older than the module's SDK");
		return MUSTER_ERROR;
	}
	/* A bad value (a list, say) sets reason and summary: just return. */
	if (api->get_str(ctx, "who", 0, "world", &who) == MUSTER_ARG_BAD)
		return MUSTER_ERROR;
	if (who[0] == '\0')
		return api->fail(ctx, "argument who is empty");

	if (api->run_cmd(ctx, argv, 5000, 4096, &res) == -1)
		return api->error(ctx, "cannot run uname: %s", strerror(errno));
	cur = res.out;
	kernel = api->next_line(&cur);
	if (!res.exited || res.status != 0 || kernel == NULL)
		verdict = api->error(ctx, "uname -r failed (status %d)", res.status);
	else {
		api->out(ctx, "hello, %s", who);
		api->data_str(ctx, "greeted", who);
		api->data_str(ctx, "kernel", kernel);
		api->summary(ctx, "greeted %s on %s", who, kernel);
		verdict = MUSTER_PASS;
	}
	api->free(res.out);
	return verdict;
}

MUSTER_MODULE("hello", "1.0.0", "Say hello", hello_run);
