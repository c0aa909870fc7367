/* SPDX-License-Identifier: Apache-2.0 */
/* util.c - see util.h. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "err.h"

int
write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return MU_EIO;
		}
		p += n, len -= (size_t)n;
	}
	return MU_OK;
}

int
read_fd(int fd, uint64_t max, uint8_t **buf, size_t *len, struct stat *st)
{
	struct stat sb;
	size_t off = 0, size;
	ssize_t r = 0;

	*buf = NULL;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    (uint64_t)sb.st_size > max || (*buf = malloc((size_t)sb.st_size)) == NULL)
		return MU_EINVAL;
	size = (size_t)sb.st_size;
	while (off < size && ((r = read(fd, *buf + off, size - off)) > 0 ||
	    (r == -1 && errno == EINTR)))
		off += r > 0 ? (size_t)r : 0;
	if (off != size) {
		/* A short read is EOF: the file shrank under us. */
		if (r == 0)
			errno = EIO;
		free(*buf);
		*buf = NULL;
		return MU_EIO;
	}
	*len = size;
	if (st)
		*st = sb;
	return MU_OK;
}

int
read_file(const char *path, uint64_t max, uint8_t **buf, size_t *len, struct stat *st)
{
	int fd, rc, saved;

	*buf = NULL;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return errno == ENOENT ? MU_ENOENT : MU_EIO;
	rc = read_fd(fd, max, buf, len, st);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
read_untrusted(const char *path, uint64_t max, uid_t owner, uint8_t **buf, size_t *len,
    struct stat *st)
{
	struct stat sb;
	int fd, rc, saved;

	*buf = NULL;
	/* O_NONBLOCK: opening a FIFO nobody writes to returns at once instead
	 * of blocking us for good; O_NOFOLLOW: a symlink is refused, not
	 * followed to a file the writer could not read itself. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return errno == ENOENT ? MU_ENOENT : MU_EIO;
	if (fstat(fd, &sb) == -1) {
		rc = MU_EIO;
	} else if (!S_ISREG(sb.st_mode) || (owner != (uid_t)-1 && sb.st_uid != owner)) {
		errno = S_ISREG(sb.st_mode) ? EPERM : EINVAL;
		rc = MU_EINVAL;
	} else {
		rc = read_fd(fd, max, buf, len, st);
	}
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
memfd_sealed_copy(const char *name, const void *buf, size_t len, int *out)
{
	int fd, saved;

	if ((fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)) == -1)
		return MU_EIO;
	if (write_full(fd, buf, len) != MU_OK || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK |
	    F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return MU_EIO;
	}
	*out = fd;
	return MU_OK;
}

int
write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode)
{
	char tmp[4096];
	int fd, saved, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return MU_EIO;
	}
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd == -1)
		return MU_EIO;
	if (fchmod(fd, mode) == -1 || write_full(fd, buf, len) != MU_OK || fsync(fd) == -1 ||
	    rename(tmp, path) == -1) {
		saved = errno;
		close(fd);
		unlink(tmp);
		errno = saved;
		return MU_EIO;
	}
	close(fd);
	return MU_OK;
}

uint64_t
random_below(uint64_t max)
{
	uint64_t r = 0;

	if (max == 0 || getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		return 0;
	return r % max;
}

int
mkdir_private(const char *path, struct mu_err *err)
{
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	return MU_OK;
}

int
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

void
printable_copy(char *dst, size_t size, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i < len && i + 1 < size; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
}

#ifdef MUSTER_TEST_HOOKS
static char stop_point[64], stop_file[256];
static pthread_once_t stop_once = PTHREAD_ONCE_INIT;

static void
stop_parse(void)
{
	const char *v = getenv("MUSTER_TEST_STOP_AT"), *colon;

	if (v == NULL || (colon = strchr(v, ':')) == NULL ||
	    (size_t)(colon - v) >= sizeof(stop_point) || strlen(colon + 1) >= sizeof(stop_file))
		return;
	memcpy(stop_point, v, (size_t)(colon - v));
	stop_point[colon - v] = '\0';
	snprintf(stop_file, sizeof(stop_file), "%s", colon + 1);
}

void
test_stop_at(const char *point)
{
	pthread_once(&stop_once, stop_parse);
	if (stop_point[0] && strcmp(point, stop_point) == 0 && unlink(stop_file) == 0)
		raise(SIGSTOP);
}
#else
/* A packaged build has no crash points (MUSTER_TEST_HOOKS, CMakeLists.txt). */
void
test_stop_at(const char *point)
{
	(void)point;
}
#endif

char *
hex_alloc(const void *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = p;
	char *out;
	size_t i;

	if ((out = malloc(n * 2 + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 0xf];
	}
	out[2 * n] = '\0';
	return out;
}
