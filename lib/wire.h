/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire.h - encoders and strict decoders for every message of protocol v1
 * (design.md §3): job envelope and body, result, event, status, module and
 * release manifests, signed pointers, module and binary artifacts, and the
 * self-test request and verdict.  One source file per family: wire_job.c,
 * wire_agent.c (agent envelope, result, event, status), wire_manifest.c
 * (manifests, pointers, artifacts), wire_selftest.c, wire_priv.c; wire.c
 * holds the readers and writers they share (wire_internal.h), wire_check.c
 * the structural check.
 *
 * Ownership:
 *  - Decoders never copy blobs.  A decoded struct's wire_str / wire_bytes
 *    fields point into the caller's input buffer, and its msgpack_object
 *    pointers (args, data) point into the struct's own wire_doc.  The
 *    caller keeps the input alive while it uses the struct and calls
 *    wire_doc_free(&x.doc) once on every successfully decoded struct.  On
 *    failure nothing is left to free.
 *  - Short identifiers (names, ids, hashes, versions) are copied into fixed
 *    NUL-terminated arrays, already validated.
 *  - Encoders append to a msgpack_sbuffer the caller initialised and frees.
 *    They validate like the decoders, so we never send what we would refuse.
 *
 * Every decoder first runs wire_check(): one complete msgpack object, no
 * trailing bytes, nesting and sizes bounded, and every declared array/map
 * length backed by input bytes.  msgpack-c's C unpacker allocates
 * count * sizeof(msgpack_object) for a declared array before reading it, so
 * without this check a 5-byte message could ask for 64 GiB.
 */
#ifndef MUSTER_WIRE_H
#define MUSTER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "err.h"
#include "names.h"

#define WIRE_VERSION		1
#define WIRE_MAX_STR		(64u * 1024)		/* any string */
#define WIRE_MAX_BIN		(64u * 1024 * 1024)	/* module or binary */
#define WIRE_MAX_MSG		(WIRE_MAX_BIN + 64u * 1024)
#define WIRE_MAX_BODY		(256u * 1024)		/* signed job body */
#define WIRE_MAX_MANIFEST	(16u * 1024)
#define WIRE_MAX_PGPSIG		(16u * 1024)
#define WIRE_MAX_ARGS_DEPTH	8			/* args/data maps */
#define WIRE_MAX_DEPTH		(WIRE_MAX_ARGS_DEPTH + 2)
#define WIRE_MAX_GROUPS		32
#define WIRE_MAX_VERSION	64			/* version strings */
#define WIRE_MAX_NONCE		128
#define ED25519_SIG_LEN		64
#define KEYID_HEX_LEN		16
#define WIRE_MAX_AGENT_BODY	(4u * 1024 * 1024)	/* signed agent message body */
#define WIRE_MAX_HOSTSIG	512			/* ECDSA DER or Ed25519 */
#define WIRE_MAX_CERT		(16u * 1024)		/* host certificate DER */

/* Borrowed views into the input buffer: not NUL-terminated. */
struct wire_str {
	const char *ptr;	/* NULL when absent */
	size_t len;
};

struct wire_bytes {
	const uint8_t *ptr;	/* NULL when absent */
	size_t len;
};

/* The decoded msgpack tree a struct's object pointers live in. */
struct wire_doc {
	msgpack_unpacked up;
	bool live;
};

void wire_doc_free(struct wire_doc *doc);

/* The bounded structural check every decoder runs first (see above). */
int wire_check(const void *buf, size_t len, struct mu_err *err);

/* ---- job envelope and body ------------------------------------------- */

struct job_envelope {
	struct wire_doc doc;
	char key[KEYID_HEX_LEN + 1];
	uint8_t sig[ED25519_SIG_LEN];
	struct wire_bytes body;		/* the signed bytes, borrowed */
};

int envelope_decode(const void *buf, size_t len, struct job_envelope *out,
    struct mu_err *err);
int envelope_encode(const char *key, const uint8_t sig[ED25519_SIG_LEN],
    const void *body, size_t body_len, msgpack_sbuffer *out, struct mu_err *err);

