/* SPDX-License-Identifier: Apache-2.0 */
/*
 * verify.c - the CLI's check of every agent message (design.md §3), through
 * lib/agentmsg.c (the same check muster-server makes) against the fleet CA
 * ([broker] ca).  What fails is forged: counted, shown, never taken as an
 * answer.
 *
 * Certificates are learnt from retained status messages, which carry the
 * host's certificate (cert_der); results and events name theirs by
 * fingerprint only.  A result whose certificate is not known yet is
 * MU_ENOENT here, and the caller may hold it until a status brings it.
 *
 * Ownership: the verifier is struct ctl's (c->hv), made on first use and
 * freed by main().  Decoded structs borrow from the payload passed in, as
 * with the wire decoders; the caller frees their doc.
 */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

#include "agentmsg.h"
#include "hostsig.h"

static int
ctl_verifier(struct ctl *c, struct mu_err *err)
{
	if (c->hv != NULL)
		return MU_OK;
	if (c->cfg.broker.ca[0] == '\0')
		return mu_errf(err, MU_EINVAL, "no CA to check hosts against: set [broker] ca");
	return hostsig_verifier_new(c->cfg.broker.ca, &c->hv, err);
}

/* The message's topic must be of the kind asked for. */
static int
names(struct ctl *c, const char *topic, enum agentmsg_kind want, char *job, char *host,
    struct mu_err *err)
{
	enum agentmsg_kind kind;
	int rc;

	if (agentmsg_topic(topic, c->root, &kind, job, host) != MU_OK || kind != want)
		return mu_errf(err, MU_EINVAL, "not a %s topic", want == AGENTMSG_RESULT ?
		    "result" : want == AGENTMSG_EVENT ? "event" : "status");
	if ((rc = ctl_verifier(c, err)) != MU_OK)
		return rc;
	return MU_OK;
}

int
verify_result(struct ctl *c, const char *topic, const uint8_t *p, size_t len,
    struct result *out, struct mu_err *err)
{
	char tjob[JOBID_MAX_LEN + 1], thost[NAME_MAX_LEN + 1];
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = names(c, topic, AGENTMSG_RESULT, tjob, thost, err)) != MU_OK)
		return rc;
	return agentmsg_result(c->hv, tjob, thost, p, len, out, err);
}

int
verify_event(struct ctl *c, const char *topic, const uint8_t *p, size_t len,
    struct event *out, struct mu_err *err)
{
	char tjob[JOBID_MAX_LEN + 1], thost[NAME_MAX_LEN + 1];
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = names(c, topic, AGENTMSG_EVENT, tjob, thost, err)) != MU_OK)
		return rc;
	return agentmsg_event(c->hv, tjob, thost, p, len, out, err);
}

int
verify_status(struct ctl *c, const char *topic, const uint8_t *p, size_t len,
    struct status *out, struct mu_err *err)
{
	char tjob[JOBID_MAX_LEN + 1], thost[NAME_MAX_LEN + 1];
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = names(c, topic, AGENTMSG_STATUS, tjob, thost, err)) != MU_OK)
		return rc;
	return agentmsg_status(c->hv, thost, p, len, out, NULL, err);
}

/* Facts are named by fingerprint like a result: MU_ENOENT until a status
 * brought the certificate.  On MU_OK the caller frees out->facts. */
int
verify_facts(struct ctl *c, const char *topic, const uint8_t *p, size_t len,
    struct facts_msg *out, struct mu_err *err)
{
	char thost[NAME_MAX_LEN + 1];
	int rc;

	memset(out, 0, sizeof(*out));
	if (agentmsg_facts_topic(topic, c->root, thost) != MU_OK)
		return mu_errf(err, MU_EINVAL, "not a facts topic");
	if ((rc = ctl_verifier(c, err)) != MU_OK)
		return rc;
	return agentmsg_facts(c->hv, thost, p, len, out, err);
}

/* Count a forged message; c->on_forged (the CLI's --json) shows it. */
void
forged_note(struct ctl *c, const char *topic, const char *reason)
{
	c->nforged++;
	if (c->on_forged)
		c->on_forged(c, topic, reason);
}
