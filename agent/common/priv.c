/* SPDX-License-Identifier: Apache-2.0 */
/*
 * priv.c - privilege separation (design.md §8), in the manner of OpenSSH's
 * monitor and OpenBSD's privsep daemons.
 *
 * Started as root, musterd forks its network process, which changes to
 * [agent] user (groups cleared, no capabilities, NO_NEW_PRIVS) before it
 * touches the network.  The two talk over one socketpair in typed frames
 * (struct priv_msg, decoded by lib/wire_priv.c like any broker input),
 * each built in priv_send.c, whose table priv_rules[] says which side may
 * send each of the types (lib/wire.h lists their fields):
 *
 *   network -> parent   job (a raw envelope), module (the build chosen for
 *                       a run), spooled (a result is safe on disk),
 *                       release, noupdate, connected, verdict (self-update),
 *                       ready, failed (its set-up's outcome)
 *   parent -> network   result, event, want (a run's module), poke, stop,
 *                       check, update (self-update), durable (jobs safe
 *                       in the seen-set), answered (done marks written)
 *
 * The parent re-checks every job from its raw bytes (intake.c: key,
 * signature, window, target, aud, seen-set, policy) and every module build
 * (signature, name, ABI, sha256) before it spawns anything, so code running
 * in the network process cannot run anything no operator signed.  A frame
 * that does not decode, or a network process that dies, is logged and the
 * process is replaced; results it had not yet spooled are sent again.
 *
 * Not root, one process plays both roles (ROLE_BOTH) over the same
 * socketpair: the same messages, the same code.
 *
 * Ownership: struct chan owns its fd and buffers; struct pending entries
 * belong to a->par.pending.  The network process's pid is owned by the parent
 * (reaped by the parent's reaper, parent/reap.c: priv_net_exited()).
 */
#include "agent.h"
#include "common/priv_int.h"
#include "inbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#define CHAN_READ		(64u * 1024)
#define NET_RESTART_MS		1000	/* wait before a new network process */
#define NET_RESTART_SLOW_MS	10000	/* the same after NET_FAILS_MAX failures */
#define NET_FAILS_MAX		5	/* failed set-ups in a row: stop the watchdog */
#define NET_STOP_WAIT_MS	3000	/* its goodbye at shutdown */

static void chan_readable(struct loop *l, int fd, short revents, void *arg);
static int net_spawn(struct agent *a, struct mu_err *err);
static void chan_close(struct agent *a, struct chan *c);
static void net_lost(struct agent *a, const char *why);
static void intake_durable(struct agent *a);
static void answered_send(struct agent *a);
static void net_durable(struct agent *a, uint64_t n);

/* ---- the channel --------------------------------------------------------- */

static size_t
chan_max_frame(const struct agent *a)
{
	/* A job envelope up to max_job, a result body, room for the frame. */
	return (a->cfg.max_job > (1u << 20) ? a->cfg.max_job : (1u << 20)) + 64 * 1024;
}

/*
 * What may wait in the parent's buffer toward the network process (issue
 * 22): every pending result once more (a new network process gets them
 * all at its start) and room for a few frames.  A network process that
 * stops reading meets it and is replaced, instead of the parent growing.
 */
static size_t
chan_out_max(const struct agent *a)
{
	return PENDING_BYTES_MAX + 4 * chan_max_frame(a);
}

static void
chan_init(struct agent *a, struct chan *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->in.max_frame = chan_max_frame(a);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	loop_add_fd(a->loop, fd, POLLIN, chan_readable, a);
}

