/*
 * report.c - results and events as JSON (jansson), and small formatting.
 */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

#include "mpjson.h"

const char *
human_ms(uint64_t ms, char *buf, size_t len)
{
	if (ms < 10000)
		snprintf(buf, len, "%.2fs", ms / 1000.0);
	else if (ms < 600000)
		snprintf(buf, len, "%.1fs", ms / 1000.0);
	else
		snprintf(buf, len, "%llum%02llus", (unsigned long long)(ms / 60000),
		    (unsigned long long)(ms / 1000 % 60));
	return buf;
}

static void
set_view(json_t *o, const char *key, struct wire_str s)
{
	if (s.ptr)
		json_object_set_new(o, key, json_stringn(s.ptr, s.len));
}

static void
set_str(json_t *o, const char *key, const char *s)
{
	if (s[0])
		json_object_set_new(o, key, json_string(s));
}

json_t *
result_json(const struct result *r)
{
	json_t *o = json_object();

	json_object_set_new(o, "type", json_string("result"));
	json_object_set_new(o, "job", json_string(r->job));
	json_object_set_new(o, "host", json_string(r->host));
	json_object_set_new(o, "kind", json_string(job_kind_name(r->kind)));
	json_object_set_new(o, "status", json_string(result_status_name(r->status)));
	set_view(o, "reason", r->reason);
	set_view(o, "summary", r->summary);
	set_view(o, "output", r->output);
	if (r->truncated)
		json_object_set_new(o, "truncated", json_true());
	if (r->data)
		json_object_set_new(o, "data", mpjson_from_msgpack(r->data));
	if (r->has_exit_code)
		json_object_set_new(o, "exit_code", json_integer(r->exit_code));
	if (r->has_signal)
		json_object_set_new(o, "signal", json_integer(r->signal));
	set_str(o, "module", r->module);
	set_str(o, "module_version", r->module_version);
	set_str(o, "module_sha256", r->module_sha256);
	json_object_set_new(o, "started_at", json_integer((json_int_t)r->started_at));
	json_object_set_new(o, "finished_at", json_integer((json_int_t)r->finished_at));
	json_object_set_new(o, "duration_ms", json_integer(r->finished_at >= r->started_at ?
	    (json_int_t)(r->finished_at - r->started_at) : 0));
	json_object_set_new(o, "agent_version", json_string(r->agent_version));
	return o;
}

json_t *
event_json(const struct event *e)
{
	static const char *const kinds[] = { "accepted", "started", "output", "progress" };
	json_t *o = json_object();

	json_object_set_new(o, "type", json_string("event"));
	json_object_set_new(o, "job", json_string(e->job));
	json_object_set_new(o, "host", json_string(e->host));
	json_object_set_new(o, "seq", json_integer((json_int_t)e->seq));
	json_object_set_new(o, "at", json_integer((json_int_t)e->at));
	json_object_set_new(o, "event", json_string(kinds[e->event]));
	set_view(o, "text", e->text);
	if (e->has_pct)
		json_object_set_new(o, "pct", json_integer(e->pct));
	return o;
}

void
json_print_line(json_t *j)
{
	if (j == NULL)
		return;
	json_dumpf(j, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(j);
}
