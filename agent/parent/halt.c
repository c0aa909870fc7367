/* SPDX-License-Identifier: Apache-2.0 */
/*
 * halt.c - a release halt on R/releases/<channel>/halt (design.md §5), as
 * the parent judges it.  The network process passes the retained message
 * on unread (PRIV_HALT); only the parent holds the keys to believe it:
 *
 *  - muster-server's halt: an agent envelope signed with the server's
 *    signing pair, whose certificate (in the body, cert_der) chains to the
 *    fleet CA, is a signing certificate (not a TLS one: lib/hostsig.h) and
 *    has the CN srv:<name>;
 *  - an operator's halt: a job envelope signed by a key in [trust]
 *    operators.
 *
 * Either way the body must name this host's channel.  A halt can only stop
 * (which is why a server credential may issue it): the release of that
 * version published at or before the halt's "at" is not fetched (the
 * parent tells the network process, PRIV_HALTED) and not installed
 * (update_release() checks a->par.upd.halt_*).  A newer published_at lifts it.
 * Anything else is ignored, logged and counted.
 *
 * Ownership: the verified halt is copied into a->par.upd (halt_*); nothing
 * else outlives a call.
 */
#include "agent.h"
#include "hostsig.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* muster-server's form: its certificate is in the body. */
static int
halt_verify_server(struct agent *a, const struct agent_envelope *env,
    const struct release_halt *h, char *who, size_t wlen, struct mu_err *err)
{
	struct hostsig_verifier *v = NULL;
	char fpr[SHA256_HEX_LEN + 1];
	const char *cn, *cn2;
	int rc;

	if (h->cert_der.ptr == NULL)
		return mu_errf(err, MU_ETRUST, "no certificate in a certificate-signed halt");
	sha256_hex(h->cert_der.ptr, h->cert_der.len, fpr);
	if (strcmp(fpr, env->cert) != 0)
		return mu_errf(err, MU_ETRUST, "the envelope names another certificate than "
		    "the body carries");
	if ((rc = hostsig_verifier_new(a->cfg.broker.ca, &v, err)) != MU_OK)
		return rc;
	rc = hostsig_cert_add(v, h->cert_der.ptr, h->cert_der.len, &cn, err);
	if (rc == MU_OK && strncmp(cn, "srv:", 4) != 0)
		rc = mu_errf(err, MU_ETRUST, "signed by %s, not by a muster-server (srv:)", cn);
	if (rc == MU_OK)
		rc = hostsig_verify(v, env, &cn2, err);
	if (rc == MU_OK)
		snprintf(who, wlen, "%s", cn);
	hostsig_verifier_free(v);
	return rc;
}

/* Decode and verify either form; MU_OK fills h (the caller frees h->doc)
 * and who (the signer, for the log). */
static int
halt_verify(struct agent *a, const void *p, size_t len, struct release_halt *h,
    struct wire_doc *envdoc, char *who, size_t wlen, struct mu_err *err)
{
	struct job_envelope je;
	struct agent_envelope ae;
	int rc;

	if (envelope_decode(p, len, &je, err) == MU_OK) {
		*envdoc = je.doc;
		if ((rc = envelope_verify(&a->par.operators, &je, err)) != MU_OK)
			return rc;
		if ((rc = release_halt_decode(je.body.ptr, je.body.len, h, err)) != MU_OK)
			return rc;
		snprintf(who, wlen, "operator key %s", je.key);
		return MU_OK;
	}
	if ((rc = agent_envelope_decode(p, len, &ae, err)) != MU_OK)
		return mu_errf(err, MU_EINVAL, "neither an operator's nor a server's envelope");
	*envdoc = ae.doc;
	if ((rc = release_halt_decode(ae.body.ptr, ae.body.len, h, err)) != MU_OK)
		return rc;
	if ((rc = halt_verify_server(a, &ae, h, who, wlen, err)) != MU_OK)
		wire_doc_free(&h->doc);
	return rc;
}

void
halt_message(struct agent *a, const void *p, size_t len)
{
	struct release_halt h;
	struct wire_doc envdoc = { 0 };
	char who[NAME_MAX_LEN + 64], reason[RELEASE_HALT_REASON_MAX + 1];
	struct mu_err err;
	int rc;

	rc = halt_verify(a, p, len, &h, &envdoc, who, sizeof(who), &err);
	if (rc == MU_OK && strcmp(h.channel, a->cfg.channel) != 0) {
		rc = mu_errf(&err, MU_EINVAL, "it halts channel %s, not ours (%s)", h.channel,
		    a->cfg.channel);
		wire_doc_free(&h.doc);
	}
	if (rc != MU_OK) {
		a->par.upd.halts_ignored++;
		log_warnx("release halt ignored (%" PRIu64 " so far): %s",
		    a->par.upd.halts_ignored, err.msg);
		wire_doc_free(&envdoc);
		return;
	}
	printable_copy(reason, sizeof(reason), h.reason.ptr, h.reason.len);
	/* The latest word for a version wins; an older halt (a re-delivery)
	 * changes nothing. */
	if (strcmp(a->par.upd.halt_version, h.version) != 0 || h.at > a->par.upd.halt_at) {
		snprintf(a->par.upd.halt_version, sizeof(a->par.upd.halt_version), "%s",
		    h.version);
		a->par.upd.halt_at = h.at;
		snprintf(a->par.upd.halt_reason, sizeof(a->par.upd.halt_reason), "%s", reason);
		log_notice("release %s on channel %s is halted (by %s): %s", h.version, h.channel,
		    who, reason);
		priv_send_halted(a, h.version, h.at);
		update_halt_report(a);
	}
	wire_doc_free(&h.doc);
	wire_doc_free(&envdoc);
}
