/* SPDX-License-Identifier: Apache-2.0 */
/*
 * intake.c - a job message from the broker: the acceptance rules of
 * design.md §3, in order, then the kinds.  Nothing runs unless every rule
 * holds; every refusal is answered with a "rejected" result (rate-limited)
 * and logged.
 */
#include "agent.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- refusals --------------------------------------------------------- */

static bool
reject_allowed(struct agent *a)
{
	uint64_t now = now_mono_ms();

	if (now - a->par.reject_window_start > REJECT_WINDOW_MS) {
		a->par.reject_window_start = now;
		a->par.reject_count = 0;
	}
	return ++a->par.reject_count <= REJECT_BURST;
}

/*
 * A reason can quote the refused message (a decoder names an unknown value
 * or a duplicate key), which anyone allowed to publish a job may choose:
 * keep printable ASCII only, so it can neither forge log lines ("\n<0>...")
 * nor put invalid UTF-8 into the result's reason string.
 */
static void
reason_clean(char *out, size_t size, const char *in)
{
	size_t i;

	for (i = 0; i + 1 < size && in[i] != '\0'; i++)
		out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	out[i] = '\0';
}

/*
 * Answer a refused job whose signature verified: under its own id.
 */
static void
reject(struct agent *a, const struct job *j, const char *why)
{
	char reason[sizeof(((struct mu_err *)0)->msg) + 64];
	struct result r;

	reason_clean(reason, sizeof(reason), why);
	a->par.jobs_rejected++;
	log_notice("rejected job %s: %s", j->id, reason);
	if (!reject_allowed(a))
		return;
	result_init(a, &r, j, RS_REJECTED);
	r.reason = (struct wire_str){ reason, strlen(reason) };
	result_submit(a, &r);
}

/*
 * Answer an envelope that could not be verified.  Its body is anyone's
 * words, so its id must not address the answer (else a forger could put a
 * "rejected" under a live job's id, design.md §3): the refusal goes to
 * "invalid-<first 16 hex of SHA-256 of the envelope>", a prefix no real
 * job id may have (names.h).
 */
static void
reject_unverified(struct agent *a, const uint8_t *payload, size_t len, const char *why)
{
	char hash[SHA256_HEX_LEN + 1], reason[sizeof(((struct mu_err *)0)->msg) + 64];
	struct result r;

	reason_clean(reason, sizeof(reason), why);
	a->par.jobs_rejected++;
	sha256_hex(payload, len, hash);
	log_notice("rejected job " JOBID_RESERVED_PREFIX "%.16s: %s", hash, reason);
	if (!reject_allowed(a))
		return;
	result_init(a, &r, NULL, RS_REJECTED);
	snprintf(r.job, sizeof(r.job), JOBID_RESERVED_PREFIX "%.16s", hash);
	r.kind = JOB_UNKNOWN;
	r.reason = (struct wire_str){ reason, strlen(reason) };
	result_submit(a, &r);
}

/* ---- the rules -------------------------------------------------------- */

static bool
target_matches(struct agent *a, const struct job_target *t)
{
	int i;

	switch (t->kind) {
	case TARGET_ALL:
		return true;
	case TARGET_HOST:
		return strcmp(t->name, a->cfg.host) == 0;
	case TARGET_GROUP:
		for (i = 0; i < a->cfg.ngroups; i++)
			if (strcmp(t->name, a->cfg.groups[i]) == 0)
				return true;
		return false;
	}
	return false;
}

static bool
targets_equal(const struct job_target *x, const struct job_target *y)
{
	return x->kind == y->kind && strcmp(x->name, y->name) == 0;
}

/* The time rules; reason set when one fails. */
static const char *
check_window(struct agent *a, const struct job *j)
{
	uint64_t now = now_wall_ms();

	if (j->issued_at > now + CLOCK_SKEW_MS)
		return "job is issued in the future (check the clocks)";
	/* Not "not_after + skew <= now": a huge not_after would wrap. */
	if (now >= CLOCK_SKEW_MS && j->not_after <= now - CLOCK_SKEW_MS)
		return "job has expired";
	if (j->not_after < j->issued_at || j->not_after - j->issued_at > a->cfg.max_ttl_ms)
		return "job lifetime is longer than this host's max_ttl";
	return NULL;
}

/* Unverifiable: the key and the signature, then the body (whose id can be
 * read only once it decodes).  Returns the reason, or NULL. */
static const char *
job_authenticate(struct agent *a, const struct job_envelope *env, struct job *j,
    struct mu_err *err)
{
	struct mu_err why_body;

