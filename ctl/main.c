/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - muster: global options, configuration, the MQTT session, and
 * the command table.
 */
#include "ctl.h"
#include "persist.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

/* Leave without tearing Paho down (see the end of main()); not when a
 * sanitizer wants to check the teardown. */
#if defined(__SANITIZE_ADDRESS__)
#define FAST_EXIT	0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FAST_EXIT	0
#endif
#endif
#ifndef FAST_EXIT
#define FAST_EXIT	1
#endif

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: muster [global options] COMMAND [options] [args]\n"
	    "\n"
	    "commands:\n"
	    "  run [-H HOST]... [-g GROUP]... [-a] MODULE [key=value | key:=JSON ...]\n"
	    "                      sign and send a job, wait for and show the results;\n"
	    "                      values are typed (true/false, integers, else text),\n"
	    "                      key:=JSON takes any JSON, key:=@FILE a JSON file\n"
	    "  ping, version       the same targeting, built-in kinds\n"
	    "                      -F 'FACT OP VALUE' (repeatable, with run, ping,\n"
	    "                      version, update, hosts): only hosts whose facts\n"
	    "                      match (OP: = != < <= > >= ~ has); alone: -a\n"
	    "  cancel -H HOST JOB  stop a running job\n"
	    "  hosts [-F FILTER]... [--json]   every host's retained status\n"
	    "  facts HOST [--json] a host's facts (retained, host-signed)\n"
	    "  watch [--job ID] [--host H] [--json]   the live result stream\n"
	    "  history [--host H] [--job J] [--since DUR] [--json]\n"
	    "                      archived results from muster-server ([server] url)\n"
	    "  retry JOB --failed | --missing | --not-pass\n"
	    "                      send a job again to the hosts that failed it or did\n"
	    "                      not answer (muster-server, or --json output on stdin)\n"
	    "  keygen DIR [NAME]   make an operator Ed25519 key pair (NAME.key, NAME.pub)\n"
	    "  module publish FILE.so [--version V]   sign and publish a module\n"
	    "  module list [--json]                   published modules and signers\n"
	    "  module show NAME    one module's manifest and artifact\n"
	    "  module retire NAME [--purge]           stop publishing a module\n"
	    "  module withdraw NAME VERSION           hosts drop and refuse a version\n"
	    "  update [TARGET...]  hosts check their release channel now (host/H,\n"
	    "                      group/G, all, or -H/-g/-a)\n"
	    "  release publish --channel C --version V --agent FILE --runner FILE\n"
	    "          [--rollout N]              sign and publish an agent release\n"
	    "  release rollout --channel C N      re-sign the release with rollout N%%\n"
	    "  release show [--channel C] [--json]  releases and hosts by version\n"
	    "\n"
	    "global options (override ~/.config/muster/muster.conf or $MUSTER_CONFIG):\n"
	    "  -c, --config FILE   configuration file\n"
	    "  -h, --help          this help; -V, --version: this program's version\n"
	    "      --check-config  read the configuration and the files it names\n"
	    "                      (TLS certificate and key, operator key), report\n"
	    "                      the first error, exit (no command needed)\n"
	    "      --broker URI    [broker] uri (ssl://host:8883; comma-separated for\n"
	    "                      fail-over)\n"
	    "      --ca FILE, --cert FILE, --key FILE   [broker] ca, cert, key: TLS files\n"
	    "      --protocol 5|3.1.1, --keepalive DUR, --topic-root NAME\n"
	    "      --operator-key FILE                   [operator] key: Ed25519 (PEM)\n"
	    "      --gnupg-home DIR, --fingerprint FPR   [publisher] gnupg_home, fingerprint\n"
	    "      --persist=DUR   [cli] persist: keep the broker session in a per-user\n"
	    "                      relay for later calls, until idle this long\n"
	    "      --persist=stop  end that relay (no command needed)\n"
	    "\n"
	    "exit codes: 0 all passed; 1 some result was not pass; 3 some expected\n"
	    "hosts did not answer (and none failed); 2 usage, config or connection error.\n"
	    "module: 0 done; 1 no such module; 2 usage, config, key or broker error.\n"
	    "Run `muster COMMAND --help` for a command's options.\n");
}

