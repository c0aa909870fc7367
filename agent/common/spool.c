/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spool.c - results that must not be lost (the journal of running jobs is
 * in the seen-set, seen.c; journal_remove() clears what older versions left).
 *
 * A result is written to state_dir/net/spool/<seq>.res and fsync'ed (file and
 * folder) before it is first published; it is unlinked only when the
 * broker acknowledges it (QoS 1 PUBACK).  After a broker outage or an agent
 * restart the remaining files are sent again, in order.
 *
 * File layout: "MSP1", u16 topic length, u16 job id length (big-endian),
 * topic, job id, payload.
 *
 * The file's seq orders the files.  (The result's own "seq", which
 * observers read, is the parent's, inside what it signs: parent/sign.c.)
 * It never goes back, also after a restart with an empty spool, at no
 * extra fsync per result: when the newest result
 * ever spooled is acknowledged, its file is renamed to last-<seq> instead
 * of unlinked (and the marker before it removed).  A rename is atomic, so
 * after a crash either <seq>.res or last-<seq> is there; and an older
 * result is only acknowledged while a newer .res file (fsync'ed with its
 * folder before it was published) holds the high mark.
 */
#include "agent.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SPOOL_MAGIC "MSP1"

/* Write a file durably: tmp, fsync, rename, fsync the folder (unless
 * the caller does that once for several files: !sync_dir). */
static int
write_durable(const char *dir, const char *name, const struct iovec *iov, int n,
    bool sync_dir, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 96], tmp[CONF_PATH_MAX + 104];
	int fd, i;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		return mu_errf(err, MU_EIO, "%s: %s", tmp, strerror(errno));
	for (i = 0; i < n; i++)
		if (write_full(fd, iov[i].iov_base, iov[i].iov_len) != MU_OK) {
			mu_errf(err, MU_EIO, "%s: %s", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			return MU_EIO;
		}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0 ||
	    (sync_dir && fsync_dir(dir) != 0)) {
		unlink(tmp);
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	}
	return MU_OK;
}

static void
spooled_free(struct spooled *s)
{
	free(s->topic);
	free(s->payload);
	free(s);
}

static void
list_append(struct spool *sp, struct spooled *s)
{
	if (sp->tail)
		sp->tail->next = s;
	else
		sp->head = s;
	sp->tail = s;
	sp->count++;
}

static struct spooled *
spooled_new(uint64_t seq, const char *job, const char *topic, const void *p, size_t len)
{
	struct spooled *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->topic = strdup(topic)) == NULL ||
	    (s->payload = malloc(len ? len : 1)) == NULL) {
		if (s)
			spooled_free(s);
		return NULL;
	}
	s->seq = seq;
	snprintf(s->job, sizeof(s->job), "%s", job);
	memcpy(s->payload, p, len);
	s->len = len;
	return s;
}

/* Parse one spool file's bytes; NULL if it is damaged. */
static struct spooled *
spooled_parse(uint64_t seq, const uint8_t *b, size_t n)
{
	char topic[TOPIC_MAX], job[JOBID_MAX_LEN + 1];
	size_t tl, jl;

	if (n < 8 || memcmp(b, SPOOL_MAGIC, 4) != 0)
		return NULL;
	tl = (size_t)b[4] << 8 | b[5];
	jl = (size_t)b[6] << 8 | b[7];
	if (tl == 0 || tl >= sizeof(topic) || jl == 0 || jl >= sizeof(job) || 8 + tl + jl > n)
		return NULL;
	memcpy(topic, b + 8, tl);
	topic[tl] = '\0';
	memcpy(job, b + 8 + tl, jl);
	job[jl] = '\0';
	if (!jobid_valid(job) || strlen(topic) != tl)
		return NULL;
	return spooled_new(seq, job, topic, b + 8 + tl + jl, n - 8 - tl - jl);
}


/* Read only (the parent, spool_read()): the folder is the network
 * process's, reached through sp->dirfd, and nothing in it is moved or
 * removed by root. */
