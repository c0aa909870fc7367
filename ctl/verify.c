/*
 * verify.c - the CLI's check of every agent message (DESIGN §3): the
 * envelope's certificate chains to the fleet CA ([broker] ca), its CN is
 * the host named in the topic and in the body, and a result's or event's
 * topic job is its body's.  What fails is forged: counted, shown, never
 * taken as an answer.
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

/*
 * Split "<root>/v1/results/<job>/<host>[/events]" or
 * "<root>/v1/hosts/<host>/status" into its names (copied, validated).
 */
static bool
topic_names(const struct ctl *c, const char *topic, char *job, char *host)
{
	char pre[NAME_MAX_LEN + 16], rest[TOPIC_MAX], *a, *b, *tail;

	job[0] = host[0] = '\0';
	snprintf(pre, sizeof(pre), "%s/v1/", c->root);
	if (strncmp(topic, pre, strlen(pre)) != 0 ||
	    snprintf(rest, sizeof(rest), "%s", topic + strlen(pre)) >= (int)sizeof(rest))
		return false;
	if (strncmp(rest, "results/", 8) == 0) {
		a = rest + 8;
		if ((b = strchr(a, '/')) == NULL)
			return false;
		*b++ = '\0';
		if ((tail = strchr(b, '/')) != NULL) {
			if (strcmp(tail, "/events") != 0)
				return false;
			*tail = '\0';
		}
		if (!jobid_valid(a) || !name_valid(b))
			return false;
		memcpy(job, a, strlen(a) + 1);		/* lengths checked just above */
		memcpy(host, b, strlen(b) + 1);
		return true;
	}
	if (strncmp(rest, "hosts/", 6) == 0) {
		a = rest + 6;
		if ((b = strchr(a, '/')) == NULL || strcmp(b, "/status") != 0)
			return false;
		*b = '\0';
		if (!name_valid(a))
			return false;
		memcpy(host, a, strlen(a) + 1);
		return true;
	}
	return false;
}

/* Decode the envelope and check its signature and the CN; *env is live on
 * MU_OK only. */
static int
open_envelope(struct ctl *c, const char *thost, const uint8_t *p, size_t len,
    struct agent_envelope *env, struct mu_err *err)
{
	struct mu_err why;
	const char *cn;
	int rc;

	if ((rc = ctl_verifier(c, err)) != MU_OK)
		return rc;
	if (agent_envelope_decode(p, len, env, &why) != MU_OK)
		return mu_errf(err, MU_ESIG, "not a signed agent message: %s", why.msg);
	if ((rc = hostsig_verify(c->hv, env, &cn, err)) != MU_OK) {
		wire_doc_free(&env->doc);
		return rc;
	}
	if (strcmp(cn, thost) != 0) {
		wire_doc_free(&env->doc);
		return mu_errf(err, MU_ETRUST, "signed by %.64s, not by %s", cn, thost);
	}
	return MU_OK;
}

int
verify_result(struct ctl *c, const char *topic, const uint8_t *p, size_t len,
    struct result *out, struct mu_err *err)
{
	char tjob[JOBID_MAX_LEN + 1], thost[NAME_MAX_LEN + 1];
	struct agent_envelope env;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!topic_names(c, topic, tjob, thost) || tjob[0] == '\0')
		return mu_errf(err, MU_EINVAL, "not a result topic");
	if ((rc = open_envelope(c, thost, p, len, &env, err)) != MU_OK)
		return rc;
	rc = result_decode(env.body.ptr, env.body.len, out, err);
	wire_doc_free(&env.doc);
	if (rc != MU_OK)
		return rc;
	if (strcmp(out->host, thost) != 0)
		rc = mu_errf(err, MU_ETRUST, "result of %s names host %s", thost, out->host);
	else if (strcmp(out->job, tjob) != 0)
		rc = mu_errf(err, MU_ETRUST, "result on job %s names job %s", tjob, out->job);
	if (rc != MU_OK)
		wire_doc_free(&out->doc);
	return rc;
}

