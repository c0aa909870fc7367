/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seen.c - the set of job ids this host has accepted, so a replayed job is
 * refused even after a restart.  An entry is kept until its job could no
 * longer pass the validity check anyway (not_after + clock skew).
 *
 * On disk: state_dir/seen, one "id not_after\n" line per accepted job,
 * appended and fdatasync'ed before the job runs; compacted on open and on
 * prune.
 *
 * The same file is the journal of run jobs (design.md §3: a job running at
 * a crash is answered "interrupted" on the next start, once).  A run is
 * accepted with "id not_after run MODULE\n" - one line, one fdatasync, for
 * both "never run twice" and "answered after a crash" - and its result,
 * once spooled, adds "id not_after done\n" (fdatasync'ed too, so a restart
 * can never answer a run whose result may already be acknowledged and
 * gone from the spool).  A run without its done line is unanswered: kept
 * past its not_after and through every compaction until it is done.
 * Pings, versions and cancels are journaled the same way, "run :KIND"
 * (not a module name: older versions read them as plain entries).
 * (Older versions read the first two fields only: the file stays theirs.)
 *
 * In memory: a hash table of 16-byte entries (agent.h), so a lookup does
 * not grow with the set and 10,000 live jobs cost 256 KiB; the ids
 * themselves stay on disk (compaction copies the live lines), except the
 * few unanswered runs'.
 */
#include "agent.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

/* Marks an entry whose line a rewrite has copied already (a not_after in
 * ms is far below 2^63). */
#define SEEN_COPIED	(UINT64_C(1) << 63)
#define SEEN_MIN_SLOTS	64

/* not_after + skew < now, without wrapping for a huge not_after. */
static bool
expired(uint64_t not_after, uint64_t now_ms)
{
	return now_ms > CLOCK_SKEW_MS && not_after < now_ms - CLOCK_SKEW_MS;
}

static uint64_t
id_hash(const char *id)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	uint64_t h;

	SHA256((const unsigned char *)id, strlen(id), md);
	memcpy(&h, md, sizeof(h));
	return h ? h : 1;
}

/* The slot holding h, or the free slot where it goes (cap > 0; the table
 * is never more than 3/4 full). */
static struct seen_entry *
slot_for(const struct seen_set *s, uint64_t h)
{
	size_t i = (size_t)h & (s->cap - 1);

	while (s->slots[i].hash != 0 && s->slots[i].hash != h)
		i = (i + 1) & (s->cap - 1);
	return &s->slots[i];
}

static size_t
slots_for(size_t n)
{
	size_t cap = SEEN_MIN_SLOTS;

	while (cap / 4 * 3 < n)
		cap *= 2;
	return cap;
}

static bool
pending_hash(const struct seen_set *s, uint64_t h)
{
	size_t i;

	for (i = 0; i < s->nruns; i++)
		if (s->runs[i].hash == h)
			return true;
	return false;
}

/* Whether an entry stays at now_ms (0: every entry stays): an expired one
 * does not, unless its run is still unanswered. */
static bool
entry_live(const struct seen_set *s, const struct seen_entry *e, uint64_t now_ms)
{
	return e->hash != 0 && (now_ms == 0 || !expired(e->not_after, now_ms) ||
	    pending_hash(s, e->hash));
}

/* Move the live entries into a table sized for `need`: growing after an
 * insert, shrinking after a prune (memory goes back after a burst). */
static int
table_rebuild(struct seen_set *s, size_t need, uint64_t now_ms)
{
	struct seen_set t = { .cap = slots_for(need) };
	size_t i;

	if ((t.slots = calloc(t.cap, sizeof(*t.slots))) == NULL)
		return MU_ENOMEM;
	for (i = 0; i < s->cap; i++) {
		if (!entry_live(s, &s->slots[i], now_ms))
			continue;
		*slot_for(&t, s->slots[i].hash) = s->slots[i];
		t.n++;
	}
	free(s->slots);
	s->slots = t.slots, s->cap = t.cap, s->n = t.n;
	return MU_OK;
}

