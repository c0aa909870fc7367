/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - muster-runner's command line: pick a role (runner.h).
 */
#include "runner.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: muster-runner [--output-limit BYTES] [--no-net WHY]\n"
	    "         (as musterd starts it: job on stdin, events on fd 3, module on fd 4)\n"
	    "       muster-runner --describe FILE.so\n"
	    "       muster-runner --run FILE.so [--json] [--output-limit BYTES]\n"
	    "                     [--timeout DURATION] [--no-confine]\n"
	    "                     [key=value | key:=JSON | key:=@FILE ...]\n"
	    "       muster-runner --version | --help\n");
}

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("muster-runner: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	return RUNNER_EXIT_USAGE;
}

static int
opt_size(const char *arg, struct runner_opts *o)
{
	uint64_t n;

	if (parse_size(arg, &n) != MU_OK)
		return usage_error("bad --output-limit '%s' (a size: 65536, 64K, 1M)", arg);
	/* Clamped, not refused: a large limit in agent.conf must not fail
	 * every job. */
	o->output_limit = n > RUNNER_OUTPUT_MAX ? RUNNER_OUTPUT_MAX : (size_t)n;
	return MU_OK;
}

static int
opt_timeout(const char *arg, struct runner_opts *o)
{
	if (parse_duration_ms(arg, &o->timeout_ms) != MU_OK)
		return usage_error("bad --timeout '%s' (a duration: 500ms, 10s, 2m)", arg);
	return MU_OK;
}

/* What goes with what. */
static int
opts_check(const struct runner_opts *o)
{
	if (o->describe && o->run)
		return usage_error("%s", "--describe and --run do not go together");
	if (o->nargs > 0 && o->run == NULL)
		return usage_error("unexpected argument '%s' (arguments go with --run)",
		    o->args[0]);
	if (o->no_net && (o->run || o->describe))
		return usage_error("%s", "--no-net is musterd's (--run and --describe "
		    "follow the module's own declaration)");
	if (o->no_confine && o->run == NULL)
		return usage_error("%s", "--no-confine goes with --run");
	if (o->json && o->run == NULL)
		return usage_error("%s", "--json goes with --run");
	if (o->timeout_ms && o->run == NULL)
		return usage_error("%s", "--timeout goes with --run (musterd times out "
		    "the runner itself)");
	return MU_OK;
}

static int
opts_parse(int argc, char **argv, struct runner_opts *o, bool *done)
{
	static const struct option longopts[] = {
		{ "describe", required_argument, NULL, 'd' },
		{ "run", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "output-limit", required_argument, NULL, 'o' },
		{ "timeout", required_argument, NULL, 't' },
		{ "no-net", required_argument, NULL, 'N' },
		{ "no-confine", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, rc = MU_OK;

	memset(o, 0, sizeof(*o));
	o->output_limit = RUNNER_OUTPUT_DEFAULT;
	*done = false;
	opterr = 0;
	while (rc == MU_OK && (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o->describe = optarg;
			break;
		case 'r':
			o->run = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'o':
			rc = opt_size(optarg, o);
			break;
		case 't':
			rc = opt_timeout(optarg, o);
			break;
		case 'N':
			o->no_net = optarg;
			break;
		case 'n':
			o->no_confine = true;
			break;
		case 'h':
			usage(stdout);
			*done = true;
			return MU_OK;
		case 'V':
			printf("muster-runner %s (module ABI %d)\n", MUSTER_VERSION, MUSTER_ABI);
			*done = true;
			return MU_OK;
		default:
			return usage_error("unknown or incomplete option '%s'",
			    argv[optind - 1]);
		}
	}
	if (rc != MU_OK)
		return rc;
	o->nargs = argc - optind;
	o->args = argv + optind;
	return opts_check(o);
}

int
main(int argc, char **argv)
{
	struct runner_opts o;
	bool done;
	int rc;

	log_init("muster-runner", LOG_INFO);
	if ((rc = opts_parse(argc, argv, &o, &done)) != MU_OK || done)
		return rc;
	if (o.describe)
		return describe_main(&o);
	if (o.run)
		return local_main(&o);
	return runner_main(&o);
}
