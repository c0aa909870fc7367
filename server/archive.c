/* SPDX-License-Identifier: Apache-2.0 */
/*
 * archive.c - the archive's schema, batched writes and retention, written
 * once for both backends (archive_sqlite.c, archive_pg.c).
 *
 * Every write is idempotent: results are keyed by (job, host), events by
 * (job, host, seq), presence changes by (host, at, state), and inserts
 * skip rows already there (ON CONFLICT DO NOTHING, which SQLite and
 * PostgreSQL both speak).  So a result the broker delivers twice, or that
 * two servers both see, is stored once.  Values always travel as bound
 * parameters.  Times are unix milliseconds; received_at is this server's
 * clock (agents' clocks decide nothing here).
 *
 * Ownership: archive_open() fills a struct archive the caller owns and
 * closes with archive_close().  archive_write() borrows the rows.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const schema[] = {
	"CREATE TABLE IF NOT EXISTS results ("
	" job TEXT NOT NULL, host TEXT NOT NULL, kind TEXT NOT NULL,"
	" status TEXT NOT NULL, module TEXT, module_version TEXT, summary TEXT,"
	" reason TEXT, output TEXT, data TEXT, exit_code BIGINT, sig BIGINT,"
	" started_at BIGINT NOT NULL, finished_at BIGINT NOT NULL,"
	" agent_version TEXT, received_at BIGINT NOT NULL,"
	" PRIMARY KEY (job, host))",
	"CREATE INDEX IF NOT EXISTS results_by_host ON results (host, received_at)",
	"CREATE INDEX IF NOT EXISTS results_by_time ON results (received_at)",
	"CREATE TABLE IF NOT EXISTS events ("
	" job TEXT NOT NULL, host TEXT NOT NULL, seq BIGINT NOT NULL,"
	" at BIGINT NOT NULL, event TEXT NOT NULL, message TEXT, pct BIGINT,"
	" received_at BIGINT NOT NULL, PRIMARY KEY (job, host, seq))",
	"CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at)",
	"CREATE TABLE IF NOT EXISTS presence ("
	" host TEXT NOT NULL, state TEXT NOT NULL, at BIGINT NOT NULL,"
	" reason TEXT, version TEXT, channel TEXT, host_groups TEXT,"
	" received_at BIGINT NOT NULL, PRIMARY KEY (host, at, state))",
	"CREATE INDEX IF NOT EXISTS presence_by_time ON presence (received_at)",
	/* Certificates of good statuses, so that a restarted server can check
	 * the results its persistent session delivers before any status. */
	"CREATE TABLE IF NOT EXISTS certs ("
	" fpr TEXT PRIMARY KEY, der TEXT NOT NULL, received_at BIGINT NOT NULL)",
	/* The newest verified facts of each host (issue 24); not pruned by
	 * age: a host's last word is what filters go by. */
	"CREATE TABLE IF NOT EXISTS facts ("
	" host TEXT PRIMARY KEY, at BIGINT NOT NULL, facts TEXT NOT NULL,"
	" received_at BIGINT NOT NULL)",
	/* Verified job announces (server/jobs.c): who was expected to answer.
	 * The first one stored for a job id wins. */
	"CREATE TABLE IF NOT EXISTS announces ("
	" job TEXT PRIMARY KEY, job_kind TEXT NOT NULL, module TEXT, args TEXT,"
	" target TEXT NOT NULL, filter TEXT, operator TEXT, keyid TEXT NOT NULL,"
	" issued_at BIGINT NOT NULL, not_after BIGINT NOT NULL, timeout_ms BIGINT,"
	" expected TEXT NOT NULL, nexpected BIGINT NOT NULL,"
	" received_at BIGINT NOT NULL)",
	"CREATE INDEX IF NOT EXISTS announces_by_time ON announces (received_at)",
};

