/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modopen.c - the parent opens the module a run gets (design.md §3, §8):
 * the network process only names a build (PRIV_MODULE); the parent checks
 * it again here (signature, name, ABI, pin, sha256, its own floor) and
 * hands the runner a sealed memfd, a copy no one can change under it.
 *
 * Two sources, as the network process chose:
 *  - the network process's cache, state_dir/net/modcache: read as data
 *    owned by [agent] user (read_untrusted()), believed only as far as
 *    the signature and the hash prove it;
 *  - the local folder [agent] modules_dir, NAME.so, trusted by owner and
 *    mode (root or us, not writable by group or others); its sealed
 *    copies are kept in a->par.local while the file is unchanged.
 *
 * Ownership: a->par.local owns its memfds; the memfd handed out in struct
 * module_file belongs to the caller.
 */
#include "agent.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A sealed copy: no runner, nor anyone else, can change it after the
 * hash. */
static int
modopen_seal(const uint8_t *buf, size_t len, struct module_file *out, struct mu_err *err)
{
	sha256_hex(buf, len, out->sha256);
	out->size = len;
	if (memfd_sealed_copy("muster-module", buf, len, &out->memfd) != MU_OK)
		return mu_errf(err, MU_EIO, "a sealed memfd for the module: %s",
		    strerror(errno));
	return MU_OK;
}

/* ---- the local folder ---------------------------------------------------- */

/* Anyone who can write the file could run code as the agent. */
static int
read_local(const char *path, uint64_t max, uint8_t **buf, size_t *len, struct stat *stp,
    struct mu_err *err)
{
	struct stat st;
	int rc;

	rc = read_file(path, max, buf, len, &st);
	if (rc == MU_ENOENT)
		return mu_errf(err, rc, "module %s is not installed", path);
	if (rc == MU_EIO)
		return mu_errf(err, rc, "module %s: %s", path,
		    errno == ELOOP ? "is a symlink" : strerror(errno));
	if (rc)
		return mu_errf(err, rc, "module %s is not a regular file of a sane size", path);
	if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022)) {
		free(*buf);
		return mu_errf(err, MU_ETRUST, "module %s is writable by others or has a "
		    "foreign owner", path);
	}
	*stp = st;
	return MU_OK;
}

/* ---- sealed copies of local files (agent.h, struct modlocal) ---------- */

static bool
same_file(const struct stat *x, const struct stat *y)
{
	return x->st_dev == y->st_dev && x->st_ino == y->st_ino &&
	    x->st_size == y->st_size && x->st_uid == y->st_uid &&
	    x->st_mode == y->st_mode &&
	    x->st_mtim.tv_sec == y->st_mtim.tv_sec &&
	    x->st_mtim.tv_nsec == y->st_mtim.tv_nsec &&
	    x->st_ctim.tv_sec == y->st_ctim.tv_sec &&
	    x->st_ctim.tv_nsec == y->st_ctim.tv_nsec;
}

/* The copy of modules_dir/NAME.so as the file is now (lstat: a symlink is
 * another inode, so never a hit), or NULL. */
static struct modlocal *
local_hit(struct agent *a, const char *name, const char *path)
{
	struct stat st;
	size_t i;

	if (lstat(path, &st) == -1)
		return NULL;
	for (i = 0; i < LOCAL_SLOTS; i++) {
		struct modlocal *e = &a->par.local[i];

		if (e->name[0] && strcmp(e->name, name) == 0 && same_file(&e->st, &st)) {
			e->used_at = now_mono_ms();
			return e;
		}
	}
	return NULL;
}

static void
local_drop(struct modlocal *e)
{
	if (e->name[0])
		close(e->memfd);
	memset(e, 0, sizeof(*e));
}

/* Small enough, and older than a second (agent.h). */
static bool
local_keepable(const struct stat *st)
{
	return (uint64_t)st->st_size <= LOCAL_MAX_SIZE &&
	    (uint64_t)st->st_ctim.tv_sec + 1 < now_wall_ms() / 1000;
}

/* Keep a copy of what was just read and sealed (m), if it may be trusted
 * later (agent.h): in NAME's slot, a free one, or the least used. */
static void
local_remember(struct agent *a, const char *name, const struct stat *st,
    const struct module_file *m)
{
	struct modlocal *e = NULL;
	int fd;
	size_t i;

	if (!local_keepable(st))
		return;
	for (i = 0; i < LOCAL_SLOTS && e == NULL; i++)
		if (strcmp(a->par.local[i].name, name) == 0)
			e = &a->par.local[i];
	for (i = 0; i < LOCAL_SLOTS && e == NULL; i++)
		if (a->par.local[i].name[0] == '\0')
			e = &a->par.local[i];
	for (i = 0; e == NULL && i < LOCAL_SLOTS; i++)
		if (i == 0 || a->par.local[i].used_at < e->used_at)
			e = &a->par.local[i];
	if ((fd = fcntl(m->memfd, F_DUPFD_CLOEXEC, 0)) == -1)
		return;
	local_drop(e);
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->sha256, sizeof(e->sha256), "%s", m->sha256);
	e->st = *st;
	e->memfd = fd;
	e->used_at = now_mono_ms();
}

