/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_disk_usage.c - the disk.usage check: statvfs() every real mounted
 * filesystem (or the one holding "path") and fail any fuller than max_pct.
 * Use% is df's: used / (used + available to users), rounded up.
 */
#include "chk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#define MOUNTS_MAX	(1024 * 1024)
#define MOUNTS_LINES	4096
#define MOUNTS_DEFAULT	"/proc/self/mounts"

struct mnt {
	char	*dev, *dir, *type;
};

struct usage {
	uint64_t	total, used, avail;	/* bytes */
	int		pct, ipct;		/* ipct -1: no inode counts */
};

struct limits {
	int64_t		max_pct, max_ipct;	/* max_ipct -1: not checked */
	int		checked, over;
	int		fullest;		/* use% of the fullest */
	char		fullest_dir[256];
};

/* Kernel and image filesystems: no space to run out of, or always full by
 * design (squashfs, iso9660: read-only images). */
static int
pseudo_fs(const char *type)
{
	static const char *const names[] = {
		"proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "securityfs",
		"pstore", "debugfs", "tracefs", "configfs", "fusectl", "mqueue",
		"hugetlbfs", "bpf", "autofs", "binfmt_misc", "rpc_pipefs", "nsfs",
		"efivarfs", "ramfs", "selinuxfs", "nfsd", "squashfs", "iso9660",
		"erofs", "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal",
	};
	size_t i;

	if (strncmp(type, "cgroup", 6) == 0)
		return 1;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(type, names[i]) == 0)
			return 1;
	return 0;
}

/* fstab(5) escapes: \040 for a space and so on, undone in place. */
static void
unescape(char *s)
{
	char *r = s, *w = s;

	for (; *r != '\0'; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' &&
		    r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 |
			    (r[3] - '0'));
			r += 3;
		} else
			*w++ = *r;
	}
	*w = '\0';
}

static size_t
parse_mounts(char *text, struct mnt *m, size_t max)
{
	char *p = text, *line, *save;
	size_t n = 0;

	while ((line = chk_line(&p)) != NULL && n < max) {
		m[n].dev = strtok_r(line, " \t", &save);
		m[n].dir = strtok_r(NULL, " \t", &save);
		m[n].type = strtok_r(NULL, " \t", &save);
		if (m[n].type == NULL)
			continue;
		unescape(m[n].dev);
		unescape(m[n].dir);
		n++;
	}
	return n;
}

static int
ceil_pct(uint64_t part, uint64_t whole)
{
	if (whole == 0)
		return 0;
	return (int)(((unsigned __int128)part * 100 + whole - 1) / whole);
}

static int
measure(const char *dir, struct usage *u)
{
	struct statvfs sv;
	uint64_t used;

	if (statvfs(dir, &sv) == -1)
		return -1;
	used = sv.f_blocks > sv.f_bfree ? sv.f_blocks - sv.f_bfree : 0;
	u->total = (uint64_t)sv.f_blocks * sv.f_frsize;
	u->used = used * sv.f_frsize;
	u->avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	u->pct = ceil_pct(used, used + sv.f_bavail);
	u->ipct = sv.f_files > 0 ?
	    ceil_pct(sv.f_files - sv.f_ffree, sv.f_files) : -1;
	return 0;
}

static void
report(struct chk *c, const char *esc, const char *path, const struct mnt *m,
    const struct usage *u)
{
	char k[CHK_KEY];

	chk_data_int(c, chk_key(k, sizeof(k), "filesystems/%s/total_bytes",
	    esc), (int64_t)u->total);
	chk_data_int(c, chk_key(k, sizeof(k), "filesystems/%s/used_bytes",
	    esc), (int64_t)u->used);
	chk_data_int(c, chk_key(k, sizeof(k), "filesystems/%s/avail_bytes",
	    esc), (int64_t)u->avail);
	chk_data_int(c, chk_key(k, sizeof(k), "filesystems/%s/use_pct", esc),
	    u->pct);
	if (u->ipct >= 0)
		chk_data_int(c, chk_key(k, sizeof(k),
		    "filesystems/%s/inodes_use_pct", esc), u->ipct);
	chk_out(c, "%s %s %d%% of %.1f GiB, inodes %d%%", path, m->type,
	    u->pct, (double)u->total / (1024.0 * 1024 * 1024), u->ipct);
}

static void
judge(struct chk *c, const char *path, const struct usage *u,
    struct limits *l)
{
	int over = 0;

	l->checked++;
	if (u->pct > l->max_pct) {
		chk_reason_add(c, "%s is %d%% full (max %" PRId64 "%%)", path,
		    u->pct, l->max_pct);
		over = 1;
	}
	if (l->max_ipct >= 0 && u->ipct > l->max_ipct) {
		chk_reason_add(c, "%s uses %d%% of its inodes (max %" PRId64
		    "%%)", path, u->ipct, l->max_ipct);
		over = 1;
	}
	l->over += over;
	if (u->pct > l->fullest || l->checked == 1) {
		l->fullest = u->pct;
		snprintf(l->fullest_dir, sizeof(l->fullest_dir), "%s", path);
	}
}

