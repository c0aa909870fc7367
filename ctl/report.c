/* SPDX-License-Identifier: Apache-2.0 */
/*
 * report.c - results and events as JSON (jansson), and small formatting.
 *
 * Everything a host sends is untrusted text: on a terminal, an escape
 * sequence in a module's output could rewrite the screen, retitle the
 * window or hide a line, so control characters never reach it raw
 * (term_put).  In JSON, jansson refuses strings that are not UTF-8; such
 * a field is kept, with the bad bytes escaped (json_text).
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
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

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if it is not one. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

void
term_put(FILE *f, const char *s, size_t n, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	if (s == NULL)
		return;
	if (n > max)
		n = max;
	while (i < n) {
		k = utf8_len(p + i, n - i);
		/* C0, DEL and C1 (U+0080..U+009F, which some terminals take
		 * as CSI and friends) are controls. */
		if (k == 0 || (k == 1 && (p[i] < 0x20 || p[i] == 0x7f)) ||
		    (k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0)) {
			fprintf(f, "\\x%02x", p[i]);
			i++;
		} else if (p[i] == '\\') {
			fputs("\\\\", f);
			i++;
		} else {
			fwrite(p + i, 1, k, f);
			i += k;
		}
	}
}

json_t *
json_text(const char *s, size_t n, bool *escaped)
{
	const unsigned char *p = (const unsigned char *)s;
	json_t *j = json_stringn(s, n);
	char *buf, *o;
	size_t i = 0, k;

	if (j != NULL || s == NULL)
		return j;
	/* Not UTF-8 (or a NUL byte): at most 4 output bytes an input byte. */
	if ((buf = malloc(4 * n + 1)) == NULL)
		return json_string("");
	for (o = buf; i < n; )
		if ((k = utf8_len(p + i, n - i)) == 0 || p[i] == 0) {
			o += sprintf(o, "\\x%02x", p[i]);
			i++;
		} else if (p[i] == '\\') {
			*o++ = '\\', *o++ = '\\';
			i++;
		} else {
			memcpy(o, p + i, k);
			o += k, i += k;
		}
	j = json_stringn(buf, (size_t)(o - buf));
	free(buf);
	if (escaped)
		*escaped = true;
	return j;
}

/* A text field; the object's "escaped" array names those json_text()
 * had to escape. */
static void
set_view(json_t *o, const char *key, struct wire_str s)
{
	bool esc = false;
	json_t *list;

	if (s.ptr == NULL)
		return;
	json_object_set_new(o, key, json_text(s.ptr, s.len, &esc));
	if (!esc)
		return;
	if ((list = json_object_get(o, "escaped")) == NULL) {
		list = json_array();
		json_object_set_new(o, "escaped", list);
	}
	json_array_append_new(list, json_string(key));
}

/*
 * output as a list of lines, the form `muster-runner --run --json` prints:
 * the wire carries the lines joined by newlines (each one ended by one), so
 * a last newline ends the last line rather than starting an empty one.
 * Each line is a text field of its own; "escaped" names "output" if any
 * line had to be escaped.
 */
static void
set_lines(json_t *o, const char *key, struct wire_str s)
{
	const char *p, *end, *nl;
	bool esc = false, any = false;
	json_t *lines, *list;

	if (s.ptr == NULL || (lines = json_array()) == NULL)
		return;
	for (p = s.ptr, end = s.ptr + s.len; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		json_array_append_new(lines, json_text(p, (size_t)(nl - p), &esc));
		any = any || esc;
	}
	json_object_set_new(o, key, lines);
	if (!any)
		return;
	if ((list = json_object_get(o, "escaped")) == NULL) {
		list = json_array();
		json_object_set_new(o, "escaped", list);
	}
	json_array_append_new(list, json_string(key));
}

static void
set_str(json_t *o, const char *key, const char *s)
{
	if (s[0])
		json_object_set_new(o, key, json_string(s));
}

/* data as JSON; a map JSON cannot show faithfully (a string that is not
 * UTF-8, an ext, a huge integer) is kept as the hex of its msgpack bytes. */
static void
set_data(json_t *o, const msgpack_object *data)
{
	json_t *j = mpjson_from_msgpack(data);
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (j != NULL) {
		json_object_set_new(o, "data", j);
		return;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, *data);
	json_object_set_new(o, "data_msgpack", mpjson_hex(sb.data, sb.size));
	msgpack_sbuffer_destroy(&sb);
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
	set_lines(o, "output", r->output);
	if (r->truncated)
		json_object_set_new(o, "truncated", json_true());
	if (r->data)
		set_data(o, r->data);
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
	if (r->has_seq && r->seq <= INT64_MAX)
		json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
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
