/* SPDX-License-Identifier: Apache-2.0 */
/*
 * getargs.c - the checked argument getters (get_str, get_int, get_float,
 * get_bool), api->fail()/error(), and the line and KEY=VALUE readers for
 * command output (issue 23).  Owned by the runner; api.c puts them in
 * struct muster_api after arg_float.
 *
 * Why checked getters: arg_int() and friends return the default for a
 * value of another type, so "max_offset_ms=0.5" (a string from the
 * command line) silently became the default.  These say what they found,
 * parse numeric strings (and say so), and on a bad value set the reason
 * and summary themselves, so that the module's error path is one line.
 */
#include "runner.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

/* A value described for a reason: 'the string "abc"', 'a list', ... */
static void
describe(const struct muster_value *v, char *buf, size_t size)
{
	switch (v->type) {
	case MUSTER_T_BOOL:
		snprintf(buf, size, "%s", v->b ? "true" : "false");
		break;
	case MUSTER_T_INT:
		if (v->int_ok)
			snprintf(buf, size, "the integer %" PRId64, v->i);
		else
			snprintf(buf, size, "an integer past 2^63");
		break;
	case MUSTER_T_FLOAT:
		snprintf(buf, size, "%g", v->f);
		break;
	case MUSTER_T_STR:
		snprintf(buf, size, "the string \"%.64s%s\"", v->s,
		    strlen(v->s) > 64 ? "..." : "");
		break;
	case MUSTER_T_BIN:
		snprintf(buf, size, "binary data");
		break;
	case MUSTER_T_LIST:
		snprintf(buf, size, "a list");
		break;
	case MUSTER_T_MAP:
		snprintf(buf, size, "a map");
		break;
	default:
		snprintf(buf, size, "nothing");
		break;
	}
}

/* One bad argument: the first one names itself in the reason (one fix
 * at a time is plenty), every one counts for arg_errors(). */
static int
arg_bad(struct muster_ctx *ctx, const char *key, const struct muster_value *v,
    const char *want)
{
	char what[128];

	if (ctx->arg_errors++ == 0) {
		if (v == NULL)
			text_set(&ctx->reason, "argument \"%s\" is required",
			    key ? key : "(null)");
		else {
			describe(v, what, sizeof(what));
			text_set(&ctx->reason, "argument \"%s\" must be %s, not %s",
			    key, want, what);
		}
	}
	if (!ctx->summary.set)
		text_set(&ctx->summary, "bad arguments");
	return MUSTER_ARG_BAD;
}

/* The value, or NULL for absent and nil (both mean "not given"). */
static const struct muster_value *
arg_find(struct muster_ctx *ctx, const char *key)
{
	const struct muster_value *v;

	if (key == NULL)
		return NULL;
	v = value_get(ctx->args.root, key);
	if (v == NULL || v->type == MUSTER_T_NIL || v->type == MUSTER_T_NONE)
		return NULL;
	return v;
}

/* Strict decimal: an optional '-', digits, nothing else; fits int64_t. */
static int
parse_int(const char *s, int64_t *out)
{
	const char *p = s[0] == '-' ? s + 1 : s;
	long long n;
	char *end;

	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = n;
	return 0;
}

/* A decimal number as people write it ("0.5", "-3", "1e3", ".5"): no
 * blanks, no hex, no inf or nan, finite. */
static int
parse_float(const char *s, double *out)
{
	char *end;
	double d;

	if (*s == '\0' || strspn(s, "0123456789+-.eE") != strlen(s) ||
	    strpbrk(s, "0123456789") == NULL)
		return -1;
	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(d))
		return -1;
	*out = d;
	return 0;
}

static int
parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return *out = 1, 0;
		if (strcasecmp(s, no[i]) == 0)
			return *out = 0, 0;
	}
	return -1;
}

int
api_get_str(struct muster_ctx *ctx, const char *key, unsigned flags,
    const char *def, const char **out)
{
	const struct muster_value *v = arg_find(ctx, key);
	const char *s = def;
	char num[24], *copy;
	int rc = MUSTER_ARG_ABSENT;

	if (v == NULL) {
		if (flags & MUSTER_ARG_REQUIRED)
			rc = arg_bad(ctx, key, NULL, "");
	} else if (v->type == MUSTER_T_STR) {
		if (v->s[0] == '\0' && (flags & MUSTER_ARG_REQUIRED))
			rc = arg_bad(ctx, key, NULL, "");
		else
			s = v->s, rc = MUSTER_ARG_OK;
	} else if (v->type == MUSTER_T_INT && v->int_ok &&
	    !(flags & MUSTER_ARG_STRICT)) {
		/* In the args arena: it lives as long as the other strings. */
		snprintf(num, sizeof(num), "%" PRId64, v->i);
		if ((copy = arena_alloc(&ctx->args.arena, strlen(num) + 1)) == NULL) {
			text_set(&ctx->reason, "out of memory");
			rc = arg_bad(ctx, key, v, "a string");
		} else {
			memcpy(copy, num, strlen(num) + 1);
			s = copy, rc = MUSTER_ARG_CONVERTED;
		}
	} else
		rc = arg_bad(ctx, key, v, "a string");
	if (out != NULL)
		*out = s;
	return rc;
}

