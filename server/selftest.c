/* SPDX-License-Identifier: Apache-2.0 */
/*
 * selftest.c - muster-server's half of the self-update handshake
 * (design.md §5 step 2).
 *
 * A staged agent (client id <host>.selftest) publishes a host-signed
 * request with its nonce on R/hosts/<host>/selftest/request.  Servers
 * share those through the MQTT 5 shared subscription
 * $share/muster-selftest/..., so each request reaches one server.  That
 * server checks the host signature (the certificate chains to the CA, CN
 * = host in topic and body), sends one signed job - kind run, module
 * selftest.echo, a fresh nonce of its own as argument - on
 * R/hosts/<host>/selftest/jobs, signed with its operator key ([selftest]
 * key, which the agents must trust), subscribes to that job's result,
 * checks that the host-signed result passed and echoes the job's nonce,
 * and publishes the verdict {host, nonce (the request's), ok, reason?} on
 * R/hosts/<host>/selftest/verdict.  No result within [selftest] timeout:
 * a bad verdict.
 *
 * State is only what is in flight: a restart forgets it, and the agent
 * sends its request again.  A request repeated while its test runs is not
 * answered twice.
 *
 * Its own MQTT connection (client id muster-server-<name>.selftest, clean
 * session), so archive back-pressure never delays a verdict.  Loop thread
 * only.  Ownership: struct selftest (s->st) owns the bus, the key and
 * every struct st_test.
 */
#include "server.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "sign.h"

#define ST_SHARE	"muster-selftest"
#define ST_MODULE	"selftest.echo"
#define RETRY_MS	1000

struct st_test {
	char host[NAME_MAX_LEN + 1];
	char req_nonce[WIRE_MAX_NONCE + 1];	/* the agent's */
	char job_nonce[33];			/* ours, in the job */
	char job[JOBID_MAX_LEN + 1];
	char result_topic[TOPIC_MAX];
	uint64_t timer;
	struct server *s;
	struct st_test *next;
};

struct selftest {
	struct bus *bus;
	struct sign_key *key;
	struct st_test *tests;
	size_t ntests;
	bool connecting;
	uint64_t retry_timer;
	uint64_t answered, passed, failed, refused;
};

static void st_connect(struct server *s);

static int
random_hex(char *out, size_t bytes)
{
	uint8_t r[32];
	size_t i;

	if (bytes > sizeof(r) || getrandom(r, bytes, 0) != (ssize_t)bytes)
		return MU_EIO;
	for (i = 0; i < bytes; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	return MU_OK;
}

/* ---- verdicts ------------------------------------------------------------- */

static void
test_free(struct server *s, struct st_test *t)
{
	struct selftest *st = s->st;
	struct st_test **pp;

	for (pp = &st->tests; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	st->ntests--;
	if (t->timer)
		loop_del_timer(s->loop, t->timer);
	if (st->bus && bus_connected(st->bus))
		bus_unsubscribe(st->bus, t->result_topic, NULL);
	free(t);
}

static void
verdict(struct server *s, struct st_test *t, bool ok, const char *reason)
{
	struct selftest_verdict v;
	char topic[TOPIC_MAX];
	msgpack_sbuffer sb;
	struct mu_err err;

	memset(&v, 0, sizeof(v));
	snprintf(v.host, sizeof(v.host), "%s", t->host);
	snprintf(v.nonce, sizeof(v.nonce), "%s", t->req_nonce);
	v.ok = ok;
	if (reason)
		v.reason = (struct wire_str){ reason, strlen(reason) };
	msgpack_sbuffer_init(&sb);
	if (topic_build(topic, sizeof(topic), s->root, TOPIC_SELFTEST_VERDICT, t->host,
	    NULL) != MU_OK || selftest_verdict_encode(&v, &sb, &err) != MU_OK ||
	    bus_publish(s->st->bus, topic, sb.data, sb.size, 1, false, 0, NULL, &err) != MU_OK)
		log_err("self-test of %s: verdict not sent: %s", t->host, err.msg);
	else if (ok)
		log_notice("self-test of %s (job %s): passed", t->host, t->job);
	else
		log_warnx("self-test of %s (job %s): failed: %s", t->host, t->job,
		    reason ? reason : "");
	msgpack_sbuffer_destroy(&sb);
	s->st->answered++;
	if (ok)
		s->st->passed++;
	else
		s->st->failed++;
	test_free(s, t);
}

static void
test_expired(struct loop *l, uint64_t id, void *arg)
{
	struct st_test *t = arg;
	char why[128];

	(void)l, (void)id;
	t->timer = 0;
	snprintf(why, sizeof(why), "no result for the test job within %.1f s",
	    t->s->cfg.selftest_timeout_ms / 1000.0);
	verdict(t->s, t, false, why);
}

/* ---- the request ---------------------------------------------------------- */

static int
job_build(struct server *s, struct st_test *t, msgpack_sbuffer *env, struct mu_err *err)
{
	msgpack_sbuffer args, body;
	msgpack_unpacked up;
	msgpack_packer pk;
	struct job j;
	char who[NAME_MAX_LEN + 32];
	uint64_t now = now_wall_ms();
	int rc;

	msgpack_sbuffer_init(&args);
	msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "nonce", 5);
	msgpack_pack_str_with_body(&pk, t->job_nonce, strlen(t->job_nonce));
	msgpack_unpacked_init(&up);
	msgpack_unpack_next(&up, args.data, args.size, NULL);
	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "%s", t->job);
	j.kind = JOB_RUN;
	j.target.kind = TARGET_HOST;
	snprintf(j.target.name, sizeof(j.target.name), "%s", t->host);
	j.issued_at = now;
	j.not_after = now + s->cfg.selftest_timeout_ms;
	snprintf(who, sizeof(who), "muster-server %s", s->cfg.name);
	j.operator_ = (struct wire_str){ who, strlen(who) };
	snprintf(j.module, sizeof(j.module), ST_MODULE);
	j.args = &up.data;
	j.timeout_ms = s->cfg.selftest_timeout_ms;
	snprintf(j.aud, sizeof(j.aud), "%s/v1", s->root);
	msgpack_sbuffer_init(&body);
	rc = job_encode(&j, &body, err);
	if (rc == MU_OK)
		rc = envelope_sign(s->st->key, body.data, body.size, env, err);
	msgpack_sbuffer_destroy(&body);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&args);
	return rc;
}

