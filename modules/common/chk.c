/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chk.c - argument access and reporting for the shipped checks.  All text
 * the checks produce goes through fixed buffers here and reaches the
 * runner as "%s", so no argument or file content is ever a format.
 */
#include "chk.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- arguments -------------------------------------------------------- */

const struct muster_value *
chk_arg(struct chk *c, const char *key)
{
	const struct muster_value *v;
	enum muster_type t;

	if (c->args != NULL)
		v = c->api->value_get(c->args, key);
	else
		v = c->api->arg(c->ctx, key);
	if (v == NULL)
		return NULL;
	t = c->api->value_type(v);
	if (t == MUSTER_T_NONE || t == MUSTER_T_NIL)
		return NULL;
	return v;
}

/* Only the first bad argument is told: one fix at a time is plenty. */
static void
bad_arg(struct chk *c, const char *key, const char *want)
{
	if (c->bad)
		return;
	c->bad = 1;
	chk_reason(c, "argument \"%s\" must be %s", key, want);
}

/* An integer argument as a string, kept in the chk. */
static const char *
int_str(struct chk *c, const struct muster_value *v)
{
	char *s;

	if (c->nnums == CHK_NUMS)
		return NULL;
	s = c->nums[c->nnums++];
	snprintf(s, sizeof(c->nums[0]), "%" PRId64, c->api->value_int(v, 0));
	return s;
}

const char *
chk_str(struct chk *c, const char *key, const char *def)
{
	const struct muster_value *v = chk_arg(c, key);
	const char *s = NULL;

	if (v == NULL)
		return def;
	if (c->api->value_type(v) == MUSTER_T_STR)
		s = c->api->value_str(v, NULL);
	else if (c->api->value_type(v) == MUSTER_T_INT)
		s = int_str(c, v);
	if (s == NULL) {
		bad_arg(c, key, "a string");
		return def;
	}
	return s;
}

const char *
chk_req(struct chk *c, const char *key)
{
	const char *s = chk_str(c, key, NULL);

	if ((s == NULL || *s == '\0') && !c->bad) {
		c->bad = 1;
		chk_reason(c, "argument \"%s\" is required", key);
	}
	return s;
}

int
chk_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long n;

	if (*s == '\0')
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = n;
	return 0;
}

int64_t
chk_int(struct chk *c, const char *key, int64_t def)
{
	const struct muster_value *v = chk_arg(c, key);
	int64_t n;

	if (v == NULL)
		return def;
	switch (c->api->value_type(v)) {
	case MUSTER_T_INT:
		return c->api->value_int(v, def);
	case MUSTER_T_STR:
		if (chk_parse_i64(c->api->value_str(v, ""), &n) == 0)
			return n;
		break;
	default:
		break;
	}
	bad_arg(c, key, "an integer");
	return def;
}

static int
parse_bool(const char *s)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

int
chk_bool(struct chk *c, const char *key, int def)
{
	const struct muster_value *v = chk_arg(c, key);
	int b;

	if (v == NULL)
		return def;
	switch (c->api->value_type(v)) {
	case MUSTER_T_BOOL:
		return c->api->value_bool(v, def);
	case MUSTER_T_INT:
		b = (int)c->api->value_int(v, -1);
		if (b == 0 || b == 1)
			return b;
		break;
	case MUSTER_T_STR:
		if ((b = parse_bool(c->api->value_str(v, ""))) >= 0)
			return b;
		break;
	default:
		break;
	}
	bad_arg(c, key, "true or false");
	return def;
}

int
chk_args_bad(const struct chk *c)
{
	return c->bad;
}

int
chk_args_error(struct chk *c)
{
	chk_summary(c, "bad arguments");
	return MUSTER_ERROR;
}

/* ---- reporting -------------------------------------------------------- */

void
chk_out(struct chk *c, const char *fmt, ...)
{
	char line[CHK_LINE];
	va_list ap;

	if (c->quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->api->out(c->ctx, "%s", line);
}

void
chk_summary(struct chk *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->summary, sizeof(c->summary), fmt, ap);
	va_end(ap);
}

