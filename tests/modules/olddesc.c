/* SPDX-License-Identifier: Apache-2.0 */
/* olddesc: a descriptor as modules built before the `needs` field have it
 * (48 bytes, size 48): it runs, needs nothing, gets no network. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <muster/module.h>

struct muster_module_v1 {
	uint64_t magic;
	uint32_t abi;
	uint32_t size;
	const char *name;
	const char *version;
	const char *summary;
	int (*run)(struct muster_ctx *ctx, const struct muster_api *api);
};

static int
olddesc_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	api->data_int(ctx, "inet/errno", fd == -1 ? errno : 0);
	if (fd != -1)
		close(fd);
	return MUSTER_PASS;
}

__attribute__((visibility("default")))
const struct muster_module_v1 muster_module = {
	MUSTER_MODULE_MAGIC, MUSTER_ABI, sizeof(struct muster_module_v1),
	"olddesc", "1.0.0", "A descriptor from before needs", olddesc_run,
};