static void
chan_close(struct agent *a, struct chan *c)
{
	if (c->fd != -1) {
		loop_del_fd(a->loop, c->fd);
		close(c->fd);
	}
	ipc_reader_free(&c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static struct chan *
chan_of(struct agent *a, int fd)
{
	return a->par.to_net.fd == fd ? &a->par.to_net : &a->net.to_parent;
}

/* Write what we can; keep the rest and ask for POLLOUT. */
static void
chan_flush(struct agent *a, struct chan *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0)
			c->out_off += (size_t)n;
		else if (n == -1 && errno == EINTR)
			continue;
		else
			break;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	loop_add_fd(a->loop, c->fd, POLLIN | (c->out_len ? POLLOUT : 0), chan_readable, a);
}

int
priv_chan_send(struct agent *a, struct chan *c, const struct priv_msg *m)
{
	msgpack_sbuffer sb;
	struct mu_err err;
	size_t need;
	uint8_t *n;
	int rc;

	if (c->fd == -1)
		return MU_EIO;
	msgpack_sbuffer_init(&sb);
	if ((rc = priv_msg_encode(m, &sb, &err)) != MU_OK) {
		log_warnx("%s message not sent: %s", priv_type_name(m->type), err.msg);
		msgpack_sbuffer_destroy(&sb);
		return rc;
	}
	/* What was sent already makes room (a slow reader must not leave
	 * a buffer that only grows). */
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	need = c->out_len + 4 + sb.size;
	if (c == &a->par.to_net && a->role == ROLE_PARENT && need > chan_out_max(a)) {
		msgpack_sbuffer_destroy(&sb);
		if (!a->par.net_replace_timer)
			log_err("%s message not sent: %zu bytes wait for the network process",
			    priv_type_name(m->type), c->out_len);
		/* Dropped, as the whole buffer is with the process: results
		 * stay pending and go to the next one, wants are asked again
		 * and answered marks found again in the spool at its start
		 * (net_spawn()); events of a stream are lost. */
		priv_net_replace(a, "stopped reading");
		return MU_EIO;
	}
	if (need > c->out_cap) {
		if ((n = realloc(c->out, need)) == NULL) {
			msgpack_sbuffer_destroy(&sb);
			return MU_ENOMEM;
		}
		c->out = n, c->out_cap = need;
	}
	n = c->out + c->out_len;
	n[0] = (uint8_t)(sb.size >> 24), n[1] = (uint8_t)(sb.size >> 16);
	n[2] = (uint8_t)(sb.size >> 8), n[3] = (uint8_t)sb.size;
	memcpy(n + 4, sb.data, sb.size);
	c->out_len = need;
	msgpack_sbuffer_destroy(&sb);
	chan_flush(a, c);
	return MU_OK;
}

/* ---- what each side does with a message ------------------------------------ */


static int
parent_dispatch(struct agent *a, const struct priv_msg *m)
{
	switch (m->type) {
	case PRIV_JOB:
		a->par.jobs_in++;
		intake_message(a, m->topic, m->payload.ptr, m->payload.len);
		return MU_OK;
	case PRIV_MODULE:
		run_module_answer(a, m);
		return MU_OK;
	case PRIV_SPOOLED:
		results_spooled(a, m->job);
		a->par.upd.answered = true;		/* part of "healthy" (update.c) */
		return MU_OK;
	case PRIV_RELEASE:
		update_release(a, m);
		return MU_OK;
	case PRIV_NO_UPDATE:
		update_no_update(a, m);
		return MU_OK;
	case PRIV_CONNECTED:
		agent_status(a, "connected to the broker as %s", a->cfg.host);
		sign_status(a, PRIV_STATUS_ONLINE);	/* presence, as of now */
		update_connected(a);
		return MU_OK;
	case PRIV_RELEASE_STATE:
		update_net_state(a, m);
		return MU_OK;
	case PRIV_HALT:
		halt_message(a, m->payload.ptr, m->payload.len);
		return MU_OK;
	case PRIV_READY:
		priv_net_ready(a);
		return MU_OK;
	case PRIV_FAILED:
		printable_copy(a->par.net_why, sizeof(a->par.net_why), m->reason.ptr, m->reason.len);
		return MU_OK;
	case PRIV_VERDICT: {
		struct selftest_verdict v;
		struct mu_err err;

		/* As received from the broker: the parent decodes it itself. */
		if (selftest_verdict_decode(m->payload.ptr, m->payload.len, &v, &err) == MU_OK) {
			update_verdict(a, &v);
			wire_doc_free(&v.doc);
		}
		return MU_OK;
	}
	default:
		return MU_EINVAL;	/* only the parent sends these */
	}
}

/* A result staged in the spool: acknowledged by net_commit(). */
static void
staged_add(struct agent *a, const char *job)
{
	char (*n)[JOBID_MAX_LEN + 1];

	if (a->net.nstaged == a->net.capstaged) {
		size_t cap = a->net.capstaged ? a->net.capstaged * 2 : 16;

		if ((n = reallocarray(a->net.staged, cap, sizeof(*n))) == NULL)
			return;		/* unacknowledged: the parent sends it again */
		a->net.staged = n, a->net.capstaged = cap;
	}
	snprintf(a->net.staged[a->net.nstaged++], JOBID_MAX_LEN + 1, "%s", job);
}

/* Every result of this read is staged: one fsync of the spool folder,
 * then they are sent and acknowledged, so the parent may drop its copies
 * (a group commit, as intake_commit() for jobs). */
static void
net_commit(struct agent *a)
{
	bool ok;
	size_t i;

	if (a->net.nstaged == 0 && !a->spool.dir_dirty)
		return;
	ok = results_commit(a) == MU_OK;
	if (ok && a->net.nstaged)
		test_stop_at("net-spooled");	/* the parent not yet told */
	for (i = 0; ok && i < a->net.nstaged; i++)
		priv_send_spooled(a, a->net.staged[i]);
	a->net.nstaged = 0;
}

static int
net_dispatch(struct agent *a, const struct priv_msg *m)
{
	switch (m->type) {
	case PRIV_RESULT:
		if (result_stage(a, m->job, m->payload.ptr, m->payload.len) == MU_OK)
			staged_add(a, m->job);
		return MU_OK;
	case PRIV_EVENT:
		event_publish(a, m->job, m->payload.ptr, m->payload.len);
		return MU_OK;
	case PRIV_MODULE_WANT:
		modsrc_want(a, m);
		return MU_OK;
	case PRIV_POKE:
		session_poke(a);
		return MU_OK;
	case PRIV_DURABLE:
		net_durable(a, m->n);
		return MU_OK;
	case PRIV_ANSWERED:
		result_answered(a, m->job);
		return MU_OK;
	case PRIV_STOP:
		log_info("stopping as the parent asked");
		loop_stop(a->loop);
		return MU_OK;
	case PRIV_UPDATE_CHECK:
		release_check(a, m->job);
		return MU_OK;
	case PRIV_STATUS:
		session_status(a, (enum priv_status)m->n, m->payload.ptr, m->payload.len);
		return MU_OK;
	case PRIV_SELFTEST:
		selftest_request(a, m->payload.ptr, m->payload.len);
		return MU_OK;
	case PRIV_FACTS:
		session_facts(a, m->payload.ptr, m->payload.len);
		return MU_OK;
	case PRIV_HALTED:
		release_halted(a, m->version, m->n);
		return MU_OK;
	default:
		return MU_EINVAL;
	}
}

/* The end of a read: what its messages appended or staged is flushed once
 * (parent: the seen-set; network process: the spool), then acted on. */
static void
read_commit(struct agent *a, bool from_net)
{
	if (from_net) {
		struct mu_err err;

		intake_commit(a);
		intake_durable(a);
		/* The done marks of the answers spooled in this read, then
		 * their results may be published. */
		if (seen_sync(&a->par.seen, &err) != MU_OK)
			log_err("seen-set: %s", err.msg);
		answered_send(a);
	} else
		net_commit(a);
}

void
answered_add(struct agent *a, const char *job)
{
	char (*n)[JOBID_MAX_LEN + 1];

	if (a->par.nanswered == a->par.capanswered) {
		size_t cap = a->par.capanswered ? a->par.capanswered * 2 : 16;

		/* Out of memory: published after the next restart instead. */
		if ((n = reallocarray(a->par.answered, cap, sizeof(*n))) == NULL)
			return;
		a->par.answered = n, a->par.capanswered = cap;
	}
	snprintf(a->par.answered[a->par.nanswered++], JOBID_MAX_LEN + 1, "%s", job);
}

static void
answered_send(struct agent *a)
{
	size_t i;

	for (i = 0; i < a->par.nanswered && (a->role != ROLE_PARENT || a->par.net_pid > 0); i++)
		priv_send_answered(a, a->par.answered[i]);
	a->par.nanswered = 0;
}

/* Parent: every job frame read so far is handled, the accepted ones in the
 * flushed seen-set: the network process may forget them (inbox.h). */
static void
intake_durable(struct agent *a)
{
	if (a->par.jobs_in == a->par.jobs_durable)
		return;
	a->par.jobs_durable = a->par.jobs_in;
	/* Read from a network process already gone (chan_drain_dead()): its
	 * successor hands its inbox over again. */
	if (a->role == ROLE_PARENT && a->par.net_pid <= 0)
		return;
	priv_send_durable(a, a->par.jobs_durable);
}

/* Network process: the parent has the first n job frames safely. */
static void
net_durable(struct agent *a, uint64_t n)
{
	size_t i = 0;

	while (i < a->net.nheld && a->net.held[i].frame <= n)
		inbox_done(a->net.inbox, a->net.held[i++].seq);
	memmove(a->net.held, a->net.held + i, (a->net.nheld - i) * sizeof(*a->net.held));
	a->net.nheld -= i;
}

static void
chan_readable(struct loop *l, int fd, short revents, void *arg)
{
	struct agent *a = arg;
	struct chan *c = chan_of(a, fd);
	bool from_net = c == &a->par.to_net;
	uint8_t buf[CHAN_READ];
	const uint8_t *frame;
	struct priv_msg m;
	struct mu_err err;
	size_t flen;
	ssize_t n;
	int rc = MU_OK;

	(void)l;
	if (revents & POLLOUT)
		chan_flush(a, c);
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (from_net)
			net_lost(a, "closed its end");
		else {
			/* The parent died without a "stop": so do we, without a
			 * goodbye, and the broker says "lost" with our will. */
			log_warnx("the parent is gone: exiting");
			_exit(1);
		}
		return;
	}
	if ((rc = ipc_reader_feed(&c->in, buf, (size_t)n, &err)) != MU_OK)
		goto bad;
	while ((rc = ipc_reader_next(&c->in, &frame, &flen)) == MU_OK) {
		if ((rc = priv_msg_decode(frame, flen, &m, &err)) != MU_OK)
			goto bad;
		/* Which side may send it, and whether it is taken now:
		 * priv_rules[] (priv_send.c). */
		rc = priv_rule_check(a, &m, from_net);
		if (rc == MU_OK)
			rc = from_net ? parent_dispatch(a, &m) : net_dispatch(a, &m);
		else if (rc == MU_ENOENT)
			rc = MU_OK;	/* not for this state: dropped */
		if (rc != MU_OK)
			mu_errf(&err, rc, "a %s message in the wrong direction",
			    priv_type_name(m.type));
		wire_doc_free(&m.doc);
		if (rc != MU_OK)
			goto bad;
		if (c->fd != fd) {	/* replaced meanwhile */
			read_commit(a, from_net);
			return;
		}
	}
	read_commit(a, from_net);
	if (rc == MU_ENOENT)
		return;
	mu_errf(&err, rc, "bad frame length");
bad:
	read_commit(a, from_net);
	if (from_net) {
		log_err("malformed message from the network process: %s", err.msg);
		net_lost(a, "sent a malformed message");
	} else {
		log_err("malformed message from the parent: %s", err.msg);
		loop_stop(a->loop);
	}
}

