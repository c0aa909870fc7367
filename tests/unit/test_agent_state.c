/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for musterd's state on disk, without a broker: the seen-set
 * (agent/parent/seen.c) and the spool and journal (agent/common/spool.c),
 * in a temporary state_dir made per test and removed after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include <cmocka.h>

#include "agent.h"

#define NOW	1764230400000ull	/* any fixed wall time, ms */

struct dir {
	char path[64];
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
	strcpy(d->path, "/tmp/test_agent_state.XXXXXX");
	if (mkdtemp(d->path) == NULL)
		return -1;
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

static bool
exists(const char *dir, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static void
write_text(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static size_t
read_text(const char *dir, const char *name, char *buf, size_t cap)
{
	char path[256];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "r"));
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n;
}

/* ---- the seen-set ------------------------------------------------------ */

static void
test_seen_add_has_reopen(void **state)
{
	struct dir *d = *state;
	struct seen_set s;
	struct mu_err err = { "" };

	assert_int_equal(seen_open(&s, d->path, NOW, &err), MU_OK);
	assert_false(seen_has(&s, "job-1"));
	assert_int_equal(seen_add(&s, "job-1", NOW + 60000, NULL, &err), MU_OK);
	assert_int_equal(seen_add(&s, "job-2", NOW + 60000, NULL, &err), MU_OK);
	assert_true(seen_has(&s, "job-1"));
	assert_true(seen_has(&s, "job-2"));
	assert_false(seen_has(&s, "job-3"));
	seen_close(&s);
	/* What was added before a restart is refused after it. */
	assert_int_equal(seen_open(&s, d->path, NOW + 1000, &err), MU_OK);
	assert_int_equal(s.n, 2);
	assert_true(seen_has(&s, "job-1"));
	assert_true(seen_has(&s, "job-2"));
	assert_false(seen_has(&s, "job-3"));
	seen_close(&s);
}

static void
test_seen_prune(void **state)
{
	struct dir *d = *state;
	struct seen_set s;
	struct mu_err err = { "" };
	char buf[512];

	assert_int_equal(seen_open(&s, d->path, NOW, &err), MU_OK);
	assert_int_equal(seen_add(&s, "short", NOW + 1000, NULL, &err), MU_OK);
	assert_int_equal(seen_add(&s, "long", NOW + 3600000, NULL, &err), MU_OK);
	/* Within the clock skew an id is still kept: its job could pass. */
	seen_prune(&s, NOW + 1000 + CLOCK_SKEW_MS);
	assert_true(seen_has(&s, "short"));
	seen_prune(&s, NOW + 1001 + CLOCK_SKEW_MS);
	assert_false(seen_has(&s, "short"));
	assert_true(seen_has(&s, "long"));
	/* The file was rewritten without it, and appending still works. */
	read_text(d->path, "seen", buf, sizeof(buf));
	assert_null(strstr(buf, "short"));
	assert_non_null(strstr(buf, "long"));
	assert_int_equal(seen_add(&s, "later", NOW + 3600000, NULL, &err), MU_OK);
	seen_close(&s);
	/* Expired entries are dropped on open as well. */
	assert_int_equal(seen_open(&s, d->path, NOW + 3600001 + CLOCK_SKEW_MS, &err),
	    MU_OK);
	assert_int_equal(s.n, 0);
	seen_close(&s);
}

static void
test_seen_damaged_file(void **state)
{
	struct dir *d = *state;
	struct seen_set s;
	struct mu_err err = { "" };
	char buf[1024], line[160];

	snprintf(line, sizeof(line), "good-1 %llu\n", NOW + 60000);
	write_text(d->path, "seen",
	    "garbage\n"
	    "bad/id 99999999999999999\n"
	    "no-number\n"
	    "\x01\x02\x03 17\n");
	/* Append a valid line, a duplicate and a torn last line. */
	{
		char path[256];
		FILE *f;

		snprintf(path, sizeof(path), "%s/seen", d->path);
		assert_non_null(f = fopen(path, "a"));
		fputs(line, f);
		fputs(line, f);
		fputs("torn-", f);
		fclose(f);
	}
	assert_int_equal(seen_open(&s, d->path, NOW, &err), MU_OK);
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, "good-1"));
	assert_false(seen_has(&s, "garbage"));
	assert_false(seen_has(&s, "torn-"));
	/* Compacted on open: only the good line is left. */
	read_text(d->path, "seen", buf, sizeof(buf));
	assert_string_equal(buf, line);
	seen_close(&s);
}

