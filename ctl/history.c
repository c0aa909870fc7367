/* SPDX-License-Identifier: Apache-2.0 */
/*
 * history.c - `muster history`: archived results from muster-server's
 * API (GET /api/results), newest first.
 *
 * The server speaks plain HTTP/1.1 on loopback or a trusted network (TLS
 * belongs to a proxy in front of it), and we need one GET: a small client
 * over a socket here costs less than a libcurl dependency for every
 * operator machine.  It is strict and bounded: http:// only, an optional
 * user:password@ for basic auth, one request with Connection: close, a
 * response of at most HISTORY_MAX_RESPONSE bytes, Content-Length or
 * chunked or read-to-close bodies, a timeout on every step.  The query's
 * values are validated names and durations, so they need no escaping.
 *
 * Ownership: everything is on the stack or freed before return; the JSON
 * is jansson's (decref'd).
 */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "loop.h"

#define HISTORY_MAX_RESPONSE	(32u << 20)
#define HISTORY_TIMEOUT_MS	15000

static void
usage(FILE *f)
{
	fprintf(f, "usage: muster history [--host H] [--job J] [--since DUR] [--limit N]\n"
	    "                      [--server URL] [--json]\n"
	    "  archived results from muster-server, newest first (default: the last 100);\n"
	    "  --server: http://[user:password@]host:port ([server] url in the config)\n"
	    "  --json: one JSON object per result\n"
	    "exit: 0 results shown (or none archived); 2 usage or server error\n");
}

static void
print_row(json_t *r)
{
	const char *job = json_string_value(json_object_get(r, "job"));
	const char *host = json_string_value(json_object_get(r, "host"));
	const char *status = json_string_value(json_object_get(r, "status"));
	const char *module = json_string_value(json_object_get(r, "module"));
	const char *kind = json_string_value(json_object_get(r, "kind"));
	const char *summary = json_string_value(json_object_get(r, "summary"));
	const char *reason = json_string_value(json_object_get(r, "reason"));
	json_int_t at = json_integer_value(json_object_get(r, "received_at"));
	char when[32];
	time_t t = (time_t)(at / 1000);
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(when, sizeof(when), "?");
	printf("%-19s  ", when);
	/* Host-supplied text goes through term_put(): no escape sequences. */
	term_put(stdout, host ? host : "", host ? strlen(host) : 0, 64);
	printf("  ");
	term_put(stdout, job ? job : "", job ? strlen(job) : 0, 64);
	printf("  %-11s ", status ? status : "?");
	module = module ? module : kind ? kind : "";
	term_put(stdout, module, strlen(module), 64);
	if (summary || reason) {
		printf("  ");
		term_put(stdout, summary ? summary : reason, strlen(summary ? summary : reason), 200);
	}
	printf("\n");
}

static int
history_show(struct ctl *c, const char *body)
{
	json_error_t jerr;
	json_t *root, *res, *r;
	size_t i;

	if ((root = json_loads(body, 0, &jerr)) == NULL ||
	    !json_is_array(res = json_object_get(root, "results"))) {
		fprintf(stderr, "muster: history: the server's answer is not what was expected\n");
		json_decref(root);
		return EXIT_USAGE;
	}
	json_array_foreach(res, i, r) {
		if (c->json)
			json_print_line(json_incref(r));
		else
			print_row(r);
	}
	if (!c->json && json_array_size(res) == 0)
		printf("no results archived\n");
	json_decref(root);
	return EXIT_OK;
}

/* Build "/api/results?..." from validated values only. */
static int
history_path(char *buf, size_t size, const char *host, const char *job, const char *since,
    long limit)
{
	uint64_t ms;
	int n;

	if ((host && !name_valid(host)) || (job && !jobid_valid(job)) ||
	    (since && (strlen(since) > 24 || parse_duration_ms(since, &ms) != MU_OK)) ||
	    limit < 1 || limit > 1000)
		return -1;
	n = snprintf(buf, size, "/api/results?limit=%ld%s%s%s%s%s%s", limit,
	    host ? "&host=" : "", host ? host : "", job ? "&job=" : "", job ? job : "",
	    since ? "&since=" : "", since ? since : "");
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int
cmd_history(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "job", required_argument, NULL, 'j' },
		{ "since", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'n' },
		{ "server", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = NULL, *job = NULL, *since = NULL, *server = c->cfg.server_url;
	char path[512], *body = NULL, *end;
	struct url u;
	long limit = 100;
	int o, status, rc;

	while ((o = getopt_long(argc, argv, "H:j:s:n:h", opts, NULL)) != -1) {
		switch (o) {
		case 'H': host = optarg; break;
		case 'j': job = optarg; break;
		case 's': since = optarg; break;
		case 'S': server = optarg; break;
		case 'J': c->json = true; break;
		case 'n':
			limit = strtol(optarg, &end, 10);
			if (*end != '\0')
				limit = 0;
			break;
		default:
			usage(o == 'h' ? stdout : stderr);
			return o == 'h' ? EXIT_OK : EXIT_USAGE;
		}
	}
	if (optind != argc || history_path(path, sizeof(path), host, job, since, limit) != 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (server[0] == '\0' || ctl_url_parse(server, &u) != 0) {
		fprintf(stderr, "muster: history: %s (want http://host:port in [server] url "
		    "or --server)\n", server[0] ? "bad server URL" : "no server URL");
		return EXIT_USAGE;
	}
	if (ctl_http_get(&u, path, HISTORY_TIMEOUT_MS, &body, &status) != 0) {
		fprintf(stderr, "muster: history: no answer from %s:%s\n", u.host, u.port);
		return EXIT_USAGE;
	}
	if (status != 200) {
		fprintf(stderr, "muster: history: the server answered %d%s\n", status,
		    status == 401 ? " (wrong or missing user:password@ in the URL)" : "");
		free(body);
		return EXIT_USAGE;
	}
	rc = history_show(c, body);
	free(body);
	return rc;
}
