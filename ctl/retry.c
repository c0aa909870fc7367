/* SPDX-License-Identifier: Apache-2.0 */
/*
 * retry.c - `muster retry JOB --failed | --missing | --not-pass` (issue 24):
 * send the same job again (a new id; the same kind, module, args, filter
 * and timeout) to exactly the hosts that failed it, did not answer it, or
 * either, one -H target per host, in batches of at most RETRY_BATCH.
 *
 * The job and its hosts come from muster-server (GET /api/jobs/JOB, which
 * knows the job from its announce: API-24.md), or, without a server or
 * with --stdin, from the `muster run --json` output of the first run: its
 * result lines and its summary (the "job" object and "missing").  Then it
 * runs as `muster run` does (cmd_run, the same output and exit codes): a
 * retry is a new run, signed with this operator's key, not a replay.
 *
 *	--failed	answered with a status other than pass
 *	--missing	expected and not answered
 *	--not-pass	both
 *
 * Ownership: the JSON documents and the argv strings built for cmd_run are
 * freed before return.
 */
#include "ctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RETRY_BATCH	64		/* send.c's MAX_TARGETS */
#define RETRY_MAX_HOSTS	50000		/* an announce's bound */
#define RETRY_MAX_INPUT	(64u << 20)
#define RETRY_TIMEOUT_MS 15000

enum { WANT_FAILED = 1, WANT_MISSING = 2 };

struct retry {
	const char *job;
	int want;
	bool use_stdin, json;
	const char *server;
	const char *wait, *ttl;
	/* what to send: from the server or the run's JSON */
	const char *kind, *module;
	json_t *args;			/* object or NULL, borrowed */
	char *filters[FILTER_MAX];	/* owned texts */
	size_t nfilters;
	json_int_t timeout_ms;		/* 0: the agent's default */
	json_t *hosts;			/* owned: array of names, sorted, unique */
};

static void
retry_usage(FILE *f)
{
	fprintf(f,
	    "usage: muster retry JOB (--failed | --missing | --not-pass)\n"
	    "                    [--server URL | --stdin] [--wait DUR] [--ttl DUR] [--json]\n"
	    "  send JOB again (a new id, the same kind, module, arguments, filter and\n"
	    "  timeout) to exactly the hosts that failed it (--failed: answered, not\n"
	    "  pass), did not answer (--missing: expected, no answer) or either\n"
	    "  (--not-pass); the job and its hosts from muster-server ([server] url or\n"
	    "  --server: GET /api/jobs/JOB), or from the `muster run --json` output of\n"
	    "  the first run on stdin (--stdin, or without a server)\n"
	    "exit: as muster run; 0 also when no host is to be retried\n");
}

/* ---- the job and its hosts ---------------------------------------------- */

