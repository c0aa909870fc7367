/* SPDX-License-Identifier: Apache-2.0 */
/*
 * paho_idle.c - longer waits for Paho's threads while all sessions idle
 * (see paho_idle.h for why and what exactly).
 */
#undef _FORTIFY_SOURCE		/* poll() is defined here, not wrapped */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "paho_idle.h"

#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* Paho's receive thread polls its sockets plus, here, the wake-up fd. */
#define PAHO_IDLE_MAX_FDS	64
/* The fixed waits of Paho 1.3 (MQTTAsyncUtils.c) that are lengthened. */
#define PAHO_RCV_POLL_MS	1000
#define PAHO_SEND_WAIT_MS	1000
/* The receive thread's first cycles, until its first ready socket. */
#define PAHO_RCV_FIRST_POLL_MS	10

enum paho_thread { THREAD_UNKNOWN = -1, THREAD_OTHER, THREAD_RCV, THREAD_SEND };

typedef int (*poll_fn)(struct pollfd *, nfds_t, int);
typedef int (*usleep_fn)(useconds_t);
typedef int (*timedwait_fn)(pthread_cond_t *, pthread_mutex_t *,
    const struct timespec *);

static struct {
	atomic_uint busy;		/* sessions not idle */
	unsigned idle_ms;		/* 0: not enabled */
	int wake_fd;			/* eventfd, readable once busy */
	pthread_once_t once;
	poll_fn poll;
	usleep_fn usleep;
	timedwait_fn timedwait;
} pi = { .wake_fd = -1, .once = PTHREAD_ONCE_INIT };

static _Thread_local signed char thread_kind = THREAD_UNKNOWN;
/* The receive thread's last poll was a long one that found nothing: skip
 * the nap Paho takes after it. */
static _Thread_local bool skip_nap;
/* The receive thread's last poll was Paho's check of its pending-write set
 * (timeout 0) and found a socket writable. */
static _Thread_local bool write_ready;

static void
resolve_real(void)
{
	pi.poll = (poll_fn)dlsym(RTLD_NEXT, "poll");
	pi.usleep = (usleep_fn)dlsym(RTLD_NEXT, "usleep");
	/* The version Paho links against (the 2.2.5 one is the old ABI). */
	pi.timedwait = (timedwait_fn)dlvsym(RTLD_NEXT, "pthread_cond_timedwait",
	    "GLIBC_2.3.2");
	if (pi.timedwait == NULL)
		pi.timedwait = (timedwait_fn)dlsym(RTLD_NEXT, "pthread_cond_timedwait");
}

static void
real_init(void)
{
	pthread_once(&pi.once, resolve_real);
}

/* Paho names its threads first thing (Thread_set_name), before any wait. */
static enum paho_thread
this_thread(void)
{
	char name[16] = "";

	if (thread_kind == THREAD_UNKNOWN) {
		prctl(PR_GET_NAME, name);
		thread_kind = strcmp(name, "MQTTAsync_rcv") == 0 ? THREAD_RCV :
		    strcmp(name, "MQTTAsync_send") == 0 ? THREAD_SEND : THREAD_OTHER;
	}
	return (enum paho_thread)thread_kind;
}

static bool
all_idle(void)
{
	return pi.idle_ms > 0 && atomic_load(&pi.busy) == 0;
}

bool
paho_idle_enable(unsigned idle_ms)
{
	real_init();
	if (idle_ms <= PAHO_RCV_POLL_MS || pi.poll == NULL || pi.timedwait == NULL)
		return false;
	if (pi.wake_fd == -1 &&
	    (pi.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return false;
	pi.idle_ms = idle_ms;
	return true;
}

void
paho_idle_hold(void)
{
	uint64_t one = 1;

	/* Wake a receive thread in a long poll: it must see the new socket,
	 * partial write or timeout with Paho's own 1 s timing. */
	if (atomic_fetch_add(&pi.busy, 1) == 0 && pi.wake_fd != -1 &&
	    write(pi.wake_fd, &one, sizeof(one)) != sizeof(one)) {
		/* Already readable (counter saturated): still a wake-up. */
	}
}

void
paho_idle_release(void)
{
	atomic_fetch_sub(&pi.busy, 1);
}

/* The receive thread's long poll: Paho's sockets plus the wake-up fd. */
static int
poll_long(struct pollfd *fds, nfds_t nfds)
{
	struct pollfd all[PAHO_IDLE_MAX_FDS + 1];
	uint64_t n;
	nfds_t i;
	int rc;

	memcpy(all, fds, nfds * sizeof(*fds));
	all[nfds] = (struct pollfd){ .fd = pi.wake_fd, .events = POLLIN };
	rc = pi.poll(all, nfds + 1, (int)pi.idle_ms);
	if (rc <= 0)
		return rc;
	for (i = 0; i < nfds; i++)
		fds[i].revents = all[i].revents;
	if (all[nfds].revents) {
		if (read(pi.wake_fd, &n, sizeof(n)) < 0) {
			/* Drained by an earlier poll: nothing to clear. */
		}
		rc--;
	}
	return rc;
}

int
poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	int rc;

	real_init();
	skip_nap = false;
	/*
	 * Socket_getReadySocket() polls the pending-write set (timeout 0),
	 * then the read set with the cycle's timeout, then serves the ready
	 * sockets, writable ones included.  While connecting, the write set
	 * holds the TCP connect: once it is writable the connect is done,
	 * and the read poll that follows can only delay the TLS handshake by
	 * its whole timeout (10 ms in the first cycles, the "fixed 10 ms" of
	 * every connect).  Paho serves the writable socket either way; the
	 * read poll then only looks, without waiting.  Only in the first
	 * cycles: later a writable socket can be a finished partial write,
	 * after which Paho must wait in that poll, not nap.
	 */
	if (write_ready && timeout == PAHO_RCV_FIRST_POLL_MS && this_thread() == THREAD_RCV)
		timeout = 0;
	write_ready = false;
	if (timeout == 0 && this_thread() == THREAD_RCV) {
		rc = pi.poll(fds, nfds, 0);
		write_ready = rc > 0;
		return rc;
	}
	if (timeout != PAHO_RCV_POLL_MS || nfds > PAHO_IDLE_MAX_FDS ||
	    !all_idle() || this_thread() != THREAD_RCV)
		return pi.poll(fds, nfds, timeout);
	rc = poll_long(fds, nfds);
	skip_nap = rc == 0;
	return rc;
}

int
usleep(useconds_t usec)
{
	real_init();
	if (skip_nap && this_thread() == THREAD_RCV) {
		skip_nap = false;
		return 0;
	}
	return pi.usleep(usec);
}

int
pthread_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mutex,
    const struct timespec *abstime)
{
	struct timespec later;
	unsigned extra_ms;

	real_init();
	if (!all_idle() || this_thread() != THREAD_SEND)
		return pi.timedwait(cond, mutex, abstime);
	extra_ms = pi.idle_ms - PAHO_SEND_WAIT_MS;
	later = *abstime;
	later.tv_sec += extra_ms / 1000;
	later.tv_nsec += (long)(extra_ms % 1000) * 1000000L;
	if (later.tv_nsec >= 1000000000L) {
		later.tv_sec++;
		later.tv_nsec -= 1000000000L;
	}
	return pi.timedwait(cond, mutex, &later);
}
