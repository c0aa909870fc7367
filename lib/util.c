#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
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
read_file(const char *path, uint64_t max, uint8_t **buf, size_t *len, struct stat *st)
{
	struct stat sb;
	size_t off = 0, size;
	ssize_t r;
	int fd, saved;

	*buf = NULL;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return errno == ENOENT ? MU_ENOENT : MU_EIO;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    (uint64_t)sb.st_size > max || (*buf = malloc((size_t)sb.st_size)) == NULL) {
		close(fd);
		return MU_EINVAL;
	}
	size = (size_t)sb.st_size;
	while (off < size && ((r = read(fd, *buf + off, size - off)) > 0 ||
	    (r == -1 && errno == EINTR)))
		off += r > 0 ? (size_t)r : 0;
	saved = errno;
	close(fd);
	if (off != size) {
		free(*buf);
		*buf = NULL;
		errno = off < size ? saved : EIO;
		return MU_EIO;
	}
	*len = size;
	if (st)
		*st = sb;
	return MU_OK;
}
