/* SPDX-License-Identifier: Apache-2.0 */
/*
 * muster-bench - round-trip times through a real broker, for scripts/bench.
 *
 *	muster-bench -c OPERATOR.conf --echo-cert H.crt --echo-key H.key
 *	    --echo-host H --host AGENT [-n N] [--module NAME]
 *
 * Three measurements, each N round trips, one at a time:
 *  floor  the operator publishes a job-sized message to H's job topic; an
 *         echo client holding H's certificate (in this process) answers on
 *         H's result topic at once.  Same broker, same hops, same Paho, TLS
 *         and QoS 1 as a real job: everything but the agent.
 *  ping   a signed ping job to AGENT and its result.
 *  run    a signed run job of MODULE (default os.release) and its result:
 *         adds the runner process and the module.
 * Prints one line per measurement: name, p50, p90, p99 (ms) and p50 ratio
 * to the floor.
 *
 *	muster-bench -c OPERATOR.conf --fanout N [--kind ping|run]
 *	    one job to every host (target all): prints "fanout KIND N got
 *	    first_ms p50_ms last_ms job_id" (answers counted by distinct host).
 *	muster-bench -c OPERATOR.conf --host H --throughput K [--kind ping|run]
 *	    [--window W]
 *	    K jobs to H with up to W (default 64) unanswered at a time: prints
 *	    "throughput KIND K seconds jobs_per_s".
 */
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "config.h"
#include "loop.h"
#include "sign.h"
#include "wire.h"

struct bench {
	struct ctl_config cfg;
	struct broker_config echo_broker;
	struct bus *op, *echo;
	struct sign_key *key;
	const char *echo_host, *host, *module;
	int n;
	char want_topic[TOPIC_MAX];
	bool got;
	/* fan-out and throughput: answers counted by job id prefix */
	char prefix[64];
	size_t plen;
	int answers;
	uint64_t t0_us, *at_us;		/* fan-out: each answer's time */
	int nat;
	char (*hosts)[NAME_MAX_LEN + 1];	/* fan-out: who answered */
};

static void
die(const char *what)
{
	fprintf(stderr, "muster-bench: %s\n", what);
	exit(2);
}

static uint64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A result of one of ours: R/results/<prefix...>/<host>.  Fan-out counts
 * each host once (QoS 1 may deliver twice); throughput counts them all. */
static void
count_answer(struct bench *b, const char *topic)
{
	static const char pre[] = "muster/v1/results/";
	const char *job = topic + sizeof(pre) - 1, *host;
	int i;

	if (strncmp(topic, pre, sizeof(pre) - 1) != 0 ||
	    strncmp(job, b->prefix, b->plen) != 0 || (host = strchr(job, '/')) == NULL ||
	    strchr(++host, '/') != NULL)
		return;
	if (b->hosts) {
		for (i = 0; i < b->nat; i++)
			if (strcmp(b->hosts[i], host) == 0)
				return;
		if (b->nat >= b->n)
			return;
		snprintf(b->hosts[b->nat], sizeof(b->hosts[0]), "%s", host);
		b->at_us[b->nat++] = mono_us() - b->t0_us;
	}
	b->answers++;
}

/* Pump both sessions once (up to timeout ms). */
static void
pump(struct bench *b, int timeout)
{
	struct pollfd p[2] = { { bus_fd(b->op), POLLIN, 0 }, { -1, POLLIN, 0 } };
	struct bus_event *ev;
	char topic[TOPIC_MAX];

	if (b->echo)
		p[1].fd = bus_fd(b->echo);
	poll(p, b->echo ? 2 : 1, timeout);
	if (b->echo == NULL)
		goto op;
	while ((ev = bus_next(b->echo)) != NULL) {
		/* The echo host answers every message on its job topic. */
		if (ev->type == BUS_MESSAGE &&
		    topic_build(topic, sizeof(topic), "muster", TOPIC_RESULT, "bench-floor",
		    b->echo_host) == MU_OK)
			bus_publish(b->echo, topic, ev->payload, ev->len, 1, false, 0, NULL, NULL);
		bus_event_free(ev);
	}
op:
	while ((ev = bus_next(b->op)) != NULL) {
		if (ev->type == BUS_MESSAGE && strcmp(ev->topic, b->want_topic) == 0)
			b->got = true;
		if (ev->type == BUS_MESSAGE && b->plen)
			count_answer(b, ev->topic);
		bus_event_free(ev);
	}
}

