/* SPDX-License-Identifier: Apache-2.0 */
/*
 * release.c - the network process follows its release channel (design.md §5).
 *
 * The retained pointer on R/releases/<channel> names a version and the
 * sha256 and size of two binaries.  When it is validly signed by a listed
 * publisher, names another version than ours, is not older than the last
 * one handed on, and this host's bucket is below its rollout, we wait a
 * random jitter ([update] jitter; none for an update job), fetch both
 * binary artifacts R/artifacts/<sha256> over the fetch connection
 * (fetch.c, shared with the modules' fetches), check size
 * and sha256, store them in state_dir/release/<sha256> and hand the
 * pointer to the parent (PRIV_RELEASE).  The parent trusts none of it: it
 * verifies the signature again and hashes the files itself (update.c).
 *
 * Every refusal is logged and shown in the status "update" map, so an
 * operator sees why a host did not move; nothing here is ever executed.
 *
 * Ownership: a->net.rel owns the raw pointer, the timers and the status map;
 * the connection is a->net.fetch's.
 */
#include "agent.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void binfetch_close(struct agent *a);

/* ---- the status "update" map ------------------------------------------------ */

/* What this check saw goes to the parent, which puts it in the status it
 * signs (parent/update.c update_net_state()). */
void
release_set_state(struct agent *a, const char *state, const char *version,
    const char *reason)
{
	priv_send_release_state(a, state, version, reason);
}

/* ---- the end of a look at the channel ---------------------------------------- */

/* Nothing to hand on: say why to the update job that asked, if one did. */
static void
no_update(struct agent *a, const char *why)
{
	if (a->net.rel.job[0] == '\0')
		return;
	priv_send_no_update(a, a->net.rel.job, why);
	a->net.rel.job[0] = '\0';
}

/* A refusal of what the channel offers: logged, in status, to the job. */
static void
refuse(struct agent *a, const char *version, const char *why)
{
	log_warnx("release: %s", why);
	release_set_state(a, "refused", version[0] ? version : "unknown", why);
	no_update(a, why);
}

static void
binfetch_end(struct agent *a)
{
	if (a->net.rel.fetch_timer)
		loop_del_timer(a->loop, a->net.rel.fetch_timer);
	if (a->net.rel.jitter_timer)
		loop_del_timer(a->loop, a->net.rel.jitter_timer);
	a->net.rel.fetch_timer = a->net.rel.jitter_timer = 0;
	binfetch_close(a);
	a->net.rel.busy = false;
}

/* The last published_at handed to the parent: a pointer not newer is not
 * offered again (rollback protection), unless an update job asks. */
static uint64_t
floor_get(struct agent *a)
{
	char path[CONF_PATH_MAX + 32];
	uint8_t *buf;
	size_t len;
	uint64_t v = 0;

	snprintf(path, sizeof(path), "%s/release/floor", a->net_dir);
	if (read_file(path, 32, &buf, &len, NULL) != MU_OK)
		return 0;
	buf[len ? len - 1 : 0] = '\0';
	v = strtoull((char *)buf, NULL, 10);
	free(buf);
	return v;
}

static void
floor_set(struct agent *a, uint64_t published_at)
{
	char path[CONF_PATH_MAX + 32], buf[32];
	int n;

	snprintf(path, sizeof(path), "%s/release/floor", a->net_dir);
	n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", published_at);
	if (write_file_atomic(path, buf, (size_t)n, 0644) != MU_OK)
		log_warnx("release: %s: %s", path, strerror(errno));
}