void
modopen_local_expire(struct agent *a)
{
	uint64_t now = now_mono_ms();
	size_t i;

	for (i = 0; i < LOCAL_SLOTS; i++)
		if (a->par.local[i].name[0] && now - a->par.local[i].used_at >= LOCAL_IDLE_MS)
			local_drop(&a->par.local[i]);
}

/* Read, check and hash modules_dir/NAME.so; seal it when asked to or when
 * the copy can be kept (then it is remembered), else out->memfd is -1.
 * MU_ENOENT when there is no such file. */
static int
local_read(struct agent *a, const char *name, const char *path, bool seal,
    struct module_file *out, struct mu_err *err)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	if ((rc = read_local(path, a->cfg.module_max, &buf, &len, &st, err)) != MU_OK)
		return rc;
	out->memfd = -1;
	if (seal || local_keepable(&st)) {
		if ((rc = modopen_seal(buf, len, out, err)) == MU_OK)
			local_remember(a, name, &st, out);
	} else {
		sha256_hex(buf, len, out->sha256);
		out->size = len;
	}
	free(buf);
	return rc;
}

/* MU_ENOENT when modules_dir has no such file. */
static int
local_open(struct agent *a, const char *name, struct module_file *out, struct mu_err *err)
{
	char path[CONF_PATH_MAX + NAME_MAX_LEN + 8];
	struct modlocal *e;

	snprintf(path, sizeof(path), "%s/%s.so", a->cfg.modules_dir, name);
	if ((e = local_hit(a, name, path)) == NULL)
		return local_read(a, name, path, true, out, err);
	if ((out->memfd = fcntl(e->memfd, F_DUPFD_CLOEXEC, 0)) == -1)
		return mu_errf(err, MU_EIO, "module %s: dup: %s", name, strerror(errno));
	snprintf(out->sha256, sizeof(out->sha256), "%s", e->sha256);
	out->size = (uint64_t)e->st.st_size;
	return MU_OK;
}

/* ---- a run's module ------------------------------------------------------ */

int
modopen_local_sha(struct agent *a, const char *name, char sha[SHA256_HEX_LEN + 1],
    struct mu_err *err)
{
	char path[CONF_PATH_MAX + NAME_MAX_LEN + 8];
	struct module_file m;
	struct modlocal *e;
	int rc;

	/* Read (and sealed) once while the file stays as it is: the copy
	 * serves the run too, local_open(). */
	snprintf(path, sizeof(path), "%s/%s.so", a->cfg.modules_dir, name);
	if ((e = local_hit(a, name, path)) != NULL) {
		snprintf(sha, SHA256_HEX_LEN + 1, "%s", e->sha256);
		return MU_OK;
	}
	if ((rc = local_read(a, name, path, false, &m, err)) != MU_OK)
		return rc;
	snprintf(sha, SHA256_HEX_LEN + 1, "%s", m.sha256);
	if (m.memfd != -1)
		close(m.memfd);		/* local_remember() has its own */
	return MU_OK;
}

/* state_dir/floors/withdrawn/SHA256 (floor.c): the published_at of the
 * first manifest the parent verified that withdraws that build. */
static int
withdrawn_note(struct agent *a, const struct module_manifest *m, struct mu_err *err)
{
	size_t i;
	int rc;

	for (i = 0; i < m->nwithdrawn; i++)
		if (parent_floor(a, "withdrawn", m->withdrawn[i]) == 0 &&
		    (rc = parent_floor_raise(a, "withdrawn", m->withdrawn[i],
		    m->published_at ? m->published_at : 1, err)) != MU_OK)
			return rc;
	return MU_OK;
}

/* The cache is the network process's: read it as data, believe nothing
 * in it that the signature and the hash do not prove. */
