/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_facts.h - the one host whose facts the filter targets match
 * against (fuzz_filter.c, fuzz_filter_text.c).  Built on first use and
 * kept for the process's life.
 */
#ifndef MUSTER_FUZZ_FACTS_H
#define MUSTER_FUZZ_FACTS_H

#include "facts.h"
#include "fuzz.h"

static inline const struct facts *
fuzz_host_facts(void)
{
	static const char *const groups[] = { "web", "b7" };
	static struct facts f;
	static bool made;
	struct mu_err err;

	if (!made) {
		made = true;
		if (facts_set_str(&f, "os.id", "debian", &err) != MU_OK ||
		    facts_set_str(&f, "os.version_id", "12", &err) != MU_OK ||
		    facts_set_int(&f, "mem_mb", 3900, &err) != MU_OK ||
		    facts_set_bool(&f, "custom.db", true, &err) != MU_OK ||
		    facts_set_list(&f, "groups", groups, 2, &err) != MU_OK)
			fuzz_fail("cannot build the host's facts", err.msg);
	}
	return &f;
}

#endif
