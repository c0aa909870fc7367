/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.h - the set-up musterd (agent/main.c) and muster-server
 * (server/main.c) share as services: the options both take (-c,
 * --check-config, --version, --help), signals delivered through a
 * signalfd on the event loop, and systemd's watchdog.
 *
 * Ownership: the caller owns every struct passed in; daemon_signals_open()
 * gives the caller the signalfd, which it closes.  A struct daemon_watchdog
 * must live as long as the loop it was started on (its timer points at it).
 */
#ifndef MUSTER_DAEMON_H
#define MUSTER_DAEMON_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "loop.h"

/* GNU conventions: --help prints the usage on stdout and exits 0; a usage
 * error prints it on stderr and exits 2. */
#define DAEMON_EXIT_USAGE	2
/* daemon_options(): no option ended the program; start the service. */
#define DAEMON_RUN		(-1)

struct daemon_options {
	const char *name;		/* "musterd": --version prints it */
	const char *version;
	int (*usage)(FILE *f, int rc);	/* prints the usage, returns rc */
	int (*check)(const char *path);	/* --check-config: its exit code */
	char *conf_path;		/* -c FILE goes here; holds the default */
	size_t conf_path_size;
	/* The program's own options: 0, or -1 for a usage error. */
	int (*take)(int o, const char *arg, void *ctx);
	void *ctx;
};

/*
 * getopt_long over argv with the caller's tables, which name -c/--config,
 * --check-config (val 'C'), -V/--version and -h/--help; those are handled
 * here, every other option goes to o->take.  DAEMON_RUN, or the exit code
 * of a run that ends here (--version, --help, --check-config, bad usage).
 */
int daemon_options(int argc, char **argv, const char *shortopts,
    const struct option *longopts, const struct daemon_options *o);

/*
 * Block signals (n of them), ignore SIGPIPE, and deliver them through a
 * signalfd that loop watches with on_signal.  Call before any thread starts
 * (Paho's, libmicrohttpd's): threads inherit the mask, so every signal
 * arrives through the signalfd.  *fd: the signalfd, owned by the caller.
 */
int daemon_signals_open(struct loop *l, const int *signals, size_t n,
    loop_fd_cb *on_signal, void *arg, int *fd, struct mu_err *err);
/* SIGTERM and SIGINT stop the loop (logged); true when signo was one. */
bool daemon_signal_stops(struct loop *l, uint32_t signo);

struct daemon_watchdog {
	uint64_t usec;		/* systemd's interval; 0: it asks for none */
	/* Borrowed, may be NULL: while true the watchdog is not fed, so that
	 * systemd restarts a service that cannot recover by itself. */
	const bool *starved;
};
/* Feed systemd's watchdog at half its interval if it asks for one (and
 * that is at least 2 ms); w->usec is 0 afterwards when it is not fed. */
void daemon_watchdog_start(struct loop *l, struct daemon_watchdog *w);

#endif
