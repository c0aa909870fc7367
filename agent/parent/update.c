/* SPDX-License-Identifier: Apache-2.0 */
/*
 * update.c - the privileged parent's half of self-update (design.md §5):
 * stage, test, install, commit or roll back.  The network process only
 * follows the channel and fetches (release.c); nothing it says is
 * believed here.
 *
 *  1. PRIV_RELEASE: verify the pointer's signature and manifest again,
 *     refuse a version that failed here before, read both binaries from
 *     state_dir/release/, check size and sha256 ourselves, and write them
 *     next to the installed ones as "<path>.staged" (same filesystem, so
 *     the install is a rename).
 *  2. Run "<musterd>.staged --self-test --runner <runner>.staged": a whole
 *     agent of the new version, client id <host>.selftest, state in
 *     state_dir/selftest.  It exits 0 only on a good verdict from
 *     muster-server; bounded by [update] selftest_timeout.
 *  3. Keep the installed binaries as "<path>.prev" (hard links), write
 *     update.pending, rename the staged ones into place, stop the network
 *     process (its goodbye), and exec() the new musterd with the wake
 *     listener handed over (--wake-fd N, FD_CLOEXEC cleared on it only).
 *  4. The new version counts its starts in update.pending.  Connected for
 *     [update] healthy: the update is done (update.pending removed).  The
 *     third start of a version that never got there restores ".prev",
 *     records update.failed (that version is refused from now on) and
 *     exec()s the old binary.
 *
 * Every failure before step 3 leaves the running version untouched and is
 * reported in status ("update" = {state, version, reason}) and the log.
 * An update job (muster update) is answered by whichever version ends the
 * story: update.job keeps it across the exec.
 *
 * Ownership: a->par.upd owns the self-test child (reaped by reap.c, handed to update_child_exited()),
 * its timer, the update job's body and the status map it last sent.
 */
#include "agent.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SELFTEST_GRACE_MS	10000	/* beyond its own timeout, then SIGKILL */
#define MAX_STARTS		2	/* deaths before the healthy window */
#define VERDICT_WAIT_MS		5000	/* the child exited 0: the verdict may lag */
#define BINARY_MAX		(WIRE_MAX_BIN)

/* ---- small files in state_dir ------------------------------------------------ */

static void
state_path(struct agent *a, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", a->cfg.state_dir, name);
}

static int
write_atomic(const char *path, const void *buf, size_t len, mode_t mode, struct mu_err *err)
{
	if (write_file_atomic(path, buf, len, mode) != MU_OK)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	return MU_OK;
}

/* "key=value" lines; value copied into out (size len), "" if absent. */
static void
kv_get(const char *text, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);
	const char *p = text, *e;

	out[0] = '\0';
	while (p && *p) {
		e = strchr(p, '\n');
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t n = (size_t)((e ? e : p + strlen(p)) - (p + kl + 1));

			if (n >= len)
				n = len - 1;
			memcpy(out, p + kl + 1, n);
			out[n] = '\0';
			return;
		}
		p = e ? e + 1 : NULL;
	}
}

static char *
read_text(const char *path)
{
	uint8_t *buf, *t;
	size_t len;

	if (read_file(path, 8192, &buf, &len, NULL) != MU_OK)
		return NULL;
	if ((t = realloc(buf, len + 1)) == NULL) {
		free(buf);
		return NULL;
	}
	t[len] = '\0';
	return (char *)t;
}

/* ---- status ------------------------------------------------------------------ */

static void
send_state(struct agent *a, const char *state, const char *version, const char *from,
    const char *reason)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2 + (from != NULL) + (reason != NULL));
	msgpack_pack_str_with_body(&pk, "state", 5);
	msgpack_pack_str_with_body(&pk, state, strlen(state));
	msgpack_pack_str_with_body(&pk, "version", 7);
	msgpack_pack_str_with_body(&pk, version, strlen(version));
	if (from) {
		msgpack_pack_str_with_body(&pk, "from", 4);
		msgpack_pack_str_with_body(&pk, from, strlen(from));
	}
	if (reason) {
		msgpack_pack_str_with_body(&pk, "reason", 6);
		msgpack_pack_str_with_body(&pk, reason, strnlen(reason, 1024));
	}
	/* The same again (a network process repeating itself): nothing to
	 * sign, nothing to publish. */
	if (a->par.upd.state && a->par.upd.state_len == sb.size &&
	    memcmp(a->par.upd.state, sb.data, sb.size) == 0) {
		msgpack_sbuffer_destroy(&sb);
		return;
	}
	free(a->par.upd.state);
	a->par.upd.state = (uint8_t *)sb.data;	/* handed over */
	a->par.upd.state_len = sb.size;
	snprintf(a->par.upd.sent_state, sizeof(a->par.upd.sent_state), "%s", state);
	snprintf(a->par.upd.sent_version, sizeof(a->par.upd.sent_version), "%s", version);
	sign_status_send(a, true);	/* the status carries it (sign.c) */
}

