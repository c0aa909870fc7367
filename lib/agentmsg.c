/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentmsg.c - see agentmsg.h.
 */
#include "agentmsg.h"
#include "sign.h"

#include <stdio.h>
#include <string.h>

int
agentmsg_topic(const char *topic, const char *root, enum agentmsg_kind *kind,
    char job[JOBID_MAX_LEN + 1], char host[NAME_MAX_LEN + 1])
{
	char pre[NAME_MAX_LEN + 8], rest[TOPIC_MAX], *a, *b, *tail;

	job[0] = host[0] = '\0';
	snprintf(pre, sizeof(pre), "%s/v1/", root);
	if (strncmp(topic, pre, strlen(pre)) != 0 ||
	    snprintf(rest, sizeof(rest), "%s", topic + strlen(pre)) >= (int)sizeof(rest))
		return MU_EINVAL;
	if (strncmp(rest, "results/", 8) == 0) {
		a = rest + 8;
		if ((b = strchr(a, '/')) == NULL)
			return MU_EINVAL;
		*b++ = '\0';
		*kind = AGENTMSG_RESULT;
		if ((tail = strchr(b, '/')) != NULL) {
			if (strcmp(tail, "/events") != 0)
				return MU_EINVAL;
			*tail = '\0';
			*kind = AGENTMSG_EVENT;
		}
		if (!jobid_valid(a) || !name_valid(b))
			return MU_EINVAL;
		memcpy(job, a, strlen(a) + 1);		/* lengths checked just above */
		memcpy(host, b, strlen(b) + 1);
		return MU_OK;
	}
	if (strncmp(rest, "hosts/", 6) == 0) {
		a = rest + 6;
		if ((b = strchr(a, '/')) == NULL || strcmp(b, "/status") != 0)
			return MU_EINVAL;
		*b = '\0';
		if (!name_valid(a))
			return MU_EINVAL;
		memcpy(host, a, strlen(a) + 1);
		*kind = AGENTMSG_STATUS;
		return MU_OK;
	}
	return MU_EINVAL;
}

int
agentmsg_facts_topic(const char *topic, const char *root, char host[NAME_MAX_LEN + 1])
{
	char want[TOPIC_MAX];
	const char *a, *end;
	size_t n;

	host[0] = '\0';
	n = (size_t)snprintf(want, sizeof(want), "%s/v1/hosts/", root);
	if (n >= sizeof(want) || strncmp(topic, want, n) != 0)
		return MU_EINVAL;
	a = topic + n;
	if ((end = strchr(a, '/')) == NULL || strcmp(end, "/facts") != 0 ||
	    (size_t)(end - a) > NAME_MAX_LEN)
		return MU_EINVAL;
	memcpy(host, a, (size_t)(end - a));
	host[end - a] = '\0';
	if (!name_valid(host)) {
		host[0] = '\0';
		return MU_EINVAL;
	}
	return MU_OK;
}

/* Envelope, signature, CN = topic host.  *env is live on MU_OK only. */
static int
open_envelope(struct hostsig_verifier *hv, const char *thost, const uint8_t *p,
    size_t len, struct agent_envelope *env, struct mu_err *err)
{
	struct mu_err why;
	const char *cn;
	int rc;

	if (agent_envelope_decode(p, len, env, &why) != MU_OK)
		return mu_errf(err, MU_ESIG, "not a signed agent message: %s", why.msg);
	if ((rc = hostsig_verify(hv, env, &cn, err)) != MU_OK) {
		wire_doc_free(&env->doc);
		return rc;
	}
	if (strcmp(cn, thost) != 0) {
		wire_doc_free(&env->doc);
		return mu_errf(err, MU_ETRUST, "signed by %.64s, not by %s", cn, thost);
	}
	return MU_OK;
}

/* The body names the topic's host and job (what = "result", "event"). */
static int
names_match(const char *what, const char *host, const char *job, const char *thost,
    const char *tjob, struct mu_err *err)
{
	if (strcmp(host, thost) != 0)
		return mu_errf(err, MU_ETRUST, "%s of %s names host %s", what, thost, host);
	if (strcmp(job, tjob) != 0)
		return mu_errf(err, MU_ETRUST, "%s on job %s names job %s", what, tjob, job);
	return MU_OK;
}

