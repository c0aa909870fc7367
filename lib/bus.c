/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bus.c - Paho MQTTAsync behind a locked queue and an eventfd.
 */
#include "bus.h"
#include "bus_relay.h"
#include "inbox.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "paho_idle.h"

#define BUS_QUEUE_MAX_EVENTS	4096
#define BUS_QUEUE_MAX_BYTES	(256u * 1024 * 1024)

struct bus {
	/* Set: the session is borrowed from the persist relay and every call
	 * goes to bus_relay.c; nothing below it is used. */
	struct bus_relay *relay;
	MQTTAsync client;
	int efd;
	int mqtt_version;
	bool retain_as_published;	/* on every subscription (MQTT 5) */
	size_t max_events;		/* queue bound, BUS_QUEUE_MAX_EVENTS by default */
	struct inbox *inbox;		/* borrowed; NULL: none (bus.h) */
	char durable_suffix[32];
	uint64_t inbox_failures;	/* under lock */
	bool connected;			/* as last reported to the owner */
	pthread_mutex_t lock;		/* guards the queue and idle state below */
	struct bus_event *head, *tail;
	size_t nevents, nbytes;
	/* Idle (paho_idle.h) = connected and nothing awaiting an ack.  A
	 * completion Paho never reports leaves the session busy: Paho's own
	 * timing, never a delayed write. */
	bool settled;			/* connected, per Paho's callbacks */
	unsigned inflight;		/* publishes/subscribes awaiting acks */
	bool idle_held;			/* counted busy in paho_idle */
	/* Connect options live as long as the bus: Paho reads them on every
	 * attempt. */
	char *uris[CONF_MAX_URIS];
	int nuris;
	/* Paho is given one URI per attempt, never the list: with a list, a
	 * session lost on any but the last URI makes Paho connect to the next
	 * one on its own, and that connect reports to no callback (the owner
	 * would wait for it forever).  The owner's thread walks the list
	 * instead (bus_next()).  Owner thread only. */
	int uri_cur;			/* URI of the current or last attempt */
	int uri_tried;			/* attempts in this round */
	MQTTAsync_SSLOptions ssl;
	MQTTAsync_willOptions will;
	char *will_topic;		/* owned copies: Paho reads the will */
	void *will_payload;		/* again on every connect */
	MQTTProperties connect_props, will_props;
	MQTTAsync_connectOptions conn;
};

/* ---- the queue (any thread) -------------------------------------------- */