/* ---- network -> parent --------------------------------------------------- */

void
priv_job(struct agent *a, const char *topic, const uint8_t *p, size_t len,
    uint64_t inbox_seq)
{
	struct held_job *n;

	if (strlen(topic) >= TOPIC_MAX) {
		if (inbox_seq)
			inbox_done(a->net.inbox, inbox_seq);
		return;
	}
	priv_send_job(a, topic, p, len);
	a->net.jobs_sent++;
	if (inbox_seq == 0)
		return;
	if (a->net.nheld == a->net.capheld) {
		size_t cap = a->net.capheld ? a->net.capheld * 2 : 16;

		/* Out of memory: it stays in the inbox until the next start,
		 * which hands it over again (a duplicate the parent drops). */
		if ((n = reallocarray(a->net.held, cap, sizeof(*n))) == NULL)
			return;
		a->net.held = n, a->net.capheld = cap;
	}
	a->net.held[a->net.nheld++] = (struct held_job){ a->net.jobs_sent, inbox_seq };
}

/* ---- the network process ---------------------------------------------------- */

/*
 * The network process's state (docs/operations.md, "State on the host"):
 * state_dir/net, 0700, owned by [agent] user, holding spool/, modcache/,
 * release/ and gnupg/.  The network process is started inside it
 * (net_drop()), so state_dir itself may stay root's and 0700, as
 * systemd's StateDirectoryMode makes it.  Created here as root when missing; the parent only reads in it
 * afterwards (the unit gives it CAP_DAC_READ_SEARCH, not DAC_OVERRIDE).
 */
static const char *const net_folders[] = { "spool", "modcache", "release", "gnupg" };

static int
make_dir_0700(const char *path, struct mu_err *err)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return S_ISDIR(st.st_mode) ? MU_OK :
		    mu_errf(err, MU_EIO, "%s: not a folder", path);
	if (mkdir(path, 0700) == -1)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	return MU_OK;
}

/* Hand a folder and the entries at its top to the network process's user
 * (files a root-only older version left there included). */