	switch (envelope_verify(&a->par.operators, env, err)) {
	case MU_OK:
		break;
	case MU_ETRUST:
		mu_errf(err, MU_ETRUST, "unknown operator key %s", env->key);
		return err->msg;
	default:
		return "bad signature";
	}
	if (job_decode(env->body.ptr, env->body.len, j, &why_body) != MU_OK) {
		mu_errf(err, MU_EINVAL, "malformed job body: %s", why_body.msg);
		return err->msg;
	}
	return NULL;
}

/* The rules of a verified job, in design.md §3's order after the seen-set;
 * reason set when one fails. */
static const char *
job_rules(struct agent *a, const char *topic, const struct job *j, struct mu_err *err)
{
	struct job_target on;
	const char *why;

	char st[TOPIC_MAX];

	/* The self-test (design.md §5): its one job comes on the host's selftest
	 * topic, addressed to the host, and may only echo a nonce. */
	if (a->selftest) {
		if (topic_build(st, sizeof(st), a->root, TOPIC_SELFTEST_JOBS, a->cfg.host,
		    NULL) != MU_OK || strcmp(topic, st) != 0 || j->target.kind != TARGET_HOST)
			return "a self-test takes jobs on its selftest topic only";
		if (j->kind != JOB_RUN || strcmp(j->module, "selftest.echo") != 0)
			return "a self-test runs selftest.echo only";
		if (a->par.selftest_job[0])
			return "this self-test has its job already";
	} else if (topic_parse_jobs(topic, a->root, &on) != MU_OK ||
	    !targets_equal(&on, &j->target))
		return "job target does not match the topic it came on";
	if (!target_matches(a, &j->target))
		return "job target does not match this host";
	if ((why = check_window(a, j)) != NULL)
		return why;
	if (j->aud[0] == '\0') {
		mu_errf(err, MU_EINVAL, "job has no aud (this host is in fleet %s/v1; "
		    "an older sender?)", a->root);
		return err->msg;
	}
	if (strncmp(j->aud, a->root, strlen(a->root)) != 0 ||
	    strcmp(j->aud + strlen(a->root), "/v1") != 0) {
		mu_errf(err, MU_EINVAL, "job is for fleet %s, this host is in fleet %s/v1",
		    j->aud, a->root);
		return err->msg;
	}
	return NULL;
}

/*
 * The job's fact filter on this host's facts (design.md §3), after the
 * target and aud rules and before the policy.  A malformed filter is a
 * refusal (reason set); a filter this host does not match sets *skip:
 * the job is not for it, and it says nothing.
 */
static const char *
job_filter(struct agent *a, const struct job *j, bool *skip, struct mu_err *err)
{
	struct fact_filter f;
	struct mu_err why;

	*skip = false;
	if (j->filter == NULL)
		return NULL;
	if (filter_decode(j->filter, &f, &why) != MU_OK) {
		mu_errf(err, MU_EINVAL, "malformed filter: %s", why.msg);
		return err->msg;
	}
	*skip = !facts_match(&a->par.facts, &f);
	return NULL;
}

/*
 * A job whose filter this host does not match: nothing runs and nothing
 * is published, but its id enters the seen-set (flushed by
 * intake_commit() before the job is said durable), so that a re-delivery
 * after the facts changed is a duplicate, never a run (design.md §3).
 */
static void
intake_skip(struct agent *a, const struct job *j)
{
	struct mu_err err;

	a->par.jobs_filtered++;
	log_info("job %s: its filter does not match this host's facts; not run, not "
	    "answered (%llu so far)", j->id, (unsigned long long)a->par.jobs_filtered);
	if (seen_append(&a->par.seen, j->id, j->not_after, NULL, &err) != MU_OK)
		log_err("job %s: %s", j->id, err.msg);
}

/* The policy, last (design.md §8).  Fills the run's user and timeout cap. */
static const char *
job_authorize(struct agent *a, const struct job_envelope *env, const struct job *j,
    struct policy_verdict *v, struct mu_err *err)
{
	const struct sign_key *k = keyring_find(&a->par.operators, env->key);
	char target[NAME_MAX_LEN + 8];
	struct policy_request q = { k ? sign_key_name(k) : "", j->kind, j->module, target };

	target_format(&j->target, target, sizeof(target));
	policy_check(&a->par.policy, &q, v);
	if (v->allow)
		return NULL;
	mu_errf(err, MU_ETRUST, "not allowed for operator %s: %s", q.operator_, v->why);
	return err->msg;
}

/* Missing at the default path: no policy; anywhere else it was asked for
 * by name, and missing is an error. */
bool
intake_policy_optional(const struct agent_config *cfg)
{
	return strcmp(cfg->policy, POLICY_DEFAULT) == 0;
}

