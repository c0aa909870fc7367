/* SPDX-License-Identifier: Apache-2.0 */
/*
 * release.c - muster release publish | rollout | show (design.md §3, §5).
 *
 * publish: both binaries as retained artifacts R/artifacts/<sha256>
 * ({"v":1,"data":<bin>}), then the release pointer R/releases/<channel>
 * ({"v":1,"manifest","sig"}) whose manifest names their sha256 and size,
 * signed with the publisher's OpenPGP key as modules are (module.c).  Each
 * publish waits for the broker's PUBACK; the pointer goes last, so no host
 * ever follows a pointer whose artifacts are not there.
 * rollout: the current pointer, its signature checked against our own key,
 * signed again with another rollout (and a later published_at: agents
 * refuse an older one as a rollback).
 * show: every channel's release, and how many hosts of that channel run
 * which version, from their retained status.
 *
 * Ownership: the pointers collected belong to struct rel_list; everything
 * else is on the stack of one command.
 */
#include "ctl.h"
#include "loop.h"
#include "pgp.h"
#include "pointer.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUIET_MS	300
#define MAX_CHANNELS	256

static const char usage_release[] =
    "usage: muster release publish --channel C --version V --agent FILE --runner FILE\n"
    "                              [--rollout N | --schedule STEPS]\n"
    "                              [--halt failed=P%,min=N] [--json]\n"
    "       muster release rollout --channel C [--json] N\n"
    "       muster release show [--channel C] [--json]\n"
    "       muster release halt --channel C [--version V] [--reason TEXT] [--json]\n"
    "  publish  sign and publish an agent release on channel C: both binaries,\n"
    "           then the pointer; N%% of the channel's hosts take it (default 100)\n"
    "           STEPS: P%%[@WHEN],... e.g. 1%%,10%%@+1h,50%%@+6h,100%%@+1d (WHEN: +DURATION\n"
    "           from now, or YYYY-MM-DDTHH:MM[:SS]Z; the first step without one is now)\n"
    "           --halt: muster-server halts the release once N hosts tried it and\n"
    "           more than P%% of them failed\n"
    "  rollout  sign the channel's release again with rollout N (0-100),\n"
    "           in place of its schedule\n"
    "  show     the releases, and the channel's hosts by version (from status)\n"
    "  halt     stop the channel's release (default: the version it offers) from\n"
    "           reaching more hosts, signed with the operator key; a release\n"
    "           published after the halt lifts it\n"
    "exit: 0 done; 1 no such release; 2 usage, config, key or broker error\n";

struct rel {
	char channel[NAME_MAX_LEN + 1];		/* from the topic */
	uint8_t *raw;				/* owned */
	size_t len;
	bool decoded;
	struct signed_pointer p;		/* borrows raw */
	struct release_manifest m;		/* borrows raw */
	char signer[PGP_FPR_MAX + 1];
	char sig_why[200];
	bool sig_ok;
};

struct rel_list {
	struct rel v[MAX_CHANNELS];
	size_t n;
	size_t prefix;				/* strlen("R/releases/") */
};

struct opts {
	const char *channel, *version, *agent, *runner;
	const char *schedule, *halt, *reason;
	long rollout;
	bool json;
};

static void
rels_free(struct rel_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->v[i].decoded) {
			wire_doc_free(&l->v[i].m.doc);
			wire_doc_free(&l->v[i].p.doc);
		}
		free(l->v[i].raw);
	}
	l->n = 0;
}

/* Decode and check the signature against our own publisher key. */
static void
rel_check(struct ctl *c, struct rel *r)
{
	const char *allowed[1] = { c->cfg.fingerprint };
	struct mu_err err;

	if (pointer_decode(r->raw, r->len, &r->p, &err) != MU_OK)
		return;
	if (release_manifest_decode(r->p.manifest.ptr, r->p.manifest.len, &r->m, &err)) {
		wire_doc_free(&r->p.doc);
		return;
	}
	r->decoded = true;
	if (c->cfg.fingerprint[0] == '\0')
		snprintf(r->sig_why, sizeof(r->sig_why), "no [publisher] fingerprint");
	else if (pgp_verify(c->cfg.gnupg_home[0] ? c->cfg.gnupg_home : NULL,
	    r->p.manifest.ptr, r->p.manifest.len, r->p.sig.ptr, r->p.sig.len, allowed, 1,
	    r->signer, &err) == MU_OK)
		r->sig_ok = true;
	else
		snprintf(r->sig_why, sizeof(r->sig_why), "%.190s", err.msg);
}

