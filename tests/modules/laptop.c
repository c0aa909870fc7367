/* SPDX-License-Identifier: Apache-2.0 */
/*
 * laptop: what passed on a module author's machine and not on a host
 * (issue 23); each case must give the same verdict under `muster-runner
 * --run` as through musterd (tests/runner/test_confined_run.py):
 *
 *	adjtimex=true	adjtimex(2), read only (blocked by the filter)
 *			-> error, reason strerror(errno)
 *	read=PATH	open PATH for reading -> pass, or error with strerror
 *	abort=true	abort() (a failed assert())
 *	hang=true	sleep forever
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <unistd.h>

#include <muster/module.h>

static int
laptop_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	const char *path = api->arg_str(ctx, "read", NULL);
	struct timex tx;
	int fd;

	if (api->arg_bool(ctx, "adjtimex", 0)) {
		memset(&tx, 0, sizeof(tx));	/* modes 0: only read */
		if (adjtimex(&tx) == -1)
			return api->error(ctx, "adjtimex: %s", strerror(errno));
		api->summary(ctx, "clock status %d", tx.status);
	}
	if (path != NULL) {
		if ((fd = open(path, O_RDONLY)) == -1)
			return api->error(ctx, "%s: %s", path, strerror(errno));
		close(fd);
		api->summary(ctx, "read %s", path);
	}
	if (api->arg_bool(ctx, "abort", 0))
		abort();
	if (api->arg_bool(ctx, "hang", 0))
		for (;;)
			pause();
	return MUSTER_PASS;
}
MUSTER_MODULE("laptop", "1.0.0", "What differs between a laptop and a host", laptop_run);
