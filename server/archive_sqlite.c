/* SPDX-License-Identifier: Apache-2.0 */
/*
 * archive_sqlite.c - the SQLite backend (the default): one database file
 * in WAL mode, so the HTTP threads' reading handle never waits for the
 * loop's writes, and two servers on one machine may share the file
 * (busy timeout).  New files use incremental auto-vacuum so that pruning
 * gives space back to the file system (max_size means the file size).
 *
 * Prepared statements are cached by the address of their SQL text: the
 * queries are string constants of archive.c and http.c.
 *
 * Ownership: the handle owns the sqlite3 connection and its statements;
 * close frees both.
 */
#include "server.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#define STMT_CACHE	48

struct sq {
	sqlite3 *db;
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cache[STMT_CACHE];
	size_t ncache;
};

static int
sq_fail(struct sq *q, const char *what, struct mu_err *err)
{
	return mu_errf(err, MU_EIO, "sqlite: %s: %s", what, sqlite3_errmsg(q->db));
}

static int
sq_prepare(struct sq *q, const char *sql, sqlite3_stmt **out, struct mu_err *err)
{
	size_t i;

	for (i = 0; i < q->ncache; i++)
		if (q->cache[i].sql == sql) {
			*out = q->cache[i].st;
			return MU_OK;
		}
	if (sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK)
		return sq_fail(q, "prepare", err);
	if (q->ncache < STMT_CACHE) {
		q->cache[q->ncache].sql = sql;
		q->cache[q->ncache++].st = *out;
	}
	return MU_OK;
}

static void
sq_done(struct sq *q, sqlite3_stmt *st)
{
	size_t i;

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	for (i = 0; i < q->ncache; i++)
		if (q->cache[i].st == st)
			return;
	sqlite3_finalize(st);
}

static int
sq_bind(struct sq *q, sqlite3_stmt *st, const struct arc_param *p, int np,
    struct mu_err *err)
{
	int i, rc;

	if (np != sqlite3_bind_parameter_count(st))
		return mu_errf(err, MU_EINVAL, "sqlite: %d parameters for %d",
		    np, sqlite3_bind_parameter_count(st));
	for (i = 0; i < np; i++) {
		if (p[i].type == 'i')
			rc = sqlite3_bind_int64(st, i + 1, p[i].i);
		else if (p[i].type == 't')
			rc = sqlite3_bind_text(st, i + 1, p[i].s, -1, SQLITE_STATIC);
		else
			rc = sqlite3_bind_null(st, i + 1);
		if (rc != SQLITE_OK)
			return sq_fail(q, "bind", err);
	}
	return MU_OK;
}

static int
sq_run(void *h, const char *sql, const struct arc_param *p, int np,
    const char *types, arc_row_fn *fn, void *arg, uint64_t *changes, struct mu_err *err)
{
	struct arc_val cols[32];
	struct sq *q = h;
	sqlite3_stmt *st;
	int i, n, rc, step;

	n = types ? (int)strlen(types) : 0;
	if (n > 32)
		return mu_errf(err, MU_EINVAL, "sqlite: too many columns");
	if ((rc = sq_prepare(q, sql, &st, err)) != MU_OK)
		return rc;
	if ((rc = sq_bind(q, st, p, np, err)) != MU_OK) {
		sq_done(q, st);
		return rc;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		for (i = 0; i < n; i++) {
			cols[i].null = sqlite3_column_type(st, i) == SQLITE_NULL;
			cols[i].i = sqlite3_column_int64(st, i);
			cols[i].s = (const char *)sqlite3_column_text(st, i);
		}
		if (fn != NULL && (rc = fn(arg, cols, n)) != MU_OK)
			break;
	}
	if (rc == MU_OK && step != SQLITE_DONE)
		rc = sq_fail(q, "step", err);
	if (rc == MU_OK && changes != NULL)
		*changes = (uint64_t)sqlite3_changes64(q->db);
	sq_done(q, st);
	return rc;
}