static void
wait_connected(struct bench *b, struct bus *x)
{
	uint64_t end = now_mono_ms() + 10000;

	while (!bus_connected(x) && now_mono_ms() < end)
		pump(b, 50);
	if (!bus_connected(x))
		die("cannot connect");
	bus_tune_sockets();
}

static void
subscribe(struct bench *b, const char *topic)
{
	char *t[1] = { (char *)topic };

	if (bus_subscribe(b->op, t, 1, 1, NULL) != MU_OK)
		die("subscribe");
	pump(b, 200);
}

static int
cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, c = *(const uint64_t *)y;

	return a < c ? -1 : a > c;
}

/* One round trip: publish, pump until the awaited topic shows up. */
static uint64_t
round_trip(struct bench *b, const char *topic, const void *p, size_t len)
{
	uint64_t t0, deadline;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	b->got = false;
	if (bus_publish(b->op, topic, p, len, 1, false, 0, NULL, NULL) != MU_OK)
		die("publish");
	deadline = now_mono_ms() + 10000;
	while (!b->got && now_mono_ms() < deadline)
		pump(b, 100);
	if (!b->got)
		die("no answer within 10 s");
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000 - t0;
}

static void
job_envelope(struct bench *b, enum job_kind kind, int i, msgpack_sbuffer *env,
    char *id, size_t idlen)
{
	msgpack_sbuffer body;
	struct job j;

	memset(&j, 0, sizeof(j));
	if (b->plen)
		snprintf(id, idlen, "%.40s%d", b->prefix, i);
	else
		snprintf(id, idlen, "bench-%llu-%d", (unsigned long long)now_wall_ms(), i);
	snprintf(j.id, sizeof(j.id), "%s", id);
	j.kind = kind;
	if (b->host == NULL)
		j.target.kind = TARGET_ALL;
	else {
		j.target.kind = TARGET_HOST;
		snprintf(j.target.name, sizeof(j.target.name), "%s", b->host);
	}
	j.issued_at = now_wall_ms();
	j.not_after = j.issued_at + 60000;
	aud_format(j.aud, sizeof(j.aud), TOPIC_ROOT_DEFAULT);
	if (kind == JOB_RUN)
		snprintf(j.module, sizeof(j.module), "%s", b->module);
	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(env);
	if (job_encode(&j, &body, NULL) != MU_OK ||
	    envelope_sign(b->key, body.data, body.size, env, NULL) != MU_OK)
		die("cannot build a job");
	msgpack_sbuffer_destroy(&body);
}

static void
report(const char *name, uint64_t *us, int n, double floor_p50)
{
	double p50, p90, p99;

	qsort(us, n, sizeof(*us), cmp_u64);
	p50 = us[n / 2] / 1000.0, p90 = us[n * 9 / 10] / 1000.0, p99 = us[n * 99 / 100] / 1000.0;
	printf("%-6s p50 %8.3f ms  p90 %8.3f ms  p99 %8.3f ms  x%.1f of floor\n", name, p50,
	    p90, p99, floor_p50 > 0 ? p50 / floor_p50 : 1.0);
}

static double
measure(struct bench *b, const char *name, enum job_kind kind, double floor_p50)
{
	uint64_t *us = calloc(b->n, sizeof(*us));
	char topic[TOPIC_MAX], id[64];
	msgpack_sbuffer env;
	int i;
	double p50;

	for (i = 0; i < b->n; i++) {
		/* The floor carries a ping envelope too: same size on the wire. */
		job_envelope(b, kind == JOB_UNKNOWN ? JOB_PING : kind, i, &env, id, sizeof(id));
		if (kind == JOB_UNKNOWN) {
			/* floor: the same envelope, to the echo host's topic */
			topic_build(topic, sizeof(topic), "muster", TOPIC_HOST_JOBS, b->echo_host, NULL);
			topic_build(b->want_topic, sizeof(b->want_topic), "muster", TOPIC_RESULT,
			    "bench-floor", b->echo_host);
		} else {
			topic_build(topic, sizeof(topic), "muster", TOPIC_HOST_JOBS, b->host, NULL);
			topic_build(b->want_topic, sizeof(b->want_topic), "muster", TOPIC_RESULT, id,
			    b->host);
		}
		us[i] = round_trip(b, topic, env.data, env.size);
		msgpack_sbuffer_destroy(&env);
	}
	report(name, us, b->n, floor_p50);
	qsort(us, b->n, sizeof(*us), cmp_u64);
	p50 = us[b->n / 2] / 1000.0;
	free(us);
	return p50;
}