static int
net_chown_folder(const char *path, uid_t uid, gid_t gid, struct mu_err *err)
{
	struct dirent *de;
	DIR *d;
	int dfd;

	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	if (fchown(dfd, uid, gid) == -1) {
		close(dfd);
		return mu_errf(err, MU_EIO, "chown %s: %s", path, strerror(errno));
	}
	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	}
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && fchownat(dfd, de->d_name, uid, gid,
		    AT_SYMLINK_NOFOLLOW) == -1)
			log_warnx("chown %s/%s: %s", path, de->d_name, strerror(errno));
	closedir(d);
	return MU_OK;
}

/* Versions before 0.2 kept the network process's folders at the top of
 * state_dir: move them into net/ while it is new and still root's. */
static void
net_state_migrate(struct agent *a)
{
	char from[CONF_PATH_MAX + 32], to[CONF_PATH_MAX + 48];
	struct stat st;
	size_t i;

	for (i = 0; i < 3; i++) {	/* spool, modcache, release */
		snprintf(from, sizeof(from), "%s/%s", a->cfg.state_dir, net_folders[i]);
		snprintf(to, sizeof(to), "%s/%s", a->net_dir, net_folders[i]);
		if (lstat(from, &st) == -1 || !S_ISDIR(st.st_mode) || lstat(to, &st) == 0)
			continue;
		/* Moving a folder to another parent writes its ".." entry:
		 * without CAP_DAC_OVERRIDE only its owner may; it is handed
		 * back below. */
		if (lchown(from, 0, 0) == -1 || rename(from, to) == -1)
			log_warnx("state: moving %s to %s: %s", from, to, strerror(errno));
		else
			log_notice("state: moved %s to %s", from, to);
	}
}

int
net_state_prepare(struct agent *a, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 48];
	struct passwd *pw = NULL;
	struct stat st;
	bool fresh;
	size_t i;
	int rc;

	if ((size_t)snprintf(a->net_dir, sizeof(a->net_dir), "%s/net", a->cfg.state_dir) >=
	    sizeof(a->net_dir))
		return mu_errf(err, MU_EINVAL, "state_dir %s: too long", a->cfg.state_dir);
	if (geteuid() == 0 && ((pw = getpwnam(a->cfg.user)) == NULL || pw->pw_uid == 0))
		return mu_errf(err, MU_EINVAL, "[agent] user %s: %s", a->cfg.user,
		    pw ? "is root; the network process never runs as root" :
		    "no such user (create it: adduser --system muster)");
	if ((rc = make_dir_0700(a->cfg.state_dir, err)) != MU_OK)
		return rc;
	fresh = lstat(a->net_dir, &st) == -1;
	if ((rc = make_dir_0700(a->net_dir, err)) != MU_OK)
		return rc;
	if (fresh)
		net_state_migrate(a);
	for (i = 0; i < sizeof(net_folders) / sizeof(net_folders[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", a->net_dir, net_folders[i]);
		if (fresh && (rc = make_dir_0700(path, err)) != MU_OK)
			return rc;
		if (pw && lstat(path, &st) == 0 &&
		    (rc = net_chown_folder(path, pw->pw_uid, pw->pw_gid, err)) != MU_OK)
			return rc;
	}
	if (pw && (rc = net_chown_folder(a->net_dir, pw->pw_uid, pw->pw_gid, err)) != MU_OK)
		return rc;
	return MU_OK;
}

/*
 * The publishers' keyring, copied for the network process, which gpg must
 * be able to lock and write: read here as root (regular files at the top
 * of gnupg_home, bounded), written into its own gnupg/ once it is
 * [agent] user, so the parent never writes into the network process's
 * folders.
 */
#define KEYRING_FILES_MAX	32
#define KEYRING_FILE_MAX	(16u << 20)

struct keyring_copy {
	char name[KEYRING_FILES_MAX][NAME_MAX + 1];
	uint8_t *buf[KEYRING_FILES_MAX];	/* owned */
	size_t len[KEYRING_FILES_MAX];
	int n;
};

static void
keyring_copy_read(const char *home, struct keyring_copy *k)
{
	char from[CONF_PATH_MAX + NAME_MAX + 2];
	struct dirent *de;
	struct stat st;
	DIR *d;

	memset(k, 0, sizeof(*k));
	if ((d = opendir(home)) == NULL)
		return;		/* no publishers: nothing to verify with */
	while ((de = readdir(d)) != NULL && k->n < KEYRING_FILES_MAX) {
		snprintf(from, sizeof(from), "%s/%s", home, de->d_name);
		if (de->d_name[0] == '.' || strncmp(de->d_name, "S.", 2) == 0 ||
		    lstat(from, &st) == -1 || !S_ISREG(st.st_mode) ||
		    read_file(from, KEYRING_FILE_MAX, &k->buf[k->n], &k->len[k->n], NULL) != MU_OK)
			continue;
		snprintf(k->name[k->n++], NAME_MAX + 1, "%s", de->d_name);
	}
	closedir(d);
}

static void
keyring_copy_write(struct keyring_copy *k, const char *dir)
{
	char to[CONF_PATH_MAX + NAME_MAX + 2];
	struct stat st;
	int i, fd;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		log_warnx("%s: %s", dir, strerror(errno));
	for (i = 0; i < k->n; i++) {
		snprintf(to, sizeof(to), "%s/%s", dir, k->name[i]);
		/* O_NONBLOCK and the fstat(): a FIFO left in the folder must
		 * not block us before we are ready, nor take the keys. */
		fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
		    0600);
		if (fd != -1 && (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
		    fcntl(fd, F_SETFL, 0) == -1)) {
			close(fd);
			fd = -1;
			errno = EINVAL;
		}
		if (fd == -1 || write_full(fd, k->buf[i], k->len[i]) != MU_OK)
			log_warnx("%s: %s", to, strerror(errno));
		if (fd != -1)
			close(fd);
		free(k->buf[i]);
		k->buf[i] = NULL;
	}
}

