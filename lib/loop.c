/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loop.c - poll() over a small array of fds plus a list of timers.  The
 * agent watches a handful of fds (signals, MQTT queue, wake port, two per
 * running job), so linear scans beat any cleverer structure here.
 */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct watch {
	int fd;
	short events;
	loop_fd_cb *cb;
	void *arg;
};

struct timer {
	uint64_t id, due;
	loop_timer_cb *cb;
	void *arg;
};

struct loop {
	struct watch *watches;
	size_t nwatches, capwatches;
	struct timer *timers;
	size_t ntimers, captimers;
	uint64_t next_id;
	bool stop;
};

uint64_t
now_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct loop *
loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (l)
		l->next_id = 1;
	return l;
}

void
loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	free(l->watches);
	free(l->timers);
	free(l);
}

static bool
grow(void **arr, size_t *cap, size_t need, size_t size)
{
	size_t ncap;
	void *p;

	if (need <= *cap)
		return true;
	ncap = *cap ? *cap * 2 : 16;
	if ((p = reallocarray(*arr, ncap, size)) == NULL)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

int
loop_add_fd(struct loop *l, int fd, short events, loop_fd_cb *cb, void *arg)
{
	size_t i;

	for (i = 0; i < l->nwatches; i++)
		if (l->watches[i].fd == fd) {
			l->watches[i] = (struct watch){ fd, events, cb, arg };
			return 0;
		}
	if (!grow((void **)&l->watches, &l->capwatches, l->nwatches + 1,
	    sizeof(struct watch)))
		return -1;
	l->watches[l->nwatches++] = (struct watch){ fd, events, cb, arg };
	return 0;
}

void
loop_del_fd(struct loop *l, int fd)
{
	size_t i;

	for (i = 0; i < l->nwatches; i++)
		if (l->watches[i].fd == fd) {
			l->watches[i] = l->watches[--l->nwatches];
			return;
		}
}

uint64_t
loop_add_timer(struct loop *l, uint64_t delay_ms, loop_timer_cb *cb, void *arg)
{
	if (!grow((void **)&l->timers, &l->captimers, l->ntimers + 1, sizeof(struct timer)))
		return 0;
	l->timers[l->ntimers++] = (struct timer){ l->next_id, now_mono_ms() + delay_ms,
	    cb, arg };
	return l->next_id++;
}

void
loop_del_timer(struct loop *l, uint64_t id)
{
	size_t i;

	for (i = 0; i < l->ntimers; i++)
		if (l->timers[i].id == id) {
			l->timers[i] = l->timers[--l->ntimers];
			return;
		}
}

void
loop_stop(struct loop *l)
{
	l->stop = true;
}

/* Milliseconds until the earliest timer, or -1 if there is none. */
static int
next_timeout(const struct loop *l)
{
	uint64_t now = now_mono_ms(), best = UINT64_MAX;
	size_t i;

	for (i = 0; i < l->ntimers; i++)
		if (l->timers[i].due < best)
			best = l->timers[i].due;
	if (best == UINT64_MAX)
		return -1;
	if (best <= now)
		return 0;
	return best - now > 60000 ? 60000 : (int)(best - now);
}

/* Fire every due timer; each one is removed before its callback runs. */
static void
run_timers(struct loop *l)
{
	uint64_t now = now_mono_ms();
	size_t i = 0;

	while (i < l->ntimers) {
		struct timer t = l->timers[i];

		if (t.due > now) {
			i++;
			continue;
		}
		l->timers[i] = l->timers[--l->ntimers];
		t.cb(l, t.id, t.arg);
		i = 0;	/* the callback may have changed the list */
	}
}

/* Callbacks must tolerate a spurious wake-up: an fd closed and reopened by
 * an earlier callback in the same round may get the old fd's event. */
static void
run_fds(struct loop *l, struct pollfd *pfds, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		if (pfds[i].revents == 0)
			continue;
		/* Find the watch again: earlier callbacks may have moved it. */
		for (j = 0; j < l->nwatches; j++)
			if (l->watches[j].fd == pfds[i].fd)
				break;
		if (j == l->nwatches)
			continue;
		l->watches[j].cb(l, pfds[i].fd, pfds[i].revents, l->watches[j].arg);
	}
}

int
loop_run(struct loop *l)
{
	struct pollfd *pfds = NULL;
	size_t cap = 0, n, i;
	int rc;

	l->stop = false;
	while (!l->stop) {
		if (!grow((void **)&pfds, &cap, l->nwatches + 1, sizeof(*pfds))) {
			free(pfds);
			return -1;
		}
		n = l->nwatches;
		for (i = 0; i < n; i++)
			pfds[i] = (struct pollfd){ l->watches[i].fd, l->watches[i].events, 0 };
		rc = poll(pfds, n, next_timeout(l));
		if (rc == -1 && errno != EINTR) {
			free(pfds);
			return -1;
		}
		if (rc > 0)
			run_fds(l, pfds, n);
		run_timers(l);
	}
	free(pfds);
	return 0;
}