static int
host_add(json_t *hosts, const char *name)
{
	size_t i;

	if (name == NULL || !name_valid(name))
		return -1;
	for (i = 0; i < json_array_size(hosts); i++)
		if (strcmp(json_string_value(json_array_get(hosts, i)), name) == 0)
			return 0;
	if (json_array_size(hosts) >= RETRY_MAX_HOSTS)
		return -1;
	return json_array_append_new(hosts, json_string(name));
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One filter predicate [fact, op, value] as its -F text. */
static int
filter_text(json_t *pred, char **out)
{
	const char *fact, *op;
	json_t *v;
	int n = -1;

	*out = NULL;
	if (!json_is_array(pred) || json_array_size(pred) != 3 ||
	    (fact = json_string_value(json_array_get(pred, 0))) == NULL ||
	    (op = json_string_value(json_array_get(pred, 1))) == NULL)
		return -1;
	v = json_array_get(pred, 2);
	if (json_is_string(v)) {
		/* Quoted: a string as written, whatever it looks like; the
		 * text form has no escapes, so a quote cannot be in it. */
		if (strchr(json_string_value(v), '"') != NULL)
			return -1;
		n = asprintf(out, "%s %s \"%s\"", fact, op, json_string_value(v));
	} else if (json_is_integer(v))
		n = asprintf(out, "%s %s %" JSON_INTEGER_FORMAT, fact, op, json_integer_value(v));
	else if (json_is_boolean(v))
		n = asprintf(out, "%s %s %s", fact, op, json_is_true(v) ? "true" : "false");
	if (n < 0) {
		*out = NULL;
		return -1;
	}
	return 0;
}

static int
take_filters(struct retry *r, json_t *filter, bool texts)
{
	json_t *p;
	size_t i;

	if (filter == NULL || json_is_null(filter))
		return 0;
	if (!json_is_array(filter) || json_array_size(filter) > FILTER_MAX)
		return -1;
	json_array_foreach(filter, i, p) {
		if (texts) {
			if (!json_is_string(p) ||
			    (r->filters[i] = strdup(json_string_value(p))) == NULL)
				return -1;
		} else if (filter_text(p, &r->filters[i]) != 0)
			return -1;
		r->nfilters = i + 1;
	}
	return 0;
}

/* kind, module, args, timeout_ms of a job object (summary "job" or the
 * server's "announce"); the strings are borrowed from doc. */
static int
take_job(struct retry *r, json_t *j)
{
	json_t *t;

	if (!json_is_object(j) || (r->kind = json_string_value(json_object_get(j, "kind"))) == NULL)
		return -1;
	if (strcmp(r->kind, "run") != 0 && strcmp(r->kind, "ping") != 0 &&
	    strcmp(r->kind, "version") != 0 && strcmp(r->kind, "update") != 0)
		return -1;
	r->module = json_string_value(json_object_get(j, "module"));
	if (strcmp(r->kind, "run") == 0 && (r->module == NULL || !name_valid(r->module)))
		return -1;
	r->args = json_object_get(j, "args");
	if (r->args != NULL && !json_is_object(r->args))
		r->args = NULL;
	t = json_object_get(j, "timeout_ms");
	r->timeout_ms = json_is_integer(t) && json_integer_value(t) > 0 ? json_integer_value(t) : 0;
	return 0;
}

static bool
failed(const char *status)
{
	return status != NULL && strcmp(status, "pass") != 0;
}

/* GET /api/jobs/JOB.  The job's kind, module and the rest come from its
 * announce: without one the server knows results, not the job. */
static int
from_server(struct ctl *c, struct retry *r, json_t **doc)
{
	char path[JOBID_MAX_LEN + 16], *body = NULL;
	json_t *root, *a, *o;
	struct url u;
	size_t i;
	int status;

	(void)c;
	if (ctl_url_parse(r->server, &u) != 0) {
		fprintf(stderr, "muster: retry: bad server URL (want http://host:port)\n");
		return EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/api/jobs/%s", r->job);
	if (ctl_http_get(&u, path, RETRY_TIMEOUT_MS, &body, &status) != 0) {
		fprintf(stderr, "muster: retry: muster-server does not answer\n");
		return EXIT_USAGE;
	}
	root = json_loads(body, 0, NULL);
	free(body);
	if (status == 404) {
		fprintf(stderr, "muster: retry: muster-server knows no job %s\n", r->job);
		json_decref(root);
		return EXIT_USAGE;
	}
	*doc = root;
	if (status != 200 || !json_is_object(root)) {
		fprintf(stderr, "muster: retry: muster-server answered %d\n", status);
		return EXIT_USAGE;
	}
	a = json_object_get(root, "announce");
	if (!json_is_object(a)) {
		fprintf(stderr, "muster: retry: muster-server has no announce of %s, so not "
		    "the job itself (retry from its `muster run --json` output: --stdin)\n", r->job);
		return EXIT_USAGE;
	}
	if (take_job(r, a) != 0 || take_filters(r, json_object_get(a, "filter"), false) != 0) {
		fprintf(stderr, "muster: retry: the server's announce of %s is not one to "
		    "send again\n", r->job);
		return EXIT_USAGE;
	}
	json_array_foreach(json_object_get(root, "results"), i, o)
		if ((r->want & WANT_FAILED) &&
		    failed(json_string_value(json_object_get(o, "status"))) &&
		    host_add(r->hosts, json_string_value(json_object_get(o, "host"))) != 0)
			return EXIT_USAGE;
	json_array_foreach(json_object_get(root, "missing"), i, o)
		if ((r->want & WANT_MISSING) &&
		    host_add(r->hosts, json_string_value(json_object_get(o, "host"))) != 0)
			return EXIT_USAGE;
	return 0;
}

static bool
jobs_has(json_t *jobs, const char *id)
{
	json_t *v;
	size_t i;

	json_array_foreach(jobs, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), id) == 0)
			return true;
	return false;
}

/*
 * The first run's `--json` lines on stdin: its summary names JOB among its
 * jobs (one run with -H a -H b is two jobs, retried together) and carries
 * the job; result lines of those jobs say who failed, "missing" who did not
 * answer (hosts still running are not: they have the job).
 */
