/* SPDX-License-Identifier: Apache-2.0 */
/*
 * server.h - muster-server: the fleet's archive, metrics and live page
 * (design.md §1, issue 13).  One role per file:
 *
 *	main.c		options, configuration, signals, the loop, sd_notify
 *	ingest.c	the MQTT session, host-signature checks, batching
 *	archive.c	schema, batched inserts, queries, retention, over
 *	archive_sqlite.c / archive_pg.c   one small backend interface each
 *	http.c		libmicrohttpd: /metrics, /api/..., the page, SSE
 *	metrics.c	counters and the Prometheus text format
 *	facts.c		hosts' facts, groups and update maps; /api/hosts filters
 *	selftest.c	the self-update handshake (design.md §5), its own connection
 *	check.c		--check-config, as the service's user
 *
 * Threads.  The loop (main thread) owns the bus, the writing archive
 * handle and the batch.  libmicrohttpd runs a thread per connection; those
 * threads only read: the live state (hosts, counters, the SSE ring) under
 * server.lock, and the archive through their own reading handle under
 * server.dblock.  Nothing else is shared.
 *
 * Ownership: the one struct server lives in main() and owns everything
 * hanging off it; each file's *_open() has a matching *_close() that
 * main() calls in reverse order.
 */
#ifndef MUSTER_SERVER_H
#define MUSTER_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "agentmsg.h"	/* enum agentmsg_kind */
#include "bus.h"
#include "config.h"
#include "daemon.h"
#include "err.h"
#include "facts.h"
#include "hostsig.h"
#include "loop.h"
#include "wire.h"

#define SERVER_VERSION	MUSTER_VERSION

/* ---- archive: the backend interface ------------------------------------- */

/* A bound parameter: never a string pasted into SQL. */
struct arc_param {
	char type;		/* 'i' int64, 't' text, 'n' NULL */
	int64_t i;
	const char *s;
};

#define ARC_I(v)	((struct arc_param){ 'i', (int64_t)(v), NULL })
#define ARC_T(v)	((struct arc_param){ (v) ? 't' : 'n', 0, (v) })

/* A column of a result row; s is valid during the callback only. */
struct arc_val {
	bool null;
	int64_t i;		/* for 'i' columns */
	const char *s;		/* for 't' columns */
};

/* Called once per row; a non-MU_OK return stops the query with it. */
typedef int arc_row_fn(void *arg, const struct arc_val *cols, int ncols);

/*
 * One backend.  SQL is written once for both (archive.c): parameters are
 * $1, $2, ... in order of first use, which SQLite reads as named
 * parameters numbered by appearance and PostgreSQL as positions.  types
 * says how to read each result column ('i' or 't').
 */
struct arc_ops {
	const char *name;
	const char *begin;	/* starts a write transaction */
	/* *changes (optional): rows the statement inserted or deleted. */
	int (*exec)(void *h, const char *sql, const struct arc_param *p, int np,
	    uint64_t *changes, struct mu_err *err);
	int (*query)(void *h, const char *sql, const struct arc_param *p, int np,
	    const char *types, arc_row_fn *fn, void *arg, struct mu_err *err);
	/* Bytes the data takes (for max_size and the metric). */
	int (*size)(void *h, uint64_t *bytes, struct mu_err *err);
	/* Give space back after deletions (SQLite: incremental vacuum). */
	int (*compact)(void *h, struct mu_err *err);
	void (*close)(void *h);
};

struct archive {
	const struct arc_ops *ops;
	void *h;
};

int arc_sqlite_open(const char *path, bool create, struct archive *out,
    struct mu_err *err);
int arc_pg_open(const char *url, struct archive *out, struct mu_err *err);

/* archive.c: open by URL (postgresql:// or postgres:// = libpq, else a
 * SQLite path), create the schema when writer is set. */
int archive_open(const char *url, bool writer, struct archive *out,
    struct mu_err *err);
void archive_close(struct archive *a);

/* A verified row waiting for the next batch (owned strings). */
enum row_kind { ROW_RESULT, ROW_EVENT, ROW_PRESENCE, ROW_CERT, ROW_FACTS, ROW_ANNOUNCE };

struct row {
	enum row_kind kind;
	char *job, *host, *kind_s, *status, *module, *module_version;
	char *summary, *reason, *output, *data, *agent_version, *extra;
	int64_t exit_code, signal_, started_at, finished_at, at, seq;
	bool has_exit_code, has_signal;
	/* ROW_ANNOUNCE (jobs.c): job, kind_s (the job's kind), module, data
	 * (args as JSON) and these; filter and expected are JSON text. */
	char *target, *filter, *operator_, *keyid, *expected;
	int64_t issued_at, not_after, timeout_ms, nexpected;
	bool has_timeout;
	bool stored;			/* set by archive_write(): new in the archive */
	uint64_t received_at;		/* server wall clock, ms */
};

