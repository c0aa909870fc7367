/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qc_install.c - the qc.install module: run a QC profile, a list of checks
 * given as data, each by the same code as the module of its kind.
 *
 *	profile = {"name": "base", "checks": [
 *	    {"kind": "os.release", "name": "debian", "id": "debian"},
 *	    {"kind": "disk.usage", "name": "root fs", "path": "/"}, ...]}
 *
 * ("checks" and "name" may also be given as top-level arguments.)  Each
 * check reports under data "checks/<name>/": status, summary, reason and
 * its own facts.  The verdict is the worst one: error beats fail beats
 * pass, since a check that could not run leaves the QC undecided.
 */
#include "chk.h"

#include <stdio.h>
#include <string.h>

#define QC_MAX_CHECKS	256
#define LABEL_MAX	64	/* bytes of a name kept */
#define LABEL_SIZE	(LABEL_MAX + 24)	/* and room for "#<n>" */

struct tally {
	int	n[3];			/* by verdict */
	char	failed[CHK_LINE];	/* labels, for the reason */
	char	errored[CHK_LINE];
	char	labels[QC_MAX_CHECKS][LABEL_SIZE];
};

static enum muster_type
type_of(const struct muster_api *api, const struct muster_value *v)
{
	return v != NULL ? api->value_type(v) : MUSTER_T_NONE;
}

static const char *
spec_str(const struct muster_api *api, const struct muster_value *spec,
    const char *key)
{
	const struct muster_value *v = api->value_get(spec, key);

	if (v == NULL || api->value_type(v) != MUSTER_T_STR)
		return NULL;
	return api->value_str(v, NULL);
}

/* The check's name made a data key, unique within the profile. */
static void
make_label(const struct muster_api *api, const struct muster_value *spec,
    size_t i, struct tally *t)
{
	const char *name = NULL, *kind = NULL;
	char *label = t->labels[i], part[LABEL_MAX];
	size_t j;

	if (type_of(api, spec) == MUSTER_T_MAP) {
		name = spec_str(api, spec, "name");
		kind = spec_str(api, spec, "kind");
	}
	if (name == NULL || *name == '\0')
		name = kind != NULL && *kind != '\0' ? kind : "check";
	chk_key_part(part, sizeof(part), name);
	snprintf(label, LABEL_SIZE, "%s", part);
	for (j = 0; j < i; j++)
		if (strcmp(t->labels[j], label) == 0) {
			snprintf(label, LABEL_SIZE, "%s#%zu", part, i + 1);
			break;
		}
}

static void
add_label(char *list, size_t size, const char *label)
{
	size_t n = strlen(list);

	if (n + 2 < size)
		snprintf(list + n, size - n, "%s%s", n > 0 ? ", " : "", label);
}

/* Run one check with its own chk; the verdict. */
static int
run_one(struct chk *c, const struct muster_value *spec)
{
	const char *kind;
	chk_fn fn;

	if (type_of(c->api, spec) != MUSTER_T_MAP)
		return chk_error(c, "a check must be a map");
	if ((kind = spec_str(c->api, spec, "kind")) == NULL)
		return chk_error(c, "a check needs a \"kind\"");
	if ((fn = chk_lookup(kind)) == NULL)
		return chk_error(c, "unknown kind \"%s\"", kind);
	return fn(c);
}

static void
report_one(struct chk *c, const struct muster_value *spec, const char *label,
    int verdict)
{
	const char *kind = type_of(c->api, spec) == MUSTER_T_MAP ?
	    spec_str(c->api, spec, "kind") : NULL;
	const char *upper[] = { "PASS", "FAIL", "ERROR" };

	if (verdict != MUSTER_PASS && c->reason[0] == '\0')
		chk_reason(c, "the check gave no reason");
	chk_data_str(c, "status", chk_verdict_name(verdict));
	if (kind != NULL)
		chk_data_str(c, "kind", kind);
	chk_data_str(c, "summary", c->summary);
	if (verdict != MUSTER_PASS)
		chk_data_str(c, "reason", c->reason);
	c->api->out(c->ctx, "%s %s: %s", upper[verdict], label,
	    verdict == MUSTER_PASS ? c->summary : c->reason);
}