static void
on_request(struct server *s, const char *thost, const uint8_t *p, size_t len)
{
	struct selftest *st = s->st;
	struct agent_envelope env;
	struct selftest_request q;
	struct st_test *t;
	char topic[TOPIC_MAX], *sub;
	msgpack_sbuffer sb;
	struct mu_err err = { "" };	/* "": signed by another host */
	const char *cn;

	if (agent_envelope_decode(p, len, &env, &err) != MU_OK) {
		st->refused++;
		log_warnx("self-test request for %s: not a signed agent message: %s", thost,
		    err.msg);
		return;
	}
	if (hostsig_verify(s->hv, &env, &cn, &err) != MU_OK || strcmp(cn, thost) != 0 ||
	    selftest_request_decode(env.body.ptr, env.body.len, &q, &err) != MU_OK) {
		st->refused++;
		log_warnx("self-test request for %s refused: %s", thost, strcmp(err.msg, "") ?
		    err.msg : "signed by another host");
		wire_doc_free(&env.doc);
		return;
	}
	wire_doc_free(&env.doc);
	if (strcmp(q.host, thost) != 0) {
		st->refused++;
		log_warnx("self-test request on %s's topic names host %s", thost, q.host);
		wire_doc_free(&q.doc);
		return;
	}
	for (t = st->tests; t; t = t->next)
		if (strcmp(t->host, q.host) == 0 && strcmp(t->req_nonce, q.nonce) == 0)
			break;
	if (t != NULL || st->ntests >= (size_t)s->cfg.selftest_max) {
		log_info("self-test request of %s (nonce %.12s...) %s", q.host, q.nonce,
		    t ? "repeated while its test runs: not answered twice" :
		    "dropped: too many at once (the agent asks again)");
		wire_doc_free(&q.doc);
		return;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		wire_doc_free(&q.doc);
		return;
	}
	t->s = s;
	snprintf(t->host, sizeof(t->host), "%s", q.host);
	snprintf(t->req_nonce, sizeof(t->req_nonce), "%s", q.nonce);
	log_info("self-test request of %s, version %s (nonce %.12s...)", q.host, q.version,
	    q.nonce);
	wire_doc_free(&q.doc);
	if (random_hex(t->job_nonce, 16) != MU_OK || random_hex(t->job + 9, 8) != MU_OK) {
		free(t);
		return;
	}
	memcpy(t->job, "selftest-", 9);
	topic_build(t->result_topic, sizeof(t->result_topic), s->root, TOPIC_RESULT, t->job,
	    t->host);
	t->next = st->tests;
	st->tests = t;
	st->ntests++;
	t->timer = loop_add_timer(s->loop, s->cfg.selftest_timeout_ms, test_expired, t);
	/* The result's subscription first: the job may be answered fast. */
	sub = t->result_topic;
	msgpack_sbuffer_init(&sb);
	if (bus_subscribe(st->bus, &sub, 1, 1, &err) != MU_OK ||
	    topic_build(topic, sizeof(topic), s->root, TOPIC_SELFTEST_JOBS, t->host,
	    NULL) != MU_OK || job_build(s, t, &sb, &err) != MU_OK ||
	    bus_publish(st->bus, topic, sb.data, sb.size, 1, false, 0, NULL, &err) != MU_OK)
		log_err("self-test of %s: job not sent: %s", t->host, err.msg);
	else
		log_info("self-test of %s: job %s sent", t->host, t->job);
	msgpack_sbuffer_destroy(&sb);
}

