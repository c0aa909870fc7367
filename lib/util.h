/*
 * util.h - small utilities shared by the programs.
 *
 * Ownership: read_file() hands the caller a malloc'd buffer to free();
 * nothing else here allocates.
 */
#ifndef MUSTER_UTIL_H
#define MUSTER_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Write all len bytes to a blocking fd, retrying on EINTR and short
 * writes.  MU_OK, or MU_EIO with errno set by the failing write(). */
int write_full(int fd, const void *buf, size_t len);

/*
 * Read a whole regular file of 1..max bytes, never through a symlink.
 * st (optional) gets the fstat() of the very file read, for owner and mode
 * checks without a race.  MU_OK; MU_ENOENT / MU_EIO with errno set (ELOOP
 * for a symlink); MU_EINVAL when it is not a regular file or its size is
 * out of range.
 */
int read_file(const char *path, uint64_t max, uint8_t **buf, size_t *len,
    struct stat *st);

#endif
