/* SPDX-License-Identifier: Apache-2.0 */
/*
 * <muster/client.h> - libmuster-client: send signed jobs to muster agents
 * from a support tool and read their verified results (muster-client(3),
 * docs/design.md §10).  The muster CLI sends its jobs through the same code.
 *
 * A session is one operator identity on one broker: it reads the CLI's
 * configuration (muster.conf(5)) or explicit settings, loads the operator's
 * Ed25519 key (which never leaves this process), and connects (directly,
 * or through the per-user persist process when [cli] persist is set).  A
 * job is built, signed, announced (the operator-signed announce on
 * R/jobs/<id> that tells muster-server whom to expect) and published by
 * muster_job_send(); its results come back one by one, each with its
 * host's signature checked against the fleet CA.  A result that fails the
 * check is never handed over: it is counted as forged in the summary.
 *
 * Thread safety: a session and its jobs are used by one thread at a time;
 * the library locks nothing of the caller's.  Separate sessions may be used
 * on separate threads at once.  Callbacks run on the calling thread, inside
 * muster_job_wait(), never on a library thread.
 *
 * Ownership: muster_session_open() allocates the session and
 * muster_session_close() frees it, with any job not yet freed.
 * muster_job_send() allocates a job; muster_job_free() frees it.  A
 * muster_result, and every string or buffer reached from it, belongs to its
 * job and stays valid until the job is freed.  Strings returned by the
 * library are NUL-terminated; host text is passed on as the agent sent it
 * (bounded by the protocol, not escaped: escape it for your terminal or
 * page).  Pointers passed in are only read during the call.
 *
 * Errors: every call that can fail returns a muster_rc; the session keeps
 * the text of its last error (muster_session_error()).  The library never
 * prints, never exits and installs no signal handler.
 *
 * ABI: the SONAME is libmuster-client.so.0.  Structs passed in start with
 * their size (set it to sizeof the struct you compiled against), so later
 * versions can add fields at the end; results are opaque and read through
 * functions.
 */
#ifndef MUSTER_CLIENT_H
#define MUSTER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(MUSTER_CLIENT_BUILD)
#define MUSTER_API __attribute__((visibility("default")))
#else
#define MUSTER_API
#endif

#define MUSTER_CLIENT_ABI	0	/* the SONAME's number */

enum muster_rc {
	MUSTER_OK = 0,
	MUSTER_DONE,		/* muster_job_next(): every expected host answered */
	MUSTER_ETIMEOUT,	/* the wait ended with expected hosts missing */
	MUSTER_ECONFIG,		/* no configuration, or one that does not hold */
	MUSTER_EKEY,		/* the operator key cannot be read or used */
	MUSTER_ECONNECT,	/* the broker cannot be reached, or refused us */
	MUSTER_ELOST,		/* the broker connection went away during the job */
	MUSTER_EINVAL,		/* a bad argument: module or host name, args, filter */
	MUSTER_EREFUSED,	/* the broker refused the job (ACL) */
	MUSTER_ENOMEM,
	MUSTER_EINTERNAL,
};

/* A short, constant English text for a muster_rc. */
MUSTER_API const char *muster_strerror(int rc);
/* The library's version, e.g. "0.1.0". */
MUSTER_API const char *muster_client_version(void);

/*
 * Where a session's settings come from.  config: a muster.conf(5) path;
 * NULL: $MUSTER_CONFIG, else ~/.config/muster/muster.conf if it exists,
 * as the CLI does.  Each non-NULL field below overrides the file's key.
 * With no file and no broker_uri, muster_session_open() is MUSTER_ECONFIG.
 */
struct muster_settings {
	size_t size;			/* sizeof(struct muster_settings) */
	const char *config;
	const char *broker_uri;		/* [broker] uri, e.g. ssl://mq:8883 */
	const char *ca;			/* [broker] ca */
	const char *cert;		/* [broker] cert (CN op:NAME) */
	const char *key;		/* [broker] key */
	const char *operator_key;	/* [operator] key: Ed25519 PEM */
	const char *topic_root;		/* [broker] topic_root */
	const char *server_url;		/* [server] url */
	int persist;			/* -1: as configured, 0: direct, 1: through
					 * the persist process ([cli] persist) */
};

typedef struct muster_session muster_session;
typedef struct muster_job muster_job;
typedef struct muster_result muster_result;

/* Open a session (connects at once).  On failure *out is NULL and the
 * reason is in errbuf (errlen bytes, may be 0). */
MUSTER_API int muster_session_open(const struct muster_settings *settings,
    muster_session **out, char *errbuf, size_t errlen);
