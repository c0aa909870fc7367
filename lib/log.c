/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The only mutable state of the log: written at start-up and on reload by
 * the main thread, read by whoever logs. */
static struct {
	const char *prog;
	int level;
	bool stamp;
} log_state = { "muster", LOG_INFO, false };

void
log_init(const char *prog, int level)
{
	log_state.prog = prog;
	log_set_level(level);
}

void
log_set_level(int level)
{
	if (level < LOG_EMERG)
		level = LOG_EMERG;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	log_state.level = level;
}

/*
 * systemd sets JOURNAL_STREAM=DEV:INODE (decimal) for a service whose
 * stderr goes to the journal; a stderr that was redirected since (a shell
 * around the daemon, a test harness) has another device or inode, and
 * then the variable says nothing (systemd.exec(5)).
 */
bool
log_to_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	struct stat st;
	char end;

	if (v == NULL || sscanf(v, "%ju:%ju%c", &dev, &ino, &end) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) == -1)
		return false;
	return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

void
log_timestamps(bool on)
{
	log_state.stamp = on;
}

int
log_level_parse(const char *s)
{
	static const struct { const char *name; int level; } names[] = {
		{ "error", LOG_ERR }, { "err", LOG_ERR },
		{ "warning", LOG_WARNING }, { "warn", LOG_WARNING },
		{ "notice", LOG_NOTICE }, { "info", LOG_INFO },
		{ "debug", LOG_DEBUG },
	};
	size_t i;

	if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
		return s[0] - '0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].level;
	return -1;
}

void
log_vmsg(int prio, const char *fmt, va_list ap)
{
	char line[1024], stamp[64] = "";
	struct timespec ts;
	struct tm tm;
	size_t k;
	int n;

	if (prio > log_state.level)
		return;
	/* After the "<N>", which stays first for whatever reads priorities. */
	if (log_state.stamp && clock_gettime(CLOCK_REALTIME, &ts) == 0 &&
	    gmtime_r(&ts.tv_sec, &tm) != NULL &&
	    (k = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm)) > 0)
		snprintf(stamp + k, sizeof(stamp) - k, ".%03dZ ",
		    (int)(ts.tv_nsec / 1000000) % 1000);
	n = snprintf(line, sizeof(line), "<%d>%s%s: ", prio, stamp, log_state.prog);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	/* One write per line keeps lines whole when several processes share
	 * stderr (the agent and its runners). */
	fprintf(stderr, "%s\n", line);
}

void
log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(prio, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 3, 0)))
log_errno(int prio, int saved, const char *fmt, va_list ap)
{
	char buf[768];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	log_msg(prio, "%s: %s", buf, strerror(saved));
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_errno(LOG_WARNING, saved, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_errno(LOG_CRIT, saved, fmt, ap);
	va_end(ap);
	exit(1);
}