static const char sql_result[] =
    "INSERT INTO results (job, host, kind, status, module, module_version,"
    " summary, reason, output, data, exit_code, sig, started_at, finished_at,"
    " agent_version, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
    " $10, $11, $12, $13, $14, $15, $16) ON CONFLICT DO NOTHING";
static const char sql_event[] =
    "INSERT INTO events (job, host, seq, at, event, message, pct, received_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING";
static const char sql_presence[] =
    "INSERT INTO presence (host, state, at, reason, version, channel,"
    " host_groups, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT DO NOTHING";
static const char sql_announce[] =
    "INSERT INTO announces (job, job_kind, module, args, target, filter, operator,"
    " keyid, issued_at, not_after, timeout_ms, expected, nexpected, received_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    " ON CONFLICT DO NOTHING";
static const char sql_cert[] =
    "INSERT INTO certs (fpr, der, received_at) VALUES ($1, $2, $3)"
    " ON CONFLICT DO NOTHING";

/* Newer "at" only: a re-delivered or older message changes nothing. */
static const char sql_facts[] =
    "INSERT INTO facts (host, at, facts, received_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (host) DO UPDATE SET at = excluded.at, facts = excluded.facts,"
    " received_at = excluded.received_at WHERE excluded.at > facts.at";

void
row_free(struct row *r)
{
	if (r == NULL)
		return;
	free(r->job);
	free(r->host);
	free(r->kind_s);
	free(r->status);
	free(r->module);
	free(r->module_version);
	free(r->summary);
	free(r->reason);
	free(r->output);
	free(r->data);
	free(r->agent_version);
	free(r->extra);
	free(r->target);
	free(r->filter);
	free(r->operator_);
	free(r->keyid);
	free(r->expected);
	free(r);
}

int
archive_open(const char *url, bool writer, struct archive *out, struct mu_err *err)
{
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
		rc = arc_pg_open(url, out, err);
	else
		rc = arc_sqlite_open(url, writer, out, err);
	if (rc != MU_OK || !writer)
		return rc;
	for (i = 0; i < sizeof(schema) / sizeof(schema[0]); i++)
		if ((rc = out->ops->exec(out->h, schema[i], NULL, 0, NULL, err)) != MU_OK) {
			archive_close(out);
			return rc;
		}
	return MU_OK;
}

void
archive_close(struct archive *a)
{
	if (a->ops != NULL)
		a->ops->close(a->h);
	a->ops = NULL;
	a->h = NULL;
}

static int
write_one(struct archive *a, const struct row *r, uint64_t *changes,
    struct mu_err *err)
{
	const struct arc_ops *o = a->ops;

