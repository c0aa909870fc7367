/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inbox.c - messages made durable before they are acknowledged (inbox.h).
 */
#include "inbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_LEN		16
#define SUM_LEN		4
#define TYPE_MSG	'M'
#define TYPE_DONE	'D'
#define TOPIC_MAX_LEN	65535

struct replay {
	uint64_t seq;
	char *topic;		/* owned */
	uint8_t *payload;	/* owned */
	size_t len;
};

struct inbox {
	pthread_mutex_t lock;	/* fd, size, next_seq, pending */
	int fd;
	uint64_t size;
	uint64_t next_seq;
	size_t pending;
	struct replay *replay;	/* owned, found not done at open */
	size_t nreplay, replay_at;
};

static uint32_t
fnv1a(uint32_t h, const uint8_t *p, size_t n)
{
	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static void
put_be(uint8_t *p, uint64_t v, int n)
{
	while (n--) {
		p[n] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- reading it back at open --------------------------------------------- */

/* The record at p (at most n bytes): its length, or 0 if torn or corrupt. */
static size_t
record_check(const uint8_t *p, size_t n, int *type, uint64_t *seq)
{
	uint64_t body;
	size_t total;

	if (n < HDR_LEN + SUM_LEN)
		return 0;
	body = get_be(p, 4);
	if (body > n - HDR_LEN - SUM_LEN)
		return 0;
	total = HDR_LEN + (size_t)body + SUM_LEN;
	if ((p[4] != TYPE_MSG && p[4] != TYPE_DONE) || p[5] || p[6] || p[7] ||
	    get_be(p + HDR_LEN + body, SUM_LEN) != fnv1a(2166136261u, p, HDR_LEN + body))
		return 0;
	if ((p[4] == TYPE_DONE && body != 0) || (p[4] == TYPE_MSG && (body < 2 ||
	    get_be(p + HDR_LEN, 2) > body - 2)))
		return 0;
	*type = p[4];
	*seq = get_be(p + 8, 8);
	return total;
}

static int
replay_add(struct inbox *ib, const uint8_t *body, size_t blen, uint64_t seq)
{
	size_t tl = (size_t)get_be(body, 2);
	struct replay *r, *n;

	if ((n = reallocarray(ib->replay, ib->nreplay + 1, sizeof(*n))) == NULL)
		return MU_ENOMEM;
	ib->replay = n;
	r = &ib->replay[ib->nreplay];
	r->seq = seq;
	r->len = blen - 2 - tl;
	r->topic = strndup((const char *)body + 2, tl);
	r->payload = malloc(r->len ? r->len : 1);
	if (r->topic == NULL || r->payload == NULL) {
		free(r->topic);
		free(r->payload);
		return MU_ENOMEM;
	}
	memcpy(r->payload, body + 2 + tl, r->len);
	ib->nreplay++;
	return MU_OK;
}

static void
replay_drop(struct inbox *ib, uint64_t seq)
{
	size_t i;

	for (i = 0; i < ib->nreplay; i++)
		if (ib->replay[i].seq == seq) {
			free(ib->replay[i].topic);
			free(ib->replay[i].payload);
			memmove(&ib->replay[i], &ib->replay[i + 1],
			    (ib->nreplay - i - 1) * sizeof(*ib->replay));
			ib->nreplay--;
			return;
		}
}

/* Every record in order; the good length of the file into *good. */
static int
inbox_load(struct inbox *ib, const uint8_t *buf, size_t len, size_t *good)
{
	size_t off = 0, n;
	uint64_t seq;
	int type, rc;

	while ((n = record_check(buf + off, len - off, &type, &seq)) != 0) {
		if (type == TYPE_MSG) {
			if ((rc = replay_add(ib, buf + off + HDR_LEN, n - HDR_LEN - SUM_LEN,
			    seq)) != MU_OK)
				return rc;
		} else
			replay_drop(ib, seq);
		if (seq >= ib->next_seq)
			ib->next_seq = seq + 1;
		off += n;
	}
	*good = off;
	return MU_OK;
}

int
inbox_open(struct inbox **out, const char *path, struct mu_err *err)
{
	struct inbox *ib;
	struct stat st;
	uint8_t *buf = NULL;
	size_t len = 0, good = 0;
	int rc;

	*out = NULL;
	if ((ib = calloc(1, sizeof(*ib))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	pthread_mutex_init(&ib->lock, NULL);
	ib->next_seq = 1;
	ib->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (ib->fd == -1) {
		rc = mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(ib->fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		rc = mu_errf(err, MU_EIO, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size > 0 && read_fd(ib->fd, INBOX_MAX_BYTES, &buf, &len, NULL) != MU_OK) {
		rc = mu_errf(err, MU_EIO, "%s: unreadable, or over %u bytes", path,
		    INBOX_MAX_BYTES);
		goto fail;
	}
	if ((rc = inbox_load(ib, buf, len, &good)) != MU_OK) {
		mu_errf(err, rc, "%s: out of memory", path);
		goto fail;
	}
	free(buf);
	buf = NULL;
	/* A torn tail was never acknowledged: the broker sends it again. */
	if (ib->nreplay == 0)
		good = 0;
	if (good != len && (ftruncate(ib->fd, (off_t)good) == -1 || fdatasync(ib->fd) == -1)) {
		rc = mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
		goto fail;
	}
	ib->size = good;
	ib->pending = ib->nreplay;
	*out = ib;
	return MU_OK;
fail:
	free(buf);
	inbox_close(ib);
	return rc;
}

void
inbox_close(struct inbox *ib)
{
	size_t i;

	if (ib == NULL)
		return;
	for (i = 0; i < ib->nreplay; i++) {
		free(ib->replay[i].topic);
		free(ib->replay[i].payload);
	}
	free(ib->replay);
	if (ib->fd != -1)
		close(ib->fd);
	pthread_mutex_destroy(&ib->lock);
	free(ib);
}

/* ---- writing ------------------------------------------------------------- */

/* One record: header, body parts, sum; written whole (O_APPEND). */
static int
record_write(struct inbox *ib, int type, uint64_t seq, const void *a, size_t alen,
    const void *b, size_t blen)
{
	size_t body = alen + blen, total = HDR_LEN + body + SUM_LEN;
	uint8_t *rec = malloc(total);
	int rc = MU_OK;

	if (rec == NULL)
		return MU_ENOMEM;
	memset(rec, 0, HDR_LEN);
	put_be(rec, body, 4);
	rec[4] = (uint8_t)type;
	put_be(rec + 8, seq, 8);
	if (alen)
		memcpy(rec + HDR_LEN, a, alen);
	if (blen)
		memcpy(rec + HDR_LEN + alen, b, blen);
	put_be(rec + HDR_LEN + body, fnv1a(2166136261u, rec, HDR_LEN + body), SUM_LEN);
	if (write_full(ib->fd, rec, total) != MU_OK)
		rc = MU_EIO;
	else
		ib->size += total;
	free(rec);
	return rc;
}

int
inbox_put(struct inbox *ib, const char *topic, const void *payload, size_t len,
    uint64_t *seq)
{
	size_t tl = strlen(topic);
	uint8_t *head;
	int rc;

	if (tl > TOPIC_MAX_LEN || len > INBOX_MAX_BYTES / 2)
		return MU_EINVAL;
	if ((head = malloc(2 + tl)) == NULL)
		return MU_ENOMEM;
	put_be(head, tl, 2);
	memcpy(head + 2, topic, tl);
	pthread_mutex_lock(&ib->lock);
	*seq = ib->next_seq;
	rc = record_write(ib, TYPE_MSG, *seq, head, 2 + tl, payload, len);
	if (rc == MU_OK && fdatasync(ib->fd) == -1)
		rc = MU_EIO;
	if (rc == MU_OK) {
		ib->next_seq++;
		ib->pending++;
	}
	pthread_mutex_unlock(&ib->lock);
	free(head);
	return rc;
}

void
inbox_done(struct inbox *ib, uint64_t seq)
{
	pthread_mutex_lock(&ib->lock);
	/* Not written: replayed after a restart, and dropped there. */
	(void)record_write(ib, TYPE_DONE, seq, NULL, 0, NULL, 0);
	if (ib->pending)
		ib->pending--;
	/* Nothing pending: nothing in the file is needed any more. */
	if (ib->pending == 0 && ib->size > INBOX_COMPACT_BYTES && ftruncate(ib->fd, 0) == 0)
		ib->size = 0;
	pthread_mutex_unlock(&ib->lock);
}

bool
inbox_replay_next(struct inbox *ib, const char **topic, const uint8_t **payload,
    size_t *len, uint64_t *seq)
{
	struct replay *r;

	if (ib->replay_at >= ib->nreplay)
		return false;
	r = &ib->replay[ib->replay_at++];
	*topic = r->topic;
	*payload = r->payload;
	*len = r->len;
	*seq = r->seq;
	return true;
}

size_t
inbox_pending(struct inbox *ib)
{
	size_t n;

	pthread_mutex_lock(&ib->lock);
	n = ib->pending;
	pthread_mutex_unlock(&ib->lock);
	return n;
}
