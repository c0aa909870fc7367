/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http.c - a strict, bounded HTTP/1.1 GET for muster-server's API (used by
 * `muster history` and by the expected set, expect.c).
 *
 * The server speaks plain HTTP/1.1 on loopback or a trusted network (TLS
 * belongs to a proxy in front of it), and we need one GET: a small client
 * over a socket here costs less than a libcurl dependency for every
 * operator machine.  It is strict and bounded: http:// only, an optional
 * user:password@ for basic auth, one request with Connection: close, a
 * response of at most HTTP_MAX_RESPONSE bytes, Content-Length or chunked
 * or read-to-close bodies, a timeout on every step.
 *
 * Ownership: the body returned is the caller's (free()).
 */
#include "ctl.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "loop.h"

#define HISTORY_MAX_RESPONSE	(32u << 20)

int
ctl_url_parse(const char *s, struct url *u)
{
	const char *p = s + 7, *at, *slash, *colon, *hp;
	size_t n;

	memset(u, 0, sizeof(*u));
	if (strncmp(s, "http://", 7) != 0)
		return -1;
	slash = strchr(p, '/');
	at = strchr(p, '@');
	if (at != NULL && (slash == NULL || at < slash)) {
		if ((size_t)(at - p) >= sizeof(u->auth))
			return -1;
		memcpy(u->auth, p, (size_t)(at - p));
		p = at + 1;
	}
	hp = p;
	n = slash ? (size_t)(slash - hp) : strlen(hp);
	colon = memchr(hp, ':', n);
	if (n == 0 || (colon ? (size_t)(colon - hp) : n) >= sizeof(u->host))
		return -1;
	memcpy(u->host, hp, colon ? (size_t)(colon - hp) : n);
	if (colon != NULL) {
		size_t pl = n - (size_t)(colon - hp) - 1;

		if (pl == 0 || pl >= sizeof(u->port) || strspn(colon + 1, "0123456789") < pl)
			return -1;
		memcpy(u->port, colon + 1, pl);
	} else
		snprintf(u->port, sizeof(u->port), "80");
	if (slash != NULL) {
		if (strlen(slash) >= sizeof(u->prefix) || strpbrk(slash, " ?#\r\n") != NULL)
			return -1;
		snprintf(u->prefix, sizeof(u->prefix), "%s", slash);
		n = strlen(u->prefix);
		while (n > 0 && u->prefix[n - 1] == '/')
			u->prefix[--n] = '\0';
	}
	return u->host[0] ? 0 : -1;
}

/* Wait for fd to be ready for ev until the deadline; -1 on timeout. */
static int
wait_fd(int fd, short ev, uint64_t deadline)
{
	struct pollfd p = { fd, ev, 0 };
	uint64_t now = now_mono_ms();

	if (now >= deadline)
		return -1;
	return poll(&p, 1, (int)(deadline - now)) == 1 ? 0 : -1;
}

static int
dial(const struct url *u, uint64_t deadline)
{
	struct addrinfo hints = { 0 }, *res, *ai;
	int fd = -1, soerr;
	socklen_t sl = sizeof(soerr);

	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(u->host, u->port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd == -1)
			continue;
		if ((connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)))
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int
send_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
	ssize_t n;

	while (len > 0) {
		if (wait_fd(fd, POLLOUT, deadline) != 0)
			return -1;
		if ((n = send(fd, buf, len, MSG_NOSIGNAL)) <= 0) {
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read until the peer closes; *out is NUL-terminated. */
static int
recv_all(int fd, char **out, size_t *len, uint64_t deadline)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap), *nb;
	ssize_t r;

	if (buf == NULL)
		return -1;
	for (;;) {
		if (n + 1 == cap) {
			if (cap >= HISTORY_MAX_RESPONSE || (nb = realloc(buf, cap * 2)) == NULL)
				goto fail;
			buf = nb;
			cap *= 2;
		}
		if (wait_fd(fd, POLLIN, deadline) != 0)
			goto fail;
		r = recv(fd, buf + n, cap - n - 1, 0);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			goto fail;
		}
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
fail:
	free(buf);
	return -1;
}

/* Undo chunked transfer coding in place; -1 if malformed. */
static int
dechunk(char *body, size_t len, size_t *outlen)
{
	char *r = body, *w = body, *end = body + len, *eol;
	unsigned long n;

	for (;;) {
		if ((eol = memmem(r, (size_t)(end - r), "\r\n", 2)) == NULL)
			return -1;
		errno = 0;
		n = strtoul(r, NULL, 16);
		if (errno != 0 || n > (size_t)(end - eol - 2))
			return -1;
		r = eol + 2;
		if (n == 0)
			break;
		memmove(w, r, n);
		w += n;
		r += n + 2;
		if (r > end)
			return -1;
	}
	*outlen = (size_t)(w - body);
	return 0;
}

/* GET path; the body (NUL-terminated, caller frees) and the status. */
int
ctl_http_get(const struct url *u, const char *path, uint64_t timeout_ms, char **body,
    int *status)
{
	char req[CTL_HTTP_MAX_PATH + 1024], b64[400], *resp = NULL, *hend, *b;
	uint64_t deadline = now_mono_ms() + timeout_ms;
	size_t len, blen;
	int fd, n;

	*status = 0;
	b64[0] = '\0';
	if (u->auth[0] != '\0')
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)u->auth,
		    (int)strlen(u->auth));
	n = snprintf(req, sizeof(req), "GET %s%s HTTP/1.1\r\nHost: %s:%s\r\n"
	    "User-Agent: muster/%s\r\nAccept: application/json\r\nConnection: close\r\n"
	    "%s%s%s\r\n", u->prefix, path, u->host, u->port, MUSTER_VERSION,
	    b64[0] ? "Authorization: Basic " : "", b64, b64[0] ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req))
		return -1;
	if ((fd = dial(u, deadline)) == -1)
		return -1;
	if (send_all(fd, req, (size_t)n, deadline) != 0 ||
	    recv_all(fd, &resp, &len, deadline) != 0) {
		close(fd);
		return -1;
	}
	close(fd);
	if (sscanf(resp, "HTTP/1.%*1d %3d", status) != 1 ||
	    (hend = strstr(resp, "\r\n\r\n")) == NULL) {
		free(resp);
		return -1;
	}
	*hend = '\0';
	b = hend + 4;
	blen = len - (size_t)(b - resp);
	if (strcasestr(resp, "\r\ntransfer-encoding: chunked") != NULL &&
	    dechunk(b, blen, &blen) != 0) {
		free(resp);
		return -1;
	}
	memmove(resp, b, blen);
	resp[blen] = '\0';
	*body = resp;
	return 0;
}

/* ---- the command ---------------------------------------------------------------- */

