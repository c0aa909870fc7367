/* SPDX-License-Identifier: Apache-2.0 */
/*
 * job.c - libmuster-client jobs: a muster_job_spec made into the CLI's
 * struct send (ctl/sendcore.h), started, and stepped one verified result
 * at a time (send_collect() with stop_at), then the summary and the
 * missing hosts as the CLI's report counts them.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "mpjson.h"

/* Answers are waited for as the CLI does: send_run_wait() for a run,
 * send_init()'s 30 s for ping and version. */
#define PUBACK_WAIT_MS		10000

static int
pack_args(muster_job *j, const char *text)
{
	muster_session *s = j->s;
	json_error_t jerr;
	msgpack_packer pk;
	json_t *args;
	int rc;

	if ((args = json_loads(text, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return client_fail(s, MUSTER_EINVAL, "args_json: %s", jerr.text);
	if (!json_is_object(args)) {
		json_decref(args);
		return client_fail(s, MUSTER_EINVAL, "args_json is not a JSON object");
	}
	msgpack_packer_init(&pk, &j->snd.args, msgpack_sbuffer_write);
	rc = mpjson_pack(&pk, args);
	json_decref(args);
	if (rc != 0)
		return client_fail(s, MUSTER_EINVAL, "args_json cannot be packed");
	j->snd.have_args = true;
	return MUSTER_OK;
}

/* The spec into the core's struct send, as the CLI's parse_run() does
 * with its options. */
static int
spec_take(muster_job *j, const struct muster_job_spec *sp)
{
	muster_session *s = j->s;
	struct send *snd = &j->snd;
	size_t i;

	for (i = 0; i < sp->nhosts; i++)
		if (sp->hosts[i] == NULL ||
		    send_add_target(&s->c, snd, TARGET_HOST, sp->hosts[i]) != 0)
			return client_fail(s, MUSTER_EINVAL, "host: %s", sp->hosts[i] ?
			    s->err : "NULL");
	for (i = 0; i < sp->ngroups; i++)
		if (sp->groups[i] == NULL ||
		    send_add_target(&s->c, snd, TARGET_GROUP, sp->groups[i]) != 0)
			return client_fail(s, MUSTER_EINVAL, "group: %s", sp->groups[i] ?
			    s->err : "NULL");
	if (sp->all && send_add_target(&s->c, snd, TARGET_ALL, NULL) != 0)
		return MUSTER_EINVAL;
	if (sp->nfilters > FILTER_MAX)
		return client_fail(s, MUSTER_EINVAL, "more than %d filters", FILTER_MAX);
	for (i = 0; i < sp->nfilters; i++) {
		if (sp->filters[i] == NULL)
			return client_fail(s, MUSTER_EINVAL, "filter %zu is NULL", i);
		if ((j->filters[i] = strdup(sp->filters[i])) == NULL)
			return client_fail(s, MUSTER_ENOMEM, "out of memory");
		if (ctl_filter_add(&s->c, &snd->filter, j->filters[i]) != 0)
			return MUSTER_EINVAL;
	}
	if (send_targets_done(&s->c, snd, "hosts, groups, all or filters") != 0)
		return MUSTER_EINVAL;
	snd->timeout_ms = sp->timeout_ms;
	if (sp->kind == MUSTER_JOB_RUN) {
		if (sp->module == NULL || !name_valid(sp->module))
			return client_fail(s, MUSTER_EINVAL, "bad module name '%s': %s",
			    sp->module ? sp->module : "(null)", NAME_RULE);
		snprintf(j->module, sizeof(j->module), "%s", sp->module);
		snd->module = j->module;
		if (sp->args_json != NULL && pack_args(j, sp->args_json) != MUSTER_OK)
			return MUSTER_EINVAL;
		snd->wait_ms = send_run_wait(snd);
	} else if (sp->module != NULL || sp->args_json != NULL)
		return client_fail(s, MUSTER_EINVAL, "module and args_json are for runs only");
	if (sp->wait_ms)
		snd->wait_ms = sp->wait_ms;
	return MUSTER_OK;
}

bool
client_route(struct ctl *c, struct bus_event *ev, const char *job)
{
	muster_session *s = c->hook_arg;
	muster_job *j;

	for (j = s->jobs; j != NULL; j = j->next)
		if (&j->snd != s->collecting && !j->finished && send_has_job(&j->snd, job)) {
			send_event(c, ev, &j->snd);
			return true;
		}
	return false;
}

/* Pump for job j; a lost connection is every job's, and the session's. */
static void
collect(muster_job *j)
{
	muster_session *s = j->s;

	if (s->lost && !j->snd.lost) {
		j->snd.lost = true;
		snprintf(j->snd.lost_reason, sizeof(j->snd.lost_reason), "%s", s->lost_reason);
	}
	s->collecting = &j->snd;
	if (!j->snd.lost)
		send_collect(&s->c, &j->snd, NULL);
	s->collecting = NULL;
	if (j->snd.lost && !s->lost) {
		s->lost = true;
		snprintf(s->lost_reason, sizeof(s->lost_reason), "%s", j->snd.lost_reason);
	}
}

/* Pump until the broker has the jobs (their PUBACKs), keeping any result
 * that comes first; MUSTER_OK, or why not. */
static int
wait_published(muster_job *j)
{
	struct send *snd = &j->snd;
	uint64_t deadline = now_mono_ms() + PUBACK_WAIT_MS;

	while (snd->unacked > 0 && !snd->pub_failed && !snd->lost &&
	    now_mono_ms() < deadline) {
		snd->stop_at = snd->nanswers + 1;
		snd->stop_acked = true;
		collect(j);
	}
	snd->stop_acked = false;
	snd->stop_at = 0;
	if (snd->lost)
		return client_fail(j->s, MUSTER_ELOST, "lost the broker: %s", snd->lost_reason);
	if (snd->pub_failed)
		return client_fail(j->s, MUSTER_EREFUSED, "the broker did not take the job%s",
		    snd->ntargets > 1 ? "s" : "");
	if (snd->unacked > 0)
		return client_fail(j->s, MUSTER_ELOST, "the broker did not acknowledge the job");
	return MUSTER_OK;
}

MUSTER_API int
muster_job_send(muster_session *s, const struct muster_job_spec *in, muster_job **out)
{
	struct muster_job_spec copy = { 0 }, *spec = &copy;
	enum job_kind kind;
	muster_job *j;
	int rc;

	if (out != NULL)
		*out = NULL;
	if (s == NULL)
		return MUSTER_EINVAL;
	s->err[0] = '\0';
	/* The fields the caller's struct has (an older, shorter one leaves
	 * the newer ones zero: their defaults); at least up to timeout_ms. */
	if (out == NULL || in == NULL || in->size < offsetof(struct muster_job_spec, timeout_ms))
		return client_fail(s, MUSTER_EINVAL, "spec, out or spec->size not set");
	memcpy(spec, in, in->size < sizeof(*spec) ? in->size : sizeof(*spec));
	switch (spec->kind) {
	case MUSTER_JOB_RUN: kind = JOB_RUN; break;
	case MUSTER_JOB_PING: kind = JOB_PING; break;
	case MUSTER_JOB_VERSION: kind = JOB_VERSION; break;
	default: return client_fail(s, MUSTER_EINVAL, "unknown job kind %d", (int)spec->kind);
	}
	if (s->lost)
		return client_fail(s, MUSTER_ELOST, "lost the broker (%s): open a new session",
		    s->lost_reason);
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return client_fail(s, MUSTER_ENOMEM, "out of memory");
	j->s = s;
	j->next = s->jobs;
	s->jobs = j;
	if (send_init(&j->snd, kind) != 0) {
		muster_job_free(j);
		return client_fail(s, MUSTER_ENOMEM, "out of memory");
	}
	if ((rc = spec_take(j, spec)) != MUSTER_OK) {
		muster_job_free(j);
		return rc;
	}
	j->nforged0 = s->c.nforged;
	if (send_start(&s->c, &j->snd) != 0) {
		/* Still connected: the job itself could not be made (too large,
		 * say) or a subscription was refused. */
		rc = j->snd.pub_failed ? MUSTER_EREFUSED :
		    bus_connected(s->c.bus) ? MUSTER_EINVAL : MUSTER_ELOST;
		if (s->err[0] == '\0')
			client_fail(s, rc, "%s", muster_strerror(rc));
		muster_job_free(j);
		return rc;
	}
	if ((rc = wait_published(j)) != MUSTER_OK) {
		muster_job_free(j);
		return rc;
	}
	*out = j;
	return MUSTER_OK;
}

static int
missing_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The wait is over: held results checked a last time, the missing hosts
 * listed, and what the end was. */
static void
job_finish(muster_job *j)
{
	struct send *snd = &j->snd;
	size_t i;

	send_finish(&j->s->c, snd);
	j->finished = true;
	if ((j->missing = calloc(snd->nexpected + 1, sizeof(*j->missing))) != NULL) {
		for (i = 0; i < snd->nexpected; i++)
			if (!host_answered(snd, snd->expected[i]))
				j->missing[j->nmissing++] = snd->expected[i];
		qsort(j->missing, j->nmissing, sizeof(*j->missing), missing_cmp);
	}
	if (snd->lost) {
		j->final_rc = client_fail(j->s, MUSTER_ELOST, "lost the broker: %s",
		    snd->lost_reason);
	} else if (snd->pub_failed) {
		j->final_rc = client_fail(j->s, MUSTER_EREFUSED, "the broker did not take the job");
	} else if (j->nmissing > 0 || snd->nanswers < snd->expect_count) {
		j->final_rc = client_fail(j->s, MUSTER_ETIMEOUT, "%zu expected host%s did not "
		    "answer", j->nmissing, j->nmissing == 1 ? "" : "s");
	} else
		j->final_rc = MUSTER_DONE;
}

/* The core's next answer as a result of the job's own. */
static int
deliver(muster_job *j, const muster_result **out)
{
	struct muster_result *r, **v;

	v = realloc(j->results, (j->nresults + 1) * sizeof(*v));
	if (v == NULL)
		return client_fail(j->s, MUSTER_ENOMEM, "out of memory");
	j->results = v;
	if ((r = client_result_new(&j->snd.answers[j->nresults].r)) == NULL)
		return client_fail(j->s, MUSTER_ENOMEM, "out of memory");
	j->results[j->nresults++] = r;
	*out = r;
	return MUSTER_OK;
}

MUSTER_API int
muster_job_next(muster_job *j, const muster_result **out)
{
	struct send *snd;

	if (out != NULL)
		*out = NULL;
	if (j == NULL || out == NULL)
		return MUSTER_EINVAL;
	snd = &j->snd;
	for (;;) {
		if (j->nresults < snd->nanswers)
			return deliver(j, out);
		if (j->finished)
			return j->final_rc;
		if ((snd->expect_count > 0 && send_done(snd)) || snd->lost ||
		    now_mono_ms() >= snd->t0 + snd->wait_ms) {
			job_finish(j);
			continue;
		}
		snd->stop_at = snd->nanswers + 1;
		collect(j);
		snd->stop_at = 0;
	}
}

MUSTER_API int
muster_job_wait(muster_job *j, muster_result_fn *fn, void *arg)
{
	const muster_result *r;
	int rc;

	while ((rc = muster_job_next(j, &r)) == MUSTER_OK)
		if (fn != NULL)
			fn(r, arg);
	return rc == MUSTER_DONE ? MUSTER_OK : rc;
}

MUSTER_API void
muster_job_free(muster_job *j)
{
	muster_job **pp;
	size_t i;

	if (j == NULL)
		return;
	for (pp = &j->s->jobs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	for (i = 0; i < j->nresults; i++)
		client_result_free(j->results[i]);
	free(j->results);
	free(j->missing);
	send_free(&j->snd);
	for (i = 0; i < FILTER_MAX; i++)
		free(j->filters[i]);
	free(j);
}

MUSTER_API const char *
muster_job_id(const muster_job *j, size_t i)
{
	if (j == NULL || i >= (size_t)j->snd.ntargets)
		return NULL;
	return j->snd.ids[i];
}

MUSTER_API int
muster_job_summary(const muster_job *j, struct muster_summary *out)
{
	const struct send *snd;
	struct muster_summary sum;
	int counts[RS_INTERRUPTED + 1];
	size_t i, k, answered = 0, missing = 0;

	if (j == NULL || out == NULL || out->size < sizeof(size_t))
		return MUSTER_EINVAL;
	snd = &j->snd;
	memset(&sum, 0, sizeof(sum));
	count_status(snd, counts);
	for (i = 0; i < snd->nexpected; i++) {
		if (host_answered(snd, snd->expected[i]))
			answered++;
		else
			missing++;
	}
	/* --expect N style counts (groups by number): as the CLI's report. */
	if (missing == 0 && snd->nanswers < snd->expect_count)
		missing = snd->expect_count - snd->nanswers;
	for (i = 0; i < snd->nanswers; i++) {
		const char *h = snd->answers[i].r.host;

		if (expected_has(snd, h))
			continue;
		for (k = 0; k < i; k++)
			if (strcmp(snd->answers[k].r.host, h) == 0)
				break;
		sum.unexpected += k == i;
	}
	sum.expected = snd->expect_count;
	sum.answered = snd->nexpected ? answered : snd->nanswers;
	sum.missing = missing;
	sum.forged = j->s->c.nforged - j->nforged0;
	sum.pass = (size_t)counts[RS_PASS];
	sum.fail = (size_t)counts[RS_FAIL];
	sum.error = (size_t)counts[RS_ERROR];
	sum.timeout = (size_t)counts[RS_TIMEOUT];
	sum.crashed = (size_t)counts[RS_CRASHED];
	sum.cancelled = (size_t)counts[RS_CANCELLED];
	sum.rejected = (size_t)counts[RS_REJECTED];
	sum.interrupted = (size_t)counts[RS_INTERRUPTED];
	/* Only as much as the caller's struct holds (an older, shorter one). */
	sum.size = out->size < sizeof(sum) ? out->size : sizeof(sum);
	memcpy(out, &sum, sum.size);
	return MUSTER_OK;
}

MUSTER_API const char *
muster_job_missing(const muster_job *j, size_t i)
{
	static const char *none = NULL;

	if (j == NULL)
		return none;
	if (j->finished)
		return i < j->nmissing ? j->missing[i] : NULL;
	/* Before the end: who has not answered yet, in the expected order. */
	{
		const struct send *snd = &j->snd;
		size_t k, n = 0;

		for (k = 0; k < snd->nexpected; k++)
			if (!host_answered(snd, snd->expected[k]) && n++ == i)
				return snd->expected[k];
	}
	return NULL;
}