/* Both artifacts are stored: the parent takes it from here. */
static void
hand_on(struct agent *a)
{
	struct release_manifest rm;
	char fpr[PGP_FPR_MAX + 1];
	struct mu_err err;

	/* The pointer may have changed while we fetched: hand on what we
	 * fetched for only if it is still the one published. */
	if (verify_release_pointer(a, a->net.rel.raw, a->net.rel.len, &rm, fpr, &err) != MU_OK) {
		binfetch_end(a);
		refuse(a, a->net.rel.version, err.msg);
		return;
	}
	if (strcmp(rm.agent_sha256, a->net.rel.sha[0]) != 0 ||
	    strcmp(rm.runner_sha256, a->net.rel.sha[1]) != 0) {
		wire_doc_free(&rm.doc);
		binfetch_end(a);
		log_info("release: the channel moved while fetching; looking again");
		release_check(a, a->net.rel.job[0] ? a->net.rel.job : NULL);
		return;
	}
	floor_set(a, rm.published_at);
	log_notice("release %s: both binaries fetched and checked; handing on", rm.version);
	release_set_state(a, "staging", rm.version, NULL);
	wire_doc_free(&rm.doc);
	priv_send_release(a, a->net.rel.raw, a->net.rel.len);
	a->net.rel.job[0] = '\0';	/* the parent answers it now */
	binfetch_end(a);
}

/* ---- the artifacts' connection ------------------------------------------------ */

static int
store(struct agent *a, const char *sha, const uint8_t *p, size_t len, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 100];

	snprintf(path, sizeof(path), "%s/release/%s", a->net_dir, sha);
	if (write_file_atomic(path, p, len, 0644) != MU_OK)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	return MU_OK;
}

static void
artifact(struct agent *a, const char *topic, const uint8_t *p, size_t len)
{
	static const char *const what[2] = { "agent", "runner" };
	char sha[SHA256_HEX_LEN + 1], why[400];
	struct binary_artifact art;
	struct mu_err err;
	int i;

	for (i = 0; i < 2 && strcmp(topic, a->net.rel.topic[i]) != 0; i++)
		;
	if (i == 2 || a->net.rel.have[i] || len == 0)
		return;
	if (binary_artifact_decode(p, len, &art, &err) != MU_OK) {
		snprintf(why, sizeof(why), "release %s: malformed %s artifact (%.200s)",
		    a->net.rel.version, what[i], err.msg);
		goto bad;
	}
	sha256_hex(art.data.ptr, art.data.len, sha);
	if (art.data.len != a->net.rel.size[i])
		snprintf(why, sizeof(why), "release %s: the %s is %zu bytes, its manifest "
		    "says %" PRIu64 " (truncated?)", a->net.rel.version, what[i], art.data.len,
		    a->net.rel.size[i]);
	else if (strcmp(sha, a->net.rel.sha[i]) != 0)
		snprintf(why, sizeof(why), "release %s: sha256 mismatch for the %s: the "
		    "manifest says %.12s..., the artifact is %.12s...", a->net.rel.version,
		    what[i], a->net.rel.sha[i], sha);
	else if (store(a, sha, art.data.ptr, art.data.len, &err) != MU_OK)
		snprintf(why, sizeof(why), "release %s: %.300s", a->net.rel.version, err.msg);
	else
		why[0] = '\0';
	wire_doc_free(&art.doc);
	if (why[0])
		goto bad;
	a->net.rel.have[i] = true;
	log_info("release %s: %s binary fetched (%.12s...)", a->net.rel.version, what[i], sha);
	if (a->net.rel.have[0] && a->net.rel.have[1])
		hand_on(a);
	return;
bad:
	binfetch_end(a);
	refuse(a, a->net.rel.version, why);
}

/* Also from inside artifact(), called by fetch.c while it drains. */
static void
binfetch_close(struct agent *a)
{
	int i;

	for (i = 0; i < 2; i++)
		fetch_drop(a, a->net.rel.topic[i], false);
}

static void
binfetch_expired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;
	char why[256];

	(void)l, (void)id;
	a->net.rel.fetch_timer = 0;
	snprintf(why, sizeof(why), "release %s: artifacts not published (not all on the "
	    "broker after %.1f s)", a->net.rel.version, a->cfg.fetch_timeout_ms / 1000.0);
	binfetch_end(a);
	refuse(a, a->net.rel.version, why);
}