/*
 * The TLS files, handed over in sealed memfds that the network process
 * reads through /proc/self/fd (Paho and OpenSSL take paths, and re-read
 * them on every connect): the host key stays readable by root only, and
 * none of the three need be reachable by [agent] user.
 */
#define NET_TLS_FILES	3	/* ca, cert, key */

static int
net_tls_memfd(const char *path, int *out, struct mu_err *err)
{
	uint8_t *buf;
	size_t len;
	int fd;

	if (read_file(path, 1u << 20, &buf, &len, NULL) != MU_OK)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	fd = memfd_create("muster-tls", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	if (fd == -1 || write_full(fd, buf, len) != MU_OK ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)) {
		explicit_bzero(buf, len);
		free(buf);
		if (fd != -1)
			close(fd);
		return mu_errf(err, MU_EIO, "memfd for %s: %s", path, strerror(errno));
	}
	explicit_bzero(buf, len);
	free(buf);
	*out = fd;
	return MU_OK;
}

static int
net_tls_memfds(struct agent *a, int fds[NET_TLS_FILES], struct mu_err *err)
{
	const char *paths[NET_TLS_FILES] = {
		a->cfg.broker.ca, a->cfg.broker.cert, a->cfg.broker.key,
	};
	int i, rc = MU_OK;

	for (i = 0; i < NET_TLS_FILES; i++)
		fds[i] = -1;
	for (i = 0; i < NET_TLS_FILES && rc == MU_OK; i++)
		if (paths[i][0])
			rc = net_tls_memfd(paths[i], &fds[i], err);
	return rc;
}

static void
net_tls_close(int fds[NET_TLS_FILES])
{
	int i;

	for (i = 0; i < NET_TLS_FILES; i++)
		if (fds[i] != -1)
			close(fds[i]);
}

/*
 * The network process: a fresh musterd, exec'ed with --net (so it keeps
 * nothing of the parent's memory), reading the configuration as root and
 * then becoming [agent] user.  After this it reaches state_dir only
 * through its working folder (the path above may not be open to it).
 */
static int
net_drop(struct agent *a, const int tls[NET_TLS_FILES], struct mu_err *err)
{
	char *paths[NET_TLS_FILES] = {
		a->cfg.broker.ca, a->cfg.broker.cert, a->cfg.broker.key,
	};
	struct keyring_copy keys;
	struct passwd *pw;
	int i;

	if ((pw = getpwnam(a->cfg.user)) == NULL || pw->pw_uid == 0)
		return mu_errf(err, MU_EINVAL, "[agent] user %s: no such user, or root",
		    a->cfg.user);
	/* Paths resolve from the working folder without searching the
	 * folders above it: state_dir may stay closed to [agent] user. */
	if (chdir(a->net_dir) == -1)
		return mu_errf(err, MU_EIO, "chdir %s: %s", a->net_dir, strerror(errno));
	snprintf(a->cfg.state_dir, sizeof(a->cfg.state_dir), ".");
	snprintf(a->net_dir, sizeof(a->net_dir), ".");
	keyring_copy_read(a->cfg.gnupg_home, &keys);
	/* gpg makes its home absolute and walks it from "/": through our
	 * working folder. */
	snprintf(a->cfg.gnupg_home, sizeof(a->cfg.gnupg_home), "/proc/self/cwd/gnupg");
	for (i = 0; i < NET_TLS_FILES; i++)
		if (tls[i] >= 0)
			snprintf(paths[i], CONF_PATH_MAX, "/proc/self/fd/%d", tls[i]);
	if (setgroups(0, NULL) == -1 || setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1) {
		for (i = 0; i < keys.n; i++)
			free(keys.buf[i]);
		return mu_errf(err, MU_EIO, "dropping privileges: %s", strerror(errno));
	}
	keyring_copy_write(&keys, "gnupg");
	if (setuid(0) != -1)
		return mu_errf(err, MU_EIO, "root came back after setuid");
	test_stop_at("net-dropped");	/* no death signal armed */
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	/* setuid() cleared the death signal net_exec() armed: arm it again,
	 * then check that the parent did not die in between (no signal
	 * would come for that). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);	/* no goodbye: the will says "lost" */
	if (getppid() != a->net.net_parent)
		return mu_errf(err, MU_EIO, "the parent died while we started");
	return MU_OK;
}

/* Test hook: SIGUSR2 makes the network process send one malformed frame,
 * so tests can see the parent replace it (design.md §8). */
void
priv_test_garbage(struct agent *a)
{
	static const uint8_t junk[] = { 0, 0, 0, 3, 0xc1, 0xc1, 0xc1 };

	if (a->role == ROLE_NET &&
	    send(a->net.to_parent.fd, junk, sizeof(junk), MSG_NOSIGNAL) == -1)
		log_warnx("test hook: %s", strerror(errno));
}

/* Its set-up's outcome, written at once (a failed one exits next): the
 * parent tells systemd it is ready, or why it is not (priv_net_ready()). */
static void
net_tell_parent(struct agent *a, bool ok, const char *reason)
{
	struct chan *c = &a->net.to_parent;
	ssize_t n;

	priv_send_setup(a, ok, reason);
	while (c->fd != -1 && c->out_off < c->out_len) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };

		if (poll(&pfd, 1, 1000) <= 0 ||
		    (n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL)) <= 0)
			break;
		c->out_off += (size_t)n;
	}
}

