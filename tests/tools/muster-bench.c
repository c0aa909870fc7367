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
};

static void
die(const char *what)
{
	fprintf(stderr, "muster-bench: %s\n", what);
	exit(2);
}

/* Pump both sessions once (up to timeout ms). */
static void
pump(struct bench *b, int timeout)
{
	struct pollfd p[2] = { { bus_fd(b->op), POLLIN, 0 }, { bus_fd(b->echo), POLLIN, 0 } };
	struct bus_event *ev;
	char topic[TOPIC_MAX];

	poll(p, 2, timeout);
	while ((ev = bus_next(b->echo)) != NULL) {
		/* The echo host answers every message on its job topic. */
		if (ev->type == BUS_MESSAGE &&
		    topic_build(topic, sizeof(topic), "muster", TOPIC_RESULT, "bench-floor",
		    b->echo_host) == MU_OK)
			bus_publish(b->echo, topic, ev->payload, ev->len, 1, false, 0, NULL, NULL);
		bus_event_free(ev);
	}
	while ((ev = bus_next(b->op)) != NULL) {
		if (ev->type == BUS_MESSAGE && strcmp(ev->topic, b->want_topic) == 0)
			b->got = true;
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
	snprintf(id, idlen, "bench-%llu-%d", (unsigned long long)now_wall_ms(), i);
	snprintf(j.id, sizeof(j.id), "%s", id);
	j.kind = kind;
	j.target.kind = TARGET_HOST;
	snprintf(j.target.name, sizeof(j.target.name), "%s", b->host);
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

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "echo-cert", required_argument, NULL, 'C' },
		{ "echo-key", required_argument, NULL, 'K' },
		{ "echo-host", required_argument, NULL, 'E' },
		{ "host", required_argument, NULL, 'H' },
		{ "module", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench b = { .n = 200, .module = "os.release" };
	struct bus_opts o = { 0 };
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
		default: die("bad usage");
		}
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
