/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hostile: one job against another (issue 22, item 6).  Run as a victim
 * and, concurrently, as an attacker; each attempt is reported in data:
 *
 *	victim
 *	tmpfile=NAME	write "secret" to /tmp/NAME, mode 0644 (anyone may
 *			read it: only a /tmp of the job's own hides it)
 *					-> data tmpfile/ok, tmpfile/errno
 *	child_env=TEXT	start /bin/sleep 600 with MUSTER_SECRET=TEXT in its
 *			environment (an exec'd process is dumpable again);
 *			once it has exec'd, write its pid as the host's /proc
 *			names it to pidfile=PATH	-> data child/ok
 *	abstract=NAME	listen on the abstract Unix socket @NAME
 *					-> data abstract/ok, abstract/errno
 *	sleep=MS	then sleep
 *
 *	attacker
 *	peek=PID	open /proc/PID/environ and read it, open /proc/PID/mem
 *			-> data environ/ok, environ/errno, mem/ok, mem/errno
 *	signal=PID	kill(PID, 0), and pidfd_send_signal(0) through an fd
 *			of /proc/PID	-> data kill/..., pidfd/...
 *	tmpread=NAME	open /tmp/NAME	-> data tmpread/ok, tmpread/errno
 *	forkbomb=N	fork children that wait, until N of them or fork()
 *			fails	-> data forkbomb/children, forkbomb/errno
 *	connect=NAME	connect to the abstract Unix socket @NAME (another
 *			job's, or the host's)	-> data connect/ok, connect/errno
 *			and, the control, to one of our own
 *			-> data own_connect/...
 *
 *			and, the control, the same of a child of our own
 *			-> data own_environ/..., own_mem/...
 *
 * Always: data id/uid, id/gid.  Verdict: fail if an attack succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <muster/module.h>

struct tally {
	struct muster_ctx *ctx;
	const struct muster_api *api;
	int got_in;
};

static void
outcome(struct tally *t, const char *what, int rc, bool attack)
{
	char key[64];

	snprintf(key, sizeof(key), "%s/ok", what);
	t->api->data_bool(t->ctx, key, rc == 0);
	snprintf(key, sizeof(key), "%s/errno", what);
	t->api->data_int(t->ctx, key, rc == 0 ? 0 : errno);
	if (rc == 0 && attack)
		t->got_in++;
}

/* Open and read one byte: environ refuses at open, but say so if not. */
static int
try_read(const char *path)
{
	char c;
	int fd = open(path, O_RDONLY | O_CLOEXEC), e;
	ssize_t n;

	if (fd == -1)
		return -1;
	n = read(fd, &c, 1);
	e = errno;
	close(fd);
	errno = e;
	return n == 1 ? 0 : -1;
}

static int
write_file(const char *path, const char *text, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode), e;
	ssize_t n;

	if (fd == -1)
		return -1;
	fchmod(fd, (mode_t)mode);
	n = write(fd, text, strlen(text));
	e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* A child that execs sleep with env in its environment.  *host gets its
 * pid as the host's /proc names it (the runner is in a PID namespace of
 * its own), once it has exec'd: the close-on-exec pipe ends at the exec. */
static pid_t
sleeper(const char *env, char *host, size_t size)
{
	char *const argv[] = { "sleep", "600", NULL };
	char *envp[] = { (char *)env, NULL };
	int p[2], n = 0;
	ssize_t got, l;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == 0) {
		l = readlink("/proc/self", host, size - 1);
		if (l <= 0 || write(p[1], host, (size_t)l) != l)
			_exit(1);
		execve("/bin/sleep", argv, envp);
		_exit(127);
	}
	close(p[1]);
	while (pid > 0 && (got = read(p[0], host + n, size - 1 - (size_t)n)) > 0)
		n += (int)got;
	close(p[0]);
	host[n] = '\0';
	if (pid > 0 && n == 0) {
		errno = ECHILD;
		return -1;
	}
	return pid;
}

static void
victim_child(struct tally *t, const char *secret, const char *pidfile)
{
	char env[256], pid[32], tmp[1100];

	snprintf(env, sizeof(env), "MUSTER_SECRET=%s", secret);
	if (sleeper(env, pid, sizeof(pid) - 1) == -1) {
		outcome(t, "child", -1, false);
		return;
	}
	/* Whole or not at all: the test waits for the file. */
	snprintf(tmp, sizeof(tmp), "%s.new", pidfile);
	strcat(pid, "\n");
	outcome(t, "child", write_file(tmp, pid, 0644) == 0 ? rename(tmp, pidfile) : -1,
	    false);
}

/* The control for peek: a process of our own job (our uid, dumpable after
 * its exec) gives its environ and mem. */
