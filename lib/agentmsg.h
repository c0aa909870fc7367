/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentmsg.h - checking a message an agent published (design.md §3), the
 * same way for every consumer (the CLI, muster-server): the envelope's
 * certificate chains to the fleet CA, its CN is the host named in the
 * topic and in the body, and a result's or event's topic job is its
 * body's.  Anything else is forged.
 *
 * Certificates are learnt from statuses (which carry cert_der); results
 * and events name theirs by fingerprint only, so they verify with
 * MU_ENOENT until a status brought it (the caller may hold them).
 *
 * Ownership: the verifier is the caller's.  A decoded struct borrows from
 * the payload, as with the wire decoders; on MU_OK the caller frees its
 * doc, on failure nothing is left to free.
 */
#ifndef MUSTER_AGENTMSG_H
#define MUSTER_AGENTMSG_H

#include "facts.h"
#include "hostsig.h"
#include "wire.h"

enum agentmsg_kind { AGENTMSG_RESULT, AGENTMSG_EVENT, AGENTMSG_STATUS };

/* Split "<root>/v1/results/<job>/<host>[/events]" or
 * "<root>/v1/hosts/<host>/status" (names copied and validated; job is ""
 * for a status).  MU_EINVAL for any other topic. */
int agentmsg_topic(const char *topic, const char *root, enum agentmsg_kind *kind,
    char job[JOBID_MAX_LEN + 1], char host[NAME_MAX_LEN + 1]);

int agentmsg_result(struct hostsig_verifier *hv, const char *tjob, const char *thost,
    const uint8_t *p, size_t len, struct result *out, struct mu_err *err);
int agentmsg_event(struct hostsig_verifier *hv, const char *tjob, const char *thost,
    const uint8_t *p, size_t len, struct event *out, struct mu_err *err);
/* fpr (optional): the certificate's fingerprint once it passed. */
int agentmsg_status(struct hostsig_verifier *hv, const char *thost, const uint8_t *p,
    size_t len, struct status *out, char fpr[SHA256_HEX_LEN + 1], struct mu_err *err);

/*
 * Facts (R/hosts/<host>/facts, design.md §3).  Apart from enum
 * agentmsg_kind, so that its users need not handle a kind they do not
 * subscribe to.  The topic: MU_EINVAL unless it is a facts topic.  The
 * message: named by fingerprint like a result (MU_ENOENT until a status
 * brought the certificate); on MU_OK the caller frees out->facts
 * (facts_free()), on failure nothing is left to free.
 */
int agentmsg_facts_topic(const char *topic, const char *root, char host[NAME_MAX_LEN + 1]);
int agentmsg_facts(struct hostsig_verifier *hv, const char *thost, const uint8_t *p,
    size_t len, struct facts_msg *out, struct mu_err *err);

#endif
