/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_pkg_version.c - the pkg.version check: the installed version of one
 * package from dpkg-query (or rpm where there is no dpkg), compared with
 * Debian ordering against "min" or "version".  Several installed
 * instances (multi-arch, kernels) count as the highest of them.
 */
#include "chk.h"

#include <stdio.h>
#include <string.h>

#define PKG_TIMEOUT_MS	30000
#define PKG_OUT_MAX	(64 * 1024)

#define DPKG_FORMAT	"--showformat=${db:Status-Status}\\t${Version}\\n"
#define RPM_FORMAT	"%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n"

struct pkg {
	const char	*manager;	/* "dpkg" or "rpm" */
	const char	*name;
	char		 version[256];	/* highest installed, "" if none */
	char		 status[64];	/* dpkg's status of the last line seen */
};

/* Debian and RPM names, with an optional ":arch"; never an option. */
static int
name_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= 128 || !((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    (i > 0 && strchr("+._:-", s[i]) != NULL)))
			return 0;
	return i > 0;
}

static void
take(struct pkg *p, const char *v)
{
	if (*v != '\0' && (p->version[0] == '\0' ||
	    debver_cmp(v, p->version) > 0))
		snprintf(p->version, sizeof(p->version), "%s", v);
}

/* Lines of "<status>\t<version>"; only "installed" ones count. */
static void
parse_dpkg(struct pkg *p, char *out)
{
	char *line, *tab;

	while ((line = chk_line(&out)) != NULL) {
		if ((tab = strchr(line, '\t')) == NULL)
			continue;
		*tab = '\0';
		snprintf(p->status, sizeof(p->status), "%s", line);
		if (strcmp(line, "installed") == 0)
			take(p, tab + 1);
	}
}

static void
parse_rpm(struct pkg *p, char *out)
{
	char *line;

	while ((line = chk_line(&out)) != NULL)
		if (strstr(line, " is not installed") == NULL &&
		    strchr(line, ' ') == NULL)
			take(p, line);
}

/* dpkg-query says "no packages found", rpm says "is not installed"; both
 * exit 1.  Anything else that is not a clean exit is an error. */
static int
query(struct chk *c, struct pkg *p, const char *cmd)
{
	const char *dpkg_argv[] = { cmd, "-W", DPKG_FORMAT, p->name, NULL };
	const char *rpm_argv[] = { cmd, "-q", "--qf", RPM_FORMAT, p->name, NULL };
	int dpkg = strcmp(p->manager, "dpkg") == 0;
	struct muster_cmd_result r;
	char *nl;

	if (chk_run(c, dpkg ? dpkg_argv : rpm_argv, PKG_TIMEOUT_MS,
	    PKG_OUT_MAX, &r) == -1)
		return -1;
	if (r.exited && r.status == 1 && r.out != NULL &&
	    (strstr(r.out, "no packages found") != NULL ||
	    strstr(r.out, "is not installed") != NULL)) {
		c->api->free(r.out);
		return 0;
	}
	if (!r.exited || r.status != 0) {
		if (r.out != NULL && (nl = strchr(r.out, '\n')) != NULL)
			*nl = '\0';
		chk_reason(c, "%s %s: %s %d: %s", cmd, p->name, r.exited ?
		    "exit" : "signal", r.status, r.out != NULL ? r.out : "");
		c->api->free(r.out);
		return -1;
	}
	if (r.out != NULL) {
		if (dpkg)
			parse_dpkg(p, r.out);
		else
			parse_rpm(p, r.out);
	}
	c->api->free(r.out);
	return 0;
}

/* The command to ask (chk_which(): never one the job names): dpkg-query,
 * else rpm, the host's tools folder before the standard ones. */
static const char *
pick(struct chk *c, struct pkg *p, char *buf, size_t size)
{
	const char *cmd;

	(void)c;
	p->manager = "dpkg";
	if ((cmd = chk_which_tools(buf, size, "dpkg-query")) != NULL)
		return cmd;
	p->manager = "rpm";
	if ((cmd = chk_which_tools(buf, size, "rpm")) != NULL)
		return cmd;
	p->manager = "dpkg";
	if ((cmd = chk_which(buf, size, "dpkg-query")) != NULL)
		return cmd;
	p->manager = "rpm";
	return chk_which(buf, size, "rpm");
}

static int
judge(struct chk *c, const struct pkg *p, int want_installed,
    const char *min, const char *exact)
{
	if (p->version[0] == '\0') {
		chk_summary(c, "%s is not installed", p->name);
		if (want_installed)
			chk_reason(c, "%s is not installed", p->name);
		return want_installed ? MUSTER_FAIL : MUSTER_PASS;
	}
	chk_summary(c, "%s %s", p->name, p->version);
	if (!want_installed)
		chk_reason(c, "%s %s is installed", p->name, p->version);
	else if (min != NULL && debver_cmp(p->version, min) < 0)
		chk_reason(c, "%s %s is older than %s", p->name, p->version, min);
	else if (exact != NULL && debver_cmp(p->version, exact) != 0)
		chk_reason(c, "%s is %s, expected %s", p->name, p->version, exact);
	return c->reason[0] == '\0' ? MUSTER_PASS : MUSTER_FAIL;
}

int
check_pkg_version(struct chk *c)
{
	const char *min = chk_str(c, "min", NULL);
	const char *exact = chk_str(c, "version", NULL);
	int installed = chk_bool(c, "installed", 1);
	static const char *const programs[] = { "dpkg_query", "rpm", NULL };
	const char *cmd;
	struct pkg p;
	char buf[4096];

	memset(&p, 0, sizeof(p));
	if (chk_no_program_args(c, programs) == -1)
		return chk_error_reason(c);
	/* "package"; "name" too, where it is not a qc.install label. */
	if ((p.name = chk_str(c, "package", NULL)) == NULL)
		p.name = chk_str(c, "name", NULL);
	cmd = pick(c, &p, buf, sizeof(buf));
	if (chk_args_bad(c))
		return chk_args_error(c);
	if (p.name == NULL)
		return chk_error(c, "argument \"package\" (or \"name\") is "
		    "required");
	if (!name_valid(p.name))
		return chk_error(c, "not a package name: \"%s\"", p.name);
	if ((min != NULL && !debver_valid(min)) ||
	    (exact != NULL && !debver_valid(exact)))
		return chk_error(c, "not a version: \"%s\"",
		    min != NULL && !debver_valid(min) ? min : exact);
	if (cmd == NULL)
		return chk_error(c, "neither dpkg-query nor rpm is installed");
	if (query(c, &p, cmd) == -1)
		return chk_error_reason(c);
	chk_data_str(c, "package", p.name);
	chk_data_str(c, "manager", p.manager);
	chk_data_bool(c, "installed", p.version[0] != '\0');
	if (p.version[0] != '\0')
		chk_data_str(c, "version", p.version);
	if (p.status[0] != '\0')
		chk_data_str(c, "dpkg_status", p.status);
	if (min != NULL)
		chk_data_str(c, "min", min);
	chk_out(c, "%s: %s", p.name, p.version[0] ? p.version : "not installed");
	return judge(c, &p, installed, min, exact);
}
