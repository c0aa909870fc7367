/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h - logging to stderr with syslog priority prefixes.
 *
 * Lines look like "<6>musterd: connected to ssl://broker:8883"; journald and
 * systemd read the "<N>" prefix as the priority, so levels survive without
 * a syslog connection.  A daemon whose stderr is not the journal turns on
 * timestamps: "<6>2026-01-31T12:00:00.123Z musterd: ..." (UTC); journald
 * stamps lines itself.  The state is one level and one program name, set
 * once at start-up (and on SIGHUP) by the single thread that logs; nothing
 * is allocated.
 */
#ifndef MUSTER_LOG_H
#define MUSTER_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

/* Set the program name shown on each line and the most verbose priority
 * that is still written (LOG_ERR .. LOG_DEBUG). */
void log_init(const char *prog, int level);
void log_set_level(int level);

/* True when stderr is the stream systemd's JOURNAL_STREAM names. */
bool log_to_journal(void);
/* Prefix each line with the time (ISO 8601, UTC, milliseconds). */
void log_timestamps(bool on);

/* Parse "error", "warning", "notice", "info", "debug" (or 3..7); -1 if bad. */
int log_level_parse(const char *s);

void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int prio, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_err(...)	log_msg(LOG_ERR, __VA_ARGS__)
#define log_warnx(...)	log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)	log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_DEBUG, __VA_ARGS__)

/* Log with strerror(errno) appended, at LOG_WARNING. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Log at LOG_CRIT with strerror(errno) appended, and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
