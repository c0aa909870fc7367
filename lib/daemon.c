/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.c - what musterd and muster-server set up alike as services
 * (daemon.h): options, signals, systemd's watchdog.
 */
#include "daemon.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>

#include <systemd/sd-daemon.h>

#include "log.h"

int
daemon_options(int argc, char **argv, const char *shortopts,
    const struct option *longopts, const struct daemon_options *o)
{
	bool check = false;
	int c;

	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			snprintf(o->conf_path, o->conf_path_size, "%s", optarg);
			break;
		case 'C':
			/* Checked after the loop: -c may come after it. */
			check = true;
			break;
		case 'V':
			printf("%s %s\n", o->name, o->version);
			return 0;
		case 'h':
			return o->usage(stdout, 0);
		case '?':
			return o->usage(stderr, DAEMON_EXIT_USAGE);
		default:
			if (o->take == NULL || o->take(c, optarg, o->ctx) != 0)
				return o->usage(stderr, DAEMON_EXIT_USAGE);
		}
	}
	if (optind != argc)
		return o->usage(stderr, DAEMON_EXIT_USAGE);
	return check ? o->check(o->conf_path) : DAEMON_RUN;
}

int
daemon_signals_open(struct loop *l, const int *signals, size_t n,
    loop_fd_cb *on_signal, void *arg, int *fd, struct mu_err *err)
{
	sigset_t set;
	size_t i;

	sigemptyset(&set);
	for (i = 0; i < n; i++)
		sigaddset(&set, signals[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		return mu_errf(err, MU_EIO, "sigprocmask: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	if ((*fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		return mu_errf(err, MU_EIO, "signalfd: %s", strerror(errno));
	loop_add_fd(l, *fd, POLLIN, on_signal, arg);
	return MU_OK;
}

bool
daemon_signal_stops(struct loop *l, uint32_t signo)
{
	if (signo != SIGTERM && signo != SIGINT)
		return false;
	log_notice("signal %u: stopping", signo);
	loop_stop(l);
	return true;
}

static void
watchdog_fired(struct loop *l, uint64_t id, void *arg)
{
	struct daemon_watchdog *w = arg;

	(void)id;
	if (w->starved == NULL || !*w->starved)
		sd_notify(0, "WATCHDOG=1");
	loop_add_timer(l, w->usec / 2000, watchdog_fired, w);
}

void
daemon_watchdog_start(struct loop *l, struct daemon_watchdog *w)
{
	if (sd_watchdog_enabled(0, &w->usec) > 0 && w->usec >= 2000)
		loop_add_timer(l, w->usec / 2000, watchdog_fired, w);
	else
		w->usec = 0;
}
