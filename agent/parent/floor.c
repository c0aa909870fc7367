/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor.c - the parent's floors (design.md §8, issue 22): the newest
 * published_at the parent itself accepted, per module name and for the
 * agent's release, in state_dir/floors/, which only the parent writes.
 *
 * The network process keeps floors of its own (net/modcache/floor,
 * net/release/floor) to decide what to fetch and offer; those are its
 * files and prove nothing to the parent.  These are the ones the parent
 * enforces before it spawns a runner or stages a release, so a network
 * process that lies can offer nothing older than what this host already
 * ran or installed.
 */
#include "agent.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FLOOR_FILE_MAX	32

static int
floor_path(struct agent *a, const char *kind, const char *name, char *buf, size_t len,
    char *dir, size_t dlen)
{
	int n;

	/* Names are checked where they come in (job and manifest decoding);
	 * one more guard here, since this builds a path in the parent's
	 * state. */
	if (name && (name[0] == '\0' || name[0] == '.' || strchr(name, '/')))
		return MU_EINVAL;
	snprintf(dir, dlen, "%s/floors/%s", a->cfg.state_dir, kind);
	n = name ? snprintf(buf, len, "%s/%s", dir, name) :
	    snprintf(buf, len, "%s/floors/%s", a->cfg.state_dir, kind);
	return n < 0 || (size_t)n >= len ? MU_EINVAL : MU_OK;
}

uint64_t
parent_floor(struct agent *a, const char *kind, const char *name)
{
	char path[CONF_PATH_MAX + 128], dir[CONF_PATH_MAX + 64], text[FLOOR_FILE_MAX + 1];
	unsigned long long v = 0;
	uint8_t *buf;
	size_t len;

	if (floor_path(a, kind, name, path, sizeof(path), dir, sizeof(dir)) != MU_OK ||
	    read_file(path, FLOOR_FILE_MAX, &buf, &len, NULL) != MU_OK)
		return 0;
	memcpy(text, buf, len);
	text[len] = '\0';
	free(buf);
	if (sscanf(text, "%llu", &v) != 1)
		return 0;
	return (uint64_t)v;
}

int
parent_floor_raise(struct agent *a, const char *kind, const char *name,
    uint64_t published_at, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 128], dir[CONF_PATH_MAX + 64], top[CONF_PATH_MAX + 16];
	char text[FLOOR_FILE_MAX];
	int rc;

	if (published_at <= parent_floor(a, kind, name))
		return MU_OK;
	if (floor_path(a, kind, name, path, sizeof(path), dir, sizeof(dir)) != MU_OK)
		return mu_errf(err, MU_EINVAL, "floor for %s: bad name", name ? name : kind);
	snprintf(top, sizeof(top), "%s/floors", a->cfg.state_dir);
	if ((rc = mkdir_private(top, err)) != MU_OK || (name && (rc = mkdir_private(dir, err)) != MU_OK))
		return rc;
	snprintf(text, sizeof(text), "%" PRIu64 "\n", published_at);
	if (write_file_atomic(path, text, strlen(text), 0600) != MU_OK)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	/* The rename must outlive a crash, or a restart forgets the floor. */
	fsync_dir(name ? dir : top);
	return MU_OK;
}