static bool
queue_push(struct bus *b, struct bus_event *ev, bool may_refuse)
{
	uint64_t one = 1;
	bool ok = true;

	pthread_mutex_lock(&b->lock);
	if (may_refuse && (b->nevents >= b->max_events ||
	    b->nbytes + ev->len > BUS_QUEUE_MAX_BYTES))
		ok = false;
	else {
		if (b->tail)
			b->tail->next = ev;
		else
			b->head = ev;
		b->tail = ev;
		b->nevents++;
		b->nbytes += ev->len;
	}
	pthread_mutex_unlock(&b->lock);
	if (ok && write(b->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		ok = true;	/* the event is queued; the owner drains on next wake */
	return ok;
}

static void
push_simple(struct bus *b, enum bus_event_type type, int token, const char *reason)
{
	struct bus_event *ev = calloc(1, sizeof(*ev));

	if (ev == NULL)
		return;		/* nothing sensible to do on a Paho thread */
	ev->type = type;
	ev->token = token;
	if (reason)
		snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
	queue_push(b, ev, false);
}

static struct bus_event *
queue_pop(struct bus *b)
{
	struct bus_event *ev;
	uint64_t n;

	pthread_mutex_lock(&b->lock);
	ev = b->head;
	if (ev) {
		b->head = ev->next;
		if (b->head == NULL)
			b->tail = NULL;
		b->nevents--;
		b->nbytes -= ev->len;
		ev->next = NULL;
	} else if (read(b->efd, &n, sizeof(n)) == -1) {
		/* EAGAIN: already clear */
	}
	pthread_mutex_unlock(&b->lock);
	return ev;
}

static int
connect_attempt(struct bus *b)
{
	b->conn.serverURIs = &b->uris[b->uri_cur];
	return MQTTAsync_connect(b->client, &b->conn);
}

struct bus_event *
bus_next(struct bus *b)
{
	struct bus_event *ev;

	if (b->relay)
		return bus_relay_next(b->relay);
	while ((ev = queue_pop(b)) != NULL && ev->type == BUS_CONNECT_FAILED &&
	    b->uri_tried < b->nuris) {
		/* One attempt walks the list, as Paho's own list would. */
		b->uri_cur = (b->uri_cur + 1) % b->nuris;
		b->uri_tried++;
		if (connect_attempt(b) != MQTTASYNC_SUCCESS)
			break;
		bus_event_free(ev);
	}
	if (ev && ev->type == BUS_CONNECTED)
		b->connected = true;
	else if (ev && (ev->type == BUS_LOST || ev->type == BUS_CONNECT_FAILED)) {
		b->connected = false;
		/* The next attempt starts with the next URI: a lost cluster
		 * node is not the first one tried again. */
		b->uri_cur = (b->uri_cur + 1) % b->nuris;
	}
	return ev;
}

void
bus_event_free(struct bus_event *ev)
{
	if (ev == NULL)
		return;
	free(ev->topic);
	free(ev->payload);
	free(ev);
}

/* ---- idle state (any thread) ------------------------------------------ */

static void
idle_update_locked(struct bus *b)
{
	bool busy = !b->settled || b->inflight > 0;

	if (busy && !b->idle_held)
		paho_idle_hold();
	else if (!busy && b->idle_held)
		paho_idle_release();
	b->idle_held = busy;
}

/* settled: -1 leave as is, 0 not connected, 1 connected; acked: one
 * publish or subscribe completed (< 0: one started, or failed to start). */
static void
idle_note(struct bus *b, int settled, int acked)
{
	pthread_mutex_lock(&b->lock);
	if (settled >= 0)
		b->settled = settled == 1;
	if (acked < 0)
		b->inflight++;
	else if (acked > 0 && b->inflight > 0)
		b->inflight--;
	idle_update_locked(b);
	pthread_mutex_unlock(&b->lock);
}

/* ---- Paho callbacks (Paho threads: copy and queue, nothing else) ------- */

static void
on_lost(void *ctx, char *cause)
{
	idle_note(ctx, 0, 0);
	push_simple(ctx, BUS_LOST, 0, cause ? cause : "connection lost");
	if (cause)
		MQTTAsync_free(cause);
}

/* A job, written down before Paho acknowledges it (inbox.h). */
static bool
wants_inbox(const struct bus *b, const char *topic, size_t tlen, bool retained)
{
	size_t sl;

	if (b->inbox == NULL || retained)
		return false;
	sl = strlen(b->durable_suffix);
	return tlen >= sl && memcmp(topic + tlen - sl, b->durable_suffix, sl) == 0;
}

static int
on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct bus *b = ctx;
	struct bus_event *ev = calloc(1, sizeof(*ev));
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	bool durable;

	if (ev == NULL || (ev->topic = strndup(topic, tlen)) == NULL ||
	    (m->payloadlen > 0 && (ev->payload = malloc(m->payloadlen)) == NULL)) {
		bus_event_free(ev);
		return 0;	/* Paho retries delivery later */
	}
	ev->type = BUS_MESSAGE;
	ev->len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
	if (ev->len)
		memcpy(ev->payload, m->payload, ev->len);
	ev->retained = m->retained != 0;
	durable = wants_inbox(b, ev->topic, tlen, ev->retained);
	if (durable)
		test_stop_at("net-received");
	if (durable && inbox_put(b->inbox, ev->topic, ev->payload, ev->len,
	    &ev->inbox_seq) != MU_OK) {
		ev->inbox_seq = 0;
		pthread_mutex_lock(&b->lock);
		b->inbox_failures++;
		pthread_mutex_unlock(&b->lock);
	}
	if (durable)
		test_stop_at("net-inboxed");	/* not yet acknowledged */
	/* In the inbox: never refused (a redelivery would be a second entry
	 * that nobody marks done). */
	if (!queue_push(b, ev, !durable)) {
		bus_event_free(ev);
		return 0;
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

/* Paho has one success callback type per protocol version; both say the
 * same thing here. */
static void
push_connected(struct bus *b, bool session_present)
{
	struct bus_event *ev = calloc(1, sizeof(*ev));

	if (ev == NULL)
		return;
	ev->type = BUS_CONNECTED;
	ev->session_present = session_present;
	queue_push(b, ev, false);
	idle_note(b, 1, 0);
}

static void
on_connect_ok(void *ctx, MQTTAsync_successData *r)
{
	push_connected(ctx, r && r->alt.connect.sessionPresent);
}

static void
on_connect_ok5(void *ctx, MQTTAsync_successData5 *r)
{
	push_connected(ctx, r && r->alt.connect.sessionPresent);
}

static void
on_connect_fail(void *ctx, MQTTAsync_failureData *r)
{
	idle_note(ctx, 0, 0);
	push_simple(ctx, BUS_CONNECT_FAILED, 0,
	    r && r->message ? r->message : "connect failed");
}

static void
on_connect_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
	char why[96];

	idle_note(ctx, 0, 0);
	snprintf(why, sizeof(why), "%s (reason %d)",
	    r && r->message ? r->message : "connect failed", r ? (int)r->reasonCode : -1);
	push_simple(ctx, BUS_CONNECT_FAILED, 0, why);
}

static void
on_pub_ok(void *ctx, MQTTAsync_successData *r)
{
	idle_note(ctx, -1, 1);
	push_simple(ctx, BUS_PUBLISHED, r ? r->token : 0, NULL);
}

static void
on_pub_ok5(void *ctx, MQTTAsync_successData5 *r)
{
	idle_note(ctx, -1, 1);
	/* MQTT 5: a PUBACK with a reason code >= 0x80 is a refusal (e.g. the
	 * broker's ACL said no). */
	if (r && r->reasonCode >= 0x80)
		push_simple(ctx, BUS_PUBLISH_FAILED, r->token, "refused by the broker");
	else
		push_simple(ctx, BUS_PUBLISHED, r ? r->token : 0, NULL);
}

static void
on_pub_fail(void *ctx, MQTTAsync_failureData *r)
{
	idle_note(ctx, -1, 1);
	push_simple(ctx, BUS_PUBLISH_FAILED, r ? r->token : 0,
	    r && r->message ? r->message : "publish failed");
}

static void
on_pub_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
	idle_note(ctx, -1, 1);
	push_simple(ctx, BUS_PUBLISH_FAILED, r ? r->token : 0,
	    r && r->message ? r->message : "publish failed");
}

static void
on_sub_ok(void *ctx, MQTTAsync_successData *r)
{
	idle_note(ctx, -1, 1);
	push_simple(ctx, BUS_SUBSCRIBED, r ? r->token : 0, NULL);
}

static void
on_sub_ok5(void *ctx, MQTTAsync_successData5 *r)
{
	idle_note(ctx, -1, 1);
	push_simple(ctx, BUS_SUBSCRIBED, r ? r->token : 0, NULL);
}

static void
on_sub_fail(void *ctx, MQTTAsync_failureData *r)
{
	idle_note(ctx, -1, 1);
	push_simple(ctx, BUS_SUBSCRIBE_FAILED, r ? r->token : 0, "subscribe failed");
}

static void
on_sub_fail5(void *ctx, MQTTAsync_failureData5 *r)
{
	idle_note(ctx, -1, 1);
	push_simple(ctx, BUS_SUBSCRIBE_FAILED, r ? r->token : 0, "subscribe failed");
}

/* ---- set-up ------------------------------------------------------------ */

static int
add_uint_prop(MQTTProperties *props, enum MQTTPropertyCodes code, uint32_t v)
{
	MQTTProperty p = { .identifier = code };

	p.value.integer4 = v;
	return MQTTProperties_add(props, &p) == 0 ? MU_OK : MU_ENOMEM;
}

static void
conn_ssl(struct bus *b, const struct broker_config *bc)
{
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;

	ssl.trustStore = bc->ca[0] ? bc->ca : NULL;
	ssl.keyStore = bc->cert[0] ? bc->cert : NULL;
	ssl.privateKey = bc->key[0] ? bc->key : NULL;
	ssl.enableServerCertAuth = 1;
	/* Paho checks the host name only with verify = 1 (design.md §9). */
	ssl.verify = 1;
	ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
	/* A private CA is the only trust anchor when one is configured. */
	ssl.disableDefaultTrustStore = bc->ca[0] ? 1 : 0;
	b->ssl = ssl;
}

static int
conn_options(struct bus *b, const struct bus_opts *o, struct mu_err *err)
{
	MQTTAsync_connectOptions v5 = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_connectOptions v3 = MQTTAsync_connectOptions_initializer;
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	bool is5 = b->mqtt_version == MQTTVERSION_5;

	b->conn = is5 ? v5 : v3;
	b->conn.keepAliveInterval = (int)(o->broker->keepalive_ms / 1000);
	b->conn.connectTimeout = 10;
	b->conn.automaticReconnect = 0;
	b->conn.serverURIs = &b->uris[0];
	b->conn.serverURIcount = 1;
	b->conn.context = b;
	conn_ssl(b, o->broker);
	b->conn.ssl = &b->ssl;
	if (is5) {
		b->conn.cleanstart = o->clean_start;
		b->conn.onSuccess5 = on_connect_ok5;
		b->conn.onFailure5 = on_connect_fail5;
		if (!o->clean_start && add_uint_prop(&b->connect_props,
		    MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL, o->session_expiry_s))
			return mu_errf(err, MU_ENOMEM, "out of memory");
		if (o->max_packet && add_uint_prop(&b->connect_props,
		    MQTTPROPERTY_CODE_MAXIMUM_PACKET_SIZE, o->max_packet))
			return mu_errf(err, MU_ENOMEM, "out of memory");
		b->conn.connectProperties = &b->connect_props;
	} else {
		/* Exactly 3.1.1: with Paho's default (0) a lost connection makes
		 * Paho retry on its own with 3.1, a connect nobody asked for whose
		 * outcome no callback reports (seen on a RabbitMQ node loss). */
		b->conn.MQTTVersion = MQTTVERSION_3_1_1;
		b->conn.cleansession = o->clean_start;
		b->conn.onSuccess = on_connect_ok;
		b->conn.onFailure = on_connect_fail;
	}
	if (o->will_topic) {
		/* Copies: the caller's strings may not outlive bus_new(), and
		 * every reconnect reads them again. */
		if (o->will_len > INT32_MAX ||
		    (b->will_topic = strdup(o->will_topic)) == NULL ||
		    (b->will_payload = malloc(o->will_len ? o->will_len : 1)) == NULL)
			return mu_errf(err, MU_ENOMEM, "out of memory");
		if (o->will_len)
			memcpy(b->will_payload, o->will_payload, o->will_len);
		will.topicName = b->will_topic;
		will.message = NULL;
		will.payload.data = b->will_payload;
		will.payload.len = (int)o->will_len;
		will.qos = 1;
		will.retained = 1;
		b->will = will;
		b->conn.will = &b->will;
		if (is5)
			b->conn.willProperties = &b->will_props;
	}
	return MU_OK;
}

int
bus_new(struct bus **out, const struct bus_opts *o, struct mu_err *err)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	struct bus *b;
	int i, rc;

	*out = NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	pthread_mutex_init(&b->lock, NULL);
	idle_note(b, 0, 0);		/* busy until connected */
	b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	b->mqtt_version = o->broker->protocol == 4 ? MQTTVERSION_3_1_1 : MQTTVERSION_5;
	b->retain_as_published = o->retain_as_published;
	b->max_events = o->max_events ? o->max_events : BUS_QUEUE_MAX_EVENTS;
	if (o->inbox && o->durable_suffix && o->durable_suffix[0]) {
		b->inbox = o->inbox;
		snprintf(b->durable_suffix, sizeof(b->durable_suffix), "%s", o->durable_suffix);
	}
	for (i = 0; i < o->broker->nuris; i++)
		if ((b->uris[i] = strdup(o->broker->uris[i])) != NULL)
			b->nuris++;
	if (b->efd == -1 || b->nuris != o->broker->nuris || b->nuris == 0) {
		bus_free(b);
		return mu_errf(err, MU_EIO, "cannot set up the MQTT client");
	}
	co.MQTTVersion = b->mqtt_version;
	co.sendWhileDisconnected = 0;	/* our own spool buffers (design.md §9) */
	/* Paho refuses a publish ("No more messages can be buffered") while
	 * this many are queued to be written, connected or not; its default
	 * of 100 is less than one run of `muster retry` (64 jobs and their
	 * 64 announces) put down at once.  The callers bound what they have
	 * in flight themselves. */
	co.maxBufferedMessages = 4096;
	rc = MQTTAsync_createWithOptions(&b->client, b->uris[0], o->client_id,
	    MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		b->client = NULL;
		bus_free(b);
		return mu_errf(err, MU_EIO, "MQTT client: %s", MQTTAsync_strerror(rc));
	}
	MQTTAsync_setCallbacks(b->client, b, on_lost, on_message, NULL);
	if ((rc = conn_options(b, o, err)) != MU_OK) {
		bus_free(b);
		return rc;
	}
	*out = b;
	return MU_OK;
}

