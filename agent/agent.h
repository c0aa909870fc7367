/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent.h - musterd: the one struct agent and the parts that work on it.
 *
 * musterd is single-threaded in its own logic (design.md §1): one loop over a
 * signalfd, the MQTT queue's eventfd, the wake listener and each runner's
 * pipes.  All mutable state lives in struct agent, created in main.c and
 * passed to every part.  Each fd and child process has one owner, named
 * where it is declared.
 *
 * As root musterd is two processes (design.md §8), and the folders say
 * which runs what (not root, one process runs both halves, ROLE_BOTH):
 *
 *   parent/   the root parent: checks every job again (intake.c) against
 *             the operator keys and the policy, keeps the seen-set and the
 *             journal (seen.c), spawns and reaps runners (run.c), answers
 *             each job once (results.c), opens and seals the module a run
 *             gets (modopen.c), enforces its floors (floor.c),
 *             stages, tests and installs updates (update.c), owns the wake
 *             port (wake.c).  It touches state_dir (not state_dir/net, which it
 *             only reads, see net_file_owner()), modules_dir, the runners
 *             and the installed binaries; never the network.
 *   net/      the network process, user [agent] user, no capabilities:
 *             the MQTT session and the host key (session.c), module
 *             pointers, fetches and the choice of a build (modsrc.c), its
 *             cache (modcache.c), the release channel (release.c), the
 *             one connection both fetch artifacts over (fetch.c), the
 *             self-test's network half (selftest.c).  It touches only
 *             state_dir/net and the broker; nothing it says is believed
 *             by the parent without a check of its own.
 *   common/   linked by both: the socketpair (priv.c) and its typed
 *             frames, each built in priv_send.c with the table of who may
 *             send which; the checks both make on what the broker sent
 *             (verify.c); the spool (spool.c: the network process writes
 *             it, the parent reads it at start).
 *   main.c    options and start-up; forks into the two.
 *
 * The state follows the same split: struct agent holds what both use,
 * a->par the parent's (struct agent_parent), a->net the network
 * process's (struct agent_net).  No file of parent/ touches a->net, none
 * of net/ touches a->par (tests/interop/test_design.py checks); common/
 * touches each in its own role's functions.
 */
#ifndef MUSTER_AGENT_H
#define MUSTER_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "facts.h"
#include "daemon.h"
#include "hostsig.h"
#include "ipc.h"
#include "jobuid.h"
#include "loop.h"
#include "pgp.h"
#include "policy.h"
#include "sign.h"
#include "subproc.h"
#include "log.h"
#include "wire.h"

#define AGENT_VERSION		MUSTER_VERSION
#define KILL_GRACE_MS		2000	/* SIGTERM -> SIGKILL */
/* Live events of one stream job (run.c stream_event()): each is a signed
 * MQTT message; past either bound the rest are dropped and counted in the
 * result's events_dropped, so a module printing a line at a time cannot
 * make the host publish without end. */
#define RUN_MAX_EVENTS		1000
#define RUN_MAX_EVENT_BYTES	(256 * 1024)	/* of text, all events */
#define CLOCK_SKEW_MS		60000	/* design.md §3: +-60 s */
#define REJECT_BURST		20	/* rejected results per window */
#define REJECT_WINDOW_MS	10000
#define POKE_MIN_INTERVAL_MS	1000	/* wake port rate limit */
/* A signed pointer (manifest and signature) as a message or a file. */
#define SIGNED_POINTER_MAX	(WIRE_MAX_MANIFEST + WIRE_MAX_PGPSIG + 64)

/* ---- seen-set (parent/seen.c): job ids already accepted, persisted --- */

/* In memory an accepted id is its SHA-256's first 8 bytes (0 marks a
 * free slot): 16 bytes a job instead of the id itself.  Two ids sharing
 * those bytes would make the second look replayed -- a refusal, never a
 * second run -- at odds of about n^2 / 2^65. */
struct seen_entry {
	uint64_t hash;
	uint64_t not_after;
};

/* A run job accepted and not yet answered: the journal (seen.c). */
struct seen_run {
	char id[JOBID_MAX_LEN + 1];
	char module[NAME_MAX_LEN + 1];
	uint64_t not_after;
	uint64_t hash;			/* of id, as in the table */
};

struct seen_set {
	struct seen_entry *slots;	/* open addressing, owned */
	size_t n, cap;			/* cap: a power of two, or 0 */
	struct seen_run *runs;		/* owned; few: the unanswered runs */
	size_t nruns, capruns;
	int fd;				/* append log state_dir/seen, owned */
	bool unsynced;			/* appended since the last fdatasync */
	bool sync_failed;		/* ... and a flush failed since */
	char path[CONF_PATH_MAX + 16];
	char dir[CONF_PATH_MAX];	/* state_dir, fsync'ed after a rewrite */
};

int seen_open(struct seen_set *s, const char *state_dir, uint64_t now_ms,
    struct mu_err *err);
bool seen_has(const struct seen_set *s, const char *id);
/* Record an accepted id, durably (fdatasync) before anything acts on it.
 * run_module != NULL: a run job, journaled in the same line until
 * seen_run_done(); a restart answers it "interrupted" (intake.c). */
int seen_add(struct seen_set *s, const char *id, uint64_t not_after,
    const char *run_module, struct mu_err *err);
/* seen_add() in two steps, for a group commit: append (known in memory at
 * once), and one fdatasync for all appended so far.  Nothing may act on
 * an appended id before seen_sync() returned MU_OK. */
int seen_append(struct seen_set *s, const char *id, uint64_t not_after,
    const char *run_module, struct mu_err *err);
int seen_sync(struct seen_set *s, struct mu_err *err);
/* The same for an id recorded already (a journal file of an older
 * version, intake.c). */
