/* SPDX-License-Identifier: Apache-2.0 */
/*
 * userdb.c - names for the job uids ([limits] job_uids, lib/jobuid.h) in
 * the user database, the way systemd names a DynamicUser=: JSON user and
 * group records (https://systemd.io/USER_RECORD) dropped into /run/userdb/,
 * which nss-systemd (libnss-systemd, "systemd" on the passwd and group lines
 * of /etc/nsswitch.conf) reads for getpwuid() and friends.
 *
 * Why: a uid with no entry is a stranger to many tools; dbus-daemon drops a
 * connection whose uid it cannot look up, so systemctl in a job (the
 * service.status module) failed with "Transport endpoint is not connected".
 *
 * For each uid U of the range: muster-job-U.user and muster-job-U.group
 * (world-readable, written by rename()), and the symlinks U.user and
 * U.group that nss-systemd looks a uid or gid up by.  The whole range at
 * start, by the root parent only; records of other names are left alone,
 * and a U.user or U.group that points at another record is not replaced.
 * They stay when musterd stops; /run is empty again at boot.  A self-test
 * writes none (main.c).  Each is written as lib/util.c writes any file
 * (its fsync() costs nothing on /run's tmpfs).
 *
 * A failure is the caller's to log: without the records jobs still run,
 * only tools that need a name for their uid fail.
 */
#include "agent.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#define USERDB_DIR	"/run/userdb"
#define USERDB_SHELL	"/usr/sbin/nologin"
#define USERDB_HOME	"/nonexistent"

/* Written whole and renamed over dir/name (lib/util.c), 0644 whatever the
 * umask (the unit's is 0027): every user looks names up.  Its temporary
 * NAME.user.tmp is no record to nss-systemd (not a .user). */
static int
put_file(const char *dir, const char *name, const char *text, struct mu_err *err)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return mu_errf(err, MU_EINVAL, "%s/%s: path too long", dir, name);
	if (write_file_atomic(path, text, strlen(text), 0644) != MU_OK)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	return MU_OK;
}

/* MU_OK when dir/link is missing or already points at target; an error
 * when it is anything else (another record's: left alone). */
static int
link_ours(const char *dir, const char *link, const char *target, bool *there,
    struct mu_err *err)
{
	char path[PATH_MAX], now[PATH_MAX];
	ssize_t n;

	*there = false;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, link) >= sizeof(path))
		return mu_errf(err, MU_EINVAL, "%s/%s: path too long", dir, link);
	if ((n = readlink(path, now, sizeof(now) - 1)) >= 0) {
		now[n] = '\0';
		if (strcmp(now, target) != 0)
			return mu_errf(err, MU_EINVAL, "%s points at %s, another record: "
			    "not replaced", path, now);
		*there = true;
		return MU_OK;
	}
	if (errno != ENOENT)
		return mu_errf(err, MU_EINVAL, "%s: %s (not replaced)", path,
		    errno == EINVAL ? "not a symlink" : strerror(errno));
	return MU_OK;
}

/* dir/link -> target, made under a name of our own and renamed. */
static int
put_link(const char *dir, const char *link, const char *target, struct mu_err *err)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int saved;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, link) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.#%s.%ld", dir, link,
	    (long)getpid()) >= sizeof(tmp))
		return mu_errf(err, MU_EINVAL, "%s/%s: path too long", dir, link);
	unlink(tmp);
	if (symlink(target, tmp) == -1 || rename(tmp, path) == -1) {
		saved = errno;
		unlink(tmp);
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(saved));
	}
	return MU_OK;
}

