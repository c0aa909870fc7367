/* SPDX-License-Identifier: Apache-2.0 */
/*
 * escape: tries, on request, what a confined runner must not be able to do
 * (design.md §8), and reports each attempt's outcome in data:
 *
 *	read=PATH	open PATH for reading	-> data read/ok, read/errno
 *	write=PATH	open (or create) PATH for appending	-> data write/ok, write/errno
 *	ptrace=true	PTRACE_ATTACH to pid 1	-> data ptrace/ok, ptrace/errno
 *	mount=true	mount a tmpfs on /mnt	-> data mount/ok, mount/errno
 *	unshare=true	a new mount namespace	-> data unshare/ok, unshare/errno
 *	escape=PATH	double fork + setsid; the grandchild writes its pid (as
 *			/proc sees it) to PATH and sleeps ten minutes
 *							-> data escape/forked
 *	tty=true	open /dev/tty (a controlling terminal)	-> data tty/ok,
 *			tty/errno; TIOCSTI on it (or, without one, on the
 *			first of fds 0..2 that is a terminal)	-> data
 *			tiocsti/ok, tiocsti/errno (ENOTTY: no terminal at all)
 *	ownpty=true	a child in a session of its own opens a new pty as its
 *			controlling terminal and tries TIOCSTI on it: only the
 *			filter can stop that	-> data ownpty/ok, ownpty/errno
 *	pidfile=PATH	write our pid (as /proc sees it) to PATH
 *	peek=PID	open /proc/PID/environ, mem and status for reading
 *			-> data peek/environ/ok, .../errno, likewise mem, status
 *	sleep=MS	then sleep (for timeout and cancel tests)
 *
 * Always also: data id/sid (getsid(0), in the host's numbering when /proc
 * has it: /proc/self/stat) and the Dumpable-ness (prctl PR_GET_DUMPABLE).
 *
 * Always: data id/uid, id/euid, and the Seccomp, NoNewPrivs and CapEff lines
 * of /proc/self/status.  Verdict: fail if any attempt succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <muster/module.h>

struct tally {
	struct muster_ctx *ctx;
	const struct muster_api *api;
	int escaped;
};

static void
outcome(struct tally *t, const char *what, int rc)
{
	char key[64];

	snprintf(key, sizeof(key), "%s/ok", what);
	t->api->data_bool(t->ctx, key, rc == 0);
	snprintf(key, sizeof(key), "%s/errno", what);
	t->api->data_int(t->ctx, key, rc == 0 ? 0 : errno);
	if (rc == 0)
		t->escaped++;
}

static int
try_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0644);

	if (fd == -1)
		return -1;
	close(fd);
	return 0;
}

static void
status_lines(struct tally *t)
{
	static const char *keys[] = { "Seccomp:", "NoNewPrivs:", "CapEff:" };
	char line[256], key[64];
	size_t i, n;
	FILE *f = fopen("/proc/self/status", "re");

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			n = strlen(keys[i]);
			if (strncmp(line, keys[i], n) != 0)
				continue;
			line[strcspn(line, "\n")] = '\0';
			snprintf(key, sizeof(key), "status/%.*s", (int)(n - 1), keys[i]);
			t->api->data_str(t->ctx, key, line + n + strspn(line + n, " \t"));
		}
	fclose(f);
}

/* Double fork, setsid: the grandchild is no longer our child nor in our
 * process group or session. */
static void
escape(struct tally *t, const char *pidfile)
{
	char buf[32];
	pid_t pid = fork();
	int fd, n;

	if (pid == 0) {
		setsid();
		if (fork() == 0) {
			/* /proc/self names us as the mount's PID namespace (the
			 * host's) sees us; getpid() would give our number in a
			 * namespace of the runner's own. */
			ssize_t l = readlink("/proc/self", buf, sizeof(buf) - 2);

			n = l > 0 ? (int)l : snprintf(buf, sizeof(buf), "%d", (int)getpid());
			buf[n++] = '\n';
			if ((fd = open(pidfile, O_WRONLY | O_CREAT | O_TRUNC, 0644)) != -1) {
				if (write(fd, buf, (size_t)n) != n)
					_exit(1);
				close(fd);
			}
			sleep(600);
		}
		_exit(0);
	}
	t->api->data_bool(t->ctx, "escape/forked", pid > 0);
	if (pid > 0) {
		/* Let the grandchild write its pid before we return. */
		struct timespec ts = { 0, 200 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
}

/* TIOCSTI of one harmless byte (a NUL would still be typed: a space). */
static int
tiocsti(int fd)
{
	char c = ' ';

	return ioctl(fd, TIOCSTI, &c);
}

static void
try_tty(struct tally *t)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC), i;

	outcome(t, "tty", fd == -1 ? -1 : 0);
	if (fd == -1)
		for (i = 0; i <= 2 && fd == -1; i++)
			if (isatty(i))
				fd = i;
	if (fd == -1) {
		errno = ENOTTY;
		outcome(t, "tiocsti", -1);
		return;
	}
	outcome(t, "tiocsti", tiocsti(fd));
	if (fd > 2)
		close(fd);
}

