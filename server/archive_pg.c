/* SPDX-License-Identifier: Apache-2.0 */
/*
 * archive_pg.c - the PostgreSQL backend (libpq), for fleets that outgrow
 * one machine: [archive] url = postgresql://user@host/db.  Same schema
 * and same SQL as SQLite (archive.c); parameters go as text through
 * PQexecParams, never into the SQL.
 *
 * Size: the tables' total relation size.  PostgreSQL reuses the space of
 * deleted rows (autovacuum) without giving it back to the file system, so
 * pruning by max_size cannot see its own effect; the server therefore
 * prunes PostgreSQL by max_age only and says so at start (docs).
 *
 * Ownership: the handle owns the PGconn; close finishes it.
 */
#include "server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define PG_MAX_PARAMS	32

struct pg {
	PGconn *conn;
};

static int
pg_send(struct pg *g, const char *sql, const struct arc_param *p, int np,
    PGresult **out, struct mu_err *err)
{
	char nums[PG_MAX_PARAMS][24];
	const char *vals[PG_MAX_PARAMS];
	ExecStatusType st;
	PGresult *res;
	int i;

	if (np > PG_MAX_PARAMS)
		return mu_errf(err, MU_EINVAL, "pg: too many parameters");
	for (i = 0; i < np; i++) {
		if (p[i].type == 'i') {
			snprintf(nums[i], sizeof(nums[i]), "%" PRId64, p[i].i);
			vals[i] = nums[i];
		} else
			vals[i] = p[i].type == 't' ? p[i].s : NULL;
	}
	res = PQexecParams(g->conn, sql, np, NULL, vals, NULL, NULL, 0);
	st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		mu_errf(err, MU_EIO, "pg: %s", PQerrorMessage(g->conn));
		PQclear(res);
		return MU_EIO;
	}
	*out = res;
	return MU_OK;
}

static int
pg_run(void *h, const char *sql, const struct arc_param *p, int np,
    const char *types, arc_row_fn *fn, void *arg, uint64_t *changes, struct mu_err *err)
{
	struct arc_val cols[32];
	PGresult *res = NULL;
	int r, c, n, rows, rc;

	n = types ? (int)strlen(types) : 0;
	if (n > 32)
		return mu_errf(err, MU_EINVAL, "pg: too many columns");
	if ((rc = pg_send(h, sql, p, np, &res, err)) != MU_OK)
		return rc;
	if (changes != NULL)
		*changes = strtoull(PQcmdTuples(res), NULL, 10);
	rows = PQntuples(res);
	if (n > PQnfields(res))
		n = PQnfields(res);
	for (r = 0; r < rows && rc == MU_OK && fn != NULL; r++) {
		for (c = 0; c < n; c++) {
			cols[c].null = PQgetisnull(res, r, c);
			cols[c].s = cols[c].null ? NULL : PQgetvalue(res, r, c);
			cols[c].i = cols[c].s && types[c] == 'i' ? strtoll(cols[c].s, NULL, 10) : 0;
		}
		rc = fn(arg, cols, n);
	}
	PQclear(res);
	return rc;
}

static int
pg_query(void *h, const char *sql, const struct arc_param *p, int np,
    const char *types, arc_row_fn *fn, void *arg, struct mu_err *err)
{
	return pg_run(h, sql, p, np, types, fn, arg, NULL, err);
}

static int
pg_exec(void *h, const char *sql, const struct arc_param *p, int np, uint64_t *changes,
    struct mu_err *err)
{
	return pg_run(h, sql, p, np, NULL, NULL, NULL, changes, err);
}

static int
size_row(void *arg, const struct arc_val *cols, int ncols)
{
	uint64_t *v = arg;

	*v = ncols > 0 && cols[0].i > 0 ? (uint64_t)cols[0].i : 0;
	return MU_OK;
}

static int
pg_size(void *h, uint64_t *bytes, struct mu_err *err)
{
	*bytes = 0;
	return pg_query(h, "SELECT pg_total_relation_size('results') +"
	    " pg_total_relation_size('events') + pg_total_relation_size('presence')",
	    NULL, 0, "i", size_row, bytes, err);
}

static int
pg_compact(void *h, struct mu_err *err)
{
	(void)h;
	(void)err;
	return MU_OK;	/* autovacuum's job */
}

static void
pg_close(void *h)
{
	struct pg *g = h;

	if (g == NULL)
		return;
	PQfinish(g->conn);
	free(g);
}

static const struct arc_ops pg_ops = {
	"postgresql", "BEGIN", pg_exec, pg_query, pg_size, pg_compact, pg_close,
};

int
arc_pg_open(const char *url, struct archive *out, struct mu_err *err)
{
	struct pg *g;
	PGresult *res;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	g->conn = PQconnectdb(url);
	if (g->conn == NULL || PQstatus(g->conn) != CONNECTION_OK) {
		mu_errf(err, MU_EIO, "pg: cannot connect: %s",
		    g->conn ? PQerrorMessage(g->conn) : "out of memory");
		pg_close(g);
		return MU_EIO;
	}
	/* Quiet "relation already exists, skipping" notices at start. */
	res = PQexec(g->conn, "SET client_min_messages = warning");
	PQclear(res);
	out->ops = &pg_ops;
	out->h = g;
	return MU_OK;
}

/* Whether max_size can be enforced by this backend (see the top). */
bool
archive_size_prunable(const struct archive *a)
{
	return a->ops != &pg_ops;
}