/*
 * musterd runs as root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
 * (the unit's capability bounding set), so a folder's mode binds it.  As
 * root, these take the two from the effective set and give them back;
 * not root, there is nothing to take.
 */
static struct __user_cap_data_struct caps_saved[2];
static bool caps_taken;

static void
dac_drop(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct c[2];

	if (geteuid() != 0)
		return;
	assert_int_equal(syscall(SYS_capget, &h, caps_saved), 0);
	memcpy(c, caps_saved, sizeof(c));
	c[0].effective &= ~(1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH);
	assert_int_equal(syscall(SYS_capset, &h, c), 0);
	caps_taken = true;
}

static void
dac_restore(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	if (caps_taken && syscall(SYS_capset, &h, caps_saved) != 0)
		fail_msg("capset: %s", strerror(errno));
	caps_taken = false;
}

static void
test_seen_unwritable(void **state)
{
	struct dir *d = *state;
	struct seen_set s;
	struct mu_err err = { "" };
	char missing[128];
	int rc;

	/* A state_dir that does not exist: refused, with the path named. */
	snprintf(missing, sizeof(missing), "%s/nope", d->path);
	assert_int_not_equal(seen_open(&s, missing, NOW, &err), MU_OK);
	assert_non_null(strstr(err.msg, "nope"));
	seen_close(&s);

	/* One that exists but may not be written (0500): refused, the file
	 * named with the reason, and nothing left behind. */
	assert_int_equal(chmod(d->path, 0500), 0);
	dac_drop();
	rc = seen_open(&s, d->path, NOW, &err);
	dac_restore();
	assert_int_equal(chmod(d->path, 0700), 0);
	assert_int_equal(rc, MU_EIO);
	assert_non_null(strstr(err.msg, d->path));
	assert_non_null(strstr(err.msg, strerror(EACCES)));
	assert_false(exists(d->path, "seen"));
	assert_false(exists(d->path, "seen.new"));
	seen_close(&s);

	/* The same folder writable: it opens. */
	assert_int_equal(seen_open(&s, d->path, NOW, &err), MU_OK);
	assert_true(exists(d->path, "seen"));
	seen_close(&s);
}

/*
 * The fail-closed path behind "agent could not record the job id"
 * (intake.c): an id whose line does not reach the disk is reported as an
 * error - its job is answered so and not run - but stays known until a
 * restart, so a second delivery does not run it either; a run's line stays
 * open (it may have reached the disk).  Both ways it can fail: the write
 * (a full disk: /dev/full under the file) and the flush (fdatasync on a
 * pipe: EINVAL).
 */
