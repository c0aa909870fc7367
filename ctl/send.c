/* SPDX-License-Identifier: Apache-2.0 */
/*
 * send.c - muster run / ping / version / update / cancel: build and sign
 * one job per target topic, work out who should answer (with -F: the
 * target hosts whose verified facts match), publish, collect the results
 * (each job and host once), and report who answered, who did not and who
 * answered without being expected.
 */
#include "ctl.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "mpjson.h"

#define MAX_TARGETS	64
#define MAX_EXPECTED	4096
#define MAX_HELD	4096	/* results waiting for their host's certificate */
/* muster run's default wait: the job's timeout (--timeout, else the agent's
 * default [limits] timeout, which the CLI cannot see) plus this margin for
 * the kill grace (2 s) and the answer's way back, so that a hang comes back
 * as the agent's `timeout` result instead of the CLI giving up first. */
#define AGENT_TIMEOUT_MS	60000
#define WAIT_MARGIN_MS		10000

/* What the CLI knows of an expected host that has not answered (hstate). */
#define HS_ONLINE	0x1	/* its retained status says online */
#define HS_ACCEPTED	0x2	/* an accepted/started event (stream jobs) */

struct answer {
	struct result r;	/* borrows from raw */
	uint8_t *raw;		/* owned */
};

/* A result signed by a certificate no status has shown us yet. */
struct held {
	char *topic;		/* owned */
	uint8_t *raw;		/* owned */
	size_t len;
};

struct send {
	enum job_kind kind;
	struct job_target targets[MAX_TARGETS];
	int ntargets;
	char ids[MAX_TARGETS][JOBID_MAX_LEN + 1];
	const char *module;
	msgpack_sbuffer args;	/* packed args map, empty if none */
	bool have_args;
	uint64_t timeout_ms, ttl_ms, wait_ms;
	bool wait_given;	/* --wait: not derived from the timeout */
	bool stream;
	const char *cancel;
	long expect;		/* -1: from presence (or facts) */
	struct ctl_filter filter;	/* -F */
	size_t nmatch, nnomatch, nnofacts;	/* target hosts, by their facts */
	/* who should answer */
	char (*expected)[NAME_MAX_LEN + 1];
	uint8_t *hstate;	/* HS_*, parallel to expected */
	uint64_t *tmask;	/* which targets (bit t) expect it: its announces */
	size_t nexpected;
	size_t expect_count;
	/* what came back */
	struct answer *answers;
	size_t nanswers;
	struct held *held;
	size_t nheld;
	bool presence;		/* status of every host subscribed already */
	int subacks;
	uint64_t t0;
	bool tty;
	bool lost;		/* the broker connection went away */
	int unacked;		/* job publishes without a PUBACK yet */
	bool pub_failed;
	int ann_tokens[MAX_TARGETS];	/* announce publishes, for their PUBACKs */
	int nann;
	bool ann_warned;	/* said once that an announce did not go out */
	char pin[65];
};

/* ---- arguments -------------------------------------------------------- */

/* The module's arguments: typed by mpjson_arg(), packed as one map. */
static int
pack_args(struct send *s, int argc, char **argv)
{
	json_t *args = json_object();
	msgpack_packer pk;
	struct mu_err err;
	int i, rc = 0;

	if (argc == 0 || args == NULL) {
		json_decref(args);
		return 0;
	}
	for (i = 0; rc == 0 && i < argc; i++)
		if (mpjson_arg(args, argv[i], &err) != MU_OK) {
			fprintf(stderr, "muster: %s\n", err.msg);
			rc = -1;
		}
	if (rc == 0) {
		msgpack_packer_init(&pk, &s->args, msgpack_sbuffer_write);
		rc = mpjson_pack(&pk, args);
		s->have_args = rc == 0;
	}
	json_decref(args);
	return rc;
}

static int
add_target(struct send *s, enum job_target_kind kind, const char *name)
{
	struct job_target *t;

	if (s->ntargets == MAX_TARGETS)
		return fprintf(stderr, "muster: too many targets\n"), -1;
	if (kind != TARGET_ALL && !name_valid(name))
		return fprintf(stderr, "muster: '%s' is not a valid name: %s\n", name,
		    NAME_RULE), -1;
	t = &s->targets[s->ntargets++];
	t->kind = kind;
	snprintf(t->name, sizeof(t->name), "%s", kind == TARGET_ALL ? "" : name);
	return 0;
}

static int
duration_opt(const char *v, uint64_t *out, const char *what)
{
	if (parse_duration_ms(v, out) != MU_OK)
		return fprintf(stderr, "muster: bad %s '%s'\n", what, v), -1;
	return 0;
}

static void
run_usage(FILE *f, const char *cmd)
{
	fprintf(f,
	    "usage: muster %s [options] [-H HOST]... [-g GROUP]... [-a]%s\n"
	    "%s"
	    "  -H, --host HOST     a host (repeatable)\n"
	    "  -g, --group GROUP   every host of a group (repeatable)\n"
	    "  -a, --all           every host\n"
	    "  -F, --filter 'FACT OP VALUE'   only hosts whose facts match (repeatable:\n"
	    "                      all must; OP: = != < <= > >= ~ has); without\n"
	    "                      -H/-g/-a it means -a\n"
	    "      --ttl DUR       how long the job stays valid (default 10m)\n"
	    "      --wait DUR      how long to wait for answers (default %s; 0 = do not)\n"
	    "      --expect N      answers to wait for from groups/all (default: the\n"
	    "                      hosts their retained status shows online; with -F\n"
	    "                      the target hosts whose retained facts match)\n"
	    "      --json          one JSON object per result, then a summary\n"
	    "%s"
	    "exit: 0 all passed; 1 some result was not pass; 3 some expected hosts\n"
	    "did not answer; 2 usage, config or connection error\n",
	    cmd, strcmp(cmd, "run") == 0 ? " MODULE [key=value | key:=JSON ...]" :
	    strcmp(cmd, "update") == 0 ? " [TARGET...]" : "",
	    strcmp(cmd, "update") == 0 ?
	    "  TARGET: host/HOST, group/GROUP or all.  The hosts look at their release\n"
	    "  channel now (no jitter); each answer comes from the new version, or\n"
	    "  says why there was no update.\n" : "",
	    strcmp(cmd, "run") == 0 ? "--timeout + 10s" :
	    strcmp(cmd, "update") == 0 ? "5m" : "30s",
	    strcmp(cmd, "run") == 0 ?
	    "      --timeout DUR   how long the module may run (default: the agent's\n"
	    "                      [limits] timeout, taken as 60s for --wait)\n"
	    "      --stream        show output and progress live\n"
	    "      --pin SHA256    run only this exact module build\n"
	    "arguments: key=value is typed: true/false a bool, an integer (no leading\n"
	    "zeros) an int, anything else a string; key:=JSON any JSON value (lists,\n"
	    "maps); key:=@FILE the JSON in FILE\n" : "");
}

