#include "util.h"

#include <errno.h>
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
