/* SPDX-License-Identifier: Apache-2.0 */
/*
 * subproc.c - see subproc.h.  The child side (spawn_child) may only make
 * async-signal-safe calls: no malloc, no stdio, no locks.
 */
#include "subproc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/seccomp.h>
#include <seccomp.h>

#define FD_STAGE	10	/* sources are moved above this before dup2 */

/* ---- the child --------------------------------------------------------- */

static void child_scope(void);

/* End the child; with exec_report, tell the parent errno first. */
static __attribute__((noreturn)) void
child_fail(int errfd, int code)
{
	int e = errno;

	if (errfd != -1 && write(errfd, &e, sizeof(e)) < 0)
		_exit(code);
	_exit(code);
}

/* close_range() around at most two fds to keep (-1: none). */
static void
close_all_but(int x, int y)
{
	unsigned lo = SPAWN_FDS;
	int keep[2], t, i;

	keep[0] = x, keep[1] = y;
	if (keep[0] > keep[1])
		t = keep[0], keep[0] = keep[1], keep[1] = t;
	for (i = 0; i < 2; i++) {
		if (keep[i] < (int)lo)
			continue;
		if ((unsigned)keep[i] > lo)
			close_range(lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	close_range(lo, ~0U, 0);
}

static void
child_fds(const struct spawn *s, int *errfd, int *exec_fd)
{
	int staged[SPAWN_FDS], i;

	/* The report pipe first, out of the targets' way; it stays open
	 * (close-on-exec) until the exec. */
	if (*errfd != -1 && (*errfd = fcntl(*errfd, F_DUPFD_CLOEXEC, FD_STAGE)) == -1)
		_exit(127);
	if (*exec_fd != -1 && (*exec_fd = fcntl(*exec_fd, F_DUPFD_CLOEXEC, FD_STAGE)) == -1)
		child_fail(*errfd, 127);
	/* Move every source above the targets, so that no dup2() overwrites
	 * a source another target still needs. */
	for (i = 0; i < SPAWN_FDS; i++)
		staged[i] = s->fds[i] < 0 ? -1 : fcntl(s->fds[i], F_DUPFD, FD_STAGE);
	for (i = 0; i < SPAWN_FDS; i++) {
		if (staged[i] < 0) {
			close(i);
			continue;
		}
		if (dup2(staged[i], i) == -1)
			child_fail(*errfd, 127);
	}
	/* Paho's sockets are not close-on-exec (design.md §9): close all but
	 * the report pipe and the program's fd. */
	close_all_but(*errfd, *exec_fd);
}

static void
child_user(const struct spawn *s, int errfd)
{
	/* Groups, then gid, then uid: after setuid() the others are out of
	 * reach.  Any failure ends the child; it never runs as root.  Raw
	 * system calls: the C library's wrappers would apply the change to
	 * every thread they believe the process has, and a child sharing the
	 * parent's memory (spawn_start()) sees the parent's thread list. */
	if (syscall(SYS_setgroups, (size_t)s->ngroups, s->groups) == -1 ||
	    syscall(SYS_setresgid, s->gid, s->gid, s->gid) == -1 ||
	    syscall(SYS_setresuid, s->uid, s->uid, s->uid) == -1)
		child_fail(errfd, 126);
	/* A change of credentials clears the parent-death signal. */
	if (s->pdeathsig)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/*
 * The child's own /tmp, /var/tmp and /dev/shm, in the mount namespace the
 * clone made.  First every mount becomes a slave: systemd makes / shared,
 * and a tmpfs mounted on a shared /tmp would appear on the host's /tmp as
 * well (mounts of the host still reach us; ours never reach it).  Like
 * systemd's PrivateTmp=, nodev and nosuid.  /tmp must work; the other two
 * may be missing on a small host (then there is nothing there to share).
 * The tmpfs live as long as the namespace: the kernel frees them when the
 * job's last process is gone, nothing to delete afterwards.
 */
/* "/proc/self/fd/N" without stdio (async-signal-safe). */
static void
fd_path(char *buf, int fd)
{
	static const char pre[] = "/proc/self/fd/";
	char digits[12];
	int n = 0, i = 0;

	do
		digits[n++] = (char)('0' + fd % 10);
	while ((fd /= 10) > 0 && n < (int)sizeof(digits));
	memcpy(buf, pre, sizeof(pre) - 1);
	i = (int)sizeof(pre) - 1;
	while (n > 0)
		buf[i++] = digits[--n];
	buf[i] = '\0';
}

/* The folder, opened before the tmpfs hide it (and in our mount
 * namespace: a mount of the caller's cannot be bound here), on
 * SPAWN_TOOLS_DIR in the fresh /tmp, read-only. */
static int
child_open_tools(const struct spawn *s, int errfd)
{
	int fd;

	if (s->tools_dir == NULL)
		return -1;
	if ((fd = open(s->tools_dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
		child_fail(errfd, 127);
	return fd;
}

static void
child_bind_tools(int fd, int errfd)
{
	char src[40];

	fd_path(src, fd);
	if (mkdir(SPAWN_TOOLS_DIR, 0755) == -1 ||
	    mount(src, SPAWN_TOOLS_DIR, NULL, MS_BIND, NULL) == -1 ||
	    mount(NULL, SPAWN_TOOLS_DIR, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID |
	    MS_NODEV, NULL) == -1)
		child_fail(errfd, 127);
	close(fd);
}

/*
 * A /proc of the job's own: a new instance of procfs (each mount has its
 * own options since Linux 5.8) that hides every process of another uid.
 * With a uid per job, another job's processes are not merely unreadable
 * (the kernel's owner check) but absent: no pids, command lines or start
 * times to learn.  Still the host's PID namespace (the runner lives in
 * it; lib/subproc.h), so /proc/self and the pids a module reports mean
 * what they mean on the host.  hidepid=2 is the older spelling.
 */
static void
child_private_proc(int errfd)
{
	const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;

	if (mount("proc", "/proc", "proc", flags, "hidepid=invisible") == -1 &&
	    mount("proc", "/proc", "proc", flags, "hidepid=2") == -1)
		child_fail(errfd, 127);
}

/* Every mount read-only (Linux 5.12's mount_setattr(), recursive in one
 * call), then each writable folder bound on itself and made writable
 * again; the tmpfs mounted after this are new mounts, writable. */
static void
child_read_only(const struct spawn *s, int errfd)
{
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
	struct mount_attr rw = { .attr_clr = MOUNT_ATTR_RDONLY };
	int i;

	if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof(ro)) == -1)
		child_fail(errfd, 127);
	for (i = 0; i < s->nwritable; i++)
		if (mount(s->writable[i], s->writable[i], NULL, MS_BIND | MS_REC, NULL) == -1 ||
		    syscall(SYS_mount_setattr, AT_FDCWD, s->writable[i], AT_RECURSIVE, &rw,
		    sizeof(rw)) == -1)
			child_fail(errfd, 127);
}

static void
child_private_tmp(const struct spawn *s, int errfd)
{
	static const char *const paths[] = { "/tmp", "/var/tmp", "/dev/shm" };
	size_t i;
	int tools;

	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) == -1)
		child_fail(errfd, 127);
	tools = child_open_tools(s, errfd);
	if (s->read_only)
		child_read_only(s, errfd);
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (mount("tmpfs", paths[i], "tmpfs", MS_NOSUID | MS_NODEV, s->tmpfs_opts) == -1 &&
		    (i == 0 || errno != ENOENT))
			child_fail(errfd, 127);
	if (tools != -1)
		child_bind_tools(tools, errfd);
	child_private_proc(errfd);
}

static __attribute__((noreturn)) void
spawn_child(const struct spawn *s, pid_t parent, int errfd)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int exec_fd, i;
	pid_t pp;

	/* A session of its own: no controlling terminal, so nothing it runs
	 * can open /dev/tty or type into musterd's terminal (TIOCSTI); as a
	 * session leader it leads its process group too, so kill(-pid) works.
	 * setsid() fails only for a group leader, which the child is not
	 * before this (the parent waits until the exec, see child_clone()). */
	if (s->own_session) {
		if (setsid() == -1)
			child_fail(errfd, 127);
	} else if (s->own_pgrp)
		setpgid(0, 0);
	if (s->pdeathsig) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* The parent died before the signal was armed: we were
		 * reparented.  0: the parent is outside our PID namespace (a
		 * runner's run_cmd() child, lib/subproc.h) and we cannot tell;
		 * the runner's end ends that namespace and us with it. */
		pp = getppid();
		if (pp != parent && pp != 0)
			_exit(127);
	}
	/* Defaults before the mask opens, so that no handler of the parent
	 * runs in the child; SIGKILL and SIGSTOP just fail. */
	for (i = 1; i < NSIG; i++)
		sigaction(i, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (s->private_tmp)
		child_private_tmp(s, errfd);
	/* Our children in a PID namespace of their own, we stay outside it
	 * (subproc.h: an init cannot die of most signals). */
	if (s->new_pidns && unshare(CLONE_NEWPID) == -1)
		child_fail(errfd, 127);
	for (i = 0; i < s->nlimits; i++)
		setrlimit(s->limits[i].resource, &s->limits[i].value);
	if (s->switch_user)
		child_user(s, errfd);
	if (s->no_new_privs || s->filter || s->scoped)
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (s->scoped)
		child_scope();
	exec_fd = s->use_exec_fd ? s->exec_fd : -1;
	child_fds(s, &errfd, &exec_fd);
	/* Last: the filter holds for the exec'd program, not for us. */
	if (s->filter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, s->filter) == -1)
		child_fail(errfd, 127);
	/* A script cannot run from a close-on-exec descriptor (its interpreter
	 * is handed /dev/fd/N, gone by then): the path is the fallback. */
	if (exec_fd != -1)
		syscall(SYS_execveat, exec_fd, "", s->argv, s->envp, AT_EMPTY_PATH);
	execve(s->path ? s->path : s->argv[0], s->argv, s->envp);
	child_fail(errfd, 127);
}

struct child_args {
	const struct spawn *s;
	pid_t parent;
	int errfd;
};

/*
 * Landlock's scopes (Linux 6.12, ABI 6), declared here: Debian 12's
 * headers (6.1) know neither the field nor the flags.  No file system or
 * network rule is handled, only the two scopes.
 */
struct scope_attr {
	uint64_t handled_access_fs, handled_access_net, scoped;
};
#define SCOPE_ABSTRACT_UNIX_SOCKET	(1ULL << 0)
#define SCOPE_SIGNAL			(1ULL << 1)
#define LANDLOCK_VERSION_FLAG		(1U << 0)
#define SCOPE_MIN_ABI			6

static int
landlock_abi(void)
{
	return (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_VERSION_FLAG);
}

bool
spawn_scope_available(void)
{
	return landlock_abi() >= SCOPE_MIN_ABI;
}

/* Best effort, like the kernel's own: without the scopes, nothing. */
static void
child_scope(void)
{
	struct scope_attr attr = {
		.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL,
	};
	int fd;

	if (landlock_abi() < SCOPE_MIN_ABI)
		return;
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (fd == -1)
		return;
	syscall(SYS_landlock_restrict_self, fd, 0);
	close(fd);
}

static int
child_main(void *arg)
{
	const struct child_args *c = arg;

	spawn_child(c->s, c->parent, c->errfd);
}

/* ---- the parent -------------------------------------------------------- */

#define CHILD_STACK	(256u * 1024)	/* mapped lazily: only what is used */

/*
 * The child, sharing our memory until its exec (CLONE_VM | CLONE_VFORK,
 * as posix_spawn() does), on a stack of its own; we wait meanwhile.  A
 * fork() would copy the page tables of the whole process and leave every
 * page copy-on-write for both sides: in musterd's parent that was the
 * larger part of a runner's start (docs/BENCHMARKS.md).  The prelude only
 * makes system calls and writes nothing but its own stack, so sharing is
 * safe; every signal stays blocked until the child has reset the
 * handlers, so no handler of ours runs in it.  Sanitizer builds fork: ASan
 * does not expect code to run on a stack it did not see created.
 */
/* The namespaces the clone makes.  CLONE_NEWNS needs no CLONE_FS (we do
 * not share it); CLONE_NEWIPC: System V IPC and POSIX message queues of
 * the job's own, gone with it.  The PID namespace is the prelude's
 * unshare(), for the child's children only. */
static int
ns_flags_of(const struct spawn *s)
{
	return s->private_tmp ? CLONE_NEWNS | CLONE_NEWIPC : 0;
}

#if defined(__SANITIZE_ADDRESS__)
static pid_t
child_clone(const struct spawn *s, pid_t parent, int errfd)
{
	struct child_args c = { s, parent, errfd };
	pid_t pid;

	/* fork() semantics (no new stack, a copy of our memory), plus the
	 * namespaces asked for; CLONE_VFORK so that we wait for the exec as in
	 * the build below, and the child's prelude (setsid()) comes before
	 * anything we do to it. */
	pid = (pid_t)syscall(SYS_clone, ns_flags_of(s) | CLONE_VFORK | SIGCHLD, NULL, NULL,
	    NULL, 0);
	if (pid == 0)
		child_main(&c);
	return pid;
}
#else
static pid_t
child_clone(const struct spawn *s, pid_t parent, int errfd)
{
	struct child_args c = { s, parent, errfd };
	int flags = SIGCHLD | ns_flags_of(s);
	sigset_t all, old;
	void *stack;
	pid_t pid;
	int e;

	stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -1;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = clone(child_main, (char *)stack + CHILD_STACK, flags | CLONE_VM | CLONE_VFORK,
	    &c);
	e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	munmap(stack, CHILD_STACK);
	errno = e;
	return pid;
}
#endif

/* With exec_report: 0 when the child exec'd, else its errno (the child
 * is reaped then). */
static int
exec_status(pid_t pid, int fd)
{
	ssize_t n;
	pid_t r;
	int e = 0;

	do
		n = read(fd, &e, sizeof(e));
	while (n == -1 && errno == EINTR);
	if (n != sizeof(e))
		return 0;
	do
		r = waitpid(pid, NULL, 0);
	while (r == -1 && errno == EINTR);
	return e != 0 ? e : EIO;
}

pid_t
spawn_start(const struct spawn *s, struct mu_err *err)
{
	const char *prog = s->path ? s->path : s->argv[0];
	pid_t parent = getpid(), pid;
	int ep[2] = { -1, -1 }, e;

	if (s->exec_report && pipe2(ep, O_CLOEXEC) == -1) {
		e = errno;
		mu_errf(err, MU_EIO, "pipe: %s", strerror(e));
		errno = e;
		return -1;
	}
	pid = child_clone(s, parent, ep[1]);
	e = errno;
	if (ep[1] != -1)
		close(ep[1]);
	if (pid == -1) {
		if (ep[0] != -1)
			close(ep[0]);
		mu_errf(err, MU_EIO, "clone: %s", strerror(e));
		errno = e;
		return -1;
	}
	/* Both sides, so kill(-pid) works at once.  A child with a session
	 * of its own is a group leader already (and setpgid() would fail). */
	if (s->own_pgrp && !s->own_session)
		setpgid(pid, pid);
	if (ep[0] != -1) {
		e = exec_status(pid, ep[0]);
		close(ep[0]);
		if (e != 0) {
			mu_errf(err, MU_EIO, "cannot start %s: %s", prog, strerror(e));
			errno = e;
			return -1;
		}
	}
	return pid;
}

void
spawn_private_tmp(struct spawn *s, uint64_t size)
{
	s->private_tmp = true;
	if (size)
		snprintf(s->tmpfs_opts, sizeof(s->tmpfs_opts), "mode=1777,size=%llu",
		    (unsigned long long)size);
	else
		snprintf(s->tmpfs_opts, sizeof(s->tmpfs_opts), "mode=1777");
}

int
spawn_set_user(struct spawn *s, const char *user, struct mu_err *err)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int n = SPAWN_MAX_GROUPS;

	if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return mu_errf(err, MU_ENOENT, "run_as user '%s' does not exist on this host",
		    user);
	if (pw.pw_uid == 0)
		return mu_errf(err, MU_ETRUST, "run_as user '%s' is root; refused", user);
	if (getgrouplist(user, pw.pw_gid, s->groups, &n) == -1)
		return mu_errf(err, MU_EINVAL, "user %s is in more than %d groups", user,
		    SPAWN_MAX_GROUPS);
	s->switch_user = true;
	s->uid = pw.pw_uid;
	s->gid = pw.pw_gid;
	s->ngroups = n;
	return MU_OK;
}

