/* SPDX-License-Identifier: Apache-2.0 */
/*
 * alloc: allocates and touches chunks of chunk_kb (default 1024) KiB
 * until malloc() fails, frees
 * them, and reports an error "out of memory".  Meant to run under an
 * RLIMIT_AS; capped at cap_mb (default 8 GiB) so that without one it
 * cannot eat the machine.  Reaching the cap is a fail.  With keep=true it
 * returns without freeing anything, as a leaky module would.
 */
#include <stdlib.h>
#include <string.h>

#include <muster/module.h>

#define PAGE	4096u

struct chunk {
	struct chunk *next;
};

static int
alloc_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	int64_t cap = api->arg_int(ctx, "cap_mb", 8192), n = 0;
	int64_t chunk_kb = api->arg_int(ctx, "chunk_kb", 1024), kb = 0;
	int keep = api->arg_bool(ctx, "keep", 0);
	struct chunk *head = NULL, *c;
	size_t off, chunk;

	if (cap < 0 || cap > 8192)
		cap = 8192;
	if (chunk_kb < 1 || chunk_kb > 1024)
		chunk_kb = 1024;
	chunk = (size_t)chunk_kb * 1024;
	while (n < cap) {
		if ((c = malloc(chunk)) == NULL)
			break;
		/* Touch every page: a real leak costs resident memory. */
		for (off = 0; off < chunk; off += PAGE)
			((volatile char *)c)[off] = 1;
		c->next = head;
		head = c;
		if ((kb += chunk_kb) >= 1024)
			n++, kb -= 1024;
	}
	while (!keep && (c = head) != NULL) {
		head = c->next;
		free(c);
	}
	api->data_int(ctx, "allocated_mb", n);
	if (n < cap) {
		api->reason(ctx, "out of memory after %lld MiB", (long long)n);
		return MUSTER_ERROR;
	}
	api->reason(ctx, "allocated the cap of %lld MiB without running out", (long long)n);
	return MUSTER_FAIL;
}
MUSTER_MODULE("alloc", "1.0.0", "Allocates until malloc() fails", alloc_run);
