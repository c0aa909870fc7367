/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy.h - the host's authorization policy (design.md §8): which operator
 * key may do what.  One rule a line, first match wins, '#' comments:
 *
 *   allow|deny OPERATOR KINDS TARGETS [run_as=USER] [timeout<=DUR] [net=no|yes]
 *
 * OPERATOR is a key's name (its .pub file name without .pub) or '*'; KINDS
 * a comma list of ping, version, cancel, update, run:<module glob>, or '*'
 * for every kind (this one and any added later, as '*' means for OPERATOR
 * and TARGETS); TARGETS a comma list of fnmatch(3) globs over host/<h>,
 * group/<g>, all.  With a file, no match means deny; without one
 * (policy.present false), every trusted key may do everything.
 *
 * Fail closed (policy_reload()): a file that does not load never widens
 * what is allowed.  At reload the valid policy in force stays; where none
 * was in force (no file before), every job is refused until the file
 * loads.  A file that disappears at reload leaves what is in force: only
 * a restart without the file gives "no policy".
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
	bool any;				/* '*': every kind */
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
	bool net_no;				/* net=no: no IPv4/IPv6 sockets,
						 * whatever the module declares */
	bool net_set;				/* net= given (once only) */
	int line;
};

struct policy {
	bool present;			/* false: no file, allow everything */
	bool refuse_all;		/* a file that did not load, and no valid
					 * one before it: every job refused */
	char path[CONF_PATH_MAX];
	char error[sizeof(((struct mu_err *)0)->msg)];	/* refuse_all: why */
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
	/* "denied by FILE:LINE", "no rule matched in FILE", or the load
	 * error of a policy that refuses everything */
	char why[CONF_PATH_MAX + sizeof(((struct mu_err *)0)->msg) + 64];
};

/* What policy_reload() did with the file it was given. */
enum policy_reload {
	POLICY_LOADED,		/* it loaded: its rules are in force now */
	POLICY_NONE,		/* no file, and none was in force: still none */
	POLICY_KEPT,		/* it did not load: the rules in force stay */
	POLICY_REFUSING,	/* it did not load and no valid one was in
				 * force: every job is refused until it does */
	POLICY_GONE,		/* no file, but one was in force (or refusing):
				 * that stays until a restart */
};

/* Parse text (from a file called name) into *out; MU_EINVAL with
 * "name:line: ..." on the first error.  *out is untouched on error. */
int policy_parse(struct policy *out, const char *name, const char *text, size_t len,
    struct mu_err *err);
/* Load path.  A missing file is "no policy" when missing_ok, else an
 * error.  *out is untouched on error. */
int policy_load(struct policy *out, const char *path, bool missing_ok,
    struct mu_err *err);
/* Reload path into *cur (fail closed, above).  err (required) says why
 * when the result is POLICY_KEPT or POLICY_REFUSING; *cur stays a valid
 * policy to check against in every case. */
enum policy_reload policy_reload(struct policy *cur, const char *path, bool missing_ok,
    struct mu_err *err);
void policy_free(struct policy *p);
void policy_check(const struct policy *p, const struct policy_request *q,
    struct policy_verdict *out);

#endif