static void
peek_own(struct tally *t)
{
	char pid[32], path[64];
	pid_t child = sleeper("MUSTER_OWN=1", pid, sizeof(pid));

	if (child == -1) {
		outcome(t, "own_environ", -1, false);
		return;
	}
	snprintf(path, sizeof(path), "/proc/%s/environ", pid);
	outcome(t, "own_environ", try_read(path), false);
	snprintf(path, sizeof(path), "/proc/%s/mem", pid);
	outcome(t, "own_mem", try_read(path) == 0 || errno == EIO ? 0 : -1, false);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

static void
peek(struct tally *t, int64_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%lld/environ", (long long)pid);
	outcome(t, "environ", try_read(path), true);
	snprintf(path, sizeof(path), "/proc/%lld/mem", (long long)pid);
	outcome(t, "mem", try_read(path) == 0 || errno == EIO ? 0 : -1, true);
}

static void
signal_it(struct tally *t, int64_t pid)
{
	char path[64];
	int fd;

	outcome(t, "kill", kill((pid_t)pid, 0), true);
	snprintf(path, sizeof(path), "/proc/%lld", (long long)pid);
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		outcome(t, "pidfd", -1, true);
		return;
	}
	outcome(t, "pidfd", (int)syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0), true);
	close(fd);
}

/* An abstract Unix socket address (a NUL, then the name, no terminator). */
static socklen_t
abstract_addr(struct sockaddr_un *sa, const char *name)
{
	size_t n = strnlen(name, sizeof(sa->sun_path) - 1);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path + 1, name, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* Listen on @name; the socket stays open for the job's life. */
static int
abstract_listen(const char *name)
{
	struct sockaddr_un sa;
	socklen_t len = abstract_addr(&sa, name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

	if (fd == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, len) == -1 || listen(fd, 4) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int
abstract_connect(const char *name)
{
	struct sockaddr_un sa;
	socklen_t len = abstract_addr(&sa, name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc, e;

	if (fd == -1)
		return -1;
	rc = connect(fd, (struct sockaddr *)&sa, len);
	e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* Another job's (or the host's) socket, and the control: one of ours. */
static void
connect_other(struct tally *t, const char *name)
{
	char own[64];
	int fd;

	outcome(t, "connect", abstract_connect(name), true);
	snprintf(own, sizeof(own), "muster-own-%d", (int)getpid());
	if ((fd = abstract_listen(own)) == -1) {
		outcome(t, "own_connect", -1, false);
		return;
	}
	outcome(t, "own_connect", abstract_connect(own), false);
	close(fd);
}

static void
forkbomb(struct tally *t, int64_t max)
{
	int64_t n = 0;
	int e = 0;
	pid_t pid;

	while (n < max) {
		if ((pid = fork()) == -1) {
			e = errno;
			break;
		}
		if (pid == 0)
			for (;;)
				pause();
		n++;
	}
	t->api->data_int(t->ctx, "forkbomb/children", n);
	t->api->data_int(t->ctx, "forkbomb/errno", e);
	/* The children go with the job: its PID namespace. */
}

static int
hostile_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	struct tally t = { ctx, api, 0 };
	char path[300];
	const char *p, *q;
	int64_t n;

	api->data_int(ctx, "id/uid", (int64_t)getuid());
	api->data_int(ctx, "id/gid", (int64_t)getgid());
	if ((p = api->arg_str(ctx, "tmpfile", NULL)) != NULL) {
		snprintf(path, sizeof(path), "/tmp/%s", p);
		outcome(&t, "tmpfile", write_file(path, "secret\n", 0644), false);
	}
	/* Before the child: the test takes its pidfile as "set up". */
	if ((p = api->arg_str(ctx, "abstract", NULL)) != NULL)
		outcome(&t, "abstract", abstract_listen(p) == -1 ? -1 : 0, false);
	if ((p = api->arg_str(ctx, "child_env", NULL)) != NULL &&
	    (q = api->arg_str(ctx, "pidfile", NULL)) != NULL)
		victim_child(&t, p, q);
	if ((n = api->arg_int(ctx, "peek", 0)) > 0) {
		peek_own(&t);
		peek(&t, n);
	}
	if ((n = api->arg_int(ctx, "signal", 0)) > 0)
		signal_it(&t, n);
	if ((p = api->arg_str(ctx, "tmpread", NULL)) != NULL) {
		snprintf(path, sizeof(path), "/tmp/%s", p);
		outcome(&t, "tmpread", try_read(path), true);
	}
	if ((n = api->arg_int(ctx, "forkbomb", 0)) > 0)
		forkbomb(&t, n);
	if ((p = api->arg_str(ctx, "connect", NULL)) != NULL)
		connect_other(&t, p);
	if ((n = api->arg_int(ctx, "sleep", 0)) > 0) {
		struct timespec ts = { n / 1000, (n % 1000) * 1000000 };

		nanosleep(&ts, NULL);
	}
	api->summary(ctx, "%d attacks on another job succeeded", t.got_in);
	return t.got_in ? MUSTER_FAIL : MUSTER_PASS;
}
MUSTER_MODULE("hostile", "1.0.0", "Tries to reach another job", hostile_run);