/* In the network process (main.c --net): become it, then run. */
int
net_main(struct agent *a, const char *fds)
{
	int chanfd, tls[NET_TLS_FILES];
	struct mu_err err;
	int rc;

	a->role = ROLE_NET;
	a->par.to_net.fd = -1;
	/* Alive: net_exec() armed the death signal before the exec. */
	a->net.net_parent = getppid();
	prctl(PR_SET_NAME, "musterd");	/* not "exe", for ps and pkill */
	if (sscanf(fds, "%d,%d,%d,%d", &chanfd, &tls[0], &tls[1], &tls[2]) != 4) {
		log_err("network process: bad --net %s", fds);
		return 2;
	}
	chan_init(a, &a->net.to_parent, chanfd);
	if ((rc = net_drop(a, tls, &err)) == MU_OK)
		rc = net_start(a, &err);
	/* Set up: from here on it needs none of what its filter denies
	 * (net/netfilter.c); Paho's threads get it too. */
	if (rc == MU_OK && (rc = net_filter_install(&err)) == MU_OK)
		log_info("network process %d: seccomp filter active (denylist: other "
		    "processes, namespaces, kernel loading, setuid family, TIOCSTI, "
		    "mknod, symlink)", (int)getpid());
	if (rc != MU_OK) {
		log_err("network process: %s", err.msg);
		net_tell_parent(a, false, err.msg);
		return 1;
	}
	net_tell_parent(a, true, NULL);
	log_info("network process %d: user %s, no capabilities", (int)getpid(),
	    a->cfg.user);
	if (loop_run(a->loop) != 0)
		log_err("event loop failed: %s", strerror(errno));
	net_stop(a);
	chan_close(a, &a->net.to_parent);
	return a->selftest ? a->selftest_rc : 0;
}

/*
 * Async-signal-safe (update.c and net_exec() call it between fork and
 * exec): the nonce is at most WIRE_MAX_NONCE bytes, well under PIPE_BUF,
 * so one write() puts it all in the pipe, and the reader sees EOF after.
 */
int
nonce_pipe(const char *nonce)
{
	size_t len = strlen(nonce);
	int p[2];

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if (write(p[1], nonce, len) != (ssize_t)len) {
		close(p[0]), close(p[1]);
		return -1;
	}
	close(p[1]);
	return p[0];
}

static void __attribute__((noreturn))
net_exec(struct agent *a, pid_t parent, int chanfd, const int tls[NET_TLS_FILES])
{
	char fds[64], noncefd[16];
	int i, nfd = -1;
	char *argv[] = { "musterd", "--net", fds, "-c", a->conf_path, "--foreground",
	    NULL, NULL, NULL, NULL };

	/* A self-test's network process is one too, with the same nonce: in
	 * a pipe, not in argv, where /proc shows it to every user. */
	if (a->selftest) {
		argv[6] = "--self-test";
		if (a->selftest_nonce[0]) {
			if ((nfd = nonce_pipe(a->selftest_nonce)) == -1)
				_exit(1);
			snprintf(noncefd, sizeof(noncefd), "%d", nfd);
			argv[7] = "--nonce-fd", argv[8] = noncefd;
		}
	}

	/* Its own session: no controlling terminal to type into (TIOCSTI)
	 * if the parent runs on one (issue 22). */
	setsid();
	/*
	 * A network process must never outlive its parent: a second one
	 * with our client id would take the broker session from the next
	 * agent's, and that one's back, for ever.  The death signal survives
	 * the exec; a parent that died before it was armed is seen here.
	 */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	/* Nothing of ours but these two and stdio crosses the exec. */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	fcntl(chanfd, F_SETFD, 0);
	if (nfd != -1)
		fcntl(nfd, F_SETFD, 0);
	for (i = 0; i < NET_TLS_FILES; i++)
		if (tls[i] >= 0)
			fcntl(tls[i], F_SETFD, 0);
	snprintf(fds, sizeof(fds), "%d,%d,%d,%d", chanfd, tls[0], tls[1], tls[2]);
#ifdef MUSTER_TEST_HOOKS
	/* Test builds only (cmake -DMUSTER_TEST_HOOKS, never in a package):
	 * a scripted network process in place of ours, with the same
	 * channel and arguments, so tests can lie to the parent the way
	 * code running in the network process could (issue 22,
	 * tests/system/hostile_net.py). */
	{
		const char *fake = getenv("MUSTER_TEST_NET_EXEC");

		if (fake && fake[0]) {
			execv(fake, argv);
			_exit(127);
		}
	}
#endif
	/* Our own binary, even if a package upgrade replaced the file. */
	execv("/proc/self/exe", argv);
	_exit(127);
}

/*
 * A new network process holds what it finds in its spool until we speak
 * (session.c result_stage()): the results we still hold we have just
 * handed it again; the others we have marked done (or mark now, for the
 * journal of a parent that restarted), and they may go out.
 */
static void
spooled_release(struct agent *a)
{
	const struct spooled *s;
	struct mu_err err;

	spool_close(&a->spool);
	if (spool_read(&a->spool, a->net_dir, a->cfg.state_dir, &err) != MU_OK) {
		log_err("%s", err.msg);
		return;
	}
	for (s = a->spool.head; s; s = s->next) {
		if (results_pending(a, s->job))
			continue;
		if (seen_run_done(&a->par.seen, s->job, &err) != MU_OK) {
			log_err("job %s: %s", s->job, err.msg);
			continue;	/* published after a restart instead */
		}
		answered_add(a, s->job);
	}
	if (seen_sync(&a->par.seen, &err) != MU_OK) {
		log_err("seen-set: %s", err.msg);
		a->par.nanswered = 0;
		return;
	}
	answered_send(a);
}