int
intake_policy_load(const struct agent_config *cfg, struct policy *out, struct mu_err *err)
{
	return policy_load(out, cfg->policy, intake_policy_optional(cfg), err);
}

/* ---- the kinds -------------------------------------------------------- */

static void
answer(struct agent *a, const struct job *j, enum result_status st, const char *summary,
    const msgpack_object *data)
{
	struct result r;

	result_init(a, &r, j, st);
	if (summary)
		r.summary = (struct wire_str){ summary, strlen(summary) };
	r.data = data;
	result_submit(a, &r);
}

static void
answer_version(struct agent *a, const struct job *j)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
	const char *kv[][2] = {
		{ "version", AGENT_VERSION }, { "runner_version", a->par.runner_version },
		{ "channel", a->cfg.channel },
	};
	size_t i;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	for (i = 0; i < 3; i++) {
		msgpack_pack_str_with_body(&pk, kv[i][0], strlen(kv[i][0]));
		msgpack_pack_str_with_body(&pk, kv[i][1], strlen(kv[i][1]));
	}
	msgpack_pack_str_with_body(&pk, "abi", 3);
	msgpack_pack_uint32(&pk, 1);
	msgpack_unpacked_init(&up);
	msgpack_unpack_next(&up, sb.data, sb.size, NULL);
	answer(a, j, RS_PASS, AGENT_VERSION, &up.data);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

/* Load lives in the ping answer, not in the status (design.md §3: status is
 * presence, and a status per job would double a broadcast's messages). */
static void
answer_ping(struct agent *a, const struct job *j)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "running", 7);
	msgpack_pack_uint32(&pk, a->par.nrunning > 0 ? (uint32_t)a->par.nrunning : 0);
	msgpack_unpacked_init(&up);
	msgpack_unpack_next(&up, sb.data, sb.size, NULL);
	answer(a, j, RS_PASS, "pong", &up.data);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

static void
answer_cancel(struct agent *a, const struct job *j)
{
	struct run *r = run_find(a, j->cancel);
	char msg[128];

	if (r == NULL) {
		snprintf(msg, sizeof(msg), "job %s is not running here", j->cancel);
		answer(a, j, RS_FAIL, msg, NULL);
		return;
	}
	snprintf(msg, sizeof(msg), "cancelled job %s", j->cancel);
	answer(a, j, RS_PASS, msg, NULL);
	run_cancel(a, r);
}

/* A run job, journaled with its id already (seen_add), so a restart
 * reports it. */
static void
start_run(struct agent *a, struct job *j, const struct job_envelope *env,
    const struct policy_verdict *v)
{
	struct run *r = calloc(1, sizeof(*r));
	struct mu_err err;

	if (r == NULL || (r->body = malloc(env->body.len)) == NULL) {
		free(r);
		answer(a, j, RS_ERROR, "agent out of memory", NULL);
		return;
	}
	memcpy(r->body, env->body.ptr, env->body.len);
	r->body_len = env->body.len;
	if (a->par.switch_user)
		snprintf(r->run_as, sizeof(r->run_as), "%s",
		    v->rule && v->rule->run_as[0] ? v->rule->run_as : a->cfg.run_as);
	r->timeout_cap_ms = v->rule ? v->rule->timeout_cap_ms : 0;
	r->net_no = v->rule && v->rule->net_no;
	/* Decode again from our own copy: the envelope's buffer goes away. */
	if (job_decode(r->body, r->body_len, &r->job, &err) != MU_OK) {
		log_warnx("job %s: %s", j->id, err.msg);
		free(r->body);
		free(r);
		answer(a, j, RS_ERROR, "agent could not decode its copy of the job", NULL);
		return;
	}
	run_submit(a, r);
}

static void
dispatch(struct agent *a, struct job *j, const struct job_envelope *env,
    const struct policy_verdict *v)
{
	switch (j->kind) {
	case JOB_PING:
		answer_ping(a, j);
		break;
	case JOB_VERSION:
		answer_version(a, j);
		break;
	case JOB_CANCEL:
		answer_cancel(a, j);
		break;
	case JOB_RUN:
		/* Accepted (its id is recorded), so it gets its one result. */
		if (a->stopping)
			answer(a, j, RS_INTERRUPTED, "the agent stopped before the job could start",
			    NULL);
		else
			start_run(a, j, env, v);
		break;
	case JOB_UPDATE:
		if (a->stopping)
			answer(a, j, RS_INTERRUPTED, "the agent stopped", NULL);
		else
			update_job(a, j, env->body.ptr, env->body.len);
		break;
	default:
		answer(a, j, RS_ERROR, "the agent cannot do this kind of job", NULL);
		break;
	}
}