/*
 * The network process's own release check (net/release.c): what it
 * fetches, stages or refuses goes into the status we sign.  Only those
 * three states, a valid version and a bounded, escaped reason: it can say
 * no more than what its check saw (design.md §8).
 */
void
update_net_state(struct agent *a, const struct priv_msg *m)
{
	static const char *const states[] = { "fetching", "refused", "staging" };
	char version[WIRE_MAX_VERSION + 1], reason[512];
	size_t i;

	if (m->name[0] == '\0')
		return;
	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(m->name, states[i]) == 0)
			break;
	if (i == sizeof(states) / sizeof(states[0]))
		return;
	/* Checked by the frame's decoder (version_valid). */
	snprintf(version, sizeof(version), "%s", m->version);
	if (m->reason.ptr)
		printable_copy(reason, sizeof(reason), m->reason.ptr, m->reason.len);
	send_state(a, states[i], version, NULL, m->reason.ptr ? reason : NULL);
}

/* A new network process: the presence it publishes, the state its
 * predecessor showed included, and a self-test's request. */
void
update_net_started(struct agent *a)
{
	sign_status_send(a, false);
	if (a->selftest)
		sign_selftest_request(a);
}

/* ---- the update job ------------------------------------------------------------ */

static void
job_answer(struct agent *a, const uint8_t *body, size_t len, enum result_status st,
    const char *summary, const char *reason)
{
	struct mu_err err;
	struct result r;
	struct job j;

	if (job_decode(body, len, &j, &err) != MU_OK) {
		log_warnx("update job: %s", err.msg);
		return;
	}
	result_init(a, &r, &j, st);
	if (summary)
		r.summary = (struct wire_str){ summary, strlen(summary) };
	if (reason)
		r.reason = (struct wire_str){ reason, strlen(reason) };
	result_submit(a, &r);
	wire_doc_free(&j.doc);
}

/* Answer the update job held in memory, if any. */
static void
answer_held(struct agent *a, enum result_status st, const char *summary,
    const char *reason)
{
	if (a->par.upd.job_body == NULL)
		return;
	job_answer(a, a->par.upd.job_body, a->par.upd.job_len, st, summary, reason);
	free(a->par.upd.job_body);
	a->par.upd.job_body = NULL;
	a->par.upd.job_len = 0;
}

/* Answer the update job an earlier process left in update.job. */
static void
answer_saved(struct agent *a, enum result_status st, const char *summary,
    const char *reason)
{
	char path[CONF_PATH_MAX + 32];
	uint8_t *buf;
	size_t len;

	state_path(a, "update.job", path, sizeof(path));
	if (read_file(path, WIRE_MAX_BODY, &buf, &len, NULL) != MU_OK)
		return;
	job_answer(a, buf, len, st, summary, reason);
	free(buf);
	unlink(path);
}

void
update_job(struct agent *a, const struct job *j, const void *body, size_t len)
{
	char why[256];

	/* Updated, and proving itself: that is this host at the new version,
	 * not a failure (an operator reads a fail as something to fix). */
	if (a->par.upd.pending && a->par.upd.phase == UPD_IDLE && !a->par.upd.job_body) {
		snprintf(why, sizeof(why), "already at version %s (updated from %s; its healthy "
		    "window has not ended yet)", AGENT_VERSION, a->par.upd.prev_version);
		job_answer(a, body, len, RS_PASS, "no update", why);
		return;
	}
	if (a->par.upd.phase != UPD_IDLE || a->par.upd.pending || a->par.upd.job_body) {
		job_answer(a, body, len, RS_FAIL, "no update", "an update is already in progress");
		return;
	}
	if ((a->par.upd.job_body = malloc(len)) == NULL) {
		job_answer(a, body, len, RS_ERROR, NULL, "agent out of memory");
		return;
	}
	memcpy(a->par.upd.job_body, body, len);
	a->par.upd.job_len = len;
	log_notice("update job %s: looking at channel %s now", j->id, a->cfg.channel);
	priv_send_update_check(a, j->id);
}

