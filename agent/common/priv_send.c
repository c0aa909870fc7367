/* SPDX-License-Identifier: Apache-2.0 */
/*
 * priv_send.c - every frame between the parent and the network process is
 * built here, one function per type (in the manner of OpenSSH's
 * monitor_wrap.c), and priv_rules[] says, per type, which side may send
 * it and in which state the receiver takes it.  priv.c checks each frame
 * read against the table before any handler sees it; lib/wire.c encodes
 * and decodes (struct priv_msg), unchanged.
 *
 * Ownership: a frame is encoded into the channel's own buffer at once
 * (priv_chan_send()); nothing passed in is kept.
 */
#include "agent.h"
#include "common/priv_int.h"

#include <stdio.h>
#include <string.h>

/* The parent takes a self-test's verdict only while it tests a staged
 * version; at any other time a verdict is not for it (dropped). */
static bool
parent_testing(const struct agent *a)
{
	return a->par.upd.phase == UPD_TESTING;
}

const struct priv_rule priv_rules[PRIV_NTYPES] = {
	[PRIV_JOB]		= { PRIV_FROM_NET, NULL },
	[PRIV_MODULE]		= { PRIV_FROM_NET, NULL },
	[PRIV_SPOOLED]		= { PRIV_FROM_NET, NULL },
	[PRIV_RELEASE]		= { PRIV_FROM_NET, NULL },
	[PRIV_NO_UPDATE]	= { PRIV_FROM_NET, NULL },
	[PRIV_CONNECTED]	= { PRIV_FROM_NET, NULL },
	[PRIV_VERDICT]		= { PRIV_FROM_NET, parent_testing },
	[PRIV_READY]		= { PRIV_FROM_NET, NULL },
	[PRIV_FAILED]		= { PRIV_FROM_NET, NULL },
	[PRIV_RESULT]		= { PRIV_FROM_PARENT, NULL },
	[PRIV_EVENT]		= { PRIV_FROM_PARENT, NULL },
	[PRIV_MODULE_WANT]	= { PRIV_FROM_PARENT, NULL },
	[PRIV_POKE]		= { PRIV_FROM_PARENT, NULL },
	[PRIV_STOP]		= { PRIV_FROM_PARENT, NULL },
	[PRIV_UPDATE_CHECK]	= { PRIV_FROM_PARENT, NULL },
	[PRIV_STATUS]		= { PRIV_FROM_PARENT, NULL },
	[PRIV_SELFTEST]		= { PRIV_FROM_PARENT, NULL },
	[PRIV_RELEASE_STATE]	= { PRIV_FROM_NET, NULL },
	[PRIV_DURABLE]		= { PRIV_FROM_PARENT, NULL },
	[PRIV_ANSWERED]		= { PRIV_FROM_PARENT, NULL },
	[PRIV_FACTS]		= { PRIV_FROM_PARENT, NULL },
	[PRIV_HALT]		= { PRIV_FROM_NET, NULL },
	[PRIV_HALTED]		= { PRIV_FROM_PARENT, NULL },
};

int
priv_rule_check(const struct agent *a, const struct priv_msg *m, bool from_net)
{
	const struct priv_rule *rule = &priv_rules[m->type];

	if (rule->from != (from_net ? PRIV_FROM_NET : PRIV_FROM_PARENT))
		return MU_EINVAL;
	if (rule->accept && !rule->accept(a))
		return MU_ENOENT;
	return MU_OK;
}

/* ---- parent -> network ---------------------------------------------------- */

static int
to_net(struct agent *a, const struct priv_msg *m)
{
	return priv_chan_send(a, &a->par.to_net, m);	/* if down: the next one is told anew */
}

int
priv_send_halted(struct agent *a, const char *version, uint64_t at)
{
	struct priv_msg m = { .type = PRIV_HALTED };

	snprintf(m.version, sizeof(m.version), "%s", version);
	m.n = at;
	return to_net(a, &m);
}

int
priv_send_result(struct agent *a, const char *job, const void *body, size_t len)
{
	struct priv_msg m = { .type = PRIV_RESULT };

	snprintf(m.job, sizeof(m.job), "%s", job);
	m.payload = (struct wire_bytes){ body, len };
	return to_net(a, &m);
}

int
priv_send_event(struct agent *a, const char *job, const void *body, size_t len)
{
	struct priv_msg m = { .type = PRIV_EVENT };

	snprintf(m.job, sizeof(m.job), "%s", job);
	m.payload = (struct wire_bytes){ body, len };
	return to_net(a, &m);
}

int
priv_send_want(struct agent *a, const struct run *r, const char *local_sha)
{
	struct priv_msg m = { .type = PRIV_MODULE_WANT };

	snprintf(m.job, sizeof(m.job), "%s", r->job.id);
	snprintf(m.name, sizeof(m.name), "%s", r->job.module);
	snprintf(m.sha256, sizeof(m.sha256), "%s", r->job.module_sha256);
	snprintf(m.local, sizeof(m.local), "%s", local_sha ? local_sha : "");
	return to_net(a, &m);
}

