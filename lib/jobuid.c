/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jobuid.c - see jobuid.h.
 */
#include "jobuid.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Above this a uid could be read as negative by some tool, and the
 * kernel's (uid_t)-1 is "no change". */
#define JOBUID_LIMIT	0x7fffffffU

static int
parse_uid(const char *s, const char **end, unsigned long *out)
{
	char *e;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoul(s, &e, 10);
	if (errno != 0 || *out > JOBUID_LIMIT)
		return -1;
	*end = e;
	return 0;
}

int
jobuid_parse(const char *v, uid_t *first, unsigned *count, struct mu_err *err)
{
	unsigned long lo, hi;
	const char *p;

	if (strcmp(v, "none") == 0) {
		*first = 0, *count = 0;
		return MU_OK;
	}
	if (parse_uid(v, &p, &lo) != 0 || *p != '-' || parse_uid(p + 1, &p, &hi) != 0 ||
	    *p != '\0')
		return mu_errf(err, MU_EINVAL, "bad uid range '%s' (want FIRST-LAST or none)",
		    v);
	if (lo == 0 || hi < lo)
		return mu_errf(err, MU_EINVAL, "bad uid range '%s' (FIRST must be above 0 "
		    "and not above LAST)", v);
	if (hi - lo + 1 > JOBUID_MAX)
		return mu_errf(err, MU_EINVAL, "uid range '%s' is wider than %u", v,
		    JOBUID_MAX);
	*first = (uid_t)lo;
	*count = (unsigned)(hi - lo + 1);
	return MU_OK;
}

void
jobuid_init(struct jobuids *j, uid_t first, unsigned count)
{
	memset(j, 0, sizeof(*j));
	j->first = first;
	j->count = count;
}

void
jobuid_name(uid_t uid, char *buf, size_t len)
{
	snprintf(buf, len, JOBUID_NAME_PREFIX "%u", (unsigned)uid);
}

int
jobuid_check(uid_t first, unsigned count, int max_jobs, struct mu_err *err)
{
	unsigned i;

	if (count == 0)
		return MU_OK;
	if (max_jobs > 0 && count < (unsigned)max_jobs)
		return mu_errf(err, MU_EINVAL, "[limits] job_uids %u-%u holds %u uids, fewer "
		    "than [agent] max_jobs %d", (unsigned)first, (unsigned)(first + count - 1),
		    count, max_jobs);
	for (i = 0; i < count; i++) {
		uid_t u = first + i;
		char own[JOBUID_NAME_MAX];
		struct passwd *pw;
		struct group *gr;

		/* Through NSS (not only /etc/passwd): a user from LDAP with
		 * that uid would share its processes with a job as well.  Our
		 * own record of that uid (a start before this one wrote it,
		 * /run/userdb keeps it) is the job's, not someone else's. */
		jobuid_name(u, own, sizeof(own));
		if ((pw = getpwuid(u)) != NULL && strcmp(pw->pw_name, own) != 0)
			return mu_errf(err, MU_EINVAL, "[limits] job_uids %u-%u: uid %u is "
			    "user '%.64s'; pick a range no user or group has (or "
			    "job_uids = none)", (unsigned)first,
			    (unsigned)(first + count - 1), (unsigned)u, pw->pw_name);
		if ((gr = getgrgid((gid_t)u)) != NULL && strcmp(gr->gr_name, own) != 0)
			return mu_errf(err, MU_EINVAL, "[limits] job_uids %u-%u: gid %u is "
			    "group '%.64s'; pick a range no user or group has (or "
			    "job_uids = none)", (unsigned)first,
			    (unsigned)(first + count - 1), (unsigned)u, gr->gr_name);
	}
	return MU_OK;
}

int
jobuid_take(struct jobuids *j, uid_t *uid, struct mu_err *err)
{
	unsigned i, k;

	for (i = 0; i < j->count; i++) {
		k = (j->next + i) % j->count;
		if (j->busy[k / 8] & (1u << (k % 8)))
			continue;
		j->busy[k / 8] |= (uint8_t)(1u << (k % 8));
		j->next = (k + 1) % j->count;
		j->used++;
		*uid = j->first + k;
		return MU_OK;
	}
	return mu_errf(err, MU_ENOENT, "every uid of [limits] job_uids is held by a job");
}

void
jobuid_give(struct jobuids *j, uid_t uid)
{
	unsigned k;

	if (j->count == 0 || uid < j->first || uid - j->first >= j->count)
		return;
	k = uid - j->first;
	if (j->busy[k / 8] & (1u << (k % 8))) {
		j->busy[k / 8] &= (uint8_t)~(1u << (k % 8));
		j->used--;
	}
}