static int
entry_insert(struct seen_set *s, const char *id, uint64_t not_after)
{
	uint64_t h = id_hash(id);
	struct seen_entry *e;
	int rc;

	if (s->n + 1 > s->cap / 4 * 3 && (rc = table_rebuild(s, s->n + 1, 0)) != MU_OK)
		return rc;
	e = slot_for(s, h);
	if (e->hash == 0) {
		e->hash = h;
		s->n++;
	}
	if (not_after > e->not_after)
		e->not_after = not_after;
	return MU_OK;
}

static struct seen_entry *
entry_find(const struct seen_set *s, const char *id)
{
	struct seen_entry *e;

	if (s->cap == 0)
		return NULL;
	e = slot_for(s, id_hash(id));
	return e->hash != 0 ? e : NULL;
}

static struct seen_run *
pending_find(struct seen_set *s, const char *id)
{
	size_t i;

	for (i = 0; i < s->nruns; i++)
		if (strcmp(s->runs[i].id, id) == 0)
			return &s->runs[i];
	return NULL;
}

static int
pending_add(struct seen_set *s, const char *id, uint64_t not_after, const char *module)
{
	struct seen_run *r;

	if (pending_find(s, id) != NULL)
		return MU_OK;
	if (s->nruns == s->capruns) {
		size_t cap = s->capruns ? s->capruns * 2 : 8;

		if ((r = reallocarray(s->runs, cap, sizeof(*r))) == NULL)
			return MU_ENOMEM;
		s->runs = r, s->capruns = cap;
	}
	r = &s->runs[s->nruns++];
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->module, sizeof(r->module), "%s", module);
	r->not_after = not_after;
	r->hash = id_hash(id);
	return MU_OK;
}

static void
pending_drop(struct seen_set *s, const char *id)
{
	struct seen_run *r = pending_find(s, id);

	if (r != NULL)
		*r = s->runs[--s->nruns];
}

/* One line: "id not_after", then "run MODULE" or "done" (see above). */
static int
load_line(struct seen_set *s, const char *line, uint64_t now_ms)
{
	char id[JOBID_MAX_LEN + 2], tag[8], module[NAME_MAX_LEN + 2];
	uint64_t not_after;
	int n;

	/* A torn last line (crash mid-append) is simply skipped; so is a
	 * torn tag, which leaves the line a plain "id not_after" at most
	 * (the run's result is then not yet spooled: nothing ran). */
	n = sscanf(line, "%65s %" SCNu64 " %7s %64s", id, &not_after, tag, module);
	if (n < 2 || !jobid_valid(id) || strchr(line, '\n') == NULL || not_after >= SEEN_COPIED)
		return MU_OK;
	if (n == 4 && strcmp(tag, "run") == 0 && (name_valid(module) ||
	    (module[0] == ':' && name_valid(module + 1))))
		pending_add(s, id, not_after, module);
	else if (n == 3 && strcmp(tag, "done") == 0)
		pending_drop(s, id);
	/* An expired run is kept until the whole file is read: a later
	 * "done" may end it (then drop_expired() removes it). */
	if (!expired(not_after, now_ms) || pending_find(s, id))
		return entry_insert(s, id, not_after);
	return MU_OK;
}

static int
load_file(struct seen_set *s, uint64_t now_ms)
{
	char line[192];
	FILE *f;
	int rc = MU_OK;

	if ((f = fopen(s->path, "re")) == NULL)
		return MU_OK;
	while (rc == MU_OK && fgets(line, sizeof(line), f) != NULL)
		rc = load_line(s, line, now_ms);
	fclose(f);
	return rc;
}

