/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kinds.c - the checks qc.install can run, by the name of the module
 * that runs each of them alone.
 */
#include "chk.h"

#include <string.h>

static const struct {
	const char	*kind;
	chk_fn		 fn;
} kinds[] = {
	{ "os.release", check_os_release },
	{ "sys.info", check_sys_info },
	{ "net.interfaces", check_net_interfaces },
	{ "disk.usage", check_disk_usage },
	{ "file.check", check_file },
	{ "pkg.version", check_pkg_version },
	{ "service.status", check_service_status },
};

chk_fn
chk_lookup(const char *kind)
{
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].kind, kind) == 0)
			return kinds[i].fn;
	return NULL;
}