/* ---- the seccomp filter ------------------------------------------------ */

/* Denied calls trap (SIGSYS, subproc.h): the runner's handler turns each
 * into EPERM and names it in the result.  Where the runner cannot set a
 * call's return value (runner/confine.c), they fail with EPERM directly. */
#if defined(__x86_64__) || defined(__aarch64__)
#define DENY	SCMP_ACT_TRAP
#else
#define DENY	SCMP_ACT_ERRNO(EPERM)
#endif

static const int denied[] = {
	SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
	SCMP_SYS(kcmp), SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root),
	SCMP_SYS(chroot), SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(move_mount),
	SCMP_SYS(open_tree), SCMP_SYS(fsopen), SCMP_SYS(fsconfig), SCMP_SYS(fsmount),
	SCMP_SYS(fspick), SCMP_SYS(mount_setattr), SCMP_SYS(init_module),
	SCMP_SYS(finit_module), SCMP_SYS(delete_module), SCMP_SYS(kexec_load),
	SCMP_SYS(kexec_file_load), SCMP_SYS(bpf), SCMP_SYS(reboot), SCMP_SYS(swapon),
	SCMP_SYS(swapoff), SCMP_SYS(keyctl), SCMP_SYS(add_key), SCMP_SYS(request_key),
	SCMP_SYS(perf_event_open), SCMP_SYS(userfaultfd), SCMP_SYS(io_uring_setup),
	SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register), SCMP_SYS(acct),
	SCMP_SYS(quotactl), SCMP_SYS(settimeofday), SCMP_SYS(clock_settime),
	SCMP_SYS(clock_adjtime), SCMP_SYS(adjtimex), SCMP_SYS(sethostname),
	SCMP_SYS(setdomainname), SCMP_SYS(iopl), SCMP_SYS(ioperm),
	SCMP_SYS(open_by_handle_at), SCMP_SYS(name_to_handle_at), SCMP_SYS(fanotify_init),
	SCMP_SYS(lookup_dcookie), SCMP_SYS(syslog), SCMP_SYS(vhangup),
};

