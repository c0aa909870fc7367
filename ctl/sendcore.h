/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sendcore.h - one job's life, shared by the muster CLI (send.c: run,
 * ping, version, update, cancel) and libmuster-client (client/): build and
 * sign one job per target topic, work out who should answer, announce and
 * publish, collect the verified results (each job and host once).  One
 * code path (design.md §10): the CLI prints what this gathers, the library
 * hands it to its caller.
 *
 * Steps: send_init(), send_add_target() per target (and the fields below
 * that the caller sets), send_start() (key, connection, expected set,
 * subscriptions, publish), send_collect() until it says done (as often as
 * the caller likes: stop_at makes it return after each new answer),
 * send_finish(), then read answers/expected; send_free().
 *
 * Nothing here prints or exits: notes and errors go through ctl_say(),
 * results, events and forged messages through the hooks on struct ctl.
 *
 * Ownership: struct send owns everything it points to (send_free()),
 * except module, cancel and the filter's texts, which are borrowed and
 * must outlive it.
 */
#ifndef MUSTER_SENDCORE_H
#define MUSTER_SENDCORE_H

#include "ctl.h"

#define MAX_TARGETS	64
#define MAX_EXPECTED	4096
#define MAX_HELD	4096	/* results waiting for their host's certificate */
/* muster run's default wait: the job's timeout (--timeout, else the agent's
 * default [limits] timeout, which the CLI cannot see) plus this margin for
 * the kill grace (2 s) and the answer's way back, so that a hang comes back
 * as the agent's `timeout` result instead of the CLI giving up first. */
#define AGENT_TIMEOUT_MS	60000
#define WAIT_MARGIN_MS		10000

/* What the CLI knows of an expected host that has not answered (hstate). */
#define HS_ONLINE	0x1	/* its retained status says online */
#define HS_ACCEPTED	0x2	/* an accepted/started event (stream jobs) */

struct answer {
	struct result r;	/* borrows from raw */
	uint8_t *raw;		/* owned */
};

/* A result signed by a certificate no status has shown us yet. */
struct held {
	char *topic;		/* owned */
	uint8_t *raw;		/* owned */
	size_t len;
};

struct send {
	enum job_kind kind;
	struct job_target targets[MAX_TARGETS];
	int ntargets;
	char ids[MAX_TARGETS][JOBID_MAX_LEN + 1];
	const char *module;
	msgpack_sbuffer args;	/* packed args map, empty if none */
	bool have_args;
	uint64_t timeout_ms, ttl_ms, wait_ms;
	bool wait_given;	/* --wait: not derived from the timeout */
	bool stream;
	const char *cancel;
	long expect;		/* -1: from presence (or facts) */
	struct ctl_filter filter;	/* -F */
	size_t nmatch, nnomatch, nnofacts;	/* target hosts, by their facts */
	/* who should answer */
	char (*expected)[NAME_MAX_LEN + 1];
	uint8_t *hstate;	/* HS_*, parallel to expected */
	uint64_t *tmask;	/* which targets (bit t) expect it: its announces */
	size_t nexpected;
	size_t expect_count;
	/* what came back */
	struct answer *answers;
	size_t nanswers;
	struct held *held;
	size_t nheld;
	bool presence;		/* status of every host subscribed already */
	int subacks;
	uint64_t t0;
	bool tty;
	bool lost;		/* the broker connection went away */
	int unacked;		/* job publishes without a PUBACK yet */
	bool pub_failed;
	int ann_tokens[MAX_TARGETS];	/* announce publishes, for their PUBACKs */
	int nann;
	bool ann_warned;	/* said once that an announce did not go out */
	char pin[65];
	size_t stop_at;		/* >0: send_collect() returns once this many answers */
	bool stop_acked;	/* send_collect() returns once the broker has the jobs */
	char lost_reason[256];	/* why the broker went away (lost) */
};


/* 0, or EXIT_USAGE if the arrays cannot be had. */
int send_init(struct send *s, enum job_kind kind);
void send_free(struct send *s);
/* 0, or -1 with the reason said (ctl_say()). */
int send_add_target(struct ctl *c, struct send *s, enum job_target_kind kind,
    const char *name);
/* Once the targets and filters are in: filters alone target every host;
 * no target is refused, naming the caller's options ("-H, -g, -a or
 * -F"); the filter is made.  0, or -1 with the reason said. */
int send_targets_done(struct ctl *c, struct send *s, const char *options);
/* A run's default wait: its timeout (the agent's default if none) and
 * the margin for the kill grace and the answer's way back. */
uint64_t send_run_wait(const struct send *s);
/* Load the key, connect, work out who should answer, make the ids,
 * subscribe (when waiting) and publish: 0 or EXIT_USAGE (said). */
int send_start(struct ctl *c, struct send *s);
/* wait_ms 0: wait for the broker's PUBACKs only; 0 or EXIT_USAGE. */
int send_acked(struct ctl *c, struct send *s);
/* Pump until done (true: every expected host answered), the wait ends,
 * the broker goes (s->lost), or s->stop_at answers; tick as ctl_pump(). */
bool send_collect(struct ctl *c, struct send *s, ctl_tick_fn *tick);
/* After the wait: PUBACKs still due, held results checked a last time. */
void send_finish(struct ctl *c, struct send *s);

/* One bus event for job arg (a ctl_event_fn): what send_collect() pumps
 * with; c->route hands it another job's messages. */
bool send_event(struct ctl *c, struct bus_event *ev, void *arg);
bool send_has_job(const struct send *s, const char *job);
bool send_done(const struct send *s);	/* every expected host answered */
bool expected_has(const struct send *s, const char *host);
bool host_answered(const struct send *s, const char *host);
void count_status(const struct send *s, int counts[RS_INTERRUPTED + 1]);

#endif