void
chk_reason(struct chk *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
}

void
chk_reason_add(struct chk *c, const char *fmt, ...)
{
	size_t n = strlen(c->reason);
	va_list ap;

	if (n > 0 && n + 2 < sizeof(c->reason)) {
		memcpy(c->reason + n, "; ", 3);
		n += 2;
	}
	if (n + 1 >= sizeof(c->reason))
		return;
	va_start(ap, fmt);
	vsnprintf(c->reason + n, sizeof(c->reason) - n, fmt, ap);
	va_end(ap);
}

/* The usual way out of a check that could not do its work. */
int
chk_error(struct chk *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	if (c->summary[0] == '\0')
		snprintf(c->summary, sizeof(c->summary), "%s", c->reason);
	return MUSTER_ERROR;
}

int
chk_error_reason(struct chk *c)
{
	if (c->summary[0] == '\0')
		snprintf(c->summary, sizeof(c->summary), "%s", c->reason);
	return MUSTER_ERROR;
}

const char *
chk_verdict_name(int verdict)
{
	switch (verdict) {
	case MUSTER_PASS:
		return "pass";
	case MUSTER_FAIL:
		return "fail";
	default:
		return "error";
	}
}

/* ---- data ------------------------------------------------------------- */

const char *
chk_key(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return NULL;
	return buf;
}

static const char *
full_key(struct chk *c, char *buf, size_t size, const char *key)
{
	if (key == NULL)
		return NULL;
	return chk_key(buf, size, "%s%s", c->prefix, key);
}

void
chk_data_str(struct chk *c, const char *key, const char *val)
{
	char buf[CHK_KEY];

	if ((key = full_key(c, buf, sizeof(buf), key)) != NULL)
		c->api->data_str(c->ctx, key, val != NULL ? val : "");
}

void
chk_data_int(struct chk *c, const char *key, int64_t val)
{
	char buf[CHK_KEY];

	if ((key = full_key(c, buf, sizeof(buf), key)) != NULL)
		c->api->data_int(c->ctx, key, val);
}

void
chk_data_bool(struct chk *c, const char *key, int val)
{
	char buf[CHK_KEY];

	if ((key = full_key(c, buf, sizeof(buf), key)) != NULL)
		c->api->data_bool(c->ctx, key, val != 0);
}

void
chk_data_float(struct chk *c, const char *key, double val)
{
	char buf[CHK_KEY];

	if ((key = full_key(c, buf, sizeof(buf), key)) != NULL)
		c->api->data_float(c->ctx, key, val);
}

void
chk_key_part(char *dst, size_t size, const char *src)
{
	size_t i;

	for (i = 0; src[i] != '\0' && i + 1 < size; i++)
		dst[i] = (src[i] == '/' || src[i] == '[' || src[i] == ']') ?
		    '_' : src[i];
	if (size > 0)
		dst[i] = '\0';
}

void
chk_key_path(char *dst, size_t size, const char *path)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)path;
	size_t n = 0;

	if (size == 0)
		return;
	while (*p == '/')
		p++;
	if (*p == '\0') {
		snprintf(dst, size, "-");
		return;
	}
	for (; *p != '\0' && n + 5 < size; p++) {
		if (*p == '/') {
			while (p[1] == '/')
				p++;
			if (p[1] != '\0')
				dst[n++] = '-';
		} else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == ':' ||
		    (*p == '.' && n > 0)) {
			dst[n++] = (char)*p;
		} else {
			dst[n++] = '\\';
			dst[n++] = 'x';
			dst[n++] = hex[*p >> 4];
			dst[n++] = hex[*p & 0xf];
		}
	}
	dst[n] = '\0';
}

/* ---- helpers ---------------------------------------------------------- */

