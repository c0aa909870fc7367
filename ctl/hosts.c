/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hosts.c - muster hosts (the retained presence of every host, -F: of
 * those whose facts match) and muster watch (the live feed of results and
 * events).
 */
#include "ctl.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loop.h"

#define RETAINED_QUIET_MS	200	/* no new retained status for this long: done */

static int
host_cmp(const void *x, const void *y)
{
	return strcmp(((const struct host_status *)x)->st.host,
	    ((const struct host_status *)y)->st.host);
}

static json_t *
status_json(const struct status *s)
{
	json_t *o = json_object(), *g = json_array();
	size_t i;

	for (i = 0; i < s->ngroups; i++)
		json_array_append_new(g, json_string(s->groups[i]));
	json_object_set_new(o, "host", json_string(s->host));
	json_object_set_new(o, "state", json_string(s->online ? "online" : "offline"));
	if (s->reason.ptr)
		json_object_set_new(o, "reason", json_text(s->reason.ptr, s->reason.len, NULL));
	json_object_set_new(o, "version", json_string(s->version));
	json_object_set_new(o, "channel", json_string(s->channel));
	json_object_set_new(o, "groups", g);
	json_object_set_new(o, "started_at", json_integer((json_int_t)s->started_at));
	json_object_set_new(o, "at", json_integer((json_int_t)s->at));
	return o;
}

static void
print_hosts(const struct host_list *h)
{
	char since[32], groups[256];
	size_t i, j;

	printf("%-20s  %-8s  %-10s  %-8s  %-20s  %s\n", "HOST", "STATE", "VERSION", "CHANNEL",
	    "SINCE", "GROUPS");
	for (i = 0; i < h->n; i++) {
		const struct status *s = &h->v[i].st;
		time_t t = (time_t)((s->online ? s->started_at : s->at) / 1000);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%SZ", &tm);
		groups[0] = '\0';
		for (j = 0; j < s->ngroups; j++)
			snprintf(groups + strlen(groups), sizeof(groups) - strlen(groups), "%s%s",
			    j ? "," : "", s->groups[j]);
		printf("%-20s  %-8s  %-10s  %-8s  %-20s  %s", s->host,
		    s->online ? "online" : "offline", s->version, s->channel, since, groups);
		if (s->reason.ptr) {
			fputs(" (", stdout);
			term_put(stdout, s->reason.ptr, s->reason.len, 200);
			putchar(')');
		}
		putchar('\n');
	}
}

/*
 * -F: keep the hosts whose verified facts match; *nofacts: how many had
 * none (left out too, and said so).  The statuses came first: their
 * certificates are what the facts are checked against.
 */
static int
hosts_filter(struct ctl *c, struct host_list *h, const struct ctl_filter *flt,
    size_t *nofacts)
{
	struct facts_list fl;
	const struct facts *f;
	size_t i, n = 0;
	int rc;

	if ((rc = facts_collect(c, NULL, &fl)) != 0)
		return rc;
	for (i = 0; i < h->n; i++) {
		f = facts_find(&fl, h->v[i].st.host);
		*nofacts += f == NULL;
		if (f != NULL && facts_match(f, &flt->f)) {
			h->v[n++] = h->v[i];
			continue;
		}
		wire_doc_free(&h->v[i].st.doc);
		free(h->v[i].raw);
	}
	h->n = n;
	facts_list_free(&fl);
	return 0;
}

static int
hosts_usage(FILE *f, int rc)
{
	fprintf(f, "usage: muster hosts [-F FILTER]... [--json]\n"
	    "  every host's retained status, online and offline, by name;\n"
	    "  -F, --filter 'FACT OP VALUE'   only hosts whose facts match (all\n"
	    "                      of them; OP: = != < <= > >= ~ has)\n"
	    "  --json: one JSON object per host\n");
	return rc;
}

