/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_file.c - the file.check check: facts about one path (type, mode,
 * owner, size, sha256) and any of the optional expectations on them.
 * Each expectation asked for is reported as data "ok/<name>".
 *
 * "exists" follows symlinks like test -e, and so does everything else,
 * unless type "link" is asked for: then the link itself is looked at.
 */
#include "chk.h"
#include "sha256.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_MAX_DEFAULT	(4 * 1024 * 1024)

struct fc {
	const char	*path;
	struct stat	 st;
	int		 asked, failed, undecided;
};

static const char *
type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG:
		return "file";
	case S_IFDIR:
		return "dir";
	case S_IFLNK:
		return "link";
	case S_IFIFO:
		return "fifo";
	case S_IFSOCK:
		return "socket";
	case S_IFBLK:
		return "block";
	case S_IFCHR:
		return "char";
	default:
		return "unknown";
	}
}

/* One expectation's outcome: data, count, and the reason if it failed. */
static void
verdict(struct chk *c, struct fc *f, const char *name, int ok,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
verdict(struct chk *c, struct fc *f, const char *name, int ok,
    const char *fmt, ...)
{
	char k[CHK_KEY], why[CHK_LINE];
	va_list ap;

	f->asked++;
	chk_data_bool(c, chk_key(k, sizeof(k), "ok/%s", name), ok);
	if (ok)
		return;
	f->failed++;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	chk_reason_add(c, "%s", why);
	chk_out(c, "FAIL %s: %s", name, why);
}

/* ---- facts ------------------------------------------------------------ */

static void
user_name(uid_t uid, char *buf, size_t size)
{
	struct passwd pw, *res = NULL;
	char tmp[16384];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res != NULL)
		snprintf(buf, size, "%s", pw.pw_name);
	else
		snprintf(buf, size, "%u", (unsigned int)uid);
}

static void
group_name(gid_t gid, char *buf, size_t size)
{
	struct group gr, *res = NULL;
	char tmp[16384];

	if (getgrgid_r(gid, &gr, tmp, sizeof(tmp), &res) == 0 && res != NULL)
		snprintf(buf, size, "%s", gr.gr_name);
	else
		snprintf(buf, size, "%u", (unsigned int)gid);
}

static void
report_facts(struct chk *c, const struct fc *f)
{
	char owner[256], group[256], mode[8], target[4096];
	struct stat lst;
	ssize_t n;

	user_name(f->st.st_uid, owner, sizeof(owner));
	group_name(f->st.st_gid, group, sizeof(group));
	snprintf(mode, sizeof(mode), "%04o", (unsigned int)(f->st.st_mode & 07777));
	chk_data_str(c, "type", type_name(f->st.st_mode));
	chk_data_str(c, "mode", mode);
	chk_data_int(c, "uid", f->st.st_uid);
	chk_data_str(c, "owner", owner);
	chk_data_int(c, "gid", f->st.st_gid);
	chk_data_str(c, "group", group);
	chk_data_int(c, "size", f->st.st_size);
	chk_data_int(c, "mtime", f->st.st_mtime);
	if (lstat(f->path, &lst) == 0 && S_ISLNK(lst.st_mode) &&
	    (n = readlink(f->path, target, sizeof(target) - 1)) >= 0) {
		target[n] = '\0';
		chk_data_str(c, "link_target", target);
	}
	chk_out(c, "%s: %s %s %s:%s %jd bytes", f->path,
	    type_name(f->st.st_mode), mode, owner, group,
	    (intmax_t)f->st.st_size);
}

/* ---- expectations ----------------------------------------------------- */

static void
expect_type(struct chk *c, struct fc *f, const char *want)
{
	const char *have = type_name(f->st.st_mode);

	verdict(c, f, "type", strcmp(have, want) == 0, "type is %s, expected %s",
	    have, want);
}

static void
expect_mode(struct chk *c, struct fc *f, unsigned int want)
{
	unsigned int have = f->st.st_mode & 07777;

	verdict(c, f, "mode", have == want, "mode is %04o, expected %04o", have,
	    want);
}