/* Expired entries go, unless their run is still unanswered. */
static int
drop_expired(struct seen_set *s, uint64_t now_ms)
{
	size_t i, live = 0;

	for (i = 0; i < s->cap; i++)
		if (entry_live(s, &s->slots[i], now_ms))
			live++;
	return live == s->n ? MU_OK : table_rebuild(s, live, now_ms);
}

/* Copy the lines of the ids still in the table, once each, with the run
 * tag of an unanswered run. */
static void
copy_live_lines(struct seen_set *s, FILE *in, FILE *out)
{
	char line[192], id[JOBID_MAX_LEN + 2];
	const struct seen_run *r;
	struct seen_entry *e;
	uint64_t not_after;
	size_t i;

	while (in && fgets(line, sizeof(line), in) != NULL) {
		if (sscanf(line, "%65s %" SCNu64, id, &not_after) != 2 || !jobid_valid(id) ||
		    (e = entry_find(s, id)) == NULL || (e->not_after & SEEN_COPIED))
			continue;
		r = pending_find(s, id);
		fprintf(out, "%s %" PRIu64 "%s%s\n", id, e->not_after, r ? " run " : "",
		    r ? r->module : "");
		e->not_after |= SEEN_COPIED;
	}
	for (i = 0; i < s->cap; i++)
		s->slots[i].not_after &= ~SEEN_COPIED;
}

/*
 * Write the live entries to a new file and swap it in atomically.  The ids
 * come from the old file (memory holds their hashes only), so an id whose
 * line never reached the disk (seen_append() failed) stays known until a
 * restart only, as its job was answered "error" and not run.
 */
static int
rewrite(struct seen_set *s, struct mu_err *err)
{
	char tmp[sizeof(s->path) + 8];
	FILE *in, *f;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.new", s->path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		if (fd != -1)
			close(fd);
		return mu_errf(err, MU_EIO, "%s: %s", tmp, strerror(errno));
	}
	in = fopen(s->path, "re");
	copy_live_lines(s, in, f);
	if (in)
		fclose(in);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		return mu_errf(err, MU_EIO, "%s: %s", tmp, strerror(errno));
	}
	fclose(f);
	/* The folder too: lines appended later go to the new file, and must
	 * not be lost with a rename that did not reach the disk. */
	if (rename(tmp, s->path) == -1 || fsync_dir(s->dir) != 0)
		return mu_errf(err, MU_EIO, "%s: %s", s->path, strerror(errno));
	return MU_OK;
}

static int
reopen_append(struct seen_set *s, struct mu_err *err)
{
	if (s->fd != -1)
		close(s->fd);
	s->fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (s->fd == -1)
		return mu_errf(err, MU_EIO, "%s: %s", s->path, strerror(errno));
	return MU_OK;
}

int
seen_open(struct seen_set *s, const char *state_dir, uint64_t now_ms, struct mu_err *err)
{
	int rc;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if ((size_t)snprintf(s->path, sizeof(s->path), "%s/seen", state_dir) >= sizeof(s->path) ||
	    (size_t)snprintf(s->dir, sizeof(s->dir), "%s", state_dir) >= sizeof(s->dir))
		return mu_errf(err, MU_EINVAL, "state_dir path too long");
	if (load_file(s, now_ms) != MU_OK || drop_expired(s, now_ms) != MU_OK)
		return mu_errf(err, MU_ENOMEM, "%s: out of memory", s->path);
	rc = rewrite(s, err);
	if (!rc)
		rc = reopen_append(s, err);
	return rc;
}

bool
seen_has(const struct seen_set *s, const char *id)
{
	return entry_find(s, id) != NULL;
}

/* Append and flush (with whatever else was appended unflushed). */
static int
append_line(struct seen_set *s, const char *line, int n, struct mu_err *err)
{
	if (write(s->fd, line, (size_t)n) != n || fdatasync(s->fd) != 0) {
		/* A failed flush is reported once: what was appended before
		 * it is failed too (seen_sync()), not "flushed" by a retry. */
		s->sync_failed = s->sync_failed || s->unsynced;
		return mu_errf(err, MU_EIO, "%s: %s", s->path, strerror(errno));
	}
	s->unsynced = false;
	return MU_OK;
}

