/* SPDX-License-Identifier: Apache-2.0 */
/*
 * results.c - the parent's side of a job's one answer (design.md §3).
 *
 * result_submit() encodes a result, numbers and signs it (sign.c) and
 * hands the envelope to the network process, which spools it (fsync) and
 * answers "spooled"; only then does
 * the parent forget it and the job's journal mark (results_spooled()).
 * Until then the result waits here, and a new network process gets it
 * again (results_resend()), so neither process dying loses an answer.
 *
 * Ownership: struct pending entries and their bodies belong to a->par.pending.
 */
#include "agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
result_init(struct agent *a, struct result *r, const struct job *j, enum result_status st)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->host, sizeof(r->host), "%s", a->cfg.host);
	snprintf(r->agent_version, sizeof(r->agent_version), "%s", AGENT_VERSION);
	r->status = st;
	r->started_at = r->finished_at = now_wall_ms();
	if (j == NULL)
		return;
	snprintf(r->job, sizeof(r->job), "%s", j->id);
	r->kind = j->kind;
	if (j->kind == JOB_RUN)
		snprintf(r->module, sizeof(r->module), "%s", j->module);
}

static void
pending_free(struct agent *a, struct pending *p)
{
	a->par.npending--;
	a->par.pending_bytes -= p->len + PENDING_OVERHEAD;
	free(p->body);
	free(p);
}

/*
 * Over the bounds (agent.h): the network process has not acknowledged
 * thousands of results or megabytes of them, so it is stuck or lying.
 * This result is not kept (its job's journal entry answers it after the
 * next start), and the network process is replaced, unless the current
 * one has only just started and is still taking the results sent again.
 */
static int
pending_full(struct agent *a, const char *job, size_t len)
{
	if (a->par.npending < PENDING_MAX &&
	    a->par.pending_bytes + len + PENDING_OVERHEAD <= PENDING_BYTES_MAX)
		return MU_OK;
	log_err("job %s: %zu results (%zu bytes) wait for the network process to "
	    "spool them: this one is not kept; the job is answered \"interrupted\" "
	    "at the agent's next start", job, a->par.npending, a->par.pending_bytes);
	if (a->par.net_pid > 0 && now_mono_ms() - a->par.net_spawned_ms >= PENDING_GRACE_MS)
		priv_net_replace(a, "does not acknowledge results");
	return MU_ENOMEM;
}

int
result_submit(struct agent *a, struct result *r)
{
	struct pending *p, **pp;
	msgpack_sbuffer body, sb;
	struct mu_err err;
	int rc;

	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(&sb);
	if ((rc = result_encode(r, &body, &err)) == MU_OK &&
	    (rc = pending_full(a, r->job, body.size)) != MU_OK) {
		msgpack_sbuffer_destroy(&body);
		return rc;
	}
	/* Numbered and signed once: a resend is the very same bytes. */
	if (rc == MU_OK)
		rc = sign_result(a, body.data, body.size, &sb, &err);
	msgpack_sbuffer_destroy(&body);
	if (rc != MU_OK || (p = calloc(1, sizeof(*p))) == NULL) {
		log_err("result for job %s: %s", r->job, rc ? err.msg : "out of memory");
		msgpack_sbuffer_destroy(&sb);
		return rc ? rc : MU_ENOMEM;
	}
	snprintf(p->job, sizeof(p->job), "%s", r->job);
	p->body = (uint8_t *)sb.data;	/* the envelope is handed over */
	p->len = sb.size;
	a->par.npending++;
	a->par.pending_bytes += p->len + PENDING_OVERHEAD;
	for (pp = &a->par.pending; *pp; pp = &(*pp)->next)
		;
	*pp = p;
	priv_send_result(a, p->job, p->body, p->len);
	return MU_OK;
}

/* The network process has the result on disk: the journal entry (for a
 * run) and our copy can go. */
void
results_spooled(struct agent *a, const char *job)
{
	struct pending **pp, *p;
	struct mu_err err;

	for (pp = &a->par.pending; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->job, job) == 0) {
			p = *pp;
			*pp = p->next;
			pending_free(a, p);
			/* A run's journal mark (seen.c); nothing for others. */
			if (seen_run_done(&a->par.seen, job, &err) != MU_OK)
				log_err("job %s: %s", job, err.msg);
			break;
		}
	/* Told once the mark is flushed (priv.c read_commit()). */
	answered_add(a, job);
}

bool
results_pending(const struct agent *a, const char *job)
{
	const struct pending *p;

	for (p = a->par.pending; p; p = p->next)
		if (strcmp(p->job, job) == 0)
			return true;
	return false;
}

void
results_resend(struct agent *a)
{
	struct pending *p;

	for (p = a->par.pending; p; p = p->next)
		priv_send_result(a, p->job, p->body, p->len);
}

void
results_free(struct agent *a)
{
	struct pending *p;

	while ((p = a->par.pending) != NULL) {
		a->par.pending = p->next;
		pending_free(a, p);
	}
}

