/* SPDX-License-Identifier: Apache-2.0 */
/*
 * facts.c - the host's facts, gathered by the privileged parent without
 * running a module (design.md §3): the built-ins (os-release, uname,
 * sysconf, the agent's version, channel and groups) and the operator's
 * own from the *.json files of [agent] facts_dir as custom.<name>.  The parent keeps
 * the set (a->par.facts, owned here) to evaluate job filters on, and
 * hands the encoded facts body to the network process (PRIV_FACTS), which
 * signs and publishes it retained: at start (each new network process),
 * when the set changes (re-gathered every FACTS_INTERVAL_MS), and on
 * SIGHUP.
 *
 * A custom facts file that does not parse, holds a value that is not a
 * string, integer, bool or list of strings, or breaks a bound is logged
 * with its path and reason and left out whole; nothing else changes.
 */
#include "agent.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <jansson.h>

#define FACTS_INTERVAL_MS	(10 * 60 * 1000)
#define FACTS_FILE_MAX		(64 * 1024)	/* bytes of one custom facts file */
#define FACTS_HEAD_MAX		256		/* a facts message but its map */
#define OS_RELEASE		"/etc/os-release"
#define OS_RELEASE_FALLBACK	"/usr/lib/os-release"	/* os-release(5) */

/* ---- built-ins ------------------------------------------------------------ */

/* One os-release(5) value: unquoted, or in single or double quotes with
 * backslash escapes. */
static void
os_release_value(char *v)
{
	char *out = v, q = 0;

	if (*v == '"' || *v == '\'')
		q = *v++;
	for (; *v && *v != q; v++) {
		if (q == '"' && *v == '\\' && v[1])
			v++;
		*out++ = *v;
	}
	*out = '\0';
}

static int
gather_os_release(struct facts *f, struct mu_err *err)
{
	static const char *const keys[][2] = {
		{ "ID=", "os.id" }, { "VERSION_ID=", "os.version_id" },
		{ "PRETTY_NAME=", "os.pretty" },
	};
	char line[512];
	size_t i;
	FILE *fp;
	int rc = MU_OK;

	if ((fp = fopen(OS_RELEASE, "re")) == NULL &&
	    (fp = fopen(OS_RELEASE_FALLBACK, "re")) == NULL)
		return MU_OK;		/* no os-release: no os.* facts */
	while (rc == MU_OK && fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			size_t n = strlen(keys[i][0]);

			if (strncmp(line, keys[i][0], n) != 0)
				continue;
			os_release_value(line + n);
			rc = facts_set_str(f, keys[i][1], line + n, err);
		}
	}
	fclose(fp);
	return rc;
}

static int
gather_builtin(struct agent *a, struct facts *f, struct mu_err *err)
{
	const char *groups[CONF_MAX_GROUPS];
	struct utsname u;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	int i, rc;

	if ((rc = gather_os_release(f, err)) != MU_OK)
		return rc;
	if (uname(&u) == 0 &&
	    ((rc = facts_set_str(f, "kernel", u.release, err)) != MU_OK ||
	    (rc = facts_set_str(f, "arch", u.machine, err)) != MU_OK))
		return rc;
	if (cpus > 0 && (rc = facts_set_int(f, "cpus", cpus, err)) != MU_OK)
		return rc;
	if (pages > 0 && psize > 0 &&
	    (rc = facts_set_int(f, "mem_mb", (int64_t)pages * psize / (1024 * 1024),
	    err)) != MU_OK)
		return rc;
	for (i = 0; i < a->cfg.ngroups; i++)
		groups[i] = a->cfg.groups[i];
	if ((rc = facts_set_str(f, "agent.version", AGENT_VERSION, err)) != MU_OK ||
	    (rc = facts_set_str(f, "agent.channel", a->cfg.channel, err)) != MU_OK ||
	    (rc = facts_set_list(f, "groups", groups, (size_t)a->cfg.ngroups, err)) != MU_OK)
		return rc;
	return MU_OK;
}

/* ---- custom facts ----------------------------------------------------------- */

