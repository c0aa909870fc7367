/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jobuid.h - a uid (and the gid of the same number) of its own for each
 * running job, from the range [limits] job_uids (docs/operations.md), in
 * the manner of systemd's DynamicUser=: held while the job's runner lives,
 * given back when the parent reaps it.  As root the parent names the range
 * in the user database through nss-systemd's drop-ins (agent/parent/
 * userdb.c): user and group "muster-job-UID", so that tools which look a
 * uid up (dbus-daemon drops a connection whose uid it cannot) work.
 *
 * Why: jobs that share a uid can read each other's /proc/PID/environ and
 * /proc/PID/mem (of any process they exec, which is dumpable again), and
 * RLIMIT_NPROC, counted per uid, would be a limit shared by every job.  A
 * uid per job makes the kernel's own owner checks the wall between jobs.
 *
 * Reuse: the runner's children live in a PID namespace of their own
 * (lib/subproc.h); before the runner ends (return, exit(), a crash) it ends
 * that namespace and reaps every process of it (runner/confine.c), so when
 * the parent has reaped the runner no process of the job is left.  Only a
 * runner killed by SIGKILL (timeout, cancel: the whole process group, the
 * namespace's init too) leaves its job's processes killed but perhaps not
 * yet reaped by the host's init.  Its /tmp, /var/tmp and /dev/shm were
 * tmpfs of its own mount namespace and are gone too.  Uids are handed out
 * round robin, so the one just given back is the last to be taken again.
 *
 * Not thread-safe: the parent's loop only.
 */
#ifndef MUSTER_JOBUID_H
#define MUSTER_JOBUID_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define JOBUID_MAX	65536	/* uids in one range at most */
#define JOBUID_NAME_PREFIX	"muster-job-"	/* + the uid: the user and group name */
#define JOBUID_NAME_MAX	32	/* buffer for jobuid_name() */

struct jobuids {
	uid_t first;			/* 0: no range (job_uids = none) */
	unsigned count;
	unsigned next;			/* where the round robin goes on */
	unsigned used;
	uint8_t busy[JOBUID_MAX / 8];
};

/* "FIRST-LAST" (inclusive) or "none" into first/count; errors name v.
 * Refuses uid 0, ranges past 2^31 and ranges wider than JOBUID_MAX. */
int jobuid_parse(const char *v, uid_t *first, unsigned *count, struct mu_err *err);

/* Set up the allocator for first/count (count 0: off). */
void jobuid_init(struct jobuids *j, uid_t first, unsigned count);

/* The user and group name of job uid uid: "muster-job-UID". */
void jobuid_name(uid_t uid, char *buf, size_t len);

/* Refuse a range that a user or group of the user database (NSS: files,
 * LDAP, ...) already uses, or that is smaller than max_jobs: a job would
 * share its uid with someone else.  The range's own names (jobuid_name(),
 * written by an earlier start) are no one else's. */
int jobuid_check(uid_t first, unsigned count, int max_jobs, struct mu_err *err);

/* Take a free uid; MU_ENOENT when every one is held (more runners than
 * the range: a bug, since jobuid_check() wants count >= max_jobs). */
int jobuid_take(struct jobuids *j, uid_t *uid, struct mu_err *err);

/* Give uid back (one that is not ours is ignored). */
void jobuid_give(struct jobuids *j, uid_t uid);

#endif
