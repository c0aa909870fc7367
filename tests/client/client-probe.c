/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client-probe.c - a test driver for libmuster-client (tests/system/
 * test_client.py): sends one job through the public API only and prints
 * what each call gave back, one JSON object per line on stdout:
 *   {"type":"error","call":"open|send|next","rc":N,"name":"MUSTER_...","error":"..."}
 *   the result's muster_result_json() text, as is
 *   {"type":"fields", ...}: the same result through the accessors
 *   {"type":"end", "rc":..., "ids":[...], "missing":[...], summary counts}
 * --old-abi passes the structs as a program built against an older,
 * shorter header would: sizes that end before settings.persist,
 * spec.wait_ms and summary.pass (whose value must stay as it was).
 * --signals prints {"type":"signals",...} once the session is open: are
 * SIGINT and SIGTERM still at their defaults, and not blocked?
 * --repeat N sends the job N times one after the other (send, read to the
 * end, free) and prints {"type":"bench",...}: per-job milliseconds.
 * --jobs N sends the job N times before reading any result, then reads
 * each job's results in turn (an "end" line per job).
 * Exit status: the last muster_rc (0 for MUSTER_DONE / wait's MUSTER_OK).
 *
 * usage: client-probe [--config F] [--persist -1|0|1] [--broker URI] [--operator-key F]
 *   [--ca F] [--cert F] [--key F] [--topic-root R]
 *   [--wait MS] [--timeout MS] [--callback] [--no-settings] [--jobs N]
 *   ping|version|run [-H H]... [-g G]... [-a] [-F PRED]... [MODULE [ARGS_JSON]]
 */
#include <muster/client.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#define MAX_LIST	16

static const char *
rc_name(int rc)
{
	static const char *names[] = {
		"MUSTER_OK", "MUSTER_DONE", "MUSTER_ETIMEOUT", "MUSTER_ECONFIG", "MUSTER_EKEY",
		"MUSTER_ECONNECT", "MUSTER_ELOST", "MUSTER_EINVAL", "MUSTER_EREFUSED",
		"MUSTER_ENOMEM", "MUSTER_EINTERNAL",
	};

	return rc >= 0 && rc < (int)(sizeof(names) / sizeof(names[0])) ? names[rc] : "?";
}

static void
print_json(json_t *j)
{
	char *t = json_dumps(j, JSON_COMPACT);

	puts(t ? t : "null");
	free(t);
	json_decref(j);
	fflush(stdout);
}

static int
fail(const char *call, int rc, const char *msg)
{
	print_json(json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type", "error", "call", call,
	    "rc", rc, "name", rc_name(rc), "error", msg ? msg : "",
	    "strerror", muster_strerror(rc)));
	return rc;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* n jobs in a row on one session: each sent, read to its end, freed. */
static int
bench(muster_session *s, const struct muster_job_spec *spec, int n)
{
	double *ms = calloc((size_t)n, sizeof(*ms)), t0, total = 0;
	const muster_result *r;
	muster_job *j;
	int i, rc = MUSTER_OK;

	for (i = 0; ms != NULL && i < n; i++) {
		t0 = now_ms();
		if ((rc = muster_job_send(s, spec, &j)) != MUSTER_OK)
			break;
		while ((rc = muster_job_next(j, &r)) == MUSTER_OK)
			;
		muster_job_free(j);
		if (rc != MUSTER_DONE)
			break;
		rc = MUSTER_OK;
		ms[i] = now_ms() - t0;
		total += ms[i];
	}
	if (rc != MUSTER_OK || ms == NULL) {
		free(ms);
		return fail("bench", rc, muster_session_error(s));
	}
	qsort(ms, (size_t)n, sizeof(*ms), cmp_double);
	print_json(json_pack("{s:s, s:i, s:f, s:f, s:f, s:f}", "type", "bench", "n", n,
	    "total_ms", total, "p50_ms", ms[n / 2], "p90_ms", ms[n * 9 / 10],
	    "max_ms", ms[n - 1]));
	free(ms);
	return MUSTER_OK;
}

/* What the library did to the process's signals: nothing, it says. */
static void
signals_line(void)
{
	struct sigaction si, st;
	sigset_t blocked;

	sigaction(SIGINT, NULL, &si);
	sigaction(SIGTERM, NULL, &st);
	sigprocmask(SIG_BLOCK, NULL, &blocked);
	print_json(json_pack("{s:s, s:b, s:b, s:b}", "type", "signals",
	    "int_default", si.sa_handler == SIG_DFL, "term_default", st.sa_handler == SIG_DFL,
	    "blocked", sigismember(&blocked, SIGINT) || sigismember(&blocked, SIGTERM)));
}

static void
show(const muster_result *r, void *arg)
{
	json_t *data = json_loads(muster_result_data_json(r), 0, NULL);
	size_t olen;
	const char *out = muster_result_output(r, &olen);

	(void)arg;
	puts(muster_result_json(r));
	print_json(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:s%, s:I}",
	    "type", "fields", "host", muster_result_host(r), "job", muster_result_job(r),
	    "status", muster_result_status(r), "summary", muster_result_summary(r),
	    "reason", muster_result_reason(r), "module", muster_result_module(r),
	    "agent_version", muster_result_agent_version(r),
	    "started_at", (json_int_t)muster_result_started_at(r),
	    "finished_at", (json_int_t)muster_result_finished_at(r),
	    "data", data ? data : json_null(), "output", out, olen, "output_len",
	    (json_int_t)olen));
}