/* ---- what the core says (ctl.h hooks) ------------------------------- */

static void
cli_say(struct ctl *c, const char *msg)
{
	(void)c;
	fprintf(stderr, "muster: %s\n", msg);
}

static void
cli_result(struct ctl *c, const struct result *r)
{
	if (c->json)
		json_print_line(result_json(r));
}

static void
cli_event(struct ctl *c, const struct event *e)
{
	if (c->json) {
		json_print_line(event_json(e));
	} else if (e->event == EV_OUTPUT) {
		fprintf(stderr, "%s: ", e->host);
		term_put(stderr, e->text.ptr, e->text.len, WIRE_MAX_STR);
		fputc('\n', stderr);
	} else if (e->event == EV_PROGRESS) {
		fprintf(stderr, "%s: %u%%\n", e->host, e->pct);
	}
}

/* --json shows each forged message as it comes. */
static void
cli_forged(struct ctl *c, const char *topic, const char *reason)
{
	if (c->json)
		json_print_line(json_pack("{s:s, s:o, s:o}", "type", "forged",
		    "topic", json_text(topic, strlen(topic), NULL),
		    "reason", json_text(reason, strlen(reason), NULL)));
}

void
cli_hooks(struct ctl *c)
{
	c->say = cli_say;
	c->on_result = cli_result;
	c->on_event = cli_event;
	c->on_forged = cli_forged;
}

/* The human line under a report; nothing when all was genuine. */
void
forged_report(const struct ctl *c, FILE *f)
{
	if (c->nforged && !c->json)
		fprintf(f, "forged: %zu message%s (not counted)\n", c->nforged,
		    c->nforged == 1 ? "" : "s");
}

/* ---- configuration ---------------------------------------------------- */

/* --fingerprint: 40 or 64 hex digits, spaces allowed, kept uppercase (as
 * the config file's fingerprint). */
static int
set_fpr(char *dst, size_t size, const char *v)
{
	char out[65];
	size_t n = 0;

	for (; *v != '\0'; v++) {
		if (*v == ' ' || *v == '\t')
			continue;
		if (!isxdigit((unsigned char)*v) || n + 1 >= sizeof(out))
			return -1;
		out[n++] = (char)toupper((unsigned char)*v);
	}
	out[n] = '\0';
	if ((n != 40 && n != 64) || n >= size)
		return -1;
	memcpy(dst, out, n + 1);
	return 0;
}

static int
set_flag(struct ctl *c, int opt, const char *v)
{
	struct broker_config *b = &c->cfg.broker;
	char *dst = NULL;
	size_t len = CONF_PATH_MAX;
	uint64_t ms;

	switch (opt) {
	case 'B':
		return ctl_set_uris(b, v);
	case 'L':
		if (parse_duration_ms(v, &ms) != MU_OK || ms % 1000 != 0 ||
		    ms > 65535 * 1000)
			return -1;
		b->keepalive_ms = ms;
		return 0;
	case 'F':
		return set_fpr(c->cfg.fingerprint, sizeof(c->cfg.fingerprint), v);
	case 'G': dst = c->cfg.gnupg_home; break;
	case 'A': dst = b->ca; break;
	case 'E': dst = b->cert; break;
	case 'K': dst = b->key; break;
	case 'O': dst = c->cfg.operator_key; break;
	case 'R':
		if (!topic_root_valid(v))
			return -1;
		dst = b->topic_root, len = sizeof(b->topic_root);
		break;
	case 'Y':
		if (parse_duration_ms(v, &ms) != MU_OK || ms > 7ULL * 24 * 3600 * 1000)
			return -1;
		c->cfg.persist_ms = ms;
		return 0;
	case 'P':
		if (strcmp(v, "5") != 0 && strcmp(v, "3.1.1") != 0)
			return -1;
		b->protocol = v[0] == '5' ? 5 : 4;
		return 0;
	}
	if (dst == NULL || v[0] == '\0' || strlen(v) >= len)
		return -1;
	snprintf(dst, len, "%s", v);
	return 0;
}