static void
load_one(struct spool *sp, const char *name)
{
	char path[CONF_PATH_MAX + 96], bad[CONF_PATH_MAX + 104];
	struct spooled *s = NULL;
	uint64_t seq;
	uint8_t *buf;
	size_t len = 0;
	char *end;

	if (strncmp(name, "last-", 5) == 0) {
		seq = strtoull(name + 5, &end, 10);
		if (*end != '\0' || end == name + 5)
			return;
		/* Names sort in seq order: a marker left behind by a crash
		 * between the rename and the unlink goes now. */
		if (sp->last_mark && sp->dirfd < 0) {
			snprintf(path, sizeof(path), "%s/last-%020" PRIu64, sp->dir, sp->last_mark);
			unlink(path);
		}
		sp->last_mark = seq;
		if (seq >= sp->next_seq)
			sp->next_seq = seq + 1;
		return;
	}
	seq = strtoull(name, &end, 10);
	if (strcmp(end, ".res") != 0)
		return;
	if (sp->dirfd >= 0)
		snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", sp->dirfd, name);
	else
		snprintf(path, sizeof(path), "%s/%s", sp->dir, name);
	/* The parent reads this folder too, and the network process writes
	 * it: never block on a FIFO or follow a link planted there. */
	if (read_untrusted(path, WIRE_MAX_MSG, (uid_t)-1, &buf, &len, NULL) == MU_OK)
		s = spooled_parse(seq, buf, len);
	free(buf);
	if (s == NULL && sp->dirfd >= 0) {
		log_warnx("spool: %s/%s is damaged; left to the network process",
		    sp->dir, name);
		return;
	}
	if (s == NULL) {
		/* Keep the evidence, but never let one bad file block the rest. */
		snprintf(bad, sizeof(bad), "%s.bad", path);
		rename(path, bad);
		log_warnx("spool: %s is damaged; moved aside", path);
		return;
	}
	list_append(sp, s);
	if (seq >= sp->next_seq)
		sp->next_seq = seq + 1;
}

static int
spool_paths(struct spool *sp, const char *dir, const char *journal_dir, struct mu_err *err)
{
	memset(sp, 0, sizeof(*sp));
	sp->next_seq = 1;
	sp->dirfd = -1;
	if ((size_t)snprintf(sp->dir, sizeof(sp->dir), "%s/spool", dir) >= sizeof(sp->dir) ||
	    (size_t)snprintf(sp->journal, sizeof(sp->journal), "%s/running",
	    journal_dir ? journal_dir : "/nonexistent") >= sizeof(sp->journal))
		return mu_errf(err, MU_EINVAL, "state_dir path too long");
	return MU_OK;
}

static int
spool_load(struct spool *sp, struct mu_err *err)
{
	struct dirent **names = NULL;
	int i, n;

	/* Zero-padded names: alphabetical order is sequence order. */
	n = sp->dirfd >= 0 ? scandirat(sp->dirfd, ".", &names, NULL, alphasort) :
	    scandir(sp->dir, &names, NULL, alphasort);
	if (n == -1)
		return mu_errf(err, MU_EIO, "%s: %s", sp->dir, strerror(errno));
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.')
			load_one(sp, names[i]->d_name);
		free(names[i]);
	}
	free(names);
	if (sp->count)
		log_info("spool: %zu results from before are waiting to be sent", sp->count);
	return MU_OK;
}

int
spool_open(struct spool *sp, const char *dir, const char *journal_dir, struct mu_err *err)
{
	int rc;

	if ((rc = spool_paths(sp, dir, journal_dir, err)) != MU_OK ||
	    (rc = mkdir_private(dir, err)) != MU_OK || (rc = mkdir_private(sp->dir, err)) != MU_OK)
		return rc;
	return spool_load(sp, err);
}

int
spool_read(struct spool *sp, const char *dir, const char *journal_dir, struct mu_err *err)
{
	int rc;

	if ((rc = spool_paths(sp, dir, journal_dir, err)) != MU_OK)
		return rc;
	/* A link planted in place of the folder is not followed. */
	sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sp->dirfd == -1 && (errno == ENOTDIR || errno == ELOOP)) {
		/* Not a folder the network process made: nothing of it is
		 * believed (its results, if any, it publishes itself). */
		log_warnx("spool: %s is not a folder; not read", sp->dir);
		return MU_OK;
	}
	if (sp->dirfd == -1)
		return errno == ENOENT ? MU_OK :
		    mu_errf(err, MU_EIO, "%s: %s", sp->dir, strerror(errno));
	rc = spool_load(sp, err);
	/* The names are read: nothing else goes through the folder. */
	close(sp->dirfd);
	sp->dirfd = -1;
	return rc;
}