static void
test_seen_record_fails_closed(void **state)
{
	struct dir *d = *state;
	struct seen_set s;
	struct mu_err err = { "" };
	char buf[1024], line[160];
	int real, full, pipefd[2];

	assert_int_equal(seen_open(&s, d->path, NOW, &err), MU_OK);
	assert_int_equal(seen_add(&s, "kept-1", NOW + 60000, NULL, &err), MU_OK);
	assert_true((real = dup(s.fd)) != -1);

	/* The disk is full: the write fails. */
	assert_true((full = open("/dev/full", O_WRONLY | O_CLOEXEC)) != -1);
	assert_true(dup2(full, s.fd) != -1);
	close(full);
	err.msg[0] = '\0';
	assert_int_equal(seen_add(&s, "full-1", NOW + 60000, NULL, &err), MU_EIO);
	assert_non_null(strstr(err.msg, "/seen: "));
	assert_non_null(strstr(err.msg, strerror(ENOSPC)));
	assert_true(seen_has(&s, "full-1"));
	assert_int_equal(seen_add(&s, "full-run", NOW + 60000, "probe", &err), MU_EIO);
	assert_true(seen_has(&s, "full-run"));
	assert_int_equal(s.nruns, 1);
	assert_string_equal(s.runs[0].id, "full-run");

	/* The write goes through, the flush fails: seen_append() is fine,
	 * seen_sync() (the group commit) is not. */
	assert_int_equal(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK), 0);
	assert_true(dup2(pipefd[1], s.fd) != -1);
	assert_int_equal(seen_append(&s, "flush-1", NOW + 60000, NULL, &err), MU_OK);
	assert_true(seen_has(&s, "flush-1"));
	err.msg[0] = '\0';
	assert_int_equal(seen_sync(&s, &err), MU_EIO);
	assert_non_null(strstr(err.msg, "/seen: "));
	assert_true(seen_has(&s, "flush-1"));
	close(pipefd[0]);
	close(pipefd[1]);

	/* The disk is back: ids are recorded again. */
	assert_true(dup2(real, s.fd) != -1);
	close(real);
	assert_int_equal(seen_add(&s, "after-1", NOW + 60000, NULL, &err), MU_OK);
	seen_close(&s);

	/* After a restart only what reached the disk is known. */
	assert_int_equal(seen_open(&s, d->path, NOW, &err), MU_OK);
	assert_true(seen_has(&s, "kept-1"));
	assert_true(seen_has(&s, "after-1"));
	assert_false(seen_has(&s, "full-1"));
	assert_false(seen_has(&s, "flush-1"));
	assert_false(seen_has(&s, "full-run"));
	read_text(d->path, "seen", buf, sizeof(buf));
	snprintf(line, sizeof(line), "kept-1 %llu\nafter-1 %llu\n", NOW + 60000,
	    NOW + 60000);
	assert_string_equal(buf, line);
	seen_close(&s);
}

/* ---- the spool ---------------------------------------------------------- */

static void
test_spool_put_reopen_ack(void **state)
{
	struct dir *d = *state;
	struct spool sp;
	struct mu_err err = { "" };
	char spooldir[128];

	assert_int_equal(spool_open(&sp, d->path, d->path, &err), MU_OK);
	assert_int_equal(sp.count, 0);
	assert_int_equal(spool_put(&sp, "job-a", "muster/results/job-a/web1", "AAA", 3, &err),
	    MU_OK);
	assert_int_equal(spool_put(&sp, "job-b", "muster/results/job-b/web1", "BB", 2, &err),
	    MU_OK);
	snprintf(spooldir, sizeof(spooldir), "%s/spool", d->path);
	/* fsync'ed files, named by sequence, no temporary left. */
	assert_true(exists(spooldir, "00000000000000000001.res"));
	assert_true(exists(spooldir, "00000000000000000002.res"));
	assert_false(exists(spooldir, ".00000000000000000001.res.tmp"));
	assert_true(spool_has_job(&sp, "job-a"));
	assert_false(spool_has_job(&sp, "job-c"));
	spool_close(&sp);

	/* A restart loads them in order, with their topics and payloads. */
	assert_int_equal(spool_open(&sp, d->path, d->path, &err), MU_OK);
	assert_int_equal(sp.count, 2);
	assert_non_null(sp.head);
	assert_int_equal(sp.head->seq, 1);
	assert_string_equal(sp.head->job, "job-a");
	assert_string_equal(sp.head->topic, "muster/results/job-a/web1");
	assert_int_equal(sp.head->len, 3);
	assert_memory_equal(sp.head->payload, "AAA", 3);
	assert_non_null(sp.head->next);
	assert_int_equal(sp.head->next->seq, 2);
	assert_string_equal(sp.head->next->job, "job-b");
	assert_ptr_equal(sp.tail, sp.head->next);
	assert_int_equal(sp.next_seq, 3);

	/* An ack for a token nobody holds, or token 0, changes nothing. */
	sp.head->token = 7;
	spool_acked(&sp, 8);
	spool_acked(&sp, 0);
	assert_int_equal(sp.count, 2);
	spool_acked(&sp, 7);
	assert_int_equal(sp.count, 1);
	assert_false(exists(spooldir, "00000000000000000001.res"));
	assert_true(exists(spooldir, "00000000000000000002.res"));
	assert_false(spool_has_job(&sp, "job-a"));
	assert_string_equal(sp.head->job, "job-b");
	/* The new sequence goes on after the highest loaded. */
	assert_int_equal(spool_put(&sp, "job-c", "muster/results/job-c/web1", "C", 1, &err),
	    MU_OK);
	assert_true(exists(spooldir, "00000000000000000003.res"));
	assert_string_equal(sp.tail->job, "job-c");
	spool_close(&sp);
}