/* ---- commands --------------------------------------------------------- */

static int
cmd_keygen(struct ctl *c, int argc, char **argv)
{
	const char *name = argc > 2 ? argv[2] : "operator";
	struct mu_err err;

	(void)c;
	if (argc < 2 || argc > 3 || argv[1][0] == '-' || (argc == 3 && argv[2][0] == '-')) {
		bool help = argc == 2 && (strcmp(argv[1], "--help") == 0 ||
		    strcmp(argv[1], "-h") == 0);

		fprintf(help ? stdout : stderr, "usage: muster keygen DIR [NAME]\n"
		    "  writes DIR/NAME.key (private, 0600) and DIR/NAME.pub (NAME: default\n"
		    "  \"operator\"; DIR is made if missing); copy the .pub into each\n"
		    "  agent's [trust] operators folder and reload the agent (SIGHUP)\n");
		return help ? EXIT_OK : EXIT_USAGE;
	}
	if (mkdir(argv[1], 0700) == -1 && errno != EEXIST) {
		fprintf(stderr, "muster: %s: %s\n", argv[1], strerror(errno));
		return EXIT_USAGE;
	}
	if (sign_keygen(argv[1], name, &err) != MU_OK) {
		fprintf(stderr, "muster: %s\n", err.msg);
		return 1;
	}
	printf("%s/%s.key\n%s/%s.pub\n", argv[1], name, argv[1], name);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct ctl *, int, char **);
} commands[] = {
	{ "run", cmd_run }, { "ping", cmd_run }, { "version", cmd_run },
	{ "update", cmd_run }, { "release", cmd_release },
	{ "cancel", cmd_cancel }, { "hosts", cmd_hosts }, { "facts", cmd_facts },
	{ "watch", cmd_watch },
	{ "keygen", cmd_keygen }, { "module", cmd_module }, { "history", cmd_history },
	{ "retry", cmd_retry },
};

/*
 * Paho 1.3.12's MQTTAsync_destroy() sleeps in 100 ms steps until its
 * threads stop: most of the wall time of a `muster ping`.  A finished
 * command has nothing in flight (its jobs are acknowledged, it publishes
 * nothing else), so it only says DISCONNECT (the broker then logs a clean
 * goodbye, not a TLS error), waits until Paho has closed its socket (at
 * most 200 ms) and leaves without the teardown.
 */
static void
leave_quickly(struct ctl *c)
{
	int fds[16], n = 0, i, open_fds;
	struct dirent *de;
	struct stat st;
	uint64_t deadline;
	DIR *d;

	if (!bus_connected(c->bus))
		return;
	if ((d = opendir("/proc/self/fd")) != NULL) {
		while ((de = readdir(d)) != NULL && n < 16) {
			char *end;
			long fd = strtol(de->d_name, &end, 10);

			if (*end == '\0' && end != de->d_name && fd > 2 && fd != dirfd(d) &&
			    fstat((int)fd, &st) == 0 && S_ISSOCK(st.st_mode))
				fds[n++] = (int)fd;
		}
		closedir(d);
	}
	if (bus_disconnect(c->bus, 0) != MU_OK)
		return;
	deadline = now_mono_ms() + 200;
	do {
		for (i = 0, open_fds = 0; i < n; i++)
			open_fds += fcntl(fds[i], F_GETFD) != -1;
		if (open_fds == 0)
			return;
		usleep(1000);
	} while (now_mono_ms() < deadline);
}

/* Does the command line after the command name ask for --help (before
 * a "--")? */
static bool
wants_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

