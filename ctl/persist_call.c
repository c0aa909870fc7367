/* SPDX-License-Identifier: Apache-2.0 */
/*
 * persist_call.c - the calling side of [cli] persist (persist.h): borrow
 * the relay's broker session, or start a relay for the next call.  Part of
 * the core (ctl/CMakeLists.txt), so the CLI and libmuster-client both
 * borrow it; the relay itself (persist.c) is the muster binary's.
 */
#include "persist.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "relay.h"
#include "loop.h"

/* ---- the calling side -------------------------------------------------- */

/* The relay's arguments: this call's broker settings as flags (absolute
 * paths: the relay does not keep the caller's folder), with no file. */
struct spawn_args {
	char *argv[24];
	int argc;
	char store[10][PATH_MAX + CONF_MAX_URIS * CONF_URI_MAX];
	int nstore;
};

static void
arg_add(struct spawn_args *a, const char *flag, const char *value, bool path)
{
	char *dst = a->store[a->nstore];

	if (value[0] == '\0' || a->nstore == 9)
		return;
	if (!path || realpath(value, dst) == NULL)
		snprintf(dst, sizeof(a->store[0]), "%s", value);
	a->nstore++;
	a->argv[a->argc++] = (char *)flag;
	a->argv[a->argc++] = dst;
}

static void
spawn_args_fill(struct spawn_args *a, const struct ctl *c, char *exe)
{
	const struct broker_config *b = &c->cfg.broker;
	char uris[CONF_MAX_URIS * CONF_URI_MAX] = "", tmp[64];
	int i;

	a->argc = 0, a->nstore = 0;
	a->argv[a->argc++] = exe;
	a->argv[a->argc++] = "-c";
	a->argv[a->argc++] = "/dev/null";
	for (i = 0; i < b->nuris; i++) {
		if (i)
			strcat(uris, ",");
		strcat(uris, b->uris[i]);
	}
	arg_add(a, "--broker", uris, false);
	arg_add(a, "--ca", b->ca, true);
	arg_add(a, "--cert", b->cert, true);
	arg_add(a, "--key", b->key, true);
	arg_add(a, "--protocol", b->protocol == 4 ? "3.1.1" : "5", false);
	snprintf(tmp, sizeof(tmp), "%llus", (unsigned long long)(b->keepalive_ms / 1000));
	arg_add(a, "--keepalive", tmp, false);
	arg_add(a, "--topic-root", b->topic_root, false);
	snprintf(a->store[a->nstore], sizeof(a->store[0]), "--persist=%llums",
	    (unsigned long long)c->cfg.persist_ms);
	a->argv[a->argc++] = a->store[a->nstore++];
	a->argv[a->argc++] = "--persist-serve";
	a->argv[a->argc] = NULL;
}

/*
 * Start the relay: a fresh image of this program (exec, so that nothing of
 * the caller, the operator key least of all, is in its memory), in its own
 * session, with /dev/null for stdio (so `muster ... | cat` ends with the
 * call) and no other descriptor of the caller.  Double fork: the caller
 * reaps the middle process at once and never gets a zombie.
 */
static void
spawn_relay(const struct ctl *c)
{
	struct spawn_args *a;		/* large: built before fork, on the heap */
	char exe[PATH_MAX];
	ssize_t n;
	pid_t pid;

	/* The CLI is the muster binary itself; the library names it
	 * (c->relay_exe), since its own image is the caller's program. */
	if (c->relay_exe != NULL) {
		if (access(c->relay_exe, X_OK) != 0 ||
		    snprintf(exe, sizeof(exe), "%s", c->relay_exe) >= (int)sizeof(exe))
			return;
	} else if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0) {
		return;
	} else
		exe[n] = '\0';
	if ((a = malloc(sizeof(*a))) == NULL)
		return;
	spawn_args_fill(a, c, exe);
	if ((pid = fork()) == -1) {
		free(a);
		return;
	}
	if (pid == 0) {
		sigset_t none;
		int fd;

		if (setsid() == -1 || fork() != 0)
			_exit(0);
		fd = open("/dev/null", O_RDWR);
		if (fd == -1)
			_exit(1);
		dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
		for (fd = 3; fd < 1024; fd++)
			close(fd);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (chdir("/") == -1)
			_exit(1);
		execv(exe, a->argv);
		_exit(127);
	}
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
	free(a);
}

int
ctl_persist_connect(struct ctl *c)
{
	char path[RELAY_SOCK_PATH_MAX];
	struct mu_err err;
	int rc;

	if (c->cfg.persist_ms == 0 || c->session_id[0] != '\0')
		return -1;
	if (relay_socket_path(&c->cfg.broker, true, path, &err) != MU_OK)
		return -1;	/* no runtime folder: no persist */
	rc = bus_new_relay(&c->bus, path, PERSIST_READY_MS, &err);
	if (rc == MU_OK) {
		/* Take its BUS_CONNECTED (it follows "ready" at once), as
		 * ctl_connect() does with a direct session's. */
		struct pollfd pfd = { bus_fd(c->bus), POLLIN, 0 };
		uint64_t deadline = now_mono_ms() + PERSIST_READY_MS;
		struct bus_event *ev = NULL;

		while ((ev = bus_next(c->bus)) == NULL && now_mono_ms() < deadline)
			poll(&pfd, 1, 10);
		if (ev && ev->type == BUS_CONNECTED) {
			bus_event_free(ev);
			return 0;
		}
		bus_event_free(ev);
		bus_free(c->bus);
		c->bus = NULL;
		return -1;
	}
	/* None there (or a stale socket, now removed): one for next time.  A
	 * relay that is there but not ready is left alone. */
	if (rc == MU_ENOENT)
		spawn_relay(c);
	return -1;
}