/* ---- the result ------------------------------------------------------------ */

static bool
nonce_echoed(const struct result *r, const char *nonce)
{
	const msgpack_object_map *m;
	uint32_t i;

	if (r->data == NULL)
		return false;
	m = &r->data->via.map;
	for (i = 0; i < m->size; i++) {
		const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 5 &&
		    memcmp(k->via.str.ptr, "nonce", 5) == 0)
			return v->type == MSGPACK_OBJECT_STR &&
			    v->via.str.size == strlen(nonce) &&
			    memcmp(v->via.str.ptr, nonce, v->via.str.size) == 0;
	}
	return false;
}

static void
on_result(struct server *s, struct st_test *t, const uint8_t *p, size_t len)
{
	struct agent_envelope env;
	struct result r;
	struct mu_err err;
	const char *cn;
	char why[300];

	/* Forged or broken: refused, and the real one is still awaited. */
	if (agent_envelope_decode(p, len, &env, &err) != MU_OK) {
		log_warnx("self-test of %s: result refused: %s", t->host, err.msg);
		return;
	}
	if (hostsig_verify(s->hv, &env, &cn, &err) != MU_OK) {
		log_warnx("self-test of %s: result refused: %s", t->host, err.msg);
		wire_doc_free(&env.doc);
		return;
	}
	if (strcmp(cn, t->host) != 0 ||
	    result_decode(env.body.ptr, env.body.len, &r, &err) != MU_OK) {
		log_warnx("self-test of %s: result refused (signer %.64s)", t->host, cn);
		wire_doc_free(&env.doc);
		return;
	}
	if (strcmp(r.job, t->job) != 0 || strcmp(r.host, t->host) != 0)
		log_warnx("self-test of %s: a result for job %s ignored", t->host, r.job);
	else if (r.status != RS_PASS) {
		snprintf(why, sizeof(why), "the test job ended %s%s%.*s",
		    result_status_name(r.status), r.reason.ptr ? ": " : "",
		    (int)(r.reason.len > 200 ? 200 : r.reason.len),
		    r.reason.ptr ? r.reason.ptr : "");
		wire_doc_free(&r.doc);
		wire_doc_free(&env.doc);
		verdict(s, t, false, why);
		return;
	} else if (!nonce_echoed(&r, t->job_nonce)) {
		wire_doc_free(&r.doc);
		wire_doc_free(&env.doc);
		verdict(s, t, false, "the test job did not echo its nonce");
		return;
	} else {
		wire_doc_free(&r.doc);
		wire_doc_free(&env.doc);
		verdict(s, t, true, NULL);
		return;
	}
	wire_doc_free(&r.doc);
	wire_doc_free(&env.doc);
}

/* ---- the connection -------------------------------------------------------- */

static void
on_message(struct server *s, const struct bus_event *ev)
{
	char host[NAME_MAX_LEN + 1], want[TOPIC_MAX];
	struct st_test *t;
	size_t n;

	if (ev->retained || ev->len == 0)
		return;
	for (t = s->st->tests; t; t = t->next)
		if (strcmp(ev->topic, t->result_topic) == 0) {
			on_result(s, t, ev->payload, ev->len);
			return;
		}
	/* R/hosts/<host>/selftest/request */
	n = (size_t)snprintf(want, sizeof(want), "%s/v1/hosts/", s->root);
	if (strncmp(ev->topic, want, n) != 0)
		return;
	snprintf(host, sizeof(host), "%.*s", (int)strcspn(ev->topic + n, "/"), ev->topic + n);
	if (!name_valid(host) || topic_build(want, sizeof(want), s->root,
	    TOPIC_SELFTEST_REQUEST, host, NULL) != MU_OK || strcmp(want, ev->topic) != 0)
		return;
	on_request(s, host, ev->payload, ev->len);
}

