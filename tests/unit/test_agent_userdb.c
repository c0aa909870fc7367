/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent/parent/userdb.c: the job uids' JSON user and group records for
 * nss-systemd, written into a temporary folder (made per test, removed
 * after it) as they are into /run/userdb: the files, their symlinks, modes
 * and fields, a second start, and records of others left alone.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent.h"

struct dir {
	char path[64];
	char db[80];		/* path/userdb: userdb_write() makes it */
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static int
dir_setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -1;
	strcpy(d->path, "/tmp/test_agent_userdb.XXXXXX");
	if (mkdtemp(d->path) == NULL)
		return -1;
	snprintf(d->db, sizeof(d->db), "%s/userdb", d->path);
	*state = d;
	return 0;
}

static int
dir_teardown(void **state)
{
	struct dir *d = *state;

	nftw(d->path, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(d);
	return 0;
}

static json_t *
load(const struct dir *d, const char *name)
{
	char path[256];
	json_error_t jerr;
	json_t *j;

	snprintf(path, sizeof(path), "%s/%s", d->db, name);
	j = json_load_file(path, 0, &jerr);
	if (j == NULL)
		fail_msg("%s: %s", path, jerr.text);
	return j;
}

static void
assert_link(const struct dir *d, const char *name, const char *target)
{
	char path[256], buf[256];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", d->db, name);
	n = readlink(path, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, target);
}

static unsigned
entries(const struct dir *d)
{
	char cmd[256];
	unsigned n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", d->db);
	assert_non_null(f = popen(cmd, "r"));
	assert_int_equal(fscanf(f, "%u", &n), 1);
	pclose(f);
	return n;
}

static void
test_records_of_the_range(void **state)
{
	struct dir *d = *state;
	struct mu_err err;
	struct stat st;
	char path[256];
	json_t *u, *g;
	mode_t old;

	/* The unit's umask must not make them unreadable to users: the
	 * folder is made here. */
	old = umask(0027);
	assert_int_equal(userdb_write(d->db, 70000, 3, &err), MU_OK);
	umask(old);
	assert_int_equal(stat(d->db, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	/* Per uid: NAME.user, NAME.group and their UID symlinks; nothing else
	 * (no temporary file left). */
	assert_int_equal(entries(d), 12);
	snprintf(path, sizeof(path), "%s/muster-job-70001.user", d->db);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_link(d, "70001.user", "muster-job-70001.user");
	assert_link(d, "70001.group", "muster-job-70001.group");

	u = load(d, "70002.user");
	assert_string_equal(json_string_value(json_object_get(u, "userName")),
	    "muster-job-70002");
	assert_int_equal(json_integer_value(json_object_get(u, "uid")), 70002);
	assert_int_equal(json_integer_value(json_object_get(u, "gid")), 70002);
	assert_string_equal(json_string_value(json_object_get(u, "shell")),
	    "/usr/sbin/nologin");
	assert_string_equal(json_string_value(json_object_get(u, "homeDirectory")),
	    "/nonexistent");
	assert_string_equal(json_string_value(json_object_get(u, "disposition")), "dynamic");
	assert_true(json_is_true(json_object_get(u, "locked")));
	assert_null(json_object_get(u, "privileged"));
	json_decref(u);
	g = load(d, "muster-job-70000.group");
	assert_string_equal(json_string_value(json_object_get(g, "groupName")),
	    "muster-job-70000");
	assert_int_equal(json_integer_value(json_object_get(g, "gid")), 70000);
	json_decref(g);

	/* A second start: the same records again. */
	assert_int_equal(userdb_write(d->db, 70000, 3, &err), MU_OK);
	assert_int_equal(entries(d), 12);
}

static void
write_text(const struct dir *d, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", d->db, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static void
test_others_records_are_left_alone(void **state)
{
	struct dir *d = *state;
	struct mu_err err;
	char path[256];
	json_t *j;

	assert_int_equal(mkdir(d->db, 0755), 0);
	write_text(d, "alice.user", "{\"userName\":\"alice\",\"uid\":70005}");
	snprintf(path, sizeof(path), "%s/70005.user", d->db);
	assert_int_equal(symlink("alice.user", path), 0);

	/* Another record's uid: refused, its files untouched. */
	assert_int_equal(userdb_write(d->db, 70004, 2, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "70005.user points at alice.user"));
	assert_link(d, "70005.user", "alice.user");
	j = load(d, "alice.user");
	assert_string_equal(json_string_value(json_object_get(j, "userName")), "alice");
	json_decref(j);

	/* Beside it: the range's own, and alice stays. */
	assert_int_equal(userdb_write(d->db, 70000, 5, &err), MU_OK);
	assert_int_equal(entries(d), 2 + 5 * 4);
	assert_link(d, "70005.user", "alice.user");
	assert_link(d, "70004.user", "muster-job-70004.user");
}

static void
test_a_folder_that_cannot_be_made_is_an_error(void **state)
{
	struct dir *d = *state;
	struct mu_err err;
	char path[256];

	snprintf(path, sizeof(path), "%s/none/userdb", d->path);
	assert_int_equal(userdb_write(path, 70000, 1, &err), MU_EIO);
	assert_non_null(strstr(err.msg, path));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_records_of_the_range, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_others_records_are_left_alone, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_a_folder_that_cannot_be_made_is_an_error,
		    dir_setup, dir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
