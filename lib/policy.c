/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy.c - parse and apply the authorization policy (policy.h).
 *
 * The line format is ours, so the tokenizer is ours: words split on blanks,
 * a word starting with '#' ends the line.  Globs are fnmatch(3)'s, over a
 * restricted alphabet so that a rule cannot hide characters a name never
 * has.
 *
 * Ownership: see policy.h.  Nothing here keeps state between calls.
 */
#include "policy.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORDS	8

struct pctx {
	const char *name;
	int line;
	struct mu_err *err;
};

static int __attribute__((format(printf, 2, 3)))
pfail(struct pctx *x, const char *fmt, ...)
{
	char msg[sizeof(x->err->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return mu_errf(x->err, MU_EINVAL, "%s:%d: %s", x->name, x->line, msg);
}

/* Characters of names plus the glob characters fnmatch knows. */
static bool
glob_valid(const char *s, bool slash)
{
	size_t i;

	if (s[0] == '\0' || strlen(s) > POLICY_GLOB_MAX)
		return false;
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		    strchr("._-*?[]!", s[i]) != NULL || (slash && s[i] == '/')))
			return false;
	return true;
}

/* Split "a,b,c" in place; empty items are errors. */
static int
split_list(struct pctx *x, char *s, const char *what, char **items, int *n)
{
	char *p = s, *comma;

	*n = 0;
	for (;;) {
		if (*n == POLICY_MAX_ITEMS)
			return pfail(x, "more than %d %s", POLICY_MAX_ITEMS, what);
		comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		if (*p == '\0')
			return pfail(x, "empty item in the %s list", what);
		items[(*n)++] = p;
		if (comma == NULL)
			return MU_OK;
		p = comma + 1;
	}
}

static int
parse_kinds(struct pctx *x, struct policy_rule *r, char *word)
{
	static const struct { const char *w; enum job_kind k; } plain[] = {
		{ "ping", JOB_PING }, { "version", JOB_VERSION },
		{ "cancel", JOB_CANCEL }, { "update", JOB_UPDATE },
	};
	char *items[POLICY_MAX_ITEMS];
	int i, rc;
	size_t k;

	if ((rc = split_list(x, word, "kinds", items, &r->nkinds)) != MU_OK)
		return rc;
	for (i = 0; i < r->nkinds; i++) {
		struct policy_kind *pk = &r->kinds[i];

		/* '*' is every kind, as it is every operator and every target
		 * (what a Salt or Choria user expects).  Alone only: next to
		 * another kind it would say nothing more, so it is a mistake. */
		if (strcmp(items[i], "*") == 0) {
			if (r->nkinds != 1)
				return pfail(x, "'*' in a kinds list: it means every kind, "
				    "so it stands alone");
			pk->any = true;
			continue;
		}
		if (strncmp(items[i], "run:", 4) == 0) {
			if (!glob_valid(items[i] + 4, false))
				return pfail(x, "bad module glob '%s'", items[i] + 4);
			pk->kind = JOB_RUN;
			snprintf(pk->module, sizeof(pk->module), "%s", items[i] + 4);
			continue;
		}
		for (k = 0; k < sizeof(plain) / sizeof(plain[0]); k++)
			if (strcmp(items[i], plain[k].w) == 0)
				break;
		if (k == sizeof(plain) / sizeof(plain[0]))
			return pfail(x, "unknown kind '%s' (want ping, version, cancel, update, "
			    "run:<module glob> or *)", items[i]);
		pk->kind = plain[k].k;
	}
	return MU_OK;
}

static int
parse_targets(struct pctx *x, struct policy_rule *r, char *word)
{
	char *items[POLICY_MAX_ITEMS];
	int i, rc;

	if ((rc = split_list(x, word, "targets", items, &r->ntargets)) != MU_OK)
		return rc;
	for (i = 0; i < r->ntargets; i++) {
		const char *t = items[i];

		/* Each glob must be able to match a target of one shape, or be
		 * a bare glob over all of them ("*"). */
		if (!glob_valid(t, true) || (strcmp(t, "all") != 0 &&
		    strncmp(t, "host/", 5) != 0 && strncmp(t, "group/", 6) != 0 &&
		    strchr(t, '/') != NULL))
			return pfail(x, "bad target glob '%s' (want globs over host/<h>, "
			    "group/<g>, all)", t);
		if (strchr(t, '/') == NULL && strcmp(t, "all") != 0 &&
		    strpbrk(t, "*?[") == NULL)
			return pfail(x, "bad target '%s' (want host/<h>, group/<g>, all "
			    "or a glob)", t);
		snprintf(r->targets[i], sizeof(r->targets[i]), "%s", t);
	}
	return MU_OK;
}