/* The seq (results' "seq") never goes back, also when every result was
 * acknowledged before a restart: the newest stays as last-<seq>. */
static void
test_spool_seq_survives_empty(void **state)
{
	struct dir *d = *state;
	struct spool sp;
	struct mu_err err = { "" };
	char spooldir[128];

	snprintf(spooldir, sizeof(spooldir), "%s/spool", d->path);
	assert_int_equal(spool_open(&sp, d->path, d->path, &err), MU_OK);
	assert_int_equal(spool_put(&sp, "job-a", "t/a", "A", 1, &err), MU_OK);
	assert_int_equal(spool_put(&sp, "job-b", "t/b", "B", 1, &err), MU_OK);
	/* Acked out of order: an older one just goes, the newest is kept. */
	sp.head->next->token = 2;
	spool_acked(&sp, 2);
	assert_true(exists(spooldir, "last-00000000000000000002"));
	assert_false(exists(spooldir, "00000000000000000002.res"));
	sp.head->token = 1;
	spool_acked(&sp, 1);
	assert_false(exists(spooldir, "00000000000000000001.res"));
	assert_true(exists(spooldir, "last-00000000000000000002"));
	assert_int_equal(sp.count, 0);
	spool_close(&sp);

	assert_int_equal(spool_open(&sp, d->path, d->path, &err), MU_OK);
	assert_int_equal(sp.count, 0);
	assert_int_equal(sp.next_seq, 3);
	assert_int_equal(spool_put(&sp, "job-c", "t/c", "C", 1, &err), MU_OK);
	sp.head->token = 3;
	spool_acked(&sp, 3);
	/* The mark moved on; the old one is gone. */
	assert_true(exists(spooldir, "last-00000000000000000003"));
	assert_false(exists(spooldir, "last-00000000000000000002"));
	spool_close(&sp);
	assert_int_equal(spool_open(&sp, d->path, d->path, &err), MU_OK);
	assert_int_equal(sp.next_seq, 4);
	spool_close(&sp);
}

/* A group commit: each file is written and renamed at once, the folder
 * fsync'ed once for all; they are queued (for sending) in order. */
static void
test_spool_stage_sync(void **state)
{
	struct dir *d = *state;
	struct spool sp;
	struct mu_err err = { "" };
	char spooldir[128];

	assert_int_equal(spool_open(&sp, d->path, d->path, &err), MU_OK);
	assert_int_equal(spool_sync(&sp, &err), MU_OK);		/* nothing to do */
	assert_int_equal(spool_stage(&sp, "job-a", "muster/results/job-a/web1", "A", 1, &err),
	    MU_OK);
	assert_int_equal(spool_stage(&sp, "job-b", "muster/results/job-b/web1", "B", 1, &err),
	    MU_OK);
	assert_true(sp.dir_dirty);
	assert_int_equal(spool_sync(&sp, &err), MU_OK);
	assert_false(sp.dir_dirty);
	snprintf(spooldir, sizeof(spooldir), "%s/spool", d->path);
	assert_true(exists(spooldir, "00000000000000000001.res"));
	assert_true(exists(spooldir, "00000000000000000002.res"));
	assert_int_equal(sp.count, 2);
	assert_string_equal(sp.head->job, "job-a");
	spool_close(&sp);
}

