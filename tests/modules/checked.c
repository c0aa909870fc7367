/* SPDX-License-Identifier: Apache-2.0 */
/*
 * checked: exercises the checked getters, fail()/error() and the line
 * readers (module.h, issue 23) for tests/runner/test_sdk_helpers.py.
 * Test-only, owned by the runner tests.
 *
 *	get=[[TYPE, KEY, FLAGS], ...]	get_TYPE(KEY) with FLAGS ("r" required,
 *					"s" strict)  -> data got/KEY/{rc,val}
 *	text=TEXT sep=C			next_kv(TEXT, C) -> data kv[] = "K|V"
 *	lines=TEXT			next_line(TEXT)  -> data lines[]
 *	summary=TEXT			summary() first
 *	leave=fail|error msg=TEXT	return api->fail/error(ctx, "%s", TEXT)
 *	print=TEXT, eprint=TEXT		printf() to stdout (flushed), to stderr
 * Otherwise: error when arg_errors() > 0 (data errors), else pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <muster/module.h>

static unsigned
flags_of(const char *s)
{
	unsigned f = 0;

	if (strchr(s, 'r') != NULL)
		f |= MUSTER_ARG_REQUIRED;
	if (strchr(s, 's') != NULL)
		f |= MUSTER_ARG_STRICT;
	return f;
}

static void
get_one(struct muster_ctx *ctx, const struct muster_api *api,
    const struct muster_value *spec)
{
	const char *type = api->value_str(api->value_at(spec, 0), "");
	const char *key = api->value_str(api->value_at(spec, 1), NULL);
	unsigned flags = flags_of(api->value_str(api->value_at(spec, 2), ""));
	char rk[256], vk[256];
	const char *s;
	int64_t i;
	double d;
	int b, rc;

	if (key == NULL)
		return;
	snprintf(rk, sizeof(rk), "got/%s/rc", key);
	snprintf(vk, sizeof(vk), "got/%s/val", key);
	if (strcmp(type, "str") == 0) {
		rc = api->get_str(ctx, key, flags, "DEF", &s);
		api->data_str(ctx, vk, s);
	} else if (strcmp(type, "int") == 0) {
		rc = api->get_int(ctx, key, flags, -7, &i);
		api->data_int(ctx, vk, i);
	} else if (strcmp(type, "float") == 0) {
		rc = api->get_float(ctx, key, flags, -7.5, &d);
		api->data_float(ctx, vk, d);
	} else {
		rc = api->get_bool(ctx, key, flags, 7, &b);
		api->data_int(ctx, vk, b);
	}
	api->data_int(ctx, rk, rc);
}

static int
checked_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	const struct muster_value *gets = api->arg(ctx, "get");
	const char *text = api->arg_str(ctx, "text", NULL);
	const char *lines = api->arg_str(ctx, "lines", NULL);
	const char *leave = api->arg_str(ctx, "leave", NULL);
	const char *sum = api->arg_str(ctx, "summary", NULL);
	char *buf, *cur, *k, *v, *line, pair[512];
	size_t i;

	if (!MUSTER_API_HAS(api, next_kv))
		return MUSTER_ERROR;
	if (sum != NULL)
		api->summary(ctx, "%s", sum);
	if (api->arg_str(ctx, "print", NULL) != NULL) {
		printf("%s\n", api->arg_str(ctx, "print", ""));
		fflush(stdout);
	}
	if (api->arg_str(ctx, "eprint", NULL) != NULL)
		fprintf(stderr, "%s\n", api->arg_str(ctx, "eprint", ""));
	for (i = 0; i < api->value_len(gets); i++)
		get_one(ctx, api, api->value_at(gets, i));
	if (text != NULL && (buf = strdup(text)) != NULL) {
		cur = buf;
		while (api->next_kv(&cur, api->arg_str(ctx, "sep", "=")[0], &k, &v)) {
			snprintf(pair, sizeof(pair), "%s|%s", k, v);
			api->data_str(ctx, "kv[]", pair);
		}
		free(buf);
	}
	if (lines != NULL && (buf = strdup(lines)) != NULL) {
		cur = buf;
		while ((line = api->next_line(&cur)) != NULL)
			api->data_str(ctx, "lines[]", line);
		free(buf);
	}
	api->data_int(ctx, "errors", api->arg_errors(ctx));
	if (leave != NULL && strcmp(leave, "fail") == 0)
		return api->fail(ctx, "%s", api->arg_str(ctx, "msg", ""));
	if (leave != NULL && strcmp(leave, "error") == 0)
		return api->error(ctx, "%s", api->arg_str(ctx, "msg", ""));
	return api->arg_errors(ctx) > 0 ? MUSTER_ERROR : MUSTER_PASS;
}

MUSTER_MODULE("checked", "1.0.0", "Checked getters and line readers", checked_run);
