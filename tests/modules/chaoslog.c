/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chaoslog: records that it ran, then sleeps a little - for the chaos test
 * (tests/system/test_chaos.py), which checks from the record that no job
 * ran twice on a host.
 *
 *	log=DIR		folder of HOST/runs.log files (required): appends
 *			"<job> <host>\n" to its own host's, one O_APPEND
 *			write() per line
 *	job=ID		the job's id (the API does not tell a module its job;
 *			the test puts it in the signed arguments)
 *	sleep_ms=N	how long to sleep after the line is written (default 0)
 *	verdict=pass|fail (default pass)
 *
 * The host: a module is not told which host it runs on either, and a
 * group job carries the same arguments to every host, and a job's /proc
 * hides the agent's processes.  So log= names a folder with one folder
 * per host, HOST/runs.log in each, and each agent lets its jobs write only
 * its own ([limits] writable; every other mount is read-only for a job):
 * chaoslog appends to the one runs.log that takes the write, and that
 * folder's name is the host.  None ("?" in the summary) is an error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <muster/module.h>

/* Append line to the first DIR/<host>/runs.log that takes it; the host
 * into host.  -1 with errno (EROFS: none would) when none did. */
static int
append_own(const char *dir, const char *job, char *host, size_t size)
{
	char path[1024], line[256];
	struct dirent *e;
	int fd, n, err = ENOENT;
	DIR *d;

	snprintf(host, size, "?");
	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/runs.log", dir, e->d_name);
		if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)) == -1) {
			err = errno;
			continue;
		}
		n = snprintf(line, sizeof(line), "%s %s\n", job, e->d_name);
		if (n > 0 && (size_t)n < sizeof(line) && write(fd, line, (size_t)n) == n) {
			n = (int)strnlen(e->d_name, size - 1);
			memcpy(host, e->d_name, (size_t)n);
			host[n] = '\0';
			close(fd);
			closedir(d);
			return 0;
		}
		err = errno;
		close(fd);
	}
	closedir(d);
	errno = err;
	return -1;
}

static int
chaoslog_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	const char *log = api->arg_str(ctx, "log", NULL);
	const char *job = api->arg_str(ctx, "job", "?");
	const char *verdict = api->arg_str(ctx, "verdict", "pass");
	int64_t sleep_ms = api->arg_int(ctx, "sleep_ms", 0);
	char host[128];
	struct timespec ts;

	if (log == NULL) {
		api->reason(ctx, "no log argument");
		return MUSTER_ERROR;
	}
	if (append_own(log, job, host, sizeof(host)) == -1) {
		api->reason(ctx, "no %s/HOST/runs.log took the line: %s", log, strerror(errno));
		return MUSTER_ERROR;
	}
	api->data_str(ctx, "host", host);
	if (sleep_ms > 0) {
		ts.tv_sec = sleep_ms / 1000;
		ts.tv_nsec = (sleep_ms % 1000) * 1000000L;
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
	api->summary(ctx, "ran on %s", host);
	return strcmp(verdict, "fail") == 0 ? MUSTER_FAIL : MUSTER_PASS;
}
MUSTER_MODULE("chaoslog", "1.0.0", "Log each run with its host, then sleep", chaoslog_run);
