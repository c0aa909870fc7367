/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/log.c: when lines carry a timestamp.  stderr is
 * pointed at a temporary file (created and removed here) so that the
 * JOURNAL_STREAM check has a real device and inode to compare.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static char path[] = "/tmp/muster-test-log-XXXXXX";

/* What stderr got since the last call (the file is emptied). */
static void
take(char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_int_equal(ftruncate(STDERR_FILENO, 0), 0);
	assert_int_equal(lseek(STDERR_FILENO, 0, SEEK_SET), 0);
}

static int
setup(void **state)
{
	int fd = mkstemp(path);

	(void)state;
	if (fd == -1 || dup2(fd, STDERR_FILENO) == -1)
		return -1;
	close(fd);
	log_init("test_log", LOG_INFO);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void
test_journal_stream(void **state)
{
	struct stat st;
	char v[64];

	(void)state;
	unsetenv("JOURNAL_STREAM");
	assert_false(log_to_journal());
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(v, sizeof(v), "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	assert_true(log_to_journal());
	/* Another stream than stderr (systemd's, then redirected). */
	snprintf(v, sizeof(v), "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino + 1);
	setenv("JOURNAL_STREAM", v, 1);
	assert_false(log_to_journal());
	snprintf(v, sizeof(v), "%ju:%jux", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	assert_false(log_to_journal());
	setenv("JOURNAL_STREAM", "", 1);
	assert_false(log_to_journal());
	unsetenv("JOURNAL_STREAM");
}

static void
test_timestamps(void **state)
{
	char buf[512];
	regex_t re;

	(void)state;
	log_timestamps(false);
	log_info("plain %d", 1);
	take(buf, sizeof(buf));
	assert_string_equal(buf, "<6>test_log: plain 1\n");

	log_timestamps(true);
	log_warnx("stamped %d", 2);
	take(buf, sizeof(buf));
	assert_int_equal(regcomp(&re, "^<4>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
	    "[0-9]{2}\\.[0-9]{3}Z test_log: stamped 2\n$", REG_EXTENDED), 0);
	assert_int_equal(regexec(&re, buf, 0, NULL, 0), 0);
	regfree(&re);
	log_timestamps(false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal_stream),
		cmocka_unit_test(test_timestamps),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