int
bus_new_relay(struct bus **out, const char *path, int timeout_ms, struct mu_err *err)
{
	struct bus *b;
	int rc;

	*out = NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	if ((rc = bus_relay_open(&b->relay, path, timeout_ms, err)) != MU_OK) {
		free(b);
		return rc;
	}
	*out = b;
	return MU_OK;
}

int
bus_stop_relay(const char *path, struct mu_err *err)
{
	struct bus_relay *r;
	int rc;

	/* A relay whose broker session is down still takes "stop". */
	if ((rc = bus_relay_open(&r, path, 2000, err)) != MU_OK && rc != MU_ESTALE)
		return rc;
	if (rc == MU_OK) {
		rc = bus_relay_stop(r, err);
		bus_relay_free(r);
	}
	return rc;
}

void
bus_free(struct bus *b)
{
	struct bus_event *ev;
	int i;

	if (b == NULL)
		return;
	if (b->relay) {
		bus_relay_free(b->relay);
		free(b);
		return;
	}
	if (b->client) {
		if (MQTTAsync_isConnected(b->client))
			bus_disconnect(b, 0);
		MQTTAsync_destroy(&b->client);
	}
	if (b->idle_held)		/* no Paho thread calls back any more */
		paho_idle_release();
	while ((ev = bus_next(b)) != NULL)
		bus_event_free(ev);
	MQTTProperties_free(&b->connect_props);
	MQTTProperties_free(&b->will_props);
	free(b->will_topic);
	free(b->will_payload);
	for (i = 0; i < b->nuris; i++)
		free(b->uris[i]);
	if (b->efd != -1)
		close(b->efd);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

uint64_t
bus_inbox_failures(struct bus *b)
{
	uint64_t n;

	if (b->relay)
		return 0;
	pthread_mutex_lock(&b->lock);
	n = b->inbox_failures;
	pthread_mutex_unlock(&b->lock);
	return n;
}

int
bus_fd(const struct bus *b)
{
	return b->relay ? bus_relay_fd(b->relay) : b->efd;
}

bool
bus_connected(const struct bus *b)
{
	if (b != NULL && b->relay)
		return bus_relay_connected(b->relay);
	return b != NULL && b->connected;	/* NULL: not made yet (musterd's
						 * waits for its will) */
}

int
bus_connect(struct bus *b, struct mu_err *err)
{
	int rc;

	if (b->relay)
		return MU_OK;	/* the relay's session is up: "connected" is queued */
	b->uri_tried = 1;
	rc = connect_attempt(b);
	if (rc != MQTTASYNC_SUCCESS)
		return mu_errf(err, MU_EIO, "connect: %s", MQTTAsync_strerror(rc));
	return MU_OK;
}

static void
response_init(struct bus *b, MQTTAsync_responseOptions *ro, bool sub)
{
	MQTTAsync_responseOptions init = MQTTAsync_responseOptions_initializer;

	*ro = init;
	ro->context = b;
	if (b->mqtt_version == MQTTVERSION_5) {
		ro->onSuccess5 = sub ? on_sub_ok5 : on_pub_ok5;
		ro->onFailure5 = sub ? on_sub_fail5 : on_pub_fail5;
	} else {
		ro->onSuccess = sub ? on_sub_ok : on_pub_ok;
		ro->onFailure = sub ? on_sub_fail : on_pub_fail;
	}
}

int
bus_publish(struct bus *b, const char *topic, const void *payload, size_t len,
    int qos, bool retain, uint32_t expiry_s, int *token, struct mu_err *err)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro;
	int rc;

	if (b->relay)
		return bus_relay_publish(b->relay, topic, payload, len, qos, retain, expiry_s,
		    token, err);
	if (len > INT32_MAX)
		return mu_errf(err, MU_EINVAL, "payload too large");
	response_init(b, &ro, false);
	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = qos;
	msg.retained = retain;
	if (expiry_s > 0 && b->mqtt_version == MQTTVERSION_5 &&
	    add_uint_prop(&msg.properties, MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL,
	    expiry_s) != MU_OK)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	idle_note(b, -1, -1);		/* before Paho can ack it */
	rc = MQTTAsync_sendMessage(b->client, topic, &msg, &ro);
	MQTTProperties_free(&msg.properties);
	if (rc != MQTTASYNC_SUCCESS) {
		idle_note(b, -1, 1);
		return mu_errf(err, MU_EIO, "publish to %s: %s", topic, MQTTAsync_strerror(rc));
	}
	if (token)
		*token = ro.token;
	return MU_OK;
}

