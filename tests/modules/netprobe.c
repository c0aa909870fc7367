/* SPDX-License-Identifier: Apache-2.0 */
/*
 * netprobe: what a module gets of the network (issue 22, design.md §8).
 * Declares no need (MUSTER_MODULE); netneed.c is the same code declaring
 * MUSTER_NEEDS_NET.
 *
 *	port=N		connect to 127.0.0.1:N over TCP -> data connect/...
 *
 * Always: data inet/errno and inet6/errno (0: socket(AF_INET[6]) worked),
 * unix/errno (a Unix socket, which every module keeps), and ctor/errno:
 * socket(AF_INET) in an ELF constructor, which runs at dlopen(), before
 * the runner has read the descriptor.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <muster/module.h>

#ifndef NETPROBE_NAME
#define NETPROBE_NAME	"netprobe"
#define NETPROBE_NEEDS	0
#endif

static int ctor_errno = -1;

static int
try_socket(int family, int type)
{
	int fd = socket(family, type | SOCK_CLOEXEC, 0);

	if (fd == -1)
		return errno;
	close(fd);
	return 0;
}

__attribute__((constructor)) static void
netprobe_ctor(void)
{
	ctor_errno = try_socket(AF_INET, SOCK_STREAM);
}

static void
netprobe_connect(struct muster_ctx *ctx, const struct muster_api *api, int64_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd, e = 0;

	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		e = errno;
	else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		e = errno;
	api->data_bool(ctx, "connect/ok", fd != -1 && e == 0);
	api->data_int(ctx, "connect/errno", e);
	if (fd != -1)
		close(fd);
}

static int
netprobe_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	int64_t port = api->arg_int(ctx, "port", 0);

	api->data_int(ctx, "ctor/errno", ctor_errno);
	api->data_int(ctx, "inet/errno", try_socket(AF_INET, SOCK_DGRAM));
	api->data_int(ctx, "inet6/errno", try_socket(AF_INET6, SOCK_DGRAM));
	api->data_int(ctx, "unix/errno", try_socket(AF_UNIX, SOCK_DGRAM));
	if (port > 0 && port < 65536)
		netprobe_connect(ctx, api, port);
	api->summary(ctx, "probed");
	return MUSTER_PASS;
}

MUSTER_MODULE_NEEDS(NETPROBE_NAME, "1.0.0", "What a module gets of the network",
    netprobe_run, NETPROBE_NEEDS);