/* A pty of our own as a child's controlling terminal: TIOCSTI on it is
 * allowed by the kernel, so an EPERM here is the filter's. */
static void
try_ownpty(struct tally *t)
{
	int st = 0, e;
	pid_t pid = fork();

	if (pid == 0) {
		int m, s;

		if (setsid() == -1 || (m = posix_openpt(O_RDWR | O_NOCTTY)) == -1 ||
		    grantpt(m) == -1 || unlockpt(m) == -1 ||
		    (s = open(ptsname(m), O_RDWR)) == -1)	/* becomes our terminal */
			_exit(200);
		_exit(tiocsti(s) == 0 ? 0 : errno);
	}
	if (pid == -1 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) == 200) {
		t->api->data_str(t->ctx, "ownpty/setup", "failed");
		return;
	}
	e = WEXITSTATUS(st);
	errno = e;
	outcome(t, "ownpty", e == 0 ? 0 : -1);
}

static void
write_pid(const char *path)
{
	char buf[32];
	ssize_t l = readlink("/proc/self", buf, sizeof(buf) - 2);
	int fd, n;

	n = l > 0 ? (int)l : snprintf(buf, sizeof(buf), "%d", (int)getpid());
	buf[n++] = '\n';
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == -1)
		return;
	if (write(fd, buf, (size_t)n) != n)
		unlink(path);
	close(fd);
}

static void
peek(struct tally *t, int64_t pid)
{
	static const char *files[] = { "environ", "mem", "status" };
	char path[64], what[32];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "/proc/%lld/%s", (long long)pid, files[i]);
		snprintf(what, sizeof(what), "peek/%s", files[i]);
		rc = try_open(path, O_RDONLY);
		/* status is anyone's: not an escape, the control. */
		if (strcmp(files[i], "status") == 0) {
			t->api->data_bool(t->ctx, "peek/status/ok", rc == 0);
			continue;
		}
		outcome(t, what, rc);
	}
}

static void
session(struct tally *t)
{
	char line[512], *p;
	long sid = -1;
	FILE *f = fopen("/proc/self/stat", "re");

	/* Field 6 of stat, after the ")" that ends the name. */
	if (f != NULL && fgets(line, sizeof(line), f) != NULL &&
	    (p = strrchr(line, ')')) != NULL)
		sscanf(p + 1, " %*c %*d %*d %ld", &sid);
	if (f != NULL)
		fclose(f);
	t->api->data_int(t->ctx, "id/sid", sid);
	t->api->data_int(t->ctx, "id/dumpable", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
}

static int
escape_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	struct tally t = { ctx, api, 0 };
	const char *p;
	int64_t ms;

	api->data_int(ctx, "id/uid", (int64_t)getuid());
	api->data_int(ctx, "id/euid", (int64_t)geteuid());
	status_lines(&t);
	session(&t);
	if ((p = api->arg_str(ctx, "pidfile", NULL)) != NULL)
		write_pid(p);
	if (api->arg_bool(ctx, "tty", 0))
		try_tty(&t);
	if (api->arg_bool(ctx, "ownpty", 0))
		try_ownpty(&t);
	if ((ms = api->arg_int(ctx, "peek", 0)) > 0)
		peek(&t, ms);
	if ((p = api->arg_str(ctx, "read", NULL)) != NULL)
		outcome(&t, "read", try_open(p, O_RDONLY));
	if ((p = api->arg_str(ctx, "write", NULL)) != NULL)
		outcome(&t, "write", try_open(p, O_WRONLY | O_APPEND | O_CREAT));
	if (api->arg_bool(ctx, "ptrace", 0)) {
		long rc = ptrace(PTRACE_ATTACH, 1, NULL, NULL);

		if (rc == 0)
			ptrace(PTRACE_DETACH, 1, NULL, NULL);
		outcome(&t, "ptrace", rc == 0 ? 0 : -1);
	}
	if (api->arg_bool(ctx, "mount", 0)) {
		int rc = mount("none", "/mnt", "tmpfs", 0, NULL);

		if (rc == 0)
			umount2("/mnt", MNT_DETACH);
		outcome(&t, "mount", rc);
	}
	if (api->arg_bool(ctx, "unshare", 0))
		outcome(&t, "unshare", unshare(CLONE_NEWNS));
	if ((p = api->arg_str(ctx, "escape", NULL)) != NULL)
		escape(&t, p);
	if ((ms = api->arg_int(ctx, "sleep", 0)) > 0) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

		nanosleep(&ts, NULL);
	}
	api->summary(ctx, "%d forbidden actions succeeded", t.escaped);
	return t.escaped ? MUSTER_FAIL : MUSTER_PASS;
}
MUSTER_MODULE("escape", "1.0.0", "Tries to leave its confinement", escape_run);
