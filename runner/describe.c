/* SPDX-License-Identifier: Apache-2.0 */
/*
 * describe.c - `muster-runner --describe FILE.so`: load a module, run the
 * same descriptor checks as for a job (all but the name), and print the
 * descriptor as JSON.  The CLI reads it when it publishes a module.
 *
 *	{"name": "...", "version": "...", "summary": "..." | null,
 *	 "abi": 1, "size": 56, "magic_ok": true, "needs": [] | ["net"]}
 *
 * On failure: {"error": "<reason>"} on stdout, the reason on stderr, and
 * the exit code of runner.h (66 to 72).
 */
#include "runner.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "log.h"

/* dlopen() searches the library path for a name without a '/'. */
static int
describe_path(const char *file, char *path, size_t pathsz, struct mu_err *err)
{
	int n;

	n = snprintf(path, pathsz, "%s%s", strchr(file, '/') ? "" : "./", file);
	if (n < 0 || (size_t)n >= pathsz)
		return mu_errf(err, RUNNER_EXIT_LOAD, "cannot load module: path too long");
	return MU_OK;
}

static json_t *
describe_text(const char *s)
{
	char buf[RUNNER_TEXT_MAX + 1];
	size_t len;

	if (s == NULL)
		return json_null();
	len = strnlen(s, RUNNER_TEXT_MAX);
	memcpy(buf, s, len);
	len = utf8_clean(buf, len, len);
	return json_stringn(buf, len);
}

static json_t *
describe_needs(const struct module *m)
{
	json_t *a = json_array();

	if (a != NULL && (module_needs(m) & MUSTER_NEEDS_NET))
		json_array_append_new(a, json_string("net"));
	return a;
}

static json_t *
describe_json(const struct module *m)
{
	const struct muster_module *d = m->desc;

	return json_pack("{s:s, s:s, s:o, s:i, s:i, s:b, s:o}",
	    "name", d->name, "version", d->version,
	    "summary", describe_text(d->summary),
	    "abi", (json_int_t)d->abi, "size", (json_int_t)d->size,
	    "magic_ok", 1, "needs", describe_needs(m));
}

/* A need this runner does not know is refused here, at publish time,
 * rather than on every host. */
static int
describe_check_needs(const struct module *m, struct mu_err *err)
{
	uint32_t unknown = module_needs(m) & ~(uint32_t)MUSTER_NEEDS_NET;

	if (unknown)
		return mu_errf(err, RUNNER_EXIT_NEEDS, "module needs 0x%x, which this "
		    "runner does not know (built for a newer SDK?)", unknown);
	return MU_OK;
}

static int
describe_print(json_t *j)
{
	int rc = MU_OK;

	if (j == NULL)
		return RUNNER_EXIT_INTERNAL;
	if (json_dumpf(j, stdout, JSON_INDENT(2)) != 0 || fputc('\n', stdout) == EOF ||
	    fflush(stdout) != 0)
		rc = RUNNER_EXIT_INTERNAL;
	json_decref(j);
	return rc;
}

int
describe_main(const struct runner_opts *o)
{
	char path[PATH_MAX];
	struct mu_err err = { "" };
	struct module m;
	int rc;

	rc = describe_path(o->describe, path, sizeof(path), &err);
	if (rc == MU_OK)
		rc = module_open(path, &m, &err);
	if (rc == MU_OK)
		rc = module_check(&m, NULL, &err);
	if (rc == MU_OK)
		rc = describe_check_needs(&m, &err);
	if (rc != MU_OK) {
		utf8_clean(err.msg, strlen(err.msg), sizeof(err.msg) - 1);
		log_warnx("%s: %s", o->describe, err.msg);
		describe_print(json_pack("{s:s}", "error", err.msg));
		return rc;
	}
	return describe_print(describe_json(&m));
}
