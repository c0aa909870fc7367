/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sign.c - every message this host publishes is signed here, by the
 * parent, with the host signing key (design.md §3, §8).
 *
 * The network process holds the TLS key, because Paho needs it; it never
 * holds the signing key, whose certificate the broker refuses for TLS and
 * the verifiers require.  So code running in the network process can drop
 * or delay what the parent signed, as the broker can, but cannot make an
 * operator see an answer, a presence or a fact this host did not give.
 *
 * The parent signs only bodies it builds itself: results and events of its
 * own jobs, its facts, its presence, its self-test request.  There is no
 * frame that asks it to sign bytes.  The one thing the network process
 * contributes is its own release check's state in the status "update"
 * map (PRIV_RELEASE_STATE, taken by update.c), bounded and escaped there.
 *
 * Results are numbered here ("seq", design.md §3), from a counter in
 * state_dir/result-seq that only the parent writes, written and synced
 * before the number is used: a number is never given twice, across
 * crashes too, so a gap means a lost result and nothing else.
 *
 * Ownership: a->par.signer and a->par.seq_fd belong to this file
 * (sign_open() / sign_close()).  Envelopes go into msgpack_sbuffers the
 * caller owns.
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

#define SEQ_FILE	"result-seq"

/*
 * The key must be the parent's alone: not readable by group or others
 * (the network process's user is one of them) and, split, not owned by
 * that user.  ssh refuses a private key so exposed; so do we.
 */
int
sign_key_private(const char *path, bool split, uid_t net_uid, const char *net_user,
    struct mu_err *err)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) == -1)
		return mu_errf(err, MU_EIO, "[agent] sign_key %s: %s (scripts/gen-pki DIR "
		    "--host NAME makes hosts/NAME.sign.key; docs/operations.md)", path,
		    strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mu_errf(err, MU_EINVAL, "[agent] sign_key %s: not a regular file", path);
	}
	close(fd);
	if (st.st_mode & 077)
		return mu_errf(err, MU_EINVAL, "[agent] sign_key %s: mode %03o lets others "
		    "read the host signing key; chmod 600 it", path,
		    (unsigned)(st.st_mode & 0777));
	if (split && st.st_uid == net_uid)
		return mu_errf(err, MU_EINVAL, "[agent] sign_key %s: owned by %s, the network "
		    "process's user; chown root it", path, net_user);
	return MU_OK;
}

static int
seq_open(struct agent *a, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 16];
	uint8_t buf[32];
	ssize_t n;
	uint64_t v = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/" SEQ_FILE, a->cfg.state_dir) >=
	    sizeof(path))
		return mu_errf(err, MU_EINVAL, "state_dir too long");
	a->par.seq_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (a->par.seq_fd == -1)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	n = pread(a->par.seq_fd, buf, sizeof(buf) - 1, 0);
	if (n > 0) {
		buf[n] = '\0';
		if (sscanf((char *)buf, "%" SCNu64, &v) != 1)
			v = 0;
	}
	/* v is the last number given out; a file lost or damaged restarts at
	 * 1, which watchers read as a restart (ctl/hosts.c). */
	a->par.next_seq = v + 1;
	return MU_OK;
}

int
sign_open(struct agent *a, struct mu_err *err)
{
	char cn[256];
	int rc;

	if (a->cfg.sign_key[0] == '\0' || a->cfg.sign_cert[0] == '\0')
		return mu_errf(err, MU_EINVAL, "no host signing pair: set [agent] sign_key and "
		    "sign_cert, or [broker] key and cert next to which they are found "
		    "(agent.conf(5))");
	if ((rc = sign_key_private(a->cfg.sign_key, a->role == ROLE_PARENT, a->par.net_uid,
	    a->cfg.user, err)) != MU_OK)
		return rc;
	if ((rc = hostsig_cert_file_cn(a->cfg.sign_cert, cn, sizeof(cn), err)) != MU_OK)
		return rc;
	if (strcmp(cn, a->cfg.host) != 0)
		return mu_errf(err, MU_EINVAL, "[agent] sign_cert %s is for '%s', not this "
		    "host '%s'", a->cfg.sign_cert, cn, a->cfg.host);
	if ((rc = hostsig_signer_load(a->cfg.sign_key, a->cfg.sign_cert, &a->par.signer,
	    err)) != MU_OK)
		return rc;
	return seq_open(a, err);
}

void
sign_close(struct agent *a)
{
	hostsig_signer_free(a->par.signer);
	a->par.signer = NULL;
	if (a->par.seq_fd != -1)
		close(a->par.seq_fd);
	a->par.seq_fd = -1;
}

/* The next result number, on disk before it is used. */
static int
seq_take(struct agent *a, uint64_t *out, struct mu_err *err)
{
	char buf[32];
	int n;

	n = snprintf(buf, sizeof(buf), "%-20" PRIu64 "\n", a->par.next_seq);
	if (pwrite(a->par.seq_fd, buf, (size_t)n, 0) != n || fdatasync(a->par.seq_fd) == -1)
		return mu_errf(err, MU_EIO, "state_dir/" SEQ_FILE ": %s", strerror(errno));
	*out = a->par.next_seq++;
	return MU_OK;
}

