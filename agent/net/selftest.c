/* SPDX-License-Identifier: Apache-2.0 */
/*
 * selftest.c - "musterd --self-test": a staged version proves itself
 * (design.md §5 step 2).  The live agent starts it from the staged binary
 * with the staged runner; it is a whole agent (privilege separation
 * included) with its own client id <host>.selftest, its own state in
 * state_dir/selftest, no wake port and no presence (the live agent's
 * retained status and will stay untouched).
 *
 * Its network process publishes a host-signed self-test request with a
 * fresh nonce, takes the one test job muster-server sends on the host's
 * selftest topic (checked by the parent like any job: operator key,
 * signature, window, aud, policy; selftest.echo only), runs it through
 * the staged runner, fetching the module if need be, publishes the result
 * and waits for the verdict naming its nonce.  Exit status: 0 good
 * verdict, 5 bad verdict, 3 no verdict within [update] selftest_timeout.
 * An unanswered request is sent again (a server may have restarted).
 *
 * Ownership: timers on a->loop; nothing else.
 */
#include "agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define REQUEST_RESEND_MS	10000

/* The request as the parent signed it (sign.c). */
static void
request_publish(struct agent *a)
{
	char topic[TOPIC_MAX];
	struct mu_err err;

	if (a->net.selftest_req == NULL)
		return;		/* sent once it is here (selftest_request()) */
	if (topic_build(topic, sizeof(topic), a->root, TOPIC_SELFTEST_REQUEST, a->cfg.host,
	    NULL) != MU_OK || bus_publish(a->net.bus, topic, a->net.selftest_req,
	    a->net.selftest_req_len, 1, false, 0, NULL, &err) != MU_OK)
		log_warnx("self-test: request not sent: %s", err.msg);
	else
		log_notice("self-test: version %s asks for a test job (nonce %.12s...)",
		    AGENT_VERSION, a->selftest_nonce);
}

void
selftest_request(struct agent *a, const void *env, size_t len)
{
	uint8_t *copy;

	if ((copy = malloc(len ? len : 1)) == NULL)
		return;
	memcpy(copy, env, len);
	free(a->net.selftest_req);
	a->net.selftest_req = copy;
	a->net.selftest_req_len = len;
	if (a->selftest && bus_connected(a->net.bus))
		request_publish(a);
}

/* The live agent names the nonce (--nonce-fd): it watches for the same
 * verdict.  Started by hand without one, the parent makes its own. */
int
selftest_nonce_make(struct agent *a)
{
	uint8_t r[16];
	size_t i;

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		return MU_EIO;
	for (i = 0; i < sizeof(r); i++)
		snprintf(a->selftest_nonce + 2 * i, 3, "%02x", r[i]);
	return MU_OK;
}

static void
resend_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)id;
	a->net.selftest_resend = 0;
	if (bus_connected(a->net.bus))
		request_publish(a);
	a->net.selftest_resend = loop_add_timer(l, REQUEST_RESEND_MS, resend_fired, a);
}

static void
deadline_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)id;
	a->net.selftest_deadline = 0;
	log_err("self-test: no verdict within %.1f s", a->cfg.selftest_timeout_ms / 1000.0);
	a->selftest_rc = 3;
	loop_stop(l);
}

void
selftest_connected(struct agent *a)
{
	if (!a->net.selftest_deadline)
		a->net.selftest_deadline = loop_add_timer(a->loop, a->cfg.selftest_timeout_ms,
		    deadline_fired, a);
	request_publish(a);
	if (!a->net.selftest_resend)
		a->net.selftest_resend = loop_add_timer(a->loop, REQUEST_RESEND_MS, resend_fired, a);
}

bool
selftest_verdict(struct agent *a, const uint8_t *p, size_t len)
{
	struct selftest_verdict v;
	struct mu_err err;

	if (selftest_verdict_decode(p, len, &v, &err) != MU_OK) {
		log_warnx("self-test: malformed verdict ignored: %s", err.msg);
		return false;
	}
	if (strcmp(v.host, a->cfg.host) != 0 || strcmp(v.nonce, a->selftest_nonce) != 0) {
		log_info("self-test: a verdict for another request ignored");
		wire_doc_free(&v.doc);
		return false;
	}
	if (v.ok)
		log_notice("self-test: good verdict: version %s works end to end", AGENT_VERSION);
	else
		log_err("self-test: bad verdict: %.*s", (int)(v.reason.len > 300 ? 300 :
		    v.reason.len), v.reason.ptr ? v.reason.ptr : "");
	a->selftest_rc = v.ok ? 0 : 5;
	wire_doc_free(&v.doc);
	if (a->net.selftest_resend)
		loop_del_timer(a->loop, a->net.selftest_resend);
	if (a->net.selftest_deadline)
		loop_del_timer(a->loop, a->net.selftest_deadline);
	a->net.selftest_resend = a->net.selftest_deadline = 0;
	return true;
}
