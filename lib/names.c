/* SPDX-License-Identifier: Apache-2.0 */
#include "names.h"

#include <stdio.h>
#include <string.h>

static bool
name_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return !first && (c == '.' || c == '_' || c == '-');
}

bool
name_valid(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0')
		return false;
	for (i = 0; s[i] != '\0'; i++)
		if (i >= NAME_MAX_LEN || !name_char(s[i], i == 0))
			return false;
	return true;
}

bool
jobid_valid(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0')
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		char c = s[i];

		if (i >= JOBID_MAX_LEN)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool
jobid_reserved(const char *s)
{
	return strncmp(s, JOBID_RESERVED_PREFIX, strlen(JOBID_RESERVED_PREFIX)) == 0;
}

bool
sha256hex_valid(const char *s)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; i < SHA256_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[SHA256_HEX_LEN] == '\0';
}

bool
topic_root_valid(const char *s)
{
	return name_valid(s);
}

bool
aud_valid(const char *s)
{
	char root[NAME_MAX_LEN + 1];
	const char *slash = strchr(s, '/');

	if (slash == NULL || (size_t)(slash - s) >= sizeof(root) || strcmp(slash, "/v1") != 0)
		return false;
	memcpy(root, s, (size_t)(slash - s));
	root[slash - s] = '\0';
	return topic_root_valid(root);
}

int
aud_format(char *buf, size_t len, const char *root)
{
	if (!topic_root_valid(root) || (size_t)snprintf(buf, len, "%s/v1", root) >= len)
		return MU_EINVAL;
	return MU_OK;
}

int
target_parse(const char *s, struct job_target *out, struct mu_err *err)
{
	const char *name;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return mu_errf(err, MU_EINVAL, "target is missing");
	if (strcmp(s, "all") == 0) {
		out->kind = TARGET_ALL;
		return MU_OK;
	}
	if (strncmp(s, "host/", 5) == 0) {
		out->kind = TARGET_HOST;
		name = s + 5;
	} else if (strncmp(s, "group/", 6) == 0) {
		out->kind = TARGET_GROUP;
		name = s + 6;
	} else
		return mu_errf(err, MU_EINVAL,
		    "target must be host/<name>, group/<name> or all");
	if (!name_valid(name))
		return mu_errf(err, MU_EINVAL, "target has an invalid name");
	memcpy(out->name, name, strlen(name) + 1);
	return MU_OK;
}

int
target_format(const struct job_target *t, char *buf, size_t len)
{
	int n;

	switch (t->kind) {
	case TARGET_ALL:
		n = snprintf(buf, len, "all");
		break;
	case TARGET_HOST:
		n = snprintf(buf, len, "host/%s", t->name);
		break;
	case TARGET_GROUP:
		n = snprintf(buf, len, "group/%s", t->name);
		break;
	default:
		return MU_EINVAL;
	}
	if (n < 0 || (size_t)n >= len)
		return MU_EINVAL;
	if (t->kind != TARGET_ALL && !name_valid(t->name))
		return MU_EINVAL;
	return MU_OK;
}

/* Each topic is root "/v1/" seg0 a seg1 b seg2, with a and b checked by
 * the given validators (NULL: the argument is not used). */
static const struct topic_shape {
	const char *seg0, *seg1, *seg2;
	bool (*valid_a)(const char *);
	bool (*valid_b)(const char *);
} topic_shapes[] = {
	[TOPIC_HOST_JOBS] =		{ "hosts/", "/jobs", "", name_valid, NULL },
	[TOPIC_GROUP_JOBS] =		{ "groups/", "/jobs", "", name_valid, NULL },
	[TOPIC_ALL_JOBS] =		{ "all/jobs", "", "", NULL, NULL },
	[TOPIC_HOST_STATUS] =		{ "hosts/", "/status", "", name_valid, NULL },
	[TOPIC_RESULT] =		{ "results/", "/", "", jobid_valid, name_valid },
	[TOPIC_RESULT_EVENTS] =		{ "results/", "/", "/events", jobid_valid, name_valid },
	[TOPIC_MODULE] =		{ "modules/", "", "", name_valid, NULL },
	[TOPIC_MODULE_ARTIFACT] =	{ "modules/", "/", "", name_valid, sha256hex_valid },
	[TOPIC_RELEASE] =		{ "releases/", "", "", name_valid, NULL },
	[TOPIC_ARTIFACT] =		{ "artifacts/", "", "", sha256hex_valid, NULL },
	[TOPIC_SELFTEST_REQUEST] =	{ "hosts/", "/selftest/request", "", name_valid, NULL },
	[TOPIC_SELFTEST_JOBS] =		{ "hosts/", "/selftest/jobs", "", name_valid, NULL },
	[TOPIC_SELFTEST_VERDICT] =	{ "hosts/", "/selftest/verdict", "", name_valid, NULL },
	[TOPIC_HOST_FACTS] =		{ "hosts/", "/facts", "", name_valid, NULL },
	[TOPIC_JOB_ANNOUNCE] =		{ "jobs/", "", "", jobid_valid, NULL },
};