static int
custom_value(struct facts *f, const char *name, json_t *v, struct mu_err *err)
{
	const char *items[FACT_LIST_MAX];
	size_t i;

	switch (json_typeof(v)) {
	case JSON_STRING:
		if (strlen(json_string_value(v)) != json_string_length(v))
			return mu_errf(err, MU_EINVAL, "%s: a string with a NUL", name);
		return facts_set_str(f, name, json_string_value(v), err);
	case JSON_INTEGER:
		return facts_set_int(f, name, json_integer_value(v), err);
	case JSON_TRUE:
	case JSON_FALSE:
		return facts_set_bool(f, name, json_is_true(v), err);
	case JSON_ARRAY:
		if (json_array_size(v) > FACT_LIST_MAX)
			return mu_errf(err, MU_EINVAL, "%s: a list of more than %d items", name,
			    FACT_LIST_MAX);
		for (i = 0; i < json_array_size(v); i++) {
			json_t *x = json_array_get(v, i);

			if (!json_is_string(x) || strlen(json_string_value(x)) !=
			    json_string_length(x))
				return mu_errf(err, MU_EINVAL, "%s: a list item that is not a "
				    "string", name);
			items[i] = json_string_value(x);
		}
		return facts_set_list(f, name, items, json_array_size(v), err);
	default:
		return mu_errf(err, MU_EINVAL, "%s: not a string, integer, bool or list of "
		    "strings (facts are flat)", name);
	}
}

/* The file's bytes, read by root: a regular file only (a FIFO named
 * x.json must not hang the parent), at most FACTS_FILE_MAX.  *out is
 * malloc'd, the caller frees it. */
static int
custom_read(const char *path, char **out, size_t *len, struct mu_err *err)
{
	struct stat st;
	ssize_t n;
	char *buf;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) == -1)
		return mu_errf(err, MU_EIO, "%s", strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > FACTS_FILE_MAX) {
		close(fd);
		return mu_errf(err, MU_EINVAL, "not a regular file of at most %d bytes",
		    FACTS_FILE_MAX);
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return mu_errf(err, MU_ENOMEM, "out of memory");
	}
	n = read(fd, buf, (size_t)st.st_size + 1);
	close(fd);
	if (n < 0 || n > st.st_size) {
		free(buf);
		return mu_errf(err, MU_EIO, "%s", n < 0 ? strerror(errno) :
		    "it grew while read");
	}
	*out = buf, *len = (size_t)n;
	return MU_OK;
}

/* One file into out (a fresh set): all of it, or an error and nothing. */
static int
custom_file(const char *path, struct facts *out, struct mu_err *err)
{
	char name[FACT_NAME_MAX + 2];
	json_error_t je;
	const char *key;
	json_t *root, *v;
	char *text = NULL;
	size_t len = 0;
	int rc = MU_OK;

	if ((rc = custom_read(path, &text, &len, err)) != MU_OK)
		return rc;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	if (root == NULL)
		return mu_errf(err, MU_EINVAL, "line %d: %s", je.line, je.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return mu_errf(err, MU_EINVAL, "not a JSON object");
	}
	json_object_foreach(root, key, v) {
		if ((size_t)snprintf(name, sizeof(name), FACTS_CUSTOM_PREFIX "%s", key) >=
		    sizeof(name) || !fact_name_valid(name, strlen(name))) {
			rc = mu_errf(err, MU_EINVAL, "'%.64s' is not a fact name (dotted "
			    "[a-z0-9_-] segments, at most %d bytes with 'custom.')", key,
			    FACT_NAME_MAX);
			break;
		}
		if ((rc = custom_value(out, name, v, err)) != MU_OK)
			break;
	}
	json_decref(root);
	if (rc)
		facts_free(out);
	return rc;
}

static int
json_file(const struct dirent *de)
{
	size_t n = strlen(de->d_name);

	return de->d_name[0] != '.' && n > 5 && strcmp(de->d_name + n - 5, ".json") == 0;
}