int
bus_subscribe(struct bus *b, char *const *topics, int ntopics, int qos,
    struct mu_err *err)
{
	MQTTAsync_responseOptions ro;
	MQTTSubscribe_options so[64];
	int qoss[64], i, rc;

	if (b->relay)
		return bus_relay_subscribe(b->relay, topics, ntopics, qos, err);
	if (ntopics <= 0 || ntopics > 64)
		return mu_errf(err, MU_EINVAL, "bad subscription count");
	for (i = 0; i < ntopics; i++) {
		qoss[i] = qos;
		so[i] = (MQTTSubscribe_options)MQTTSubscribe_options_initializer;
		so[i].retainAsPublished = 1;
	}
	response_init(b, &ro, true);
	if (b->retain_as_published && b->mqtt_version == MQTTVERSION_5) {
		/* Paho reads the single options for one topic, the list for more. */
		ro.subscribeOptions = so[0];
		ro.subscribeOptionsList = so;
		ro.subscribeOptionsCount = ntopics;
	}
	idle_note(b, -1, -1);
	rc = MQTTAsync_subscribeMany(b->client, ntopics, topics, qoss, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		idle_note(b, -1, 1);
		return mu_errf(err, MU_EIO, "subscribe: %s", MQTTAsync_strerror(rc));
	}
	return MU_OK;
}