static bool
rel_take(struct bus_event *ev, void *arg)
{
	struct rel_list *l = arg;
	struct rel *r;

	if (l->n == MAX_CHANNELS || strlen(ev->topic) <= l->prefix ||
	    !name_valid(ev->topic + l->prefix))
		return false;
	r = &l->v[l->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->channel, sizeof(r->channel), "%s", ev->topic + l->prefix);
	r->raw = ev->payload;		/* stolen */
	r->len = ev->len;
	ev->payload = NULL;
	return false;
}

static int
rels_collect(struct ctl *c, const char *channel, struct rel_list *l)
{
	char filter[TOPIC_MAX];
	size_t i;
	int rc;

	memset(l, 0, sizeof(*l));
	if (topic_filter(filter, sizeof(filter), c->root, TOPIC_RELEASE,
	    channel ? channel : "+", NULL) != MU_OK)
		return fprintf(stderr, "muster: bad channel name\n"), EXIT_USAGE;
	l->prefix = strlen(filter) - strlen(channel ? channel : "+");
	if ((rc = ctl_connect(c)) != 0 ||
	    (rc = retained_collect(c, filter, QUIET_MS, rel_take, l)) != 0)
		return rc;
	for (i = 0; i < l->n; i++)
		rel_check(c, &l->v[i]);
	return 0;
}

/* ---- schedules and halts ------------------------------------------------------ */

/* WHEN of a step: "+DURATION" from now, or an absolute UTC time. */
static int
step_time(const char *v, uint64_t now_ms, uint64_t *out)
{
	struct tm tm;
	uint64_t d;
	const char *end;
	time_t t;

	if (v[0] == '+') {
		if (parse_duration_ms(v + 1, &d) != MU_OK)
			return -1;
		*out = now_ms + d;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(v, "%Y-%m-%dT%H:%M", &tm)) == NULL)
		return -1;
	if (*end == ':' && (end = strptime(end, ":%S", &tm)) == NULL)
		return -1;
	if (strcmp(end, "Z") != 0 || (t = timegm(&tm)) < 0)
		return -1;
	*out = (uint64_t)t * 1000;
	return 0;
}

/*
 * --schedule "P%[@WHEN],...": the steps into m, checked as an agent would
 * (release_manifest_encode() applies the same rules).  The first step
 * without a WHEN starts now; later ones need one.
 */
static int
schedule_parse(const char *text, uint64_t now_ms, struct release_manifest *m)
{
	char buf[2048], *save = NULL, *tok, *at, *end;
	struct release_step *st;
	long pct;

	if (strlen(text) >= sizeof(buf))
		return fprintf(stderr, "muster: --schedule: too long\n"), -1;
	snprintf(buf, sizeof(buf), "%s", text);
	m->nsteps = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (m->nsteps == RELEASE_MAX_STEPS)
			return fprintf(stderr, "muster: --schedule: more than %d steps\n",
			    RELEASE_MAX_STEPS), -1;
		st = &m->steps[m->nsteps];
		if ((at = strchr(tok, '@')) != NULL)
			*at++ = '\0';
		errno = 0;
		pct = strtol(tok, &end, 10);
		if (errno || end == tok || strcmp(end, "%") != 0 || pct < 0 || pct > 100)
			return fprintf(stderr, "muster: --schedule: step %zu: want a percent "
			    "0%%..100%%, not '%s'\n", m->nsteps + 1, tok), -1;
		st->pct = (uint8_t)pct;
		if (at == NULL && m->nsteps > 0)
			return fprintf(stderr, "muster: --schedule: step %zu: when? (P%%@+1h or "
			    "P%%@2026-01-31T09:00Z)\n", m->nsteps + 1), -1;
		if (at == NULL)
			st->at_ms = now_ms;
		else if (step_time(at, now_ms, &st->at_ms) != 0)
			return fprintf(stderr, "muster: --schedule: step %zu: bad time '%s' "
			    "(+DURATION or YYYY-MM-DDTHH:MM[:SS]Z)\n", m->nsteps + 1, at), -1;
		if (m->nsteps > 0 && st->at_ms <= st[-1].at_ms)
			return fprintf(stderr, "muster: --schedule: step %zu is not after step "
			    "%zu\n", m->nsteps + 1, m->nsteps), -1;
		if (m->nsteps > 0 && st->pct < st[-1].pct)
			return fprintf(stderr, "muster: --schedule: step %zu lowers the percent "
			    "(a schedule only widens)\n", m->nsteps + 1), -1;
		m->nsteps++;
	}
	if (m->nsteps == 0)
		return fprintf(stderr, "muster: --schedule: no steps\n"), -1;
	/* Agents that predate schedules read rollout: the first step only, so
	 * that none goes further than the schedule allows. */
	m->rollout = m->steps[0].pct;
	return 0;
}

