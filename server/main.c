/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - muster-server: options, configuration, signals, the loop,
 * retention timer and sd_notify (the set-up it shares with musterd is in
 * lib/daemon.c).  The roles live in their own files
 * (server.h); a new role (the self-test handshake, design.md §5) is one more
 * open/close pair in server_open() and server_close().
 */
#include "server.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "log.h"

static int
usage(FILE *f, int rc)
{
	fprintf(f,
	    "usage: muster-server [-c FILE] [--check-config] [--version]\n"
	    "  -c, --config FILE   configuration (default " SERVER_CONF_DEFAULT ")\n"
	    "      --check-config  check the configuration and the files it names, as the\n"
	    "                      service's user ([server] user when run as root), exit\n"
	    "  -V, --version       print the version and exit\n"
	    "  -h, --help          print this help and exit\n");
	return rc;
}

/* ---- signals and timers ------------------------------------------------------ */

static void
on_signal(struct loop *l, int fd, short revents, void *arg)
{
	struct signalfd_siginfo si;

	(void)revents;
	(void)arg;
	while (read(fd, &si, sizeof(si)) == sizeof(si))
		daemon_signal_stops(l, si.ssi_signo);
}

static int
signals_open(struct server *s, struct mu_err *err)
{
	static const int signals[] = { SIGTERM, SIGINT, SIGHUP };

	return daemon_signals_open(s->loop, signals, sizeof(signals) / sizeof(signals[0]),
	    on_signal, s, &s->sigfd, err);
}

static void
prune_fired(struct loop *l, uint64_t id, void *arg)
{
	struct server *s = arg;
	uint64_t deleted = 0, size = 0, max_size = s->cfg.max_size;
	struct mu_err err;

	(void)id;
	ingest_flush(s);
	if (!archive_size_prunable(&s->arc))
		max_size = 0;
	if (archive_prune(&s->arc, now_wall_ms(), s->cfg.max_age_ms, max_size, &deleted,
	    &err) != MU_OK)
		log_err("retention: %s", err.msg);
	else if (deleted > 0)
		log_info("retention: %llu rows removed", (unsigned long long)deleted);
	if (s->arc.ops->size(s->arc.h, &size, &err) != MU_OK)
		log_warnx("archive size: %s", err.msg);
	pthread_mutex_lock(&s->lock);
	s->met.pruned += deleted;
	s->met.archive_bytes = size;
	pthread_mutex_unlock(&s->lock);
	loop_add_timer(l, s->cfg.prune_interval_ms, prune_fired, s);
}

/* ---- start and stop -------------------------------------------------------------- */

static int
server_open(struct server *s, struct mu_err *err)
{
	int rc;

	s->sigfd = -1;
	snprintf(s->root, sizeof(s->root), "%s", s->cfg.broker.topic_root);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->dblock, NULL);
	pthread_cond_init(&s->sse_cond, NULL);
	if ((s->loop = loop_new()) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	if ((rc = signals_open(s, err)) != MU_OK ||
	    (rc = archive_open(s->cfg.archive_url, true, &s->arc, err)) != MU_OK ||
	    (rc = archive_open(s->cfg.archive_url, false, &s->reader, err)) != MU_OK)
		return rc;
	if (!archive_size_prunable(&s->arc) && s->cfg.max_size > 0)
		log_notice("archive %s: max_size is not applied to PostgreSQL (max_age is)",
		    s->arc.ops->name);
	if ((rc = jobs_open(s, err)) != MU_OK ||
	    (rc = http_open(s, err)) != MU_OK ||
	    (rc = halt_open(s, err)) != MU_OK ||
	    (rc = ingest_open(s, err)) != MU_OK ||
	    (rc = selftest_open(s, err)) != MU_OK)
		return rc;
	return MU_OK;
}

/* Reverse order; safe after a partial server_open(). */
static void
server_close(struct server *s)
{
	if (s->loop != NULL) {
		selftest_close(s);
		ingest_close(s);
		halt_close(s);
	}
	http_close(s);
	jobs_close(s);
	archive_close(&s->reader);
	archive_close(&s->arc);
	metrics_free(&s->met);
	free(s->hosts);
	s->hosts = NULL;
	hostinfo_free(s);
	if (s->sigfd != -1)
		close(s->sigfd);
	loop_free(s->loop);
	s->loop = NULL;
	pthread_cond_destroy(&s->sse_cond);
	pthread_mutex_destroy(&s->dblock);
	pthread_mutex_destroy(&s->lock);
}

static int
server_main(struct server *s)
{
	struct mu_err err;

	if (server_open(s, &err) != MU_OK) {
		log_err("%s", err.msg);
		server_close(s);
		return 1;
	}
	log_notice("muster-server %s (%s) started: archive %s, http://%s:%d/",
	    SERVER_VERSION, s->cfg.name, s->arc.ops->name, s->cfg.listen, s->cfg.port);
	prune_fired(s->loop, 0, s);
	daemon_watchdog_start(s->loop, &s->watchdog);
	sd_notify(0, "READY=1");
	if (loop_run(s->loop) != 0)
		log_err("event loop failed: %s", strerror(errno));
	sd_notify(0, "STOPPING=1");
	server_close(s);
	log_notice("stopped");
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct server server;	/* the one server of this process */
	const struct daemon_options o = {
		.name = "muster-server", .version = SERVER_VERSION, .usage = usage,
		.check = check_config, .conf_path = server.conf_path,
		.conf_path_size = sizeof(server.conf_path),
	};
	struct mu_err err;
	int rc;

	snprintf(server.conf_path, sizeof(server.conf_path), "%s", SERVER_CONF_DEFAULT);
	if ((rc = daemon_options(argc, argv, "c:Vh", opts, &o)) != DAEMON_RUN)
		return rc;
	config_server_defaults(&server.cfg);
	if (config_server_load(&server.cfg, server.conf_path, &err) != MU_OK) {
		fprintf(stderr, "muster-server: %s\n", err.msg);
		return 1;
	}
	log_init("muster-server", server.cfg.log_level);
	log_timestamps(!log_to_journal());
	return server_main(&server);
}