static int
cmp_u64s(const void *x, const void *y)
{
	return cmp_u64(x, y);
}

/* One job to every host; time each host's first answer. */
static void
fanout(struct bench *b, enum job_kind kind)
{
	char topic[TOPIC_MAX], id[64];
	msgpack_sbuffer env;
	uint64_t deadline, last_new;
	int seen = -1;

	snprintf(b->prefix, sizeof(b->prefix), "fan-%llu-", (unsigned long long)now_wall_ms());
	b->plen = strlen(b->prefix);
	b->at_us = calloc(b->n, sizeof(*b->at_us));
	b->hosts = calloc(b->n, sizeof(*b->hosts));
	if (b->at_us == NULL || b->hosts == NULL)
		die("out of memory");
	job_envelope(b, kind, 0, &env, id, sizeof(id));
	topic_build(topic, sizeof(topic), "muster", TOPIC_ALL_JOBS, NULL, NULL);
	b->t0_us = mono_us();
	if (bus_publish(b->op, topic, env.data, env.size, 1, false, 0, NULL, NULL) != MU_OK)
		die("publish");
	msgpack_sbuffer_destroy(&env);
	/* Until all N answered, or 60 s, or 10 s without a new answer. */
	deadline = now_mono_ms() + 60000;
	last_new = now_mono_ms();
	while (b->nat < b->n && now_mono_ms() < deadline && now_mono_ms() - last_new < 10000) {
		pump(b, 100);
		if (b->nat != seen)
			seen = b->nat, last_new = now_mono_ms();
	}
	qsort(b->at_us, b->nat, sizeof(uint64_t), cmp_u64s);
	printf("fanout %s %d %d %.1f %.1f %.1f %s\n", kind == JOB_RUN ? "run" : "ping", b->n,
	    b->nat, b->nat ? b->at_us[0] / 1000.0 : 0, b->nat ? b->at_us[b->nat / 2] / 1000.0 : 0,
	    b->nat ? b->at_us[b->nat - 1] / 1000.0 : 0, id);
}

