/*
 * runargs.c - the arguments of `muster-runner --run FILE.so key=value ...`,
 * typed as the muster CLI types them (ctl/send.c), so that a module sees
 * in the edit-run loop what it will see in a real job:
 *
 *	key=true, key=false	a boolean
 *	key=42, key=-7		an integer, but only as JSON writes one: no
 *				'+', no leading zeros, so "0644" and "007"
 *				stay the strings they look like
 *	key=anything else	a string
 *	key:=JSON		any JSON value
 *	key:=@FILE		the JSON in FILE (a QC profile, say)
 *
 * The values collect in a JSON object, so the last of repeated keys wins;
 * lib/mpjson packs it for the job.
 */
#include "runner.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mpjson.h"

/* An integer as JSON writes one, that fits int64_t. */
static bool
is_int(const char *s, long long *out)
{
	const char *d = s[0] == '-' ? s + 1 : s;
	char *end;

	if (*d < '0' || *d > '9' || (d[0] == '0' && d[1] != '\0'))
		return false;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* NULL if v is not UTF-8. */
static json_t *
arg_scalar(const char *v)
{
	long long n;

	if (strcmp(v, "true") == 0)
		return json_true();
	if (strcmp(v, "false") == 0)
		return json_false();
	if (is_int(v, &n))
		return json_integer(n);
	return json_string(v);
}

static json_t *
arg_json(const char *text, json_error_t *jerr)
{
	if (text[0] == '@')
		return json_load_file(text + 1, JSON_DECODE_ANY, jerr);
	return json_loads(text, JSON_DECODE_ANY, jerr);
}

int
arg_parse(const char *spec, struct json_t *args, struct mu_err *err)
{
	const char *eq = strchr(spec, '=');
	json_error_t jerr;
	size_t klen;
	bool is_json;
	json_t *v;

	if (eq == NULL || eq == spec)
		return mu_errf(err, MU_EINVAL, "argument '%.64s' is not key=value or "
		    "key:=JSON", spec);
	is_json = eq[-1] == ':';
	klen = (size_t)(eq - spec) - is_json;
	if (klen == 0)
		return mu_errf(err, MU_EINVAL, "argument '%.64s' has no key", spec);
	if ((v = is_json ? arg_json(eq + 1, &jerr) : arg_scalar(eq + 1)) == NULL)
		return is_json ? mu_errf(err, MU_EINVAL, "argument '%.*s': bad JSON: %s",
		    (int)klen, spec, jerr.text) : mu_errf(err, MU_EINVAL,
		    "argument '%.*s' is not UTF-8", (int)klen, spec);
	/* The value sits at level 2 of the args map.  Said here, as a value
	 * too deep for msgpack's unpacker would fail later without a reason. */
	if (mpjson_depth(v) > WIRE_MAX_ARGS_DEPTH - 1) {
		json_decref(v);
		return mu_errf(err, MU_EINVAL, "argument '%.*s' nests deeper than %d "
		    "levels", (int)klen, spec, WIRE_MAX_ARGS_DEPTH);
	}
	/* setn_new() takes v even when it fails. */
	if (json_object_setn_new(args, spec, klen, v) != 0)
		return mu_errf(err, MU_EINVAL, "argument key '%.*s' is not UTF-8",
		    (int)klen, spec);
	return MU_OK;
}
