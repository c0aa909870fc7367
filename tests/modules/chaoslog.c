/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chaoslog: records that it ran, then sleeps a little - for the chaos test
 * (tests/system/test_chaos.py), which checks from the record that no job
 * ran twice on a host.
 *
 *	log=PATH	file to append "<job> <host>\n" to (required); one
 *			O_APPEND write() per line, so lines from runners of
 *			many agents never interleave
 *	job=ID		the job's id (the API does not tell a module its job;
 *			the test puts it in the signed arguments)
 *	sleep_ms=N	how long to sleep after the line is written (default 0)
 *	verdict=pass|fail (default pass)
 *
 * The host: a module is not told which host it runs on either, and a
 * group job carries the same arguments to every host.  chaoslog finds it
 * in the agent's configuration: it walks up from its parent process (the
 * agent that spawned the runner) to the first ancestor started with
 * "-c FILE" / "--config FILE" and reads the [agent] section's host key.
 * A host it cannot find is logged as "?" (the test fails on it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <muster/module.h>

#define MAX_UP	4

/* The config path in /proc/PID/cmdline, or 0. */
static int
conf_of(pid_t pid, char *out, size_t size)
{
	char path[64], buf[4096];
	ssize_t n;
	size_t i;
	int fd;
	const char *prev = NULL;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (i = 0; i < (size_t)n; i += strlen(buf + i) + 1) {
		const char *arg = buf + i;

		if (prev && (strcmp(prev, "-c") == 0 || strcmp(prev, "--config") == 0)) {
			snprintf(out, size, "%s", arg);
			return 1;
		}
		if (strncmp(arg, "--config=", 9) == 0) {
			snprintf(out, size, "%s", arg + 9);
			return 1;
		}
		prev = arg;
	}
	return 0;
}

static pid_t
parent_of(pid_t pid)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd, ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return 0;
	return (pid_t)ppid;
}

/* host = X in [agent] of an INI file. */
static int
host_in(const char *conf, char *out, size_t size)
{
	char line[512], key[64], val[128];
	int in_agent = 0, found = 0;
	FILE *f;

	if ((f = fopen(conf, "re")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '[') {
			in_agent = strncmp(line, "[agent]", 7) == 0;
			continue;
		}
		if (in_agent && sscanf(line, " %63[^= \t] = %127s", key, val) == 2 &&
		    strcmp(key, "host") == 0) {
			snprintf(out, size, "%s", val);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

static void
find_host(char *out, size_t size)
{
	char conf[1024], self[32];
	ssize_t n = readlink("/proc/self", self, sizeof(self) - 1);
	pid_t pid;
	int i;

	/* Not getppid(): a process in a runner's PID namespace has its
	 * parent outside it (0).  /proc is the host's, so
	 * /proc/self and the ppid in its stat are the host's numbers. */
	self[n > 0 ? n : 0] = '\0';
	pid = n > 0 ? parent_of((pid_t)atoi(self)) : getppid();

	snprintf(out, size, "?");
	for (i = 0; i < MAX_UP && pid > 1; i++, pid = parent_of(pid))
		if (conf_of(pid, conf, sizeof(conf)))
			break;
	if (i < MAX_UP && pid > 1)
		host_in(conf, out, size);
}

static int
chaoslog_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	const char *log = api->arg_str(ctx, "log", NULL);
	const char *job = api->arg_str(ctx, "job", "?");
	const char *verdict = api->arg_str(ctx, "verdict", "pass");
	int64_t sleep_ms = api->arg_int(ctx, "sleep_ms", 0);
	char host[128], line[256];
	struct timespec ts;
	int fd, n;

	if (log == NULL) {
		api->reason(ctx, "no log argument");
		return MUSTER_ERROR;
	}
	find_host(host, sizeof(host));
	n = snprintf(line, sizeof(line), "%s %s\n", job, host);
	if (n <= 0 || (size_t)n >= sizeof(line)) {
		api->reason(ctx, "job id too long");
		return MUSTER_ERROR;
	}
	if ((fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666)) == -1) {
		api->reason(ctx, "open %s: %s", log, strerror(errno));
		return MUSTER_ERROR;
	}
	if (write(fd, line, (size_t)n) != n) {
		api->reason(ctx, "write %s: %s", log, strerror(errno));
		close(fd);
		return MUSTER_ERROR;
	}
	close(fd);
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