int
cmd_hosts(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "filter", required_argument, NULL, 'F' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl_filter flt = { 0 };
	struct host_list h = { 0 };
	size_t i, nofacts = 0;
	int o, rc = 0;

	while (rc == 0 && (o = getopt_long(argc, argv, "F:h", opts, NULL)) != -1) {
		if (o == 'J')
			c->json = true;
		else if (o == 'F')
			rc = ctl_filter_add(c, &flt, optarg);
		else {
			ctl_filter_free(&flt);
			return hosts_usage(o == 'h' ? stdout : stderr, o == 'h' ? EXIT_OK :
			    EXIT_USAGE);
		}
	}
	if (rc == 0 && optind != argc)
		rc = hosts_usage(stderr, EXIT_USAGE);
	if (rc == 0 && (rc = ctl_filter_done(c, &flt)) == 0 && (rc = ctl_connect(c)) == 0 &&
	    (rc = hosts_collect(c, &h)) == 0 && flt.n)
		rc = hosts_filter(c, &h, &flt, &nofacts);
	ctl_filter_free(&flt);
	if (rc != 0) {
		hosts_free(&h);
		return rc;
	}
	if (h.n > 1)
		qsort(h.v, h.n, sizeof(*h.v), host_cmp);
	if (c->json)
		for (i = 0; i < h.n; i++)
			json_print_line(status_json(&h.v[i].st));
	else
		print_hosts(&h);
	if (nofacts && !c->json)
		printf("without facts (not shown): %zu host%s\n", nofacts, nofacts == 1 ? "" : "s");
	forged_report(c, stdout);
	hosts_free(&h);
	return 0;
}

/* ---- watch ------------------------------------------------------------ */

/* The last result seq seen from a host (results carry the host's counter,
 * design.md §3): a jump means results were lost on the way to this watcher. */
struct seen_seq {
	char host[NAME_MAX_LEN + 1];
	uint64_t last;
};

struct watch {
	char topics[3][TOPIC_MAX + 16];	/* status (certificates), results, events */
	uint64_t retry_at;	/* monotonic ms; 0 = connected or connecting */
	unsigned backoff_ms;
	bool gaps;		/* every result of a host is watched: count gaps */
	struct seen_seq *seqs;	/* owned */
	size_t nseqs;
};

/* Note a result's seq; returns how many results of that host were skipped
 * since the last one seen (0: none, or nothing to compare with). */
static uint64_t
watch_seq(struct watch *w, const char *host, uint64_t seq)
{
	struct seen_seq *v;
	uint64_t missed = 0;
	size_t i;

	for (i = 0; i < w->nseqs; i++)
		if (strcmp(w->seqs[i].host, host) == 0)
			break;
	if (i == w->nseqs) {
		if ((v = reallocarray(w->seqs, w->nseqs + 1, sizeof(*v))) == NULL)
			return 0;
		w->seqs = v;
		snprintf(v[w->nseqs].host, sizeof(v[w->nseqs].host), "%s", host);
		v[w->nseqs++].last = seq;
		return 0;
	}
	v = &w->seqs[i];
	if (seq > v->last + 1)
		missed = seq - v->last - 1;
	/* Older or equal: a duplicate delivery (QoS 1) or a resend, not a
	 * gap.  1 after more: the host's state was reset; count from there. */
	if (seq > v->last || seq == 1)
		v->last = seq;
	return missed;
}

static void
watch_gap(struct ctl *c, const char *host, uint64_t missed)
{
	json_t *o;

	if (c->json) {
		o = json_object();
		json_object_set_new(o, "type", json_string("gap"));
		json_object_set_new(o, "host", json_string(host));
		json_object_set_new(o, "missed", json_integer(missed > INT64_MAX ? INT64_MAX :
		    (json_int_t)missed));
		json_print_line(o);
	} else
		printf("missed %llu from %s\n", (unsigned long long)missed, host);
	fflush(stdout);
}

static int
watch_subscribe(struct ctl *c, struct watch *w)
{
	int i, rc;

	for (i = 0; i < 3; i++)
		if ((rc = ctl_subscribe(c, w->topics[i])) != 0)
			return rc;
	return 0;
}