void
update_no_update(struct agent *a, const struct priv_msg *m)
{
	char why[512];

	/* The network process's words: escaped before they reach our log. */
	printable_copy(why, sizeof(why), m->reason.ptr, m->reason.len < 500 ?
	    m->reason.len : 500);
	log_info("update job %s: no update: %s", m->job, why);
	/* "already at version ..." is the one happy ending without an update. */
	answer_held(a, strncmp(why, "already at version", 18) == 0 ? RS_PASS : RS_FAIL,
	    "no update", why);
}

/* ---- failure before the install ---------------------------------------------------- */

static void
staged_path(const char *path, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s.%s", path, suffix);
}

static void
unstage(struct agent *a)
{
	char p[PATH_MAX];

	staged_path(a->par.upd.agent_path, "staged", p, sizeof(p));
	unlink(p);
	staged_path(a->cfg.runner, "staged", p, sizeof(p));
	unlink(p);
}

static void
fail(struct agent *a, const char *version, const char *why)
{
	log_err("update to %s failed: %s (still running %s)", version, why, AGENT_VERSION);
	unstage(a);
	a->par.upd.phase = UPD_IDLE;
	if (a->par.upd.timer)
		loop_del_timer(a->loop, a->par.upd.timer);
	a->par.upd.timer = 0;
	send_state(a, "failed", version, AGENT_VERSION, why);
	answer_held(a, RS_FAIL, "update failed", why);
}

/* ---- staging ---------------------------------------------------------------------- */

/* Read one binary the network process fetched, check it ourselves, and
 * write it next to its installed path. */
static int
stage_one(struct agent *a, const char *what, const char *sha, uint64_t size,
    const char *installed, struct mu_err *err)
{
	char from[CONF_PATH_MAX + 100], to[PATH_MAX], got[SHA256_HEX_LEN + 1];
	uint8_t *buf;
	size_t len;
	int rc;

	snprintf(from, sizeof(from), "%s/release/%s", a->net_dir, sha);
	if (read_untrusted(from, BINARY_MAX, net_file_owner(a), &buf, &len, NULL) != MU_OK)
		return mu_errf(err, MU_ENOENT, "the %s binary %.12s... is not there", what, sha);
	sha256_hex(buf, len, got);
	if (len != size || strcmp(got, sha) != 0) {
		free(buf);
		return mu_errf(err, MU_ETRUST, "the fetched %s binary does not match its "
		    "signed manifest", what);
	}
	staged_path(installed, "staged", to, sizeof(to));
	rc = write_atomic(to, buf, len, 0755, err);
	free(buf);
	return rc;
}

#define RM_DEPTH_MAX	32	/* deeper than any self-test makes */

/*
 * Remove parent/name and everything under it, relative to directory fds
 * only (issue 22): folders in the self-test tree may belong to a network
 * process's user, which can rename them and plant symlinks while we walk.
 * Each level is opened O_NOFOLLOW | O_DIRECTORY from the fd of the level
 * above and entries go with unlinkat() on that fd, so a symlink is only
 * ever unlinked itself and the walk never leaves the tree it opened.
 * MU_OK, or MU_EIO with errno set.
 */
static int
rm_tree_at(int parent, const char *name, int depth)
{
	struct dirent *de;
	int fd, rc = MU_OK, saved;
	DIR *d;

	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return MU_OK;
	if (errno != EISDIR || depth >= RM_DEPTH_MAX)
		return MU_EIO;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? MU_OK : MU_EIO;
	if ((d = fdopendir(fd)) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		return MU_EIO;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    rm_tree_at(dirfd(d), de->d_name, depth + 1) != MU_OK)
			rc = MU_EIO;
	saved = errno;
	closedir(d);
	errno = saved;
	if (rc == MU_OK && unlinkat(parent, name, AT_REMOVEDIR) == -1 && errno != ENOENT)
		rc = MU_EIO;
	return rc;
}