int
verify_event(struct ctl *c, const char *topic, const uint8_t *p, size_t len,
    struct event *out, struct mu_err *err)
{
	char tjob[JOBID_MAX_LEN + 1], thost[NAME_MAX_LEN + 1];
	struct agent_envelope env;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!topic_names(c, topic, tjob, thost) || tjob[0] == '\0')
		return mu_errf(err, MU_EINVAL, "not an event topic");
	if ((rc = open_envelope(c, thost, p, len, &env, err)) != MU_OK)
		return rc;
	rc = event_decode(env.body.ptr, env.body.len, out, err);
	wire_doc_free(&env.doc);
	if (rc != MU_OK)
		return rc;
	if (strcmp(out->host, thost) != 0)
		rc = mu_errf(err, MU_ETRUST, "event of %s names host %s", thost, out->host);
	else if (strcmp(out->job, tjob) != 0)
		rc = mu_errf(err, MU_ETRUST, "event on job %s names job %s", tjob, out->job);
	if (rc != MU_OK)
		wire_doc_free(&out->doc);
	return rc;
}

/*
 * A status brings its own certificate: it must be the one the envelope
 * names, chain to the CA, and name the host of the topic and the body.
 * Once it passed, results signed with it verify too.
 */
int
verify_status(struct ctl *c, const char *topic, const uint8_t *p, size_t len,
    struct status *out, struct mu_err *err)
{
	char tjob[JOBID_MAX_LEN + 1], thost[NAME_MAX_LEN + 1], fpr[SHA256_HEX_LEN + 1];
	struct agent_envelope env;
	struct mu_err why;
	const char *cn;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!topic_names(c, topic, tjob, thost) || tjob[0] != '\0')
		return mu_errf(err, MU_EINVAL, "not a status topic");
	if ((rc = ctl_verifier(c, err)) != MU_OK)
		return rc;
	if (agent_envelope_decode(p, len, &env, &why) != MU_OK)
		return mu_errf(err, MU_ESIG, "not a signed agent message: %s", why.msg);
	rc = status_decode(env.body.ptr, env.body.len, out, err);
	if (rc == MU_OK && (sha256_hex(out->cert_der.ptr, out->cert_der.len, fpr) != MU_OK ||
	    strcmp(fpr, env.cert) != 0))
		rc = mu_errf(err, MU_ETRUST, "cert_der is not the certificate the envelope names");
	if (rc == MU_OK)
		rc = hostsig_cert_add(c->hv, out->cert_der.ptr, out->cert_der.len, &cn, err);
	if (rc == MU_OK)
		rc = hostsig_verify(c->hv, &env, &cn, err);
	if (rc == MU_OK && strcmp(cn, thost) != 0)
		rc = mu_errf(err, MU_ETRUST, "signed by %.64s, not by %s", cn, thost);
	if (rc == MU_OK && strcmp(out->host, thost) != 0)
		rc = mu_errf(err, MU_ETRUST, "status of %s names host %s", thost, out->host);
	wire_doc_free(&env.doc);
	if (rc != MU_OK && out->doc.live)
		wire_doc_free(&out->doc);
	return rc;
}

/* Count a forged message; --json shows each one as it comes. */
void
forged_note(struct ctl *c, const char *topic, const char *reason)
{
	c->nforged++;
	if (c->json)
		json_print_line(json_pack("{s:s, s:o, s:o}", "type", "forged",
		    "topic", json_text(topic, strlen(topic), NULL),
		    "reason", json_text(reason, strlen(reason), NULL)));
}

/* The human line under a report; nothing when all was genuine. */
void
forged_report(const struct ctl *c, FILE *f)
{
	if (c->nforged && !c->json)
		fprintf(f, "forged: %zu message%s (not counted)\n", c->nforged,
		    c->nforged == 1 ? "" : "s");
}