int
bus_unsubscribe(struct bus *b, const char *topic, struct mu_err *err)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	if (b->relay)
		return bus_relay_unsubscribe(b->relay, topic, err);
	/* No callbacks: nobody waits for the UNSUBACK. */
	rc = MQTTAsync_unsubscribe(b->client, topic, &ro);
	if (rc != MQTTASYNC_SUCCESS)
		return mu_errf(err, MU_EIO, "unsubscribe %s: %s", topic,
		    MQTTAsync_strerror(rc));
	return MU_OK;
}

/*
 * Pending means: Paho still holds the publish, or it has completed but the
 * owner has not taken its BUS_PUBLISHED / BUS_PUBLISH_FAILED event from the
 * queue yet.  The second half matters: on loopback a PUBACK comes back in
 * well under a millisecond, so a publish is often off Paho's list while its
 * event still waits behind others (a SIGCHLD, a job), and treating it as
 * lost would send the result a second time.
 *
 * Paho first, then the queue: Paho calls the completion callback (which
 * queues the event) under the same lock as it drops the message from its
 * list, so a completion that happens between the two looks is seen by the
 * second.
 */
bool
bus_token_pending(struct bus *b, int token)
{
	MQTTAsync_token *tokens = NULL;
	struct bus_event *ev;
	bool found = false;
	int i;

	if (token == 0)
		return false;
	if (b->relay)
		return bus_relay_token_pending(b->relay, token);
	if (MQTTAsync_getPendingTokens(b->client, &tokens) == MQTTASYNC_SUCCESS) {
		for (i = 0; tokens && tokens[i] != -1; i++)
			if (tokens[i] == token)
				found = true;
		MQTTAsync_free(tokens);
	}
	if (found)
		return true;
	pthread_mutex_lock(&b->lock);
	for (ev = b->head; ev && !found; ev = ev->next)
		found = ev->token == token && (ev->type == BUS_PUBLISHED ||
		    ev->type == BUS_PUBLISH_FAILED);
	pthread_mutex_unlock(&b->lock);
	return found;
}