/* state_dir/NAME and all under it, without following anything. */
static int
rm_state_tree(struct agent *a, const char *name, struct mu_err *err)
{
	int top, rc, saved;

	if ((top = open(a->cfg.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return mu_errf(err, MU_EIO, "%s: %s", a->cfg.state_dir, strerror(errno));
	rc = rm_tree_at(top, name, 0);
	saved = errno;
	close(top);
	if (rc != MU_OK)
		return mu_errf(err, rc, "removing %s/%s: %s", a->cfg.state_dir, name,
		    strerror(saved));
	return MU_OK;
}

static void selftest_expired(struct loop *l, uint64_t id, void *arg);

/* Fork and exec the staged agent in self-test mode.  argv is built before
 * fork: between fork and exec only async-signal-safe calls (design.md §9). */
static int
selftest_spawn(struct agent *a, struct mu_err *err)
{
	char agent[PATH_MAX], runner[PATH_MAX], dir[CONF_PATH_MAX + 32], noncefd[16];
	/* The nonce goes in a pipe (--nonce-fd): argv is readable by every
	 * user in /proc/PID/cmdline, and so would the verdict be to forge. */
	char *argv[] = { agent, "--self-test", "-c", a->conf_path, "--foreground",
	    "--runner", runner, "--nonce-fd", noncefd, NULL };
	uint8_t r[16];
	size_t i;
	pid_t pid;
	int rc, nfd;

	/* Ours, so that we recognise the verdict on it ourselves. */
	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		return mu_errf(err, MU_EIO, "no randomness for a nonce");
	for (i = 0; i < sizeof(r); i++)
		snprintf(a->par.upd.nonce + 2 * i, 3, "%02x", r[i]);
	a->par.upd.verdict = 0;
	a->par.upd.child_ok = false;

	staged_path(a->par.upd.agent_path, "staged", agent, sizeof(agent));
	staged_path(a->cfg.runner, "staged", runner, sizeof(runner));
	state_path(a, "selftest", dir, sizeof(dir));
	if ((rc = rm_state_tree(a, "selftest", err)) != MU_OK)
		return rc;
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		return mu_errf(err, MU_EIO, "%s: %s", dir, strerror(errno));
	if ((nfd = nonce_pipe(a->par.upd.nonce)) == -1)
		return mu_errf(err, MU_EIO, "a pipe for the nonce: %s", strerror(errno));
	snprintf(noncefd, sizeof(noncefd), "%d", nfd);
	if ((pid = fork()) == -1) {
		rc = errno;
		close(nfd);
		return mu_errf(err, MU_EIO, "fork: %s", strerror(rc));
	}
	if (pid == 0) {
		sigset_t none;

		/* Dies with us: a killed agent leaves no self-test behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
		fcntl(nfd, F_SETFD, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(agent, argv);
		_exit(127);
	}
	close(nfd);
	a->par.upd.child = pid;
	a->par.upd.timer = loop_add_timer(a->loop, a->cfg.selftest_timeout_ms +
	    SELFTEST_GRACE_MS, selftest_expired, a);
	return MU_OK;
}

static void
selftest_expired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)l, (void)id;
	a->par.upd.timer = 0;
	if (a->par.upd.child > 0) {
		log_warnx("update: the self-test of %s did not end in time: killing it",
		    a->par.upd.version);
		kill(a->par.upd.child, SIGKILL);	/* reaped as a failure */
	}
}

static bool
version_failed_here(struct agent *a, const char *version, char *why, size_t len)
{
	char path[CONF_PATH_MAX + 32], v[WIRE_MAX_VERSION + 1], *t;

	state_path(a, "update.failed", path, sizeof(path));
	if ((t = read_text(path)) == NULL)
		return false;
	kv_get(t, "version", v, sizeof(v));
	free(t);
	if (strcmp(v, version) != 0)
		return false;
	snprintf(why, len, "version %s failed on this host before; waiting for a newer one",
	    version);
	return true;
}

/* A verified halt (halt.c) names this release: a newer published_at lifts it. */
static bool
halted(const struct agent *a, const struct release_manifest *m)
{
	return a->par.upd.halt_version[0] != '\0' &&
	    strcmp(a->par.upd.halt_version, m->version) == 0 &&
	    m->published_at <= a->par.upd.halt_at;
}

void
update_halt_report(struct agent *a)
{
	if (a->par.upd.halt_version[0] == '\0' ||
	    strcmp(a->par.upd.halt_version, AGENT_VERSION) == 0 ||
	    a->par.upd.phase != UPD_IDLE || a->par.upd.pending)
		return;
	/* A host that tried the version and failed it says so, not "halted":
	 * muster-server counts it as a failure (server/halt.c). */
	if (strcmp(a->par.upd.sent_version, a->par.upd.halt_version) == 0 &&
	    (strcmp(a->par.upd.sent_state, "failed") == 0 ||
	    strcmp(a->par.upd.sent_state, "rolled_back") == 0))
		return;
	send_state(a, "halted", a->par.upd.halt_version, AGENT_VERSION,
	    a->par.upd.halt_reason);
}

void
update_release(struct agent *a, const struct priv_msg *msg)
{
	struct release_manifest m;
	char fpr[PGP_FPR_MAX + 1], why[512];
	uint64_t floor_at;
	struct mu_err err;
	unsigned pct;
	int rc;

	if (a->par.upd.phase != UPD_IDLE || a->par.upd.pending) {
		log_info("update: a release arrived while %s; ignored", a->par.upd.pending ?
		    "the last update is in its healthy window" : "an update is under way");
		return;
	}
	if (verify_release_pointer(a, msg->payload.ptr, msg->payload.len, &m, fpr, &err) != MU_OK) {
		fail(a, "unknown", err.msg);
		return;
	}
	if (strcmp(m.version, AGENT_VERSION) == 0)
		rc = mu_errf(&err, MU_EINVAL, "already at version %s", m.version);
	else if (halted(a, &m))
		rc = mu_errf(&err, MU_EINVAL, "release %s is halted on channel %s: %s",
		    m.version, m.channel, a->par.upd.halt_reason);
	/* The schedule read on our own clock, not the network process's word. */
	else if (release_bucket(a->cfg.host) >= (pct = release_rollout_at(&m, now_wall_ms(), NULL)))
		rc = mu_errf(&err, MU_EINVAL, "this host is outside the %u%% rollout", pct);
	else if (version_failed_here(a, m.version, why, sizeof(why)))
		rc = mu_errf(&err, MU_EINVAL, "%s", why);
	/* Our floor, not the network process's net/release/floor: a signed
	 * but older release is a rollback whoever forwards it. */
	else if (m.published_at < (floor_at = parent_floor(a, "release", NULL)))
		rc = mu_errf(&err, MU_ETRUST, "release %s (published_at %" PRIu64 ") is older "
		    "than the newest this host accepted (published_at %" PRIu64 "): refused "
		    "as a rollback", m.version, m.published_at, floor_at);
	else if ((rc = stage_one(a, "agent", m.agent_sha256, m.agent_size,
	    a->par.upd.agent_path, &err)) == MU_OK &&
	    (rc = stage_one(a, "runner", m.runner_sha256, m.runner_size, a->cfg.runner,
	    &err)) == MU_OK)
		rc = parent_floor_raise(a, "release", NULL, m.published_at, &err);
	snprintf(a->par.upd.version, sizeof(a->par.upd.version), "%s", m.version);
	a->par.upd.published_at = m.published_at;
	wire_doc_free(&m.doc);
	if (rc == MU_OK)
		rc = selftest_spawn(a, &err);
	if (rc != MU_OK) {
		fail(a, a->par.upd.version, err.msg);
		return;
	}
	a->par.upd.phase = UPD_TESTING;
	log_notice("update: %s staged (signed by %s); self-test running (pid %d)",
	    a->par.upd.version, fpr, (int)a->par.upd.child);
	send_state(a, "testing", a->par.upd.version, AGENT_VERSION, NULL);
}

/* ---- install and exec --------------------------------------------------------------- */

static int
keep_prev(const char *path, struct mu_err *err)
{
	char prev[PATH_MAX];

	staged_path(path, "prev", prev, sizeof(prev));
	unlink(prev);
	if (link(path, prev) == -1)
		return mu_errf(err, MU_EIO, "keeping %s as %s: %s", path, prev, strerror(errno));
	return MU_OK;
}

static int
put_in_place(const char *path, struct mu_err *err)
{
	char staged[PATH_MAX];

	staged_path(path, "staged", staged, sizeof(staged));
	if (rename(staged, path) == -1)
		return mu_errf(err, MU_EIO, "rename %s: %s", staged, strerror(errno));
	return MU_OK;
}

static void
restore_prev(const char *path)
{
	char prev[PATH_MAX];

	staged_path(path, "prev", prev, sizeof(prev));
	if (rename(prev, path) == -1 && errno != ENOENT)
		log_err("restoring %s: %s", prev, strerror(errno));
}

/* exec() path with our argv, --wake-fd replaced by the listener's fd (if
 * there is one).  Returns only on failure. */
static void
exec_self(struct agent *a, const char *path)
{
	char **argv, fdbuf[16];
	int i, n = 0, fd;

	for (i = 0; a->par.upd.argv[i]; i++)
		;
	if ((argv = calloc((size_t)i + 3, sizeof(*argv))) == NULL)
		return;
	for (i = 0; a->par.upd.argv[i]; i++) {
		if (strcmp(a->par.upd.argv[i], "--wake-fd") == 0 && a->par.upd.argv[i + 1]) {
			i++;
			continue;
		}
		argv[n++] = a->par.upd.argv[i];
	}
	/* Nothing but the listener (and stdio) crosses the exec: Paho's
	 * sockets and ours are not close-on-exec by themselves (design.md §9). */
	fd = a->par.wake_fd >= 0 ? a->par.wake_fd : a->par.wake_fd_inherited;
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	if (fd >= 0 && fcntl(fd, F_SETFD, 0) == 0) {
		snprintf(fdbuf, sizeof(fdbuf), "%d", fd);
		argv[n++] = "--wake-fd";
		argv[n++] = fdbuf;
	}
	argv[n] = NULL;
	execv(path, argv);
	log_err("exec %s: %s", path, strerror(errno));
	free(argv);
}

static int
write_pending(struct agent *a, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 32], text[512];
	int n;

	if (a->par.upd.job_body) {
		state_path(a, "update.job", path, sizeof(path));
		if (write_atomic(path, a->par.upd.job_body, a->par.upd.job_len, 0600, err) != MU_OK)
			return MU_EIO;
	}
	n = snprintf(text, sizeof(text), "version=%s\nprev=%s\npublished_at=%" PRIu64
	    "\nstarts=0\n", a->par.upd.version, AGENT_VERSION, a->par.upd.published_at);
	state_path(a, "update.pending", path, sizeof(path));
	return write_atomic(path, text, (size_t)n, 0600, err);
}

static void
install(struct agent *a)
{
	char path[CONF_PATH_MAX + 32];
	struct mu_err err;

	state_path(a, "update.pending", path, sizeof(path));
	send_state(a, "installing", a->par.upd.version, AGENT_VERSION, NULL);
	if (keep_prev(a->par.upd.agent_path, &err) != MU_OK ||
	    keep_prev(a->cfg.runner, &err) != MU_OK ||
	    write_pending(a, &err) != MU_OK) {
		fail(a, a->par.upd.version, err.msg);
		return;
	}
	if (put_in_place(a->cfg.runner, &err) != MU_OK ||
	    put_in_place(a->par.upd.agent_path, &err) != MU_OK) {
		restore_prev(a->cfg.runner);
		unlink(path);
		fail(a, a->par.upd.version, err.msg);
		return;
	}
	log_notice("update: %s installed (previous %s kept as .prev); restarting into it",
	    a->par.upd.version, AGENT_VERSION);
	/* Close down like a stop, but keep the wake listener open. */
	a->stopping = true;
	run_interrupt_all(a);
	if (a->role == ROLE_BOTH) {
		priv_drain(a);
		net_stop(a);
	}
	priv_stop(a);
	exec_self(a, a->par.upd.agent_path);
	/* The new binary is in place but would not start: back to the old one. */
	restore_prev(a->par.upd.agent_path);
	restore_prev(a->cfg.runner);
	unlink(path);
	exec_self(a, a->par.upd.agent_path);
	_exit(1);	/* systemd starts us again */
}

static void
verdict_expired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)l, (void)id;
	a->par.upd.timer = 0;
	fail(a, a->par.upd.version, "the self-test exited 0, but this agent saw no good "
	    "verdict for it");
}