/* --halt "failed=P%,min=N" */
static int
halt_parse(const char *text, struct release_manifest *m)
{
	unsigned long pct, min;
	int used = 0;

	if (sscanf(text, "failed=%lu%%,min=%lu%n", &pct, &min, &used) != 2 ||
	    text[used] != '\0' || pct > 100 || min < 1 || min > RELEASE_MAX_HALT_HOSTS)
		return fprintf(stderr, "muster: --halt wants failed=P%%,min=N (P 0..100, N "
		    "1..%d)\n", RELEASE_MAX_HALT_HOSTS), -1;
	m->has_halt = true;
	m->halt_failed_pct = (uint8_t)pct;
	m->halt_min_hosts = (uint32_t)min;
	return 0;
}

/* "step 2 of 4 (10%), next 50% at TIME" for show and publish. */
static void
schedule_line(const struct release_manifest *m, uint64_t now_ms, char *buf, size_t len)
{
	char t[32];
	uint64_t next;
	size_t k = 0;
	uint8_t pct = release_rollout_at(m, now_ms, &next);

	while (k < m->nsteps && m->steps[k].at_ms <= now_ms)
		k++;
	if (k == 0)
		snprintf(buf, len, "not started (first step %u%% at %s)", m->steps[0].pct,
		    when(m->steps[0].at_ms, t, sizeof(t)));
	else if (next)
		snprintf(buf, len, "step %zu of %zu (%u%%), next %u%% at %s", k, m->nsteps,
		    pct, release_rollout_at(m, next, NULL), when(next, t, sizeof(t)));
	else
		snprintf(buf, len, "step %zu of %zu (%u%%), the last", k, m->nsteps, pct);
}

static json_t *
schedule_json(const struct release_manifest *m)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < m->nsteps; i++)
		json_array_append_new(a, json_pack("[I, i]", (json_int_t)m->steps[i].at_ms,
		    (int)m->steps[i].pct));
	return a;
}

/* ---- publishing -------------------------------------------------------------- */

static int
opt_take(int o, const char *v, void *arg)
{
	struct opts *p = arg;
	char *end;

	switch (o) {
	case 'C': p->channel = v; break;
	case 'V': p->version = v; break;
	case 'A': p->agent = v; break;
	case 'R': p->runner = v; break;
	case 'J': p->json = true; break;
	case 'S': p->schedule = v; break;
	case 'W': p->reason = v; break;
	case 'H': p->halt = v; break;
	case 'r':
		errno = 0;
		p->rollout = strtol(v, &end, 10);
		if (errno || *end || end == v || p->rollout < 0 || p->rollout > 100)
			return fprintf(stderr, "muster: --rollout wants 0..100\n"), -1;
		break;
	default:
		return -1;
	}
	return 0;
}

