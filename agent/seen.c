/*
 * seen.c - the set of job ids this host has accepted, so a replayed job is
 * refused even after a restart.  An entry is kept until its job could no
 * longer pass the validity check anyway (not_after + clock skew).
 *
 * On disk: state_dir/seen, one "id not_after\n" line per accepted job,
 * appended and fdatasync'ed before the job runs; compacted on open and on
 * prune.  In memory: a hash table of 16-byte entries (agent.h), so a
 * lookup does not grow with the set and 10,000 live jobs cost 256 KiB.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#define SEEN_MIN_SLOTS	64
/* Marks an entry whose line a rewrite has copied already (a not_after in
 * ms is far below 2^63). */
#define SEEN_COPIED	(UINT64_C(1) << 63)

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

/* The slot holding h, or the free slot where it goes (cap > 0, never
 * full: the table is kept at most 3/4 full). */
static struct seen_entry *
slot_for(const struct seen_set *s, uint64_t h)
{
	size_t i = (size_t)h & (s->cap - 1);

	while (s->slots[i].hash != 0 && s->slots[i].hash != h)
		i = (i + 1) & (s->cap - 1);
	return &s->slots[i];
}

/* Slots for n entries with the table at most 3/4 full. */
static size_t
slots_for(size_t n)
{
	size_t cap = SEEN_MIN_SLOTS;

	while (cap / 4 * 3 < n)
		cap *= 2;
	return cap;
}

/* Move the entries still live at now_ms (0: all) into a table sized for
 * them: growing after an insert, shrinking after a prune. */
static int
table_rebuild(struct seen_set *s, size_t need, uint64_t now_ms)
{
	struct seen_set t = { .cap = slots_for(need) };
	size_t i;

	if ((t.slots = calloc(t.cap, sizeof(*t.slots))) == NULL)
		return MU_ENOMEM;
	for (i = 0; i < s->cap; i++) {
		const struct seen_entry *e = &s->slots[i];

		if (e->hash == 0 || (now_ms && expired(e->not_after, now_ms)))
			continue;
		*slot_for(&t, e->hash) = *e;
		t.n++;
	}
	free(s->slots);
	s->slots = t.slots, s->cap = t.cap, s->n = t.n;
	return MU_OK;
}

static int
entry_insert(struct seen_set *s, uint64_t h, uint64_t not_after)
{
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

/* "id not_after\n"; a torn last line (crash mid-append) does not parse. */
static bool
parse_line(const char *line, char *id, uint64_t *not_after)
{
	return sscanf(line, "%65s %" SCNu64, id, not_after) == 2 && jobid_valid(id) &&
	    *not_after < SEEN_COPIED;
}

static int
load_file(struct seen_set *s, uint64_t now_ms)
{
	char line[160], id[JOBID_MAX_LEN + 2];
	uint64_t not_after;
	FILE *f;
	int rc = MU_OK;

	if ((f = fopen(s->path, "re")) == NULL)
		return MU_OK;
	while (rc == MU_OK && fgets(line, sizeof(line), f) != NULL)
		if (parse_line(line, id, &not_after) && !expired(not_after, now_ms))
			rc = entry_insert(s, id_hash(id), not_after);
	fclose(f);
	return rc;
}

/* Copy the file's lines whose ids are still in the table, once each. */
static void
copy_live_lines(struct seen_set *s, FILE *in, FILE *out)
{
	char line[160], id[JOBID_MAX_LEN + 2];
	struct seen_entry *e;
	uint64_t not_after;
	size_t i;

	while (in && fgets(line, sizeof(line), in) != NULL) {
		if (!parse_line(line, id, &not_after) || (e = entry_find(s, id)) == NULL ||
		    (e->not_after & SEEN_COPIED))
			continue;
		fprintf(out, "%s %" PRIu64 "\n", id, e->not_after);
		e->not_after |= SEEN_COPIED;
	}
	for (i = 0; i < s->cap; i++)
		s->slots[i].not_after &= ~SEEN_COPIED;
}

/* Write the live entries to a new file and swap it in atomically.  The ids
 * come from the old file: memory holds only their hashes. */
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
	if (rename(tmp, s->path) == -1)
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
	if ((size_t)snprintf(s->path, sizeof(s->path), "%s/seen", state_dir) >= sizeof(s->path))
		return mu_errf(err, MU_EINVAL, "state_dir path too long");
	if (load_file(s, now_ms) != MU_OK)
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

int
seen_add(struct seen_set *s, const char *id, uint64_t not_after, struct mu_err *err)
{
	char line[128];
	int n;

	n = snprintf(line, sizeof(line), "%s %" PRIu64 "\n", id, not_after);
	if (write(s->fd, line, (size_t)n) != n || fdatasync(s->fd) != 0)
		return mu_errf(err, MU_EIO, "%s: %s", s->path, strerror(errno));
	if (entry_insert(s, id_hash(id), not_after) != MU_OK)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	return MU_OK;
}

void
seen_prune(struct seen_set *s, uint64_t now_ms)
{
	struct mu_err err;
	size_t i, live = 0, before = s->n;

	for (i = 0; i < s->cap; i++)
		if (s->slots[i].hash != 0 && !expired(s->slots[i].not_after, now_ms))
			live++;
	if (live == before)
		return;
	/* A table sized for what is left: after a burst, an idle agent gives
	 * the memory back. */
	if (table_rebuild(s, live, now_ms) != MU_OK) {
		log_warnx("seen-set: out of memory; expired ids kept until the next prune");
		return;
	}
	if (rewrite(s, &err) != MU_OK || reopen_append(s, &err) != MU_OK)
		log_warnx("seen-set: %s", err.msg);
}

void
seen_close(struct seen_set *s)
{
	if (s->fd != -1)
		close(s->fd);
	free(s->slots);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}