/* The broker went away: say so, and connect again with a back-off (the
 * session is clean, so subscribe again once connected). */
static bool
watch_tick(struct ctl *c, void *arg)
{
	struct watch *w = arg;
	struct mu_err err;

	if (w->retry_at && now_mono_ms() >= w->retry_at) {
		w->retry_at = 0;
		if (bus_connect(c->bus, &err) != MU_OK) {
			w->retry_at = now_mono_ms() + w->backoff_ms;
			return false;
		}
	}
	return false;
}

static void
watch_lost(struct watch *w, const char *what, const char *reason)
{
	fprintf(stderr, "muster: %s (%s); trying again in %.1fs\n", what,
	    reason ? reason : "?", w->backoff_ms / 1000.0);
	w->retry_at = now_mono_ms() + w->backoff_ms;
	if (w->backoff_ms < 30000)
		w->backoff_ms *= 2;
}

static bool
topic_is(const char *topic, const char *suffix)
{
	size_t tl = strlen(topic), sl = strlen(suffix);

	return tl > sl && strcmp(topic + tl - sl, suffix) == 0;
}

/* A live feed has no end to count at: each forged message is a line. */
static void
watch_forged(struct ctl *c, const char *topic, const char *reason)
{
	forged_note(c, topic, reason);
	if (c->json)
		return;
	printf("forged: ");
	term_put(stdout, topic, strlen(topic), TOPIC_MAX);
	printf(": ");
	term_put(stdout, reason, strlen(reason), sizeof(((struct mu_err *)0)->msg));
	putchar('\n');
	fflush(stdout);
}

/* Statuses are watched for their certificates (a host that comes online
 * later signs with the one its status brings). */
static void
watch_status(struct ctl *c, struct bus_event *ev)
{
	struct mu_err err;
	struct status st;

	if (ev->len == 0)
		return;
	if (verify_status(c, ev->topic, ev->payload, ev->len, &st, &err) != MU_OK)
		watch_forged(c, ev->topic, err.msg);
	else
		wire_doc_free(&st.doc);
}

static bool
on_watch(struct ctl *c, struct bus_event *ev, void *arg)
{
	struct watch *w = arg;
	struct mu_err err;
	struct result r;
	struct event e;
	char dur[32];
	uint64_t missed;

	if (ev->type == BUS_LOST) {
		watch_lost(w, "lost the broker", ev->reason[0] ? ev->reason : NULL);
		return false;
	}
	if (ev->type == BUS_CONNECT_FAILED) {
		watch_lost(w, "cannot connect to the broker",
		    ev->reason[0] ? ev->reason : NULL);
		return false;
	}
	if (ev->type == BUS_CONNECTED) {
		fprintf(stderr, "muster: connected again\n");
		w->backoff_ms = 1000;
		bus_tune_sockets();
		if (watch_subscribe(c, w) != 0)
			watch_lost(w, "cannot subscribe", NULL);
		return false;
	}
	if (ev->type != BUS_MESSAGE)
		return false;
	if (topic_is(ev->topic, "/status")) {
		watch_status(c, ev);
	} else if (ev->retained) {
		/* A retained result is old or planted: not part of the feed. */
	} else if (topic_is(ev->topic, "/events")) {
		if (verify_event(c, ev->topic, ev->payload, ev->len, &e, &err) != MU_OK)
			return watch_forged(c, ev->topic, err.msg), false;
		if (c->json)
			json_print_line(event_json(&e));
		else if (e.text.ptr) {
			printf("%s %s | ", e.job, e.host);
			term_put(stdout, e.text.ptr, e.text.len, WIRE_MAX_STR);
			putchar('\n');
		}
		fflush(stdout);
		wire_doc_free(&e.doc);
	} else {
		if (verify_result(c, ev->topic, ev->payload, ev->len, &r, &err) != MU_OK)
			return watch_forged(c, ev->topic, err.msg), false;
		if (w->gaps && r.has_seq && (missed = watch_seq(w, r.host, r.seq)) > 0)
			watch_gap(c, r.host, missed);
		if (c->json)
			json_print_line(result_json(&r));
		else {
			printf("%s %s %s %s ", r.job, r.host, result_status_name(r.status),
			    human_ms(r.finished_at >= r.started_at ? r.finished_at - r.started_at : 0,
			    dur, sizeof(dur)));
			if (r.summary.ptr)
				term_put(stdout, r.summary.ptr, r.summary.len, 200);
			else
				term_put(stdout, r.reason.ptr, r.reason.len, 200);
			putchar('\n');
		}
		fflush(stdout);
		wire_doc_free(&r.doc);
	}
	return false;
}

