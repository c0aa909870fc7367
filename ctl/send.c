/* SPDX-License-Identifier: Apache-2.0 */
/*
 * send.c - muster run / ping / version / update / cancel: the options, the
 * live line and the report of who answered, who did not and who answered
 * without being expected.  The job itself (build and sign, the expected
 * set, announce, publish, collect) is the core's (sendcore.c), which
 * libmuster-client runs too.
 */
#include "sendcore.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"
#include "mpjson.h"

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
		case 'H': rc = send_add_target(c, s, TARGET_HOST, optarg); break;
		case 'g': rc = send_add_target(c, s, TARGET_GROUP, optarg); break;
		case 'a': rc = send_add_target(c, s, TARGET_ALL, NULL); break;
		case 'F': rc = ctl_filter_add(c, &s->filter, optarg); break;
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
		rc = send_add_target(c, s, t.kind, t.name);
		optind++;
	}
	if (rc != 0 || send_targets_done(c, s, "-H, -g, -a or -F") != 0)
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
			s->wait_ms = send_run_wait(s);
		s->module = argv[optind++];
		if (pack_args(s, argc - optind, argv + optind) != 0)
			return EXIT_USAGE;
	} else if (optind != argc) {
		run_usage(stderr, argv[0]);
		return EXIT_USAGE;
	}
	return 0;
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
send_run(struct ctl *c, struct send *s)
{
	int t, rc;

	s->tty = isatty(STDERR_FILENO);
	if ((rc = send_start(c, s)) != 0)
		return rc;
	if (s->wait_ms == 0) {
		if ((rc = send_acked(c, s)) != 0)
			return rc;
		for (t = 0; t < s->ntargets; t++)
			printf("%s\n", s->ids[t]);
		return EXIT_OK;
	}
	if (s->expect_count == 0 && !c->json)
		fprintf(stderr, "muster: %s; waiting for answers anyway (--expect N to say how "
		    "many)\n", s->filter.n && s->expect < 0 ? "no target host's facts match" :
		    "no host is known to be online there");
	send_collect(c, s, live_line);
	if (s->lost)
		fprintf(stderr, "%smuster: lost the broker: %s\n", s->tty && !c->json ?
		    "\r\033[K" : "", s->lost_reason);
	send_finish(c, s);
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
	enum job_kind kind = strcmp(argv[0], "ping") == 0 ? JOB_PING :
	    strcmp(argv[0], "version") == 0 ? JOB_VERSION :
	    strcmp(argv[0], "update") == 0 ? JOB_UPDATE : JOB_RUN;
	struct send s;
	int rc;

	rc = send_init(&s, kind);
	/* Staging, the self-test and the healthy window take a while. */
	if (kind == JOB_UPDATE)
		s.wait_ms = 300000;
	if (rc == 0 && (rc = parse_run(c, &s, argc, argv)) == 0)
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
	struct send s;
	int o, rc = 0;
	bool help = false;
	bool alloc_failed = send_init(&s, JOB_CANCEL) != 0;

	s.ttl_ms = 60000;
	s.wait_ms = 10000;
	while (rc == 0 && !help && (o = getopt_long(argc, argv, "H:h", opts, NULL)) != -1) {
		if (o == 'H')
			rc = send_add_target(c, &s, TARGET_HOST, optarg);
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
	    !jobid_valid(argv[optind]) || alloc_failed) {
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