int seen_mark_run(struct seen_set *s, const char *id, uint64_t not_after,
    const char *module, struct mu_err *err);
/* The run's one result is spooled: its journal mark goes (durably). */
int seen_run_done(struct seen_set *s, const char *id, struct mu_err *err);
void seen_prune(struct seen_set *s, uint64_t now_ms);
void seen_close(struct seen_set *s);

/* ---- spool and journal (common/spool.c) ------------------------------ */

/* A result waiting for its PUBACK.  File: state_dir/net/spool/<seq>.res holding
 * the topic and the payload. */
struct spooled {
	uint64_t seq;
	char job[JOBID_MAX_LEN + 1];
	char *topic;		/* owned */
	uint8_t *payload;	/* owned */
	size_t len;
	int token;		/* Paho token while in flight, 0 if not sent */
	/* Not published until the parent has written its done mark
	 * ("answered"): once the broker has it, the file goes, and a parent
	 * killed before its mark would answer the job again "interrupted". */
	bool held;
	struct spooled *next;
};

struct spool {
	char dir[CONF_PATH_MAX + 16];		/* state_dir/net/spool */
	char journal[CONF_PATH_MAX + 16];	/* state_dir/running (before) */
	struct spooled *head, *tail;		/* in seq order, owned */
	/* The next result's seq: spool file names and the results' "seq"
	 * field both count with it.  It survives restarts: the newest
	 * acknowledged result is kept as spool/last-<seq> (spool_acked()). */
	uint64_t next_seq;
	uint64_t last_mark;			/* seq of spool/last-<seq>, 0 = none */
	size_t count;
	bool dir_dirty;				/* renamed into it, folder not fsync'ed */
	int dirfd;				/* spool_read() while it reads; else -1 */
};

/* dir: the network process's state (net_dir); journal_dir: the parent's
 * state_dir, where older versions kept running/ (NULL: none). */
int spool_open(struct spool *sp, const char *dir, const char *journal_dir,
    struct mu_err *err);
/* The parent's view of the network process's spool: read only, through a
 * folder opened O_NOFOLLOW; nothing in it is made, moved or removed, and
 * a missing folder is an empty spool. */
int spool_read(struct spool *sp, const char *dir, const char *journal_dir,
    struct mu_err *err);
/* Durably store one result (fsync) and queue it for sending. */
int spool_put(struct spool *sp, const char *job, const char *topic,
    const void *payload, size_t len, struct mu_err *err);
/* spool_put() in two steps, for a group commit: the file (fsync'ed and
 * renamed), and one fsync of the folder for all staged so far.  Nothing
 * may be sent or acknowledged before spool_sync() returned MU_OK. */
int spool_stage(struct spool *sp, const char *job, const char *topic,
    const void *payload, size_t len, struct mu_err *err);
int spool_sync(struct spool *sp, struct mu_err *err);
bool spool_has_job(const struct spool *sp, const char *job);
/* The result with this token was acknowledged: forget it (unlink). */
void spool_acked(struct spool *sp, int token);
void spool_close(struct spool *sp);

/* Before the journal moved into the seen-set, state_dir/running/job-<id>
 * held each unfinished job's body; a start after an upgrade moves what it
 * finds there into the seen-set (intake.c), then removes the file. */
void journal_remove(struct spool *sp, const char *id);

/* ---- runs (parent/run.c) --------------------------------------------- */

/* QUEUED -> (WAITING for its module ->) QUEUED -> RUNNING -> DONE.  A
 * waiting run holds no slot of max_jobs. */
enum run_state { RUN_QUEUED, RUN_WAITING, RUN_RUNNING, RUN_DONE };

struct run {
	struct job job;			/* decoded body; borrows from body */
	uint8_t *body;			/* owned copy of the signed body */
	size_t body_len;
	enum run_state state;
	pid_t pid;			/* runner (and its group), owned until reaped */
	int in_fd, ev_fd, out_fd;	/* pipes to the runner, owned; -1 when closed */
	size_t in_off;			/* bytes of body written to stdin */
	struct ipc_reader events;
	char *output;			/* captured text, owned, <= limit */
	size_t output_len;
	bool truncated;
	bool state_truncated;		/* a state frame said it was cut */
	bool have_verdict;
	enum result_status verdict;
	char *summary, *reason;		/* owned, from the verdict or the agent;
					 * summary also from state frames */
	uint8_t *data;			/* owned msgpack map from the verdict,
					 * or the last state frame's */
	size_t data_len;
	char module_version[WIRE_MAX_VERSION + 1];
	char module_sha256[SHA256_HEX_LEN + 1];
	bool timed_out, cancelled, interrupted;
	int wait_status;		/* from waitpid */
	bool reaped;
	uint64_t started_at;		/* wall ms */
	uint64_t timeout_timer, kill_timer;
	uint64_t event_seq;		/* events sent (seq of the last) */
	uint64_t event_bytes;		/* their text */
	uint64_t events_dropped;	/* past RUN_MAX_EVENTS/_BYTES */
	struct module_file *module;	/* owned once the network process named a
					 * build and the parent checked it */
	uint64_t wait_timer, wait_timer_ms;	/* WAITING for the module */
	uint64_t wait_began;		/* mono ms of the first want; 0: none */
	uint64_t fetch_ms;		/* how long the module took to be had */
	char local_why[256];		/* why modules_dir/NAME.so was refused */
	struct agent *agent;		/* back pointer for timers */
	/* From the policy rule that allowed the job (design.md §8). */
	char run_as[CONF_USER_MAX + 1];	/* "" = do not switch (not root) */
	uid_t job_uid;			/* its own uid (lib/jobuid.h) while its
					 * runner lives; 0: none */
	uint64_t timeout_cap_ms;	/* 0 = no cap */
	bool net_no;			/* the rule says net=no */
	struct run *next;
};