int
seen_append(struct seen_set *s, const char *id, uint64_t not_after, const char *run_module,
    struct mu_err *err)
{
	char line[192];
	int n;

	n = snprintf(line, sizeof(line), "%s %" PRIu64 "%s%s\n", id, not_after,
	    run_module ? " run " : "", run_module ? run_module : "");
	/* Room first: once on disk, the entry must be in memory too. */
	if ((run_module && pending_add(s, id, not_after, run_module) != MU_OK) ||
	    entry_insert(s, id, not_after) != MU_OK) {
		pending_drop(s, id);
		return mu_errf(err, MU_ENOMEM, "out of memory");
	}
	/* From here on the id is known, also if the line does not reach the
	 * disk: its job is answered "error", and a second delivery must not
	 * run it.  A run stays open until that answer is spooled (its done
	 * line), in case its run line did reach the disk. */
	if (write(s->fd, line, (size_t)n) != n)
		return mu_errf(err, MU_EIO, "%s: %s", s->path, strerror(errno));
	s->unsynced = true;
	return MU_OK;
}

int
seen_sync(struct seen_set *s, struct mu_err *err)
{
	bool failed = s->sync_failed;

	s->sync_failed = false;
	if (!s->unsynced && !failed)
		return MU_OK;
	s->unsynced = false;
	if (failed || fdatasync(s->fd) != 0)
		return mu_errf(err, MU_EIO, "%s: %s", s->path, failed ? "an earlier flush failed" :
		    strerror(errno));
	return MU_OK;
}

int
seen_add(struct seen_set *s, const char *id, uint64_t not_after, const char *run_module,
    struct mu_err *err)
{
	int rc = seen_append(s, id, not_after, run_module, err);

	return rc != MU_OK ? rc : seen_sync(s, err);
}

int
seen_mark_run(struct seen_set *s, const char *id, uint64_t not_after, const char *module,
    struct mu_err *err)
{
	char line[192];
	int n, rc;

	if (!seen_has(s, id))
		return seen_add(s, id, not_after, module, err);
	n = snprintf(line, sizeof(line), "%s %" PRIu64 " run %s\n", id, not_after, module);
	if (pending_add(s, id, not_after, module) != MU_OK)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	if ((rc = append_line(s, line, n, err)) != MU_OK)
		pending_drop(s, id);
	return rc;
}

int
seen_run_done(struct seen_set *s, const char *id, struct mu_err *err)
{
	const struct seen_run *r = pending_find(s, id);
	char line[128];
	int n;

	if (r == NULL)
		return MU_OK;		/* not journaled, or marked done already */
	n = snprintf(line, sizeof(line), "%s %" PRIu64 " done\n", id, r->not_after);
	/* Flushed with the others of the same read (seen_sync(), priv.c's
	 * read_commit()): one fdatasync for a burst of answers. */
	if (write(s->fd, line, (size_t)n) != n)
		return mu_errf(err, MU_EIO, "%s: %s", s->path, strerror(errno));
	s->unsynced = true;
	pending_drop(s, id);
	return MU_OK;
}

void
seen_prune(struct seen_set *s, uint64_t now_ms)
{
	struct mu_err err;
	size_t before = s->n;

	/* The table is rebuilt for what is left: after a burst, an idle agent
	 * gives the memory back. */
	if (drop_expired(s, now_ms) != MU_OK) {
		log_warnx("seen-set: out of memory; expired ids kept until the next prune");
		return;
	}
	if (s->n != before && (rewrite(s, &err) != MU_OK || reopen_append(s, &err) != MU_OK))
		log_warnx("seen-set: %s", err.msg);
}

void
seen_close(struct seen_set *s)
{
	if (s->fd != -1)
		close(s->fd);
	free(s->slots);
	free(s->runs);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}