static int
parse_run(struct ctl *c, struct send *s, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "group", required_argument, NULL, 'g' },
		{ "all", no_argument, NULL, 'a' },
		{ "filter", required_argument, NULL, 'F' },
		{ "timeout", required_argument, NULL, 't' },
		{ "ttl", required_argument, NULL, 'T' },
		{ "wait", required_argument, NULL, 'w' },
		{ "stream", no_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "pin", required_argument, NULL, 'p' },
		{ "expect", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int o, rc = 0;

	/* Options may come after the module too ("muster run -H h1 disk.usage
	 * max_pct=90 --json"); "--" ends them. */
	while (rc == 0 && (o = getopt_long(argc, argv, "H:g:aF:h", opts, NULL)) != -1) {
		switch (o) {
		case 'H': rc = add_target(s, TARGET_HOST, optarg); break;
		case 'g': rc = add_target(s, TARGET_GROUP, optarg); break;
		case 'a': rc = add_target(s, TARGET_ALL, NULL); break;
		case 'F': rc = ctl_filter_add(&s->filter, optarg); break;
		case 't': rc = duration_opt(optarg, &s->timeout_ms, "timeout"); break;
		case 'T': rc = duration_opt(optarg, &s->ttl_ms, "ttl"); break;
		case 'w':
			/* "0" means do not wait, which parse_duration refuses. */
			s->wait_given = true;
			if (strcmp(optarg, "0") == 0)
				s->wait_ms = 0;
			else
				rc = duration_opt(optarg, &s->wait_ms, "wait");
			break;
		case 's': s->stream = true; break;
		case 'j': c->json = true; break;
		case 'p': {
			size_t i;

			for (i = 0; optarg[i] && i < sizeof(s->pin) - 1; i++)
				s->pin[i] = (char)tolower((unsigned char)optarg[i]);
			s->pin[i] = '\0';
			if (optarg[i] != '\0' || !sha256hex_valid(s->pin)) {
				fprintf(stderr, "muster: --pin wants 64 hex digits\n");
				rc = -1;
			}
			break;
		}
		case 'e':
			errno = 0;
			s->expect = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || s->expect < 0 ||
			    s->expect > MAX_EXPECTED) {
				fprintf(stderr, "muster: bad --expect '%s'\n", optarg);
				rc = -1;
			}
			break;
		case 'h':
			run_usage(stdout, argv[0]);
			return CTL_HELP;
		default:
			run_usage(stderr, argv[0]);
			return EXIT_USAGE;
		}
	}
	/* muster update TARGET...: host/<h>, group/<g> or all, as in a job. */
	while (rc == 0 && s->kind == JOB_UPDATE && optind < argc) {
		struct job_target t;
		struct mu_err err;

		if (target_parse(argv[optind], &t, &err) != MU_OK) {
			fprintf(stderr, "muster: %s\n", err.msg);
			return EXIT_USAGE;
		}
		rc = add_target(s, t.kind, t.name);
		optind++;
	}
	/* -F alone: every host, narrowed by the filter. */
	if (rc == 0 && s->ntargets == 0 && s->filter.n)
		rc = add_target(s, TARGET_ALL, NULL);
	if (rc != 0 || s->ntargets == 0) {
		if (rc == 0)
			fprintf(stderr, "muster: no target: give -H, -g, -a or -F\n");
		return EXIT_USAGE;
	}
	if (ctl_filter_done(&s->filter) != 0)
		return EXIT_USAGE;
	if (s->kind == JOB_RUN) {
		if (optind >= argc || !name_valid(argv[optind])) {
			if (optind >= argc)
				fprintf(stderr, "muster: no module given\n");
			else
				fprintf(stderr, "muster: bad module name '%s': %s\n",
				    argv[optind], NAME_RULE);
			return EXIT_USAGE;
		}
		if (!s->wait_given)
			s->wait_ms = (s->timeout_ms ? s->timeout_ms : AGENT_TIMEOUT_MS) +
			    WAIT_MARGIN_MS;
		s->module = argv[optind++];
		if (pack_args(s, argc - optind, argv + optind) != 0)
			return EXIT_USAGE;
	} else if (optind != argc) {
		run_usage(stderr, argv[0]);
		return EXIT_USAGE;
	}
	return 0;
}

/* ---- who should answer ------------------------------------------------ */

static bool
expected_has(const struct send *s, const char *host)
{
	size_t i;

	for (i = 0; i < s->nexpected; i++)
		if (strcmp(s->expected[i], host) == 0)
			return true;
	return false;
}

/* The index of host in expected, or -1. */
static long
expected_index(const struct send *s, const char *host)
{
	size_t i;

	for (i = 0; i < s->nexpected; i++)
		if (strcmp(s->expected[i], host) == 0)
			return (long)i;
	return -1;
}

/* targets: the bits of the targets whose job expects it (for their
 * announces), added to what it had. */
static void
expected_add(struct send *s, const char *host, uint8_t state, uint64_t targets)
{
	long k = expected_index(s, host);

	if (k >= 0) {
		s->tmask[k] |= targets;
		return;
	}
	if (s->nexpected == MAX_EXPECTED)
		return;
	s->hstate[s->nexpected] = state;
	s->tmask[s->nexpected] = targets;
	snprintf(s->expected[s->nexpected++], NAME_MAX_LEN + 1, "%s", host);
}

static bool
in_group(const struct status *st, const char *group)
{
	size_t i;

	for (i = 0; i < st->ngroups; i++)
		if (strcmp(st->groups[i], group) == 0)
			return true;
	return false;
}

/* The targets the host is one of (a named one, or in a group, or all):
 * bit t for target t; 0 if none. */
static uint64_t
in_targets(const struct send *s, const struct status *st)
{
	uint64_t m = 0;
	int t;

	for (t = 0; t < s->ntargets; t++)
		if (s->targets[t].kind == TARGET_ALL ||
		    (s->targets[t].kind == TARGET_HOST &&
		    strcmp(s->targets[t].name, st->host) == 0) ||
		    (s->targets[t].kind == TARGET_GROUP && in_group(st, s->targets[t].name)))
			m |= UINT64_C(1) << t;
	return m;
}

