/*
 * modsrc.c - where a job's module comes from.  For now: the local folder
 * [agent] modules_dir, NAME.so, which must be a regular file (no symlink)
 * owned by root or by us and not writable by group or others.  Signed
 * fetching over the broker plugs in here later; callers only see a sealed
 * memfd and its sha256.
 */
#include "agent.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int
read_module(const char *path, uint8_t **buf, size_t *len, struct mu_err *err)
{
	struct stat st;
	ssize_t r;
	size_t off = 0;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return mu_errf(err, errno == ENOENT ? MU_ENOENT : MU_EIO, "module %s: %s",
		    path, errno == ELOOP ? "is a symlink" : strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mu_errf(err, MU_EINVAL, "module %s is not a regular file", path);
	}
	/* Anyone who can write the file could run code as the agent. */
	if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022)) {
		close(fd);
		return mu_errf(err, MU_ETRUST, "module %s is writable by others or has a "
		    "foreign owner", path);
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > WIRE_MAX_BIN ||
	    (*buf = malloc((size_t)st.st_size)) == NULL) {
		close(fd);
		return mu_errf(err, MU_EINVAL, "module %s has a bad size", path);
	}
	while (off < (size_t)st.st_size &&
	    ((r = read(fd, *buf + off, (size_t)st.st_size - off)) > 0 ||
	    (r == -1 && errno == EINTR)))
		off += r > 0 ? (size_t)r : 0;
	close(fd);
	if (off != (size_t)st.st_size) {
		free(*buf);
		return mu_errf(err, MU_EIO, "module %s: short read", path);
	}
	*len = off;
	return MU_OK;
}

/* Copy into an anonymous file and seal it: the runner loads exactly the
 * bytes we hashed, whatever happens to modules_dir meanwhile. */
static int
seal_copy(const uint8_t *buf, size_t len, int *out, struct mu_err *err)
{
	int fd;

	fd = memfd_create("muster-module", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd == -1)
		return mu_errf(err, MU_EIO, "memfd_create: %s", strerror(errno));
	if (write_full(fd, buf, len) != MU_OK) {
		close(fd);
		return mu_errf(err, MU_EIO, "memfd write: %s", strerror(errno));
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
	    F_SEAL_SEAL) == -1) {
		close(fd);
		return mu_errf(err, MU_EIO, "sealing the module: %s", strerror(errno));
	}
	*out = fd;
	return MU_OK;
}

int
modsrc_open(struct agent *a, const struct job *j, struct module_file *out,
    struct mu_err *err)
{
	char path[CONF_PATH_MAX + NAME_MAX_LEN + 8];
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	out->memfd = -1;
	snprintf(path, sizeof(path), "%s/%s.so", a->cfg.modules_dir, j->module);
	if ((rc = read_module(path, &buf, &len, err)) != MU_OK) {
		if (rc == MU_ENOENT)
			mu_errf(err, rc, "module %s is not installed on this host", j->module);
		return rc;
	}
	sha256_hex(buf, len, out->sha256);
	out->size = len;
	if (j->module_sha256[0] && strcmp(j->module_sha256, out->sha256) != 0)
		rc = mu_errf(err, MU_ETRUST, "module %s has sha256 %.12s..., the job pins "
		    "%.12s...", j->module, out->sha256, j->module_sha256);
	else
		rc = seal_copy(buf, len, &out->memfd, err);
	free(buf);
	return rc;
}