int
main(int argc, char **argv)
{
	struct muster_settings st = { .size = sizeof(st), .persist = -1 };
	struct muster_job_spec spec = { .size = sizeof(spec) };
	struct muster_summary sum = { .size = sizeof(sum) };
	const char *hosts[MAX_LIST], *groups[MAX_LIST], *filters[MAX_LIST];
	char err[512];
	muster_session *s;
	muster_job *j;
	const muster_result *r;
	const char *p;
	json_t *ids, *missing;
	muster_job *jobs[MAX_LIST];
	int i = 1, rc, callback = 0, no_settings = 0, njobs = 1, n, last = MUSTER_OK, repeat = 0,
	    signals = 0, old_abi = 0;
	size_t k;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--callback") == 0)
			callback = 1;
		else if (strcmp(argv[i], "--old-abi") == 0)
			old_abi = 1;
		else if (strcmp(argv[i], "--signals") == 0)
			signals = 1;
		else if (strcmp(argv[i], "--no-settings") == 0)
			no_settings = 1;
		else if (i + 1 >= argc)
			return fprintf(stderr, "client-probe: %s wants a value\n", argv[i]), 2;
		else if (strcmp(argv[i], "--config") == 0)
			st.config = argv[++i];
		else if (strcmp(argv[i], "--broker") == 0)
			st.broker_uri = argv[++i];
		else if (strcmp(argv[i], "--operator-key") == 0)
			st.operator_key = argv[++i];
		else if (strcmp(argv[i], "--ca") == 0)
			st.ca = argv[++i];
		else if (strcmp(argv[i], "--cert") == 0)
			st.cert = argv[++i];
		else if (strcmp(argv[i], "--key") == 0)
			st.key = argv[++i];
		else if (strcmp(argv[i], "--topic-root") == 0)
			st.topic_root = argv[++i];
		else if (strcmp(argv[i], "--persist") == 0)
			st.persist = atoi(argv[++i]);
		else if (strcmp(argv[i], "--wait") == 0)
			spec.wait_ms = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--repeat") == 0)
			repeat = atoi(argv[++i]);
		else if (strcmp(argv[i], "--jobs") == 0)
			njobs = atoi(argv[++i]) > 0 && atoi(argv[i]) <= MAX_LIST ? atoi(argv[i]) : 1;
		else if (strcmp(argv[i], "--timeout") == 0)
			spec.timeout_ms = strtoull(argv[++i], NULL, 10);
		else
			return fprintf(stderr, "client-probe: unknown %s\n", argv[i]), 2;
	}
	if (i >= argc)
		return fprintf(stderr, "client-probe: no kind\n"), 2;
	spec.kind = strcmp(argv[i], "run") == 0 ? MUSTER_JOB_RUN :
	    strcmp(argv[i], "version") == 0 ? MUSTER_JOB_VERSION :
	    strcmp(argv[i], "ping") == 0 ? MUSTER_JOB_PING : (enum muster_job_kind)99;
	for (i++; i < argc; i++) {
		if (strcmp(argv[i], "-a") == 0)
			spec.all = 1;
		else if (i + 1 < argc && strcmp(argv[i], "-H") == 0 && spec.nhosts < MAX_LIST)
			hosts[spec.nhosts++] = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "-g") == 0 && spec.ngroups < MAX_LIST)
			groups[spec.ngroups++] = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "-F") == 0 && spec.nfilters < MAX_LIST)
			filters[spec.nfilters++] = argv[++i];
		else if (spec.module == NULL)
			spec.module = argv[i];
		else
			spec.args_json = argv[i];
	}
	if (old_abi) {
		st.size = offsetof(struct muster_settings, persist);
		spec.size = offsetof(struct muster_job_spec, wait_ms);
		spec.wait_ms = 1;	/* past the old struct: must not be read */
		sum.size = offsetof(struct muster_summary, pass);
	}
	spec.hosts = hosts;
	spec.groups = groups;
	spec.filters = filters;

	if ((rc = muster_session_open(no_settings ? NULL : &st, &s, err, sizeof(err))) != MUSTER_OK)
		return fail("open", rc, err);
	if (signals)
		signals_line();
	if (repeat > 0) {
		rc = bench(s, &spec, repeat);
		muster_session_close(s);
		return rc;
	}
	for (n = 0; n < njobs; n++)
		if ((rc = muster_job_send(s, &spec, &jobs[n])) != MUSTER_OK) {
			rc = fail("send", rc, muster_session_error(s));
			muster_session_close(s);
			return rc;
		}
	for (n = 0; n < njobs; n++) {
		j = jobs[n];
		if (callback) {
			rc = muster_job_wait(j, show, NULL);
		} else {
			while ((rc = muster_job_next(j, &r)) == MUSTER_OK)
				show(r, NULL);
			if (rc == MUSTER_DONE)
				rc = MUSTER_OK;
		}
		if (rc != MUSTER_OK && rc != MUSTER_ETIMEOUT)
			fail("next", rc, muster_session_error(s));
		ids = json_array();
		for (k = 0; (p = muster_job_id(j, k)) != NULL; k++)
			json_array_append_new(ids, json_string(p));
		missing = json_array();
		for (k = 0; (p = muster_job_missing(j, k)) != NULL; k++)
			json_array_append_new(missing, json_string(p));
		sum.pass = 12345;	/* past an old struct: must stay */
		muster_job_summary(j, &sum);
		if (old_abi)
			print_json(json_pack("{s:s, s:b}", "type", "old_abi", "tail_untouched",
			    sum.pass == 12345));
		print_json(json_pack("{s:s, s:i, s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:I, "
		    "s:I, s:I, s:I, s:I}", "type", "end", "rc", rc, "name", rc_name(rc),
		    "error", muster_session_error(s), "ids", ids, "missing", missing,
		    "expected", (json_int_t)sum.expected, "answered", (json_int_t)sum.answered,
		    "missing_n", (json_int_t)sum.missing, "unexpected", (json_int_t)sum.unexpected,
		    "forged", (json_int_t)sum.forged, "pass", (json_int_t)sum.pass,
		    "fail", (json_int_t)sum.fail, "error_n", (json_int_t)sum.error,
		    "timeout", (json_int_t)sum.timeout));
		if (rc != MUSTER_OK)
			last = rc;
		/* The first job freed by hand, the others by the session. */
		if (n == 0)
			muster_job_free(j);
	}
	rc = last;
	/* Freed by the session, as the header says: the job goes with it. */
	muster_session_close(s);
	return rc;
}
