/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd.c - the two helpers that reach outside the runner: read_file() and
 * run_cmd().
 *
 * run_cmd() starts argv without a shell, in a process group of its own so
 * that a timeout can kill whatever it started, with stdin from /dev/null,
 * stdout and stderr in one pipe, PATH and LANG only, default signal
 * actions, and no other fd of ours (the event pipe and the module must not
 * leak into a daemon it starts).  The child is started by lib/subproc.c's
 * spawn_start(), whose child side is async-signal-safe (a module may have
 * started threads); the path is resolved and /dev/null opened before.
 *
 * The command's group outlives the runner if musterd kills the runner's
 * group, so the child asks for SIGKILL when the runner dies
 * (PR_SET_PDEATHSIG), and a SIGTERM to the runner kills the command's
 * group first (cmd_signals()).
 */
#include "runner.h"
#include "loop.h"	/* now_mono_ms: the one monotonic clock */
#include "subproc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define READ_FIRST	4096
#define CMD_CHUNK	(64u * 1024)
#define CMD_MAX_ARGS	4096
#define CMD_DRAIN_READS	64

/* The group of the command being run, for the SIGTERM handler. */
static volatile sig_atomic_t cmd_pgid;

static char *const cmd_envp[] = {
	"PATH=" RUNNER_STD_PATH, "LANG=C", NULL,
};

/* ---- read_file -------------------------------------------------------- */

