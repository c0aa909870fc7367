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
 *   the private /tmp mounts (while still root); rlimits; groups, gid, uid (then the death signal again, since a change
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
 * Descendants: with new_pidns the child is created as the init of a PID
 * namespace of its own (root only).  When it exits, the kernel kills
 * every process left in that namespace, whatever they did to escape
 * (setsid(), double fork), so nothing a module started outlives its job.
 * An init process ignores signals it has no handler for, except SIGKILL
 * from outside: a graceful SIGTERM needs a handler in the child.
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
 * and host settings, process_vm_*, typing into a terminal; with no_inet
 * also IPv4 and IPv6 sockets (a job not granted the network).  Denied
 * calls fail with EPERM (a module sees an error it can report, not a
 * kill).
 */
int spawn_filter_build(struct sock_fprog *out, bool no_inet, struct mu_err *err);

/* Load into the calling process (on top of any filter it has) a filter
 * that denies IPv4 and IPv6 sockets, as spawn_filter_build()'s no_inet:
 * the runner's own, for a module that does not declare the network. */
int spawn_filter_no_inet(struct mu_err *err);
void spawn_filter_free(struct sock_fprog *prog);

#endif