static int
parse_option(struct pctx *x, struct policy_rule *r, const char *w)
{
	if (strncmp(w, "run_as=", 7) == 0) {
		if (r->run_as[0])
			return pfail(x, "run_as given twice");
		if (!user_name_valid(w + 7))
			return pfail(x, "bad run_as user '%s'", w + 7);
		snprintf(r->run_as, sizeof(r->run_as), "%s", w + 7);
		return MU_OK;
	}
	if (strncmp(w, "timeout<=", 9) == 0) {
		if (r->timeout_cap_ms)
			return pfail(x, "timeout<= given twice");
		if (parse_duration_ms(w + 9, &r->timeout_cap_ms) != MU_OK ||
		    r->timeout_cap_ms == 0)
			return pfail(x, "bad duration '%s' in timeout<=", w + 9);
		return MU_OK;
	}
	if (strncmp(w, "net=", 4) == 0) {
		if (r->net_set)
			return pfail(x, "net= given twice");
		if (strcmp(w + 4, "no") != 0 && strcmp(w + 4, "yes") != 0)
			return pfail(x, "bad net= '%s' (want net=no or net=yes)", w + 4);
		r->net_set = true;
		r->net_no = strcmp(w + 4, "no") == 0;
		return MU_OK;
	}
	return pfail(x, "unknown option '%s' (want run_as=USER, timeout<=DUR or "
	    "net=no|yes)", w);
}

static int
parse_rule(struct pctx *x, char **w, int n, struct policy_rule *r)
{
	int i, rc;

	memset(r, 0, sizeof(*r));
	r->line = x->line;
	if (strcmp(w[0], "allow") == 0)
		r->allow = true;
	else if (strcmp(w[0], "deny") != 0)
		return pfail(x, "rule must start with allow or deny, not '%s'", w[0]);
	if (n < 4)
		return pfail(x, "want %s OPERATOR KINDS TARGETS [run_as=USER] "
		    "[timeout<=DUR] [net=no|yes]", w[0]);
	if (strcmp(w[1], "*") != 0 && !name_valid(w[1]))
		return pfail(x, "bad operator '%s' (a key name or *)", w[1]);
	snprintf(r->operator_, sizeof(r->operator_), "%s", w[1]);
	if ((rc = parse_kinds(x, r, w[2])) != MU_OK ||
	    (rc = parse_targets(x, r, w[3])) != MU_OK)
		return rc;
	for (i = 4; i < n; i++)
		if ((rc = parse_option(x, r, w[i])) != MU_OK)
			return rc;
	if (!r->allow && (r->run_as[0] || r->timeout_cap_ms || r->net_set))
		return pfail(x, "options make sense on allow rules only");
	return MU_OK;
}

/* Split one line (NUL-terminated, writable) into words. */
static int
tokenize(struct pctx *x, char *line, char **w, int *n)
{
	char *p = line;

	*n = 0;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (*p == '\0' || *p == '#')
			return MU_OK;
		if (*n == MAX_WORDS)
			return pfail(x, "too many words");
		w[(*n)++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
		if (*p)
			*p++ = '\0';
	}
}

static int
rules_add(struct policy *p, const struct policy_rule *r)
{
	struct policy_rule *n = reallocarray(p->rules, p->nrules + 1, sizeof(*n));

	if (n == NULL)
		return MU_ENOMEM;
	p->rules = n;
	p->rules[p->nrules++] = *r;
	return MU_OK;
}

int
policy_parse(struct policy *out, const char *name, const char *text, size_t len,
    struct mu_err *err)
{
	struct policy p = { .present = true };
	struct pctx x = { name, 0, err };
	char line[POLICY_MAX_LINE + 1], *w[MAX_WORDS];
	struct policy_rule r;
	size_t off = 0, n;
	const char *nl;
	int nw, rc = MU_OK;