int
bus_disconnect(struct bus *b, int timeout_ms)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	MQTTAsync_disconnectOptions d5 = MQTTAsync_disconnectOptions_initializer5;
	MQTTAsync_disconnectOptions *opt =
	    b->mqtt_version == MQTTVERSION_5 ? &d5 : &d;

	if (b->relay) {
		/* The relay keeps the broker session; only this client leaves. */
		bus_relay_hangup(b->relay);
		return MU_OK;
	}
	opt->timeout = timeout_ms;
	b->connected = false;
	idle_note(b, 0, 0);		/* Paho times the disconnect */
	return MQTTAsync_disconnect(b->client, opt) == MQTTASYNC_SUCCESS ? MU_OK : MU_EIO;
}

/* ---- socket tuning ----------------------------------------------------- */

/* A TCP socket that is not a listener: Paho's connection. */
static bool
tcp_conn(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int type = 0, listening = 0;
	socklen_t il = sizeof(int);
	struct stat st;

	if (fstat(fd, &st) == -1 || !S_ISSOCK(st.st_mode))
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &il) == -1 || type != SOCK_STREAM)
		return false;
	il = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &il) == -1 || listening)
		return false;
	return getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

/* Call fn on every TCP connection of the process; returns how many. */
static int
each_tcp_conn(void (*fn)(int))
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);

		if (*end == '\0' && end != de->d_name && fd > 2 && fd != dirfd(d) &&
		    tcp_conn((int)fd)) {
			n++;
			if (fn)
				fn((int)fd);
		}
	}
	closedir(d);
	return n;
}