static int
net_spawn(struct agent *a, struct mu_err *err)
{
	int sv[2], tls[NET_TLS_FILES], rc;
	pid_t pid, self = getpid();

	if ((rc = net_tls_memfds(a, tls, err)) != MU_OK) {
		net_tls_close(tls);
		return rc;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		net_tls_close(tls);
		return mu_errf(err, MU_EIO, "socketpair: %s", strerror(errno));
	}
	/* The parent has no other thread (no MQTT client): fork is safe. */
	if ((pid = fork()) == -1) {
		net_tls_close(tls);
		close(sv[0]), close(sv[1]);
		return mu_errf(err, MU_EIO, "fork: %s", strerror(errno));
	}
	if (pid == 0)
		net_exec(a, self, sv[1], tls);
	net_tls_close(tls);
	close(sv[1]);
	a->par.net_pid = pid;
	a->par.net_spawned_ms = now_mono_ms();
	a->par.jobs_in = a->par.jobs_durable = 0;	/* counted per channel */
	chan_init(a, &a->par.to_net, sv[0]);
	log_notice("network process %d started (user %s)", (int)pid, a->cfg.user);
	results_resend(a);
	spooled_release(a);
	run_net_restarted(a);
	update_net_started(a);
	return MU_OK;
}

static void
net_restart_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;
	struct mu_err err;

	(void)l, (void)id;
	a->par.net_restart_timer = 0;
	if (a->stopping || a->par.net_pid > 0)
		return;
	if (net_spawn(a, &err) != MU_OK) {
		log_err("%s", err.msg);
		a->par.net_restart_timer = loop_add_timer(a->loop, NET_RESTART_MS,
		    net_restart_fired, a);
	}
}

/* Kill it (if it still runs), forget its channel, start a fresh one. */
static void
net_lost(struct agent *a, const char *why)
{
	if (a->role == ROLE_BOTH) {
		log_err("channel %s: stopping", why);
		loop_stop(a->loop);
		return;
	}
	if (a->selftest) {
		/* Its exit status is the verdict: let it exit by itself (the
		 * self-test's deadline bounds the wait). */
		chan_close(a, &a->par.to_net);
		return;
	}
	log_warnx("network process %d %s: replacing it", (int)a->par.net_pid, why);
	if (a->par.net_pid > 0)
		kill(a->par.net_pid, SIGKILL);
	chan_close(a, &a->par.to_net);
}

static void
net_replace_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)l, (void)id;
	a->par.net_replace_timer = 0;
	/* Not a successor started meanwhile. */
	if (a->par.net_pid == a->par.net_replace_pid && a->par.to_net.fd != -1)
		net_lost(a, a->par.net_replace_why);
}

/*
 * Replace the network process from the loop, not here: the caller may be
 * a send made while a frame of that process's channel is being handled
 * (intake, a result), whose bytes net_lost() would free under it.  Until
 * then, sends over the bound are dropped (priv_chan_send()).
 */
void
priv_net_replace(struct agent *a, const char *why)
{
	if (a->role != ROLE_PARENT || a->par.to_net.fd == -1 || a->par.net_replace_timer)
		return;
	a->par.net_replace_pid = a->par.net_pid;
	a->par.net_replace_why = why;
	a->par.net_replace_timer = loop_add_timer(a->loop, 0, net_replace_fired, a);
}

void
agent_ready(struct agent *a)
{
	if (a->role == ROLE_NET)
		return;
	if (!a->par.ready_sent)
		sd_notifyf(0, "READY=1\nSTATUS=running as host %s; connecting to the broker",
		    a->cfg.host);
	else
		agent_status(a, "running as host %s; connecting to the broker", a->cfg.host);
	a->par.ready_sent = true;
}

void
agent_status(struct agent *a, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (a->role == ROLE_NET)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", buf);
}

/* What an ended network process wrote before it ended is read first: the
 * reason of a failed set-up, or jobs it forwarded (the seen-set keeps
 * those from running twice).  Bounded: 64 reads. */