enum job_kind {
	JOB_UNKNOWN = 0,	/* only in results that reject an unreadable job */
	JOB_RUN,
	JOB_PING,
	JOB_VERSION,
	JOB_CANCEL,
	JOB_UPDATE,
};

const char *job_kind_name(enum job_kind k);
enum job_kind job_kind_parse(const char *s, size_t len);	/* JOB_UNKNOWN if bad */

struct job {
	struct wire_doc doc;
	char id[JOBID_MAX_LEN + 1];
	enum job_kind kind;
	struct job_target target;
	uint64_t issued_at;		/* unix ms */
	uint64_t not_after;		/* unix ms */
	struct wire_str operator_;	/* optional */
	char module[NAME_MAX_LEN + 1];	/* run only */
	char module_sha256[SHA256_HEX_LEN + 1];	/* optional; "" if absent */
	const msgpack_object *args;	/* optional map; NULL if absent */
	uint64_t timeout_ms;		/* optional; 0 = agent default */
	bool stream;
	char cancel[JOBID_MAX_LEN + 1];	/* cancel only */
	/* The fleet, "<topic_root>/v1".  Encoders require it; the decoder
	 * leaves "" when it is absent so that the agent can refuse such a job
	 * with a reason that says so (an older sender), not "malformed". */
	char aud[AUD_MAX_LEN + 1];
	/* Optional fact predicates (design.md §3); NULL if absent.  The
	 * decoder checks only that it is an array: filter_decode() (facts.h)
	 * reads it, so that the agent can refuse a malformed one under the
	 * job's own id, after the target and aud rules, as the design orders. */
	const msgpack_object *filter;
};

int job_decode(const void *buf, size_t len, struct job *out, struct mu_err *err);
int job_encode(const struct job *j, msgpack_sbuffer *out, struct mu_err *err);

/* ---- job announce (wire_announce.c) ------------------------------------ */

/*
 * R/jobs/<job>: what the CLI tells muster-server before a job goes out
 * (design.md §3), signed in a job envelope like the job itself.  Its body
 * is bigger than a job's (the expected hosts), so its envelope is decoded
 * and encoded with WIRE_MAX_ANNOUNCE as the body bound.
 */
#define WIRE_MAX_EXPECTED	50000			/* expected hosts */
#define WIRE_MAX_ANNOUNCE	(4u * 1024 * 1024)	/* signed announce body */

struct announce {
	struct wire_doc doc;
	char id[JOBID_MAX_LEN + 1];
	char aud[AUD_MAX_LEN + 1];	/* required */
	uint64_t issued_at, not_after;	/* the job's */
	struct wire_str operator_;	/* optional */
	struct job_target target;
	/* Optional, as in the job; checked with filter_decode() (facts.h). */
	const msgpack_object *filter;
	enum job_kind job_kind;		/* run, ping, version or update */
	char module[NAME_MAX_LEN + 1];	/* run only */
	const msgpack_object *args;	/* run, optional map */
	uint64_t timeout_ms;		/* optional; 0 = absent */
	bool stream;
	/* Decoded: an array of nexpected strings, each a valid host name,
	 * sorted (byte order) and unique; read them with announce_host(). */
	const msgpack_object *expected;
	size_t nexpected;
};

int announce_decode(const void *buf, size_t len, struct announce *out,
    struct mu_err *err);
/* The expected hosts come apart from a (its expected is ignored): nexpected
 * names, sorted and unique, as the decoder wants them. */
int announce_encode(const struct announce *a, const char (*expected)[NAME_MAX_LEN + 1],
    size_t nexpected, msgpack_sbuffer *out, struct mu_err *err);
/* Expected host i (< a->nexpected) of a decoded announce, NUL-terminated. */
void announce_host(const struct announce *a, size_t i, char out[NAME_MAX_LEN + 1]);

/* envelope_decode() and envelope_encode() with another body bound
 * (WIRE_MAX_ANNOUNCE for announces). */
int envelope_decode_max(const void *buf, size_t len, size_t max_body,
    struct job_envelope *out, struct mu_err *err);
int envelope_encode_max(const char *key, const uint8_t sig[ED25519_SIG_LEN],
    const void *body, size_t body_len, size_t max_body, msgpack_sbuffer *out,
    struct mu_err *err);

