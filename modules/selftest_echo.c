/* SPDX-License-Identifier: Apache-2.0 */
/*
 * selftest_echo.c - the selftest.echo module: echo the "nonce" argument
 * back.  muster-server sends it in the self-update test job and checks the
 * echo, so it stays as plain as a module can be: no shared code.
 */
#include <string.h>

#include <muster/module.h>

#define NONCE_MAX	256

static int
echo_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	const char *nonce = api->arg_str(ctx, "nonce", NULL);

	if (nonce == NULL || *nonce == '\0') {
		api->summary(ctx, "no nonce");
		api->reason(ctx, "argument \"nonce\" (a string) is required");
		return MUSTER_ERROR;
	}
	if (strlen(nonce) > NONCE_MAX) {
		api->summary(ctx, "nonce too long");
		api->reason(ctx, "nonce is longer than %d bytes", NONCE_MAX);
		return MUSTER_ERROR;
	}
	api->data_str(ctx, "nonce", nonce);
	api->out(ctx, "nonce %s", nonce);
	api->summary(ctx, "nonce %s", nonce);
	return MUSTER_PASS;
}

MUSTER_MODULE("selftest.echo", "1.0.0", "Echo the nonce argument (self-test)",
    echo_run);