static bool
is_wild(const char *s)
{
	return s != NULL && strcmp(s, "+") == 0;
}

static int
topic_make(char *buf, size_t len, const char *root, enum topic_kind kind,
    const char *a, const char *b, bool wild)
{
	const struct topic_shape *t;
	int n;

	if (!topic_root_valid(root) || (int)kind < 0 ||
	    (size_t)kind >= sizeof(topic_shapes) / sizeof(topic_shapes[0]))
		return MU_EINVAL;
	t = &topic_shapes[kind];
	if ((t->valid_a && !(wild && is_wild(a)) && !t->valid_a(a)) ||
	    (t->valid_b && !(wild && is_wild(b)) && !t->valid_b(b)))
		return MU_EINVAL;
	n = snprintf(buf, len, "%s/v1/%s%s%s%s%s", root, t->seg0,
	    t->valid_a ? a : "", t->seg1, t->valid_b ? b : "", t->seg2);
	if (n < 0 || (size_t)n >= len)
		return MU_EINVAL;
	return MU_OK;
}

int
topic_build(char *buf, size_t len, const char *root, enum topic_kind kind,
    const char *a, const char *b)
{
	return topic_make(buf, len, root, kind, a, b, false);
}

int
topic_filter(char *buf, size_t len, const char *root, enum topic_kind kind,
    const char *a, const char *b)
{
	return topic_make(buf, len, root, kind, a, b, true);
}

int
topic_for_target(char *buf, size_t len, const char *root,
    const struct job_target *t)
{
	switch (t->kind) {
	case TARGET_HOST:
		return topic_build(buf, len, root, TOPIC_HOST_JOBS, t->name, NULL);
	case TARGET_GROUP:
		return topic_build(buf, len, root, TOPIC_GROUP_JOBS, t->name, NULL);
	case TARGET_ALL:
		return topic_build(buf, len, root, TOPIC_ALL_JOBS, NULL, NULL);
	}
	return MU_EINVAL;
}

int
topic_parse_jobs(const char *topic, const char *root, struct job_target *out)
{
	char name[NAME_MAX_LEN + 2];
	size_t rlen = strlen(root), nlen;
	const char *p, *slash;

	memset(out, 0, sizeof(*out));
	if (strncmp(topic, root, rlen) != 0 || strncmp(topic + rlen, "/v1/", 4) != 0)
		return MU_EINVAL;
	p = topic + rlen + 4;
	if (strcmp(p, "all/jobs") == 0) {
		out->kind = TARGET_ALL;
		return MU_OK;
	}
	if (strncmp(p, "hosts/", 6) == 0) {
		out->kind = TARGET_HOST;
		p += 6;
	} else if (strncmp(p, "groups/", 7) == 0) {
		out->kind = TARGET_GROUP;
		p += 7;
	} else
		return MU_EINVAL;
	slash = strchr(p, '/');
	if (slash == NULL || strcmp(slash, "/jobs") != 0)
		return MU_EINVAL;
	nlen = (size_t)(slash - p);
	if (nlen == 0 || nlen > NAME_MAX_LEN)
		return MU_EINVAL;
	memcpy(name, p, nlen);
	name[nlen] = '\0';
	if (!name_valid(name))
		return MU_EINVAL;
	memcpy(out->name, name, nlen + 1);
	return MU_OK;
}

int
topic_parse_module(const char *topic, const char *root, char *name, char *sha256)
{
	size_t rlen = strlen(root), nlen;
	const char *p, *slash;

	name[0] = sha256[0] = '\0';
	if (strncmp(topic, root, rlen) != 0 || strncmp(topic + rlen, "/v1/modules/", 12) != 0)
		return MU_EINVAL;
	p = topic + rlen + 12;
	slash = strchr(p, '/');
	nlen = slash ? (size_t)(slash - p) : strlen(p);
	if (nlen == 0 || nlen > NAME_MAX_LEN)
		return MU_EINVAL;
	memcpy(name, p, nlen);
	name[nlen] = '\0';
	if (!name_valid(name))
		return MU_EINVAL;
	if (slash == NULL)
		return MU_OK;
	if (strlen(slash + 1) != SHA256_HEX_LEN || !sha256hex_valid(slash + 1))
		return MU_EINVAL;
	memcpy(sha256, slash + 1, SHA256_HEX_LEN + 1);
	return MU_OK;
}