int
sign_body(struct agent *a, const void *body, size_t len, msgpack_sbuffer *out,
    struct mu_err *err)
{
	return hostsig_wrap(a->par.signer, body, len, out, err);
}

int
sign_result(struct agent *a, const void *body, size_t len, msgpack_sbuffer *out,
    struct mu_err *err)
{
	msgpack_sbuffer numbered;
	uint64_t seq = 0;
	int rc;

	if ((rc = seq_take(a, &seq, err)) != MU_OK)
		return rc;
	msgpack_sbuffer_init(&numbered);
	if ((rc = result_with_seq(body, len, seq, &numbered, err)) == MU_OK)
		rc = hostsig_wrap(a->par.signer, numbered.data, numbered.size, out, err);
	msgpack_sbuffer_destroy(&numbered);
	return rc;
}

/* This host's status now: online, or offline with a reason. */
static int
status_sign(struct agent *a, bool online, const char *reason, msgpack_sbuffer *out)
{
	msgpack_sbuffer sb;
	msgpack_unpacked up;
	struct status s;
	int i, rc;

	memset(&s, 0, sizeof(s));
	snprintf(s.host, sizeof(s.host), "%s", a->cfg.host);
	s.online = online;
	if (reason)
		s.reason = (struct wire_str){ reason, strlen(reason) };
	snprintf(s.version, sizeof(s.version), "%s", AGENT_VERSION);
	snprintf(s.channel, sizeof(s.channel), "%s", a->cfg.channel);
	for (i = 0; i < a->cfg.ngroups && i < WIRE_MAX_GROUPS; i++)
		snprintf(s.groups[i], sizeof(s.groups[i]), "%s", a->cfg.groups[i]);
	s.ngroups = (size_t)i;
	s.started_at = a->started_at;
	s.at = now_wall_ms();
	s.cert_der = hostsig_signer_cert(a->par.signer);
	msgpack_unpacked_init(&up);
	if (a->par.upd.state && msgpack_unpack_next(&up, (const char *)a->par.upd.state,
	    a->par.upd.state_len, NULL) == MSGPACK_UNPACK_SUCCESS &&
	    up.data.type == MSGPACK_OBJECT_MAP)
		s.update = &up.data;
	msgpack_sbuffer_init(&sb);
	rc = status_encode(&s, &sb, NULL);
	msgpack_unpacked_destroy(&up);
	if (!rc)
		rc = hostsig_wrap(a->par.signer, sb.data, sb.size, out, NULL);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

void
sign_status(struct agent *a, enum priv_status which)
{
	static const char *const reasons[] = {
		[PRIV_STATUS_ONLINE] = NULL,
		[PRIV_STATUS_WILL] = "lost",
		[PRIV_STATUS_GOODBYE] = "shutdown",
	};
	msgpack_sbuffer sb;

	if (a->par.signer == NULL || which >= PRIV_NSTATUS)
		return;		/* not started: nothing to say */
	msgpack_sbuffer_init(&sb);
	if (status_sign(a, which == PRIV_STATUS_ONLINE, reasons[which], &sb) == MU_OK)
		priv_send_status(a, which, sb.data, sb.size);
	else
		log_err("status: cannot sign it");
	msgpack_sbuffer_destroy(&sb);
}

/*
 * The network process publishes presence only as signed here: the will
 * (offline, "lost"), kept by the broker, and the goodbye (offline,
 * "shutdown") at its start and after every change; the online status
 * each time it says it connected, and at a poke, so "at" is that
 * moment's; the goodbye again as it is told to stop (agent_shutdown()).
 * Verifiers keep the newest "at" of a host.
 */
void
sign_status_send(struct agent *a, bool online_too)
{
	sign_status(a, PRIV_STATUS_WILL);
	sign_status(a, PRIV_STATUS_GOODBYE);
	if (online_too)
		sign_status(a, PRIV_STATUS_ONLINE);
}

/* A self-test's request for its test job (design.md §5), signed once: the
 * network process sends these same bytes again until a verdict comes. */
int
sign_selftest_request(struct agent *a)
{
	struct selftest_request q;
	msgpack_sbuffer body, env;
	struct mu_err err;
	int rc;

	memset(&q, 0, sizeof(q));
	snprintf(q.host, sizeof(q.host), "%s", a->cfg.host);
	snprintf(q.nonce, sizeof(q.nonce), "%s", a->selftest_nonce);
	snprintf(q.version, sizeof(q.version), "%s", AGENT_VERSION);
	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(&env);
	rc = selftest_request_encode(&q, &body, &err);
	if (!rc)
		rc = hostsig_wrap(a->par.signer, body.data, body.size, &env, &err);
	if (!rc)
		rc = priv_send_selftest(a, env.data, env.size);
	else
		log_err("self-test: request not signed: %s", err.msg);
	msgpack_sbuffer_destroy(&body);
	msgpack_sbuffer_destroy(&env);
	return rc;
}