static void
binfetch_open(struct agent *a)
{
	struct mu_err err;
	int i;

	a->net.rel.fetch_timer = loop_add_timer(a->loop, a->cfg.fetch_timeout_ms,
	    binfetch_expired, a);
	for (i = 0; i < 2; i++)
		if (fetch_want(a, a->net.rel.topic[i], artifact, &err) != MU_OK) {
			binfetch_end(a);
			refuse(a, a->net.rel.version, err.msg);
			return;
		}
	log_notice("release %s: fetching the binaries %.12s... and %.12s...", a->net.rel.version,
	    a->net.rel.sha[0], a->net.rel.sha[1]);
	release_set_state(a, "fetching", a->net.rel.version, NULL);
}

static void
jitter_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)l, (void)id;
	a->net.rel.jitter_timer = 0;
	binfetch_open(a);
}

/* ---- looking at the channel --------------------------------------------------- */

static void
step_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)l, (void)id;
	a->net.rel.step_timer = 0;
	release_check(a, NULL);
}

/* This host's bucket is not in yet: when the schedule's next step comes,
 * look again (design.md §3).  A wall-clock time, so a clock that jumps
 * only moves the look earlier or later; the parent checks again anyway. */
static void
step_wait(struct agent *a, uint64_t next_ms)
{
	uint64_t now = now_wall_ms();

	if (a->net.rel.step_timer)
		loop_del_timer(a->loop, a->net.rel.step_timer);
	a->net.rel.step_timer = 0;
	if (next_ms == 0)
		return;
	a->net.rel.step_timer = loop_add_timer(a->loop, next_ms > now ? next_ms - now : 0,
	    step_fired, a);
}

/*
 * The rules of design.md §5 in order.  job: an update job asked (no jitter,
 * and a pointer equal to the last one handed on is offered again).
 */
void
release_check(struct agent *a, const char *job)
{
	struct release_manifest m;
	char fpr[PGP_FPR_MAX + 1], why[512];
	struct mu_err err;
	uint64_t fl, delay, next;
	unsigned bucket, rollout;
	int i;

	if (job) {
		if (a->net.rel.job[0] && strcmp(a->net.rel.job, job) != 0)
			no_update(a, "another update job took over");
		snprintf(a->net.rel.job, sizeof(a->net.rel.job), "%s", job);
	}
	if (a->net.rel.raw == NULL) {
		snprintf(why, sizeof(why), "no release published on channel %s", a->cfg.channel);
		no_update(a, why);
		return;
	}
	if (verify_release_pointer(a, a->net.rel.raw, a->net.rel.len, &m, fpr, &err) != MU_OK) {
		refuse(a, "", err.msg);
		return;
	}
	fl = floor_get(a);
	bucket = release_bucket(a->cfg.host);
	rollout = release_rollout_at(&m, now_wall_ms(), &next);
	step_wait(a, 0);
	if (strcmp(m.version, AGENT_VERSION) == 0) {
		snprintf(why, sizeof(why), "already at version %s", m.version);
		no_update(a, why);
	} else if (m.published_at < fl || (m.published_at == fl && !a->net.rel.job[0])) {
		snprintf(why, sizeof(why), "release %s is not newer than the last one taken "
		    "(published_at %" PRIu64 " <= %" PRIu64 ")", m.version, m.published_at, fl);
		log_info("release: %s", why);
		no_update(a, why);
	} else if (strcmp(m.version, a->net.rel.halt_version) == 0 &&
	    m.published_at <= a->net.rel.halt_at) {
		/* The parent verified the halt and says so in the status. */
		if (a->net.rel.busy && strcmp(a->net.rel.version, m.version) == 0)
			binfetch_end(a);
		snprintf(why, sizeof(why), "release %s is halted on channel %s", m.version,
		    m.channel);
		log_info("release: %s", why);
		no_update(a, why);
	} else if (bucket >= rollout) {
		snprintf(why, sizeof(why), "release %s is at %u%% rollout; this host's bucket "
		    "is %u", m.version, rollout, bucket);
		if (next)
			snprintf(why + strlen(why), sizeof(why) - strlen(why), "; the schedule's "
			    "next step is in %.0f s", (next - now_wall_ms()) / 1000.0);
		log_info("release: %s", why);
		no_update(a, why);
		step_wait(a, next);
	} else if (a->net.rel.busy && strcmp(a->net.rel.version, m.version) == 0 &&
	    strcmp(a->net.rel.sha[0], m.agent_sha256) == 0) {
		/* Already on it; an update job only skips the wait. */
		if (a->net.rel.job[0] && a->net.rel.jitter_timer) {
			loop_del_timer(a->loop, a->net.rel.jitter_timer);
			a->net.rel.jitter_timer = 0;
			binfetch_open(a);
		}
	} else {
		binfetch_end(a);
		a->net.rel.busy = true;
		snprintf(a->net.rel.version, sizeof(a->net.rel.version), "%s", m.version);
		snprintf(a->net.rel.sha[0], sizeof(a->net.rel.sha[0]), "%s", m.agent_sha256);
		snprintf(a->net.rel.sha[1], sizeof(a->net.rel.sha[1]), "%s", m.runner_sha256);
		a->net.rel.size[0] = m.agent_size;
		a->net.rel.size[1] = m.runner_size;
		for (i = 0; i < 2; i++) {
			a->net.rel.have[i] = false;
			topic_build(a->net.rel.topic[i], TOPIC_MAX, a->root, TOPIC_ARTIFACT,
			    a->net.rel.sha[i], NULL);
		}
		delay = a->net.rel.job[0] ? 0 : random_below(a->cfg.update_jitter_ms + 1);
		log_notice("release %s on channel %s (signed by %s, rollout %u%%, bucket %u): "
		    "fetching in %.1f s", m.version, m.channel, fpr, rollout, bucket,
		    delay / 1000.0);
		if (delay)
			a->net.rel.jitter_timer = loop_add_timer(a->loop, delay, jitter_fired, a);
		else
			binfetch_open(a);
	}
	wire_doc_free(&m.doc);
}

