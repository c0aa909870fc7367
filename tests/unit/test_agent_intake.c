/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for musterd's acceptance rules (agent/parent/intake.c,
 * design.md §3, §8) without a broker: a real struct agent with a loop, a
 * keyring holding an Ed25519 key made here (OpenSSL, through
 * sign_keygen()), a temporary state_dir (seen-set, spool) and a policy.
 * Envelopes go in through intake_message(); what the agent answered comes
 * out of the parent's end of the privsep socketpair (result_submit() in
 * agent/parent/results.c sends a PRIV_RESULT frame on a->par.to_net), read
 * from the other end and decoded with priv_msg_decode(); its payload is
 * an agent envelope the parent signed with the host signing key (a CA
 * and a signing certificate made here with the openssl command), checked
 * with lib/hostsig.c's verifier, then result_decode()d.
 *
 * Ownership: each test's struct fx (setup/teardown) owns the agent's
 * parts, both socket ends and the temporary folder.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent.h"
#include "hostsig.h"
#include "names.h"

#define HOST	"web1"
#define TOPIC_HOST	"muster/v1/hosts/" HOST "/jobs"

/* Alice may ping anywhere; nothing else is allowed to anyone. */
static const char policy_text[] = "allow alice ping all,host/*\n";

struct fx {
	struct agent a;
	char dir[64];
	struct sign_key *alice, *mallory;	/* mallory's key is not trusted */
	int peer;				/* the network process's end */
	struct hostsig_verifier *hv;		/* trusts the CA made here */
	uint64_t last_seq;			/* of the last answer read */
};

/* A CA and web1's signing certificate (extendedKeyUsage HOSTSIG_EKU_OID,
 * as scripts/gen-pki makes hosts/NAME.sign.crt), in the folder given. */
static const char pki_script[] =
    "set -e; cd '%s'; exec 2>/dev/null\n"
    "printf '[x]\\nbasicConstraints=critical,CA:FALSE\\nkeyUsage=critical,"
    "digitalSignature\\nextendedKeyUsage=" HOSTSIG_EKU_OID "\\n' > sign.cnf\n"
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key\n"
    "openssl req -new -x509 -key ca.key -subj '/CN=test CA' -days 30 "
    "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
    "-out ca.crt\n"
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " HOST ".sign.key\n"
    "chmod 600 " HOST ".sign.key\n"
    "openssl req -new -key " HOST ".sign.key -subj /CN=" HOST " -out sign.csr\n"
    "openssl x509 -req -in sign.csr -CA ca.crt -CAkey ca.key -set_serial 7 -days 30 "
    "-extfile sign.cnf -extensions x -out " HOST ".sign.crt\n";