/* ---- agent envelope --------------------------------------------------- */

/*
 * Every message an agent publishes: {"v":1, "cert":<hex SHA-256 of the host
 * certificate's DER>, "sig":<bin>, "body":<bin>}.  sig and body borrow from
 * the input; sig is 1..WIRE_MAX_HOSTSIG bytes, body 1..WIRE_MAX_AGENT_BODY.
 */
struct agent_envelope {
	struct wire_doc doc;
	char cert[SHA256_HEX_LEN + 1];
	struct wire_bytes sig;
	struct wire_bytes body;
};

int agent_envelope_decode(const void *buf, size_t len, struct agent_envelope *out,
    struct mu_err *err);
int agent_envelope_encode(const char *cert, const void *sig, size_t sig_len,
    const void *body, size_t body_len, msgpack_sbuffer *out, struct mu_err *err);

/* ---- result and event ------------------------------------------------- */

enum result_status {
	RS_PASS, RS_FAIL, RS_ERROR, RS_TIMEOUT, RS_CRASHED, RS_CANCELLED,
	RS_REJECTED, RS_INTERRUPTED,
};

const char *result_status_name(enum result_status s);

struct result {
	struct wire_doc doc;
	char job[JOBID_MAX_LEN + 1];
	char host[NAME_MAX_LEN + 1];
	enum job_kind kind;
	enum result_status status;
	struct wire_str reason, summary, output;	/* optional */
	bool truncated;
	/* Optional (0 = absent): live events of a stream job the agent did
	 * not publish, past its per-job bounds. */
	uint64_t events_dropped;
	const msgpack_object *data;	/* optional map */
	bool has_exit_code, has_signal;
	int32_t exit_code, signal;
	char module[NAME_MAX_LEN + 1];			/* optional */
	char module_version[WIRE_MAX_VERSION + 1];	/* optional */
	char module_sha256[SHA256_HEX_LEN + 1];		/* optional */
	uint64_t started_at, finished_at;
	char agent_version[WIRE_MAX_VERSION + 1];
	/* Optional: the host's result counter, 1, 2, 3, ... in the order the
	 * host spooled its results; it survives agent restarts, so an observer
	 * that sees every result of a host can tell a gap (a lost message)
	 * from a quiet host. */
	bool has_seq;
	uint64_t seq;
};

int result_decode(const void *buf, size_t len, struct result *out, struct mu_err *err);
int result_encode(const struct result *r, msgpack_sbuffer *out, struct mu_err *err);
/* Re-encode the result body buf with "seq" set (into out, initialised by
 * the caller): the agent's network process numbers results as it spools
 * them. */
int result_with_seq(const void *buf, size_t len, uint64_t seq, msgpack_sbuffer *out,
    struct mu_err *err);

enum event_kind { EV_ACCEPTED, EV_STARTED, EV_OUTPUT, EV_PROGRESS };

struct event {
	struct wire_doc doc;
	char job[JOBID_MAX_LEN + 1];
	char host[NAME_MAX_LEN + 1];
	uint64_t seq, at;
	enum event_kind event;
	struct wire_str text;		/* optional */
	bool has_pct;
	uint8_t pct;			/* 0..100 */
};

int event_decode(const void *buf, size_t len, struct event *out, struct mu_err *err);
int event_encode(const struct event *e, msgpack_sbuffer *out, struct mu_err *err);

/* ---- status ----------------------------------------------------------- */

struct status {
	struct wire_doc doc;
	char host[NAME_MAX_LEN + 1];
	bool online;
	struct wire_str reason;		/* optional */
	char version[WIRE_MAX_VERSION + 1];
	char channel[NAME_MAX_LEN + 1];
	size_t ngroups;
	char groups[WIRE_MAX_GROUPS][NAME_MAX_LEN + 1];
	uint64_t started_at, at;
	struct wire_bytes cert_der;	/* the host certificate, borrowed */
	/* optional {"state","version","reason"?,...}: the self-update (§5) */
	const msgpack_object *update;
};

int status_decode(const void *buf, size_t len, struct status *out, struct mu_err *err);
/* A string of the status's "update" map (state, version, reason) copied
 * printable into out; "" when the map or the key is absent. */