int
spool_put(struct spool *sp, const char *job, const char *topic, const void *payload,
    size_t len, struct mu_err *err)
{
	int rc = spool_stage(sp, job, topic, payload, len, err);

	return rc != MU_OK ? rc : spool_sync(sp, err);
}

int
spool_sync(struct spool *sp, struct mu_err *err)
{
	if (!sp->dir_dirty)
		return MU_OK;
	sp->dir_dirty = false;
	if (fsync_dir(sp->dir) != 0)
		return mu_errf(err, MU_EIO, "%s: %s", sp->dir, strerror(errno));
	return MU_OK;
}

int
spool_stage(struct spool *sp, const char *job, const char *topic, const void *payload,
    size_t len, struct mu_err *err)
{
	uint8_t hdr[8];
	struct iovec iov[4];
	struct spooled *s;
	char name[32];
	size_t tl = strlen(topic), jl = strlen(job);
	int rc;

	if (tl >= TOPIC_MAX || jl > JOBID_MAX_LEN)
		return mu_errf(err, MU_EINVAL, "topic or job id too long");
	if ((s = spooled_new(sp->next_seq, job, topic, payload, len)) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	memcpy(hdr, SPOOL_MAGIC, 4);
	hdr[4] = (uint8_t)(tl >> 8), hdr[5] = (uint8_t)tl;
	hdr[6] = (uint8_t)(jl >> 8), hdr[7] = (uint8_t)jl;
	iov[0] = (struct iovec){ hdr, 8 };
	iov[1] = (struct iovec){ (void *)topic, tl };
	iov[2] = (struct iovec){ (void *)job, jl };
	iov[3] = (struct iovec){ (void *)payload, len };
	snprintf(name, sizeof(name), "%020" PRIu64 ".res", s->seq);
	if ((rc = write_durable(sp->dir, name, iov, 4, false, err)) != MU_OK) {
		spooled_free(s);
		return rc;
	}
	sp->dir_dirty = true;
	sp->next_seq++;
	list_append(sp, s);
	return MU_OK;
}

bool
spool_has_job(const struct spool *sp, const char *job)
{
	const struct spooled *s;

	for (s = sp->head; s; s = s->next)
		if (strcmp(s->job, job) == 0)
			return true;
	return false;
}

void
spool_acked(struct spool *sp, int token)
{
	struct spooled *s, *prev = NULL;
	char path[CONF_PATH_MAX + 64], mark[CONF_PATH_MAX + 64];

	for (s = sp->head; s; prev = s, s = s->next)
		if (s->token == token && token != 0)
			break;
	if (s == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".res", sp->dir, s->seq);
	if (s->seq + 1 == sp->next_seq) {
		/* The newest result ever: it keeps the high mark (see above). */
		snprintf(mark, sizeof(mark), "%s/last-%020" PRIu64, sp->dir, s->seq);
		if (rename(path, mark) == -1 && errno != ENOENT)
			log_warn("spool: rename %s", path);
		else if (sp->last_mark && sp->last_mark != s->seq) {
			snprintf(mark, sizeof(mark), "%s/last-%020" PRIu64, sp->dir, sp->last_mark);
			unlink(mark);
		}
		sp->last_mark = s->seq;
	} else if (unlink(path) == -1 && errno != ENOENT)
		log_warn("spool: unlink %s", path);
	if (prev)
		prev->next = s->next;
	else
		sp->head = s->next;
	if (sp->tail == s)
		sp->tail = prev;
	sp->count--;
	spooled_free(s);
}

void
spool_close(struct spool *sp)
{
	struct spooled *s, *next;

	for (s = sp->head; s; s = next) {
		next = s->next;
		spooled_free(s);
	}
	sp->head = sp->tail = NULL;
	sp->count = 0;
}

/* Journal files were "job-<id>": a job id may be "." or "..". */
void
journal_remove(struct spool *sp, const char *id)
{
	char path[CONF_PATH_MAX + 96];

	snprintf(path, sizeof(path), "%s/job-%s", sp->journal, id);
	if (unlink(path) == -1) {
		if (errno != ENOENT)
			log_warn("journal: unlink %s", path);
		return;
	}
	fsync_dir(sp->journal);
}