/* The filesystem holding path, on mount m: 0, or the errno of a failed
 * statvfs (told in data and output). */
static int
check_one(struct chk *c, const char *path, const struct mnt *m,
    struct limits *l)
{
	char esc[512], k[CHK_KEY];
	struct usage u;
	int e;

	chk_key_path(esc, sizeof(esc), path);
	chk_data_str(c, chk_key(k, sizeof(k), "filesystems/%s/mount", esc),
	    m->dir);
	chk_data_str(c, chk_key(k, sizeof(k), "filesystems/%s/device", esc),
	    m->dev);
	chk_data_str(c, chk_key(k, sizeof(k), "filesystems/%s/fstype", esc),
	    m->type);
	if (measure(path, &u) == -1) {
		e = errno;
		chk_data_str(c, chk_key(k, sizeof(k), "filesystems/%s/error",
		    esc), strerror(e));
		chk_out(c, "%s %s: %s", path, m->type, strerror(e));
		return e;
	}
	report(c, esc, path, m, &u);
	judge(c, path, &u, l);
	return 0;
}

/* Later lines hide earlier mounts on the same point. */
static int
hidden(const struct mnt *m, size_t i, size_t n)
{
	size_t j;

	for (j = i + 1; j < n; j++)
		if (strcmp(m[i].dir, m[j].dir) == 0)
			return 1;
	return 0;
}

static void
check_all(struct chk *c, const struct mnt *m, size_t n, int all,
    struct limits *l)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((all || !pseudo_fs(m[i].type)) && !hidden(m, i, n))
			check_one(c, m[i].dir, &m[i], l);
}

/* The mount holding path: the longest mount point that prefixes it. */
static struct mnt
holder(const char *path, const struct mnt *m, size_t n)
{
	struct mnt best = { "?", "?", "?" };
	size_t i, len, blen = 0;

	for (i = 0; i < n; i++) {
		len = strlen(m[i].dir);
		if (strncmp(path, m[i].dir, len) == 0 && len >= blen &&
		    (path[len] == '/' || path[len] == '\0' ||
		    (len == 1 && m[i].dir[0] == '/'))) {
			best = m[i];
			blen = len;
		}
	}
	return best;
}

static int
judge_path(struct chk *c, const char *path, const struct mnt *m,
    const struct limits *l)
{
	chk_summary(c, "%s (%s) is %d%% full, max %" PRId64 "%%", path,
	    m->type, l->fullest, l->max_pct);
	return l->over > 0 ? MUSTER_FAIL : MUSTER_PASS;
}

static int
judge_all(struct chk *c, const char *mounts, const struct limits *l)
{
	if (l->checked == 0)
		return chk_error(c, "no filesystem to check in %s", mounts);
	if (l->over > 0) {
		chk_summary(c, "%d of %d filesystems over the limit", l->over,
		    l->checked);
		return MUSTER_FAIL;
	}
	chk_summary(c, "%d filesystems under %" PRId64 "%%, fullest %s at %d%%",
	    l->checked, l->max_pct, l->fullest_dir, l->fullest);
	return MUSTER_PASS;
}

int
check_disk_usage(struct chk *c)
{
	const char *mounts = chk_str(c, "mounts", MOUNTS_DEFAULT);
	const char *path = chk_str(c, "path", NULL);
	int all = chk_bool(c, "all", 0);
	struct mnt m[MOUNTS_LINES], one;
	struct limits l;
	size_t n = 0, len;
	char *buf = NULL;
	int verdict, e;

	memset(&l, 0, sizeof(l));
	l.max_pct = chk_int(c, "max_pct", 90);
	l.max_ipct = chk_int(c, "max_inodes_pct", -1);
	if (chk_args_bad(c))
		return chk_args_error(c);
	if (l.max_pct < 0 || l.max_pct > 100 || l.max_ipct > 100)
		return chk_error(c, "max_pct and max_inodes_pct are 0 to 100");
	chk_data_int(c, "max_pct", l.max_pct);
	if (chk_read(c, mounts, MOUNTS_MAX, &buf, &len) == 0)
		n = parse_mounts(buf, m, MOUNTS_LINES);
	else if (path == NULL)
		return chk_error_reason(c);
	c->reason[0] = '\0';	/* with a path, the mount table is a bonus */
	if (path != NULL) {
		chk_data_str(c, "path", path);
		one = holder(path, m, n);
		if ((e = check_one(c, path, &one, &l)) != 0)
			verdict = chk_error(c, "%s: %s", path, strerror(e));
		else
			verdict = judge_path(c, path, &one, &l);
	} else {
		check_all(c, m, n, all, &l);
		verdict = judge_all(c, mounts, &l);
	}
	if (buf != NULL)
		c->api->free(buf);
	return verdict;
}