int
release_subscription(const struct agent *a, char *buf, size_t len)
{
	return topic_build(buf, len, a->root, TOPIC_RELEASE, a->cfg.channel, NULL);
}

void
release_message(struct agent *a, const uint8_t *p, size_t len)
{
	uint8_t *copy;

	if (len == 0) {		/* the pointer was cleared */
		free(a->net.rel.raw);
		a->net.rel.raw = NULL;
		a->net.rel.len = 0;
		return;
	}
	if (len > SIGNED_POINTER_MAX) {
		log_warnx("release: dropped a %zu-byte pointer", len);
		return;
	}
	if (a->net.rel.raw && a->net.rel.len == len && memcmp(a->net.rel.raw, p, len) == 0)
		return;		/* the same one again (a reconnect) */
	if ((copy = malloc(len)) == NULL)
		return;
	memcpy(copy, p, len);
	free(a->net.rel.raw);
	a->net.rel.raw = copy;
	a->net.rel.len = len;
	release_check(a, NULL);
}

int
release_halt_subscription(const struct agent *a, char *buf, size_t len)
{
	return topic_build(buf, len, a->root, TOPIC_RELEASE_HALT, a->cfg.channel, NULL);
}

/* Not ours to judge: the parent holds the keys (halt.c). */
void
release_halt_message(struct agent *a, const uint8_t *p, size_t len)
{
	if (len == 0)
		return;		/* cleared: the parent's halt lasts until a newer release */
	if (len > WIRE_MAX_STR) {
		log_warnx("release: dropped a %zu-byte halt", len);
		return;
	}
	priv_send_halt(a, p, len);
}

void
release_halted(struct agent *a, const char *version, uint64_t at)
{
	snprintf(a->net.rel.halt_version, sizeof(a->net.rel.halt_version), "%s", version);
	a->net.rel.halt_at = at;
	if (a->net.rel.raw)
		release_check(a, NULL);
}

void
release_free(struct agent *a)
{
	binfetch_end(a);
	step_wait(a, 0);
	free(a->net.rel.raw);
	a->net.rel.raw = NULL;
}
