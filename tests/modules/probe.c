/* SPDX-License-Identifier: Apache-2.0 */
/*
 * probe: exercises one helper at a time, chosen by arguments, and reports
 * what the runner answered in data.
 *
 *	read=PATH [read_max=N]		read_file()  -> data read/...
 *	cmd=[argv...] [cmd_timeout_ms=N] [cmd_max=N]
 *					run_cmd()    -> data cmd/...
 *	lines=TEXT			out("%s", TEXT)
 *	line_len=N			one line of N 'y'
 *	bad_utf8=true			a line, summary and data with bad UTF-8
 *	progress=[N...]			progress() calls
 *	summary_len=N, reason_len=N	long summary / reason
 *	data_many=N			N keys many/kI
 *	data_paths=true			nested paths, lists, overwrites, refusals
 *	verdict=pass|fail|error
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <muster/module.h>

#define MAX_ARGV	16

static void
probe_read(struct muster_ctx *ctx, const struct muster_api *api)
{
	const char *path = api->arg_str(ctx, "read", NULL);
	int64_t max = api->arg_int(ctx, "read_max", 1024 * 1024);
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (path == NULL)
		return;
	errno = 0;
	rc = api->read_file(ctx, path, (size_t)max, &buf, &len);
	api->data_int(ctx, "read/rc", rc);
	api->data_int(ctx, "read/errno", rc == 0 ? 0 : errno);
	api->data_int(ctx, "read/len", (int64_t)len);
	api->data_bool(ctx, "read/buf", buf != NULL);
	if (buf != NULL) {
		api->data_bool(ctx, "read/nul", buf[len] == '\0');
		if (len < 4096)
			api->data_str(ctx, "read/text", buf);
	}
	api->free(buf);
}

static void
probe_cmd(struct muster_ctx *ctx, const struct muster_api *api)
{
	const struct muster_value *list = api->arg(ctx, "cmd");
	const char *argv[MAX_ARGV + 1];
	struct muster_cmd_result res;
	size_t i, n = api->value_len(list);
	int rc;

	if (list == NULL)
		return;
	if (n > MAX_ARGV)
		n = MAX_ARGV;
	for (i = 0; i < n; i++)
		argv[i] = api->value_str(api->value_at(list, i), "");
	argv[n] = NULL;
	errno = 0;
	rc = api->run_cmd(ctx, argv, (int)api->arg_int(ctx, "cmd_timeout_ms", 10000),
	    (size_t)api->arg_int(ctx, "cmd_max", 65536), &res);
	api->data_int(ctx, "cmd/rc", rc);
	api->data_int(ctx, "cmd/errno", rc == 0 ? 0 : errno);
	if (rc != 0)
		return;
	api->data_bool(ctx, "cmd/exited", res.exited);
	api->data_int(ctx, "cmd/status", res.status);
	api->data_bool(ctx, "cmd/timed_out", res.timed_out);
	api->data_int(ctx, "cmd/out_len", (int64_t)res.out_len);
	api->data_bool(ctx, "cmd/truncated", res.truncated);
	api->data_bool(ctx, "cmd/nul", res.out[res.out_len] == '\0');
	if (res.out_len < 8192)
		api->data_str(ctx, "cmd/out", res.out);
	api->free(res.out);
}

static void
probe_text(struct muster_ctx *ctx, const struct muster_api *api)
{
	int64_t n;
	char *s;

	if (api->arg(ctx, "lines") != NULL)
		api->out(ctx, "%s", api->arg_str(ctx, "lines", ""));
	if (api->arg_bool(ctx, "bad_utf8", 0)) {
		api->out(ctx, "bad \xff\xfe utf8 caf\xc3\xa9");
		api->summary(ctx, "summary \xc3 bad");
		api->data_str(ctx, "bad\xff", "value \xed\xa0\x80 surrogate");
	}
	if ((n = api->arg_int(ctx, "line_len", -1)) >= 0 && n < 64 * 1024 * 1024 &&
	    (s = malloc((size_t)n + 1)) != NULL) {
		memset(s, 'y', (size_t)n);
		s[n] = '\0';
		api->out(ctx, "%s", s);
		free(s);
	}
	if ((n = api->arg_int(ctx, "summary_len", -1)) >= 0 && n < 1024 * 1024 &&
	    (s = malloc((size_t)n + 1)) != NULL) {
		memset(s, 's', (size_t)n);
		s[n] = '\0';
		api->summary(ctx, "%s", s);
		free(s);
	}
	if ((n = api->arg_int(ctx, "reason_len", -1)) >= 0 && n < 1024 * 1024 &&
	    (s = malloc((size_t)n + 1)) != NULL) {
		memset(s, 'r', (size_t)n);
		s[n] = '\0';
		api->reason(ctx, "%s", s);
		free(s);
	}
}

static void
probe_progress(struct muster_ctx *ctx, const struct muster_api *api)
{
	const struct muster_value *list = api->arg(ctx, "progress");
	size_t i;

	for (i = 0; i < api->value_len(list); i++)
		api->progress(ctx, (int)api->value_int(api->value_at(list, i), 0));
}

static void
probe_data(struct muster_ctx *ctx, const struct muster_api *api)
{
	char key[64];
	int64_t i, n = api->arg_int(ctx, "data_many", 0);

	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "many/k%lld", (long long)i);
		api->data_int(ctx, key, i);
	}
	if (!api->arg_bool(ctx, "data_paths", 0))
		return;
	api->data_str(ctx, "a/b/c", "first");
	api->data_int(ctx, "a/b/d", 1);
	api->data_str(ctx, "a/b/c", "second");
	api->data_int(ctx, "list[]", 1);
	api->data_str(ctx, "list[]", "two");
	api->data_bool(ctx, "list[]", 1);
	api->data_bool(ctx, "deep/2/3/4/5/6/7", 1);
	api->data_int(ctx, "deep/2/3/4/5/6/l[]", 7);
	api->data_bool(ctx, "deep/2/3/4/5/6/7/8", 1);
	api->data_float(ctx, "f", 1.5);
	api->data_float(ctx, "nan", NAN);
	api->data_float(ctx, "inf", INFINITY);
	api->data_str(ctx, "nil", NULL);
	api->data_str(ctx, "bad//path", "x");
	api->data_str(ctx, "/lead", "x");
	api->data_str(ctx, "trail/", "x");
	api->data_str(ctx, "mid[]/x", "x");
	api->data_str(ctx, "[]", "x");
	api->data_str(ctx, "", "x");
	api->data_str(ctx, NULL, "x");
	api->data_int(ctx, "x", 1);
	api->data_int(ctx, "x/y", 2);
	api->data_int(ctx, "m/k", 1);
	api->data_int(ctx, "m", 3);
	api->data_int(ctx, "s[]", 1);
	api->data_int(ctx, "s", 5);
	api->data_int(ctx, "t", 5);
	api->data_int(ctx, "t[]", 6);
	for (i = 0; i < 10000; i++)
		api->data_int(ctx, "loop", i);
}

static int
probe_run(struct muster_ctx *ctx, const struct muster_api *api)
{
	const char *verdict = api->arg_str(ctx, "verdict", "pass");

	probe_text(ctx, api);
	probe_progress(ctx, api);
	probe_read(ctx, api);
	probe_cmd(ctx, api);
	probe_data(ctx, api);
	if (strcmp(verdict, "fail") == 0)
		return MUSTER_FAIL;
	if (strcmp(verdict, "error") == 0)
		return MUSTER_ERROR;
	return MUSTER_PASS;
}
MUSTER_MODULE("probe", "0.9", "Exercises the helper API", probe_run);