int
priv_send_poke(struct agent *a)
{
	struct priv_msg m = { .type = PRIV_POKE };

	return to_net(a, &m);
}

int
priv_send_stop(struct agent *a)
{
	struct priv_msg m = { .type = PRIV_STOP };

	return to_net(a, &m);
}

int
priv_send_update_check(struct agent *a, const char *job)
{
	struct priv_msg m = { .type = PRIV_UPDATE_CHECK };

	snprintf(m.job, sizeof(m.job), "%s", job);
	return to_net(a, &m);
}

int
priv_send_status(struct agent *a, enum priv_status which, const void *env, size_t len)
{
	struct priv_msg m = { .type = PRIV_STATUS };

	m.n = which;
	m.payload = (struct wire_bytes){ env, len };
	return to_net(a, &m);
}

int
priv_send_selftest(struct agent *a, const void *env, size_t len)
{
	struct priv_msg m = { .type = PRIV_SELFTEST };

	m.payload = (struct wire_bytes){ env, len };
	return to_net(a, &m);
}

int
priv_send_durable(struct agent *a, uint64_t n)
{
	struct priv_msg m = { .type = PRIV_DURABLE };

	m.n = n;
	return to_net(a, &m);
}

int
priv_send_answered(struct agent *a, const char *job)
{
	struct priv_msg m = { .type = PRIV_ANSWERED };

	snprintf(m.job, sizeof(m.job), "%s", job);
	return to_net(a, &m);
}

int
priv_send_facts(struct agent *a, const void *body, size_t len)
{
	struct priv_msg m = { .type = PRIV_FACTS };

	m.payload = (struct wire_bytes){ body, len };
	return to_net(a, &m);
}

/* ---- network -> parent ---------------------------------------------------- */

static int
to_parent(struct agent *a, const struct priv_msg *m)
{
	return priv_chan_send(a, &a->net.to_parent, m);
}

int
priv_send_job(struct agent *a, const char *topic, const uint8_t *p, size_t len)
{
	struct priv_msg m = { .type = PRIV_JOB };

	if (snprintf(m.topic, sizeof(m.topic), "%s", topic) >= (int)sizeof(m.topic))
		return MU_EINVAL;
	m.payload = (struct wire_bytes){ p, len };
	return to_parent(a, &m);
}

int
priv_send_module(struct agent *a, const char *job, enum priv_source src,
    const char *sha256, const char *reason)
{
	struct priv_msg m = { .type = PRIV_MODULE, .source = src };

	snprintf(m.job, sizeof(m.job), "%s", job);
	snprintf(m.sha256, sizeof(m.sha256), "%s", priv_source_has_build(src) ? sha256 : "");
	if (reason)
		m.reason = (struct wire_str){ reason, strlen(reason) };
	return to_parent(a, &m);
}

int
priv_send_spooled(struct agent *a, const char *job)
{
	struct priv_msg m = { .type = PRIV_SPOOLED };

	snprintf(m.job, sizeof(m.job), "%s", job);
	return to_parent(a, &m);
}

int
priv_send_release(struct agent *a, const void *pointer, size_t len)
{
	struct priv_msg m = { .type = PRIV_RELEASE };

	m.payload = (struct wire_bytes){ pointer, len };
	return to_parent(a, &m);
}

int
priv_send_no_update(struct agent *a, const char *job, const char *why)
{
	struct priv_msg m = { .type = PRIV_NO_UPDATE };

	snprintf(m.job, sizeof(m.job), "%s", job);
	m.reason = (struct wire_str){ why, strlen(why) };
	return to_parent(a, &m);
}

int
priv_send_connected(struct agent *a)
{
	struct priv_msg m = { .type = PRIV_CONNECTED };

	return to_parent(a, &m);
}

int
priv_send_release_state(struct agent *a, const char *state, const char *version,
    const char *reason)
{
	struct priv_msg m = { .type = PRIV_RELEASE_STATE };

	snprintf(m.name, sizeof(m.name), "%s", state);
	snprintf(m.version, sizeof(m.version), "%s", version_valid(version) ? version :
	    "unknown");
	if (reason)
		m.reason = (struct wire_str){ reason, strnlen(reason, WIRE_MAX_STR) };
	return to_parent(a, &m);
}

int
priv_send_halt(struct agent *a, const void *halt, size_t len)
{
	struct priv_msg m = { .type = PRIV_HALT };

	m.payload = (struct wire_bytes){ halt, len };
	return to_parent(a, &m);
}

int
priv_send_verdict(struct agent *a, const void *verdict, size_t len)
{
	struct priv_msg m = { .type = PRIV_VERDICT };

	m.payload = (struct wire_bytes){ verdict, len };
	return to_parent(a, &m);
}

int
priv_send_setup(struct agent *a, bool ok, const char *reason)
{
	struct priv_msg m = { .type = ok ? PRIV_READY : PRIV_FAILED };

	if (reason)
		m.reason = (struct wire_str){ reason, strlen(reason) };
	return to_parent(a, &m);
}