static void
retry_fired(struct loop *l, uint64_t id, void *arg)
{
	struct server *s = arg;

	(void)l, (void)id;
	s->st->retry_timer = 0;
	st_connect(s);
}

static void
on_bus_fd(struct loop *l, int fd, short revents, void *arg)
{
	struct server *s = arg;
	struct selftest *st = s->st;
	char filter[TOPIC_MAX], *topics[1] = { filter };
	struct bus_event *ev;
	struct st_test *t;

	(void)l, (void)fd, (void)revents;
	while ((ev = bus_next(st->bus)) != NULL) {
		switch (ev->type) {
		case BUS_CONNECTED:
			st->connecting = false;
			bus_tune_sockets();
			snprintf(filter, sizeof(filter), "$share/%s/%s/v1/hosts/+/selftest/request",
			    ST_SHARE, s->root);
			bus_subscribe(st->bus, topics, 1, 1, NULL);
			for (t = st->tests; t; t = t->next) {
				topics[0] = t->result_topic;
				bus_subscribe(st->bus, topics, 1, 1, NULL);
				topics[0] = filter;
			}
			log_notice("self-test: answering requests (key %s)", s->cfg.selftest_key);
			break;
		case BUS_CONNECT_FAILED:
		case BUS_LOST:
			st->connecting = false;
			log_warnx("self-test connection: %s", ev->reason);
			if (!st->retry_timer && !s->stopping)
				st->retry_timer = loop_add_timer(s->loop, RETRY_MS, retry_fired, s);
			break;
		case BUS_MESSAGE:
			on_message(s, ev);
			break;
		default:
			break;
		}
		bus_event_free(ev);
	}
}

static void
st_connect(struct server *s)
{
	struct mu_err err;

	if (s->st->connecting || bus_connected(s->st->bus))
		return;
	if (bus_connect(s->st->bus, &err) != MU_OK) {
		log_warnx("self-test connection: %s", err.msg);
		s->st->retry_timer = loop_add_timer(s->loop, RETRY_MS, retry_fired, s);
		return;
	}
	s->st->connecting = true;
}

int
selftest_open(struct server *s, struct mu_err *err)
{
	struct bus_opts o = { 0 };
	char id[NAME_MAX_LEN + 40];
	int rc;

	if (s->cfg.selftest_key[0] == '\0') {
		log_info("no [selftest] key: not answering self-test requests");
		return MU_OK;
	}
	if ((s->st = calloc(1, sizeof(*s->st))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	if ((rc = sign_key_load_private(s->cfg.selftest_key, &s->st->key, err)) != MU_OK)
		return rc;
	snprintf(id, sizeof(id), "muster-server-%s.selftest", s->cfg.name);
	o.broker = &s->cfg.broker;
	o.client_id = id;
	o.clean_start = true;	/* in flight only: a restart starts afresh */
	if ((rc = bus_new(&s->st->bus, &o, err)) != MU_OK)
		return rc;
	loop_add_fd(s->loop, bus_fd(s->st->bus), POLLIN, on_bus_fd, s);
	st_connect(s);
	return MU_OK;
}

void
selftest_close(struct server *s)
{
	struct selftest *st = s->st;

	if (st == NULL)
		return;
	if (st->answered || st->refused)
		log_info("self-test: %" PRIu64 " verdicts (%" PRIu64 " passed, %" PRIu64
		    " failed), %" PRIu64 " requests refused", st->answered, st->passed,
		    st->failed, st->refused);
	while (st->tests)
		test_free(s, st->tests);
	if (st->retry_timer)
		loop_del_timer(s->loop, st->retry_timer);
	if (st->bus) {
		loop_del_fd(s->loop, bus_fd(st->bus));
		if (bus_connected(st->bus))
			bus_disconnect(st->bus, 500);
		bus_free(st->bus);
	}
	sign_key_free(st->key);
	free(st);
	s->st = NULL;
}