int
chk_read(struct chk *c, const char *path, size_t max, char **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	if (c->api->read_file(c->ctx, path, max, buf, len) == 0)
		return 0;
	if (errno == EFBIG)
		chk_reason(c, "%s: larger than %zu bytes", path, max);
	else
		chk_reason(c, "%s: %s", path, strerror(errno));
	if (*buf != NULL)
		c->api->free(*buf);
	*buf = NULL;
	return -1;
}

const char *
chk_join(char *buf, size_t size, const char *root, const char *rel)
{
	size_t n = strlen(root);

	while (n > 1 && root[n - 1] == '/')
		n--;
	while (*rel == '/')
		rel++;
	return chk_key(buf, size, "%.*s/%s", (int)(n == 1 && root[0] == '/' ?
	    0 : n), root, rel);
}

const char *
chk_which_tools(char *buf, size_t size, const char *name)
{
	const char *dir = getenv("MUSTER_TOOLS_DIR");

	if (dir == NULL || dir[0] != '/')
		return NULL;
	if (chk_key(buf, size, "%s/%s", dir, name) != NULL && access(buf, X_OK) == 0)
		return buf;
	return NULL;
}

int
chk_no_program_args(struct chk *c, const char *const names[])
{
	size_t i;

	for (i = 0; names[i] != NULL; i++)
		if (chk_str(c, names[i], NULL) != NULL) {
			chk_reason(c, "argument \"%s\" is not accepted: the program comes "
			    "from the host, never from the job", names[i]);
			return -1;
		}
	return 0;
}

const char *
chk_which(char *buf, size_t size, const char *name)
{
	static const char *const dirs[] = {
		"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
		"/sbin", "/bin",
	};
	size_t i;

	if (chk_which_tools(buf, size, name) != NULL)
		return buf;
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (chk_key(buf, size, "%s/%s", dirs[i], name) != NULL &&
		    access(buf, X_OK) == 0)
			return buf;
	return NULL;
}

int
chk_run(struct chk *c, const char *const argv[], int timeout_ms,
    size_t max_out, struct muster_cmd_result *res)
{
	memset(res, 0, sizeof(*res));
	if (c->api->run_cmd(c->ctx, argv, timeout_ms, max_out, res) == -1) {
		chk_reason(c, "cannot run %s: %s", argv[0], strerror(errno));
		return -1;
	}
	if (res->out == NULL) {
		/* Be kind to a runner that gives no buffer for no output. */
		res->out_len = 0;
	}
	if (res->timed_out) {
		chk_reason(c, "%s did not finish within %d ms", argv[0],
		    timeout_ms);
		c->api->free(res->out);
		res->out = NULL;
		return -1;
	}
	if (res->exited && res->status == 127) {
		chk_reason(c, "cannot run %s: not found", argv[0]);
		c->api->free(res->out);
		res->out = NULL;
		return -1;
	}
	return 0;
}

char *
chk_line(char **p)
{
	char *s = *p, *nl;

	if (s == NULL || *s == '\0')
		return NULL;
	if ((nl = strchr(s, '\n')) != NULL) {
		*nl = '\0';
		*p = nl + 1;
	} else
		*p = s + strlen(s);
	return s;
}

/* ---- the standalone module ------------------------------------------ */

int
chk_main(struct muster_ctx *ctx, const struct muster_api *api, chk_fn fn)
{
	struct chk c;
	int verdict;

	memset(&c, 0, sizeof(c));
	c.ctx = ctx;
	c.api = api;
	c.prefix = "";
	verdict = fn(&c);
	if (verdict != MUSTER_PASS && verdict != MUSTER_FAIL)
		verdict = MUSTER_ERROR;
	if (verdict != MUSTER_PASS && c.reason[0] == '\0')
		chk_reason(&c, "the check gave no reason");
	if (c.summary[0] != '\0')
		api->summary(ctx, "%s", c.summary);
	if (verdict != MUSTER_PASS)
		api->reason(ctx, "%s", c.reason);
	return verdict;
}