void row_free(struct row *r);
/* Write a batch in one transaction; duplicates (same job and host, same
 * host/at/state, ...) are ignored. *stored counts new result rows. */
int archive_write(struct archive *a, struct row **rows, size_t n,
    size_t *stored, struct mu_err *err);
/* Retention: older than max_age_ms (0 = off), then oldest first while the
 * data is over max_size (0 = off). *deleted counts rows removed. */
int archive_prune(struct archive *a, uint64_t now_ms, uint64_t max_age_ms,
    uint64_t max_size, uint64_t *deleted, struct mu_err *err);
/* PostgreSQL keeps deleted rows' space: max_size applies to SQLite only. */
bool archive_size_prunable(const struct archive *a);
/* The host certificates seen in good statuses (hex DER), oldest first. */
int archive_certs(struct archive *a, arc_row_fn *fn, void *arg, struct mu_err *err);

/* The stored facts, newest per host (facts.c loads them at start). */
int archive_facts(struct archive *a, arc_row_fn *fn, void *arg, struct mu_err *err);

/* ---- job announces (jobs.c) ------------------------------------------------ */

/* Why an announce was not taken (muster_announces_refused_total). */
enum jobs_refusal {
	JOBS_FORGED,		/* the signature does not verify */
	JOBS_UNKNOWN_KEY,	/* no such key in [trust] operators (or none set) */
	JOBS_MALFORMED,		/* not an envelope, or not an announce body */
	JOBS_WRONG_TOPIC,	/* the body's id is not the topic's, or aud not ours */
	JOBS_NREFUSED
};

struct jobs;
struct json_t;

/* ---- live state ----------------------------------------------------------- */

struct host_state {
	char name[NAME_MAX_LEN + 1];
	bool online;
	char version[WIRE_MAX_VERSION + 1];
	char channel[NAME_MAX_LEN + 1];
	char reason[64];
	uint64_t at;
};

#define MET_DUR_BUCKETS	11
#define MET_MAX_SERIES	512	/* status x module pairs kept apart */

struct result_series {
	char status[16];
	char module[NAME_MAX_LEN + 1];	/* "" for built-in kinds */
	uint64_t n;
};

/* Counters since start (Prometheus counters; a restart resets them). */
struct metrics {
	uint64_t forged[3];		/* by type: result, event, status */
	uint64_t rejected[3];		/* malformed or wrong topic, by type */
	uint64_t events;
	uint64_t statuses;
	struct result_series *series;
	size_t nseries;
	uint64_t series_overflow;
	uint64_t dur[MET_DUR_BUCKETS];	/* cumulative, as Prometheus wants */
	uint64_t dur_count;
	double dur_sum;
	uint64_t archived, duplicates, archive_errors, pruned;
	uint64_t archive_bytes;
	uint64_t last_batch_ms;		/* duration of the last write */
};


/* The SSE ring: JSON lines the loop publishes, read by every stream. */
#define SSE_RING	1024

struct server {
	struct server_config cfg;
	char conf_path[CONF_PATH_MAX];
	char root[NAME_MAX_LEN + 1];
	struct loop *loop;
	int sigfd;
	struct daemon_watchdog watchdog;
	bool stopping;

	/* ingest.c (loop thread only) */
	struct bus *bus;
	struct hostsig_verifier *hv;
	bool connecting;
	uint64_t reconnect_timer, flush_timer, retry_ms;
	struct row **batch;
	size_t nbatch, batch_cap;
	struct held *held;		/* results waiting for their certificate */
	size_t nheld;

	/* archive.c: the writer is the loop's; the reader is http.c's */
	struct archive arc;
	struct archive reader;
	pthread_mutex_t dblock;		/* the reader */

	/* shared with the HTTP threads, under lock */
	pthread_mutex_t lock;
	pthread_cond_t sse_cond;
	struct host_state *hosts;	/* sorted by name */
	size_t nhosts, hosts_cap;
	struct metrics met;
	uint64_t pending_since;		/* wall ms of the oldest unwritten row; 0 = none */
	size_t npending;
	char *sse[SSE_RING];
	uint64_t sse_head;		/* sequence number of the next message */
	bool http_stopping;

	/* facts.c, under lock: what the page and the filters need beyond
	 * host_state, sorted by name */
	struct host_info *info;
	size_t ninfo, info_cap;
	uint64_t facts_total, facts_refused[2];	/* forged, malformed */
	/* jobs.c: the operator keys and the open jobs (under lock) */
	struct jobs *jobs;

	/* selftest.c (loop thread only); NULL when [selftest] key is unset */
	struct selftest *st;
	/* halt.c: its channels under lock, the rest loop thread only */
	struct halts *halts;

