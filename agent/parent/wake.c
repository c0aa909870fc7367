/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wake.c - the wake port (design.md §6).  A connection is accepted, its peer
 * address checked against [wake] trusted, and closed: shutdown() then
 * close(), never a read().  A trusted peer only makes the agent connect
 * sooner, so an untrusted one costs an accept and a close.
 */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPTS_PER_WAKE	64	/* then let the loop serve others */

static bool
peer_trusted(const struct agent *a, const struct sockaddr_storage *ss)
{
	const void *addr;
	int family = ss->ss_family, i;

	if (family == AF_INET)
		addr = &((const struct sockaddr_in *)ss)->sin_addr;
	else if (family == AF_INET6)
		addr = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	else
		return false;
	for (i = 0; i < a->cfg.ntrusted; i++)
		if (cidr_match(&a->cfg.trusted[i], family, addr))
			return true;
	return false;
}

static void
peer_name(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const void *addr = ss->ss_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)ss)->sin_addr :
	    (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

	if (inet_ntop(ss->ss_family, addr, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
}

static void
poke(struct agent *a, const struct sockaddr_storage *ss)
{
	uint64_t now = now_mono_ms();
	char name[INET6_ADDRSTRLEN];

	peer_name(ss, name, sizeof(name));
	if (!peer_trusted(a, ss)) {
		a->par.pokes_refused++;
		log_info("wake: untrusted peer %s ignored (%llu so far)", name,
		    (unsigned long long)a->par.pokes_refused);
		return;
	}
	a->par.pokes++;
	if (a->par.last_poke && now - a->par.last_poke < POKE_MIN_INTERVAL_MS) {
		log_debug("wake: poke from %s rate-limited", name);
		return;
	}
	a->par.last_poke = now;
	log_info("wake: poke from %s (%llu so far)", name, (unsigned long long)a->par.pokes);
	/* Connected, it publishes this status (a proof of life); if not,
	 * it reconnects and we sign one at "connected". */
	sign_status(a, PRIV_STATUS_ONLINE);
	priv_send_poke(a);
}

static void
on_accept(struct loop *l, int fd, short revents, void *arg)
{
	struct agent *a = arg;
	struct sockaddr_storage ss;
	socklen_t sl;
	int i, c;

	(void)l, (void)revents;
	for (i = 0; i < ACCEPTS_PER_WAKE; i++) {
		sl = sizeof(ss);
		c = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c == -1) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("wake: accept");
			return;
		}
		/* Never read: whatever the peer sent dies with the socket. */
		shutdown(c, SHUT_RDWR);
		close(c);
		poke(a, &ss);
	}
}

static int
listen_on(const char *bind_addr, int port, int *out, struct mu_err *err)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	int fd, one = 1, zero = 0;
	socklen_t sl;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, bind_addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, bind_addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		sl = sizeof(*s6);
	} else
		return mu_errf(err, MU_EINVAL, "wake: bad bind address %s", bind_addr);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return mu_errf(err, MU_EIO, "wake: socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* "::" serves IPv4 peers too, as mapped addresses. */
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&ss, sl) == -1 || listen(fd, 64) == -1) {
		int e = errno;

		close(fd);
		return mu_errf(err, MU_EIO, "wake: bind %s port %d: %s", bind_addr, port,
		    strerror(e));
	}
	*out = fd;
	return MU_OK;
}

/*
 * The listener of the version we replaced (design.md §5, §6): handed over by
 * fd across exec(), so a peer connecting during an update is queued, never
 * refused.  Adopted only if it is what it must be: a listening TCP socket.
 */
static int
adopt(int fd, struct mu_err *err)
{
	int type = 0, acc = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(acc);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l2) == -1 ||
	    type != SOCK_STREAM || !acc)
		return mu_errf(err, MU_EINVAL, "wake: fd %d handed over is not a listening "
		    "socket", fd);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		return mu_errf(err, MU_EIO, "wake: fd %d: %s", fd, strerror(errno));
	return MU_OK;
}

int
wake_open(struct agent *a, struct mu_err *err)
{
	int fd = -1, rc;

	a->par.wake_fd = -1;
	if (a->par.wake_fd_inherited >= 0) {
		fd = a->par.wake_fd_inherited;
		a->par.wake_fd_inherited = -1;
		if (adopt(fd, err) == MU_OK) {
			a->par.wake_fd = fd;
			loop_add_fd(a->loop, fd, POLLIN, on_accept, a);
			log_notice("wake: kept the listener (fd %d) across the update", fd);
			return MU_OK;
		}
		log_warnx("%s; opening a new one", err->msg);
		close(fd);
	}
	if (a->cfg.wake_port == 0)
		return MU_OK;
	if ((rc = listen_on(a->cfg.wake_bind, a->cfg.wake_port, &fd, err)) != MU_OK)
		return rc;
	a->par.wake_fd = fd;
	loop_add_fd(a->loop, fd, POLLIN, on_accept, a);
	log_info("wake: listening on %s port %d", a->cfg.wake_bind, a->cfg.wake_port);
	return MU_OK;
}

void
wake_close(struct agent *a)
{
	if (a->par.wake_fd == -1)
		return;
	loop_del_fd(a->loop, a->par.wake_fd);
	close(a->par.wake_fd);
	a->par.wake_fd = -1;
}