/* A verdict on our host's self-test topic, passed on by the network
 * process: decoded here like any broker input. */
void
update_verdict(struct agent *a, const struct selftest_verdict *v)
{
	if (strcmp(v->host, a->cfg.host) == 0 && strcmp(v->nonce, a->par.upd.nonce) == 0 &&
	    a->par.upd.verdict == 0) {
		a->par.upd.verdict = v->ok ? 1 : -1;
		log_info("update: the self-test's verdict is %s", v->ok ? "good" : "bad");
		if (a->par.upd.child_ok) {
			if (a->par.upd.timer)
				loop_del_timer(a->loop, a->par.upd.timer);
			a->par.upd.timer = 0;
			if (v->ok) {
				log_notice("update: %s passed its self-test", a->par.upd.version);
				install(a);
			} else
				fail(a, a->par.upd.version, "bad verdict");
		}
	}
}

void
update_child_exited(struct agent *a, int status)
{
	char why[128];

	a->par.upd.child = 0;
	if (a->par.upd.timer)
		loop_del_timer(a->loop, a->par.upd.timer);
	a->par.upd.timer = 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		/* Both: its exit status, and the verdict seen with our own eyes. */
		if (a->par.upd.verdict > 0) {
			log_notice("update: %s passed its self-test", a->par.upd.version);
			install(a);
		} else {
			a->par.upd.child_ok = true;
			a->par.upd.timer = loop_add_timer(a->loop, VERDICT_WAIT_MS,
			    verdict_expired, a);
		}
		return;
	}
	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "self-test killed by signal %d%s", WTERMSIG(status),
		    WTERMSIG(status) == SIGKILL ? " (no verdict in time?)" : "");
	else
		snprintf(why, sizeof(why), "self-test failed (exit %d: %s)", WEXITSTATUS(status),
		    WEXITSTATUS(status) == 3 ? "no verdict in time" :
		    WEXITSTATUS(status) == 4 ? "the test job failed" :
		    WEXITSTATUS(status) == 5 ? "bad verdict" : "could not run");
	fail(a, a->par.upd.version, why);
}