static int
open_cached(struct agent *a, const struct run *r, const char *sha,
    struct module_file *out, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 96], fpr[PGP_FPR_MAX + 1] = "";
	struct module_manifest m;
	struct signed_pointer p;
	uint8_t *ptr = NULL, *so = NULL;
	size_t plen, slen;
	uint64_t floor_at;
	int rc;

	snprintf(path, sizeof(path), "%s/modcache/%s.ptr", a->net_dir, sha);
	if ((rc = read_untrusted(path, SIGNED_POINTER_MAX, net_file_owner(a), &ptr, &plen, NULL)))
		return rc == MU_ENOENT ? mu_errf(err, MU_ENOENT, "module %s: build %.12s... is "
		    "not in the cache", r->job.module, sha) : mu_errf(err, MU_ETRUST,
		    "module %s: cached pointer %.12s... refused: not a regular file of "
		    "the network process's", r->job.module, sha);
	if ((rc = pointer_decode(ptr, plen, &p, err)) == MU_OK) {
		rc = verify_module_manifest(a, r->job.module, p.manifest.ptr, p.manifest.len,
		    p.sig.ptr, p.sig.len, &m, fpr, err);
		wire_doc_free(&p.doc);
	}
	free(ptr);
	if (rc)
		return mu_errf(err, rc, "module %s: cached manifest refused: %.200s",
		    r->job.module, err->msg);
	/* What this signed manifest withdraws is refused from now on, here
	 * too (modopen_build()), whatever the network process offers. */
	if ((rc = withdrawn_note(a, &m, err)) != MU_OK) {
		wire_doc_free(&m.doc);
		return rc;
	}
	snprintf(path, sizeof(path), "%s/modcache/%s.so", a->net_dir, sha);
	floor_at = parent_floor(a, "modules", m.name);
	if (strcmp(m.sha256, sha) != 0)
		rc = mu_errf(err, MU_EINVAL, "module %s: the cached manifest names another "
		    "build", r->job.module);
	/* The parent's own floor, not the network process's: an older
	 * signed build only when the job pins it. */
	else if (!r->job.module_sha256[0] && m.published_at < floor_at)
		rc = mu_errf(err, MU_ETRUST, "module %s: build %.12s... (version %.40s, "
		    "published_at %" PRIu64 ") is older than the newest this host accepted "
		    "(published_at %" PRIu64 "); pin module_sha256 to run it", r->job.module,
		    sha, m.version, m.published_at, floor_at);
	else if (read_untrusted(path, a->cfg.module_max, net_file_owner(a), &so, &slen,
	    NULL) != MU_OK)
		rc = mu_errf(err, MU_ENOENT, "module %s: cached build %.12s... unreadable",
		    r->job.module, sha);
	else if ((rc = modopen_seal(so, slen, out, err)) == MU_OK &&
	    (slen != m.size || strcmp(out->sha256, sha) != 0)) {
		close(out->memfd);
		rc = mu_errf(err, MU_EINVAL, "module %s: cached build %.12s... does not match "
		    "its signed manifest", r->job.module, sha);
	}
	if (rc == MU_OK && (rc = parent_floor_raise(a, "modules", m.name, m.published_at,
	    err)) != MU_OK) {
		close(out->memfd);
		out->memfd = -1;
	}
	out->net = m.net;
	free(so);
	wire_doc_free(&m.doc);
	return rc;
}

int
modopen_build(struct agent *a, const struct run *r, enum priv_source src,
    const char *sha256, struct module_file *out, struct mu_err *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	out->memfd = -1;
	/* Whatever the network process says, a pin is a pin. */
	if (r->job.module_sha256[0] && strcmp(r->job.module_sha256, sha256) != 0)
		return mu_errf(err, MU_ETRUST, "module %s: offered build %.12s..., the job "
		    "pins %.12s...", r->job.module, sha256, r->job.module_sha256);
	/* prefer = signed, and the network process says "local": the parent
	 * cannot see the broker, but its own floor says whether it has run a
	 * signed build of this module.  If it has, a local file does not
	 * replace it unless the job pins that file (or the host prefers
	 * local); otherwise a lying network process could swap any signed
	 * module for whatever sits in modules_dir. */
	if (src == PRIV_SRC_LOCAL && !a->cfg.prefer_local && !r->job.module_sha256[0] &&
	    parent_floor(a, "modules", r->job.module) > 0)
		return mu_errf(err, MU_ETRUST, "module %s: offered the local file, but this "
		    "host has run a signed build and [modules] prefer = signed; pin "
		    "module_sha256 %.12s... to run the local file", r->job.module, sha256);
	out->local = src == PRIV_SRC_LOCAL;
	if (src == PRIV_SRC_LOCAL)
		rc = local_open(a, r->job.module, out, err);
	else
		rc = open_cached(a, r, sha256, out, err);
	if (rc == MU_OK && strcmp(out->sha256, sha256) != 0) {
		close(out->memfd);
		out->memfd = -1;
		rc = mu_errf(err, MU_ETRUST, "module %s: the build changed under us",
		    r->job.module);
	}
	/* Pinned or local, a withdrawn build does not run again. */
	if (rc == MU_OK && parent_floor(a, "withdrawn", out->sha256) > 0) {
		close(out->memfd);
		out->memfd = -1;
		rc = mu_errf(err, MU_ETRUST, "module %s: build %.12s... was withdrawn by "
		    "its publisher", r->job.module, out->sha256);
	}
	return rc;
}