static int
from_stdin(struct retry *r, json_t **doc)
{
	json_t *lines = json_array(), *o, *sum = NULL, *v;
	char *line = NULL;
	size_t cap = 0, total = 0, i;
	ssize_t n;

	*doc = lines;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if ((total += (size_t)n) > RETRY_MAX_INPUT) {
			free(line);
			fprintf(stderr, "muster: retry: over %u bytes on stdin\n", RETRY_MAX_INPUT);
			return EXIT_USAGE;
		}
		if ((o = json_loads(line, 0, NULL)) == NULL)
			continue;	/* not a line of --json output */
		json_array_append_new(lines, o);
		if (json_is_object(o) && json_is_string(v = json_object_get(o, "type")) &&
		    strcmp(json_string_value(v), "summary") == 0 &&
		    jobs_has(json_object_get(o, "jobs"), r->job))
			sum = o;
	}
	free(line);
	if (sum == NULL) {
		fprintf(stderr, "muster: retry: no summary of job %s on stdin (give the "
		    "output of muster run --json)\n", r->job);
		return EXIT_USAGE;
	}
	if (take_job(r, json_object_get(sum, "job")) != 0 ||
	    take_filters(r, json_object_get(json_object_get(sum, "job"), "filter"), true) != 0) {
		fprintf(stderr, "muster: retry: the summary of %s does not say what the job "
		    "was (its \"job\" object)\n", r->job);
		return EXIT_USAGE;
	}
	json_array_foreach(lines, i, o) {
		const char *type = json_string_value(json_object_get(o, "type"));

		if ((r->want & WANT_FAILED) && type != NULL && strcmp(type, "result") == 0 &&
		    jobs_has(json_object_get(sum, "jobs"),
		    json_string_value(json_object_get(o, "job")) ?
		    json_string_value(json_object_get(o, "job")) : "") &&
		    failed(json_string_value(json_object_get(o, "status"))) &&
		    host_add(r->hosts, json_string_value(json_object_get(o, "host"))) != 0)
			return EXIT_USAGE;
	}
	json_array_foreach(json_object_get(sum, "missing"), i, v)
		if ((r->want & WANT_MISSING) && host_add(r->hosts, json_string_value(v)) != 0)
			return EXIT_USAGE;
	return 0;
}

/* ---- sending ----------------------------------------------------------------- */

struct argv_buf {
	char **v;
	int n, cap;
};

static int
arg_push(struct argv_buf *a, const char *s)
{
	char **nv;

	if (a->n + 1 >= a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		if ((nv = realloc(a->v, (size_t)a->cap * sizeof(*nv))) == NULL)
			return -1;
		a->v = nv;
	}
	if ((a->v[a->n] = strdup(s)) == NULL)
		return -1;
	a->v[++a->n] = NULL;
	return 0;
}