/* want: a name or a number.  An unknown name matches no file. */
static void
expect_id(struct chk *c, struct fc *f, const char *what, const char *want,
    int is_group)
{
	char tmp[16384], have[256];
	struct passwd pw, *pr = NULL;
	struct group gr, *gp = NULL;
	int64_t id = -1;
	unsigned int actual = is_group ? f->st.st_gid : f->st.st_uid;

	if (chk_parse_i64(want, &id) != 0) {
		if (!is_group && getpwnam_r(want, &pw, tmp, sizeof(tmp), &pr) == 0 &&
		    pr != NULL)
			id = pw.pw_uid;
		if (is_group && getgrnam_r(want, &gr, tmp, sizeof(tmp), &gp) == 0 &&
		    gp != NULL)
			id = gr.gr_gid;
	}
	if (is_group)
		group_name(actual, have, sizeof(have));
	else
		user_name(actual, have, sizeof(have));
	verdict(c, f, what, id >= 0 && (uint64_t)id == actual,
	    "%s is %s, expected %s%s", what, have, want,
	    id < 0 ? " (unknown here)" : "");
}

static void
expect_size(struct chk *c, struct fc *f, int64_t min, int64_t max)
{
	int64_t size = f->st.st_size;

	if (min >= 0)
		verdict(c, f, "min_size", size >= min,
		    "size is %" PRId64 ", expected at least %" PRId64, size, min);
	if (max >= 0)
		verdict(c, f, "max_size", size <= max,
		    "size is %" PRId64 ", expected at most %" PRId64, size, max);
}

/* Hash the file streaming (it may be large): 0, or -1 with errno. */
static int
hash_file(const char *path, char hex[SHA256_HEX])
{
	uint8_t md[SHA256_LEN], buf[65536];
	struct sha256 s;
	struct stat st;
	ssize_t n;
	int fd, e;

	/* O_NONBLOCK: a fifo put in our way must not hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	sha256_init(&s);
	while ((n = read(fd, buf, sizeof(buf))) > 0 ||
	    (n == -1 && errno == EINTR))
		if (n > 0)
			sha256_update(&s, buf, (size_t)n);
	e = errno;
	close(fd);
	if (n == -1) {
		errno = e;
		return -1;
	}
	sha256_final(&s, md);
	sha256_hex(md, hex);
	return 0;
}

static void
expect_sha256(struct chk *c, struct fc *f, const char *want)
{
	char hex[SHA256_HEX];

	if (!S_ISREG(f->st.st_mode)) {
		verdict(c, f, "sha256", 0, "sha256: not a regular file");
		return;
	}
	if (hash_file(f->path, hex) == -1) {
		f->undecided++;
		chk_reason_add(c, "sha256: %s", strerror(errno));
		return;
	}
	chk_data_str(c, "sha256", hex);
	verdict(c, f, "sha256", strcasecmp(hex, want) == 0,
	    "sha256 is %s, expected %s", hex, want);
}

/* contains / not_contains: a fixed string within the first max bytes. */
static void
expect_text(struct chk *c, struct fc *f, const char *needle, int want,
    size_t max)
{
	const char *name = want ? "contains" : "not_contains";
	char *buf = NULL;
	size_t len = 0;
	int found, big, rc;

	if (!S_ISREG(f->st.st_mode)) {
		verdict(c, f, name, 0, "%s: not a regular file", name);
		return;
	}
	rc = c->api->read_file(c->ctx, f->path, max, &buf, &len);
	big = rc == -1 && errno == EFBIG;
	if (rc == -1 && !big) {
		f->undecided++;
		chk_reason_add(c, "%s: %s", name, strerror(errno));
		c->api->free(buf);
		return;
	}
	found = buf != NULL && memmem(buf, len, needle, strlen(needle)) != NULL;
	c->api->free(buf);
	if (big && !found) {
		f->undecided++;
		chk_reason_add(c, "%s: undecided, the file is larger than "
		    "max_read (%zu bytes)", name, max);
		return;
	}
	verdict(c, f, name, found == want, "%s \"%s\"", want ?
	    "does not contain" : "contains", needle);
}

/* ---- the check -------------------------------------------------------- */

struct fc_args {
	const char	*path, *type, *mode, *owner, *group, *sha256;
	const char	*contains, *not_contains;
	int		 exists;
	int64_t		 min_size, max_size, max_read;
	unsigned int	 mode_bits;
};

static int
sha256_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		    (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return i == 2 * SHA256_LEN;
}

static int
read_args(struct chk *c, struct fc_args *a)
{
	static const char *const types[] = {
		"file", "dir", "link", "fifo", "socket", "block", "char",
	};
	char *end;
	size_t i;

	memset(a, 0, sizeof(*a));
	a->path = chk_req(c, "path");
	a->exists = chk_bool(c, "exists", 1);
	a->type = chk_str(c, "type", NULL);
	a->mode = chk_str(c, "mode", NULL);
	a->owner = chk_str(c, "owner", NULL);
	a->group = chk_str(c, "group", NULL);
	a->min_size = chk_int(c, "min_size", -1);
	a->max_size = chk_int(c, "max_size", -1);
	a->sha256 = chk_str(c, "sha256", NULL);
	a->contains = chk_str(c, "contains", NULL);
	a->not_contains = chk_str(c, "not_contains", NULL);
	a->max_read = chk_int(c, "max_read", READ_MAX_DEFAULT);
	if (chk_args_bad(c))
		return -1;
	if (a->type != NULL) {
		for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcmp(a->type, types[i]) == 0)
				break;
		if (i == sizeof(types) / sizeof(types[0])) {
			chk_reason(c, "type must be one of file, dir, link, fifo, "
			    "socket, block, char");
			return -1;
		}
	}
	/* An integer 644 (key=value guessed a number) reads as "644". */
	if (a->mode != NULL) {
		errno = 0;
		a->mode_bits = (unsigned int)strtoul(a->mode, &end, 8);
		if (*a->mode == '\0' || *end != '\0' || errno != 0 ||
		    a->mode_bits > 07777) {
			chk_reason(c, "mode must be octal, like \"0644\"");
			return -1;
		}
	}
	if (a->sha256 != NULL && !sha256_valid(a->sha256)) {
		chk_reason(c, "sha256 must be 64 hex digits");
		return -1;
	}
	if (a->max_read <= 0) {
		chk_reason(c, "max_read must be positive");
		return -1;
	}
	return 0;
}