int
agentmsg_result(struct hostsig_verifier *hv, const char *tjob, const char *thost,
    const uint8_t *p, size_t len, struct result *out, struct mu_err *err)
{
	struct agent_envelope env;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = open_envelope(hv, thost, p, len, &env, err)) != MU_OK)
		return rc;
	rc = result_decode(env.body.ptr, env.body.len, out, err);
	wire_doc_free(&env.doc);
	if (rc != MU_OK)
		return MU_ESIG;		/* signed garbage is not a result either */
	if ((rc = names_match("result", out->host, out->job, thost, tjob, err)) != MU_OK)
		wire_doc_free(&out->doc);
	return rc;
}

int
agentmsg_event(struct hostsig_verifier *hv, const char *tjob, const char *thost,
    const uint8_t *p, size_t len, struct event *out, struct mu_err *err)
{
	struct agent_envelope env;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = open_envelope(hv, thost, p, len, &env, err)) != MU_OK)
		return rc;
	rc = event_decode(env.body.ptr, env.body.len, out, err);
	wire_doc_free(&env.doc);
	if (rc != MU_OK)
		return MU_ESIG;
	if ((rc = names_match("event", out->host, out->job, thost, tjob, err)) != MU_OK)
		wire_doc_free(&out->doc);
	return rc;
}

int
agentmsg_facts(struct hostsig_verifier *hv, const char *thost, const uint8_t *p,
    size_t len, struct facts_msg *out, struct mu_err *err)
{
	struct agent_envelope env;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = open_envelope(hv, thost, p, len, &env, err)) != MU_OK)
		return rc;
	rc = facts_decode(env.body.ptr, env.body.len, out, err);
	wire_doc_free(&env.doc);
	if (rc != MU_OK)
		return MU_ESIG;		/* signed garbage is not facts either */
	if (strcmp(out->host, thost) != 0) {
		rc = mu_errf(err, MU_ETRUST, "facts of %s name host %s", thost, out->host);
		facts_free(&out->facts);
	}
	return rc;
}

/* A status brings its certificate: the one the envelope names, chaining
 * to the CA, for the topic's host (and the body's).  Once it passed,
 * results signed with it verify too. */
int
agentmsg_status(struct hostsig_verifier *hv, const char *thost, const uint8_t *p,
    size_t len, struct status *out, char fpr[SHA256_HEX_LEN + 1], struct mu_err *err)
{
	char own[SHA256_HEX_LEN + 1];
	struct agent_envelope env;
	struct mu_err why;
	const char *cn;
	int rc;

	memset(out, 0, sizeof(*out));
	if (fpr == NULL)
		fpr = own;
	if (agent_envelope_decode(p, len, &env, &why) != MU_OK)
		return mu_errf(err, MU_ESIG, "not a signed agent message: %s", why.msg);
	rc = status_decode(env.body.ptr, env.body.len, out, err);
	if (rc == MU_OK && (sha256_hex(out->cert_der.ptr, out->cert_der.len, fpr) != MU_OK ||
	    strcmp(fpr, env.cert) != 0))
		rc = mu_errf(err, MU_ETRUST, "cert_der is not the certificate the envelope names");
	if (rc == MU_OK)
		rc = hostsig_cert_add(hv, out->cert_der.ptr, out->cert_der.len, &cn, err);
	if (rc == MU_OK)
		rc = hostsig_verify(hv, &env, &cn, err);
	if (rc == MU_OK && strcmp(cn, thost) != 0)
		rc = mu_errf(err, MU_ETRUST, "signed by %.64s, not by %s", cn, thost);
	if (rc == MU_OK && strcmp(out->host, thost) != 0)
		rc = mu_errf(err, MU_ETRUST, "status of %s names host %s", thost, out->host);
	wire_doc_free(&env.doc);
	if (rc != MU_OK && out->doc.live)
		wire_doc_free(&out->doc);
	if (rc != MU_OK && rc != MU_ENOMEM)
		rc = MU_ESIG;
	return rc;
}
