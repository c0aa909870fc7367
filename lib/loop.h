/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loop.h - a tiny poll() event loop in the manner of Redis' ae.c: file
 * descriptors and timers are registered with a callback and an opaque
 * argument; callbacks are short and run on the loop's thread.
 *
 * Ownership: the loop owns its registrations, never the fds or the
 * arguments.  A callback may add or remove any registration, including its
 * own; removal takes effect at once (a removed fd's pending event is not
 * delivered).
 */
#ifndef MUSTER_LOOP_H
#define MUSTER_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

typedef void loop_fd_cb(struct loop *l, int fd, short revents, void *arg);
typedef void loop_timer_cb(struct loop *l, uint64_t id, void *arg);

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Watch fd for events (POLLIN, POLLOUT); replaces an earlier watch of fd. */
int loop_add_fd(struct loop *l, int fd, short events, loop_fd_cb *cb, void *arg);
void loop_del_fd(struct loop *l, int fd);

/* A one-shot timer after delay_ms; returns its id (never 0), or 0 on ENOMEM. */
uint64_t loop_add_timer(struct loop *l, uint64_t delay_ms, loop_timer_cb *cb, void *arg);
void loop_del_timer(struct loop *l, uint64_t id);

/* Run until loop_stop(); returns 0, or -1 if poll() fails for good. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* Monotonic and wall clocks in milliseconds. */
uint64_t now_mono_ms(void);
uint64_t now_wall_ms(void);

#endif
