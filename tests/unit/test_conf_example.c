/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent/agent.conf.example, installed as the conffile /etc/muster/agent.conf,
 * says that a value it shows is the default unless its line is marked
 * "example" (issue 19: it called uri, ca, cert, key and groups defaults).
 * Each commented "# key = value" line not so marked is uncommented alone,
 * under its section, and loaded: the result must equal the defaults.  Each
 * line marked "example" must not: else the mark hides a default.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

/* Load "[section]\nline\n" over the defaults; 0 when it parses. */
static int
load_one(const char *section, const char *line, struct agent_config *c)
{
	char path[] = "/tmp/test_conf_example.XXXXXX";
	struct mu_err err;
	FILE *f;
	int fd, rc;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f, "[%s]\n%s\n", section, line);
	assert_int_equal(fclose(f), 0);
	config_agent_defaults(c);
	memset(&err, 0, sizeof(err));
	rc = config_agent_load(c, path, &err);
	if (rc != MU_OK)
		print_error("%s: %s\n", line, err.msg);
	unlink(path);
	return rc;
}

static void
test_shown_values_are_the_defaults(void **state)
{
	const char *src = getenv("MUSTER_SOURCE_DIR");
	static struct agent_config defaults, got;	/* large: not on the stack */
	char path[1024], line[1024], section[64] = "";
	int defaults_seen = 0, examples_seen = 0, lineno = 0;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/agent/agent.conf.example", src ? src : ".");
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("%s: cannot open (set MUSTER_SOURCE_DIR)", path);
	config_agent_defaults(&defaults);
	while (fgets(line, sizeof(line), f) != NULL) {
		char key[64], *setting = line + 2;
		bool example;
		int n = 0;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "[%63[a-z]]", section) == 1)
			continue;
		/* "# key = value   ; comment": a setting shown commented out */
		if (strncmp(line, "# ", 2) != 0 ||
		    sscanf(setting, "%63[a-z_] =%n", key, &n) != 1 || n == 0)
			continue;
		example = strstr(line, "; example") != NULL;
		if (load_one(section, setting, &got) != MU_OK)
			fail_msg("line %d does not parse: %s", lineno, setting);
		if (example && memcmp(&got, &defaults, sizeof(got)) == 0)
			fail_msg("line %d is marked example but shows the default: %s",
			    lineno, setting);
		if (!example && memcmp(&got, &defaults, sizeof(got)) != 0)
			fail_msg("line %d shows a value that is not the default and is not "
			    "marked example: %s", lineno, setting);
		example ? examples_seen++ : defaults_seen++;
	}
	fclose(f);
	/* The file is read at all: its sections, defaults and examples. */
	assert_true(defaults_seen >= 30);
	assert_true(examples_seen >= 6);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shown_values_are_the_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