/* The *.json files of facts_dir in name order, each whole or not at all. */
static void
gather_custom(struct agent *a, struct facts *f)
{
	char path[CONF_PATH_MAX + 256];
	struct dirent **list;
	struct mu_err err;
	int i, n;

	if ((n = scandir(a->cfg.facts_dir, &list, json_file, alphasort)) < 0) {
		if (errno != ENOENT)
			log_warnx("facts: %s: %s (no custom facts)", a->cfg.facts_dir,
			    strerror(errno));
		return;
	}
	for (i = 0; i < n; i++) {
		struct facts one = { 0 };
		size_t added = 0, j;

		snprintf(path, sizeof(path), "%s/%s", a->cfg.facts_dir, list[i]->d_name);
		free(list[i]);
		if (custom_file(path, &one, &err) != MU_OK) {
			log_warnx("facts: %s: %s (left out)", path, err.msg);
			continue;
		}
		for (j = 0; j < one.n; j++)
			added += facts_get(f, one.v[j].name) == NULL;
		if (f->n + added > FACTS_MAX) {
			log_warnx("facts: %s: more than %d facts in all (left out)", path,
			    FACTS_MAX);
			facts_free(&one);
			continue;
		}
		/* Counted as if every name were new: a bound, not a size. */
		if (facts_wire_size(f) + facts_wire_size(&one) > FACTS_MAX_MSG - FACTS_HEAD_MAX) {
			log_warnx("facts: %s: the facts would be over %u bytes in all (left out)",
			    path, FACTS_MAX_MSG);
			facts_free(&one);
			continue;
		}
		if (facts_merge(f, &one, &err) != MU_OK)
			log_warnx("facts: %s: %s", path, err.msg);
	}
	free(list);
}

/* ---- the set, and telling the network process --------------------------------- */

int
facts_gather(struct agent *a, struct facts *out, struct mu_err *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = gather_builtin(a, out, err)) != MU_OK) {
		facts_free(out);
		return rc;
	}
	gather_custom(a, out);
	return MU_OK;
}

int
facts_send(struct agent *a, struct mu_err *err)
{
	struct facts_msg m = { .at = now_wall_ms(), .facts = a->par.facts };
	msgpack_sbuffer sb, env;
	int rc;

	if (a->selftest || !a->par.net_ready)
		return MU_OK;	/* a new network process is told when ready */
	snprintf(m.host, sizeof(m.host), "%s", a->cfg.host);
	msgpack_sbuffer_init(&sb);
	msgpack_sbuffer_init(&env);
	if ((rc = facts_encode(&m, &sb, err)) == MU_OK &&
	    (rc = sign_body(a, sb.data, sb.size, &env, err)) == MU_OK &&
	    (rc = priv_send_facts(a, env.data, env.size)) != MU_OK)
		mu_errf(err, rc, "the network process was not told (it is told again "
		    "when it is ready)");
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_destroy(&env);
	return rc;
}

int
facts_refresh(struct agent *a, bool publish, struct mu_err *err)
{
	struct facts fresh;
	bool changed;
	int rc;

	if ((rc = facts_gather(a, &fresh, err)) != MU_OK)
		return rc;	/* the facts gathered before stay */
	changed = !facts_equal(&fresh, &a->par.facts);
	facts_free(&a->par.facts);
	a->par.facts = fresh;
	if (changed)
		log_info("facts: %zu facts (changed)", a->par.facts.n);
	return changed || publish ? facts_send(a, err) : MU_OK;
}

/* A failure keeps the facts in force and is said; the next try is the
 * next timer, SIGHUP or network process. */
void
facts_refresh_logged(struct agent *a, bool publish)
{
	struct mu_err err;

	if (facts_refresh(a, publish, &err) != MU_OK)
		log_err("facts: %s", err.msg);
}

static void
facts_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)id;
	facts_refresh_logged(a, false);
	a->par.facts_timer = loop_add_timer(l, FACTS_INTERVAL_MS, facts_fired, a);
}

int
facts_start(struct agent *a, struct mu_err *err)
{
	int rc = facts_refresh(a, false, err);

	a->par.facts_timer = loop_add_timer(a->loop, FACTS_INTERVAL_MS, facts_fired, a);
	return rc;
}

void
facts_stop(struct agent *a)
{
	facts_free(&a->par.facts);
}
