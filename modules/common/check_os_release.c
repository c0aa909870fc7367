/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_os_release.c - the os.release check: read os-release(5), put its
 * fields into data, and compare ID and VERSION_ID when asked.
 */
#include "chk.h"

#include <errno.h>
#include <string.h>

#define OSR_MAX		(64 * 1024)
#define OSR_DEFAULT	"/etc/os-release"
#define OSR_FALLBACK	"/usr/lib/os-release"

struct osr {
	const char	*id, *version_id, *pretty;
};

/* Field names, less the four that qc.install keeps for itself under
 * checks/<label>/ (none of them is an os-release(5) field). */
static int
key_valid(const char *k)
{
	if (strcmp(k, "KIND") == 0 || strcmp(k, "STATUS") == 0 ||
	    strcmp(k, "SUMMARY") == 0 || strcmp(k, "REASON") == 0)
		return 0;
	if (!((*k >= 'A' && *k <= 'Z') || *k == '_'))
		return 0;
	for (k++; *k != '\0'; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
		    *k == '_'))
			return 0;
	return 1;
}

/* Unquote a shell-style value in place, as os-release(5) allows it. */
static char *
unquote(char *v)
{
	char *r = v, *w = v, q;
	size_t n;

	if (*v != '"' && *v != '\'') {
		n = strlen(v);
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' ||
		    v[n - 1] == '\r'))
			v[--n] = '\0';
		return v;
	}
	q = *r++;
	for (; *r != '\0' && *r != q; r++) {
		if (q == '"' && *r == '\\' && r[1] != '\0' &&
		    strchr("\"\\`$", r[1]) != NULL)
			r++;
		*w++ = *r;
	}
	*w = '\0';
	return v;
}

static void
lower(char *dst, size_t size, const char *src)
{
	size_t i;

	for (i = 0; src[i] != '\0' && i + 1 < size; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ?
		    (char)(src[i] - 'A' + 'a') : src[i];
	dst[i] = '\0';
}

static void
parse(struct chk *c, char *text, struct osr *o)
{
	char *p = text, *line, *eq, *val, key[64];

	while ((line = chk_line(&p)) != NULL) {
		line += strspn(line, " \t");
		if (*line == '#' || (eq = strchr(line, '=')) == NULL)
			continue;
		*eq = '\0';
		if (!key_valid(line) || strlen(line) >= sizeof(key))
			continue;
		val = unquote(eq + 1);
		if (strcmp(line, "ID") == 0)
			o->id = val;
		else if (strcmp(line, "VERSION_ID") == 0)
			o->version_id = val;
		else if (strcmp(line, "PRETTY_NAME") == 0)
			o->pretty = val;
		lower(key, sizeof(key), line);
		chk_data_str(c, key, val);
	}
}

/* The file asked for, or the standard one with its fallback. */
static const char *
load(struct chk *c, const char *path, char **buf, size_t *len)
{
	if (path != NULL)
		return chk_read(c, path, OSR_MAX, buf, len) == 0 ? path : NULL;
	if (chk_read(c, OSR_DEFAULT, OSR_MAX, buf, len) == 0)
		return OSR_DEFAULT;
	if (errno != ENOENT)
		return NULL;
	return chk_read(c, OSR_FALLBACK, OSR_MAX, buf, len) == 0 ?
	    OSR_FALLBACK : NULL;
}

static void
compare(struct chk *c, const char *what, const char *have, const char *want)
{
	if (want != NULL && strcmp(have, want) != 0)
		chk_reason_add(c, "%s is \"%s\", expected \"%s\"", what, have,
		    want);
}

int
check_os_release(struct chk *c)
{
	const char *path = chk_str(c, "path", NULL);
	const char *want_id = chk_str(c, "id", NULL);
	const char *want_ver = chk_str(c, "version_id", NULL);
	struct osr o = { "linux", "", NULL };
	const char *used;
	char *buf;
	size_t len;

	if (chk_args_bad(c))
		return chk_args_error(c);
	if ((used = load(c, path, &buf, &len)) == NULL)
		return chk_error_reason(c);
	chk_data_str(c, "path", used);
	parse(c, buf, &o);
	/* os-release(5): ID defaults to "linux". */
	chk_data_str(c, "id", o.id);
	chk_out(c, "%s: %s", used, o.pretty != NULL ? o.pretty : o.id);
	chk_summary(c, "%s%s%s", o.pretty != NULL ? o.pretty : o.id,
	    o.pretty == NULL && *o.version_id != '\0' ? " " : "",
	    o.pretty == NULL ? o.version_id : "");
	compare(c, "ID", o.id, want_id);
	compare(c, "VERSION_ID", o.version_id, want_ver);
	c->api->free(buf);
	return c->reason[0] == '\0' ? MUSTER_PASS : MUSTER_FAIL;
}