/* ---- modules over the broker (net/modsrc.c, net/modcache.c) ---------- */

/* A build in the cache state_dir/modcache (modcache.c). */
struct modcached {
	char sha256[SHA256_HEX_LEN + 1];
	char name[NAME_MAX_LEN + 1];
	char version[WIRE_MAX_VERSION + 1];
	char signer[PGP_FPR_MAX + 1];	/* primary fingerprint that signed it */
	uint64_t size, published_at;
	uint64_t last_used;		/* wall ms, for LRU eviction */
	struct modcached *next;
};

/* The latest pointer seen on R/modules/<name>, checked lazily: only names
 * this host uses cost a signature check. */
struct modptr {
	char name[NAME_MAX_LEN + 1];
	uint8_t *raw;			/* owned message as received; NULL: retired */
	size_t len;
	bool checked;			/* rc/why/fields below are valid */
	int rc;				/* MU_OK: accepted */
	char why[256];			/* refusal, when rc != MU_OK */
	char sha256[SHA256_HEX_LEN + 1], version[WIRE_MAX_VERSION + 1];
	uint64_t published_at;
	size_t nwithdrawn;		/* builds the pointer withdraws: */
	char (*withdrawn)[SHA256_HEX_LEN + 1];	/* owned; NULL when none, so that
					 * 4096 names cost nothing for it */
	uint64_t gen;			/* connection it was last delivered on */
	uint64_t prefetch_timer;
	struct agent *agent;
	struct modptr *next;
};

/* The network process's side of a run: the parent wants its module
 * (PRIV_MODULE_WANT); answered with PRIV_MODULE once a build is chosen,
 * fetched if need be, or cannot be had. */
struct modreq {
	char job[JOBID_MAX_LEN + 1];
	char module[NAME_MAX_LEN + 1];
	char pin[SHA256_HEX_LEN + 1];		/* "" = the published build */
	char local_sha[SHA256_HEX_LEN + 1];	/* modules_dir has it ("" = no) */
	char wait_sha[SHA256_HEX_LEN + 1];	/* waiting for this fetch; "" = for
						 * the pointers after a connect */
	struct modreq *next;
};

/* One artifact being fetched: all requests waiting for it share it. */
struct modfetch {
	char name[NAME_MAX_LEN + 1];
	char sha256[SHA256_HEX_LEN + 1];
	char topic[TOPIC_MAX];
	uint64_t timer;
	struct agent *agent;
	struct modfetch *next;
};

struct modsrc {
	char dir[CONF_PATH_MAX + 16];	/* state_dir/modcache */
	struct modcached *cache;	/* owned */
	uint64_t cache_bytes;
	struct modptr *ptrs;		/* owned */
	size_t nptrs;
	struct modfetch *fetches;	/* owned */
	struct modreq *reqs;		/* owned: waiting requests */
	bool settled;			/* retained pointers delivered since connect */
	bool awaiting_suback;
	uint64_t settle_timer, gen;
	/* counters, logged at exit */
	uint64_t fetches_started, fetched, cache_hits, refused, tampered;
};

/* ---- the artifacts' connection (net/fetch.c) ------------------------- */

struct agent;

/* Takes a message on a topic its user asked for; may drop topics. */
typedef void (*fetch_handler)(struct agent *a, const char *topic, const uint8_t *p,
    size_t len);

/* A topic wanted on the fetch connection and who takes its messages. */
struct fetch_topic {
	char topic[TOPIC_MAX];
	fetch_handler handler;
	struct fetch_topic *next;
};

/* The one connection "<host>.fetch" that modules and releases share. */
struct fetch_conn {
	struct bus *bus;		/* owned; open while topics are wanted */
	struct fetch_topic *topics;	/* owned */
	uint64_t retry_timer, idle_timer;
};

/* ---- self-update (net/release.c, parent/update.c) -------------------- */

/* The network process follows R/releases/<channel> (design.md §5). */
struct release_follow {
	uint8_t *raw;			/* latest pointer as received, owned */
	size_t len;
	char job[JOBID_MAX_LEN + 1];	/* an update job asked: answer it */
	bool busy;			/* waiting (jitter) or fetching */
	char version[WIRE_MAX_VERSION + 1];	/* of the one being fetched */
	char sha[2][SHA256_HEX_LEN + 1];	/* agent, runner */
	uint64_t size[2];
	bool have[2];
	char topic[2][TOPIC_MAX];
	uint64_t jitter_timer, fetch_timer;
	/* The pointer's schedule raises the rollout later: look again then. */
	uint64_t step_timer;
	/* A halt the parent verified (PRIV_HALTED): a release of this version
	 * published at or before halt_at is not fetched.  "" = none. */
	char halt_version[WIRE_MAX_VERSION + 1];
	uint64_t halt_at;
};

/* The parent's side: what it is doing with a release. */
enum update_phase { UPD_IDLE, UPD_TESTING };

