/* SPDX-License-Identifier: Apache-2.0 */
/*
 * result.c - a verified result as the library hands it over: copied out
 * of the core's answer (which moves as more arrive), its JSON made by the
 * CLI's own result_json() (ctl/report.c), so muster_result_json() is
 * what `muster run --json` prints.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "mpjson.h"

static char *
dup_view(struct wire_str w, size_t *len)
{
	char *p = malloc(w.len + 1);

	if (p == NULL)
		return NULL;
	if (w.len)
		memcpy(p, w.ptr, w.len);
	p[w.len] = '\0';
	if (len)
		*len = w.len;
	return p;
}

static char *
json_text_of(json_t *j)
{
	char *t;

	if (j == NULL)
		return NULL;
	t = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return t;
}

struct muster_result *
client_result_new(const struct result *r)
{
	struct muster_result *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->status = result_status_name(r->status);
	m->started_at = r->started_at;
	m->finished_at = r->finished_at;
	m->host = strdup(r->host);
	m->job = strdup(r->job);
	m->module = strdup(r->module);
	m->agent_version = strdup(r->agent_version);
	m->summary = dup_view(r->summary, NULL);
	m->reason = dup_view(r->reason, NULL);
	m->output = dup_view(r->output, &m->output_len);
	m->data_json = r->data ? json_text_of(mpjson_from_msgpack(r->data)) : strdup("{}");
	m->json = json_text_of(result_json(r));
	if (!m->host || !m->job || !m->module || !m->agent_version || !m->summary ||
	    !m->reason || !m->output || !m->data_json || !m->json) {
		client_result_free(m);
		return NULL;
	}
	return m;
}

void
client_result_free(struct muster_result *m)
{
	if (m == NULL)
		return;
	free(m->host);
	free(m->job);
	free(m->module);
	free(m->agent_version);
	free(m->summary);
	free(m->reason);
	free(m->output);
	free(m->data_json);
	free(m->json);
	free(m);
}

MUSTER_API const char *
muster_result_host(const muster_result *r)
{
	return r ? r->host : NULL;
}

MUSTER_API const char *
muster_result_job(const muster_result *r)
{
	return r ? r->job : NULL;
}

MUSTER_API const char *
muster_result_status(const muster_result *r)
{
	return r ? r->status : NULL;
}

MUSTER_API const char *
muster_result_summary(const muster_result *r)
{
	return r ? r->summary : NULL;
}

MUSTER_API const char *
muster_result_reason(const muster_result *r)
{
	return r ? r->reason : NULL;
}

MUSTER_API const char *
muster_result_output(const muster_result *r, size_t *len)
{
	if (len)
		*len = r ? r->output_len : 0;
	return r ? r->output : NULL;
}

MUSTER_API const char *
muster_result_data_json(const muster_result *r)
{
	return r ? r->data_json : NULL;
}

MUSTER_API const char *
muster_result_json(const muster_result *r)
{
	return r ? r->json : NULL;
}

MUSTER_API const char *
muster_result_module(const muster_result *r)
{
	return r ? r->module : NULL;
}

MUSTER_API const char *
muster_result_agent_version(const muster_result *r)
{
	return r ? r->agent_version : NULL;
}

MUSTER_API uint64_t
muster_result_started_at(const muster_result *r)
{
	return r ? r->started_at : 0;
}

MUSTER_API uint64_t
muster_result_finished_at(const muster_result *r)
{
	return r ? r->finished_at : 0;
}