/* K jobs to one host, at most W unanswered at a time. */
static void
throughput(struct bench *b, enum job_kind kind, int k, int window)
{
	char topic[TOPIC_MAX], id[64];
	msgpack_sbuffer env;
	uint64_t t0, deadline;
	int sent = 0;

	snprintf(b->prefix, sizeof(b->prefix), "tp-%llu-", (unsigned long long)now_wall_ms());
	b->plen = strlen(b->prefix);
	topic_build(topic, sizeof(topic), "muster", TOPIC_HOST_JOBS, b->host, NULL);
	t0 = mono_us();
	deadline = now_mono_ms() + 300000;
	while (b->answers < k && now_mono_ms() < deadline) {
		while (sent < k && sent - b->answers < window) {
			job_envelope(b, kind, sent++, &env, id, sizeof(id));
			if (bus_publish(b->op, topic, env.data, env.size, 1, false, 0, NULL,
			    NULL) != MU_OK)
				die("publish");
			msgpack_sbuffer_destroy(&env);
		}
		pump(b, 50);
	}
	if (b->answers < k)
		die("throughput: not all answers within 300 s");
	printf("throughput %s %d %.3f %.0f\n", kind == JOB_RUN ? "run" : "ping", k,
	    (mono_us() - t0) / 1e6, k / ((mono_us() - t0) / 1e6));
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "echo-cert", required_argument, NULL, 'C' },
		{ "echo-key", required_argument, NULL, 'K' },
		{ "echo-host", required_argument, NULL, 'E' },
		{ "host", required_argument, NULL, 'H' },
		{ "module", required_argument, NULL, 'm' },
		{ "fanout", required_argument, NULL, 'F' },
		{ "throughput", required_argument, NULL, 'T' },
		{ "kind", required_argument, NULL, 'k' },
		{ "window", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	int nfan = 0, ktp = 0, window = 64;
	enum job_kind kind = JOB_PING;
	struct bench b = { .n = 200, .module = "os.release" };
	struct bus_opts o = { .max_events = 65536 };
	const char *conf = NULL, *ecert = NULL, *ekey = NULL;
	char topic[TOPIC_MAX + 16], *t[1];
	double floor_p50;
	int c;

	while ((c = getopt_long(argc, argv, "c:n:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'n': b.n = atoi(optarg); break;
		case 'C': ecert = optarg; break;
		case 'K': ekey = optarg; break;
		case 'E': b.echo_host = optarg; break;
		case 'H': b.host = optarg; break;
		case 'm': b.module = optarg; break;
		case 'F': nfan = atoi(optarg); break;
		case 'T': ktp = atoi(optarg); break;
		case 'w': window = atoi(optarg); break;
		case 'k': kind = strcmp(optarg, "run") == 0 ? JOB_RUN : JOB_PING; break;
		default: die("bad usage");
		}
	}
	if (nfan > 0 || ktp > 0) {
		if (!conf || (ktp > 0 && !b.host) || window < 1)
			die("usage: muster-bench -c CONF --fanout N | --host H --throughput K "
			    "[--kind ping|run] [--window W]");
		config_ctl_defaults(&b.cfg);
		if (config_ctl_load(&b.cfg, conf, NULL) != MU_OK ||
		    sign_key_load_private(b.cfg.operator_key, &b.key, NULL) != MU_OK)
			die("bad config or operator key");
		o.broker = &b.cfg.broker, o.client_id = "bench-op", o.clean_start = true;
		if (bus_new(&b.op, &o, NULL) != MU_OK || bus_connect(b.op, NULL) != MU_OK)
			die("operator session");
		wait_connected(&b, b.op);
		snprintf(topic, sizeof(topic), "muster/v1/results/+/+");
		subscribe(&b, topic);
		if (nfan > 0) {
			b.n = nfan;
			b.host = NULL;
			fanout(&b, kind);
		} else
			throughput(&b, kind, ktp, window);
		bus_free(b.op);
		sign_key_free(b.key);
		free(b.at_us);
		free(b.hosts);
		return 0;
	}
	if (!conf || !ecert || !ekey || !b.echo_host || !b.host || b.n < 10)
		die("usage: muster-bench -c CONF --echo-cert F --echo-key F --echo-host H "
		    "--host AGENT [-n N>=10] [--module NAME]");
	config_ctl_defaults(&b.cfg);
	if (config_ctl_load(&b.cfg, conf, NULL) != MU_OK ||
	    sign_key_load_private(b.cfg.operator_key, &b.key, NULL) != MU_OK)
		die("bad config or operator key");
	b.echo_broker = b.cfg.broker;
	snprintf(b.echo_broker.cert, sizeof(b.echo_broker.cert), "%s", ecert);
	snprintf(b.echo_broker.key, sizeof(b.echo_broker.key), "%s", ekey);
	o.broker = &b.cfg.broker, o.client_id = "bench-op", o.clean_start = true;
	if (bus_new(&b.op, &o, NULL) != MU_OK || bus_connect(b.op, NULL) != MU_OK)
		die("operator session");
	o.broker = &b.echo_broker, o.client_id = b.echo_host;
	if (bus_new(&b.echo, &o, NULL) != MU_OK || bus_connect(b.echo, NULL) != MU_OK)
		die("echo session");
	wait_connected(&b, b.op);
	wait_connected(&b, b.echo);
	topic_build(topic, sizeof(topic), "muster", TOPIC_HOST_JOBS, b.echo_host, NULL);
	t[0] = topic;
	bus_subscribe(b.echo, t, 1, 1, NULL);
	snprintf(topic, sizeof(topic), "muster/v1/results/+/+");
	subscribe(&b, topic);
	floor_p50 = measure(&b, "floor", JOB_UNKNOWN, 0);
	measure(&b, "ping", JOB_PING, floor_p50);
	measure(&b, "run", JOB_RUN, floor_p50);
	bus_free(b.op);
	bus_free(b.echo);
	sign_key_free(b.key);
	return 0;
}