/* One record as JSON text (malloc'd), or NULL when out of memory. */
static char *
record_text(uid_t uid, const char *name, bool group)
{
	json_t *j;
	char *s;

	if (group)
		j = json_pack("{s:s, s:I, s:s}", "groupName", name, "gid",
		    (json_int_t)uid, "disposition", "dynamic");
	else
		j = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:b, s:s}",
		    "userName", name, "uid", (json_int_t)uid, "gid", (json_int_t)uid,
		    "realName", "muster job", "homeDirectory", USERDB_HOME,
		    "shell", USERDB_SHELL, "locked", 1, "disposition", "dynamic");
	if (j == NULL)
		return NULL;
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	return s;
}

/* Both links are checked before any file is written: a uid or gid that
 * is another record's gets no record of ours by name either. */
static int
write_one(const char *dir, uid_t uid, struct mu_err *err)
{
	static const char *const kinds[] = { "user", "group" };
	char name[JOBUID_NAME_MAX], file[2][JOBUID_NAME_MAX + 8], link[2][24], *text;
	bool there[2];
	int i, rc;

	jobuid_name(uid, name, sizeof(name));
	for (i = 0; i < 2; i++) {
		snprintf(file[i], sizeof(file[i]), "%s.%s", name, kinds[i]);
		snprintf(link[i], sizeof(link[i]), "%u.%s", (unsigned)uid, kinds[i]);
		if ((rc = link_ours(dir, link[i], file[i], &there[i], err)) != MU_OK)
			return rc;
	}
	for (i = 0; i < 2; i++) {
		if ((text = record_text(uid, name, i == 1)) == NULL)
			return mu_errf(err, MU_ENOMEM, "out of memory");
		rc = put_file(dir, file[i], text, err);
		free(text);
		if (rc != MU_OK || (!there[i] && (rc = put_link(dir, link[i], file[i],
		    err)) != MU_OK))
			return rc;
	}
	return MU_OK;
}

int
userdb_write(const char *dir, uid_t first, unsigned count, struct mu_err *err)
{
	unsigned i;
	int rc;

	/* Made here when run by hand; under the unit ExecStartPre= made it
	 * (ProtectSystem=strict: /run is read-only but for ReadWritePaths=). */
	if (mkdir(dir, 0755) == 0) {
		/* Every user looks names up: 0755 whatever the umask (the
		 * unit's 0027 would leave it 0750). */
		if (chmod(dir, 0755) == -1)
			return mu_errf(err, MU_EIO, "%s: %s", dir, strerror(errno));
	} else if (errno != EEXIST)
		return mu_errf(err, MU_EIO, "%s: %s", dir, strerror(errno));
	for (i = 0; i < count; i++)
		if ((rc = write_one(dir, first + i, err)) != MU_OK)
			return rc;
	return MU_OK;
}

void
userdb_start(struct agent *a)
{
	const struct jobuids *j = &a->par.jobuids;
	const char *dir = USERDB_DIR;
	struct mu_err err;

#ifdef MUSTER_TEST_HOOKS
	/* Test builds only (never in a package): the system tests' agents
	 * write their records into a folder of their own, so that a test
	 * run as root leaves the machine's /run/userdb alone. */
	{
		const char *d = getenv("MUSTER_TEST_USERDB_DIR");

		if (d && d[0])
			dir = d;
	}
#endif
	if (userdb_write(dir, j->first, j->count, &err) != MU_OK) {
		log_warnx("job uids: user records not written, or not all (%s): tools "
		    "that look a job's uid up, such as systemctl over D-Bus, fail",
		    err.msg);
		return;
	}
	log_notice("job uids: %u user and group records muster-job-%u..%u in %s",
	    j->count, (unsigned)j->first, (unsigned)(j->first + j->count - 1), dir);
	/* Written but not read: nss-systemd is missing (libnss-systemd, the
	 * "systemd" word in /etc/nsswitch.conf). */
	if (strcmp(dir, USERDB_DIR) == 0 && getpwuid(j->first) == NULL)
		log_warnx("job uids: uid %u has no name: is libnss-systemd installed "
		    "and \"systemd\" on the passwd and group lines of "
		    "/etc/nsswitch.conf?", (unsigned)j->first);
}