/* The release pointer of manifest m, signed (pointer.c). */
static int
sign_pointer(struct ctl *c, const struct release_manifest *m, msgpack_sbuffer *ptr)
{
	msgpack_sbuffer man;
	struct mu_err err;
	int rc = EXIT_USAGE;

	msgpack_sbuffer_init(&man);
	if (release_manifest_encode(m, &man, &err) != MU_OK)
		fprintf(stderr, "muster: manifest: %s\n", err.msg);
	else
		rc = pointer_sign(c, &man, ptr, NULL, NULL);
	msgpack_sbuffer_destroy(&man);
	return rc;
}

/* published_at past the channel's pointer (pointer.c); cur was collected for
 * one channel, so it holds that channel's pointer or nothing. */
static int
release_published_at(struct ctl *c, const struct rel_list *cur, const char *channel,
    uint64_t *out)
{
	char topic[TOPIC_MAX];

	if (topic_build(topic, sizeof(topic), c->root, TOPIC_RELEASE, channel, NULL) != MU_OK)
		return fprintf(stderr, "muster: bad channel name\n"), EXIT_USAGE;
	return pointer_next_published_at(now_wall_ms(), cur->n > 0 && cur->v[0].decoded ?
	    &cur->v[0].m.published_at : NULL, topic, out);
}

static void
report(const struct ctl *c, const struct opts *o, const struct release_manifest *m,
    const char *what)
{
	char t[32], line[160];
	json_t *j;
	size_t i;

	if (o->json) {
		j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:i, s:s}",
		    "action", what, "channel", m->channel, "version", m->version,
		    "agent_sha256", m->agent_sha256, "agent_size", (json_int_t)m->agent_size,
		    "runner_sha256", m->runner_sha256,
		    "runner_size", (json_int_t)m->runner_size,
		    "published_at", (json_int_t)m->published_at, "rollout", (int)m->rollout,
		    "signer", c->cfg.fingerprint);
		if (m->nsteps)
			json_object_set_new(j, "schedule", schedule_json(m));
		if (m->has_halt)
			json_object_set_new(j, "halt", json_pack("{s:i, s:I}", "failed_pct",
			    (int)m->halt_failed_pct, "min_hosts", (json_int_t)m->halt_min_hosts));
		json_print_line(j);
		return;
	}
	printf("%s %s on channel %s\n", what, m->version, m->channel);
	if (m->nsteps == 0)
		printf("  rollout    %u%%\n", m->rollout);
	for (i = 0; i < m->nsteps; i++)
		printf("  %s %3u%% from %s\n", i ? "          " : "schedule  ", m->steps[i].pct,
		    when(m->steps[i].at_ms, t, sizeof(t)));
	if (m->nsteps) {
		schedule_line(m, now_wall_ms(), line, sizeof(line));
		printf("  now        %s\n", line);
	}
	if (m->has_halt)
		printf("  halt       when more than %u%% of at least %u hosts fail it\n",
		    m->halt_failed_pct, m->halt_min_hosts);
	printf("  agent      %s (%" PRIu64 " bytes)\n", m->agent_sha256, m->agent_size);
	printf("  runner     %s (%" PRIu64 " bytes)\n", m->runner_sha256, m->runner_size);
	printf("  published  %s (%" PRIu64 ")\n", when(m->published_at, t, sizeof(t)),
	    m->published_at);
	printf("  signer     %s\n", c->cfg.fingerprint);
}

static int
read_binary(const char *path, uint8_t **buf, size_t *len)
{
	int rc = read_file(path, WIRE_MAX_BIN, buf, len, NULL);

	if (rc != MU_OK || *len == 0) {
		if (rc == MU_OK)
			free(*buf);
		fprintf(stderr, "muster: %s: %s\n", path, rc == MU_OK ? "empty" :
		    rc == MU_EINVAL ? "not a regular file of at most 64 MiB" : strerror(errno));
		return EXIT_USAGE;
	}
	return 0;
}

