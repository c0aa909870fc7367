/* SPDX-License-Identifier: Apache-2.0 */
/*
 * names.h - name and id validation, and the MQTT topics of protocol v1.
 *
 * Host, group, channel and module names match [a-z0-9][a-z0-9._-]{0,62};
 * job ids match [A-Za-z0-9._-]{1,64}.  Topic builders write into a buffer
 * the caller owns and fail (MU_EINVAL) rather than truncate or accept a
 * name that would change the topic's shape ('/', '+', '#').
 */
#ifndef MUSTER_NAMES_H
#define MUSTER_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define NAME_MAX_LEN	63
#define JOBID_MAX_LEN	64
#define SHA256_HEX_LEN	64
#define TOPIC_ROOT_DEFAULT "muster"
#define TOPIC_MAX	256	/* enough for root + the longest topic below */
#define AUD_MAX_LEN	(NAME_MAX_LEN + 3)	/* "<topic_root>/v1" */
/*
 * Job ids an agent makes up for refusals of envelopes it could not verify
 * (design.md §3): "invalid-<16 hex>".  No real job may carry this prefix, so
 * such a refusal can never be mistaken for a real job's answer: job
 * encoders and decoders refuse it.
 */
#define JOBID_RESERVED_PREFIX	"invalid-"

bool name_valid(const char *s);
bool jobid_valid(const char *s);
bool jobid_reserved(const char *s);	/* starts with JOBID_RESERVED_PREFIX */
bool sha256hex_valid(const char *s);	/* 64 lowercase hex digits */
/* The topic_root setting: a name as above (no '/'). */
bool topic_root_valid(const char *s);
/* A job's "aud": the fleet it is for, "<topic_root>/v1" (design.md §3). */
bool aud_valid(const char *s);
int aud_format(char *buf, size_t len, const char *root);

enum job_target_kind { TARGET_HOST, TARGET_GROUP, TARGET_ALL };

/* A parsed job target: "host/<h>", "group/<g>" or "all". */
struct job_target {
	enum job_target_kind kind;
	char name[NAME_MAX_LEN + 1];	/* empty for TARGET_ALL */
};

int target_parse(const char *s, struct job_target *out, struct mu_err *err);
int target_format(const struct job_target *t, char *buf, size_t len);

/*
 * Topics.  'root' is the topic_root setting ("muster" by default); the
 * builders add "/v1".  Each returns MU_OK or MU_EINVAL (bad name, no room).
 */
enum topic_kind {
	TOPIC_HOST_JOBS,	/* R/hosts/<a>/jobs */
	TOPIC_GROUP_JOBS,	/* R/groups/<a>/jobs */
	TOPIC_ALL_JOBS,		/* R/all/jobs */
	TOPIC_HOST_STATUS,	/* R/hosts/<a>/status */
	TOPIC_RESULT,		/* R/results/<job a>/<host b> */
	TOPIC_RESULT_EVENTS,	/* R/results/<job a>/<host b>/events */
	TOPIC_MODULE,		/* R/modules/<a> */
	TOPIC_MODULE_ARTIFACT,	/* R/modules/<a>/<sha256 b> */
	TOPIC_RELEASE,		/* R/releases/<channel a> */
	TOPIC_ARTIFACT,		/* R/artifacts/<sha256 a> */
	TOPIC_SELFTEST_REQUEST,	/* R/hosts/<a>/selftest/request */
	TOPIC_SELFTEST_JOBS,	/* R/hosts/<a>/selftest/jobs */
	TOPIC_SELFTEST_VERDICT,	/* R/hosts/<a>/selftest/verdict */
	TOPIC_HOST_FACTS,	/* R/hosts/<a>/facts */
	TOPIC_JOB_ANNOUNCE,	/* R/jobs/<job a> */
};

int topic_build(char *buf, size_t len, const char *root, enum topic_kind kind,
    const char *a, const char *b);
/* The same, for subscriptions: a or b may also be "+" (any one level). */
int topic_filter(char *buf, size_t len, const char *root, enum topic_kind kind,
    const char *a, const char *b);

/* The job topic a target is published on. */
int topic_for_target(char *buf, size_t len, const char *root,
    const struct job_target *t);

/*
 * Parse a job topic back into the target it addresses; MU_EINVAL if the
 * topic is not one of the three job topics under root.
 */
int topic_parse_jobs(const char *topic, const char *root, struct job_target *out);

/*
 * Parse R/modules/<name> (sha256 set to "") or R/modules/<name>/<sha256>.
 * name: NAME_MAX_LEN + 1 bytes, sha256: SHA256_HEX_LEN + 1.  MU_EINVAL for
 * any other topic.
 */
int topic_parse_module(const char *topic, const char *root, char *name, char *sha256);

#endif
