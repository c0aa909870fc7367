/* SPDX-License-Identifier: Apache-2.0 */
/*
 * subproc.h - start a child from a multi-threaded program (Paho's threads,
 * design.md §9): the fork-child prelude in one place.
 *
 * Everything that allocates, locks or reads files (the argv, the user's
 * groups, the seccomp program) is prepared by the caller before
 * spawn_start(); between the clone and execve() the child (which shares
 * the parent's memory until the exec, as with vfork(); subproc.c) makes
 * only async-signal-safe system calls, in this order:
 *   own session (no controlling terminal) or process group; parent-death signal; every signal's default action
 *   (ignored ones would stay ignored across exec), then an empty mask;
 *   the private /tmp mounts and the PID namespace for its children (while
 *   still root); rlimits; groups, gid, uid (then the death signal again, since a change
 *   of credentials clears it); no new privileges; fds 0..4 from the
 *   caller's list, everything above closed; the seccomp filter; exec.
 *
 * This is the one place that writes the prelude: musterd's runners
 * (agent/parent/run.c), `muster-runner --run`'s runner child and --describe
 * child (runner/local.c) and a module's run_cmd() (runner/cmd.c) all start
 * their children here.
 *
 * With exec_report, spawn_start() learns whether the exec happened, the
 * way posix_spawn() does: the child writes its errno to a close-on-exec
 * pipe if any step fails, and the parent reads it (EOF: exec succeeded).
 * A child that failed is reaped there, so the caller never sees its pid.
 *
 * Descendants: with new_pidns the child's children are created in a PID
 * namespace of its own (root only; unshare(CLONE_NEWPID) in the prelude);
 * the child itself stays in ours.  The exec'd program must make its first
 * child the namespace's init, a reaper that does nothing else (the runner
 * does: runner/confine.c).  When that init dies (it dies with the program:
 * parent-death signal) the kernel kills every process left in the
 * namespace, whatever they did to escape (setsid(), double fork), so
 * nothing a module started outlives its job.  Why not make the child the
 * init itself: an init ignores every signal it has no handler for, even
 * one it sends itself, so a module's abort() (raise(SIGABRT)) did nothing
 * and glibc fell through to a crash instruction: SIGSEGV, reported as a
 * segmentation fault.  Outside the namespace the program dies of the
 * signal that happened.
 *
 * Ownership: struct spawn borrows every pointer and fd; spawn_start()
 * closes nothing.  spawn_filter_build() fills a program the caller frees
 * with spawn_filter_free().
 */
#ifndef MUSTER_SUBPROC_H
#define MUSTER_SUBPROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <linux/filter.h>

#include "err.h"

#define SPAWN_FDS		5	/* the child's fds 0..4 */
#define SPAWN_MAX_GROUPS	64
#define SPAWN_MAX_LIMITS	6
#define SPAWN_MAX_WRITABLE	8
#define SPAWN_TOOLS_DIR		"/tmp/.muster-tools"

struct spawn_limit {
	int resource;			/* RLIMIT_* */
	struct rlimit value;
};

struct spawn {
	const char *path;		/* the program; NULL: argv[0] */
	/* Or exec an fd the parent opened (O_PATH is enough): no folder on
	 * the program's path need be open to the child's user. */
	bool use_exec_fd;
	int exec_fd;
	char *const *argv, *const *envp;
	int fds[SPAWN_FDS];		/* the child's 0..4; -1: closed */
	struct spawn_limit limits[SPAWN_MAX_LIMITS];
	int nlimits;
	bool own_pgrp;			/* setpgid(0, 0): kill(-pid) reaches all */
	bool own_session;		/* setsid(): no controlling terminal, and
					 * its own process group as own_pgrp */
	bool pdeathsig;			/* SIGKILL when the parent dies */
	bool no_new_privs;
	bool switch_user;		/* setgroups/setgid/setuid below */
	uid_t uid;
	gid_t gid;
	gid_t groups[SPAWN_MAX_GROUPS];
	int ngroups;
	const struct sock_fprog *filter;	/* seccomp, optional */
	bool new_pidns;			/* init of its own PID namespace */
	/* A mount and an IPC namespace of its own (root only), with a fresh
	 * tmpfs on /tmp, /var/tmp and /dev/shm: what one job leaves there no
	 * other sees, and it is gone with the job (spawn_private_tmp()). */
	bool private_tmp;
	char tmpfs_opts[64];		/* mount options of those tmpfs */
	/* With private_tmp: bind the folder tools_dir (an absolute path)
	 * read-only on SPAWN_TOOLS_DIR inside the private /tmp.  For
	 * `muster-runner --run`'s MUSTER_TOOLS_DIR, a test's fake tools,
	 * which the private /tmp or a folder on the way closed to the job's
	 * uid (a 0700 home) would hide. */
	const char *tools_dir;
	/* With private_tmp: every mount read-only for the child but its
	 * tmpfs and the folders in writable[] (ProtectSystem=strict with
	 * ReadWritePaths=).  For a job with a uid of its own, which owns no
	 * file: what it could write is only the world-writable folders
	 * (/run/lock, ...), where what it left would keep its uid for the
	 * next job that gets the same one. */
	bool read_only;
	const char *writable[SPAWN_MAX_WRITABLE];	/* absolute paths */
	int nwritable;
	/* A Landlock domain of its own, scoped (kernel 6.12+, Landlock ABI
	 * 6): it and its children can connect to no abstract Unix socket and
	 * signal no process made outside it, so two jobs cannot reach each
	 * other that way even as one run_as user.  Older kernels: nothing
	 * (spawn_scope_available() says which). */
	bool scoped;
	bool exec_report;		/* wait for the exec; see above */
};