	switch (r->kind) {
	case ROW_RESULT: {
		struct arc_param p[] = {
			ARC_T(r->job), ARC_T(r->host), ARC_T(r->kind_s),
			ARC_T(r->status), ARC_T(r->module), ARC_T(r->module_version),
			ARC_T(r->summary), ARC_T(r->reason), ARC_T(r->output),
			ARC_T(r->data), ARC_I(r->exit_code), ARC_I(r->signal_),
			ARC_I(r->started_at), ARC_I(r->finished_at),
			ARC_T(r->agent_version), ARC_I(r->received_at),
		};

		if (!r->has_exit_code)
			p[10].type = 'n';
		if (!r->has_signal)
			p[11].type = 'n';
		return o->exec(a->h, sql_result, p, 16, changes, err);
	}
	case ROW_EVENT: {
		struct arc_param p[] = {
			ARC_T(r->job), ARC_T(r->host), ARC_I(r->seq), ARC_I(r->at),
			ARC_T(r->status), ARC_T(r->output), ARC_I(r->exit_code),
			ARC_I(r->received_at),
		};

		if (!r->has_exit_code)
			p[6].type = 'n';
		return o->exec(a->h, sql_event, p, 8, changes, err);
	}
	case ROW_PRESENCE: {
		struct arc_param p[] = {
			ARC_T(r->host), ARC_T(r->status), ARC_I(r->at),
			ARC_T(r->reason), ARC_T(r->agent_version), ARC_T(r->module),
			ARC_T(r->extra), ARC_I(r->received_at),
		};

		return o->exec(a->h, sql_presence, p, 8, changes, err);
	}
	case ROW_CERT: {
		struct arc_param p[] = {
			ARC_T(r->job), ARC_T(r->data), ARC_I(r->received_at),
		};

		return o->exec(a->h, sql_cert, p, 3, changes, err);
	}
	case ROW_FACTS: {
		struct arc_param p[] = {
			ARC_T(r->host), ARC_I(r->at), ARC_T(r->data), ARC_I(r->received_at),
		};

		return o->exec(a->h, sql_facts, p, 4, changes, err);
	}
	case ROW_ANNOUNCE: {
		struct arc_param p[] = {
			ARC_T(r->job), ARC_T(r->kind_s), ARC_T(r->module), ARC_T(r->data),
			ARC_T(r->target), ARC_T(r->filter), ARC_T(r->operator_),
			ARC_T(r->keyid), ARC_I(r->issued_at), ARC_I(r->not_after),
			ARC_I(r->timeout_ms), ARC_T(r->expected), ARC_I(r->nexpected),
			ARC_I(r->received_at),
		};

		if (!r->has_timeout)
			p[10].type = 'n';
		return o->exec(a->h, sql_announce, p, 14, changes, err);
	}
	}
	return mu_errf(err, MU_EINVAL, "unknown row kind");
}

static int
count_row(void *arg, const struct arc_val *cols, int ncols)
{
	int64_t *n = arg;

	*n = ncols > 0 && !cols[0].null ? cols[0].i : 0;
	return MU_OK;
}

/* One transaction per batch; each row learns whether it was new. */
int
archive_write(struct archive *a, struct row **rows, size_t n, size_t *stored,
    struct mu_err *err)
{
	const struct arc_ops *o = a->ops;
	struct mu_err ignore;
	uint64_t ch;
	size_t i;
	int rc;

	*stored = 0;
	if (n == 0)
		return MU_OK;
	if ((rc = o->exec(a->h, o->begin, NULL, 0, NULL, err)) != MU_OK)
		return rc;
	for (i = 0; i < n && rc == MU_OK; i++) {
		ch = 0;
		rc = write_one(a, rows[i], &ch, err);
		rows[i]->stored = ch > 0;
		*stored += rows[i]->kind == ROW_RESULT && ch > 0;
	}
	if (rc == MU_OK)
		rc = o->exec(a->h, "COMMIT", NULL, 0, NULL, err);
	if (rc != MU_OK) {
		o->exec(a->h, "ROLLBACK", NULL, 0, NULL, &ignore);
		*stored = 0;
		return rc;
	}
	return MU_OK;
}

int
archive_certs(struct archive *a, arc_row_fn *fn, void *arg, struct mu_err *err)
{
	return a->ops->query(a->h, "SELECT der FROM certs ORDER BY received_at", NULL, 0,
	    "t", fn, arg, err);
}

int
archive_facts(struct archive *a, arc_row_fn *fn, void *arg, struct mu_err *err)
{
	return a->ops->query(a->h, "SELECT host, at, facts FROM facts ORDER BY host", NULL, 0,
	    "tit", fn, arg, err);
}

/* ---- retention -------------------------------------------------------------- */

static const char *const tables[] = { "results", "events", "presence", "announces" };