static int
publish_artifact(struct ctl *c, const uint8_t *data, size_t len, char sha[SHA256_HEX_LEN + 1])
{
	struct binary_artifact a = { 0 };
	char topic[TOPIC_MAX];
	msgpack_sbuffer sb;
	struct mu_err err;
	int rc;

	sha256_hex(data, len, sha);
	a.data = (struct wire_bytes){ data, len };
	msgpack_sbuffer_init(&sb);
	if (topic_build(topic, sizeof(topic), c->root, TOPIC_ARTIFACT, sha, NULL) != MU_OK ||
	    binary_artifact_encode(&a, &sb, &err) != MU_OK)
		rc = (fprintf(stderr, "muster: cannot encode the artifact\n"), EXIT_USAGE);
	else
		rc = publish_acked(c, topic, sb.data, sb.size, "binary artifact");
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static int
rel_publish(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "channel", required_argument, NULL, 'C' },
		{ "version", required_argument, NULL, 'V' },
		{ "agent", required_argument, NULL, 'A' },
		{ "runner", required_argument, NULL, 'R' },
		{ "rollout", required_argument, NULL, 'r' },
		{ "schedule", required_argument, NULL, 'S' },
		{ "halt", required_argument, NULL, 'H' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .rollout = -1 };
	struct release_manifest m;
	struct rel_list *cur;
	uint8_t *agent = NULL, *runner = NULL;
	size_t alen = 0, rlen = 0;
	char topic[TOPIC_MAX];
	msgpack_sbuffer ptr;
	int rc;

	if ((rc = sub_opts(argc, argv, opts, usage_release, opt_take, &o)) != 0)
		return rc == CTL_HELP ? EXIT_OK : rc;
	if (optind != argc || !o.channel || !o.version || !o.agent || !o.runner ||
	    !name_valid(o.channel) || !version_valid(o.version)) {
		fputs(usage_release, stderr);
		return EXIT_USAGE;
	}
	if (c->cfg.fingerprint[0] == '\0')
		return fprintf(stderr, "muster: no [publisher] fingerprint\n"), EXIT_USAGE;
	memset(&m, 0, sizeof(m));
	snprintf(m.channel, sizeof(m.channel), "%s", o.channel);
	snprintf(m.version, sizeof(m.version), "%s", o.version);
	if (o.schedule && o.rollout >= 0)
		return fprintf(stderr, "muster: --rollout or --schedule, not both\n"), EXIT_USAGE;
	m.rollout = o.rollout >= 0 ? (uint8_t)o.rollout : 100;
	if ((o.schedule && schedule_parse(o.schedule, now_wall_ms(), &m) != 0) ||
	    (o.halt && halt_parse(o.halt, &m) != 0))
		return EXIT_USAGE;
	if ((rc = read_binary(o.agent, &agent, &alen)) != 0 ||
	    (rc = read_binary(o.runner, &runner, &rlen)) != 0) {
		free(agent);
		return rc;
	}
	m.agent_size = alen;
	m.runner_size = rlen;
	if ((cur = calloc(1, sizeof(*cur))) == NULL)
		rc = EXIT_USAGE;
	else if ((rc = rels_collect(c, o.channel, cur)) == 0 &&
	    (rc = release_published_at(c, cur, o.channel, &m.published_at)) == 0) {
		rc = publish_artifact(c, agent, alen, m.agent_sha256);
		if (rc == 0)
			rc = publish_artifact(c, runner, rlen, m.runner_sha256);
	}
	msgpack_sbuffer_init(&ptr);
	if (rc == 0)
		rc = sign_pointer(c, &m, &ptr);
	if (rc == 0 && (rc = topic_build(topic, sizeof(topic), c->root, TOPIC_RELEASE,
	    o.channel, NULL)) == MU_OK)
		rc = publish_acked(c, topic, ptr.data, ptr.size, "release pointer");
	if (rc == 0)
		report(c, &o, &m, "published");
	msgpack_sbuffer_destroy(&ptr);
	if (cur)
		rels_free(cur);
	free(cur);
	free(agent);
	free(runner);
	return rc;
}