/* ---- after the exec: commit or roll back -------------------------------------------- */

static void
healthy_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;
	char path[CONF_PATH_MAX + 32], summary[160];

	(void)l, (void)id;
	a->par.upd.healthy_timer = 0;
	/* Healthy: connected for the window, and a job answered or the
	 * self-check (the installed runner told its version) passed.  Not
	 * healthy counts as a death: systemd starts us again, and the third
	 * start rolls back. */
	if (!a->par.upd.answered && strcmp(a->par.runner_version, "unknown") == 0) {
		log_err("update: %s is not healthy: no job answered and the runner %s does "
		    "not answer its self-check", AGENT_VERSION, a->cfg.runner);
		a->exit_rc = 1;
		loop_stop(l);
		return;
	}
	state_path(a, "update.pending", path, sizeof(path));
	if (unlink(path) == -1 && errno != ENOENT) {
		log_err("update: %s: %s", path, strerror(errno));
		return;
	}
	state_path(a, "update.failed", path, sizeof(path));
	unlink(path);
	a->par.upd.pending = false;
	log_notice("update: %s is healthy; the update from %s is done", AGENT_VERSION,
	    a->par.upd.prev_version);
	send_state(a, "healthy", AGENT_VERSION, a->par.upd.prev_version, NULL);
	snprintf(summary, sizeof(summary), "updated from %s to %s", a->par.upd.prev_version,
	    AGENT_VERSION);
	answer_saved(a, RS_PASS, summary, NULL);
}

