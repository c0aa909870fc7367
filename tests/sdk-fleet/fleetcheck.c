/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fleetcheck.c - a third-party module as an author would write it from the
 * installed dev kit alone (issue 23): tests/system/test_sdk_fleet.py copies
 * the installed template out of the tree, puts this file in place of
 * hello.c, builds it against the installed SDK and runs it locally and on
 * a host.  By argument it does what passes on a laptop and not on a host:
 *
 *	adjtimex=true	adjtimex(2), read only (the host's filter blocks it)
 *	read=PATH	open PATH for reading (a file only root may read)
 *	abort=true	abort(), as a failed assert() does
 *	hang=true	sleep, never returning
 *	(none)		`timedatectl show` through run_cmd(); the tests put a
 *			fake timedatectl first with MUSTER_TOOLS_DIR
 *
 * Memory: res.out is run_cmd()'s, freed here with api->free(); argument
 * strings are the runner's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <unistd.h>

#include <muster/module.h>

static int
clock_synced(struct muster_ctx *ctx, const struct muster_api *api)
{
	const char *argv[] = { "timedatectl", "show", NULL };
	struct muster_cmd_result res;
	char *cur, *k, *v;
	const char *synced = NULL;
	int verdict;

	if (api->run_cmd(ctx, argv, 5000, 4096, &res) == -1)
		return api->error(ctx, "cannot run timedatectl: %s", strerror(errno));
	cur = res.out;
	while (api->next_kv(&cur, '=', &k, &v))
		if (strcmp(k, "NTPSynchronized") == 0)
			synced = v;
	if (!res.exited || res.status != 0 || synced == NULL)
		verdict = api->error(ctx, "timedatectl show failed (status %d)", res.status);
	else if (strcmp(synced, "yes") != 0)
		verdict = api->fail(ctx, "clock not synchronized (NTPSynchronized=%s)", synced);
	else {
		api->summary(ctx, "clock synchronized");
		verdict = MUSTER_PASS;
	}
	api->free(res.out);
	return verdict;
}

static int
fleetcheck_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	int adj, abrt, hang, fd;
	const char *path;
	struct timex tx;

	/* The checked getters, fail() and next_kv() came after the first runner. */
	if (!MUSTER_API_HAS(api, next_kv)) {
		api->reason(ctx, "this muster-runner is older than the module's SDK");
		return MUSTER_ERROR;
	}
	api->get_bool(ctx, "adjtimex", 0, 0, &adj);
	api->get_bool(ctx, "abort", 0, 0, &abrt);
	api->get_bool(ctx, "hang", 0, 0, &hang);
	api->get_str(ctx, "read", 0, NULL, &path);
	if (api->arg_errors(ctx))
		return MUSTER_ERROR;

	if (adj) {
		memset(&tx, 0, sizeof(tx));	/* modes 0: only read */
		if (adjtimex(&tx) == -1)
			return api->error(ctx, "adjtimex: %s", strerror(errno));
		api->summary(ctx, "clock status %d", tx.status);
		return MUSTER_PASS;
	}
	if (path != NULL) {
		if ((fd = open(path, O_RDONLY)) == -1)
			return api->error(ctx, "%s: %s", path, strerror(errno));
		close(fd);
		api->summary(ctx, "read %s", path);
		return MUSTER_PASS;
	}
	if (abrt)
		abort();
	if (hang)
		for (;;)
			sleep(60);
	return clock_synced(ctx, api);
}

MUSTER_MODULE("fleetcheck", "1.0.0", "What passes on a laptop passes on the fleet",
    fleetcheck_run);