static int
rel_rollout(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "channel", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .rollout = -1 };
	struct release_manifest m;
	struct rel_list *cur;
	char topic[TOPIC_MAX];
	msgpack_sbuffer ptr;
	int rc;

	if ((rc = sub_opts(argc, argv, opts, usage_release, opt_take, &o)) != 0)
		return rc == CTL_HELP ? EXIT_OK : rc;
	if (!o.channel || !name_valid(o.channel) || optind + 1 != argc ||
	    opt_take('r', argv[optind], &o) != 0) {
		fputs(usage_release, stderr);
		return EXIT_USAGE;
	}
	if ((cur = calloc(1, sizeof(*cur))) == NULL)
		return EXIT_USAGE;
	if ((rc = rels_collect(c, o.channel, cur)) != 0)
		goto out;
	if (cur->n == 0 || !cur->v[0].decoded) {
		fprintf(stderr, "muster: no release on channel %s\n", o.channel);
		rc = EXIT_FAILED;
		goto out;
	}
	/* Only what we signed ourselves is signed again. */
	if (!cur->v[0].sig_ok) {
		fprintf(stderr, "muster: the release on %s is not signed by %s (%s): "
		    "not re-signing it\n", o.channel, c->cfg.fingerprint, cur->v[0].sig_why);
		rc = EXIT_USAGE;
		goto out;
	}
	m = cur->v[0].m;
	memset(&m.doc, 0, sizeof(m.doc));
	m.rollout = (uint8_t)o.rollout;
	/* A rollout by hand replaces the schedule (the halt rule stays). */
	m.nsteps = 0;
	msgpack_sbuffer_init(&ptr);
	rc = release_published_at(c, cur, o.channel, &m.published_at);
	if (rc == 0)
		rc = sign_pointer(c, &m, &ptr);
	if (rc == 0 && (rc = topic_build(topic, sizeof(topic), c->root, TOPIC_RELEASE,
	    o.channel, NULL)) == MU_OK)
		rc = publish_acked(c, topic, ptr.data, ptr.size, "release pointer");
	if (rc == 0)
		report(c, &o, &m, "rolled out");
	msgpack_sbuffer_destroy(&ptr);
out:
	rels_free(cur);
	free(cur);
	return rc;
}

/* ---- show -------------------------------------------------------------------- */

struct count {
	char version[WIRE_MAX_VERSION + 1];
	size_t online, offline;
};

static size_t
count_hosts(const struct host_list *h, const char *channel, struct count *out, size_t max)
{
	size_t i, j, n = 0;

	for (i = 0; i < h->n; i++) {
		const struct status *st = &h->v[i].st;

		if (strcmp(st->channel, channel) != 0)
			continue;
		for (j = 0; j < n && strcmp(out[j].version, st->version) != 0; j++)
			;
		if (j == n) {
			if (n == max)
				continue;
			memset(&out[n], 0, sizeof(out[n]));
			snprintf(out[n].version, sizeof(out[n].version), "%s", st->version);
			n++;
		}
		if (st->online)
			out[j].online++;
		else
			out[j].offline++;
	}
	return n;
}

/* Where the channel's hosts are with the offered version, from their
 * statuses' "update" maps (design.md §5). */
struct progress {
	size_t healthy, testing, failed, halted, pending;
};

static void
count_progress(const struct host_list *h, const char *channel, const char *version,
    struct progress *p)
{
	char v[WIRE_MAX_VERSION + 1];
	enum release_stage stage;
	size_t i;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < h->n; i++) {
		if (strcmp(h->v[i].st.channel, channel) != 0)
			continue;
		stage = status_release_stage(&h->v[i].st, v);
		if (strcmp(v, version) != 0)
			p->pending++;
		else if (stage == RSTAGE_FAILED)
			p->failed++;
		else if (stage == RSTAGE_HALTED)
			p->halted++;
		else if (stage == RSTAGE_TRYING)
			p->testing++;
		else
			p->healthy++;
	}
}

