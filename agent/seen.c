/*
 * seen.c - the set of job ids this host has accepted, so a replayed job is
 * refused even after a restart.  An entry is kept until its job could no
 * longer pass the validity check anyway (not_after + clock skew).
 *
 * On disk: state_dir/seen, one "id not_after\n" line per accepted job,
 * appended and fdatasync'ed before the job runs; compacted on open and on
 * prune.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* not_after + skew < now, without wrapping for a huge not_after. */
static bool
expired(const struct seen_entry *e, uint64_t now_ms)
{
	return now_ms > CLOCK_SKEW_MS && e->not_after < now_ms - CLOCK_SKEW_MS;
}

static int
entry_append(struct seen_set *s, const char *id, uint64_t not_after)
{
	struct seen_entry *e;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;

		if ((e = reallocarray(s->entries, cap, sizeof(*e))) == NULL)
			return MU_ENOMEM;
		s->entries = e, s->cap = cap;
	}
	e = &s->entries[s->n++];
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->not_after = not_after;
	return MU_OK;
}

static void
load_file(struct seen_set *s, uint64_t now_ms)
{
	char line[160], id[JOBID_MAX_LEN + 2];
	uint64_t not_after;
	FILE *f;

	if ((f = fopen(s->path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		struct seen_entry e;

		/* A torn last line (crash mid-append) is simply skipped. */
		if (sscanf(line, "%65s %" SCNu64, id, &not_after) != 2 || !jobid_valid(id))
			continue;
		memcpy(e.id, id, strlen(id) + 1);	/* jobid_valid: <= 64 chars */
		e.not_after = not_after;
		if (!expired(&e, now_ms) && !seen_has(s, id))
			entry_append(s, id, not_after);
	}
	fclose(f);
}

/* Write the live entries to a new file and swap it in atomically. */
static int
rewrite(struct seen_set *s, struct mu_err *err)
{
	char tmp[sizeof(s->path) + 8];
	FILE *f;
	size_t i;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.new", s->path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		if (fd != -1)
			close(fd);
		return mu_errf(err, MU_EIO, "%s: %s", tmp, strerror(errno));
	}
	for (i = 0; i < s->n; i++)
		fprintf(f, "%s %" PRIu64 "\n", s->entries[i].id, s->entries[i].not_after);
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
	load_file(s, now_ms);
	rc = rewrite(s, err);
	if (!rc)
		rc = reopen_append(s, err);
	return rc;
}

bool
seen_has(const struct seen_set *s, const char *id)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->entries[i].id, id) == 0)
			return true;
	return false;
}

int
seen_add(struct seen_set *s, const char *id, uint64_t not_after, struct mu_err *err)
{
	char line[128];
	int n;

	n = snprintf(line, sizeof(line), "%s %" PRIu64 "\n", id, not_after);
	if (write(s->fd, line, (size_t)n) != n || fdatasync(s->fd) != 0)
		return mu_errf(err, MU_EIO, "%s: %s", s->path, strerror(errno));
	if (entry_append(s, id, not_after) != MU_OK)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	return MU_OK;
}

void
seen_prune(struct seen_set *s, uint64_t now_ms)
{
	struct mu_err err;
	size_t i = 0, before = s->n;

	while (i < s->n) {
		if (expired(&s->entries[i], now_ms))
			s->entries[i] = s->entries[--s->n];
		else
			i++;
	}
	if (s->n != before && (rewrite(s, &err) != MU_OK || reopen_append(s, &err) != MU_OK))
		log_warnx("seen-set: %s", err.msg);
	/* After a burst the array is mostly empty: give the memory back (an
	 * idle agent should not keep 80 bytes per job of a past burst). */
	if (s->cap > 64 && s->n < s->cap / 4) {
		size_t cap = s->n * 2 > 64 ? s->n * 2 : 64;
		struct seen_entry *e = reallocarray(s->entries, cap, sizeof(*e));

		if (e != NULL)
			s->entries = e, s->cap = cap;
	}
}

void
seen_close(struct seen_set *s)
{
	if (s->fd != -1)
		close(s->fd);
	free(s->entries);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}