/* clone() creating namespaces (one rule per flag: rules of one call are
 * or'ed); clone3() hides its flags in memory, so it answers ENOSYS and the
 * C library falls back to clone(). */
static const unsigned long ns_flags[] = {
	CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
	CLONE_NEWNET, CLONE_NEWCGROUP,
};

static const unsigned long tty_denied[] = { TIOCSTI, TIOCLINUX };

static int
filter_rules(scmp_filter_ctx ctx)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < sizeof(denied) / sizeof(denied[0]) && rc == 0; i++) {
#if defined(__SANITIZE_ADDRESS__)
		/* LeakSanitizer stops the world with ptrace at exit. */
		if (denied[i] == SCMP_SYS(ptrace))
			continue;
#endif
		rc = seccomp_rule_add(ctx, DENY, denied[i], 0);
	}
	for (i = 0; i < sizeof(ns_flags) / sizeof(ns_flags[0]) && rc == 0; i++)
		rc = seccomp_rule_add(ctx, DENY, SCMP_SYS(clone), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* Typing into a terminal (TIOCSTI) or the console's selection and
	 * keyboard tricks (TIOCLINUX): a runner has no terminal of its own
	 * (own_session), but a descriptor to one could still reach it.  The
	 * kernel reads the request as 32 bits: the mask keeps high bits set
	 * by the caller from slipping past the comparison. */
	for (i = 0; i < sizeof(tty_denied) / sizeof(tty_denied[0]) && rc == 0; i++)
		rc = seccomp_rule_add(ctx, DENY, SCMP_SYS(ioctl), 1,
		    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, tty_denied[i]));
	return rc;
}

