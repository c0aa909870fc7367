/* SPDX-License-Identifier: Apache-2.0 */
/*
 * forker: forks children (arg "children", at most 50) that sleep for ten
 * minutes, then passes.  Tests check that killing the runner's process
 * group leaves none behind.  Bounded: never a fork bomb.
 */
#include <unistd.h>

#include <muster/module.h>

#define MAX_CHILDREN	50

static int
forker_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	int64_t want = api->arg_int(ctx, "children", MAX_CHILDREN), n;
	pid_t pid;

	if (want < 0 || want > MAX_CHILDREN)
		want = MAX_CHILDREN;
	for (n = 0; n < want; n++) {
		if ((pid = fork()) == -1)
			break;
		if (pid == 0) {
			sleep(600);
			_exit(0);
		}
	}
	api->data_int(ctx, "children", n);
	api->summary(ctx, "forked %lld children", (long long)n);
	return MUSTER_PASS;
}
MUSTER_MODULE("forker", "1.0.0", "Leaves sleeping children behind", forker_run);