	snprintf(p.path, sizeof(p.path), "%s", name);
	if (len > POLICY_MAX_FILE)
		return mu_errf(err, MU_EINVAL, "%s: over %d bytes", name, POLICY_MAX_FILE);
	while (rc == MU_OK && off < len) {
		x.line++;
		nl = memchr(text + off, '\n', len - off);
		n = nl ? (size_t)(nl - (text + off)) : len - off;
		if (n > POLICY_MAX_LINE)
			rc = pfail(&x, "line longer than %d bytes", POLICY_MAX_LINE);
		else if (memchr(text + off, '\0', n) != NULL)
			rc = pfail(&x, "NUL byte");
		if (rc)
			break;
		memcpy(line, text + off, n);
		line[n] = '\0';
		off += n + 1;
		if ((rc = tokenize(&x, line, w, &nw)) != MU_OK || nw == 0)
			continue;
		if ((rc = parse_rule(&x, w, nw, &r)) == MU_OK &&
		    (rc = rules_add(&p, &r)) != MU_OK)
			mu_errf(err, rc, "out of memory");
	}
	if (rc) {
		free(p.rules);
		return rc;
	}
	*out = p;
	return MU_OK;
}

int
policy_load(struct policy *out, const char *path, bool missing_ok, struct mu_err *err)
{
	char *buf;
	size_t len;
	FILE *f;
	int rc;

	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT && missing_ok) {
			memset(out, 0, sizeof(*out));
			snprintf(out->path, sizeof(out->path), "%s", path);
			return MU_OK;
		}
		return mu_errf(err, MU_EIO, "policy %s: %s", path, strerror(errno));
	}
	if ((buf = malloc(POLICY_MAX_FILE + 1)) == NULL) {
		fclose(f);
		return mu_errf(err, MU_ENOMEM, "out of memory");
	}
	len = fread(buf, 1, POLICY_MAX_FILE + 1, f);
	rc = ferror(f) ? mu_errf(err, MU_EIO, "policy %s: read error", path) :
	    policy_parse(out, path, buf, len, err);
	fclose(f);
	free(buf);
	return rc;
}

enum policy_reload
policy_reload(struct policy *cur, const char *path, bool missing_ok, struct mu_err *err)
{
	struct policy p;

	if (policy_load(&p, path, missing_ok, err) == MU_OK) {
		if (p.present || (!cur->present && !cur->refuse_all)) {
			policy_free(cur);
			*cur = p;
			return p.present ? POLICY_LOADED : POLICY_NONE;
		}
		/* Gone: going back to "everything allowed" on a reload would
		 * widen access because a file went missing (a half-done
		 * deployment, a mistaken rm).  Dropping a policy takes a
		 * restart, which the log then states. */
		return POLICY_GONE;
	}
	if (cur->present)
		return POLICY_KEPT;
	/* Nothing valid to keep: refuse, never fall back to allow-all. */
	policy_free(cur);
	memset(cur, 0, sizeof(*cur));
	cur->refuse_all = true;
	snprintf(cur->path, sizeof(cur->path), "%s", path);
	snprintf(cur->error, sizeof(cur->error), "%s", err->msg);
	return POLICY_REFUSING;
}

void
policy_free(struct policy *p)
{
	free(p->rules);
	p->rules = NULL;
	p->nrules = 0;
}

static bool
kind_matches(const struct policy_rule *r, const struct policy_request *q)
{
	int i;

	for (i = 0; i < r->nkinds; i++)
		if (r->kinds[i].any)
			return true;
		else if (r->kinds[i].kind == q->kind && (q->kind != JOB_RUN ||
		    fnmatch(r->kinds[i].module, q->module ? q->module : "", 0) == 0))
			return true;
	return false;
}

static bool
target_matches(const struct policy_rule *r, const char *target)
{
	int i;

	for (i = 0; i < r->ntargets; i++)
		if (fnmatch(r->targets[i], target, 0) == 0)
			return true;
	return false;
}

void
policy_check(const struct policy *p, const struct policy_request *q,
    struct policy_verdict *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	if (p->refuse_all) {
		snprintf(out->why, sizeof(out->why), "every job is refused until the policy "
		    "loads: %s", p->error);
		return;
	}
	if (!p->present) {
		out->allow = true;
		snprintf(out->why, sizeof(out->why), "no policy");
		return;
	}
	for (i = 0; i < p->nrules; i++) {
		const struct policy_rule *r = &p->rules[i];

		if ((strcmp(r->operator_, "*") != 0 && strcmp(r->operator_, q->operator_) != 0) ||
		    !kind_matches(r, q) || !target_matches(r, q->target))
			continue;
		out->allow = r->allow;
		out->rule = r;
		snprintf(out->why, sizeof(out->why), "%s by %s:%d",
		    r->allow ? "allowed" : "denied", p->path, r->line);
		return;
	}
	snprintf(out->why, sizeof(out->why), "no rule matched in %s", p->path);
}
