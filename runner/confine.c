/* SPDX-License-Identifier: Apache-2.0 */
/*
 * confine.c - the runner's own part of a host's confinement; the rest
 * (user, rlimits, namespaces, the filter) lib/subproc.c sets up before the
 * exec.  Owned by the runner; called by runner.c before anything else.
 *
 * The PID namespace's init.  musterd (and `muster-runner --run` as root)
 * start the runner with its children in a PID namespace of their own
 * (lib/subproc.h): the runner forks the namespace's init first, a reaper
 * that does nothing else and dies with the runner (parent-death signal),
 * taking every process of the namespace with it.  The runner itself is not
 * the init: an init ignores each signal it has no handler for, even one it
 * sends itself, so a module's abort() did nothing and glibc went on to a
 * crash instruction (SIGSEGV); outside the namespace SIGABRT stays SIGABRT.
 * Whenever the runner ends (return, exit(), a crash, SIGTERM or SIGINT:
 * cmd.c) it first ends the namespace and reaps everything (confine_end());
 * only SIGKILL (musterd's timeout and cancel after their grace, which kill
 * the whole process group, the init too) leaves the runner's own children
 * to the host's init to reap.
 *
 * Blocked system calls.  The filter traps them (SIGSYS, lib/subproc.h);
 * the handler here makes the call return EPERM, exactly what a module saw
 * before, and remembers the first one, so that a run that does not pass
 * names it in its reason ("blocked system call: clock_adjtime").  A module that
 * sets its own SIGSYS handler replaces this one; a program it execs has
 * none and is killed by SIGSYS.
 */
#include "runner.h"
#include "subproc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <linux/seccomp.h>

/* ---- the PID namespace's init ----------------------------------------- */

/* Our children's PID namespace is not ours: subproc.c's unshare().  Until
 * its first process exists the kernel shows pid_for_children as missing
 * (ENOENT); once it does, as another namespace. */
static bool
pidns_pending(void)
{
	struct stat self, kids;

	if (stat("/proc/self/ns/pid", &self) == -1)
		return false;
	if (stat("/proc/self/ns/pid_for_children", &kids) == -1)
		return errno == ENOENT;
	return self.st_ino != kids.st_ino || self.st_dev != kids.st_dev;
}

static __attribute__((noreturn)) void
pidns_reaper(int ready)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t chld;
	int i;

	/* Armed before we say so: the runner waits for the byte, so it is
	 * alive now and its death will reach us. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	for (i = 1; i < NSIG; i++)
		sigaction(i, &dfl, NULL);
	if (write(ready, "", 1) != 1)
		_exit(1);
	close_range(0, ~0U, 0);
	/* Orphans of the namespace come to us; reap them.  SIGCHLD blocked
	 * is queued (ignored, it would not wake sigwaitinfo()). */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		sigwaitinfo(&chld, NULL);
	}
}

/* The init, and the runner (a forked child of the module inherits
 * these, and must not end the job's namespace). */
static pid_t reaper_pid, runner_pid;

/*
 * End the namespace and wait until every process of it is reaped, so that
 * whoever reaps the runner knows the job is gone (lib/jobuid.h gives its
 * uid back then).  The init's death kills them all; the runner's own
 * children it reaps here itself: after the runner's death they would go to
 * the host's init, and count as the uid's processes until that reaps them.
 * Async-signal-safe: also called from the fatal signal handlers.
 */
void
confine_end(void)
{
	int e = errno;

	if (reaper_pid <= 0 || getpid() != runner_pid)
		return;
	kill(reaper_pid, SIGKILL);
	reaper_pid = 0;
	while (waitpid(-1, NULL, __WALL) != -1 || errno == EINTR)
		;
	errno = e;
}

/* A crash of the module (or the runner): end the namespace, then die of
 * the same signal (SA_RESETHAND made it the default action again): one
 * raised or sent is raised again, a fault happens again on return. */
static void
on_fatal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	confine_end();
	if (si->si_code <= 0 || sig == SIGABRT)
		raise(sig);
}

static int
confine_fatal_handlers(void)
{
	static const int sigs[] = { SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP };
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fatal;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) == -1)
			return MU_EIO;
	return atexit(confine_end) == 0 ? MU_OK : MU_ENOMEM;
}

int
confine_pidns_init(struct mu_err *err)
{
	int p[2];
	char c;
	pid_t pid;
	ssize_t n;

	if (!pidns_pending())
		return MU_OK;
	if (pipe2(p, O_CLOEXEC) == -1)
		return mu_errf(err, RUNNER_EXIT_INTERNAL, "pipe: %s", strerror(errno));
	if ((pid = fork()) == -1) {
		close(p[0]), close(p[1]);
		return mu_errf(err, RUNNER_EXIT_INTERNAL, "cannot start the PID namespace's "
		    "init: %s", strerror(errno));
	}
	if (pid == 0) {
		close(p[0]);
		pidns_reaper(p[1]);
	}
	close(p[1]);
	do
		n = read(p[0], &c, 1);
	while (n == -1 && errno == EINTR);
	close(p[0]);
	runner_pid = getpid();
	reaper_pid = pid;
	if (n != 1)
		return mu_errf(err, RUNNER_EXIT_INTERNAL, "the PID namespace's init did not "
		    "start");
	if (confine_fatal_handlers() != MU_OK)
		return mu_errf(err, RUNNER_EXIT_INTERNAL, "cannot set signal handlers: %s",
		    strerror(errno));
	return MU_OK;
}

/* ---- blocked system calls --------------------------------------------- */

/* si_code of a seccomp trap (the kernel's uapi siginfo.h); not every C
 * library's <signal.h> has it. */
#ifndef SYS_SECCOMP
#define SYS_SECCOMP	1
#endif

static volatile sig_atomic_t blocked_nr = -1;

#if defined(__x86_64__) || defined(__aarch64__)
static void
on_sigsys(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;

	(void)sig;
	if (si->si_code != SYS_SECCOMP)
		return;
	if (blocked_nr == -1)
		blocked_nr = si->si_syscall;
	/* The call's return value: EPERM, as the filter said before. */
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
#else
	uc->uc_mcontext.regs[0] = (unsigned long long)-EPERM;
#endif
}

int
confine_sigsys(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGSYS, &sa, NULL) == -1 ? MU_EIO : MU_OK;
}
#else
/* subproc.c's filter answers EPERM itself here (no trap). */
int
confine_sigsys(void)
{
	return MU_OK;
}
#endif

bool
confine_blocked(char *name, size_t len)
{
	if (blocked_nr == -1)
		return false;
	spawn_syscall_name(blocked_nr, name, len);
	return true;
}