/* After a burst has expired, the seen-set gives its memory back. */
static void
test_seen_prune_shrinks(void **state)
{
	struct dir *d = *state;
	struct seen_set s;
	struct mu_err err = { "" };
	char id[32];
	int i;

	assert_int_equal(seen_open(&s, d->path, NOW, &err), MU_OK);
	for (i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "burst-%d", i);
		assert_int_equal(seen_add(&s, id, NOW + 1000, NULL, &err), MU_OK);
	}
	assert_int_equal(seen_add(&s, "long", NOW + 3600000, NULL, &err), MU_OK);
	assert_true(s.cap >= 1001);
	/* Every id is found after the table grew; others are not. */
	for (i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "burst-%d", i);
		assert_true(seen_has(&s, id));
		snprintf(id, sizeof(id), "other-%d", i);
		assert_false(seen_has(&s, id));
	}
	seen_prune(&s, NOW + 1001 + CLOCK_SKEW_MS);
	assert_int_equal(s.n, 1);
	assert_true(s.cap <= 64);
	assert_true(seen_has(&s, "long"));
	assert_false(seen_has(&s, "burst-7"));
	seen_close(&s);
	/* The ids live on disk only: the compacted file still names "long". */
	assert_int_equal(seen_open(&s, d->path, NOW + 2000 + CLOCK_SKEW_MS, &err), MU_OK);
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, "long"));
	assert_false(seen_has(&s, "burst-999"));
	seen_close(&s);
}

static void
test_spool_damaged_file(void **state)
{
	struct dir *d = *state;
	struct spool sp;
	struct mu_err err = { "" };
	char spooldir[128];

	assert_int_equal(spool_open(&sp, d->path, d->path, &err), MU_OK);
	assert_int_equal(spool_put(&sp, "job-a", "muster/results/job-a/web1", "A", 1, &err),
	    MU_OK);
	spool_close(&sp);
	snprintf(spooldir, sizeof(spooldir), "%s/spool", d->path);
	write_text(spooldir, "00000000000000000005.res", "not a spool file");
	/* One bad file is moved aside; the rest still loads. */
	assert_int_equal(spool_open(&sp, d->path, d->path, &err), MU_OK);
	assert_int_equal(sp.count, 1);
	assert_string_equal(sp.head->job, "job-a");
	assert_false(exists(spooldir, "00000000000000000005.res"));
	assert_true(exists(spooldir, "00000000000000000005.res.bad"));
	spool_close(&sp);
}

static void
test_spool_refusals(void **state)
{
	struct dir *d = *state;
	struct spool sp;
	struct mu_err err = { "" };
	char topic[TOPIC_MAX + 8];

	assert_int_equal(spool_open(&sp, d->path, d->path, &err), MU_OK);
	memset(topic, 'x', sizeof(topic) - 1);
	topic[sizeof(topic) - 1] = '\0';
	assert_int_equal(spool_put(&sp, "job-a", topic, "A", 1, &err), MU_EINVAL);
	assert_int_equal(sp.count, 0);
	spool_close(&sp);
}

/* ---- the journal (in the seen-set) ------------------------------------ */

/* A run is journaled in its seen line and stays unanswered across a
 * restart, past its not_after and through compactions, until it is done. */
static void
test_journal_runs(void **state)
{
	struct dir *d = *state;
	struct seen_set s;
	struct mu_err err = { "" };
	char buf[1024];

	assert_int_equal(seen_open(&s, d->path, NOW, &err), MU_OK);
	assert_int_equal(seen_add(&s, "r1", NOW + 1000, "os.release", &err), MU_OK);
	assert_int_equal(seen_add(&s, "r2", NOW + 1000, "hang", &err), MU_OK);
	assert_int_equal(seen_add(&s, "p1", NOW + 1000, NULL, &err), MU_OK);
	assert_int_equal(s.nruns, 2);
	/* Done for a ping: nothing to mark. */
	assert_int_equal(seen_run_done(&s, "p1", &err), MU_OK);
	assert_int_equal(seen_run_done(&s, "r1", &err), MU_OK);
	assert_int_equal(s.nruns, 1);
	assert_string_equal(s.runs[0].id, "r2");
	read_text(d->path, "seen", buf, sizeof(buf));
	assert_non_null(strstr(buf, "r2 "));
	assert_non_null(strstr(buf, " run hang\n"));
	assert_non_null(strstr(buf, " done\n"));
	seen_close(&s);
	/* A restart long after: r2 is still unanswered (the journal), r1
	 * and p1 have expired. */
	assert_int_equal(seen_open(&s, d->path, NOW + 1001 + CLOCK_SKEW_MS, &err), MU_OK);
	assert_int_equal(s.nruns, 1);
	assert_string_equal(s.runs[0].id, "r2");
	assert_string_equal(s.runs[0].module, "hang");
	assert_true(seen_has(&s, "r2"));
	assert_false(seen_has(&s, "r1"));
	seen_prune(&s, NOW + 3600000);
	assert_true(seen_has(&s, "r2"));
	assert_int_equal(seen_run_done(&s, "r2", &err), MU_OK);
	seen_close(&s);
	assert_int_equal(seen_open(&s, d->path, NOW + 3600000, &err), MU_OK);
	assert_int_equal(s.nruns, 0);
	assert_int_equal(s.n, 0);
	seen_close(&s);
}