/* A named host with no status: its facts cannot be checked either. */
static size_t
named_without_status(const struct send *s, const struct host_list *hosts)
{
	size_t i, n = 0;
	int t, u;

	for (t = 0; t < s->ntargets; t++) {
		if (s->targets[t].kind != TARGET_HOST)
			continue;
		for (u = 0; u < t; u++)
			if (s->targets[u].kind == TARGET_HOST &&
			    strcmp(s->targets[u].name, s->targets[t].name) == 0)
				break;
		for (i = 0; u == t && i < hosts->n; i++)
			if (strcmp(hosts->v[i].st.host, s->targets[t].name) == 0)
				break;
		n += u == t && i == hosts->n;
	}
	return n;
}

/*
 * With -F: the target hosts whose verified facts match are expected,
 * online or not (a matching host that is down is missing, not
 * forgotten); those whose facts do not match stay silent and are not
 * expected; those without facts are not expected either, and counted for
 * the report.  The statuses come first: their certificates check the
 * facts, and their groups say who is in a group.
 */
static int
expected_from_facts(struct ctl *c, struct send *s)
{
	struct host_list hosts;
	struct facts_list fl;
	const struct facts *f;
	size_t i;
	int rc;

	if ((rc = hosts_collect(c, &hosts)) != 0)
		return rc;
	s->presence = true;
	if ((rc = facts_collect(c, NULL, &fl)) != 0) {
		hosts_free(&hosts);
		return rc;
	}
	s->nnofacts = named_without_status(s, &hosts);
	for (i = 0; i < hosts.n; i++) {
		const struct status *st = &hosts.v[i].st;

		if (!in_targets(s, st))
			continue;
		if ((f = facts_find(&fl, st->host)) == NULL)
			s->nnofacts++;
		else if (!facts_match(f, &s->filter.f))
			s->nnomatch++;
		else {
			s->nmatch++;
			expected_add(s, st->host, st->online ? HS_ONLINE : 0,
			    in_targets(s, st));
		}
	}
	facts_list_free(&fl);
	hosts_free(&hosts);
	s->expect_count = s->nexpected;
	return 0;
}

static bool
srv_has(const struct srv_hosts *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strcmp(h->v[i].name, name) == 0)
			return true;
	return false;
}

/* One target through the server: as expected_from_facts() with -F (two
 * lists: the target's hosts, and those the filter matches), else as the
 * presence below (online hosts of a group or all; a named host always). */
static int
server_target(struct ctl *c, struct send *s, int ti, struct mu_err *err)
{
	const struct job_target *t = &s->targets[ti];
	struct srv_hosts all, match = { 0 };
	uint64_t bit = UINT64_C(1) << ti;
	size_t i;

	if (srv_hosts_get(c, t, NULL, &all, err) != 0)
		return -1;
	if (s->filter.n && srv_hosts_get(c, t, &s->filter, &match, err) != 0) {
		srv_hosts_free(&all);
		return -1;
	}
	for (i = 0; i < all.n; i++) {
		const struct srv_host *h = &all.v[i];

		if (!s->filter.n) {
			if (h->online || t->kind == TARGET_HOST)
				expected_add(s, h->name, h->online ? HS_ONLINE : 0, bit);
		} else if (srv_has(&match, h->name)) {
			s->nmatch++;
			expected_add(s, h->name, h->online ? HS_ONLINE : 0, bit);
		} else if (h->has_facts)
			s->nnomatch++;
		else
			s->nnofacts++;
	}
	if (t->kind == TARGET_HOST && all.n == 0) {
		if (s->filter.n)
			s->nnofacts++;		/* unknown: its facts cannot be checked */
		else
			expected_add(s, t->name, 0, bit);
	}
	srv_hosts_free(&match);
	srv_hosts_free(&all);
	return 0;
}

/*
 * With [server] url: the expected hosts as muster-server knows them
 * (expect.c), for -F and for groups and all, where the retained messages
 * would otherwise say.  -1 (reason in err) when the server fails: the
 * caller starts again from the retained messages.
 */
static int
expected_from_server(struct ctl *c, struct send *s, struct mu_err *err)
{
	bool need = s->filter.n > 0;
	int t;

	for (t = 0; t < s->ntargets; t++)
		need |= s->targets[t].kind != TARGET_HOST;
	if (!need)
		return 1;
	for (t = 0; t < s->ntargets; t++)
		if (server_target(c, s, t, err) != 0) {
			s->nexpected = 0;
			s->nmatch = s->nnomatch = s->nnofacts = 0;
			return -1;
		}
	/* The certificates came with the list: no statuses needed. */
	s->presence = true;
	s->expect_count = s->nexpected;
	return 0;
}

static int
expected_from_presence(struct ctl *c, struct send *s)
{
	struct host_list hosts = { 0 };
	struct mu_err err;
	bool need = false;
	size_t i;
	int t, rc;

	if (s->expect < 0 && c->cfg.server_url[0] != '\0') {
		if ((rc = expected_from_server(c, s, &err)) == 0)
			return 0;
		if (rc < 0)
			fprintf(stderr, "muster: muster-server: %s; the expected hosts come "
			    "from the retained messages\n", err.msg);
	}
	if (s->filter.n && s->expect < 0)
		return expected_from_facts(c, s);
	for (t = 0; t < s->ntargets; t++)
		if (s->targets[t].kind == TARGET_HOST)
			expected_add(s, s->targets[t].name, 0, UINT64_C(1) << t);
		else
			need = true;
	s->expect_count = s->nexpected;
	if (!need)
		return 0;
	if (s->expect >= 0) {
		s->expect_count += (size_t)s->expect;
		return 0;
	}
	if ((rc = hosts_collect(c, &hosts)) != 0)
		return rc;
	s->presence = true;
	for (i = 0; i < hosts.n; i++) {
		const struct status *st = &hosts.v[i].st;
		long k;

		/* A named host (added above) is known online from here too. */
		if (st->online && (k = expected_index(s, st->host)) >= 0)
			s->hstate[k] |= HS_ONLINE;
		for (t = 0; st->online && t < s->ntargets; t++)
			if (s->targets[t].kind == TARGET_ALL ||
			    (s->targets[t].kind == TARGET_GROUP && in_group(st, s->targets[t].name)))
				expected_add(s, st->host, HS_ONLINE, UINT64_C(1) << t);
	}
	hosts_free(&hosts);
	s->expect_count = s->nexpected;
	return 0;
}

/* ---- jobs ------------------------------------------------------------- */

static void
make_id(char *buf, size_t len)
{
	uint8_t r[4] = { 0 };
	time_t now = time(NULL);
	struct tm tm;

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		r[0] = (uint8_t)getpid();
	gmtime_r(&now, &tm);
	snprintf(buf, len, "%04d%02d%02dT%02d%02d%02d-%02x%02x%02x%02x", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, r[0], r[1], r[2], r[3]);
}