struct update {
	enum update_phase phase;
	char agent_path[CONF_PATH_MAX];	/* the installed musterd */
	char version[WIRE_MAX_VERSION + 1];	/* being tested */
	uint64_t published_at;
	char nonce[WIRE_MAX_NONCE + 1];
	pid_t child;			/* the staged self-test, owned until reaped */
	bool child_ok;			/* it exited 0 */
	int verdict;			/* seen by us: 1 good, -1 bad, 0 not yet */
	uint64_t timer;
	/* An update job waiting for its answer (from this or the new version). */
	uint8_t *job_body;		/* owned */
	size_t job_len;
	/* After an update: the pending window (update.pending). */
	bool pending;
	char prev_version[WIRE_MAX_VERSION + 1];
	bool answered;			/* a job's result reached the spool since start */
	uint64_t healthy_timer;
	char **argv;			/* ours, for a rollback's exec */
	uint8_t *state;			/* the status "update" map last sent, owned */
	size_t state_len;
	char sent_state[16];		/* ... its state and version */
	char sent_version[WIRE_MAX_VERSION + 1];
	/* An update cut short by a restart, found at start, reported once up. */
	char boot_version[WIRE_MAX_VERSION + 1];
	char boot_reason[256];
	/* The channel's release halt, verified (halt.c); "" = none. */
	char halt_version[WIRE_MAX_VERSION + 1];
	uint64_t halt_at;
	char halt_reason[RELEASE_HALT_REASON_MAX + 1];
	uint64_t halts_ignored;		/* forged, malformed, another channel's */
};

/* ---- privilege separation (common/priv.c) ---------------------------- */

/*
 * As root musterd is two processes (design.md §8): the parent (ROLE_PARENT)
 * keeps the operator keys, the policy, the seen-set, the journal and the
 * runners; the network process (ROLE_NET, user [agent] user, no
 * capabilities) keeps the MQTT session, the host key, the spool and the
 * module cache.  Not root, one process does both (ROLE_BOTH), over the
 * same socketpair: one code path.
 */
enum agent_role { ROLE_BOTH, ROLE_PARENT, ROLE_NET };

/* One end of the socketpair: typed frames (lib/wire.h struct priv_msg),
 * 4-byte length first; what cannot be written now waits in out. */
struct chan {
	int fd;				/* owned; -1 when closed */
	struct ipc_reader in;
	uint8_t *out;			/* owned */
	size_t out_off, out_len, out_cap;
};

/* A result the parent sent and the network process has not yet spooled:
 * sent again to a new network process. */
/*
 * Bounds on the results waiting for the network process's "spooled"
 * (issue 22): one that never acknowledges must not grow the parent.  A
 * result past them is not kept in memory: its job stays unanswered in
 * the seen-set's journal and is answered "interrupted" at the agent's
 * next start (intake_interrupted()).  The channel's outgoing buffer is
 * bounded above them (priv.c chan_out_max()), so all of them fit in it
 * again for a new network process.
 */
#define PENDING_MAX		4096
#define PENDING_BYTES_MAX	(16u << 20)	/* bodies, plus PENDING_OVERHEAD each */
#define PENDING_OVERHEAD	128u
#define PENDING_GRACE_MS	10000	/* a new network process's time to catch up */

struct pending {
	char job[JOBID_MAX_LEN + 1];
	uint8_t *body;			/* owned result body */
	size_t len;
	struct pending *next;
};

/*
 * run_as users resolved for runners (run.c): getpwnam() and getgrouplist()
 * read /etc/nsswitch.conf, /etc/passwd, /etc/group and probe systemd's
 * userdb on every call, a sizeable share of a run's start.  An entry is
 * used while /etc/passwd and /etc/group are unchanged and for at most
 * USER_CACHE_TTL_MS (other NSS sources); a reload (SIGHUP) empties it.
 */
#define USER_CACHE_SLOTS	8
#define USER_CACHE_TTL_MS	60000

struct user_cache_entry {
	char name[CONF_USER_MAX + 1];	/* "" = free */
	uint64_t resolved_at;		/* monotonic ms */
	uid_t uid;
	gid_t gid;
	gid_t groups[SPAWN_MAX_GROUPS];
	int ngroups;
};

struct user_cache {
	struct user_cache_entry e[USER_CACHE_SLOTS];
	unsigned next;			/* slot to replace */
	char files[128];		/* identity of /etc/passwd and /etc/group */
};

/*
 * The parent's sealed copies of modules_dir's files (modopen.c), so a run
 * of an unchanged file neither reads nor hashes nor copies it again.  A
 * copy is used only while the file's inode, size, owner, mode and change
 * and modification times are what they were when it was read (any write
 * changes the change time), and only if the file was older than a second
 * then (a write within the same timestamp tick would go unseen).  Sealed:
 * no runner can change it, so every runner may get the same one.
 */
#define LOCAL_SLOTS		8
#define LOCAL_MAX_SIZE		(4u << 20)	/* larger modules are read each time */
#define LOCAL_IDLE_MS		(5 * 60 * 1000)

struct modlocal {
	char name[NAME_MAX_LEN + 1];	/* "" = free */
	char sha256[SHA256_HEX_LEN + 1];
	struct stat st;			/* the file when it was read */
	int memfd;			/* sealed copy, owned */
	uint64_t used_at;		/* monotonic ms */
};

/* A job forwarded to the parent and still in the network process's inbox
 * (inbox.h) until the parent says it is durable: frame is its number among
 * this channel's job frames. */
struct held_job {
	uint64_t frame;
	uint64_t seq;
};

/* ---- the agent ------------------------------------------------------- */

/*
 * The root parent's state (agent/parent/, and the parent's half of
 * agent/common/priv.c).  The network process never reads it: after its
 * exec it is zero there.
 */
