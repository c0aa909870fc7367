/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api.c - struct muster_api, the helper vtable a module's run() gets.
 *
 * The helpers return nothing to complain with (module.h), so a misuse (a
 * bad data key, a NULL format) is logged to stderr, which the agent keeps
 * with the job's output, and otherwise ignored.  Every accessor takes NULL
 * for "absent", so that chains like
 *	api->value_str(api->value_get(api->arg(ctx, "p"), "name"), "x")
 * need no checks in between.
 *
 * Helpers added after the first release (value_float, arg_float, then
 * getargs.c's) sit at the end of struct muster_api, and `size` announces
 * them to a module.
 */
#include "runner.h"

#include <stdlib.h>

#include "log.h"

static const struct muster_value *
api_arg(struct muster_ctx *ctx, const char *key)
{
	if (key == NULL)
		return ctx->args.root;
	return value_get(ctx->args.root, key);
}

static enum muster_type
api_value_type(const struct muster_value *v)
{
	return v == NULL ? MUSTER_T_NONE : v->type;
}

static const char *
api_value_str(const struct muster_value *v, const char *def)
{
	return v != NULL && v->type == MUSTER_T_STR ? v->s : def;
}

static int64_t
api_value_int(const struct muster_value *v, int64_t def)
{
	return v != NULL && v->type == MUSTER_T_INT && v->int_ok ? v->i : def;
}

static int
api_value_bool(const struct muster_value *v, int def)
{
	return v != NULL && v->type == MUSTER_T_BOOL ? v->b : def;
}

/* Ints too, so that "max_load:=4" means 4.0; past 2^53 they round. */
static double
api_value_float(const struct muster_value *v, double def)
{
	if (v == NULL || (v->type != MUSTER_T_FLOAT && v->type != MUSTER_T_INT))
		return def;
	return v->f;
}

static size_t
api_value_len(const struct muster_value *v)
{
	if (v == NULL || (v->type != MUSTER_T_LIST && v->type != MUSTER_T_MAP))
		return 0;
	return v->len;
}

/* On a map, the i-th value, to go with value_key_at(). */
static const struct muster_value *
api_value_at(const struct muster_value *v, size_t i)
{
	if (i >= api_value_len(v))
		return NULL;
	return &v->items[i];
}

static const struct muster_value *
api_value_get(const struct muster_value *v, const char *key)
{
	return value_get(v, key);
}

static const char *
api_value_key_at(const struct muster_value *v, size_t i)
{
	if (v == NULL || v->type != MUSTER_T_MAP || i >= v->len)
		return NULL;
	return v->keys[i];
}

static const char *
api_arg_str(struct muster_ctx *ctx, const char *key, const char *def)
{
	return key == NULL ? def : api_value_str(api_arg(ctx, key), def);
}

static int64_t
api_arg_int(struct muster_ctx *ctx, const char *key, int64_t def)
{
	return key == NULL ? def : api_value_int(api_arg(ctx, key), def);
}

static int
api_arg_bool(struct muster_ctx *ctx, const char *key, int def)
{
	return key == NULL ? def : api_value_bool(api_arg(ctx, key), def);
}

static double
api_arg_float(struct muster_ctx *ctx, const char *key, double def)
{
	return key == NULL ? def : api_value_float(api_arg(ctx, key), def);
}

static void __attribute__((format(printf, 2, 3)))
api_out(struct muster_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (events_vout(ctx, fmt, ap) == MU_EINVAL)
		log_warnx("module: out() with a bad format");
	va_end(ap);
}

static void
api_data(struct muster_ctx *ctx, const char *key, const struct dval *v)
{
	struct mu_err err = { "" };

	if (data_set(&ctx->data, key, v, &err) != MU_OK)
		log_warnx("module: data key '%.64s' ignored: %s",
		    key ? key : "(null)", err.msg);
	else
		events_state(ctx);
}

static void
api_data_str(struct muster_ctx *ctx, const char *key, const char *val)
{
	struct dval v = { .type = D_STR, .s = val };

	api_data(ctx, key, &v);
}

static void
api_data_int(struct muster_ctx *ctx, const char *key, int64_t val)
{
	struct dval v = { .type = D_INT, .i = val };

	api_data(ctx, key, &v);
}

static void
api_data_bool(struct muster_ctx *ctx, const char *key, int val)
{
	struct dval v = { .type = D_BOOL, .b = val != 0 };

	api_data(ctx, key, &v);
}

static void
api_data_float(struct muster_ctx *ctx, const char *key, double val)
{
	struct dval v = { .type = D_FLOAT, .f = val };

	api_data(ctx, key, &v);
}

static void __attribute__((format(printf, 2, 3)))
api_summary(struct muster_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (text_vset(&ctx->summary, fmt, ap) != MU_OK)
		log_warnx("module: summary() with a bad format");
	else
		events_state(ctx);
	va_end(ap);
}

static void
api_progress(struct muster_ctx *ctx, int pct)
{
	events_progress(ctx, pct);
}

static void __attribute__((format(printf, 2, 3)))
api_reason(struct muster_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (text_vset(&ctx->reason, fmt, ap) != MU_OK)
		log_warnx("module: reason() with a bad format");
	va_end(ap);
}

static int
api_read_file(struct muster_ctx *ctx, const char *path, size_t max, char **buf,
    size_t *len)
{
	(void)ctx;
	return cmd_read_file(path, max, buf, len);
}

static int
api_run_cmd(struct muster_ctx *ctx, const char *const argv[], int timeout_ms,
    size_t max_out, struct muster_cmd_result *res)
{
	(void)ctx;
	return cmd_run(argv, timeout_ms, max_out, res);
}

static void
api_free(void *p)
{
	free(p);
}

const struct muster_api runner_api = {
	.abi = MUSTER_ABI,
	.size = sizeof(struct muster_api),
	.arg_str = api_arg_str,
	.arg_int = api_arg_int,
	.arg_bool = api_arg_bool,
	.arg = api_arg,
	.value_type = api_value_type,
	.value_str = api_value_str,
	.value_int = api_value_int,
	.value_bool = api_value_bool,
	.value_len = api_value_len,
	.value_at = api_value_at,
	.value_get = api_value_get,
	.value_key_at = api_value_key_at,
	.out = api_out,
	.data_str = api_data_str,
	.data_int = api_data_int,
	.data_bool = api_data_bool,
	.data_float = api_data_float,
	.summary = api_summary,
	.progress = api_progress,
	.reason = api_reason,
	.read_file = api_read_file,
	.run_cmd = api_run_cmd,
	.free = api_free,
	.value_float = api_value_float,
	.arg_float = api_arg_float,
	.get_str = api_get_str,
	.get_int = api_get_int,
	.get_float = api_get_float,
	.get_bool = api_get_bool,
	.arg_errors = api_arg_errors,
	.fail = api_fail,
	.error = api_error,
	.next_line = api_next_line,
	.next_kv = api_next_kv,
};