void status_update_field(const struct status *st, const char *key, char *out, size_t len);
/*
 * Where a status puts its host with a release (design.md §5): the version
 * it runs (RSTAGE_RUNS, into version), or the one its "update" map is
 * trying, failed or found halted.  One rule for the CLI's release show and
 * muster-server's halt count.
 */
enum release_stage { RSTAGE_RUNS, RSTAGE_TRYING, RSTAGE_FAILED, RSTAGE_HALTED };
enum release_stage status_release_stage(const struct status *st,
    char version[WIRE_MAX_VERSION + 1]);
int status_encode(const struct status *s, msgpack_sbuffer *out, struct mu_err *err);

/* ---- modules and releases --------------------------------------------- */

#define WIRE_MAX_WITHDRAWN	32	/* module manifest "withdrawn" items */

struct module_manifest {
	struct wire_doc doc;
	char name[NAME_MAX_LEN + 1];
	char version[WIRE_MAX_VERSION + 1];
	uint32_t abi;
	char sha256[SHA256_HEX_LEN + 1];
	uint64_t size;
	uint64_t published_at;
	bool net;		/* the module declares MUSTER_NEEDS_NET; absent:
				 * false (written only when true) */
	/* Optional: builds of this name its publisher withdrew (`muster
	 * module withdraw`); hosts drop and refuse them. */
	size_t nwithdrawn;
	char withdrawn[WIRE_MAX_WITHDRAWN][SHA256_HEX_LEN + 1];
};

int module_manifest_decode(const void *buf, size_t len, struct module_manifest *out,
    struct mu_err *err);
int module_manifest_encode(const struct module_manifest *m, msgpack_sbuffer *out,
    struct mu_err *err);

#define RELEASE_MAX_STEPS	32	/* steps of a release schedule */
#define RELEASE_MAX_HALT_HOSTS	1000000	/* halt.min_hosts */

/* One step of a schedule: from at_ms on, pct % of the channel's hosts. */
struct release_step {
	uint64_t at_ms;			/* unix ms */
	uint8_t pct;			/* 0..100 */
};

struct release_manifest {
	struct wire_doc doc;
	char channel[NAME_MAX_LEN + 1];
	char version[WIRE_MAX_VERSION + 1];
	char agent_sha256[SHA256_HEX_LEN + 1];
	uint64_t agent_size;
	char runner_sha256[SHA256_HEX_LEN + 1];
	uint64_t runner_size;
	uint64_t published_at;
	uint8_t rollout;		/* 0..100; with a schedule, what agents
					 * that predate schedules take */
	/* Optional "schedule" (design.md §3): 1..RELEASE_MAX_STEPS steps,
	 * times strictly increasing, percents non-decreasing; nsteps 0 =
	 * none.  The decoder refuses anything else, naming the step. */
	struct release_step steps[RELEASE_MAX_STEPS];
	size_t nsteps;
	/* Optional "halt" (design.md §5): has_halt false = none. */
	bool has_halt;
	uint8_t halt_failed_pct;	/* 0..100 */
	uint32_t halt_min_hosts;	/* 1..RELEASE_MAX_HALT_HOSTS */
};

int release_manifest_decode(const void *buf, size_t len, struct release_manifest *out,
    struct mu_err *err);
int release_manifest_encode(const struct release_manifest *m, msgpack_sbuffer *out,
    struct mu_err *err);
/*
 * The rollout in force at now_ms: the schedule's last step whose time has
 * passed (0 before the first), or rollout without a schedule.  *next_ms
 * (optional) gets the time of the next step that raises it, 0 if none.
 */
uint8_t release_rollout_at(const struct release_manifest *m, uint64_t now_ms,
    uint64_t *next_ms);

/*
 * A release halt (design.md §5), the body on R/releases/<channel>/halt:
 * {"v":1, "kind":"halt", "channel", "version", "reason", "at", "failed"?,
 * "attempted"?, "cert_der"?, "operator"?}.  muster-server signs it with its
 * signing pair (an agent envelope; cert_der its certificate, CN srv:NAME),
 * an operator with an Ed25519 key (a job envelope; no cert_der).  Views
 * borrow from the input.
 */