struct agent_parent {
	struct keyring operators;	/* owned */
	struct policy policy;		/* owned; replaced whole on SIGHUP */
	bool switch_user;		/* root: runners run as their run_as user */
	struct jobuids jobuids;		/* [limits] job_uids; count 0: off */
	struct seen_set seen;		/* owned */
	struct run *runs;		/* queued and running jobs, owned */
	int nrunning;
	int wake_fd;			/* listener, owned; -1 when off */
	int wake_fd_inherited;		/* --wake-fd N from the exec of an update */
	char runner_version[WIRE_MAX_VERSION + 1];
	uint64_t last_poke;
	/* rate limit of rejected results */
	uint64_t reject_window_start;
	int reject_count;
	/* counters for the log */
	uint64_t pokes, pokes_refused, jobs_accepted, jobs_rejected;
	uint64_t jobs_duplicate;	/* deliveries of an id already accepted */
	struct daemon_watchdog watchdog;
	/* Runner confinement (design.md §8): the seccomp program, built once;
	 * confined: root, so each runner gets a PID namespace. */
	struct sock_fprog runner_filter;	/* owned */
	/* [limits] writable, split (config_writable()): pointers into
	 * writable_buf, the folders a job with its own uid may write. */
	char writable_buf[CONF_PATH_MAX];
	const char *writable[CONF_WRITABLE_MAX];
	int nwritable;
	struct sock_fprog runner_filter_no_inet; /* owned: the same, and no
					 * IPv4/IPv6 sockets (design.md §8) */
	bool confined;
	int runner_fd;			/* O_PATH of [agent] runner, owned; -1: by path */
	struct user_cache users;	/* run_as lookups (above) */
	struct modlocal local[LOCAL_SLOTS];	/* sealed local modules (above) */
	/* The network process (priv.c, design.md §8): its end of the
	 * socketpair, its pid (0 = none), its user, its restarts. */
	struct chan to_net;
	pid_t net_pid;
	uid_t net_uid;
	gid_t net_gid;
	uint64_t net_restart_timer;
	unsigned net_restarts;
	uint64_t net_spawned_ms;	/* when this network process began */
	/* Readiness (priv_net_ready()): READY=1 sent; the current network
	 * process finished its set-up; set-ups failed in a row and the last
	 * reason given (printable, bounded); the watchdog no longer fed. */
	bool ready_sent, net_ready, watchdog_starved;
	unsigned net_fails;
	char net_why[256];
	/* A replacement asked for from inside a send (priv.c
	 * priv_net_replace()), done from the loop: which process, and why
	 * (a string literal). */
	uint64_t net_replace_timer;
	pid_t net_replace_pid;
	const char *net_replace_why;
	struct pending *pending;	/* results sent, not yet spooled */
	size_t npending, pending_bytes;	/* their count and weight (results.c) */
	struct accepted *accepted;	/* jobs waiting for their flush
					 * (intake.c), owned */
	/* Jobs acknowledged only once durable (design.md §3, lib/inbox.h):
	 * job frames read on this channel and those said durable. */
	uint64_t jobs_in, jobs_durable;
	char (*answered)[JOBID_MAX_LEN + 1];	/* done marks written in this
						 * read, owned */
	size_t nanswered, capanswered;
	struct update upd;		/* self-update (design.md §5) */
	char selftest_job[JOBID_MAX_LEN + 1];	/* the test job, once accepted */
	struct facts facts;		/* this host's, owned (parent/facts.c) */
	uint64_t facts_timer;
	uint64_t jobs_filtered;		/* jobs whose filter this host did not match */
	/* The host signing key (sign.c), owned, and the result counter. */
	struct hostsig_signer *signer;
	int seq_fd;			/* state_dir/result-seq, owned */
	uint64_t next_seq;
};

/*
 * The network process's state (agent/net/, and its half of
 * agent/common/priv.c): the broker session and everything it decodes.
 * The parent never reads it.
 */
struct agent_net {
	struct bus *bus;		/* owned */
	struct modsrc mods;		/* owned */
	struct fetch_conn fetch;	/* owned */
	/* The presence the parent signed (PRIV_STATUS): online, the will,
	 * the goodbye; owned.  The network process holds no signing key. */
	uint8_t *status[PRIV_NSTATUS];
	size_t status_len[PRIV_NSTATUS];
	/* The self-test's request, signed by the parent, owned. */
	uint8_t *selftest_req;
	size_t selftest_req_len;
	/* session */
	bool connecting;
	uint64_t backoff_ms, reconnect_timer, flush_timer;
	uint64_t jobs_retained;		/* retained messages on job topics, ignored */
	struct chan to_parent;		/* its end of the socketpair */
	pid_t net_parent;		/* its parent's pid */
	char (*staged)[JOBID_MAX_LEN + 1];	/* results spooled but not yet
						 * acknowledged, owned */
	size_t nstaged, capstaged;
	/* Jobs acknowledged only once durable (design.md §3, lib/inbox.h):
	 * the inbox, the jobs sent and held in it. */
	struct inbox *inbox;		/* owned */
	struct held_job *held;		/* owned, in frame order */
	size_t nheld, capheld;
	uint64_t jobs_sent;
	uint64_t inbox_failures;	/* reported so far */
	struct release_follow rel;	/* the release channel (design.md §5) */
	/* The signed facts the parent gave last (PRIV_FACTS), owned:
	 * published retained at once and again at each connect. */
	uint8_t *facts;
	size_t facts_len;
	/* A self-test's request resend and its deadline (selftest.c). */
	uint64_t selftest_resend, selftest_deadline;
};

/*
 * One per process.  What both processes use is here; the rest is in the
 * part of the process that owns it (a->par, a->net).  Started as
 * non-root, musterd is one process (ROLE_BOTH) and uses both parts.
 */