static int
open_signals(struct ctl *c)
{
	sigset_t set;

	/* Blocked before Paho's threads exist, so only the signalfd sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	c->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return c->sigfd == -1 ? -1 : 0;
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "broker", required_argument, NULL, 'B' },
		{ "ca", required_argument, NULL, 'A' },
		{ "cert", required_argument, NULL, 'E' },
		{ "key", required_argument, NULL, 'K' },
		{ "operator-key", required_argument, NULL, 'O' },
		{ "topic-root", required_argument, NULL, 'R' },
		{ "protocol", required_argument, NULL, 'P' },
		{ "keepalive", required_argument, NULL, 'L' },
		{ "gnupg-home", required_argument, NULL, 'G' },
		{ "fingerprint", required_argument, NULL, 'F' },
		{ "persist", required_argument, NULL, 'Y' },
		{ "persist-serve", no_argument, NULL, 'Z' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct { int opt; const char *val; } flags[16];
	struct ctl c = { .sigfd = -1 };
	const char *conf = NULL, *conf_used = NULL;
	bool check = false, persist_stop = false, persist_serve = false;
	int o, nflags = 0, rc = EXIT_USAGE;
	size_t i;

	cli_hooks(&c);
	log_init("muster", LOG_WARNING);
	/* "+": stop at the command name; its options are its own. */
	while ((o = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		if (o == 'c')
			conf = optarg;
		else if (o == 'C')
			check = true;
		else if (o == 'Y' && strcmp(optarg, "stop") == 0)
			persist_stop = true;
		else if (o == 'Z')
			persist_serve = true;	/* internal: persist.h */
		else if (o == 'h') {
			usage(stdout);
			return 0;
		} else if (o == 'V') {
			/* The program's version; `muster version` asks hosts theirs. */
			printf("muster %s\n", MUSTER_VERSION);
			return 0;
		} else if (o == '?' || nflags == 16) {
			usage(stderr);
			return EXIT_USAGE;
		} else
			flags[nflags].opt = o, flags[nflags++].val = optarg;
	}
	if (optind >= argc && !check && !persist_stop && !persist_serve) {
		usage(stderr);
		return EXIT_USAGE;
	}
	/* `muster COMMAND --help` works whatever state the config is in. */
	if ((check || !wants_help(argc - optind, argv + optind)) &&
	    ctl_load_config(&c, conf, &conf_used) != 0)
		return EXIT_USAGE;
	for (o = 0; o < nflags; o++)
		if (set_flag(&c, flags[o].opt, flags[o].val) != 0) {
			fprintf(stderr, "muster: bad value '%s'\n", flags[o].val);
			return EXIT_USAGE;
		}
	if (check) {
		if (optind < argc) {
			fprintf(stderr, "muster: --check-config takes no command\n");
			return EXIT_USAGE;
		}
		rc = ctl_check_config(&c, conf_used);
		sign_key_free(c.key);
		return rc;
	}
	if (persist_stop)
		return ctl_persist_stop(&c);
	snprintf(c.root, sizeof(c.root), "%s", c.cfg.broker.topic_root);
	if (open_signals(&c) != 0) {
		perror("muster: signalfd");
		return EXIT_USAGE;
	}
	if (persist_serve) {
		rc = ctl_persist_serve(&c);
		close(c.sigfd);
		return rc;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		fprintf(stderr, "muster: unknown command '%s'\n", argv[optind]);
		usage(stderr);
	} else {
		int cargc = argc - optind;
		char **cargv = argv + optind;

		optind = 0;	/* glibc: re-initialise getopt for the command */
		rc = commands[i].fn(&c, cargc, cargv);
	}
	if (FAST_EXIT && c.bus) {
		fflush(stdout);
		fflush(stderr);
		leave_quickly(&c);
		_exit(rc);
	}
	bus_free(c.bus);
	sign_key_free(c.key);
	hostsig_verifier_free(c.hv);
	close(c.sigfd);
	return rc;
}