static int
rel_show(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "channel", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { 0 };
	struct host_list hosts = { 0 };
	struct count counts[64];
	struct rel_list *l;
	char t[32], line[160];
	size_t i, j, n;
	json_t *arr, *obj, *hv;
	struct progress pg;
	int rc;

	if ((rc = sub_opts(argc, argv, opts, usage_release, opt_take, &o)) != 0)
		return rc == CTL_HELP ? EXIT_OK : rc;
	if (optind != argc || (o.channel && !name_valid(o.channel))) {
		fputs(usage_release, stderr);
		return EXIT_USAGE;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return EXIT_USAGE;
	if ((rc = rels_collect(c, o.channel, l)) != 0 ||
	    (rc = hosts_collect(c, &hosts)) != 0)
		goto out;
	for (i = 0; i < l->n; i++) {
		struct rel *r = &l->v[i];

		n = count_hosts(&hosts, r->channel, counts, 64);
		if (r->decoded)
			count_progress(&hosts, r->channel, r->m.version, &pg);
		if (o.json) {
			hv = json_object();
			for (j = 0; j < n; j++)
				json_object_set_new(hv, counts[j].version, json_pack("{s:I, s:I}",
				    "online", (json_int_t)counts[j].online,
				    "offline", (json_int_t)counts[j].offline));
			obj = json_pack("{s:s, s:o}", "channel", r->channel, "hosts", hv);
			if (r->decoded) {
				json_object_set_new(obj, "version", json_string(r->m.version));
				json_object_set_new(obj, "rollout", json_integer(
				    release_rollout_at(&r->m, now_wall_ms(), NULL)));
				if (r->m.nsteps)
					json_object_set_new(obj, "schedule", schedule_json(&r->m));
				json_object_set_new(obj, "published_at",
				    json_integer((json_int_t)r->m.published_at));
				json_object_set_new(obj, "agent_sha256",
				    json_string(r->m.agent_sha256));
				json_object_set_new(obj, "runner_sha256",
				    json_string(r->m.runner_sha256));
				json_object_set_new(obj, "progress", json_pack("{s:I, s:I, s:I, "
				    "s:I, s:I, s:I}", "attempted", (json_int_t)(pg.healthy +
				    pg.testing + pg.failed), "healthy", (json_int_t)pg.healthy,
				    "testing", (json_int_t)pg.testing, "failed", (json_int_t)pg.failed,
				    "halted", (json_int_t)pg.halted, "pending", (json_int_t)pg.pending));
			}
			json_object_set_new(obj, "signature", json_string(r->sig_ok ? "good" :
			    r->sig_why[0] ? r->sig_why : "bad"));
			if (r->sig_ok)
				json_object_set_new(obj, "signer", json_string(r->signer));
			arr = obj;
			json_print_line(arr);
			continue;
		}
		if (!r->decoded) {
			printf("%s: malformed release pointer\n", r->channel);
			continue;
		}
		printf("%s: %s, rollout %u%%, published %s, signature %s\n", r->channel,
		    r->m.version, release_rollout_at(&r->m, now_wall_ms(), NULL),
		    when(r->m.published_at, t, sizeof(t)), r->sig_ok ? "good" : r->sig_why);
		if (r->m.nsteps) {
			schedule_line(&r->m, now_wall_ms(), line, sizeof(line));
			printf("  schedule: %s\n", line);
		}
		for (j = 0; j < n; j++)
			printf("  %-20s %zu online, %zu offline\n", counts[j].version,
			    counts[j].online, counts[j].offline);
		if (n == 0)
			printf("  no hosts on this channel\n");
		printf("  progress of %s: %zu attempted (%zu healthy, %zu testing, %zu failed), "
		    "%zu halted, %zu pending\n", r->m.version, pg.healthy + pg.testing +
		    pg.failed, pg.healthy, pg.testing, pg.failed, pg.halted, pg.pending);
	}
	if (l->n == 0) {
		fprintf(stderr, "muster: no release published%s%s\n",
		    o.channel ? " on channel " : "", o.channel ? o.channel : "");
		rc = EXIT_FAILED;
	}
out:
	hosts_free(&hosts);
	rels_free(l);
	free(l);
	return rc;
}

/* ---- halting ------------------------------------------------------------------- */

/* The halt body, signed with the operator key into env. */
static int
halt_build(struct ctl *c, const char *channel, const char *version, const char *reason,
    uint64_t at, msgpack_sbuffer *env)
{
	const char *user = getenv("USER");
	struct release_halt h;
	msgpack_sbuffer body;
	struct mu_err err;
	int rc;

	memset(&h, 0, sizeof(h));
	snprintf(h.channel, sizeof(h.channel), "%s", channel);
	snprintf(h.version, sizeof(h.version), "%s", version);
	h.reason = (struct wire_str){ reason, strlen(reason) };
	h.at = at;
	if (user && strlen(user) < 256)
		h.operator_ = (struct wire_str){ user, strlen(user) };
	msgpack_sbuffer_init(&body);
	rc = release_halt_encode(&h, &body, &err);
	if (rc == MU_OK)
		rc = envelope_sign(c->key, body.data, body.size, env, &err);
	msgpack_sbuffer_destroy(&body);
	if (rc != MU_OK)
		return fprintf(stderr, "muster: release halt: %s\n", err.msg), EXIT_USAGE;
	return 0;
}

static int
rel_halt(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "channel", required_argument, NULL, 'C' },
		{ "version", required_argument, NULL, 'V' },
		{ "reason", required_argument, NULL, 'W' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .rollout = -1 };
	struct rel_list *cur = NULL;
	char topic[TOPIC_MAX], version[WIRE_MAX_VERSION + 1], t[32];
	const char *reason;
	msgpack_sbuffer env;
	uint64_t at = now_wall_ms();
	int rc;

	if ((rc = sub_opts(argc, argv, opts, usage_release, opt_take, &o)) != 0)
		return rc == CTL_HELP ? EXIT_OK : rc;
	if (optind != argc || !o.channel || !name_valid(o.channel) ||
	    (o.version && !version_valid(o.version))) {
		fputs(usage_release, stderr);
		return EXIT_USAGE;
	}
	reason = o.reason ? o.reason : "halted by an operator";
	if (strlen(reason) > RELEASE_HALT_REASON_MAX)
		return fprintf(stderr, "muster: --reason: at most %d bytes\n",
		    RELEASE_HALT_REASON_MAX), EXIT_USAGE;
	if ((rc = ctl_load_key(c)) != 0 || (rc = ctl_connect(c)) != 0)
		return rc;
	if (o.version)
		snprintf(version, sizeof(version), "%s", o.version);
	else {
		/* The version the channel offers now. */
		if ((cur = calloc(1, sizeof(*cur))) == NULL)
			return EXIT_USAGE;
		if ((rc = rels_collect(c, o.channel, cur)) == 0 &&
		    (cur->n == 0 || !cur->v[0].decoded)) {
			fprintf(stderr, "muster: no release on channel %s (name one with "
			    "--version)\n", o.channel);
			rc = EXIT_FAILED;
		}
		if (rc == 0)
			snprintf(version, sizeof(version), "%s", cur->v[0].m.version);
		rels_free(cur);
		free(cur);
		if (rc)
			return rc;
	}
	msgpack_sbuffer_init(&env);
	rc = halt_build(c, o.channel, version, reason, at, &env);
	if (rc == 0 && topic_build(topic, sizeof(topic), c->root, TOPIC_RELEASE_HALT, o.channel,
	    NULL) != MU_OK)
		rc = (fprintf(stderr, "muster: bad channel name\n"), EXIT_USAGE);
	if (rc == 0)
		rc = publish_acked(c, topic, env.data, env.size, "release halt");
	msgpack_sbuffer_destroy(&env);
	if (rc)
		return rc;
	if (o.json)
		json_print_line(json_pack("{s:s, s:s, s:s, s:s, s:I}", "action", "halted",
		    "channel", o.channel, "version", version, "reason", reason,
		    "at", (json_int_t)at));
	else
		printf("halted %s on channel %s at %s: %s\n", version, o.channel,
		    when(at, t, sizeof(t)), reason);
	return 0;
}

int
cmd_release(struct ctl *c, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "publish") == 0)
		return rel_publish(c, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "rollout") == 0)
		return rel_rollout(c, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return rel_show(c, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "halt") == 0)
		return rel_halt(c, argc - 1, argv + 1);
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage_release, stdout);
		return EXIT_OK;
	}
	fputs(usage_release, stderr);
	return EXIT_USAGE;
}