struct agent {
	struct agent_config cfg;
	char conf_path[CONF_PATH_MAX];
	/* The network process's part of the state (docs/operations.md,
	 * "State on the host"): state_dir/net in the parent, "." in the
	 * network process (its working folder). */
	char net_dir[CONF_PATH_MAX + 8];
	struct loop *loop;		/* owned */
	struct spool spool;		/* owned; the parent reads it at start */
	int sigfd;			/* signalfd, owned */
	char root[NAME_MAX_LEN + 1];	/* topic root */
	uint64_t started_at;		/* wall ms */
	bool stopping;
	uint64_t jobs_oversize;		/* envelopes over max_job, dropped */
	enum agent_role role;		/* privilege separation (priv.c, design.md §8) */
	/* Started as "musterd --self-test" by a live agent (a staged version):
	 * client id <host>.selftest, no presence, one test job, then exit. */
	bool selftest;
	char selftest_nonce[WIRE_MAX_NONCE + 1];
	int selftest_rc;		/* exit status of the self-test */
	int exit_rc;			/* agent_main's exit status */
	struct agent_parent par;
	struct agent_net net;
};

/* main.c */
int agent_main(struct agent *a);
void agent_shutdown(struct agent *a);

/* parent/reap.c: on SIGCHLD, every child reaped and handed to its owner */
void parent_reap(struct agent *a);

/* net/session.c: MQTT connection, subscriptions, presence, publishing */
int session_start(struct agent *a, struct mu_err *err);
void session_poke(struct agent *a);
/* A presence the parent signed: kept; the online one published now if
 * connected, the will used from the first connect on. */
void session_status(struct agent *a, enum priv_status which, const void *env, size_t len);
/* A result from the parent, signed by it, spooled: staged (its file fsync'ed),
 * then results_commit() fsyncs the spool folder once for every result
 * staged since, and sends them.  Only then may their "spooled" go. */
int result_stage(struct agent *a, const char *job, const void *body, size_t len);
int results_commit(struct agent *a);
/* Send an event the parent signed (QoS 0, only while connected). */
void event_publish(struct agent *a, const char *job, const void *body, size_t len);
void spool_flush(struct agent *a);
void session_stop(struct agent *a);

/* parent/results.c: the parent's side of each job's one answer */
void result_init(struct agent *a, struct result *r, const struct job *j,
    enum result_status st);
int result_submit(struct agent *a, struct result *r);
void results_spooled(struct agent *a, const char *job);
bool results_pending(const struct agent *a, const char *job);
void results_resend(struct agent *a);
void results_free(struct agent *a);

/* parent/facts.c: the host's facts (design.md §3), kept in a->par.facts */
int facts_gather(struct agent *a, struct facts *out, struct mu_err *err);
/* Gather again; tell the network process if they changed, or if publish.
 * On failure the facts in force stay. */
int facts_refresh(struct agent *a, bool publish, struct mu_err *err);
void facts_refresh_logged(struct agent *a, bool publish);	/* ... errors logged */
/* Tell the network process the current facts (once it is ready). */
int facts_send(struct agent *a, struct mu_err *err);
/* The first gathering, and the timer of the others. */
int facts_start(struct agent *a, struct mu_err *err);
void facts_stop(struct agent *a);

/* parent/userdb.c: the job uids' user and group records for nss-systemd */
/* Records for first..first+count-1 in dir (made if missing). */
int userdb_write(const char *dir, uid_t first, unsigned count, struct mu_err *err);
/* At start, as root with job uids: the range's records, or a warning. */
void userdb_start(struct agent *a);

/* net/session.c: the facts the parent signed, kept and published */
void session_facts(struct agent *a, const void *body, size_t len);

/* parent/intake.c: the acceptance rules and the kinds */
/* A job message: checked, and if accepted its id appended to the seen-set
 * and the job queued until intake_commit(), which the caller runs once it
 * has handed over every job it read at once (one flush for all). */
void intake_message(struct agent *a, const char *topic, const uint8_t *p, size_t len);
void intake_commit(struct agent *a);
void intake_interrupted(struct agent *a);
/* May the policy file be missing (the default path: no policy)? */
bool intake_policy_optional(const struct agent_config *cfg);
/* Load the policy named by cfg into *out (main.c: start, check). */
int intake_policy_load(const struct agent_config *cfg, struct policy *out,
    struct mu_err *err);

/* parent/run.c: runner processes */
int run_submit(struct agent *a, struct run *r);
void run_cancel(struct agent *a, struct run *r);
/* The parent's reaper (reap.c) reaped r's runner. */
void run_exited(struct agent *a, struct run *r, int status);
struct run *run_find(struct agent *a, const char *id);
void run_interrupt_all(struct agent *a);

/* parent/run.c: the network process answered PRIV_MODULE for a run; a new
 * network process is asked again for what the old one did not answer. */
void run_module_answer(struct agent *a, const struct priv_msg *m);
void run_net_restarted(struct agent *a);
/* Forget the resolved run_as users (reload: users or policy may differ). */
void run_users_forget(struct agent *a);

/* common/priv.c: the two processes and the messages between them */
int priv_start(struct agent *a, struct mu_err *err);
/* Parent: the network process finished its set-up (PRIV_READY). */
void priv_net_ready(struct agent *a);
/* Network process: the parent wrote the job's done mark (PRIV_ANSWERED). */
void result_answered(struct agent *a, const char *job);
/* Parent: a job whose done mark is written; "answered" goes to the network
 * process after the flush that ends this read. */
void answered_add(struct agent *a, const char *job);
/* main.c: READY=1 to systemd, once; STATUS= (both no-ops without systemd
 * and in the network process). */