static void
tune_fd(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
}

void
bus_tune_sockets(void)
{
	each_tcp_conn(tune_fd);
}

/* ---- Paho's receive thread naps ------------------------------------------ */

static void
nudge_handler(int sig)
{
	(void)sig;	/* only there so that the signal interrupts a sleep */
}

static bool
read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd == -1)
		return false;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

int
bus_nudge(void)
{
	static bool installed;
	char path[64], buf[96];
	struct dirent *de;
	int kicked = 0;
	DIR *d;

	if (!installed) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = nudge_handler;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = 0;	/* no SA_RESTART: the sleep ends */
		if (sigaction(SIGURG, &sa, NULL) == -1)
			return 0;
		installed = true;
	}
	/* Before Paho has its socket, a woken thread would only nap again. */
	if (each_tcp_conn(NULL) == 0 || (d = opendir("/proc/self/task")) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);

		if (*end != '\0' || end == de->d_name)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%ld/comm", tid);
		if (!read_small(path, buf, sizeof(buf)) || strncmp(buf, "MQTTAsync_rcv", 13) != 0)
			continue;
		/* Only while it sleeps: a signal there just ends the nap. */
		snprintf(path, sizeof(path), "/proc/self/task/%ld/syscall", tid);
		if (read_small(path, buf, sizeof(buf)) &&
		    (strtol(buf, NULL, 10) == SYS_clock_nanosleep ||
		    strtol(buf, NULL, 10) == SYS_nanosleep) &&
		    syscall(SYS_tgkill, (long)getpid(), tid, SIGURG) == 0)
			kicked++;
	}
	closedir(d);
	return kicked;
}