int
api_get_int(struct muster_ctx *ctx, const char *key, unsigned flags,
    int64_t def, int64_t *out)
{
	const struct muster_value *v = arg_find(ctx, key);
	bool loose = !(flags & MUSTER_ARG_STRICT);
	int64_t n = def;
	int rc;

	if (v == NULL)
		rc = flags & MUSTER_ARG_REQUIRED ? arg_bad(ctx, key, NULL, "") :
		    MUSTER_ARG_ABSENT;
	else if (v->type == MUSTER_T_INT && v->int_ok)
		n = v->i, rc = MUSTER_ARG_OK;
	else if (loose && v->type == MUSTER_T_STR && parse_int(v->s, &n) == 0)
		rc = MUSTER_ARG_CONVERTED;
	/* 2^63 itself is a double that does not fit: < , not <=. */
	else if (loose && v->type == MUSTER_T_FLOAT && v->f == floor(v->f) &&
	    v->f >= -9223372036854775808.0 && v->f < 9223372036854775808.0)
		n = (int64_t)v->f, rc = MUSTER_ARG_CONVERTED;
	else
		n = def, rc = arg_bad(ctx, key, v, "an integer");
	if (out != NULL)
		*out = rc == MUSTER_ARG_BAD ? def : n;
	return rc;
}

/* An integer is a number as good as a float (JSON and the command line
 * make no difference): MUSTER_ARG_OK, even when strict. */
int
api_get_float(struct muster_ctx *ctx, const char *key, unsigned flags,
    double def, double *out)
{
	const struct muster_value *v = arg_find(ctx, key);
	double d = def;
	int rc;

	if (v == NULL)
		rc = flags & MUSTER_ARG_REQUIRED ? arg_bad(ctx, key, NULL, "") :
		    MUSTER_ARG_ABSENT;
	else if (v->type == MUSTER_T_FLOAT || v->type == MUSTER_T_INT)
		d = v->f, rc = MUSTER_ARG_OK;
	else if (!(flags & MUSTER_ARG_STRICT) && v->type == MUSTER_T_STR &&
	    parse_float(v->s, &d) == 0)
		rc = MUSTER_ARG_CONVERTED;
	else
		rc = arg_bad(ctx, key, v, "a number");
	if (out != NULL)
		*out = rc == MUSTER_ARG_BAD ? def : d;
	return rc;
}

int
api_get_bool(struct muster_ctx *ctx, const char *key, unsigned flags,
    int def, int *out)
{
	const struct muster_value *v = arg_find(ctx, key);
	bool loose = !(flags & MUSTER_ARG_STRICT);
	int b = def, rc;

	if (v == NULL)
		rc = flags & MUSTER_ARG_REQUIRED ? arg_bad(ctx, key, NULL, "") :
		    MUSTER_ARG_ABSENT;
	else if (v->type == MUSTER_T_BOOL)
		b = v->b, rc = MUSTER_ARG_OK;
	else if (loose && v->type == MUSTER_T_STR && parse_bool(v->s, &b) == 0)
		rc = MUSTER_ARG_CONVERTED;
	else if (loose && v->type == MUSTER_T_INT && v->int_ok &&
	    (v->i == 0 || v->i == 1))
		b = (int)v->i, rc = MUSTER_ARG_CONVERTED;
	else
		rc = arg_bad(ctx, key, v, "true or false");
	if (out != NULL)
		*out = rc == MUSTER_ARG_BAD ? def : b;
	return rc;
}

int
api_arg_errors(struct muster_ctx *ctx)
{
	return ctx->arg_errors;
}

/* fail() and error(): the reason, and the summary unless one is set. */
static int
leave(struct muster_ctx *ctx, int verdict, const char *fmt, va_list ap)
{
	if (text_vset(&ctx->reason, fmt, ap) != MU_OK) {
		log_warnx("module: fail() or error() with a bad format");
		return verdict;
	}
	if (!ctx->summary.set) {
		memcpy(ctx->summary.s, ctx->reason.s, sizeof(ctx->summary.s));
		ctx->summary.set = true;
	}
	return verdict;
}

int
api_fail(struct muster_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	int v;

	va_start(ap, fmt);
	v = leave(ctx, MUSTER_FAIL, fmt, ap);
	va_end(ap);
	return v;
}

int
api_error(struct muster_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	int v;

	va_start(ap, fmt);
	v = leave(ctx, MUSTER_ERROR, fmt, ap);
	va_end(ap);
	return v;
}

char *
api_next_line(char **cursor)
{
	char *s, *nl;
	size_t n;

	if (cursor == NULL || (s = *cursor) == NULL || *s == '\0')
		return NULL;
	if ((nl = strchr(s, '\n')) != NULL) {
		*nl = '\0';
		*cursor = nl + 1;
	} else
		*cursor = s + strlen(s);
	n = strlen(s);
	if (n > 0 && s[n - 1] == '\r')
		s[n - 1] = '\0';
	return s;
}

static char *
trim(char *s)
{
	size_t n;

	s += strspn(s, " \t");
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

int
api_next_kv(char **cursor, char sep, char **key, char **val)
{
	char *line, *at, *k;

	if (sep == '\0' || sep == '\n')
		return 0;
	while ((line = api_next_line(cursor)) != NULL) {
		if ((at = strchr(line, sep)) == NULL)
			continue;
		*at = '\0';
		if (*(k = trim(line)) == '\0')
			continue;
		if (key != NULL)
			*key = k;
		if (val != NULL)
			*val = trim(at + 1);
		return 1;
	}
	return 0;
}