static int
job_build(struct ctl *c, struct send *s, int t, msgpack_sbuffer *env, uint64_t *issued_at,
    uint64_t *not_after)
{
	const char *user = getenv("USER");
	msgpack_unpacked up;
	msgpack_sbuffer body;
	struct mu_err err;
	struct job j;
	int rc;

	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "%s", s->ids[t]);
	j.kind = s->kind;
	j.target = s->targets[t];
	j.issued_at = now_wall_ms();
	j.not_after = j.issued_at + s->ttl_ms;
	*issued_at = j.issued_at;
	*not_after = j.not_after;
	if (user && strlen(user) < 256)
		j.operator_ = (struct wire_str){ user, strlen(user) };
	/* The fleet this job is for: agents of another topic root refuse it
	 * even when they trust the same operator key (design.md §3). */
	aud_format(j.aud, sizeof(j.aud), c->root);
	msgpack_unpacked_init(&up);
	if (s->kind == JOB_RUN) {
		snprintf(j.module, sizeof(j.module), "%s", s->module);
		if (s->pin[0])
			snprintf(j.module_sha256, sizeof(j.module_sha256), "%s", s->pin);
		if (s->have_args && msgpack_unpack_next(&up, s->args.data, s->args.size, NULL) ==
		    MSGPACK_UNPACK_SUCCESS)
			j.args = &up.data;
		j.timeout_ms = s->timeout_ms;
		j.stream = s->stream;
	}
	if (s->kind == JOB_CANCEL)
		snprintf(j.cancel, sizeof(j.cancel), "%s", s->cancel);
	j.filter = ctl_filter_obj(&s->filter);
	msgpack_sbuffer_init(&body);
	rc = job_encode(&j, &body, &err);
	if (rc == MU_OK)
		rc = envelope_sign(c->key, body.data, body.size, env, &err);
	if (rc != MU_OK)
		fprintf(stderr, "muster: %s\n", err.msg);
	msgpack_sbuffer_destroy(&body);
	msgpack_unpacked_destroy(&up);
	return rc == MU_OK ? 0 : EXIT_USAGE;
}

/* ---- the announce (design.md §3) ------------------------------------- */