static void
run_check(struct muster_ctx *ctx, const struct muster_api *api,
    const struct muster_value *spec, size_t i, struct tally *t)
{
	char prefix[LABEL_MAX + 32];
	struct chk c;
	int verdict;

	make_label(api, spec, i, t);
	snprintf(prefix, sizeof(prefix), "checks/%s/", t->labels[i]);
	memset(&c, 0, sizeof(c));
	c.ctx = ctx;
	c.api = api;
	c.args = spec;
	c.prefix = prefix;
	c.quiet = 1;
	/* Status first, as the longest value it can take: should the check's
	 * facts fill the result's data, the real one still fits over it. */
	chk_data_str(&c, "status", chk_verdict_name(MUSTER_ERROR));
	verdict = run_one(&c, spec);
	if (verdict != MUSTER_PASS && verdict != MUSTER_FAIL)
		verdict = MUSTER_ERROR;
	report_one(&c, spec, t->labels[i], verdict);
	t->n[verdict]++;
	if (verdict == MUSTER_FAIL)
		add_label(t->failed, sizeof(t->failed), t->labels[i]);
	else if (verdict == MUSTER_ERROR)
		add_label(t->errored, sizeof(t->errored), t->labels[i]);
}

/* The profile's list of checks and its name; NULL with a reason set. */
static const struct muster_value *
find_checks(struct chk *c, const char **name)
{
	const struct muster_value *profile = chk_arg(c, "profile");
	const struct muster_value *checks;

	*name = chk_str(c, "name", NULL);
	if (profile != NULL) {
		if (c->api->value_type(profile) != MUSTER_T_MAP) {
			chk_reason(c, "argument \"profile\" must be a map");
			return NULL;
		}
		if (*name == NULL)
			*name = spec_str(c->api, profile, "name");
		checks = c->api->value_get(profile, "checks");
	} else
		checks = chk_arg(c, "checks");
	if (type_of(c->api, checks) != MUSTER_T_LIST) {
		chk_reason(c, "no list of checks: give \"profile\" = "
		    "{\"name\", \"checks\": [...]} or \"checks\" = [...]");
		return NULL;
	}
	if (c->api->value_len(checks) == 0) {
		chk_reason(c, "the profile has no checks");
		return NULL;
	}
	if (c->api->value_len(checks) > QC_MAX_CHECKS) {
		chk_reason(c, "more than %d checks", QC_MAX_CHECKS);
		return NULL;
	}
	return checks;
}

static int
verdict_of(const struct tally *t)
{
	if (t->n[MUSTER_ERROR] > 0)
		return MUSTER_ERROR;
	if (t->n[MUSTER_FAIL] > 0)
		return MUSTER_FAIL;
	return MUSTER_PASS;
}

static int
qc_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	struct tally t;
	const struct muster_value *checks;
	const char *name;
	struct chk top;
	size_t i, n;
	int verdict;

	memset(&top, 0, sizeof(top));
	top.ctx = ctx;
	top.api = api;
	top.prefix = "";
	if ((checks = find_checks(&top, &name)) == NULL) {
		api->summary(ctx, "no QC profile");
		api->reason(ctx, "%s", top.reason);
		return MUSTER_ERROR;
	}
	if (name == NULL)
		name = "unnamed";
	memset(&t, 0, sizeof(t));
	api->data_str(ctx, "profile", name);
	n = api->value_len(checks);
	for (i = 0; i < n; i++) {
		run_check(ctx, api, api->value_at(checks, i), i, &t);
		api->progress(ctx, (int)((i + 1) * 100 / n));
	}
	api->data_int(ctx, "counts/pass", t.n[MUSTER_PASS]);
	api->data_int(ctx, "counts/fail", t.n[MUSTER_FAIL]);
	api->data_int(ctx, "counts/error", t.n[MUSTER_ERROR]);
	verdict = verdict_of(&t);
	api->data_str(ctx, "status", chk_verdict_name(verdict));
	api->summary(ctx, "QC %s: %zu checks, %d pass, %d fail, %d error", name,
	    n, t.n[MUSTER_PASS], t.n[MUSTER_FAIL], t.n[MUSTER_ERROR]);
	if (verdict != MUSTER_PASS)
		api->reason(ctx, "%s%s%s%s%s", t.failed[0] ? "failed: " : "",
		    t.failed, t.failed[0] && t.errored[0] ? "; " : "",
		    t.errored[0] ? "could not check: " : "", t.errored);
	return verdict;
}

MUSTER_MODULE("qc.install", "1.0.0",
    "Run a QC profile: a list of checks, one verdict", qc_run);
