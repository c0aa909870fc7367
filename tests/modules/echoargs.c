/* SPDX-License-Identifier: Apache-2.0 */
/*
 * echoargs: echoes its arguments into output and data, to test the typed
 * arguments and the value accessors.
 *
 *	out:  "<key> (<type>) = <value>" for each argument
 *	data: args/<key>... the value, lists of scalars as "[]" appends,
 *	      other lists as maps by index; typed/... what the typed getters say
 *
 * Floats need value_float() and arg_float(), which came after the first
 * release: without them (an older runner) a float shows as "float" and
 * typed/has_float is false.
 *
 * Arguments "verdict" (pass, fail, error) and "reason" choose the outcome.
 */
#include <stdio.h>
#include <string.h>

#include <muster/module.h>

#define PATH_MAX_LEN	512

static const char *const type_names[] = {
	[MUSTER_T_NONE] = "none", [MUSTER_T_NIL] = "nil", [MUSTER_T_BOOL] = "bool",
	[MUSTER_T_INT] = "int", [MUSTER_T_FLOAT] = "float", [MUSTER_T_STR] = "str",
	[MUSTER_T_BIN] = "bin", [MUSTER_T_LIST] = "list", [MUSTER_T_MAP] = "map",
};

static int
scalar(enum muster_type t)
{
	return t != MUSTER_T_LIST && t != MUSTER_T_MAP;
}

static void echo(struct muster_ctx *, const struct muster_api *, const char *,
    const struct muster_value *);

static void
echo_list(struct muster_ctx *ctx, const struct muster_api *api, const char *path,
    const struct muster_value *v)
{
	const struct muster_value *item;
	char sub[PATH_MAX_LEN];
	size_t i, n = api->value_len(v);
	int flat = 1;

	/* A list of scalars stays a list; one with containers becomes a map
	 * by index, since a data path cannot append a container. */
	for (i = 0; i < n; i++)
		flat = flat && scalar(api->value_type(api->value_at(v, i)));
	for (i = 0; i < n; i++) {
		item = api->value_at(v, i);
		if (flat)
			snprintf(sub, sizeof(sub), "%s[]", path);
		else
			snprintf(sub, sizeof(sub), "%s/%zu", path, i);
		echo(ctx, api, sub, item);
	}
}

static void
echo_map(struct muster_ctx *ctx, const struct muster_api *api, const char *path,
    const struct muster_value *v)
{
	char sub[PATH_MAX_LEN];
	size_t i;

	for (i = 0; i < api->value_len(v); i++) {
		snprintf(sub, sizeof(sub), "%s/%s", path, api->value_key_at(v, i));
		echo(ctx, api, sub, api->value_at(v, i));
	}
}

static void
echo(struct muster_ctx *ctx, const struct muster_api *api, const char *path,
    const struct muster_value *v)
{
	switch (api->value_type(v)) {
	case MUSTER_T_STR:
		api->data_str(ctx, path, api->value_str(v, NULL));
		break;
	case MUSTER_T_INT:
		api->data_int(ctx, path, api->value_int(v, 0));
		break;
	case MUSTER_T_BOOL:
		api->data_bool(ctx, path, api->value_bool(v, 0));
		break;
	case MUSTER_T_NIL:
		api->data_str(ctx, path, NULL);
		break;
	case MUSTER_T_LIST:
		echo_list(ctx, api, path, v);
		break;
	case MUSTER_T_MAP:
		echo_map(ctx, api, path, v);
		break;
	case MUSTER_T_FLOAT:
		if (MUSTER_API_HAS(api, value_float))
			api->data_float(ctx, path, api->value_float(v, 0));
		else
			api->data_str(ctx, path, "float");
		break;
	default:
		/* No accessor for bin: say what it was. */
		api->data_str(ctx, path, type_names[api->value_type(v)]);
		break;
	}
}

static void
typed(struct muster_ctx *ctx, const struct muster_api *api)
{
	api->data_str(ctx, "typed/s", api->arg_str(ctx, "s", "default"));
	api->data_int(ctx, "typed/i", api->arg_int(ctx, "i", -1));
	api->data_bool(ctx, "typed/b", api->arg_bool(ctx, "b", 0));
	api->data_str(ctx, "typed/missing", api->arg_str(ctx, "no-such-arg", "default"));
	api->data_int(ctx, "typed/int_of_str", api->arg_int(ctx, "s", 42));
	api->data_str(ctx, "typed/str_of_int", api->arg_str(ctx, "i", "default"));
	api->data_bool(ctx, "typed/bool_of_int", api->arg_bool(ctx, "i", 1));
	api->data_int(ctx, "typed/len_of_scalar", (int64_t)api->value_len(api->arg(ctx, "i")));
	api->data_str(ctx, "typed/absent_chain", api->value_str(api->value_get(
	    api->arg(ctx, "no-such-arg"), "x"), "chained-default"));
	api->data_int(ctx, "typed/out_of_range", api->value_at(api->arg(ctx, "list"),
	    1000) == NULL);
	api->data_bool(ctx, "typed/has_float", MUSTER_API_HAS(api, arg_float) &&
	    MUSTER_API_HAS(api, value_float));
	if (!MUSTER_API_HAS(api, arg_float) || !MUSTER_API_HAS(api, value_float))
		return;
	api->data_float(ctx, "typed/f", api->arg_float(ctx, "f", -1));
	api->data_float(ctx, "typed/float_of_int", api->arg_float(ctx, "i", -1));
	api->data_float(ctx, "typed/float_of_str", api->arg_float(ctx, "s", -1));
	api->data_float(ctx, "typed/float_missing", api->arg_float(ctx, "no-such-arg",
	    2.5));
	api->data_float(ctx, "typed/float_of_null", api->value_float(NULL, 0.5));
}

static int
echoargs_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	const struct muster_value *all = api->arg(ctx, NULL), *v;
	const char *key, *verdict = api->arg_str(ctx, "verdict", "pass");
	char path[PATH_MAX_LEN];
	size_t i, n = api->value_len(all);

	for (i = 0; i < n; i++) {
		key = api->value_key_at(all, i);
		v = api->value_at(all, i);
		api->out(ctx, "%s (%s) = %s", key, type_names[api->value_type(v)],
		    api->value_type(v) == MUSTER_T_STR ? api->value_str(v, "") : "...");
		snprintf(path, sizeof(path), "args/%s", key);
		echo(ctx, api, path, v);
	}
	typed(ctx, api);
	api->progress(ctx, 50);
	api->progress(ctx, 100);
	api->summary(ctx, "echoed %zu args", n);
	if (api->arg(ctx, "reason") != NULL)
		api->reason(ctx, "%s", api->arg_str(ctx, "reason", ""));
	if (strcmp(verdict, "fail") == 0)
		return MUSTER_FAIL;
	if (strcmp(verdict, "error") == 0)
		return MUSTER_ERROR;
	return MUSTER_PASS;
}
MUSTER_MODULE("echoargs", "1.2.3", "Echoes its arguments", echoargs_run);