int
cmd_watch(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "job", required_argument, NULL, 'j' },
		{ "host", required_argument, NULL, 'H' },
		{ "json", no_argument, NULL, 'J' },
		{ "session", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *job = "+", *host = "+";
	struct watch w = { .backoff_ms = 1000 };
	int o, rc;

	while ((o = getopt_long(argc, argv, "j:H:h", opts, NULL)) != -1) {
		if (o == 'j' && jobid_valid(optarg))
			job = optarg;
		else if (o == 'H' && name_valid(optarg))
			host = optarg;
		else if (o == 'J')
			c->json = true;
		else if (o == 'S' && name_valid(optarg)) {
			snprintf(c->session_id, sizeof(c->session_id), "muster-watch.%s", optarg);
		} else {
			if (o == 'j' || o == 'H' || o == 'S')
				fprintf(stderr, "muster: bad %s '%s'\n", o == 'j' ? "job id" :
				    o == 'H' ? "host name" : "session name", optarg);
			fprintf(o == 'h' ? stdout : stderr,
			    "usage: muster watch [--job ID] [--host H] [--session NAME] [--json]\n"
			    "  results (and live events of --stream jobs) as they arrive, until\n"
			    "  interrupted (Ctrl-C); --json: one JSON object per line.\n"
			    "  Every result of a host is numbered: a jump is shown as\n"
			    "  \"missed N from HOST\" (not with --job).  --session NAME (or\n"
			    "  [watch] session= in the config): a persistent broker session\n"
			    "  (client id muster-watch.NAME, kept [watch] session_expiry, 1 h):\n"
			    "  what arrives while disconnected is delivered on reconnect; one\n"
			    "  watcher per NAME at a time\n");
			return o == 'h' ? EXIT_OK : EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: muster watch [--job ID] [--host H] [--session NAME] "
		    "[--json]\n");
		return EXIT_USAGE;
	}
	if (c->session_id[0] == '\0' && c->cfg.watch_session[0]) {
		/* [watch] session= in the config: the same as --session. */
		snprintf(c->session_id, sizeof(c->session_id), "muster-watch.%s",
		    c->cfg.watch_session);
	}
	if (c->session_id[0])
		c->session_expiry_s = (uint32_t)(c->cfg.watch_expiry_ms / 1000);
	w.gaps = strcmp(job, "+") == 0;
	if ((rc = ctl_connect(c)) != 0)
		return rc;
	if (topic_filter(w.topics[0], sizeof(w.topics[0]), c->root, TOPIC_HOST_STATUS, host,
	    NULL) || topic_filter(w.topics[1], sizeof(w.topics[1]), c->root, TOPIC_RESULT,
	    job, host) || topic_filter(w.topics[2], sizeof(w.topics[2]), c->root,
	    TOPIC_RESULT_EVENTS, job, host)) {
		fprintf(stderr, "muster watch: bad --job or --host\n");
		return EXIT_USAGE;
	}
	if ((rc = watch_subscribe(c, &w)) != 0) {
		free(w.seqs);
		return rc;
	}
	ctl_pump(c, 0, on_watch, &w, watch_tick);
	free(w.seqs);
	return 0;
}
