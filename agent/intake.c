/*
 * intake.c - a job message from the broker: the acceptance rules of
 * DESIGN §3, in order, then the kinds.  Nothing runs unless every rule
 * holds; every refusal is answered with a "rejected" result (rate-limited)
 * and logged.
 */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
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

/* ---- refusals --------------------------------------------------------- */

static bool
reject_allowed(struct agent *a)
{
	uint64_t now = now_mono_ms();

	if (now - a->reject_window_start > REJECT_WINDOW_MS) {
		a->reject_window_start = now;
		a->reject_count = 0;
	}
	return ++a->reject_count <= REJECT_BURST;
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
 * Answer a refused job.  The reply goes to the job's own result topic when
 * an id could be read (even from an unverified body: it only addresses the
 * refusal); otherwise to a synthetic id derived from the payload.
 */
static void
reject(struct agent *a, const struct job *j, const uint8_t *payload, size_t len,
    const char *why)
{
	char hash[SHA256_HEX_LEN + 1], reason[sizeof(((struct mu_err *)0)->msg) + 32];
	struct result r;

	reason_clean(reason, sizeof(reason), why);
	a->jobs_rejected++;
	log_notice("rejected job %s: %s", j && j->id[0] ? j->id : "(unreadable)", reason);
	if (!reject_allowed(a))
		return;
	result_init(a, &r, j && j->id[0] ? j : NULL, RS_REJECTED);
	if (r.job[0] == '\0') {
		sha256_hex(payload, len, hash);
		snprintf(r.job, sizeof(r.job), "invalid-%.16s", hash);
		r.kind = JOB_UNKNOWN;
	}
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

/*
 * Every rule of DESIGN §3 in order.  On success *j holds the decoded body
 * (borrowing from env's input).  On failure returns the reason; *j may hold
 * a best-effort decode for addressing the refusal.
 */
static const char *
job_verify(struct agent *a, const char *topic, const struct job_envelope *env,
    struct job *j, struct mu_err *err)
{
	struct job_target on;
	struct mu_err why_body;
	const char *why;

	switch (envelope_verify(&a->operators, env, err)) {
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
	if (topic_parse_jobs(topic, a->root, &on) != MU_OK || !targets_equal(&on, &j->target))
		return "job target does not match the topic it came on";
	if (!target_matches(a, &j->target))
		return "job target does not match this host";
	if ((why = check_window(a, j)) != NULL)
		return why;
	if (seen_has(&a->seen, j->id))
		return "replayed job id";
	return NULL;
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
		{ "version", AGENT_VERSION }, { "runner_version", a->runner_version },
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

/* Load lives in the ping answer, not in the status (DESIGN §3: status is
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
	msgpack_pack_uint32(&pk, a->nrunning > 0 ? (uint32_t)a->nrunning : 0);
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

/* A run job: the journal entry comes first, so a restart reports it. */
static void
start_run(struct agent *a, struct job *j, const struct job_envelope *env)
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
	/* Decode again from our own copy: the envelope's buffer goes away. */
	if (job_decode(r->body, r->body_len, &r->job, &err) != MU_OK ||
	    journal_add(&a->spool, j->id, r->body, r->body_len, &err) != MU_OK) {
		log_warnx("job %s: %s", j->id, err.msg);
		wire_doc_free(&r->job.doc);	/* live when only journal_add failed */
		free(r->body);
		free(r);
		answer(a, j, RS_ERROR, "agent could not journal the job", NULL);
		return;
	}
	run_submit(a, r);
}

static void
dispatch(struct agent *a, struct job *j, const struct job_envelope *env)
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
			start_run(a, j, env);
		break;
	case JOB_UPDATE:	/* refused in intake_message() */
	default:
		answer(a, j, RS_ERROR, "the agent cannot do this kind of job", NULL);
		break;
	}
}

void
intake_message(struct agent *a, const char *topic, const uint8_t *p, size_t len)
{
	struct job_envelope env;
	struct job j;
	struct mu_err err = { "" };
	const char *why;

	memset(&j, 0, sizeof(j));
	if (envelope_decode(p, len, &env, &err) != MU_OK) {
		char reason[sizeof(err.msg) + 32];

		snprintf(reason, sizeof(reason), "malformed job envelope: %s", err.msg);
		reject(a, NULL, p, len, reason);
		return;
	}
	if ((why = job_verify(a, topic, &env, &j, &err)) != NULL) {
		char reason[sizeof(err.msg) + 32];

		snprintf(reason, sizeof(reason), "%s", why);
		/* Address the refusal with whatever id the body holds. */
		if (j.id[0] == '\0') {
			wire_doc_free(&j.doc);
			if (job_decode(env.body.ptr, env.body.len, &j, NULL) != MU_OK)
				memset(&j, 0, sizeof(j));
		}
		reject(a, &j, p, len, reason);
		wire_doc_free(&j.doc);
		wire_doc_free(&env.doc);
		return;
	}
	if (j.kind == JOB_UPDATE) {
		/* Refused like any other rule: not accepted, not recorded, nothing
		 * runs. */
		reject(a, &j, p, len, "update jobs are not supported by this agent yet");
	} else if (seen_add(&a->seen, j.id, j.not_after, &err) != MU_OK) {
		log_err("job %s: %s", j.id, err.msg);
		answer(a, &j, RS_ERROR, "agent could not record the job id", NULL);
	} else {
		a->jobs_accepted++;
		log_info("accepted job %s (%s) from key %s", j.id, job_kind_name(j.kind), env.key);
		dispatch(a, &j, &env);
	}
	wire_doc_free(&j.doc);
	wire_doc_free(&env.doc);
}

/* ---- after a restart -------------------------------------------------- */

static void
interrupted_one(struct agent *a, const char *path, const char *name)
{
	uint8_t buf[WIRE_MAX_BODY];
	struct mu_err err;
	struct result r;
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
	/* A result already spooled means the job finished; only the journal
	 * clean-up was cut off. */
	if (!spool_has_job(&a->spool, j.id)) {
		result_init(a, &r, &j, RS_INTERRUPTED);
		r.reason = (struct wire_str){ "the agent restarted while the job ran", 37 };
		result_submit(a, &r);
		log_notice("job %s: interrupted by an agent restart", j.id);
	}
	wire_doc_free(&j.doc);
	journal_remove(&a->spool, j.id);
}

void
intake_interrupted(struct agent *a)
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
		interrupted_one(a, path, de->d_name);
	}
	closedir(d);
}
