/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_service_status.c - the service.status check: a systemd unit's
 * states from `systemctl show`, against the expected ActiveState and, when
 * asked, whether it is enabled.  "Enabled" is what `systemctl is-enabled` counts
 * as enabled (enabled, enabled-runtime, static, alias, indirect,
 * generated, transient).
 */
#include "chk.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define SYSTEMD_DIR	"/run/systemd/system"	/* sd_booted(3) looks here */
#define SD_TIMEOUT_MS	30000
#define SD_OUT_MAX	(64 * 1024)
#define NOT_SYSTEMD	"systemd is not running on this host"

struct unit {
	const char	*name;
	char		 load[64], active[64], sub[64], file[64];
};

static int
unit_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= 256 || !((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    (i > 0 && strchr(":_.@\\-", s[i]) != NULL)))
			return 0;
	return i > 0;
}

static int
is_enabled(const char *state)
{
	static const char *const yes[] = {
		"enabled", "enabled-runtime", "static", "alias", "indirect",
		"generated", "transient",
	};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (strcmp(state, yes[i]) == 0)
			return 1;
	return 0;
}

static void
field(const char *line, const char *key, char *dst, size_t size)
{
	size_t n = strlen(key);

	if (strncmp(line, key, n) == 0 && line[n] == '=')
		snprintf(dst, size, "%s", line + n + 1);
}

static void
parse(struct unit *u, char *out)
{
	char *line;

	while ((line = chk_line(&out)) != NULL) {
		field(line, "LoadState", u->load, sizeof(u->load));
		field(line, "ActiveState", u->active, sizeof(u->active));
		field(line, "SubState", u->sub, sizeof(u->sub));
		field(line, "UnitFileState", u->file, sizeof(u->file));
	}
}

static int
show(struct chk *c, const char *systemctl, struct unit *u)
{
	const char *argv[] = { systemctl, "show", "--no-pager", "-p",
	    "LoadState,ActiveState,SubState,UnitFileState", "--", u->name,
	    NULL };
	struct muster_cmd_result r;
	char *nl;

	if (chk_run(c, argv, SD_TIMEOUT_MS, SD_OUT_MAX, &r) == -1)
		return -1;
	if (!r.exited || r.status != 0) {
		if (r.out != NULL && (nl = strchr(r.out, '\n')) != NULL)
			*nl = '\0';
		chk_reason(c, "systemctl show %s: %s %d: %s", u->name,
		    r.exited ? "exit" : "signal", r.status,
		    r.out != NULL ? r.out : "");
		c->api->free(r.out);
		return -1;
	}
	if (r.out != NULL)
		parse(u, r.out);
	c->api->free(r.out);
	if (u->active[0] == '\0') {
		chk_reason(c, "systemctl show %s: no ActiveState", u->name);
		return -1;
	}
	return 0;
}

static int
judge(struct chk *c, const struct unit *u, const char *want_active,
    int want_enabled)
{
	int enabled = is_enabled(u->file);

	if (strcmp(u->load, "not-found") == 0 &&
	    strcmp(want_active, "inactive") != 0)
		chk_reason_add(c, "unit %s not found", u->name);
	else if (strcmp(u->active, want_active) != 0)
		chk_reason_add(c, "%s is %s (%s), expected %s", u->name,
		    u->active, u->sub, want_active);
	if (want_enabled >= 0 && enabled != want_enabled)
		chk_reason_add(c, "%s is %s, expected %s", u->name,
		    u->file[0] != '\0' ? u->file : "not enabled",
		    want_enabled ? "enabled" : "disabled");
	return c->reason[0] == '\0' ? MUSTER_PASS : MUSTER_FAIL;
}

int
check_service_status(struct chk *c)
{
	const char *dir = chk_str(c, "systemd_dir", SYSTEMD_DIR);
	static const char *const programs[] = { "systemctl", NULL };
	const char *systemctl = NULL;
	const char *want_active = chk_str(c, "active", "active");
	int want_enabled = chk_bool(c, "enabled", -1);
	struct unit u;
	struct stat st;
	char buf[4096];

	memset(&u, 0, sizeof(u));
	if (chk_no_program_args(c, programs) == -1)
		return chk_error_reason(c);
	u.name = chk_req(c, "unit");
	if (chk_args_bad(c))
		return chk_args_error(c);
	if (!unit_valid(u.name))
		return chk_error(c, "not a unit name: \"%s\"", u.name);
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
		return chk_error(c, NOT_SYSTEMD);
	if ((systemctl = chk_which(buf, sizeof(buf), "systemctl")) == NULL)
		return chk_error(c, NOT_SYSTEMD " (no systemctl)");
	if (show(c, systemctl, &u) == -1)
		return chk_error_reason(c);
	chk_data_str(c, "unit", u.name);
	chk_data_str(c, "load_state", u.load);
	chk_data_str(c, "active_state", u.active);
	chk_data_str(c, "sub_state", u.sub);
	chk_data_str(c, "unit_file_state", u.file);
	chk_data_bool(c, "enabled", is_enabled(u.file));
	chk_summary(c, "%s: %s (%s), %s", u.name, u.active, u.sub,
	    u.file[0] != '\0' ? u.file : "no unit file");
	chk_out(c, "%s", c->summary);
	return judge(c, &u, want_active, want_enabled);
}