#define RELEASE_HALT_REASON_MAX	512
#define RELEASE_HALT_CERT_MAX	(16u * 1024)

struct release_halt {
	struct wire_doc doc;
	char channel[NAME_MAX_LEN + 1];
	char version[WIRE_MAX_VERSION + 1];
	struct wire_str reason;
	uint64_t at;			/* unix ms */
	bool has_counts;		/* failed and attempted, both or neither */
	uint64_t failed, attempted;
	struct wire_bytes cert_der;	/* optional */
	struct wire_str operator_;	/* optional */
};

int release_halt_decode(const void *buf, size_t len, struct release_halt *out,
    struct mu_err *err);
int release_halt_encode(const struct release_halt *h, msgpack_sbuffer *out,
    struct mu_err *err);

/* A module pointer and a release pointer: a manifest and its signature. */
struct signed_pointer {
	struct wire_doc doc;
	struct wire_bytes manifest, sig;
};

int pointer_decode(const void *buf, size_t len, struct signed_pointer *out,
    struct mu_err *err);
int pointer_encode(const struct signed_pointer *p, msgpack_sbuffer *out,
    struct mu_err *err);

struct module_artifact {
	struct wire_doc doc;
	struct wire_bytes manifest, sig, so;
};

int module_artifact_decode(const void *buf, size_t len, struct module_artifact *out,
    struct mu_err *err);
int module_artifact_encode(const struct module_artifact *a, msgpack_sbuffer *out,
    struct mu_err *err);

struct binary_artifact {
	struct wire_doc doc;
	struct wire_bytes data;
};

int binary_artifact_decode(const void *buf, size_t len, struct binary_artifact *out,
    struct mu_err *err);
int binary_artifact_encode(const struct binary_artifact *a, msgpack_sbuffer *out,
    struct mu_err *err);

/* ---- self-test handshake ---------------------------------------------- */

/* R/hosts/<host>/selftest/request: {"v":1,"host","nonce","version"} */
struct selftest_request {
	struct wire_doc doc;
	char host[NAME_MAX_LEN + 1];
	char nonce[WIRE_MAX_NONCE + 1];		/* [0-9a-f]{16,128} */
	char version[WIRE_MAX_VERSION + 1];
};

int selftest_request_decode(const void *buf, size_t len, struct selftest_request *out,
    struct mu_err *err);
int selftest_request_encode(const struct selftest_request *r, msgpack_sbuffer *out,
    struct mu_err *err);

/* R/hosts/<host>/selftest/verdict: {"v":1,"host","nonce","ok","reason"?} */
struct selftest_verdict {
	struct wire_doc doc;
	char host[NAME_MAX_LEN + 1];
	char nonce[WIRE_MAX_NONCE + 1];
	bool ok;
	struct wire_str reason;		/* optional */
};

int selftest_verdict_decode(const void *buf, size_t len, struct selftest_verdict *out,
    struct mu_err *err);
int selftest_verdict_encode(const struct selftest_verdict *v, msgpack_sbuffer *out,
    struct mu_err *err);

/* ---- musterd's parent <-> network process (agent/common/priv.c) ------- */

