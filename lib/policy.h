/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy.h - the host's authorization policy (DESIGN §8): which operator
 * key may do what.  One rule a line, first match wins, '#' comments:
 *
 *   allow|deny OPERATOR KINDS TARGETS [run_as=USER] [timeout<=DUR]
 *
 * OPERATOR is a key's name (its .pub file name without .pub) or '*'; KINDS
 * a comma list of ping, version, cancel, update, run:<module glob>; TARGETS
 * a comma list of fnmatch(3) globs over host/<h>, group/<g>, all.  With a
 * file, no match means deny; without one (policy.present false), every
 * trusted key may do everything.
 *
 * The parser is strict: an unknown word, a duplicate option, an empty list
 * item or a bad name is an error naming file and line.
 *
 * Ownership: a struct policy owns its rules; policy_free() releases them.
 * A struct policy_verdict borrows from the policy it was made from and is
 * valid until that policy is freed or replaced.
 */
#ifndef MUSTER_POLICY_H
#define MUSTER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "wire.h"

#define POLICY_MAX_FILE		(1024 * 1024)
#define POLICY_MAX_LINE		1024
#define POLICY_MAX_ITEMS	16		/* kinds or targets of one rule */
#define POLICY_GLOB_MAX		(NAME_MAX_LEN + 8)

struct policy_kind {
	enum job_kind kind;
	char module[POLICY_GLOB_MAX + 1];	/* run only: a glob */
};

struct policy_rule {
	bool allow;
	char operator_[NAME_MAX_LEN + 1];	/* a key name or "*" */
	struct policy_kind kinds[POLICY_MAX_ITEMS];
	int nkinds;
	char targets[POLICY_MAX_ITEMS][POLICY_GLOB_MAX + 1];
	int ntargets;
	char run_as[CONF_USER_MAX + 1];		/* "" = the host's default */
	uint64_t timeout_cap_ms;		/* 0 = no cap */
	int line;
};

struct policy {
	bool present;			/* false: no file, allow everything */
	char path[CONF_PATH_MAX];
	struct policy_rule *rules;	/* owned */
	size_t nrules;
};

struct policy_request {
	const char *operator_;		/* the key's name */
	enum job_kind kind;
	const char *module;		/* run jobs */
	const char *target;		/* "host/h1", "group/web", "all" */
};

struct policy_verdict {
	bool allow;
	const struct policy_rule *rule;	/* NULL: no policy, or no rule matched */
	char why[CONF_PATH_MAX + 64];	/* "denied by FILE:LINE", "no rule matched" */
};

/* Parse text (from a file called name) into *out; MU_EINVAL with
 * "name:line: ..." on the first error.  *out is untouched on error. */
int policy_parse(struct policy *out, const char *name, const char *text, size_t len,
    struct mu_err *err);
/* Load path.  A missing file is "no policy" when missing_ok, else an
 * error.  *out is untouched on error. */
int policy_load(struct policy *out, const char *path, bool missing_ok,
    struct mu_err *err);
void policy_free(struct policy *p);
void policy_check(const struct policy *p, const struct policy_request *q,
    struct policy_verdict *out);

#endif