static void accepted_queue(struct agent *a, const uint8_t *p, size_t len,
    const struct policy_verdict *v);

/*
 * What the seen-set journals for a job until its answer is spooled
 * (seen.c): a run's module, ":KIND" for the kinds answered at once (a
 * parent killed between the flush and the answer then answers it
 * "interrupted" at the next start, design.md §3), nothing for an update
 * (answered by whichever version is running when it is done).
 */
static const char *
journal_tag(const struct job *j)
{
	switch (j->kind) {
	case JOB_RUN:
		return j->module;
	case JOB_PING:
		return ":ping";
	case JOB_VERSION:
		return ":version";
	case JOB_CANCEL:
		return ":cancel";
	default:
		return NULL;
	}
}

/* A job that passed every check: its id into the seen-set (flushed by
 * intake_commit()), then it waits for that flush. */
static void
intake_record(struct agent *a, const struct job *j, const uint8_t *p, size_t len,
    const struct policy_verdict *v)
{
	struct mu_err err = { "" };

	test_stop_at("parent-verified");	/* not yet recorded */
	if (seen_append(&a->par.seen, j->id, j->not_after, journal_tag(j), &err) != MU_OK) {
		log_err("job %s: %s", j->id, err.msg);
		answer(a, j, RS_ERROR, "agent could not record the job id", NULL);
		return;
	}
	if (a->selftest)
		snprintf(a->par.selftest_job, sizeof(a->par.selftest_job), "%s", j->id);
	accepted_queue(a, p, len, v);
}

void
intake_message(struct agent *a, const char *topic, const uint8_t *p, size_t len)
{
	struct policy_verdict v;
	struct job_envelope env;
	struct job j;
	struct mu_err err = { "" };
	char reason[sizeof(err.msg) + 32];
	const char *why;
	bool skip = false;

	if (job_oversize(a, len))
		return;
	if (envelope_decode(p, len, &env, &err) != MU_OK) {
		snprintf(reason, sizeof(reason), "malformed job envelope: %s", err.msg);
		reject_unverified(a, p, len, reason);
		return;
	}
	if ((why = job_authenticate(a, &env, &j, &err)) != NULL) {
		reject_unverified(a, p, len, why);
		wire_doc_free(&env.doc);
		return;
	}
	/*
	 * A duplicate delivery (QoS 1 is at-least-once) or a replay: the job
	 * has its one answer already (or will, if it still runs), so this
	 * copy gets none (design.md §3).
	 */
	if (seen_has(&a->par.seen, j.id)) {
		a->par.jobs_duplicate++;
		log_info("job %s: duplicate delivery of an accepted id; not answered again "
		    "(%llu duplicates so far)", j.id, (unsigned long long)a->par.jobs_duplicate);
	} else if ((why = job_rules(a, topic, &j, &err)) != NULL ||
	    (why = job_filter(a, &j, &skip, &err)) != NULL ||
	    (!skip && (why = job_authorize(a, &env, &j, &v, &err)) != NULL)) {
		snprintf(reason, sizeof(reason), "%s", why);
		reject(a, &j, reason);
	} else if (skip)
		intake_skip(a, &j);
	else
		intake_record(a, &j, p, len, &v);
	wire_doc_free(&j.doc);
	wire_doc_free(&env.doc);
}

/* ---- group commit ------------------------------------------------------- */

/*
 * Jobs accepted by intake_message() wait here, their ids appended to the
 * seen-set but not yet flushed, until the caller has handed over every
 * job message it read at once: then one fdatasync covers them all, and
 * only after it does any of them run or get answered (intake_commit()).
 * A burst of N jobs costs one flush instead of N.
 */
struct accepted {
	uint8_t *payload;		/* owned copy of the verified envelope */
	size_t len;
	struct policy_verdict v;	/* borrows from a->par.policy: no reload
					 * happens before the commit */
	struct accepted *next;
};

static void
accepted_queue(struct agent *a, const uint8_t *p, size_t len, const struct policy_verdict *v)
{
	struct accepted *q = calloc(1, sizeof(*q)), **pp;

	if (q == NULL || (q->payload = malloc(len)) == NULL) {
		/* Its id is known: it needs its answer, after the flush. */
		struct job_envelope env;
		struct job j;
		struct mu_err err;

		free(q);
		if (seen_sync(&a->par.seen, &err) != MU_OK)
			log_err("seen-set: %s", err.msg);
		if (envelope_decode(p, len, &env, &err) == MU_OK) {
			if (job_decode(env.body.ptr, env.body.len, &j, &err) == MU_OK) {
				answer(a, &j, RS_ERROR, "agent out of memory", NULL);
				wire_doc_free(&j.doc);
			}
			wire_doc_free(&env.doc);
		}
		return;
	}
	memcpy(q->payload, p, len);
	q->len = len;
	q->v = *v;
	for (pp = &a->par.accepted; *pp; pp = &(*pp)->next)
		;
	*pp = q;
}

