/* SPDX-License-Identifier: Apache-2.0 */
/*
 * paho_idle.h - let Paho 1.3's two threads sleep while every MQTT session
 * of the process is idle.
 *
 * Paho 1.3.12's MQTTAsync threads wake on fixed timers whatever happens
 * (MQTTAsyncUtils.c): the receive thread polls its sockets for 1 s and
 * then naps 100 ms when nothing came; the send thread waits on its
 * condition for 1 s.  That is 2.9 wake-ups a second for an idle agent,
 * about 0.2-0.3 ms of CPU a second on a VM, and Paho has no setting for
 * either (docs/BENCHMARKS.md).  Debian ships Paho as a shared library and
 * its source is not reachable from the build, so it cannot be patched;
 * instead this file interposes the three calls Paho makes there through
 * its PLT -- poll(), usleep() and pthread_cond_timedwait() -- and
 * lengthens only these waits:
 *
 *  - a 1000 ms poll by the thread Paho names "MQTTAsync_rcv" becomes
 *    idle_ms, with a wake-up eventfd added to the poll set, and the 100 ms
 *    nap that follows it is skipped;
 *  - a timed wait by the thread Paho names "MQTTAsync_send" gets idle_ms
 *    longer (Paho wakes it itself whenever a command is queued);
 *
 * and only while every session (struct bus) in the process is idle:
 * connected, with no publish or subscribe waiting for its acknowledgement.
 * Leaving idle wakes the receive thread, so a new socket, a partial write
 * or a timeout is looked at with Paho's own timing again.  Every other
 * call, every other thread, and every program that never calls
 * paho_idle_enable() goes straight through to the C library.
 *
 * What a longer wait delays is Paho's keepalive check, so idle_ms must be
 * well under the keepalive (the bus uses a quarter of it): the PINGREQ
 * still leaves within 1.25 x keepalive, before the broker's 1.5 x.
 *
 * State is process-wide because Paho's threads are: the number of busy
 * sessions (atomic), idle_ms and the eventfd, all owned by this file.
 * paho_idle_enable() is called once, before the first session starts.
 */
#ifndef MUSTER_PAHO_IDLE_H
#define MUSTER_PAHO_IDLE_H

#include <stdbool.h>

/* Turn the longer waits on (idle_ms > 1000) for the whole process.
 * Returns false (and leaves Paho's timing alone) if the eventfd cannot be
 * made. */
bool paho_idle_enable(unsigned idle_ms);

/* A session became busy (hold) or idle again (release); the bus calls
 * these on its transitions only, so they pair up. */
void paho_idle_hold(void);
void paho_idle_release(void);

#endif