/* A group commit: ids are known at once, on disk after one seen_sync(). */
static void
test_seen_group_commit(void **state)
{
	struct dir *d = *state;
	struct seen_set s;
	struct mu_err err = { "" };

	assert_int_equal(seen_open(&s, d->path, NOW, &err), MU_OK);
	assert_int_equal(seen_sync(&s, &err), MU_OK);	/* nothing to flush */
	assert_int_equal(seen_append(&s, "g1", NOW + 60000, NULL, &err), MU_OK);
	assert_int_equal(seen_append(&s, "g2", NOW + 60000, "hang", &err), MU_OK);
	assert_true(s.unsynced);
	/* A duplicate in the same burst is one already. */
	assert_true(seen_has(&s, "g1"));
	assert_int_equal(seen_sync(&s, &err), MU_OK);
	assert_false(s.unsynced);
	seen_close(&s);
	assert_int_equal(seen_open(&s, d->path, NOW, &err), MU_OK);
	assert_true(seen_has(&s, "g1"));
	assert_true(seen_has(&s, "g2"));
	assert_int_equal(s.nruns, 1);
	seen_close(&s);
}

/* A torn last line was never flushed: nothing acted on it. */
static void
test_journal_torn(void **state)
{
	struct dir *d = *state;
	struct seen_set s;
	struct mu_err err = { "" };
	char text[256];

	snprintf(text, sizeof(text), "a1 %llu run os.release\na1 %llu done\n"
	    "a2 %llu run hang\na3 %llu run os.rel", NOW + 60000, NOW + 60000,
	    NOW + 60000, NOW + 60000);
	write_text(d->path, "seen", text);
	assert_int_equal(seen_open(&s, d->path, NOW, &err), MU_OK);
	assert_int_equal(s.nruns, 1);
	assert_string_equal(s.runs[0].id, "a2");
	assert_true(seen_has(&s, "a1"));
	assert_false(seen_has(&s, "a3"));
	/* A journal file of an older version moves into the seen-set. */
	assert_int_equal(seen_mark_run(&s, "a1", NOW + 60000, "os.release", &err), MU_OK);
	assert_int_equal(s.nruns, 2);
	assert_int_equal(s.n, 2);
	seen_close(&s);
}

/* What an older version left in state_dir/running goes quietly. */
static void
test_journal_remove_legacy(void **state)
{
	struct dir *d = *state;
	struct spool sp;
	struct mu_err err = { "" };
	char journal[128];

	assert_int_equal(spool_open(&sp, d->path, d->path, &err), MU_OK);
	snprintf(journal, sizeof(journal), "%s/running", d->path);
	assert_int_equal(mkdir(journal, 0700), 0);
	/* Ids "." and ".." are valid job ids: the "job-" prefix kept them
	 * file names. */
	write_text(journal, "job-..", "body");
	journal_remove(&sp, "..");
	assert_false(exists(journal, "job-.."));
	/* Removing what is not there is quiet. */
	journal_remove(&sp, "..");
	spool_close(&sp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_seen_add_has_reopen, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_seen_prune, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_seen_damaged_file, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_seen_unwritable, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_seen_record_fails_closed, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_spool_put_reopen_ack, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_spool_seq_survives_empty, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_seen_prune_shrinks, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_spool_damaged_file, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_spool_refusals, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_journal_runs, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_journal_torn, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_seen_group_commit, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_spool_stage_sync, dir_setup,
		    dir_teardown),
		cmocka_unit_test_setup_teardown(test_journal_remove_legacy, dir_setup,
		    dir_teardown),
	};

	log_init("test_agent_state", LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
