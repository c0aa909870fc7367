/* SPDX-License-Identifier: Apache-2.0 */
/*
 * util.h - small utilities shared by the programs.
 *
 * Ownership: read_file() and read_fd() hand the caller a malloc'd buffer
 * to free(), memfd_sealed_copy() an fd to close(); nothing else here
 * allocates.
 */
#ifndef MUSTER_UTIL_H
#define MUSTER_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "err.h"

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
/*
 * read_file() for a path a less trusted process can write (the network
 * process's state_dir/net/...): opened O_NONBLOCK as well, so that a FIFO
 * planted there cannot block the caller, and fstat()ed before any read:
 * only a regular file of 1..max bytes owned by owner ((uid_t)-1: any) is
 * read.  Same results as read_file(); MU_EINVAL for a FIFO, a device or a
 * foreign owner.
 */
int read_untrusted(const char *path, uint64_t max, uid_t owner, uint8_t **buf,
    size_t *len, struct stat *st);
/* The same for a file the caller opened (it keeps fd). */
int read_fd(int fd, uint64_t max, uint8_t **buf, size_t *len, struct stat *st);

/*
 * A copy of buf in a memfd sealed against writing, growing, shrinking and
 * further seals, close-on-exec: how a module reaches a runner on fd 4
 * (design.md §4), so nothing can change it between the check and the load.
 * name shows in /proc/PID/fd.  MU_OK with *out owned by the caller; MU_EIO
 * with errno set.
 */
int memfd_sealed_copy(const char *name, const void *buf, size_t len, int *out);

/*
 * Replace path with buf atomically: a temporary file next to it (mode),
 * written, fsync()ed, renamed over path.  The caller fsyncs the folder if
 * the rename itself must survive a crash.  MU_OK, or MU_EIO with errno
 * set (the temporary file is removed).
 */
int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode);

/* fsync() a folder, so that a rename or a new file in it survives a
 * crash.  0, or -1 with errno set. */
int fsync_dir(const char *dir);

/* A folder only its owner may enter (0700), made if missing: MU_OK, or
 * MU_EIO with err naming the path. */
int mkdir_private(const char *path, struct mu_err *err);

/* A random number in 0..max-1 for spreading timers (jitter, splay,
 * prefetch delays): not for secrets.  0 when max is 0 or no randomness is
 * to be had without blocking. */
uint64_t random_below(uint64_t max);

/* Text from a less trusted process (the network process's reasons) made
 * safe to log and show: printable ASCII kept, every other byte '?',
 * truncated to size - 1, always NUL-terminated (size > 0). */
void printable_copy(char *dst, size_t size, const char *src, size_t len);
/* p as lowercase hex, in a string the caller frees; NULL: out of memory. */
char *hex_alloc(const void *p, size_t n);

/*
 * Crash-point tests (tests/system/test_intake_kill.py): with
 * MUSTER_TEST_STOP_AT=POINT:FILE in the environment, the first process to
 * reach POINT that can remove FILE stops itself (SIGSTOP), so a test can
 * kill it, or another process, at exactly that step.  Without the
 * variable, or once FILE is gone, nothing happens.  Any thread.  Only
 * with the test hooks compiled in (MUSTER_TEST_HOOKS): never in packages.
 */
void test_stop_at(const char *point);

#endif