static int
sq_query(void *h, const char *sql, const struct arc_param *p, int np,
    const char *types, arc_row_fn *fn, void *arg, struct mu_err *err)
{
	return sq_run(h, sql, p, np, types, fn, arg, NULL, err);
}

static int
sq_exec(void *h, const char *sql, const struct arc_param *p, int np, uint64_t *changes,
    struct mu_err *err)
{
	return sq_run(h, sql, p, np, NULL, NULL, NULL, changes, err);
}

static int
size_row(void *arg, const struct arc_val *cols, int ncols)
{
	uint64_t *v = arg;

	*v = ncols > 0 && cols[0].i > 0 ? (uint64_t)cols[0].i : 0;
	return MU_OK;
}

/* Pages in use (free pages are on their way back to the file system). */
static int
sq_size(void *h, uint64_t *bytes, struct mu_err *err)
{
	uint64_t pages = 0, freep = 0, psize = 0;
	int rc;

	if ((rc = sq_query(h, "PRAGMA page_count", NULL, 0, "i", size_row, &pages, err)) ||
	    (rc = sq_query(h, "PRAGMA freelist_count", NULL, 0, "i", size_row, &freep, err)) ||
	    (rc = sq_query(h, "PRAGMA page_size", NULL, 0, "i", size_row, &psize, err)))
		return rc;
	*bytes = (pages > freep ? pages - freep : 0) * psize;
	return MU_OK;
}

static int
sq_compact(void *h, struct mu_err *err)
{
	struct sq *q = h;

	if (sqlite3_exec(q->db, "PRAGMA incremental_vacuum", NULL, NULL, NULL) != SQLITE_OK)
		return sq_fail(q, "incremental_vacuum", err);
	/* The freed pages leave the file only when the WAL is checkpointed;
	 * do it now rather than after the next 1000 pages of writes.  A busy
	 * reader makes this a partial checkpoint, which is fine. */
	sqlite3_exec(q->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	return MU_OK;
}

static void
sq_close(void *h)
{
	struct sq *q = h;
	size_t i;

	if (q == NULL)
		return;
	for (i = 0; i < q->ncache; i++)
		sqlite3_finalize(q->cache[i].st);
	sqlite3_close(q->db);
	free(q);
}

static const struct arc_ops sqlite_ops = {
	/* IMMEDIATE: two servers sharing the file queue for the write lock
	 * instead of failing on the upgrade from read to write. */
	"sqlite", "BEGIN IMMEDIATE", sq_exec, sq_query, sq_size, sq_compact, sq_close,
};

int
arc_sqlite_open(const char *path, bool create, struct archive *out, struct mu_err *err)
{
	static const char *const pragmas[] = {
		/* Only takes effect on a new file: before the first table. */
		"PRAGMA auto_vacuum = INCREMENTAL",
		"PRAGMA journal_mode = WAL",
		/* WAL + NORMAL: a power cut may lose the last batches, never
		 * corrupt the file; the broker still holds what was not acked
		 * only until we acked it, so batches are short (see ingest.c). */
		"PRAGMA synchronous = NORMAL",
		"PRAGMA foreign_keys = OFF",
	};
	struct sq *q;
	size_t i;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

	if (create)
		flags |= SQLITE_OPEN_CREATE;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	if (sqlite3_open_v2(path, &q->db, flags, NULL) != SQLITE_OK) {
		mu_errf(err, MU_EIO, "sqlite: %s: %s", path,
		    q->db ? sqlite3_errmsg(q->db) : "cannot open");
		sq_close(q);
		return MU_EIO;
	}
	sqlite3_busy_timeout(q->db, 10000);
	for (i = create ? 0 : 3; i < sizeof(pragmas) / sizeof(pragmas[0]); i++)
		if (sqlite3_exec(q->db, pragmas[i], NULL, NULL, NULL) != SQLITE_OK) {
			mu_errf(err, MU_EIO, "sqlite: %s: %s: %s", path, pragmas[i],
			    sqlite3_errmsg(q->db));
			sq_close(q);
			return MU_EIO;
		}
	out->ops = &sqlite_ops;
	out->h = q;
	return MU_OK;
}