	/* http.c */
	struct MHD_Daemon *httpd;
	struct http_auth *auth;
};

/* ingest.c */
int ingest_open(struct server *s, struct mu_err *err);
void ingest_flush(struct server *s);
void ingest_close(struct server *s);

/* Queue a verified row for the next batch (it takes r, also on failure). */
int ingest_queue(struct server *s, struct row *r);

/* jobs.c */
int jobs_open(struct server *s, struct mu_err *err);
void jobs_close(struct server *s);
bool jobs_on(const struct server *s);	/* [trust] operators set */
/* R/jobs/<id>: true, and the topic's job id (not checked: the body's is). */
bool jobs_topic(const struct server *s, const char *topic, char id[JOBID_MAX_LEN + 1]);
void jobs_take(struct server *s, const char *topic, const char *id, const uint8_t *p,
    size_t len);
/* A batch is in the archive: count answers, announce new jobs. */
void jobs_stored(struct server *s, struct row **rows, size_t n);
/* The announce metrics (the caller holds s->lock). */
void jobs_metrics(struct server *s, FILE *f);
/* GET /api/jobs/<id> (API-24.md); MU_ENOENT when nothing is known. */
int jobs_view(struct server *s, const char *job, struct json_t **out, struct mu_err *err);

/* selftest.c */
int selftest_open(struct server *s, struct mu_err *err);
void selftest_close(struct server *s);

/* halt.c: fleet-wide release halts (design.md §5) */
int halt_open(struct server *s, struct mu_err *err);
void halt_close(struct server *s);
void halt_host_status(struct server *s, const struct status *st);	/* loop thread */
void halt_metrics(struct server *s, FILE *f);		/* s->lock held */
struct json_t *halt_releases_json(struct server *s);	/* s->lock held */

/* http.c */
int http_open(struct server *s, struct mu_err *err);
void http_close(struct server *s);
/* Load [server] auth_file as http_open() would, and drop it. */
int http_auth_check(const char *path, struct mu_err *err);

/* check.c: --check-config; the exit status (0 ok, 1 not). */
int check_config(const char *path);

/* facts.c */
struct host_info {
	char name[NAME_MAX_LEN + 1];
	bool has_facts;
	uint64_t facts_at;		/* the facts message's "at", unix ms */
	struct facts facts;		/* owned */
	size_t ngroups;
	char (*groups)[NAME_MAX_LEN + 1];	/* ngroups, owned (most hosts have few) */
	char *update;			/* the status's update map as JSON text, or NULL */
	uint64_t status_at;		/* of the status the groups and update are from */
	char *cert;			/* its host signing certificate, hex DER, or NULL:
					 * for CLIs that cannot read retained statuses */
};

/* A parsed /api/hosts?filter=...&target=... (owns its buffers). */
struct host_query {
	bool has_filter;
	msgpack_sbuffer preds, packed;
	msgpack_unpacked up;
	struct fact_filter f;		/* borrows from up */
	struct job_target target;	/* TARGET_ALL when not given */
};

/* Load the archived facts (at start, before the bus). */
int facts_load(struct server *s, struct mu_err *err);
/* A verified status / facts message (loop thread; each takes the lock). */
int hostinfo_status(struct server *s, const struct status *st);
int hostinfo_facts(struct server *s, struct facts_msg *m);
void hostinfo_free(struct server *s);
/* The facts as a JSON object (new reference) and back. */
json_t *facts_to_json(const struct facts *f);
int facts_from_json(json_t *o, struct facts *out, struct mu_err *err);
/* Filter texts (muster -F form) and a target ("all", "group/G",
 * "host/H"); MU_EINVAL with the reason.  host_query_free() after any
 * return. */
int host_query_parse(struct host_query *q, const char *const *filters, size_t nfilters,
    const char *target, struct mu_err *err);
void host_query_free(struct host_query *q);
/* Caller holds s->lock; info may be NULL (no facts, no groups known). */
struct host_info *hostinfo_find(struct server *s, const char *name);
bool host_query_match(const struct host_query *q, const char *host,
    const struct host_info *info);

/* metrics.c (callers hold s->lock unless said otherwise) */
/* A result new in the archive (re-deliveries are not counted twice). */
void metrics_result(struct server *s, const char *status, const char *module,
    int64_t started_at, int64_t finished_at);
int metrics_render(struct server *s, char **out, size_t *len);	/* takes the lock */
void metrics_free(struct metrics *m);
struct host_state *hosts_find(struct server *s, const char *name);
int hosts_upsert(struct server *s, const struct host_state *h);
/* Queue one SSE message (JSON text, copied) for every stream. */
void sse_push(struct server *s, const char *event, const char *json);

#endif