static void
chan_drain_dead(struct agent *a)
{
	uint8_t b;
	int i;

	for (i = 0; i < 64 && a->par.to_net.fd != -1 &&
	    recv(a->par.to_net.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1; i++)
		chan_readable(a->loop, a->par.to_net.fd, POLLIN, a);
}

/*
 * Readiness (docs/operations.md, "Readiness and the watchdog"): systemd
 * hears READY=1 once the first network process has finished its set-up,
 * not before.  Network processes that exit before finishing theirs count
 * as failures in a row; the reason each gave is in STATUS= and the log.
 * After NET_FAILS_MAX of them the watchdog is no longer fed, so systemd
 * marks the unit failed and restarts it (without a watchdog, the agent
 * exits with 1); a later network process that does finish feeds it
 * again.
 */
void
priv_net_ready(struct agent *a)
{
	struct mu_err err;

	if (a->par.net_fails >= NET_FAILS_MAX)
		log_notice("network process ready after %u failures; the watchdog is fed "
		    "again", a->par.net_fails);
	a->par.net_ready = true;
	a->par.net_fails = 0;
	a->par.net_why[0] = '\0';
	a->par.watchdog_starved = false;
	agent_ready(a);
	/* A new network process knows no facts. */
	if (facts_send(a, &err) != MU_OK)
		log_err("facts: %s", err.msg);
}

/* A network process ended: the wait before the next one (ms). */
static int
net_failed(struct agent *a)
{
	const char *why = a->par.net_why[0] ? a->par.net_why : "no reason given";

	if (a->par.net_ready) {
		a->par.net_ready = false;
		agent_status(a, "network process ended; starting a new one");
		return NET_RESTART_MS;
	}
	a->par.net_fails++;
	log_err("network process failed %u times in a row: %s (working in %s)",
	    a->par.net_fails, why, a->net_dir);
	if (a->par.net_fails < NET_FAILS_MAX) {
		agent_status(a, "network process failed %u times in a row: %s",
		    a->par.net_fails, why);
		return NET_RESTART_MS;
	}
	if (!a->par.watchdog_starved) {
		a->par.watchdog_starved = true;
		if (a->par.watchdog.usec == 0) {
			log_err("giving up: the network process failed %u times in a row",
			    a->par.net_fails);
			a->exit_rc = 1;
			loop_stop(a->loop);
		} else
			log_err("the watchdog is no longer fed: systemd will restart musterd");
	}
	agent_status(a, "network process failed %u times in a row: %s; watchdog no "
	    "longer fed", a->par.net_fails, why);
	return NET_RESTART_SLOW_MS;
}

/* The parent reaped the network process (reap.c). */
void
priv_net_exited(struct agent *a, int status)
{
	int delay;

	a->par.net_pid = 0;
	chan_drain_dead(a);
	if (a->par.to_net.fd != -1)
		chan_close(a, &a->par.to_net);
	if (a->stopping)
		return;
	if (a->selftest) {
		/* Its exit status is the self-test's verdict (selftest.c). */
		a->selftest_rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
		log_notice("self-test: the network process ended with %d", a->selftest_rc);
		loop_stop(a->loop);
		return;
	}
	a->par.net_restarts++;
	delay = net_failed(a);
	if (WIFSIGNALED(status))
		log_warnx("network process killed by signal %d; a new one in %d ms",
		    WTERMSIG(status), delay);
	else
		log_warnx("network process exited with %d; a new one in %d ms",
		    WEXITSTATUS(status), delay);
	if (!a->par.net_restart_timer)
		a->par.net_restart_timer = loop_add_timer(a->loop, (uint64_t)delay,
		    net_restart_fired, a);
}

/* ---- start and stop ------------------------------------------------------ */

int
priv_start(struct agent *a, struct mu_err *err)
{
	struct passwd *pw;
	int sv[2], rc;

	a->par.to_net.fd = a->net.to_parent.fd = -1;
	if (geteuid() != 0) {
		/* One process, both ends of one socketpair. */
		a->role = ROLE_BOTH;
		log_notice("not running as root: one process (no privilege separation)");
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
			return mu_errf(err, MU_EIO, "socketpair: %s", strerror(errno));
		chan_init(a, &a->par.to_net, sv[0]);
		chan_init(a, &a->net.to_parent, sv[1]);
		if ((rc = sign_open(a, err)) != MU_OK)
			return rc;
		return net_start(a, err);
	}
	if ((pw = getpwnam(a->cfg.user)) == NULL || pw->pw_uid == 0)
		return mu_errf(err, MU_EINVAL, "[agent] user %s: %s", a->cfg.user,
		    pw ? "is root; the network process never runs as root" :
		    "no such user (create it: adduser --system muster)");
	a->par.net_uid = pw->pw_uid;
	a->par.net_gid = pw->pw_gid;
	a->role = ROLE_PARENT;
	/* Before the network process exists: it never sees the key. */
	if ((rc = sign_open(a, err)) != MU_OK)
		return rc;
	return net_spawn(a, err);
}

/* Parent: hand the network process everything still to send, close our
 * end (it stops on EOF after its goodbye), and wait for it a little. */
void
priv_stop(struct agent *a)
{
	uint64_t deadline = now_mono_ms() + NET_STOP_WAIT_MS;
	struct pollfd pfd;
	int status;

	if (a->role != ROLE_PARENT || a->par.net_pid <= 0) {
		if (a->role == ROLE_BOTH) {
			chan_close(a, &a->par.to_net);
			chan_close(a, &a->net.to_parent);
		}
		return;
	}
	if (a->par.to_net.fd != -1) {
		priv_send_stop(a);
		fcntl(a->par.to_net.fd, F_SETFL, 0);	/* blocking: all of it */
		while (a->par.to_net.out_off < a->par.to_net.out_len) {
			ssize_t n = send(a->par.to_net.fd, a->par.to_net.out + a->par.to_net.out_off,
			    a->par.to_net.out_len - a->par.to_net.out_off, MSG_NOSIGNAL);

			if (n <= 0)
				break;
			a->par.to_net.out_off += (size_t)n;
		}
		shutdown(a->par.to_net.fd, SHUT_WR);
		pfd = (struct pollfd){ .fd = a->par.to_net.fd, .events = POLLIN };
		while (now_mono_ms() < deadline && waitpid(a->par.net_pid, &status, WNOHANG) == 0) {
			char junk[4096];

			/* Its last "spooled" acknowledgements, then EOF. */
			if (poll(&pfd, 1, 20) > 0 && read(a->par.to_net.fd, junk, sizeof(junk)) == 0)
				break;
		}
	}
	if (waitpid(a->par.net_pid, &status, WNOHANG) == 0) {
		deadline = now_mono_ms() + NET_STOP_WAIT_MS;
		while (now_mono_ms() < deadline && waitpid(a->par.net_pid, &status, WNOHANG) == 0)
			usleep(10000);
		if (kill(a->par.net_pid, 0) == 0) {
			kill(a->par.net_pid, SIGKILL);
			waitpid(a->par.net_pid, &status, 0);
		}
	}
	a->par.net_pid = 0;
	chan_close(a, &a->par.to_net);
}

void
priv_free(struct agent *a)
{
	results_free(a);
	sign_close(a);
	free(a->net.staged);
	a->net.staged = NULL;
	free(a->par.answered);
	a->par.answered = NULL;
	a->par.nanswered = a->par.capanswered = 0;
	a->net.nstaged = a->net.capstaged = 0;
	if (a->par.net_restart_timer)
		loop_del_timer(a->loop, a->par.net_restart_timer);
	a->par.net_restart_timer = 0;
	if (a->par.net_replace_timer)
		loop_del_timer(a->loop, a->par.net_replace_timer);
	a->par.net_replace_timer = 0;
}


/* One process (ROLE_BOTH) at shutdown: the loop is stopped, so move what
 * the two halves still have for each other by hand. */
void
priv_drain(struct agent *a)
{
	int i;

	for (i = 0; i < 64 && a->par.to_net.fd != -1 && a->net.to_parent.fd != -1; i++) {
		chan_readable(a->loop, a->net.to_parent.fd, POLLIN | POLLOUT, a);
		chan_readable(a->loop, a->par.to_net.fd, POLLIN | POLLOUT, a);
		if (a->par.to_net.out_len == 0 && a->net.to_parent.out_len == 0 && i > 2)
			break;
	}
}