/* One accepted job after the flush: decoded again from the same verified
 * bytes (cheap; the signature is not checked twice). */
static void
accepted_run(struct agent *a, struct accepted *q, bool synced)
{
	struct job_envelope env;
	struct job j;
	struct mu_err err;

	if (envelope_decode(q->payload, q->len, &env, &err) != MU_OK)
		return;
	if (job_decode(env.body.ptr, env.body.len, &j, &err) == MU_OK) {
		if (!synced)
			answer(a, &j, RS_ERROR, "agent could not record the job id", NULL);
		else {
			a->par.jobs_accepted++;
			log_info("accepted job %s (%s) from key %s (%s)", j.id,
			    job_kind_name(j.kind), env.key, q->v.why);
			dispatch(a, &j, &env, &q->v);
		}
		wire_doc_free(&j.doc);
	}
	wire_doc_free(&env.doc);
}

void
intake_commit(struct agent *a)
{
	struct accepted *q;
	struct mu_err err;
	bool synced;

	if (a->par.accepted == NULL) {
		/* The ids of skipped jobs (intake_skip()), before their
		 * durable frame. */
		if (seen_sync(&a->par.seen, &err) != MU_OK)
			log_err("seen-set: %s", err.msg);
		return;
	}
	synced = seen_sync(&a->par.seen, &err) == MU_OK;
	if (!synced)
		log_err("seen-set: %s", err.msg);
	test_stop_at("parent-flushed");	/* nothing run or answered yet */
	while ((q = a->par.accepted) != NULL) {
		a->par.accepted = q->next;
		accepted_run(a, q, synced);
		free(q->payload);
		free(q);
	}
}

/* ---- after a restart -------------------------------------------------- */

/* A journal file of an older version: its run moves into the seen-set's
 * journal (durably) before the file goes, so a crash in between loses
 * neither. */
static void
legacy_one(struct agent *a, const char *path, const char *name)
{
	uint8_t buf[WIRE_MAX_BODY];
	struct mu_err err;
	struct job j;
	ssize_t n;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return;
	n = (ssize_t)fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n <= 0 || job_decode(buf, (size_t)n, &j, &err) != MU_OK) {
		log_warnx("journal: %s is damaged; dropped", name);
		remove(path);
		return;
	}
	if (seen_mark_run(&a->par.seen, j.id, j.not_after, j.module, &err) == MU_OK)
		journal_remove(&a->spool, j.id);
	else
		log_warnx("journal: %s: %s", name, err.msg);
	wire_doc_free(&j.doc);
}

static void
legacy_journal(struct agent *a)
{
	char path[sizeof(a->spool.journal) + 256];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(a->spool.journal)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "job-", 4) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", a->spool.journal, de->d_name);
		legacy_one(a, path, de->d_name);
	}
	closedir(d);
}

static void
interrupted_one(struct agent *a, const struct seen_run *run)
{
	struct mu_err err;
	struct result r;
	struct job j;

	/* A result already spooled means the job finished; only its done
	 * mark was cut off. */
	if (spool_has_job(&a->spool, run->id)) {
		if (seen_run_done(&a->par.seen, run->id, &err) != MU_OK)
			log_warnx("journal: %s", err.msg);
		return;
	}
	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "%s", run->id);
	j.kind = JOB_RUN;
	if (run->module[0] == ':')	/* another kind (journal_tag()) */
		j.kind = job_kind_parse(run->module + 1, strlen(run->module + 1));
	else
		snprintf(j.module, sizeof(j.module), "%s", run->module);
	result_init(a, &r, &j, RS_INTERRUPTED);
	r.reason = j.kind == JOB_RUN ?
	    (struct wire_str){ "the agent restarted while the job ran", 37 } :
	    (struct wire_str){ "the agent restarted before it answered", 38 };
	/* Its done mark comes once the result is spooled. */
	result_submit(a, &r);
	log_notice("job %s: interrupted by an agent restart", j.id);
}

void
intake_interrupted(struct agent *a)
{
	size_t i;

	legacy_journal(a);
	/* Backwards: a run marked done is replaced by the last one. */
	for (i = a->par.seen.nruns; i-- > 0;)
		interrupted_one(a, &a->par.seen.runs[i]);
}