static void
arg_free(struct argv_buf *a)
{
	int i;

	for (i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

/* `muster KIND [options] -H h... [MODULE key:=JSON...]` for one batch. */
static int
batch_argv(const struct retry *r, size_t from, size_t to, struct argv_buf *a)
{
	char buf[64], *txt;
	const char *key;
	json_t *v;
	size_t i;
	int rc = 0;

	rc |= arg_push(a, r->kind);
	if (r->json)
		rc |= arg_push(a, "--json");
	if (r->wait != NULL)
		rc |= arg_push(a, "--wait") | arg_push(a, r->wait);
	if (r->ttl != NULL)
		rc |= arg_push(a, "--ttl") | arg_push(a, r->ttl);
	if (r->timeout_ms > 0 && strcmp(r->kind, "run") == 0) {
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT "ms", r->timeout_ms);
		rc |= arg_push(a, "--timeout") | arg_push(a, buf);
	}
	for (i = 0; i < r->nfilters; i++)
		rc |= arg_push(a, "-F") | arg_push(a, r->filters[i]);
	for (i = from; i < to; i++)
		rc |= arg_push(a, "-H") | arg_push(a, json_string_value(json_array_get(r->hosts, i)));
	if (strcmp(r->kind, "run") != 0)
		return rc;
	rc |= arg_push(a, "--") | arg_push(a, r->module);
	if (r->args == NULL)
		return rc;
	/* key:=JSON keeps each value's type as the first run packed it. */
	json_object_foreach(r->args, key, v) {
		char *kv;

		if ((txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL ||
		    asprintf(&kv, "%s:=%s", key, txt) < 0) {
			free(txt);
			return -1;
		}
		free(txt);
		rc |= arg_push(a, kv);
		free(kv);
	}
	return rc;
}

/* The worst of several runs' exit codes, in muster run's order. */
static int
worse(int a, int b)
{
	static const int rank[] = { [EXIT_OK] = 0, [EXIT_MISSING] = 1, [EXIT_FAILED] = 2,
	    [EXIT_USAGE] = 3 };

	if (a < 0 || a > EXIT_MISSING)
		return a;
	if (b < 0 || b > EXIT_MISSING)
		return b;
	return rank[b] > rank[a] ? b : a;
}

static int
send_batches(struct ctl *c, struct retry *r)
{
	struct argv_buf a = { 0 };
	size_t n = json_array_size(r->hosts), from;
	int rc = EXIT_OK, one;

	for (from = 0; from < n && rc != EXIT_USAGE; from += RETRY_BATCH) {
		size_t to = from + RETRY_BATCH < n ? from + RETRY_BATCH : n;

		if (batch_argv(r, from, to, &a) != 0) {
			arg_free(&a);
			fprintf(stderr, "muster: retry: out of memory\n");
			return EXIT_USAGE;
		}
		optind = 0;	/* glibc: getopt starts over for cmd_run */
		one = cmd_run(c, a.n, a.v);
		rc = worse(rc, one);
		arg_free(&a);
	}
	return rc;
}

/* ---- the command ---------------------------------------------------------------- */

static int
retry_opts(struct ctl *c, struct retry *r, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "failed", no_argument, NULL, 'f' },
		{ "missing", no_argument, NULL, 'm' },
		{ "not-pass", no_argument, NULL, 'n' },
		{ "server", required_argument, NULL, 'S' },
		{ "stdin", no_argument, NULL, 'i' },
		{ "wait", required_argument, NULL, 'w' },
		{ "ttl", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o, modes = 0;

	r->server = c->cfg.server_url;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'f': r->want = WANT_FAILED; modes++; break;
		case 'm': r->want = WANT_MISSING; modes++; break;
		case 'n': r->want = WANT_FAILED | WANT_MISSING; modes++; break;
		case 'S': r->server = optarg; break;
		case 'i': r->use_stdin = true; break;
		case 'w': r->wait = optarg; break;
		case 'T': r->ttl = optarg; break;
		case 'j': r->json = true; break;
		case 'h':
			retry_usage(stdout);
			return CTL_HELP;
		default:
			retry_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || modes != 1 || !jobid_valid(argv[optind])) {
		if (optind + 1 == argc && !jobid_valid(argv[optind]))
			fprintf(stderr, "muster: retry: bad job id '%s'\n", argv[optind]);
		else if (modes != 1)
			fprintf(stderr, "muster: retry: give one of --failed, --missing, "
			    "--not-pass\n");
		retry_usage(stderr);
		return EXIT_USAGE;
	}
	r->job = argv[optind];
	if (r->server[0] == '\0')
		r->use_stdin = true;
	return 0;
}

int
cmd_retry(struct ctl *c, int argc, char **argv)
{
	struct retry r;
	json_t *doc = NULL;
	size_t i;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = retry_opts(c, &r, argc, argv)) != 0)
		return rc == CTL_HELP ? EXIT_OK : rc;
	if ((r.hosts = json_array()) == NULL)
		return EXIT_USAGE;
	rc = r.use_stdin ? from_stdin(&r, &doc) : from_server(c, &r, &doc);
	if (rc == 0) {
		/* Sorted: the batches and the output do not depend on the
		 * order the source listed them in. */
		size_t n = json_array_size(r.hosts);
		const char **names = calloc(n ? n : 1, sizeof(*names));
		json_t *sorted = json_array();

		for (i = 0; names != NULL && i < n; i++)
			names[i] = json_string_value(json_array_get(r.hosts, i));
		if (names != NULL && sorted != NULL) {
			qsort(names, n, sizeof(*names), name_cmp);
			for (i = 0; i < n; i++)
				json_array_append_new(sorted, json_string(names[i]));
		}
		free(names);
		json_decref(r.hosts);
		r.hosts = sorted;
		if (r.hosts == NULL)
			rc = EXIT_USAGE;
	}
	if (rc == 0 && json_array_size(r.hosts) == 0)
		fprintf(stderr, "muster: retry: no host to retry for job %s\n", r.job);
	else if (rc == 0)
		rc = send_batches(c, &r);
	for (i = 0; i < r.nfilters; i++)
		free(r.filters[i]);
	json_decref(r.hosts);
	json_decref(doc);
	return rc;
}