static void
expect_all(struct chk *c, struct fc *f, const struct fc_args *a)
{
	if (a->type != NULL)
		expect_type(c, f, a->type);
	if (a->mode != NULL)
		expect_mode(c, f, a->mode_bits);
	if (a->owner != NULL)
		expect_id(c, f, "owner", a->owner, 0);
	if (a->group != NULL)
		expect_id(c, f, "group", a->group, 1);
	expect_size(c, f, a->min_size, a->max_size);
	if (a->sha256 != NULL)
		expect_sha256(c, f, a->sha256);
	if (a->contains != NULL)
		expect_text(c, f, a->contains, 1, (size_t)a->max_read);
	if (a->not_contains != NULL)
		expect_text(c, f, a->not_contains, 0, (size_t)a->max_read);
}

/* Absent: a pass if it should be, a fail if not.  Nothing else to see. */
static int
absent(struct chk *c, struct fc *f, int want_exists)
{
	chk_data_bool(c, "exists", 0);
	verdict(c, f, "exists", !want_exists, "%s does not exist", f->path);
	chk_summary(c, "%s does not exist", f->path);
	return want_exists ? MUSTER_FAIL : MUSTER_PASS;
}

int
check_file(struct chk *c)
{
	struct fc_args a;
	struct fc f;
	int rc;

	if (read_args(c, &a) == -1)
		return chk_args_error(c);
	memset(&f, 0, sizeof(f));
	f.path = a.path;
	chk_data_str(c, "path", a.path);
	if (a.type != NULL && strcmp(a.type, "link") == 0)
		rc = lstat(a.path, &f.st);
	else
		rc = stat(a.path, &f.st);
	if (rc == -1 && (errno == ENOENT || errno == ENOTDIR))
		return absent(c, &f, a.exists);
	if (rc == -1)
		return chk_error(c, "%s: %s", a.path, strerror(errno));
	chk_data_bool(c, "exists", 1);
	report_facts(c, &f);
	verdict(c, &f, "exists", a.exists, "%s exists", a.path);
	if (a.exists)
		expect_all(c, &f, &a);
	if (f.undecided > 0) {
		chk_summary(c, "%s: %d checks could not be done", a.path,
		    f.undecided);
		return MUSTER_ERROR;
	}
	if (f.failed > 0) {
		chk_summary(c, "%s: %d of %d checks failed", a.path, f.failed,
		    f.asked);
		return MUSTER_FAIL;
	}
	chk_summary(c, "%s: %s %04o, %d checks passed", a.path,
	    type_name(f.st.st_mode), (unsigned int)(f.st.st_mode & 07777),
	    f.asked);
	return MUSTER_PASS;
}