void
update_connected(struct agent *a)
{
	if (a->par.upd.pending && !a->par.upd.healthy_timer)
		a->par.upd.healthy_timer = loop_add_timer(a->loop, a->cfg.healthy_ms,
		    healthy_fired, a);
}

/* The third start of a version that never became healthy: back to .prev. */
static int
rollback(struct agent *a, const char *version, unsigned starts, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 32], text[512];
	int n;

	log_err("update: version %s died %u times before it was healthy: restoring the "
	    "previous version", version, starts - 1);
	n = snprintf(text, sizeof(text), "version=%s\nreason=version %s died %u times "
	    "before it was healthy; rolled back\n", version, version, starts - 1);
	state_path(a, "update.failed", path, sizeof(path));
	if (write_atomic(path, text, (size_t)n, 0600, err) != MU_OK)
		return MU_EIO;
	restore_prev(a->cfg.runner);
	restore_prev(a->par.upd.agent_path);
	state_path(a, "update.pending", path, sizeof(path));
	unlink(path);
	exec_self(a, a->par.upd.agent_path);
	return mu_errf(err, MU_EIO, "exec of the restored %s failed", a->par.upd.agent_path);
}

/*
 * Start-up, before anything is opened: count this start of a pending
 * version, roll back when it is the third, and find what to report.
 */