void agent_ready(struct agent *a);
void agent_status(struct agent *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Parent, before anything opens the state: state_dir (0700) and the
 * network process's state_dir/net with its folders, owned by [agent]
 * user when root; sets a->net_dir. */
int net_state_prepare(struct agent *a, struct mu_err *err);
/* Who owns a file the network process wrote into state_dir/net: [agent]
 * user in the parent, ourselves in one process.  The owner read_untrusted()
 * (util.h) insists on for the parent's reads there. */
static inline uid_t
net_file_owner(const struct agent *a)
{
	return a->role == ROLE_PARENT ? a->par.net_uid : geteuid();
}
void priv_stop(struct agent *a);
void priv_free(struct agent *a);
void priv_drain(struct agent *a);
void priv_test_garbage(struct agent *a);	/* SIGUSR2 in the network process */
void priv_net_replace(struct agent *a, const char *why);	/* kill it, start another */
/* The network process's main (musterd --net FDS), its start and stop
 * (session.c), also used by one process not running as root. */
int net_main(struct agent *a, const char *fds);
int net_start(struct agent *a, struct mu_err *err);
int net_filter_install(struct mu_err *err);	/* net/netfilter.c */
/* The self-test nonce crosses an exec through a pipe, never argv or the
 * environment (readable in /proc): the read end (close-on-exec), or -1. */
int nonce_pipe(const char *nonce);
void net_stop(struct agent *a);
/* Parent: its reaper (reap.c) reaped the network process. */
void priv_net_exited(struct agent *a, int status);
/* network -> parent: a job message; inbox_seq (0: none) stays in the
 * inbox until the parent says it is durable. */
void priv_job(struct agent *a, const char *topic, const uint8_t *p, size_t len,
    uint64_t inbox_seq);

/*
 * common/priv_send.c: every frame to the other side, one function per
 * type (the table of who may send what is there too).  Each returns
 * MU_OK once the frame is queued; a side that is down is told anew when
 * it is back (results.c, update_net_started()), so callers need not act.
 */
/* parent -> network */
int priv_send_result(struct agent *a, const char *job, const void *body, size_t len);
int priv_send_event(struct agent *a, const char *job, const void *body, size_t len);
int priv_send_want(struct agent *a, const struct run *r, const char *local_sha);
int priv_send_poke(struct agent *a);
int priv_send_stop(struct agent *a);
int priv_send_update_check(struct agent *a, const char *job);
int priv_send_status(struct agent *a, enum priv_status which, const void *env, size_t len);
int priv_send_selftest(struct agent *a, const void *env, size_t len);
int priv_send_durable(struct agent *a, uint64_t n);
int priv_send_answered(struct agent *a, const char *job);
int priv_send_facts(struct agent *a, const void *body, size_t len);
/* network -> parent */
int priv_send_job(struct agent *a, const char *topic, const uint8_t *p, size_t len);
int priv_send_module(struct agent *a, const char *job, enum priv_source src,
    const char *sha256, const char *reason);
int priv_send_spooled(struct agent *a, const char *job);
int priv_send_release(struct agent *a, const void *pointer, size_t len);
int priv_send_no_update(struct agent *a, const char *job, const char *why);
int priv_send_connected(struct agent *a);
int priv_send_verdict(struct agent *a, const void *verdict, size_t len);
int priv_send_halt(struct agent *a, const void *halt, size_t len);
int priv_send_halted(struct agent *a, const char *version, uint64_t at);
int priv_send_release_state(struct agent *a, const char *state, const char *version,
    const char *reason);
int priv_send_setup(struct agent *a, bool ok, const char *reason);	/* ready/failed */

/* parent/modopen.c: the module a run gets, checked and sealed */
struct module_file {
	int memfd;			/* sealed copy, owned by the caller */
	char sha256[SHA256_HEX_LEN + 1];
	uint64_t size;
	bool local;			/* modules_dir's: no manifest, the host's
					 * own file; its descriptor decides */
	bool net;			/* signed: its manifest declares "net" */
};
/* The build the network process named, checked again (signature, name,
 * ABI, pin, sha256, the parent's floor) and sealed in a memfd. */
int modopen_build(struct agent *a, const struct run *r, enum priv_source src,
    const char *sha256, struct module_file *out, struct mu_err *err);
/* The sha256 of modules_dir/NAME.so if it is there and trusted; MU_ENOENT
 * if there is none, another error (err says why) if refused. */
int modopen_local_sha(struct agent *a, const char *name, char sha[SHA256_HEX_LEN + 1],
    struct mu_err *err);
/* Close the sealed copies of local modules unused for a while. */
void modopen_local_expire(struct agent *a);

/* net/modsrc.c: where a module comes from (design.md §3, §8): pointers,
 * fetches, the choice of a build for the parent's request */
int modsrc_init(struct agent *a, struct mu_err *err);
void modsrc_free(struct agent *a);
/* A request from the parent: answered now or when its build arrives. */
void modsrc_want(struct agent *a, const struct priv_msg *m);
void modsrc_message(struct agent *a, const char *topic, const uint8_t *p, size_t len);
int modsrc_subscription(const struct agent *a, char *buf, size_t len);
void modsrc_connected(struct agent *a);
void modsrc_subscribed(struct agent *a);

/* net/fetch.c: the artifacts' connection, shared by modsrc.c and
 * release.c.  fetch_want subscribes topic (opening the connection if need
 * be) and hands its messages to handler until fetch_drop; with no topic
 * left, linger keeps the connection a few seconds for the next fetch,
 * else it closes at once. */
int fetch_want(struct agent *a, const char *topic, fetch_handler handler,
    struct mu_err *err);
void fetch_drop(struct agent *a, const char *topic, bool linger);
void fetch_free(struct agent *a);

/*
 * parent/floor.c: the parent's floors in state_dir/floors/KIND[/NAME] (kind
 * "modules" with a module name, "release" with NULL): the newest
 * published_at the parent accepted, 0 when none.  Raising to a lower
 * value is a no-op.  Parent only: the network process has its own.
 */
uint64_t parent_floor(struct agent *a, const char *kind, const char *name);
int parent_floor_raise(struct agent *a, const char *kind, const char *name,
    uint64_t published_at, struct mu_err *err);

/* net/modcache.c: the cache on disk */
int modcache_load(struct agent *a, struct mu_err *err);
void modcache_free(struct agent *a);
struct modcached *modcache_find(struct agent *a, const char *sha256);
struct modcached *modcache_newest(struct agent *a, const char *name);
bool modcache_has_name(struct agent *a, const char *name);
int modcache_check(struct agent *a, struct modcached *e, struct mu_err *err);
/* Remove the cached build sha256 of module name, if there is one (why is
 * logged). */
void modcache_drop(struct agent *a, const char *name, const char *sha256, const char *why);
/* Replace a cached build's signed manifest (.ptr) with the newer one m
 * came from (ptr: a signed pointer); nothing if not cached or not newer. */
int modcache_refresh(struct agent *a, const struct module_manifest *m, const char *signer,
    const void *ptr, size_t ptrlen, struct mu_err *err);
int modcache_store(struct agent *a, const struct module_manifest *m, const char *signer,
    const void *ptr, size_t ptrlen, const void *so, size_t solen, struct mu_err *err);
uint64_t modcache_floor(struct agent *a, const char *name);
int modcache_set_floor(struct agent *a, const char *name, uint64_t published_at,
    struct mu_err *err);

/* net/release.c: the network process follows the channel (design.md §5) */
int release_subscription(const struct agent *a, char *buf, size_t len);
void release_message(struct agent *a, const uint8_t *p, size_t len);
void release_check(struct agent *a, const char *job);	/* PRIV_UPDATE_CHECK */
void release_set_state(struct agent *a, const char *state, const char *version,
    const char *reason);
void release_free(struct agent *a);
/* R/releases/<channel>/halt: passed to the parent, which verifies it. */
int release_halt_subscription(const struct agent *a, char *buf, size_t len);
void release_halt_message(struct agent *a, const uint8_t *p, size_t len);
void release_halted(struct agent *a, const char *version, uint64_t at);	/* PRIV_HALTED */

/* common/verify.c: the checks both processes make on what the broker sent
 * (the parent again, in its own address space) */
/* Before any decoding: a job envelope over max_job (logged and counted). */
bool job_oversize(struct agent *a, size_t len);
/* Verify a signed module manifest: signature by a listed publisher, kind,
 * name (when given), ABI, size limit.  On MU_OK m holds the decode (the
 * caller frees m->doc) and fpr the signer. */
int verify_module_manifest(struct agent *a, const char *name, const void *manifest,
    size_t mlen, const void *sig, size_t siglen, struct module_manifest *m,
    char fpr[PGP_FPR_MAX + 1], struct mu_err *err);
/* Verify a release pointer: signature by a listed publisher, manifest,
 * channel.  On MU_OK m holds the decode (the caller frees m->doc). */
int verify_release_pointer(struct agent *a, const void *p, size_t len,
    struct release_manifest *m, char fpr[PGP_FPR_MAX + 1], struct mu_err *err);
/* Bucket of this host for rollouts: sha256(host)[0..4] big-endian mod 100. */
unsigned release_bucket(const char *host);

/* parent/update.c: the parent stages, tests, installs and rolls back */
int update_boot(struct agent *a, char **argv, struct mu_err *err);
void update_release(struct agent *a, const struct priv_msg *m);
void update_job(struct agent *a, const struct job *j, const void *body, size_t len);
void update_started(struct agent *a);
void update_net_started(struct agent *a);
/* The network process's release check's state (PRIV_RELEASE_STATE). */
void update_net_state(struct agent *a, const struct priv_msg *m);
void update_no_update(struct agent *a, const struct priv_msg *m);
/* The status says "halted" for the halted version, unless this host runs it
 * or is in the middle of an update. */
void update_halt_report(struct agent *a);

/* parent/halt.c: the channel's release halt (PRIV_HALT), verified */
void halt_message(struct agent *a, const void *p, size_t len);
void update_connected(struct agent *a);
/* Its reaper (reap.c) reaped the staged self-test. */
void update_child_exited(struct agent *a, int status);
/* A self-test's verdict the network process passed on, decoded; only
 * while testing (priv_rules[]). */
void update_verdict(struct agent *a, const struct selftest_verdict *v);
void update_free(struct agent *a);
/* the self-test side (musterd --self-test) */
void selftest_connected(struct agent *a);
/* Its request, signed by the parent (PRIV_SELFTEST): kept, sent on connect. */
void selftest_request(struct agent *a, const void *env, size_t len);
/* The parent: a nonce of its own when none was given (sign.c signs it). */
int selftest_nonce_make(struct agent *a);
/* True when it was our verdict: the self-test is over (session.c ends it). */
bool selftest_verdict(struct agent *a, const uint8_t *p, size_t len);

/* parent/sign.c: every message this host publishes, signed by the parent
 * with the host signing key (design.md §3, §8) */
int sign_open(struct agent *a, struct mu_err *err);
void sign_close(struct agent *a);
/* The key file is the parent's alone (mode, owner); for --check-config. */
int sign_key_private(const char *path, bool split, uid_t net_uid, const char *net_user,
    struct mu_err *err);
int sign_body(struct agent *a, const void *body, size_t len, msgpack_sbuffer *out,
    struct mu_err *err);
/* A result, numbered (its "seq") and signed. */
int sign_result(struct agent *a, const void *body, size_t len, msgpack_sbuffer *out,
    struct mu_err *err);
/* The will and goodbye (and the online status too) to the network process. */
void sign_status_send(struct agent *a, bool online_too);
void sign_status(struct agent *a, enum priv_status which);	/* one, now */
int sign_selftest_request(struct agent *a);

/* parent/wake.c: the wake port */
int wake_open(struct agent *a, struct mu_err *err);
void wake_close(struct agent *a);

#endif
