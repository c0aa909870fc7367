/*
 * util.h - small utilities shared by the programs.  Nothing here allocates.
 */
#ifndef MUSTER_UTIL_H
#define MUSTER_UTIL_H

#include <stddef.h>

/* Write all len bytes to a blocking fd, retrying on EINTR and short
 * writes.  MU_OK, or MU_EIO with errno set by the failing write(). */
int write_full(int fd, const void *buf, size_t len);

#endif