static int
name_order(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * The signed announce of job t, for muster-server: the job's kind, module,
 * args, target, filter and window, and the hosts expected to answer it
 * (those of s->expected that target t covers), sorted.
 */
static int
announce_build(struct ctl *c, struct send *s, int t, uint64_t issued_at,
    uint64_t not_after, msgpack_sbuffer *env, struct mu_err *err)
{
	const char *user = getenv("USER");
	char (*names)[NAME_MAX_LEN + 1];
	msgpack_unpacked up;
	msgpack_sbuffer body;
	struct announce a;
	size_t i, n = 0;
	int rc;

	if ((names = calloc(s->nexpected + 1, sizeof(*names))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	for (i = 0; i < s->nexpected; i++)
		if (s->tmask[i] & (UINT64_C(1) << t))
			memcpy(names[n++], s->expected[i], sizeof(names[0]));
	qsort(names, n, sizeof(*names), name_order);
	memset(&a, 0, sizeof(a));
	snprintf(a.id, sizeof(a.id), "%s", s->ids[t]);
	aud_format(a.aud, sizeof(a.aud), c->root);
	a.issued_at = issued_at;
	a.not_after = not_after;
	if (user && strlen(user) < 256)
		a.operator_ = (struct wire_str){ user, strlen(user) };
	a.target = s->targets[t];
	a.filter = ctl_filter_obj(&s->filter);
	a.job_kind = s->kind;
	msgpack_unpacked_init(&up);
	if (s->kind == JOB_RUN) {
		snprintf(a.module, sizeof(a.module), "%s", s->module);
		if (s->have_args && msgpack_unpack_next(&up, s->args.data, s->args.size, NULL) ==
		    MSGPACK_UNPACK_SUCCESS)
			a.args = &up.data;
		a.timeout_ms = s->timeout_ms;
		a.stream = s->stream;
	}
	msgpack_sbuffer_init(&body);
	rc = announce_encode(&a, names, n, &body, err);
	if (rc == MU_OK)
		rc = envelope_sign_max(c->key, body.data, body.size, WIRE_MAX_ANNOUNCE, env, err);
	msgpack_sbuffer_destroy(&body);
	msgpack_unpacked_destroy(&up);
	free(names);
	return rc;
}

/* Said once per command: the job goes out all the same (an older broker
 * ACL without muster/v1/jobs/+ refuses it), only the server is in the
 * dark about whom to expect. */
static void
announce_failed(struct send *s, const char *why)
{
	if (s->ann_warned)
		return;
	s->ann_warned = true;
	fprintf(stderr, "muster: the job announce did not go out (%s); the job does, "
	    "but muster-server will not know which hosts should answer\n", why);
}

/* Publish job t's announce before the job (QoS 1, not retained, the
 * job's expiry).  Never fails the command. */
static void
announce_publish(struct ctl *c, struct send *s, int t, uint64_t issued_at,
    uint64_t not_after, uint32_t expiry_s)
{
	char topic[TOPIC_MAX];
	msgpack_sbuffer env;
	struct mu_err err;
	int token = 0;

	if (s->kind == JOB_CANCEL)
		return;
	msgpack_sbuffer_init(&env);
	if (topic_build(topic, sizeof(topic), c->root, TOPIC_JOB_ANNOUNCE, s->ids[t],
	    NULL) != MU_OK)
		announce_failed(s, "bad topic");
	else if (announce_build(c, s, t, issued_at, not_after, &env, &err) != MU_OK)
		announce_failed(s, err.msg);
	else if (bus_publish(c->bus, topic, env.data, env.size, 1, false, expiry_s, &token,
	    &err) != MU_OK)
		announce_failed(s, err.msg);
	else
		s->ann_tokens[s->nann++] = token;
	msgpack_sbuffer_destroy(&env);
}

/* An acknowledgement of an announce (true): a refusal is said, not
 * counted against the jobs. */
static bool
announce_ack(struct send *s, const struct bus_event *ev)
{
	int i;

	if (ev->type != BUS_PUBLISHED && ev->type != BUS_PUBLISH_FAILED)
		return false;
	for (i = 0; i < s->nann; i++)
		if (s->ann_tokens[i] == ev->token) {
			if (ev->type == BUS_PUBLISH_FAILED)
				announce_failed(s, ev->reason[0] ? ev->reason :
				    "the broker refused it");
			s->ann_tokens[i] = s->ann_tokens[--s->nann];
			return true;
		}
	return false;
}

/* ---- collecting results ----------------------------------------------- */

static bool
answered(const struct send *s, const char *job, const char *host)
{
	size_t i;

	for (i = 0; i < s->nanswers; i++)
		if (strcmp(s->answers[i].r.job, job) == 0 && strcmp(s->answers[i].r.host, host) == 0)
			return true;
	return false;
}

static bool
host_answered(const struct send *s, const char *host)
{
	size_t i;

	for (i = 0; i < s->nanswers; i++)
		if (strcmp(s->answers[i].r.host, host) == 0)
			return true;
	return false;
}

static bool
our_job(const struct send *s, const char *job)
{
	int t;

	for (t = 0; t < s->ntargets; t++)
		if (strcmp(s->ids[t], job) == 0)
			return true;
	return false;
}

/* Keep a verified result as the answer of its (job, host), once. */
static void
keep_result(struct ctl *c, struct send *s, struct result *r, uint8_t *raw)
{
	struct answer *v;

	if (!our_job(s, r->job) || answered(s, r->job, r->host) ||
	    (v = reallocarray(s->answers, s->nanswers + 1, sizeof(*v))) == NULL) {
		/* A duplicate (QoS 1 may repeat) or not ours: ignore. */
		wire_doc_free(&r->doc);
		free(raw);
		return;
	}
	s->answers = v;
	s->answers[s->nanswers].r = *r;
	s->answers[s->nanswers++].raw = raw;
	if (c->json)
		json_print_line(result_json(&s->answers[s->nanswers - 1].r));
}

static void
hold_result(struct ctl *c, struct send *s, struct bus_event *ev)
{
	struct held *v;
	char *t;

	if (s->nheld == MAX_HELD || (t = strdup(ev->topic)) == NULL ||
	    (v = reallocarray(s->held, s->nheld + 1, sizeof(*v))) == NULL) {
		forged_note(c, ev->topic, "signed by an unknown certificate");
		return;
	}
	s->held = v;
	s->held[s->nheld++] = (struct held){ t, ev->payload, ev->len };
	ev->payload = NULL;
}

static void
take_result(struct ctl *c, struct send *s, struct bus_event *ev)
{
	struct mu_err err;
	struct result r;
	int rc;

	/* A retained result is an old message or a planted one, never an
	 * answer to the job we just sent. */
	if (ev->retained)
		return;
	rc = verify_result(c, ev->topic, ev->payload, ev->len, &r, &err);
	if (rc == MU_ENOENT) {
		hold_result(c, s, ev);
	} else if (rc != MU_OK) {
		forged_note(c, ev->topic, err.msg);
	} else {
		keep_result(c, s, &r, ev->payload);
		ev->payload = NULL;	/* the answer owns it now (or freed it) */
	}
}

/* Results held for a certificate: try again (a status came), or, at the
 * end, count what is still unknown as forged. */
static void
retry_held(struct ctl *c, struct send *s, bool last)
{
	struct mu_err err;
	struct result r;
	size_t i, n = 0;
	int rc;

	for (i = 0; i < s->nheld; i++) {
		struct held *h = &s->held[i];

		rc = verify_result(c, h->topic, h->raw, h->len, &r, &err);
		if (rc == MU_ENOENT && !last) {
			s->held[n++] = *h;
			continue;
		}
		if (rc == MU_OK) {
			keep_result(c, s, &r, h->raw);
			h->raw = NULL;
		} else
			forged_note(c, h->topic, err.msg);
		free(h->topic);
		free(h->raw);
	}
	s->nheld = n;
}

/* A status on the way: its certificate may be what a held result needs. */
static void
take_status(struct ctl *c, struct send *s, struct bus_event *ev)
{
	struct mu_err err;
	struct status st;

	if (ev->len == 0)
		return;
	long i;

	if (verify_status(c, ev->topic, ev->payload, ev->len, &st, &err) != MU_OK) {
		forged_note(c, ev->topic, err.msg);
		return;
	}
	/* Presence of a named host, for the report of who did not answer. */
	if ((i = expected_index(s, st.host)) >= 0)
		s->hstate[i] = (uint8_t)(st.online ? s->hstate[i] | HS_ONLINE :
		    s->hstate[i] & ~HS_ONLINE);
	wire_doc_free(&st.doc);
	if (s->nheld)
		retry_held(c, s, false);
}

static bool
topic_ends(const char *topic, const char *suffix)
{
	size_t tl = strlen(topic), sl = strlen(suffix);

	return tl > sl && strcmp(topic + tl - sl, suffix) == 0;
}

static void
show_event(struct ctl *c, struct send *s, struct bus_event *ev)
{
	struct mu_err err;
	struct event e;
	long i;
	int rc;

	if (ev->retained)
		return;
	/* Events are best-effort live output: one whose certificate is not
	 * known yet is not worth holding. */
	if ((rc = verify_event(c, ev->topic, ev->payload, ev->len, &e, &err)) != MU_OK) {
		forged_note(c, ev->topic, rc == MU_ENOENT ? "signed by an unknown certificate" :
		    err.msg);
		return;
	}
	/* Any event of our job means the host took it: "still running" if it
	 * has not answered when we stop waiting. */
	if (our_job(s, e.job) && (i = expected_index(s, e.host)) >= 0)
		s->hstate[i] |= HS_ACCEPTED;
	if (c->json) {
		json_print_line(event_json(&e));
	} else if (e.event == EV_OUTPUT) {
		fprintf(stderr, "%s: ", e.host);
		term_put(stderr, e.text.ptr, e.text.len, WIRE_MAX_STR);
		fputc('\n', stderr);
	} else if (e.event == EV_PROGRESS) {
		fprintf(stderr, "%s: %u%%\n", e.host, e.pct);
	}
	wire_doc_free(&e.doc);
}

static bool
all_answered(const struct send *s)
{
	size_t i;

	for (i = 0; i < s->nexpected; i++)
		if (!host_answered(s, s->expected[i]))
			return false;
	return s->nanswers >= s->expect_count;
}

static bool
on_result(struct ctl *c, struct bus_event *ev, void *arg)
{
	struct send *s = arg;

	if (ev->type == BUS_LOST) {
		fprintf(stderr, "%smuster: lost the broker: %s\n", s->tty && !c->json ?
		    "\r\033[K" : "", ev->reason[0] ? ev->reason : "?");
		s->lost = true;
		return true;
	}
	if (announce_ack(s, ev))
		return false;
	if (ev->type == BUS_PUBLISHED)
		s->unacked--;
	if (ev->type == BUS_PUBLISH_FAILED)
		s->pub_failed = true;
	if (ev->type != BUS_MESSAGE)
		return false;
	if (topic_ends(ev->topic, "/events"))
		show_event(c, s, ev);
	else if (topic_ends(ev->topic, "/status"))
		take_status(c, s, ev);
	else if (topic_ends(ev->topic, "/facts"))
		;	/* -F: the expected set is fixed when the job goes out */
	else
		take_result(c, s, ev);
	return s->expect_count > 0 && all_answered(s);
}

static bool
on_subacks(struct ctl *c, struct bus_event *ev, void *arg)
{
	struct send *s = arg;

	if (ev->type == BUS_SUBSCRIBED || ev->type == BUS_SUBSCRIBE_FAILED)
		s->subacks--;
	/* Retained statuses follow their SUBACK: keep their certificates. */
	if (ev->type == BUS_MESSAGE && topic_ends(ev->topic, "/status"))
		take_status(c, s, ev);
	return s->subacks <= 0;
}

static void
count_status(const struct send *s, int counts[RS_INTERRUPTED + 1])
{
	size_t i;

	memset(counts, 0, sizeof(int) * (RS_INTERRUPTED + 1));
	for (i = 0; i < s->nanswers; i++)
		counts[s->answers[i].r.status]++;
}

static bool
live_line(struct ctl *c, void *arg)
{
	struct send *s = arg;
	int counts[RS_INTERRUPTED + 1];
	char el[32];

	if (!s->tty || c->json)
		return false;
	count_status(s, counts);
	fprintf(stderr, "\r\033[K%zu/%zu answered  pass %d  fail %d  error %d  %s",
	    s->nanswers, s->expect_count, counts[RS_PASS], counts[RS_FAIL],
	    s->nanswers - counts[RS_PASS] - counts[RS_FAIL] > 0 ?
	    (int)(s->nanswers - counts[RS_PASS] - counts[RS_FAIL]) : 0,
	    human_ms(now_mono_ms() - s->t0, el, sizeof(el)));
	return false;
}

/* ---- the report ------------------------------------------------------- */

static int
severity(enum result_status st)
{
	static const int order[] = {
		[RS_REJECTED] = 0, [RS_CRASHED] = 1, [RS_ERROR] = 2, [RS_TIMEOUT] = 3,
		[RS_INTERRUPTED] = 4, [RS_CANCELLED] = 5, [RS_FAIL] = 6, [RS_PASS] = 7,
	};

	return order[st];
}

static int
answer_cmp(const void *x, const void *y)
{
	const struct answer *a = x, *b = y;
	int d = severity(a->r.status) - severity(b->r.status);

	return d ? d : strcmp(a->r.host, b->r.host);
}

static void
print_table(const struct send *s)
{
	size_t i, w = 4;
	char dur[32];

	for (i = 0; i < s->nanswers; i++)
		if (strlen(s->answers[i].r.host) > w)
			w = strlen(s->answers[i].r.host);
	if (s->nanswers)
		printf("%-*s  %-11s  %-9s  %s\n", (int)w, "HOST", "STATUS", "DURATION", "SUMMARY");
	for (i = 0; i < s->nanswers; i++) {
		const struct result *r = &s->answers[i].r;
		struct wire_str text = r->summary.ptr ? r->summary : r->reason;

		if (r->status != RS_PASS && r->reason.ptr && r->summary.ptr)
			text = r->reason;
		printf("%-*s  %-11s  %-9s  ", (int)w, r->host, result_status_name(r->status),
		    human_ms(r->finished_at >= r->started_at ? r->finished_at - r->started_at : 0,
		    dur, sizeof(dur)));
		/* Older agents give a timeout no reason; the status
		 * alone means what docs/protocol.md says, so say that. */
		if (text.ptr == NULL && r->status == RS_TIMEOUT)
			fputs("ran past its timeout and was stopped", stdout);
		else
			term_put(stdout, text.ptr, text.len, 200);
		putchar('\n');
	}
}

/*
 * Is expected host i, which has not answered, still at the job?  An accepted
 * or started event says so (stream jobs only: musterd sends no events
 * otherwise).  Without one, a host whose retained status says online is
 * taken to be running it: an online agent answers every job it gets, a
 * refusal too, so one that has not answered a run is fetching, queued or
 * running it (or went away without its will having fired yet).  Ping,
 * version and cancel answer at once: silence there is "no answer".
 */
static bool
still_running(const struct send *s, size_t i)
{
	if (s->kind != JOB_RUN)
		return false;
	return (s->hstate[i] & (HS_ACCEPTED | HS_ONLINE)) != 0;
}

/*
 * Hosts that answered without being expected, once each (a host may
 * answer two of our jobs).  Only when the expected hosts are known by name:
 * --expect N for groups and --all gives a number, not names.
 */
static json_t *
unexpected_hosts(const struct send *s)
{
	json_t *a = json_array();
	size_t i, j;
	int t;

	for (t = 0; t < s->ntargets; t++)
		if (s->targets[t].kind != TARGET_HOST && s->expect >= 0)
			return a;
	for (i = 0; i < s->nanswers; i++) {
		const char *h = s->answers[i].r.host;

		if (expected_has(s, h))
			continue;
		for (j = 0; j < i; j++)
			if (strcmp(s->answers[j].r.host, h) == 0)
				break;
		if (j == i)
			json_array_append_new(a, json_string(h));
	}
	return a;
}

static void
print_hosts_line(const char *label, json_t *hosts, const char *tail)
{
	size_t i;

	printf("%s", label);
	for (i = 0; i < json_array_size(hosts); i++)
		printf(" %s", json_string_value(json_array_get(hosts, i)));
	printf("%s\n", tail);
}

/* What `muster retry` needs to send the same job again (ctl/retry.c):
 * the kind, module, args, filter texts and timeout. */
static json_t *
job_json(const struct send *s)
{
	json_t *j, *f = json_array(), *args = NULL;
	msgpack_unpacked up;
	size_t i;

	for (i = 0; f != NULL && i < s->filter.n; i++)
		json_array_append_new(f, json_string(s->filter.text[i]));
	msgpack_unpacked_init(&up);
	if (s->have_args && msgpack_unpack_next(&up, s->args.data, s->args.size, NULL) ==
	    MSGPACK_UNPACK_SUCCESS)
		args = mpjson_from_msgpack(&up.data);
	msgpack_unpacked_destroy(&up);
	j = json_pack("{s:s, s:o, s:o, s:o, s:o}", "kind", job_kind_name(s->kind),
	    "module", s->module ? json_string(s->module) : json_null(),
	    "args", args ? args : json_null(), "filter", f ? f : json_array(),
	    "timeout_ms", s->timeout_ms ? json_integer((json_int_t)s->timeout_ms) : json_null());
	return j ? j : json_null();
}

static int
report(struct ctl *c, struct send *s)
{
	int counts[RS_INTERRUPTED + 1], t, rc;
	json_t *sum = NULL, *missing = json_array(), *running = json_array();
	json_t *jobs = json_array(), *unexpected;
	char el[32];
	size_t i, nmissing = 0;

	if (s->nanswers > 1)
		qsort(s->answers, s->nanswers, sizeof(*s->answers), answer_cmp);
	count_status(s, counts);
	unexpected = unexpected_hosts(s);
	for (i = 0; i < s->nexpected; i++)
		if (!host_answered(s, s->expected[i])) {
			json_array_append_new(still_running(s, i) ? running : missing,
			    json_string(s->expected[i]));
			nmissing++;
		}
	if (nmissing == 0 && s->nanswers < s->expect_count)
		nmissing = s->expect_count - s->nanswers;
	rc = counts[RS_PASS] != (int)s->nanswers ? EXIT_FAILED :
	    nmissing ? EXIT_MISSING : EXIT_OK;
	if (s->tty && !c->json)
		fprintf(stderr, "\r\033[K");
	if (c->json) {
		for (t = 0; t < s->ntargets; t++)
			json_array_append_new(jobs, json_string(s->ids[t]));
		sum = json_pack("{s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:i}",
		    "type", "summary", "jobs", jobs, "expected", (json_int_t)s->expect_count,
		    "answered", (json_int_t)s->nanswers, "pass", (json_int_t)counts[RS_PASS],
		    "fail", (json_int_t)counts[RS_FAIL],
		    "other", (json_int_t)(s->nanswers - counts[RS_PASS] - counts[RS_FAIL]),
		    "missing", missing, "running", running,
		    "elapsed_ms", (json_int_t)(now_mono_ms() - s->t0),
		    "forged", (json_int_t)c->nforged, "exit", rc);
		json_object_set_new(sum, "unexpected", unexpected);
		json_object_set_new(sum, "job", job_json(s));
		if (s->filter.n && s->expect < 0)
			json_object_set_new(sum, "facts", json_pack("{s:I, s:I, s:I}",
			    "match", (json_int_t)s->nmatch, "no_match", (json_int_t)s->nnomatch,
			    "no_facts", (json_int_t)s->nnofacts));
		json_print_line(sum);
		return rc;
	}
	json_decref(jobs);
	print_table(s);
	if (json_array_size(running)) {
		printf("still running:");
		for (i = 0; i < json_array_size(running); i++)
			printf(" %s", json_string_value(json_array_get(running, i)));
		printf("   (stop: muster cancel -H HOST %s)\n", s->ntargets == 1 ?
		    s->ids[0] : "JOB");
	}
	if (json_array_size(missing) || (nmissing && json_array_size(running) == 0)) {
		printf("no answer:");
		for (i = 0; i < json_array_size(missing); i++)
			printf(" %s", json_string_value(json_array_get(missing, i)));
		if (json_array_size(missing) == 0)
			printf(" %zu host(s)", nmissing);
		printf("\n");
	}
	if (json_array_size(unexpected))
		print_hosts_line("unexpected:", unexpected, "   (answered without being expected)");
	json_decref(missing);
	json_decref(running);
	json_decref(unexpected);
	/* Why the expected set is what it is: hosts without facts are left
	 * out, not silently forgotten. */
	if (s->filter.n && s->expect < 0)
		printf("facts: %zu target host%s match%s, %zu do%s not, %zu without facts "
		    "(not expected)\n", s->nmatch, s->nmatch == 1 ? "" : "s",
		    s->nmatch == 1 ? "es" : "", s->nnomatch, s->nnomatch == 1 ? "es" : "",
		    s->nnofacts);
	printf("%zu expected, %zu answered: %d pass, %d fail, %d other (%s)",
	    s->expect_count, s->nanswers, counts[RS_PASS], counts[RS_FAIL],
	    (int)s->nanswers - counts[RS_PASS] - counts[RS_FAIL],
	    human_ms(now_mono_ms() - s->t0, el, sizeof(el)));
	/* The job id: what `muster cancel` and `muster history --job` take. */
	for (t = 0; t < s->ntargets; t++)
		printf("%s%s", t == 0 ? (s->ntargets > 1 ? "  jobs " : "  job ") : " ",
		    s->ids[t]);
	putchar('\n');
	forged_report(c, stdout);
	return rc;
}

/* ---- the command ------------------------------------------------------ */

static int
subscribe_results(struct ctl *c, struct send *s)
{
	char topic[TOPIC_MAX + 16];
	int t, rc;

	/* Results name their certificate; statuses carry it.  Without the
	 * presence already collected, ask for the statuses of who may answer. */
	for (t = 0; !s->presence && t < s->ntargets; t++) {
		rc = EXIT_USAGE;
		if (topic_filter(topic, sizeof(topic), c->root, TOPIC_HOST_STATUS,
		    s->targets[t].kind == TARGET_HOST ? s->targets[t].name : "+", NULL) ||
		    (rc = ctl_subscribe(c, topic)) != 0)
			return rc;
		s->subacks++;
		if (s->targets[t].kind != TARGET_HOST)
			s->presence = true;
	}
	for (t = 0; t < s->ntargets; t++) {
		rc = EXIT_USAGE;
		if (topic_filter(topic, sizeof(topic), c->root, TOPIC_RESULT, s->ids[t], "+") ||
		    (rc = ctl_subscribe(c, topic)) != 0)
			return rc;
		s->subacks++;
		if (s->stream) {
			snprintf(topic, sizeof(topic), "%s/v1/results/%s/+/events", c->root, s->ids[t]);
			if ((rc = ctl_subscribe(c, topic)) != 0)
				return rc;
			s->subacks++;
		}
	}
	ctl_pump(c, now_mono_ms() + 10000, on_subacks, s, NULL);
	return 0;
}

static bool
on_puback(struct ctl *c, struct bus_event *ev, void *arg)
{
	struct send *s = arg;

	(void)c;
	if (announce_ack(s, ev))
		return false;
	if (ev->type == BUS_PUBLISHED)
		s->unacked--;
	else if (ev->type == BUS_PUBLISH_FAILED || ev->type == BUS_LOST)
		s->pub_failed = true;
	return s->unacked <= 0 || s->pub_failed;
}

static int
publish_jobs(struct ctl *c, struct send *s)
{
	char topic[TOPIC_MAX];
	msgpack_sbuffer env;
	struct mu_err err;
	uint64_t issued_at, not_after, now;
	uint32_t expiry;
	int t, rc = 0;

	for (t = 0; rc == 0 && t < s->ntargets; t++) {
		msgpack_sbuffer_init(&env);
		rc = job_build(c, s, t, &env, &issued_at, &not_after);
		if (rc == 0 && topic_for_target(topic, sizeof(topic), c->root, &s->targets[t]))
			rc = EXIT_USAGE;
		/* Expiry = the job's remaining lifetime, rounded up (0 would
		 * mean "never"): a broker drops what a host would refuse
		 * anyway. */
		now = now_wall_ms();
		expiry = not_after > now ? (uint32_t)((not_after - now + 999) / 1000) : 1;
		/* The announce first: Paho sends in order, so the server
		 * hears whom to expect before any host can answer. */
		if (rc == 0)
			announce_publish(c, s, t, issued_at, not_after, expiry);
		if (rc == 0 && bus_publish(c->bus, topic, env.data, env.size, 1, false,
		    expiry, NULL, &err) != MU_OK) {
			fprintf(stderr, "muster: %s\n", err.msg);
			rc = EXIT_USAGE;
		}
		if (rc == 0)
			s->unacked++;
		msgpack_sbuffer_destroy(&env);
	}
	return rc;
}

static void
send_free(struct send *s)
{
	size_t i;

	for (i = 0; i < s->nanswers; i++) {
		wire_doc_free(&s->answers[i].r.doc);
		free(s->answers[i].raw);
	}
	free(s->answers);
	for (i = 0; i < s->nheld; i++) {
		free(s->held[i].topic);
		free(s->held[i].raw);
	}
	free(s->held);
	free(s->expected);
	free(s->hstate);
	free(s->tmask);
	msgpack_sbuffer_destroy(&s->args);
	ctl_filter_free(&s->filter);
}

static int
send_run(struct ctl *c, struct send *s)
{
	int t, rc;

	if ((rc = ctl_load_key(c)) != 0 || (rc = ctl_connect(c)) != 0)
		return rc;
	if ((rc = expected_from_presence(c, s)) != 0)
		return rc;
	for (t = 0; t < s->ntargets; t++)
		make_id(s->ids[t], sizeof(s->ids[t]));
	if (s->wait_ms && (rc = subscribe_results(c, s)) != 0)
		return rc;
	s->t0 = now_mono_ms();
	if ((rc = publish_jobs(c, s)) != 0)
		return rc;
	if (s->wait_ms == 0) {
		/* Not waiting for answers, but for the broker to have the jobs:
		 * QoS 1 means nothing until the PUBACK. */
		ctl_pump(c, now_mono_ms() + 10000, on_puback, s, NULL);
		if (s->unacked > 0 || s->pub_failed) {
			fprintf(stderr, "muster: the broker did not take the job%s\n",
			    s->ntargets > 1 ? "s" : "");
			return EXIT_USAGE;
		}
		for (t = 0; t < s->ntargets; t++)
			printf("%s\n", s->ids[t]);
		return EXIT_OK;
	}
	if (s->expect_count == 0 && !c->json)
		fprintf(stderr, "muster: %s; waiting for answers anyway (--expect N to say how "
		    "many)\n", s->filter.n && s->expect < 0 ? "no target host's facts match" :
		    "no host is known to be online there");
	ctl_pump(c, s->t0 + s->wait_ms, on_result, s, live_line);
	/* Answers before the PUBACK are possible in theory; leave nothing in
	 * flight (main() may exit without tearing the session down). */
	if (s->unacked > 0 && !s->lost && !s->pub_failed)
		ctl_pump(c, now_mono_ms() + 2000, on_puback, s, NULL);
	retry_held(c, s, true);
	rc = report(c, s);
	if (s->pub_failed && rc != EXIT_FAILED)
		fprintf(stderr, "muster: the broker did not take the job\n");
	/* Hosts missing because we lost the broker or it refused the job:
	 * a connection error, not a silent fleet. */
	return (s->lost || s->pub_failed) && rc != EXIT_FAILED ? EXIT_USAGE : rc;
}

int
cmd_run(struct ctl *c, int argc, char **argv)
{
	struct send s = { .kind = JOB_RUN, .ttl_ms = 600000, .wait_ms = 30000, .expect = -1 };
	int rc;

	if (strcmp(argv[0], "ping") == 0)
		s.kind = JOB_PING;
	else if (strcmp(argv[0], "version") == 0)
		s.kind = JOB_VERSION;
	else if (strcmp(argv[0], "update") == 0) {
		/* Staging, the self-test and the healthy window take a while. */
		s.kind = JOB_UPDATE;
		s.wait_ms = 300000;
	}
	msgpack_sbuffer_init(&s.args);
	s.tty = isatty(STDERR_FILENO);
	s.expected = calloc(MAX_EXPECTED, sizeof(*s.expected));
	s.hstate = calloc(MAX_EXPECTED, sizeof(*s.hstate));
	s.tmask = calloc(MAX_EXPECTED, sizeof(*s.tmask));
	if (s.expected == NULL || s.hstate == NULL || s.tmask == NULL)
		rc = EXIT_USAGE;
	else if ((rc = parse_run(c, &s, argc, argv)) == 0)
		rc = send_run(c, &s);
	send_free(&s);
	return rc == CTL_HELP ? EXIT_OK : rc;
}

int
cmd_cancel(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "wait", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct send s = { .kind = JOB_CANCEL, .ttl_ms = 60000, .wait_ms = 10000, .expect = -1 };
	int o, rc = 0;
	bool help = false;

	msgpack_sbuffer_init(&s.args);
	s.tty = isatty(STDERR_FILENO);
	s.expected = calloc(MAX_EXPECTED, sizeof(*s.expected));
	s.hstate = calloc(MAX_EXPECTED, sizeof(*s.hstate));
	s.tmask = calloc(MAX_EXPECTED, sizeof(*s.tmask));
	while (rc == 0 && !help && (o = getopt_long(argc, argv, "H:h", opts, NULL)) != -1) {
		if (o == 'H')
			rc = add_target(&s, TARGET_HOST, optarg);
		else if (o == 'w')
			if (strcmp(optarg, "0") == 0)
				s.wait_ms = 0;
			else
				rc = duration_opt(optarg, &s.wait_ms, "wait");
		else if (o == 'j')
			c->json = true;
		else if (o == 'h')
			help = true;
		else
			rc = -1;
	}
	if (help || rc != 0 || s.ntargets != 1 || optind + 1 != argc ||
	    !jobid_valid(argv[optind]) || s.expected == NULL || s.hstate == NULL ||
	    s.tmask == NULL) {
		fprintf(help ? stdout : stderr, "usage: muster cancel -H HOST [--wait DUR] "
		    "[--json] JOB\n"
		    "  stop job JOB on HOST (its result then says cancelled); the\n"
		    "  answer to the cancel job itself is pass, or fail if JOB is not\n"
		    "  running there\n");
		send_free(&s);
		return help ? EXIT_OK : EXIT_USAGE;
	}
	s.cancel = argv[optind];
	rc = send_run(c, &s);
	send_free(&s);
	return rc;
}
