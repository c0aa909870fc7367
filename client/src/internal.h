/* SPDX-License-Identifier: Apache-2.0 */
/*
 * internal.h - libmuster-client's own state behind <muster/client.h>.
 *
 * A session is a struct ctl (ctl/ctl.h), the same state the muster CLI
 * keeps for one invocation, with the core's hooks set to record instead
 * of print; a job is a struct send (ctl/sendcore.h), the CLI's own job
 * machinery.  So the library and the CLI share one code path for
 * signing, announcing, publishing, collecting and verifying.
 *
 * Ownership: the session owns its jobs (a list, freed with it); a job owns
 * its results (copied out of the core's answers when delivered, so they do
 * not move when more arrive) and the copies of the caller's filter texts
 * and module name that the core borrows.
 */
#ifndef MUSTER_CLIENT_INTERNAL_H
#define MUSTER_CLIENT_INTERNAL_H

#include <muster/client.h>

#include "sendcore.h"

#define CLIENT_ERR_MAX	1024

struct muster_session {
	struct ctl c;
	char err[CLIENT_ERR_MAX];
	struct muster_job *jobs;	/* owned: the jobs not yet freed */
	bool lost;			/* the broker went away: no new jobs */
	struct send *collecting;	/* the job being pumped for, or NULL */
	char lost_reason[256];
};

struct muster_result {
	char *host, *job, *summary, *reason, *output, *data_json, *json, *module;
	char *agent_version;
	const char *status;		/* static: result_status_name() */
	size_t output_len;
	uint64_t started_at, finished_at;
};

struct muster_job {
	muster_session *s;
	struct muster_job *next;	/* the session's list */
	struct send snd;		/* the core's job */
	char module[NAME_MAX_LEN + 1];
	char *filters[FILTER_MAX];	/* owned copies: snd.filter borrows them */
	size_t nforged0;		/* the session's forged count at send */
	struct muster_result **results;	/* owned: delivered, in order */
	size_t nresults;
	bool finished;			/* the wait is over (send_finish() ran) */
	int final_rc;			/* MUSTER_DONE, _ETIMEOUT, _ELOST, _EREFUSED */
	const char **missing;		/* owned array (strings are snd's), sorted */
	size_t nmissing;
};

/* c->route: another open job's result or event goes to that job. */
bool client_route(struct ctl *c, struct bus_event *ev, const char *job);
/* Set the session's error text (printf format); returns rc. */
int client_fail(muster_session *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A copy of the core's answer i as a result; NULL without memory. */
struct muster_result *client_result_new(const struct result *r);
void client_result_free(struct muster_result *r);

#endif