MUSTER_API void muster_session_close(muster_session *s);
/* The text of the session's last error ("" if none); valid until the
 * next call on the session. */
MUSTER_API const char *muster_session_error(const muster_session *s);

enum muster_job_kind {
	MUSTER_JOB_RUN = 0,	/* run a module (module set) */
	MUSTER_JOB_PING,
	MUSTER_JOB_VERSION,
};

/*
 * What to send and to whom.  Targets as the CLI's -H, -g, -a (at least
 * one); filters as its -F texts ("os.id=debian", "mem_mb<4096").  The
 * hosts expected to answer are the named hosts, and for groups, all or a
 * filter the hosts the fleet's retained statuses (or muster-server, with
 * [server] url) say are targeted.
 */
struct muster_job_spec {
	size_t size;			/* sizeof(struct muster_job_spec) */
	enum muster_job_kind kind;
	const char *module;		/* MUSTER_JOB_RUN: the module's name */
	const char *args_json;		/* MUSTER_JOB_RUN: a JSON object, or NULL */
	const char *const *hosts;	/* nhosts host names */
	size_t nhosts;
	const char *const *groups;	/* ngroups group names */
	size_t ngroups;
	int all;			/* non-zero: every host (broadcast) */
	const char *const *filters;	/* nfilters fact predicates */
	size_t nfilters;
	uint64_t timeout_ms;		/* the job's timeout on the host; 0: its default */
	uint64_t wait_ms;		/* how long to wait for answers; 0: the
					 * timeout plus a margin, as the CLI */
};

/* Build, sign, announce and publish the job; returns once the broker has
 * acknowledged it.  The results are read with muster_job_next() or
 * muster_job_wait(). */
MUSTER_API int muster_job_send(muster_session *s, const struct muster_job_spec *spec,
    muster_job **out);
MUSTER_API void muster_job_free(muster_job *j);
/* The job's ids: one per target topic (a job to two hosts is two jobs);
 * NULL past the end. */
MUSTER_API const char *muster_job_id(const muster_job *j, size_t i);

/*
 * The next verified result, in arrival order: MUSTER_OK with *out set;
 * MUSTER_DONE when every expected host has answered; MUSTER_ETIMEOUT when
 * the wait ended first; another code on error (*out NULL then).
 */
MUSTER_API int muster_job_next(muster_job *j, const muster_result **out);
typedef void muster_result_fn(const muster_result *r, void *arg);
/* Call fn for each result until done (MUSTER_OK: every expected host
 * answered), MUSTER_ETIMEOUT, or an error. */
MUSTER_API int muster_job_wait(muster_job *j, muster_result_fn *fn, void *arg);

struct muster_summary {
	size_t size;			/* sizeof(struct muster_summary) */
	size_t expected;		/* hosts expected to answer */
	size_t answered;		/* expected hosts that answered */
	size_t missing;			/* expected hosts that did not */
	size_t unexpected;		/* hosts that answered unexpectedly */
	size_t forged;			/* messages that failed the signature check */
	size_t pass, fail, error, timeout, crashed, cancelled, rejected, interrupted;
};
/* The counts so far (final once next/wait returned DONE or ETIMEOUT). */
MUSTER_API int muster_job_summary(const muster_job *j, struct muster_summary *out);
/* The i-th expected host that has not answered (sorted); NULL past the end. */
MUSTER_API const char *muster_job_missing(const muster_job *j, size_t i);

/* A result's fields.  status is "pass", "fail", "error", "timeout",
 * "crashed", "cancelled", "rejected" or "interrupted". */
MUSTER_API const char *muster_result_host(const muster_result *r);
MUSTER_API const char *muster_result_job(const muster_result *r);
MUSTER_API const char *muster_result_status(const muster_result *r);
MUSTER_API const char *muster_result_summary(const muster_result *r);	/* "" if none */
MUSTER_API const char *muster_result_reason(const muster_result *r);	/* "" if none */
MUSTER_API const char *muster_result_output(const muster_result *r, size_t *len);
/* The module's data map as JSON text ("{}" if none). */
MUSTER_API const char *muster_result_data_json(const muster_result *r);
/* The whole result as one JSON object, as `muster run --json` prints it. */
MUSTER_API const char *muster_result_json(const muster_result *r);
MUSTER_API const char *muster_result_module(const muster_result *r);	/* "" if none */
MUSTER_API const char *muster_result_agent_version(const muster_result *r);
/* Milliseconds since the epoch, by the host's clock. */
MUSTER_API uint64_t muster_result_started_at(const muster_result *r);
MUSTER_API uint64_t muster_result_finished_at(const muster_result *r);

#ifdef __cplusplus
}
#endif

#endif