/* IPv4 and IPv6 sockets (design.md §8, "Runner confinement"): without them a
 * module reaches no broker, no other host and no local TCP service.
 * Unix and netlink sockets stay: systemctl, ip and the resolver's
 * interface list need them.  io_uring, which could make a socket past
 * this rule, is denied above. */
static const int inet_families[] = { AF_INET, AF_INET6 };

static int
filter_no_inet(scmp_filter_ctx ctx)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < sizeof(inet_families) / sizeof(inet_families[0]) && rc == 0; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffUL, (scmp_datum_t)inet_families[i]));
	return rc;
}

int
spawn_filter_build(struct sock_fprog *out, bool no_inet, struct mu_err *err)
{
	scmp_filter_ctx ctx;
	struct stat st;
	int fd = -1, rc;

	memset(out, 0, sizeof(*out));
	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL)
		return mu_errf(err, MU_ENOMEM, "seccomp_init failed");
	rc = filter_rules(ctx);
	if (rc == 0 && no_inet)
		rc = filter_no_inet(ctx);
	if (rc == 0 && (fd = memfd_create("muster-seccomp", MFD_CLOEXEC)) == -1)
		rc = -errno;
	if (rc == 0)
		rc = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (rc == 0 && (fstat(fd, &st) == -1 || st.st_size <= 0 ||
	    st.st_size % (off_t)sizeof(struct sock_filter) != 0))
		rc = -EINVAL;
	if (rc == 0 && (out->filter = malloc((size_t)st.st_size)) == NULL)
		rc = -ENOMEM;
	if (rc == 0 && pread(fd, out->filter, (size_t)st.st_size, 0) != st.st_size)
		rc = -EIO;
	if (fd != -1)
		close(fd);
	if (rc != 0) {
		spawn_filter_free(out);
		return mu_errf(err, MU_EIO, "building the runners' seccomp filter: %s",
		    strerror(-rc));
	}
	out->len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	return MU_OK;
}