/* Start the child (in a new PID namespace if asked) and exec.  Returns the child's
 * pid in the caller's namespace, or -1 with err set and errno saying why
 * (with exec_report: the child's errno when its prelude or exec failed).
 * Without exec_report the child exits 126 when it cannot become the user
 * asked for, 127 when another step or the exec fails. */
pid_t spawn_start(const struct spawn *s, struct mu_err *err);

/* Ask for private_tmp, each tmpfs at most size bytes (0: the kernel's
 * default, half the RAM). */
void spawn_private_tmp(struct spawn *s, uint64_t size);

/* Look up a user for switch_user (not async-signal-safe: before fork). */
int spawn_set_user(struct spawn *s, const char *user, struct mu_err *err);

/*
 * The runners' syscall filter: allow everything but what no module needs
 * and what would let one reach outside its job - ptrace, mount and
 * namespaces, kernel modules, kexec, bpf, reboot, swap, keyrings, clock
 * and host settings, process_vm_* (the list: docs/modules.md, "What runs
 * differently on a host").  A denied call raises SIGSYS (SECCOMP_RET_TRAP)
 * with the call's number in si_syscall: the runner's handler
 * (runner/confine.c) makes the call fail with EPERM, as before, and
 * remembers it, so that the result names the call instead of leaving a
 * mystery EPERM.  A program without such a handler (one a module execs)
 * is killed by SIGSYS ("Bad system call"), which names the cause too.
 * With no_inet, also IPv4 and IPv6 sockets (a job not granted the
 * network): those fail with EPERM directly.
 * clone3() answers ENOSYS instead (the C library falls back to clone()).
 */
int spawn_filter_build(struct sock_fprog *out, bool no_inet, struct mu_err *err);

/* Load into the calling process (on top of any filter it has) a filter
 * that denies IPv4 and IPv6 sockets, as spawn_filter_build()'s no_inet:
 * the runner's own, for a module that does not declare the network. */
int spawn_filter_no_inet(struct mu_err *err);
void spawn_filter_free(struct sock_fprog *prog);

/* The name of system call nr of this machine's architecture, into buf
 * ("syscall 123" when libseccomp does not know it).  Not
 * async-signal-safe. */
void spawn_syscall_name(int nr, char *buf, size_t len);

/*
 * What a host gives every runner besides its user (design.md §8): the
 * rlimits, its own session and process group, the parent-death signal,
 * no new privileges, the filter, and as root the PID, mount and IPC
 * namespaces with a private /tmp.  One place for musterd
 * (agent/parent/run.c) and `muster-runner --run` (runner/local.c), so that
 * a module author's run is confined as a host's is.
 */
struct spawn_confinement {
	uint64_t memory;		/* RLIMIT_AS, and each private tmpfs */
	uint64_t cpu_ms;		/* RLIMIT_CPU, rounded up to seconds */
	int processes;			/* RLIMIT_NPROC (per uid) */
	const struct sock_fprog *filter;	/* NULL: none */
	bool namespaces;		/* PID, mount, IPC (root only) */
};

/* Fill s's limits and confinement flags (not the user, fds or argv). */
void spawn_confine(struct spawn *s, const struct spawn_confinement *c);
/* Whether this kernel scopes abstract Unix sockets and signals (Landlock
 * ABI 6 or later): what `scoped` gives. */
bool spawn_scope_available(void);

/*
 * In an ASan build, what the environment of a program started with
 * new_pidns adds to ASAN_OPTIONS (musterd's runners, `muster-runner --run`
 * as root).  LeakSanitizer checks at exit from a tracer it clone()s to
 * ptrace the process's threads; that clone lands in pid_for_children, the
 * children's namespace, where getppid() is 0 and the threads' ids mean
 * nothing, so the tracer gives up ("LeakSanitizer has encountered a fatal
 * error") and, once the namespace's init is gone, cannot even be created.
 * Moving its children back into its own namespace needs CAP_SYS_ADMIN,
 * which the runner has not.  So such a runner skips the leak check; the
 * same code is leak-checked where it has no such namespace (tests/runner
 * start it directly, --no-confine, every run not as root).
 */
#define SPAWN_PIDNS_ASAN_OPTIONS	"detect_leaks=0"

#endif