/* Read up to max + 1 bytes, so that "more than max" can be told. */
static int
read_bounded(int fd, size_t max, char **bufp, size_t *lenp)
{
	size_t cap = max + 1 < READ_FIRST ? max + 1 : READ_FIRST, len = 0;
	char *buf = malloc(cap + 1), *nbuf;
	ssize_t n;

	if (buf == NULL)
		return -1;
	for (;;) {
		if (len == cap) {
			if (cap == max + 1)
				break;
			cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
			if ((nbuf = realloc(buf, cap + 1)) == NULL) {
				free(buf);
				return -1;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		/* A FIFO with nothing in it: what is there is all there is. */
		if (n == 0 || (n == -1 && errno == EAGAIN))
			break;
		if (n == -1) {
			free(buf);
			return -1;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	*bufp = buf, *lenp = len;
	return 0;
}

int
cmd_read_file(const char *path, size_t max, char **bufp, size_t *lenp)
{
	char *buf = NULL;
	size_t len = 0;
	int fd, saved;

	if (bufp != NULL)
		*bufp = NULL;
	if (lenp != NULL)
		*lenp = 0;
	if (path == NULL || bufp == NULL || lenp == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (max > RUNNER_READ_MAX)
		max = RUNNER_READ_MAX;
	/* O_NONBLOCK: opening a FIFO must not hang the module. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		return -1;
	if (read_bounded(fd, max, &buf, &len) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	*bufp = buf;
	if (len > max) {
		buf[max] = '\0';
		*lenp = max;
		errno = EFBIG;
		return -1;
	}
	*lenp = len;
	return 0;
}

/* ---- run_cmd: before fork() ------------------------------------------- */

/*
 * argv[0] as given if it has a '/', else the first executable of that
 * name in MUSTER_TOOLS_DIR (an absolute path, from the runner's own
 * environment), then in the standard PATH.  The tools folder lets a test
 * or `muster-runner --run` put a fake tool first; under musterd it is
 * never set (musterd gives runners a fixed environment, and a job cannot
 * set variables), so a job still cannot choose what runs.  The shipped
 * checks' chk_which() looks in the same places, in the same order.
 */
static int
cmd_resolve(const char *name, char *path, size_t pathsz)
{
	const char *dir = RUNNER_STD_PATH, *colon, *tools;
	int n;

	if (strchr(name, '/') != NULL) {
		if (strlen(name) >= pathsz) {
			errno = ENAMETOOLONG;
			return -1;
		}
		strcpy(path, name);
		return 0;
	}
	tools = getenv("MUSTER_TOOLS_DIR");
	if (tools != NULL && tools[0] == '/') {
		n = snprintf(path, pathsz, "%s/%s", tools, name);
		if (n > 0 && (size_t)n < pathsz && access(path, X_OK) == 0)
			return 0;
	}
	for (; *dir != '\0'; dir = colon + 1) {
		if ((colon = strchr(dir, ':')) == NULL)
			colon = dir + strlen(dir);
		n = snprintf(path, pathsz, "%.*s/%s", (int)(colon - dir), dir, name);
		if (n > 0 && (size_t)n < pathsz && access(path, X_OK) == 0)
			return 0;
		if (*colon == '\0')
			break;
	}
	errno = ENOENT;
	return -1;
}

static int
cmd_check_argv(const char *const argv[])
{
	size_t n;

	if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	for (n = 0; argv[n] != NULL; n++)
		if (n == CMD_MAX_ARGS) {
			errno = E2BIG;
			return -1;
		}
	return 0;
}

/* ---- run_cmd: the parent ---------------------------------------------- */

struct capture {
	char *buf;
	size_t len, cap, max;
	bool truncated;
};

static int
capture_add(struct capture *c, const char *p, size_t n)
{
	size_t take = c->max - c->len < n ? c->max - c->len : n, cap;
	char *nbuf;

	if (take < n)
		c->truncated = true;
	if (take == 0)
		return 0;
	if (c->len + take > c->cap) {
		cap = c->cap ? c->cap : CMD_CHUNK;
		while (cap < c->len + take)
			cap *= 2;
		if (cap > c->max)
			cap = c->max;
		if ((nbuf = realloc(c->buf, cap + 1)) == NULL)
			return -1;
		c->buf = nbuf, c->cap = cap;
	}
	memcpy(c->buf + c->len, p, take);
	c->len += take;
	return 0;
}

/* Whatever is in the pipe now, without waiting; a few reads at most, in
 * case something the command left behind keeps writing. */
static int
capture_drain(struct capture *c, int fd)
{
	char chunk[CMD_CHUNK];
	ssize_t n;
	int i;

	if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1)
		return -1;
	for (i = 0; i < CMD_DRAIN_READS; i++) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (capture_add(c, chunk, (size_t)n) == -1)
			return -1;
	}
	return 0;
}

static int
poll_left(int64_t deadline)
{
	int64_t left;

	if (deadline == 0)
		return -1;
	left = deadline - (int64_t)now_mono_ms();
	return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/*
 * Read the output until the child has exited (which a pidfd tells even
 * when something it started in the background holds the pipe open) or
 * the deadline passes.  The child is not reaped here, so that its group
 * can still be killed safely.  1 if the deadline passed.
 */
static int
capture_run(struct capture *c, int fd, int pidfd, int timeout_ms)
{
	int64_t deadline = timeout_ms > 0 ? (int64_t)now_mono_ms() + timeout_ms : 0;
	struct pollfd pfd[2] = { { fd, POLLIN, 0 }, { pidfd, POLLIN, 0 } };
	char chunk[CMD_CHUNK];
	ssize_t n;
	int r;

	while (pfd[0].fd != -1 || pfd[1].fd != -1) {
		r = poll(pfd, 2, poll_left(deadline));
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		if (r == 0)
			return 1;
		if (pfd[0].revents) {
			n = read(fd, chunk, sizeof(chunk));
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0)
				pfd[0].fd = -1;
			else if (capture_add(c, chunk, (size_t)n) == -1)
				return -1;
		} else if (pfd[1].revents) {
			if (pfd[0].fd != -1)
				return capture_drain(c, fd);
			return 0;
		}
	}
	return 0;
}

/* Block until the child has exited, leaving it unreaped. */
static void
cmd_wait_exit(pid_t pid)
{
	siginfo_t si;

	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == -1 && errno == EINTR)
		;
}

static void
cmd_result(struct muster_cmd_result *res, int status, struct capture *c, int timed_out)
{
	res->exited = WIFEXITED(status);
	res->status = WIFEXITED(status) ? WEXITSTATUS(status) :
	    WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	res->timed_out = timed_out;
	res->out = c->buf;
	res->out_len = c->len;
	res->out[c->len] = '\0';
	res->truncated = c->truncated;
}

static int
cmd_wait(pid_t pid, int *status)
{
	pid_t r;

	do
		r = waitpid(pid, status, 0);
	while (r == -1 && errno == EINTR);
	return r == pid ? 0 : -1;
}

/* After the exec: collect, stop the group, reap. */
static int
cmd_parent(pid_t pid, int outfd, int timeout_ms, size_t max_out,
    struct muster_cmd_result *res)
{
	struct capture c = { .max = max_out };
	int pidfd, timed_out, status = 0;

	cmd_pgid = pid;
	pidfd = pidfd_open(pid, 0);
	timed_out = capture_run(&c, outfd, pidfd, timeout_ms);
	if (timed_out != 1 && pidfd == -1)
		cmd_wait_exit(pid);
	/* Before the reap, while the zombie keeps the group's id from being
	 * reused: nothing the command started outlives the call. */
	kill(-pid, SIGKILL);
	cmd_wait(pid, &status);
	cmd_pgid = 0;
	if (pidfd != -1)
		close(pidfd);
	if (c.buf == NULL && (c.buf = malloc(1)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	cmd_result(res, status, &c, timed_out == 1);
	return 0;
}

int
cmd_run(const char *const argv[], int timeout_ms, size_t max_out,
    struct muster_cmd_result *res)
{
	struct mu_err err;
	struct spawn sp;
	char path[PATH_MAX];
	int out[2], null, rc, saved;
	pid_t pid;

	if (res == NULL) {
		errno = EINVAL;
		return -1;
	}
	memset(res, 0, sizeof(*res));
	if (cmd_check_argv(argv) == -1 || cmd_resolve(argv[0], path, sizeof(path)) == -1)
		return -1;
	if (max_out > RUNNER_CMD_OUT_MAX)
		max_out = RUNNER_CMD_OUT_MAX;
	if ((null = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (pipe2(out, O_CLOEXEC) == -1) {
		saved = errno;
		close(null);
		errno = saved;
		return -1;
	}
	/* spawn_start() reports a failed exec with its errno, which is what
	 * run_cmd() returns. */
	memset(&sp, 0, sizeof(sp));
	sp.path = path;
	sp.argv = (char *const *)argv;
	sp.envp = cmd_envp;
	sp.fds[0] = null;
	sp.fds[1] = sp.fds[2] = out[1];
	sp.fds[3] = sp.fds[4] = -1;
	sp.own_pgrp = sp.pdeathsig = sp.exec_report = true;
	sp.own_session = true;		/* no terminal, as the runner (run.c) */
	pid = spawn_start(&sp, &err);
	saved = errno;
	close(null), close(out[1]);
	if (pid == -1)
		rc = -1;
	else {
		rc = cmd_parent(pid, out[0], timeout_ms, max_out, res);
		saved = errno;
	}
	close(out[0]);
	errno = saved;
	return rc;
}

/* ---- signals ---------------------------------------------------------- */

static void
cmd_on_term(int sig)
{
	struct sigaction dfl;
	sigset_t self;

	if (cmd_pgid > 0)
		kill(-cmd_pgid, SIGKILL);
	/* The job's processes go with us, reaped (confine.c). */
	confine_end();
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(sig, &dfl, NULL);
	/* Unblocked first: in its own handler the signal is blocked, and it
	 * must take effect now, not after the handler returns. */
	sigemptyset(&self);
	sigaddset(&self, sig);
	sigprocmask(SIG_UNBLOCK, &self, NULL);
	raise(sig);
	/* Still here (the signal cannot kill us): exit all the same. */
	_exit(128 + sig);
}

int
cmd_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cmd_on_term;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) == -1 || sigaction(SIGINT, &sa, NULL) == -1)
		return MU_EIO;
	return MU_OK;
}