void
spawn_filter_free(struct sock_fprog *prog)
{
	free(prog->filter);
	prog->filter = NULL;
	prog->len = 0;
}

int
spawn_filter_no_inet(struct mu_err *err)
{
	scmp_filter_ctx ctx;
	int rc;

	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL)
		return mu_errf(err, MU_ENOMEM, "seccomp_init failed");
	rc = filter_no_inet(ctx);
	/* Filters stack: this one adds to whatever the process has. */
	if (rc == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		rc = -errno;
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0)
		return mu_errf(err, MU_EIO, "cannot deny IPv4/IPv6 sockets: %s", strerror(-rc));
	return MU_OK;
}

void
spawn_syscall_name(int nr, char *buf, size_t len)
{
	char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

	if (name != NULL)
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "syscall %d", nr);
	free(name);
}

/* ---- what a host gives every runner ------------------------------------ */

void
spawn_confine(struct spawn *s, const struct spawn_confinement *c)
{
	rlim_t cpu_s = (rlim_t)((c->cpu_ms + 999) / 1000);

	s->limits[0] = (struct spawn_limit){ RLIMIT_AS, { c->memory, c->memory } };
	s->limits[1] = (struct spawn_limit){ RLIMIT_CPU, { cpu_s, cpu_s + 1 } };
	s->limits[2] = (struct spawn_limit){ RLIMIT_NOFILE, { 256, 256 } };
	s->limits[3] = (struct spawn_limit){ RLIMIT_CORE, { 0, 0 } };
	/* Per uid, so a job's own once it has one (lib/jobuid.h). */
	s->limits[4] = (struct spawn_limit){ RLIMIT_NPROC,
	    { (rlim_t)c->processes, (rlim_t)c->processes } };
	s->nlimits = 5;
	s->own_pgrp = s->pdeathsig = s->no_new_privs = true;
	/* Not on the starter's terminal: a module must not type into the
	 * shell that started it (TIOCSTI) nor get its signals. */
	s->own_session = true;
	s->scoped = true;
	s->filter = c->filter;
	/* All a runner starts dies with it (subproc.h), and its own /tmp,
	 * /var/tmp, /dev/shm (tmpfs of at most its memory limit) and IPC
	 * namespace, gone with it. */
	s->new_pidns = c->namespaces;
	if (c->namespaces)
		spawn_private_tmp(s, c->memory);
}