/* An answer, as the network process would get it. */
struct answer {
	struct priv_msg m;
	struct result r;
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void
path_of(char *buf, size_t len, const struct fx *f, const char *rel)
{
	snprintf(buf, len, "%s/%s", f->dir, rel);
}

static int
fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mu_err err = { "" };
	char keys[128], other[128], sdir[128], path[192], cmd[2048];
	int sv[2];

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_agent_intake.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	path_of(keys, sizeof(keys), f, "operators");
	path_of(other, sizeof(other), f, "elsewhere");
	path_of(sdir, sizeof(sdir), f, "state");
	if (mkdir(keys, 0700) == -1 || mkdir(other, 0700) == -1)
		return -1;
	/* Real Ed25519 keys; only the .pub files of operators/ are trusted. */
	if (sign_keygen(keys, "alice", &err) != MU_OK ||
	    sign_keygen(other, "mallory", &err) != MU_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/alice.key", keys);
	if (sign_key_load_private(path, &f->alice, &err) != MU_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/mallory.key", other);
	if (sign_key_load_private(path, &f->mallory, &err) != MU_OK)
		goto fail;
	/* The private key next to alice.pub is not a .pub: not loaded. */
	if (keyring_load_dir(&f->a.par.operators, keys, NULL, NULL, &err) != MU_OK ||
	    f->a.par.operators.nkeys != 1)
		goto fail;

	config_agent_defaults(&f->a.cfg);
	snprintf(f->a.cfg.host, sizeof(f->a.cfg.host), HOST);
	snprintf(f->a.cfg.groups[0], sizeof(f->a.cfg.groups[0]), "db");
	f->a.cfg.ngroups = 1;
	snprintf(f->a.cfg.state_dir, sizeof(f->a.cfg.state_dir), "%s", sdir);
	snprintf(f->a.root, sizeof(f->a.root), TOPIC_ROOT_DEFAULT);
	f->a.role = ROLE_PARENT;
	f->a.par.seq_fd = -1;
	f->a.par.net_uid = 65534;	/* nobody: not the key's owner */
	/* The parent signs every answer (agent/parent/sign.c). */
	snprintf(cmd, sizeof(cmd), pki_script, f->dir);
	if (system(cmd) != 0)
		return -1;
	snprintf(f->a.cfg.sign_key, sizeof(f->a.cfg.sign_key), "%s/" HOST ".sign.key", f->dir);
	snprintf(f->a.cfg.sign_cert, sizeof(f->a.cfg.sign_cert), "%s/" HOST ".sign.crt",
	    f->dir);
	path_of(path, sizeof(path), f, "ca.crt");
	if (mkdir(sdir, 0700) == -1 || sign_open(&f->a, &err) != MU_OK ||
	    hostsig_verifier_new(path, &f->hv, &err) != MU_OK)
		goto fail;
	if ((f->a.loop = loop_new()) == NULL ||
	    spool_open(&f->a.spool, sdir, sdir, &err) != MU_OK ||
	    seen_open(&f->a.par.seen, sdir, now_wall_ms(), &err) != MU_OK ||
	    policy_parse(&f->a.par.policy, "test-policy", policy_text, strlen(policy_text),
	    &err) != MU_OK)
		goto fail;
	/* The parent's end of the socketpair, as priv.c's chan_init() sets it;
	 * the other end is read by the test. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	f->a.par.to_net.fd = sv[0];
	f->a.net.to_parent.fd = -1;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	f->peer = sv[1];
	*state = f;
	return 0;
fail:
	fprintf(stderr, "setup: %s\n", err.msg);
	return -1;
}

static int
fx_teardown(void **state)
{
	struct fx *f = *state;

	priv_free(&f->a);
	hostsig_verifier_free(f->hv);
	if (f->a.par.to_net.fd != -1) {
		loop_del_fd(f->a.loop, f->a.par.to_net.fd);
		close(f->a.par.to_net.fd);
	}
	free(f->a.par.to_net.out);
	close(f->peer);
	seen_close(&f->a.par.seen);
	spool_close(&f->a.spool);
	policy_free(&f->a.par.policy);
	facts_free(&f->a.par.facts);
	keyring_free(&f->a.par.operators);
	loop_free(f->a.loop);
	sign_key_free(f->alice);
	sign_key_free(f->mallory);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- making envelopes -------------------------------------------------- */

/* A ping from now for five minutes, to this host, in this fleet. */
static void
job_ping(struct job *j, const char *id)
{
	uint64_t now = now_wall_ms();

	memset(j, 0, sizeof(*j));
	snprintf(j->id, sizeof(j->id), "%s", id);
	j->kind = JOB_PING;
	j->target.kind = TARGET_HOST;
	snprintf(j->target.name, sizeof(j->target.name), HOST);
	j->issued_at = now;
	j->not_after = now + 300000;
	aud_format(j->aud, sizeof(j->aud), TOPIC_ROOT_DEFAULT);
}

/* j signed by k, as an envelope in sb (which the caller destroys). */
static void
seal(msgpack_sbuffer *sb, const struct sign_key *k, const struct job *j)
{
	msgpack_sbuffer body;
	struct mu_err err = { "" };

	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(sb);
	if (job_encode(j, &body, &err) != MU_OK)
		fail_msg("job_encode: %s", err.msg);
	if (envelope_sign(k, body.data, body.size, sb, &err) != MU_OK)
		fail_msg("envelope_sign: %s", err.msg);
	msgpack_sbuffer_destroy(&body);
}

static void
deliver(struct fx *f, const char *topic, const struct sign_key *k, const struct job *j)
{
	msgpack_sbuffer sb;

	seal(&sb, k, j);
	intake_message(&f->a, topic, (const uint8_t *)sb.data, sb.size);
	intake_commit(&f->a);	/* the end of a read (priv.c) */
	msgpack_sbuffer_destroy(&sb);
}

/* ---- reading answers ---------------------------------------------------- */

/* The next frame from the parent, or false if it sent none. */
static bool
next_answer(struct fx *f, struct answer *ans, uint8_t **frame)
{
	struct agent_envelope env;
	struct wire_bytes der;
	const char *cn;
	struct mu_err err = { "" };
	uint8_t hdr[4];
	size_t len;
	ssize_t n;

	n = read(f->peer, hdr, 4);
	if (n == -1 && errno == EAGAIN)
		return false;
	assert_int_equal(n, 4);
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	assert_true(len > 0 && len < (1u << 20));
	assert_non_null(*frame = malloc(len));
	assert_int_equal(read(f->peer, *frame, len), (ssize_t)len);
	if (priv_msg_decode(*frame, len, &ans->m, &err) != MU_OK)
		fail_msg("priv_msg_decode: %s", err.msg);
	assert_int_equal(ans->m.type, PRIV_RESULT);
	/* Signed by the parent with this host's signing certificate. */
	if (agent_envelope_decode(ans->m.payload.ptr, ans->m.payload.len, &env, &err) != MU_OK)
		fail_msg("agent_envelope_decode: %s", err.msg);
	der = hostsig_signer_cert(f->a.par.signer);
	if (hostsig_cert_add(f->hv, der.ptr, der.len, &cn, &err) != MU_OK ||
	    hostsig_verify(f->hv, &env, &cn, &err) != MU_OK)
		fail_msg("the parent's signature: %s", err.msg);
	assert_string_equal(cn, HOST);
	if (result_decode(env.body.ptr, env.body.len, &ans->r, &err) != MU_OK)
		fail_msg("result_decode: %s", err.msg);
	wire_doc_free(&env.doc);
	/* Numbered by the parent: one more than the last. */
	assert_true(ans->r.has_seq);
	assert_int_equal(ans->r.seq, f->last_seq + 1);
	f->last_seq = ans->r.seq;
	/* The frame's job is the result's, and the result is this host's. */
	assert_string_equal(ans->m.job, ans->r.job);
	assert_string_equal(ans->r.host, HOST);
	return true;
}

static void
answer_free(struct answer *ans, uint8_t *frame)
{
	wire_doc_free(&ans->r.doc);
	wire_doc_free(&ans->m.doc);
	free(frame);
}

/* Exactly one answer, with this status, for job id (NULL: an
 * "invalid-<hash>" id), whose reason holds why (NULL: not checked). */
static void
expect_answer(struct fx *f, const char *id, enum result_status st, const char *why)
{
	struct answer ans;
	uint8_t *frame = NULL;

	if (!next_answer(f, &ans, &frame))
		fail_msg("no answer (wanted %s)", result_status_name(st));
	if (ans.r.status != st)
		fail_msg("answered %s (%.*s), wanted %s", result_status_name(ans.r.status),
		    (int)ans.r.reason.len, ans.r.reason.ptr ? ans.r.reason.ptr : "",
		    result_status_name(st));
	if (id != NULL)
		assert_string_equal(ans.r.job, id);
	else
		assert_int_equal(strncmp(ans.r.job, JOBID_RESERVED_PREFIX,
		    strlen(JOBID_RESERVED_PREFIX)), 0);
	if (why != NULL) {
		assert_non_null(ans.r.reason.ptr);
		if (memmem(ans.r.reason.ptr, ans.r.reason.len, why, strlen(why)) == NULL)
			fail_msg("reason '%.*s' does not say '%s'", (int)ans.r.reason.len,
			    ans.r.reason.ptr, why);
	}
	answer_free(&ans, frame);
	/* One answer per message, never two. */
	if (next_answer(f, &ans, &frame)) {
		answer_free(&ans, frame);
		fail_msg("a second answer");
	}
}

static void
expect_silence(struct fx *f)
{
	struct answer ans;
	uint8_t *frame = NULL;

	if (next_answer(f, &ans, &frame)) {
		answer_free(&ans, frame);
		fail_msg("answered a message that should get no answer");
	}
}

/* ---- the rules ------------------------------------------------------------ */

/* Jobs read at once: each id is known at once, nothing is answered before
 * the one flush (intake_commit), then every job is. */
static void
test_group_commit(void **state)
{
	struct fx *f = *state;
	msgpack_sbuffer sb;
	struct job j;
	const char *ids[] = { "burst-1", "burst-2", "burst-1" };
	size_t i;

	for (i = 0; i < 3; i++) {
		job_ping(&j, ids[i]);
		seal(&sb, f->alice, &j);
		intake_message(&f->a, TOPIC_HOST, (const uint8_t *)sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
	assert_true(seen_has(&f->a.par.seen, "burst-2"));
	assert_true(f->a.par.seen.unsynced);
	expect_silence(f);
	intake_commit(&f->a);
	assert_false(f->a.par.seen.unsynced);
	/* The repeated id is a duplicate delivery: no second answer. */
	for (i = 0; i < 2; i++) {
		struct answer ans;
		uint8_t *frame = NULL;

		assert_true(next_answer(f, &ans, &frame));
		assert_int_equal(ans.r.status, RS_PASS);
		assert_string_equal(ans.r.job, ids[i]);
		answer_free(&ans, frame);
	}
	expect_silence(f);
	assert_int_equal(f->a.par.jobs_accepted, 2);
	assert_int_equal(f->a.par.jobs_duplicate, 1);
}

static void
test_good_ping(void **state)
{
	struct fx *f = *state;
	struct answer ans;
	uint8_t *frame = NULL;
	struct job j;

	job_ping(&j, "ping-1");
	deliver(f, TOPIC_HOST, f->alice, &j);
	assert_true(next_answer(f, &ans, &frame));
	assert_int_equal(ans.r.status, RS_PASS);
	assert_string_equal(ans.r.job, "ping-1");
	assert_int_equal(ans.r.kind, JOB_PING);
	assert_int_equal(ans.r.summary.len, 4);
	assert_memory_equal(ans.r.summary.ptr, "pong", 4);
	assert_non_null(ans.r.data);
	answer_free(&ans, frame);
	expect_silence(f);
	/* Accepted: counted and recorded in the seen-set. */
	assert_int_equal(f->a.par.jobs_accepted, 1);
	assert_int_equal(f->a.par.jobs_rejected, 0);
	assert_true(seen_has(&f->a.par.seen, "ping-1"));
	/* The whole-fleet and group topics are this host's too. */
	j.target.kind = TARGET_ALL;
	j.target.name[0] = '\0';
	snprintf(j.id, sizeof(j.id), "ping-all");
	deliver(f, "muster/v1/all/jobs", f->alice, &j);
	expect_answer(f, "ping-all", RS_PASS, NULL);
}

static void
test_duplicate_id(void **state)
{
	struct fx *f = *state;
	struct job j;

	job_ping(&j, "dup-1");
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_answer(f, "dup-1", RS_PASS, NULL);
	/* A second delivery of an accepted id gets no answer at all. */
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_silence(f);
	assert_int_equal(f->a.par.jobs_duplicate, 1);
	assert_int_equal(f->a.par.jobs_accepted, 1);
	/* Also after a restart: the seen-set is on disk. */
	seen_close(&f->a.par.seen);
	assert_int_equal(seen_open(&f->a.par.seen, f->a.cfg.state_dir, now_wall_ms(),
	    &(struct mu_err){ "" }), MU_OK);
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_silence(f);
	assert_int_equal(f->a.par.jobs_duplicate, 2);
}

static void
test_bad_signature(void **state)
{
	struct fx *f = *state;
	msgpack_sbuffer sb;
	struct job j;

	job_ping(&j, "forged");
	seal(&sb, f->alice, &j);
	/* One bit of the body's last byte: the signature no longer holds. */
	((uint8_t *)sb.data)[sb.size - 1] ^= 0x01;
	intake_message(&f->a, TOPIC_HOST, (const uint8_t *)sb.data, sb.size);
	intake_commit(&f->a);	/* the end of a read (priv.c) */
	msgpack_sbuffer_destroy(&sb);
	/* Answered under "invalid-<hash>", never under the claimed id. */
	expect_answer(f, NULL, RS_REJECTED, "bad signature");
	assert_false(seen_has(&f->a.par.seen, "forged"));
	assert_int_equal(f->a.par.jobs_rejected, 1);
	assert_int_equal(f->a.par.jobs_accepted, 0);
}

static void
test_unknown_key(void **state)
{
	struct fx *f = *state;
	struct job j;

	job_ping(&j, "stranger");
	deliver(f, TOPIC_HOST, f->mallory, &j);
	expect_answer(f, NULL, RS_REJECTED, "unknown operator key");
	assert_false(seen_has(&f->a.par.seen, "stranger"));
}

static void
test_malformed(void **state)
{
	struct fx *f = *state;
	static const uint8_t junk[] = { 0x81, 0xa1, 'v', 0x02 };

	intake_message(&f->a, TOPIC_HOST, junk, sizeof(junk));
	intake_commit(&f->a);	/* the end of a read (priv.c) */
	expect_answer(f, NULL, RS_REJECTED, "malformed job envelope");
	/* Over max_job: dropped before any decoding, not answered. */
	f->a.cfg.max_job = 2;
	intake_message(&f->a, TOPIC_HOST, junk, sizeof(junk));
	intake_commit(&f->a);	/* the end of a read (priv.c) */
	expect_silence(f);
	assert_int_equal(f->a.jobs_oversize, 1);
}

static void
test_expired_and_future(void **state)
{
	struct fx *f = *state;
	uint64_t now = now_wall_ms();
	struct job j;

	job_ping(&j, "old");
	j.issued_at = now - 10 * CLOCK_SKEW_MS;
	j.not_after = now - 2 * CLOCK_SKEW_MS;
	deliver(f, TOPIC_HOST, f->alice, &j);
	/* Verified, so answered under its own id. */
	expect_answer(f, "old", RS_REJECTED, "expired");
	/* Within the clock skew it still passes. */
	job_ping(&j, "just-expired");
	j.issued_at = now - 10 * CLOCK_SKEW_MS;
	j.not_after = now - CLOCK_SKEW_MS / 2;
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_answer(f, "just-expired", RS_PASS, NULL);
	job_ping(&j, "future");
	j.issued_at = now + 2 * CLOCK_SKEW_MS;
	j.not_after = j.issued_at + 1000;
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_answer(f, "future", RS_REJECTED, "in the future");
	job_ping(&j, "too-long");
	j.not_after = j.issued_at + f->a.cfg.max_ttl_ms + 1;
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_answer(f, "too-long", RS_REJECTED, "max_ttl");
	assert_false(seen_has(&f->a.par.seen, "old"));
	assert_false(seen_has(&f->a.par.seen, "future"));
}

static void
test_wrong_target(void **state)
{
	struct fx *f = *state;
	struct job j;

	/* Signed for another host, delivered on ours. */
	job_ping(&j, "other-host");
	snprintf(j.target.name, sizeof(j.target.name), "web2");
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_answer(f, "other-host", RS_REJECTED, "does not match the topic");
	/* Signed for another host and delivered on its topic (a broker that
	 * routes wrongly). */
	deliver(f, "muster/v1/hosts/web2/jobs", f->alice, &j);
	expect_answer(f, "other-host", RS_REJECTED, "does not match this host");
	/* A group this host is not in; one it is in passes. */
	job_ping(&j, "group-x");
	j.target.kind = TARGET_GROUP;
	snprintf(j.target.name, sizeof(j.target.name), "web");
	deliver(f, "muster/v1/groups/web/jobs", f->alice, &j);
	expect_answer(f, "group-x", RS_REJECTED, "does not match this host");
	assert_false(seen_has(&f->a.par.seen, "other-host"));
}

static void
test_wrong_aud(void **state)
{
	struct fx *f = *state;
	struct job j;

	job_ping(&j, "other-fleet");
	aud_format(j.aud, sizeof(j.aud), "staging");
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_answer(f, "other-fleet", RS_REJECTED, "is for fleet staging/v1");
	assert_false(seen_has(&f->a.par.seen, "other-fleet"));
}

static void
test_policy_deny(void **state)
{
	static const char wider[] = "allow alice ping,version all,host/*\n";
	struct fx *f = *state;
	struct job j;

	/* Alice may ping, not ask for the version. */
	job_ping(&j, "version-1");
	j.kind = JOB_VERSION;
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_answer(f, "version-1", RS_REJECTED, "not allowed for operator alice");
	assert_false(seen_has(&f->a.par.seen, "version-1"));
	/* Refused, not recorded: the same id may come again once allowed. */
	policy_free(&f->a.par.policy);
	assert_int_equal(policy_parse(&f->a.par.policy, "test-policy", wider, strlen(wider),
	    &(struct mu_err){ "" }), MU_OK);
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_answer(f, "version-1", RS_PASS, NULL);
}

/* j with a filter of one predicate [fact, op, value] (a string value);
 * the packed filter lives in pk until the caller destroys it. */
static void
with_filter(struct job *j, msgpack_sbuffer *sb, msgpack_unpacked *up, const char *fact,
    const char *op, const char *value)
{
	msgpack_packer w;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&w, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&w, 1);
	msgpack_pack_array(&w, 3);
	msgpack_pack_str_with_body(&w, fact, strlen(fact));
	msgpack_pack_str_with_body(&w, op, strlen(op));
	msgpack_pack_str_with_body(&w, value, strlen(value));
	msgpack_unpacked_init(up);
	assert_int_equal(msgpack_unpack_next(up, sb->data, sb->size, NULL),
	    MSGPACK_UNPACK_SUCCESS);
	j->filter = &up->data;
}

/*
 * Deliver j with its filter written into the body by hand: job_encode
 * refuses a malformed filter, an operator's other tools might not.  The
 * body without it is unpacked and packed again with "filter" added.
 */
static void
deliver_raw_filter(struct fx *f, const char *topic, struct job *j)
{
	const msgpack_object *flt = j->filter;
	msgpack_sbuffer body, raw, env;
	msgpack_unpacked up;
	msgpack_packer w;
	struct mu_err err = { "" };
	uint32_t i;

	j->filter = NULL;
	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(&raw);
	msgpack_sbuffer_init(&env);
	if (job_encode(j, &body, &err) != MU_OK)
		fail_msg("job_encode: %s", err.msg);
	msgpack_unpacked_init(&up);
	assert_int_equal(msgpack_unpack_next(&up, body.data, body.size, NULL),
	    MSGPACK_UNPACK_SUCCESS);
	msgpack_packer_init(&w, &raw, msgpack_sbuffer_write);
	msgpack_pack_map(&w, up.data.via.map.size + 1);
	for (i = 0; i < up.data.via.map.size; i++) {
		msgpack_pack_object(&w, up.data.via.map.ptr[i].key);
		msgpack_pack_object(&w, up.data.via.map.ptr[i].val);
	}
	msgpack_pack_str_with_body(&w, "filter", 6);
	msgpack_pack_object(&w, *flt);
	if (envelope_sign(f->alice, raw.data, raw.size, &env, &err) != MU_OK)
		fail_msg("envelope_sign: %s", err.msg);
	intake_message(&f->a, topic, (const uint8_t *)env.data, env.size);
	intake_commit(&f->a);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&body);
	msgpack_sbuffer_destroy(&raw);
	msgpack_sbuffer_destroy(&env);
}

/* A job delivered with one predicate; j is a fresh ping with id. */
static void
deliver_filtered(struct fx *f, const char *id, const char *fact, const char *op,
    const char *value)
{
	msgpack_sbuffer sb;
	msgpack_unpacked up;
	struct job j;

	job_ping(&j, id);
	with_filter(&j, &sb, &up, fact, op, value);
	deliver_raw_filter(f, TOPIC_HOST, &j);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

/* design.md §3: a filter this host matches runs; one it does not match
 * runs nothing, says nothing, and the id enters the seen-set (flushed),
 * so a re-delivery after the facts changed is still not run. */
static void
test_filter(void **state)
{
	struct fx *f = *state;
	struct mu_err err = { "" };

	assert_int_equal(facts_set_str(&f->a.par.facts, "os.id", "debian", &err), MU_OK);
	deliver_filtered(f, "flt-yes", "os.id", "==", "debian");
	expect_answer(f, "flt-yes", RS_PASS, NULL);
	deliver_filtered(f, "flt-no", "os.id", "==", "ubuntu");
	expect_silence(f);
	assert_true(seen_has(&f->a.par.seen, "flt-no"));
	assert_false(f->a.par.seen.unsynced);
	assert_int_equal(f->a.par.jobs_filtered, 1);
	assert_int_equal(f->a.par.jobs_rejected, 0);
	/* The host becomes an ubuntu host: the same id still does not run. */
	assert_int_equal(facts_set_str(&f->a.par.facts, "os.id", "ubuntu", &err), MU_OK);
	deliver_filtered(f, "flt-no", "os.id", "==", "ubuntu");
	expect_silence(f);
	assert_int_equal(f->a.par.jobs_duplicate, 1);
	/* A missing fact: not matched, silent. */
	deliver_filtered(f, "flt-missing", "custom.rack", "~", "b7*");
	expect_silence(f);
	assert_int_equal(f->a.par.jobs_filtered, 2);
}

static void
test_filter_malformed(void **state)
{
	struct fx *f = *state;
	msgpack_sbuffer sb, env;
	msgpack_unpacked up;
	msgpack_packer w;
	struct job j;

	/* An unknown operator: refused under the job's own id, with why. */
	deliver_filtered(f, "flt-bad", "os.id", "=", "debian");
	expect_answer(f, "flt-bad", RS_REJECTED, "malformed filter: filter predicate 1: "
	    "unknown operator '='");
	assert_false(seen_has(&f->a.par.seen, "flt-bad"));
	/* The target and aud rules come first: a malformed filter on a job
	 * for another host is refused for its target. */
	job_ping(&j, "flt-bad-target");
	snprintf(j.target.name, sizeof(j.target.name), "web2");
	with_filter(&j, &sb, &up, "os.id", "like", "x");
	deliver_raw_filter(f, "muster/v1/hosts/web2/jobs", &j);
	expect_answer(f, "flt-bad-target", RS_REJECTED, "does not match this host");
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	/* A filter that is not even an array: job_encode will not write
	 * it, and the agent's job_decode does not take the body. */
	job_ping(&j, "flt-map");
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&w, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&w, 0);
	msgpack_unpacked_init(&up);
	assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, NULL),
	    MSGPACK_UNPACK_SUCCESS);
	j.filter = &up.data;
	msgpack_sbuffer_init(&env);
	assert_int_equal(job_encode(&j, &env, &(struct mu_err){ "" }), MU_EINVAL);
	msgpack_sbuffer_destroy(&env);
	deliver_raw_filter(f, TOPIC_HOST, &j);
	expect_answer(f, NULL, RS_REJECTED, "key 'filter' must be an array");
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

/* The policy still applies to a host the filter matches. */
static void
test_filter_then_policy(void **state)
{
	struct fx *f = *state;
	msgpack_sbuffer sb;
	msgpack_unpacked up;
	struct mu_err err = { "" };
	struct job j;

	assert_int_equal(facts_set_str(&f->a.par.facts, "os.id", "debian", &err), MU_OK);
	job_ping(&j, "flt-version");
	j.kind = JOB_VERSION;
	with_filter(&j, &sb, &up, "os.id", "==", "debian");
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_answer(f, "flt-version", RS_REJECTED, "not allowed for operator alice");
	/* Not matched: silent, even though the policy would refuse it. */
	snprintf(j.id, sizeof(j.id), "flt-version-2");
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	with_filter(&j, &sb, &up, "os.id", "!=", "debian");
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_silence(f);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_reject_rate_limit(void **state)
{
	struct fx *f = *state;
	struct answer ans;
	uint8_t *frame = NULL;
	struct job j;
	int i, answered = 0;

	/* A burst of refusals: each is counted, only REJECT_BURST answered. */
	for (i = 0; i < REJECT_BURST + 5; i++) {
		job_ping(&j, "x");
		snprintf(j.id, sizeof(j.id), "deny-%d", i);
		j.kind = JOB_VERSION;
		deliver(f, TOPIC_HOST, f->alice, &j);
		while (next_answer(f, &ans, &frame)) {
			answered++;
			answer_free(&ans, frame);
		}
	}
	assert_int_equal(answered, REJECT_BURST);
	assert_int_equal(f->a.par.jobs_rejected, REJECT_BURST + 5);
}

/*
 * Fail closed: a job whose id cannot be recorded is answered "error"
 * ("agent could not record the job id") and not run, whether the write
 * fails (a full disk: /dev/full under the seen-set's file) or the group
 * commit's flush does (fdatasync on a pipe: EINVAL); a second delivery
 * of it gets no answer (its id is known); with the disk back, jobs run.
 */
static void
expect_unrecorded(struct fx *f, const char *id)
{
	static const char why[] = "agent could not record the job id";
	struct answer ans;
	uint8_t *frame = NULL;

	assert_true(next_answer(f, &ans, &frame));
	assert_string_equal(ans.r.job, id);
	assert_int_equal(ans.r.status, RS_ERROR);
	assert_int_equal(ans.r.summary.len, strlen(why));
	assert_memory_equal(ans.r.summary.ptr, why, strlen(why));
	answer_free(&ans, frame);
	expect_silence(f);
}

static void
test_record_fails_closed(void **state)
{
	struct fx *f = *state;
	struct job j, again;
	int real, full, pipefd[2];

	assert_true((real = dup(f->a.par.seen.fd)) != -1);
	assert_true((full = open("/dev/full", O_WRONLY | O_CLOEXEC)) != -1);
	assert_true(dup2(full, f->a.par.seen.fd) != -1);
	close(full);
	job_ping(&j, "full-1");
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_unrecorded(f, "full-1");
	again = j;
	deliver(f, TOPIC_HOST, f->alice, &again);
	expect_silence(f);
	assert_int_equal(f->a.par.jobs_duplicate, 1);

	assert_int_equal(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK), 0);
	assert_true(dup2(pipefd[1], f->a.par.seen.fd) != -1);
	job_ping(&j, "flush-1");
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_unrecorded(f, "flush-1");
	close(pipefd[0]);
	close(pipefd[1]);
	assert_int_equal(f->a.par.jobs_accepted, 0);

	assert_true(dup2(real, f->a.par.seen.fd) != -1);
	close(real);
	job_ping(&j, "ok-1");
	deliver(f, TOPIC_HOST, f->alice, &j);
	expect_answer(f, "ok-1", RS_PASS, NULL);
	assert_int_equal(f->a.par.jobs_accepted, 1);
}

int
main(void)
{
#define T(fn)	cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_good_ping),
		T(test_group_commit),
		T(test_duplicate_id),
		T(test_bad_signature),
		T(test_unknown_key),
		T(test_malformed),
		T(test_expired_and_future),
		T(test_wrong_target),
		T(test_wrong_aud),
		T(test_policy_deny),
		T(test_filter),
		T(test_filter_malformed),
		T(test_filter_then_policy),
		T(test_reject_rate_limit),
		T(test_record_fails_closed),
	};
#undef T

	log_init("test_agent_intake", LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