static int
delete_before(struct archive *a, int64_t cutoff, uint64_t *deleted, struct mu_err *err)
{
	static const char *const sql[] = {
		"DELETE FROM results WHERE received_at < $1",
		"DELETE FROM events WHERE received_at < $1",
		"DELETE FROM presence WHERE received_at < $1",
		"DELETE FROM announces WHERE received_at < $1",
	};
	static const char *const count[] = {
		"SELECT count(*) FROM results WHERE received_at < $1",
		"SELECT count(*) FROM events WHERE received_at < $1",
		"SELECT count(*) FROM presence WHERE received_at < $1",
		"SELECT count(*) FROM announces WHERE received_at < $1",
	};
	struct arc_param p[] = { ARC_I(cutoff) };
	int64_t n;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		n = 0;
		if ((rc = a->ops->query(a->h, count[i], p, 1, "i", count_row, &n, err)) != MU_OK)
			return rc;
		if (n == 0)
			continue;
		if ((rc = a->ops->exec(a->h, sql[i], p, 1, NULL, err)) != MU_OK)
			return rc;
		*deleted += (uint64_t)n;
	}
	return MU_OK;
}

/* The oldest quarter of each table (at least one row), by received_at
 * and then by key, so that rows of one batch (one stamp) split too. */
static int
delete_oldest(struct archive *a, uint64_t *deleted, struct mu_err *err)
{
	static const char *const count[] = {
		"SELECT count(*) FROM results",
		"SELECT count(*) FROM events",
		"SELECT count(*) FROM presence",
		"SELECT count(*) FROM announces",
	};
	static const char *const sql[] = {
		"DELETE FROM results WHERE (job, host) IN (SELECT job, host FROM results"
		" ORDER BY received_at, job, host LIMIT $1)",
		"DELETE FROM events WHERE (job, host, seq) IN (SELECT job, host, seq FROM events"
		" ORDER BY received_at, job, host, seq LIMIT $1)",
		"DELETE FROM presence WHERE (host, at, state) IN (SELECT host, at, state"
		" FROM presence ORDER BY received_at, host, at LIMIT $1)",
		"DELETE FROM announces WHERE job IN (SELECT job FROM announces"
		" ORDER BY received_at, job LIMIT $1)",
	};
	uint64_t ch;
	int64_t n;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		n = 0;
		if ((rc = a->ops->query(a->h, count[i], NULL, 0, "i", count_row, &n, err)) != MU_OK)
			return rc;
		if (n == 0)
			continue;
		struct arc_param p[] = { ARC_I(n / 4 > 0 ? n / 4 : 1) };

		ch = 0;
		if ((rc = a->ops->exec(a->h, sql[i], p, 1, &ch, err)) != MU_OK)
			return rc;
		*deleted += ch;
	}
	return MU_OK;
}

/* Over max_size: drop the oldest quarter, give the pages back, measure
 * again, in bounded rounds. */
static int
prune_size(struct archive *a, uint64_t max_size, uint64_t *deleted, struct mu_err *err)
{
	uint64_t size, before;
	int round, rc;

	for (round = 0; round < 32; round++) {
		if ((rc = a->ops->size(a->h, &size, err)) != MU_OK)
			return rc;
		if (size <= max_size)
			return MU_OK;
		before = *deleted;
		if ((rc = delete_oldest(a, deleted, err)) != MU_OK ||
		    (rc = a->ops->compact(a->h, err)) != MU_OK)
			return rc;
		if (*deleted == before)
			return MU_OK;	/* empty, and still over: schema and indexes */
	}
	return MU_OK;
}

int
archive_prune(struct archive *a, uint64_t now_ms, uint64_t max_age_ms,
    uint64_t max_size, uint64_t *deleted, struct mu_err *err)
{
	uint64_t before = 0;
	int rc;

	*deleted = 0;
	if (max_age_ms > 0 && now_ms > max_age_ms) {
		if ((rc = delete_before(a, (int64_t)(now_ms - max_age_ms), &before, err)) != MU_OK)
			return rc;
		if (before > 0 && (rc = a->ops->compact(a->h, err)) != MU_OK)
			return rc;
	}
	*deleted = before;
	if (max_size > 0)
		return prune_size(a, max_size, deleted, err);
	return MU_OK;
}