int
update_boot(struct agent *a, char **argv, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 32], v[WIRE_MAX_VERSION + 1], s[32], text[512], *t;
	char staged[PATH_MAX];
	unsigned starts;
	int n;

	a->par.upd.argv = argv;
	if (a->cfg.agent_path[0])
		snprintf(a->par.upd.agent_path, sizeof(a->par.upd.agent_path), "%s", a->cfg.agent_path);
	else {
		char self[PATH_MAX];	/* realpath() writes up to PATH_MAX */

		if (realpath("/proc/self/exe", self) == NULL)
			return mu_errf(err, MU_EIO, "cannot find our own binary: %s",
			    strerror(errno));
		if (snprintf(a->par.upd.agent_path, sizeof(a->par.upd.agent_path), "%s", self) >=
		    (int)sizeof(a->par.upd.agent_path))
			return mu_errf(err, MU_EINVAL, "our binary's path is too long: %s", self);
	}
	/* Staged binaries left over: we died while staging or testing. */
	staged_path(a->par.upd.agent_path, "staged", staged, sizeof(staged));
	if (access(staged, F_OK) == 0) {
		unstage(a);
		snprintf(a->par.upd.boot_version, sizeof(a->par.upd.boot_version), "unknown");
		snprintf(a->par.upd.boot_reason, sizeof(a->par.upd.boot_reason), "the agent restarted "
		    "while staging or testing an update; %s kept", AGENT_VERSION);
		log_warnx("update: %s", a->par.upd.boot_reason);
	}
	state_path(a, "update.pending", path, sizeof(path));
	if ((t = read_text(path)) != NULL) {
		kv_get(t, "version", v, sizeof(v));
		kv_get(t, "prev", a->par.upd.prev_version, sizeof(a->par.upd.prev_version));
		kv_get(t, "starts", s, sizeof(s));
		free(t);
		starts = (unsigned)strtoul(s, NULL, 10) + 1;
		if (strcmp(v, AGENT_VERSION) != 0) {
			/* Killed in the middle of the install: the old agent still
			 * runs; put its runner back too. */
			log_warnx("update: %s was not installed completely; keeping %s", v,
			    AGENT_VERSION);
			restore_prev(a->cfg.runner);
			unlink(path);
			snprintf(a->par.upd.boot_version, sizeof(a->par.upd.boot_version), "%s", v);
			snprintf(a->par.upd.boot_reason, sizeof(a->par.upd.boot_reason), "the agent "
			    "restarted during the install; %s kept", AGENT_VERSION);
		} else if (starts > MAX_STARTS)
			return rollback(a, v, starts, err);
		else {
			n = snprintf(text, sizeof(text), "version=%s\nprev=%s\nstarts=%u\n", v,
			    a->par.upd.prev_version, starts);
			if (write_atomic(path, text, (size_t)n, 0600, err) != MU_OK)
				return MU_EIO;
			a->par.upd.pending = true;
			log_notice("update: now %s (from %s), start %u of at most %d before it "
			    "must be healthy", v, a->par.upd.prev_version, starts, MAX_STARTS);
		}
	}
	return MU_OK;
}

/* After priv_start: what status says until something changes, and the
 * answer an update job waits for in update.job. */
void
update_started(struct agent *a)
{
	char path[CONF_PATH_MAX + 32], why[400], v[WIRE_MAX_VERSION + 1], *t;

	if (a->par.upd.pending) {
		send_state(a, "verifying", AGENT_VERSION, a->par.upd.prev_version, NULL);
		return;		/* the job is answered once healthy */
	}
	if (a->par.upd.boot_reason[0]) {
		send_state(a, "failed", a->par.upd.boot_version, AGENT_VERSION, a->par.upd.boot_reason);
		answer_saved(a, RS_FAIL, "update failed", a->par.upd.boot_reason);
		return;
	}
	state_path(a, "update.failed", path, sizeof(path));
	if ((t = read_text(path)) != NULL) {
		kv_get(t, "reason", why, sizeof(why));
		kv_get(t, "version", v, sizeof(v));
		free(t);
		/* Only rollback() writes update.failed: the version ran here
		 * and was taken back, which muster-server counts apart. */
		if (version_valid(v))
			send_state(a, "rolled_back", v, AGENT_VERSION, why[0] ? why : NULL);
		answer_saved(a, RS_FAIL, "update failed", why[0] ? why : "update failed");
		return;
	}
	answer_saved(a, RS_FAIL, "update failed", "the agent restarted during the update");
}

void
update_free(struct agent *a)
{
	if (a->par.upd.child > 0) {
		kill(a->par.upd.child, SIGKILL);
		waitpid(a->par.upd.child, NULL, 0);
		a->par.upd.child = 0;
		unstage(a);
	}
	if (a->par.upd.timer)
		loop_del_timer(a->loop, a->par.upd.timer);
	if (a->par.upd.healthy_timer)
		loop_del_timer(a->loop, a->par.upd.healthy_timer);
	a->par.upd.timer = a->par.upd.healthy_timer = 0;
	free(a->par.upd.job_body);
	free(a->par.upd.state);
	a->par.upd.job_body = a->par.upd.state = NULL;
}