/*
 * One frame of the socketpair between musterd's privileged parent and its
 * network process (design.md §8): {"v":1, "t":<type>, ...fields of that type}.
 * Every field is checked like broker input: the parent trusts nothing the
 * network process says.
 *   job      topic, payload (a job envelope)           network -> parent
 *   module   job, source, sha256 (unless none), reason?  network -> parent
 *   spooled  job                                       network -> parent
 *   result   job, payload (a result, signed and        parent -> network
 *            numbered: an agent envelope)
 *   event    job, payload (an event, signed)           parent -> network
 *   want     job, name, sha256? (the job's pin),       parent -> network
 *            local? (sha256 of modules_dir/NAME.so)
 *   poke     -                                         parent -> network
 *   stop     - (say goodbye, then exit)                parent -> network
 *   release  payload (a release pointer whose two       network -> parent
 *            artifacts are in state_dir/release/)
 *   check    job (an update job: look at the channel    parent -> network
 *            now, no jitter)
 *   noupdate job, reason (nothing to install for it)    network -> parent
 *   status   n (online, will, goodbye), payload (that   parent -> network
 *            status, signed: publish it as it is)
 *   connected -  (the session is up)                    network -> parent
 *   verdict  payload (a self-test verdict as received)  network -> parent
 *   ready    -  (set-up done: user, state, session)     network -> parent
 *   failed   reason (why its set-up failed; it exits)   network -> parent
 *   answered job (its answer's done mark is written:    parent -> network
 *            the spooled result may be published)
 *   durable  n (the first n job frames of this channel  parent -> network
 *            are handled: accepted ones are in the
 *            flushed seen-set; their inbox entries go)
 *   relstate name (fetching|refused|staging), version,  network -> parent
 *            reason? (its release check, for the status)
 *   selftest payload (a self-test's request, signed)    parent -> network
 *   facts    payload (the facts, signed: publish       parent -> network
 *            retained, and again at each connect)
 *   halt     payload (the channel's release halt as     network -> parent
 *            received)
 *   halted   version, n (a verified halt: a release of  parent -> network
 *            that version published at or before n is
 *            not to be fetched)
 */
enum priv_type {
	PRIV_JOB = 1, PRIV_MODULE, PRIV_SPOOLED, PRIV_RESULT, PRIV_EVENT,
	PRIV_MODULE_WANT, PRIV_POKE, PRIV_STOP, PRIV_RELEASE, PRIV_UPDATE_CHECK,
	PRIV_NO_UPDATE, PRIV_STATUS, PRIV_CONNECTED, PRIV_VERDICT,
	PRIV_READY, PRIV_FAILED, PRIV_DURABLE, PRIV_ANSWERED, PRIV_FACTS,
	PRIV_RELEASE_STATE, PRIV_SELFTEST, PRIV_HALT, PRIV_HALTED, PRIV_NTYPES
};
/* Which presence a PRIV_STATUS carries (its n). */
enum priv_status {
	PRIV_STATUS_ONLINE, PRIV_STATUS_WILL, PRIV_STATUS_GOODBYE, PRIV_NSTATUS
};
/* Where a run's module comes from (PRIV_MODULE): none (the reason says
 * why), a local file, the cache; nowhere: not published and not installed
 * (the parent then gives its own reason for modules_dir's file). */
enum priv_source {
	PRIV_SRC_NONE, PRIV_SRC_LOCAL, PRIV_SRC_CACHE, PRIV_SRC_NOWHERE, PRIV_NSOURCES
};

static inline bool
priv_source_has_build(enum priv_source s)
{
	return s == PRIV_SRC_LOCAL || s == PRIV_SRC_CACHE;
}

struct priv_msg {
	struct wire_doc doc;
	enum priv_type type;
	char job[JOBID_MAX_LEN + 1];
	char name[NAME_MAX_LEN + 1];
	char sha256[SHA256_HEX_LEN + 1];	/* "" when absent */
	char local[SHA256_HEX_LEN + 1];		/* want: "" when absent */
	char topic[TOPIC_MAX];
	enum priv_source source;
	struct wire_str reason;
	struct wire_bytes payload;
	uint64_t n;				/* durable: job frames handled;
						 * status: enum priv_status */
	char version[WIRE_MAX_VERSION + 1];	/* relstate */
};

int priv_msg_decode(const void *buf, size_t len, struct priv_msg *out, struct mu_err *err);
int priv_msg_encode(const struct priv_msg *m, msgpack_sbuffer *out, struct mu_err *err);
const char *priv_type_name(enum priv_type t);

/* Helpers shared by the codecs and their users. */
bool version_valid(const char *s);	/* [A-Za-z0-9.+~_-]{1,64} */
bool nonce_valid(const char *s);	/* [0-9a-f]{16,128} */
/* A NUL-terminated malloc'd copy of a view (the caller frees it); NULL for
 * an absent view or when memory runs out. */
char *wire_str_dup(struct wire_str s);
/* Check a msgpack map as args/data: string keys, depth <= 8, no ext. */
int wire_check_map(const msgpack_object *o, struct mu_err *err);

#endif
