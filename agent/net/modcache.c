/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modcache.c - the content-addressed cache of signed modules under
 * state_dir/modcache, and the rollback floors.
 *
 * Layout (the folder is 0755, files 0644: readable by runners, writable by
 * the agent only):
 *   <sha256>.so      the module, exactly the bytes the manifest names
 *   <sha256>.ptr     its signed manifest, as a pointer message
 *                    {"v":1,"manifest","sig"}, so a restart can re-check it
 *   floor/<name>     the newest published_at accepted for that name
 *
 * Nothing is written until every check has passed (modsrc.c verifies the
 * artifact in memory first), and each file appears by rename() after an
 * fsync, so a crash leaves either the old state or the new one.  Every use
 * hashes the file again (modcache_check): a changed file is removed and the
 * caller fetches the build again.
 *
 * Ownership: struct modcached entries belong to a->net.mods.cache; callers get
 * borrowed pointers that stay valid until the next modcache_* call that
 * removes entries (store, open, evict).
 */
#include "agent.h"
#include "pgp.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>


static int
cache_path(const struct modsrc *m, char *buf, size_t len, const char *sha,
    const char *ext)
{
	int n = snprintf(buf, len, "%s/%s%s", m->dir, sha, ext);

	return n < 0 || (size_t)n >= len ? MU_EINVAL : MU_OK;
}

static int
write_atomic(const char *path, const void *buf, size_t len, struct mu_err *err)
{
	if (write_file_atomic(path, buf, len, 0644) != MU_OK)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	return MU_OK;
}

/* ---- floors ------------------------------------------------------------ */

uint64_t
modcache_floor(struct agent *a, const char *name)
{
	char path[CONF_PATH_MAX + 96], buf[32];
	unsigned long long v = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/floor/%s", a->net.mods.dir, name);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%llu", &v) != 1)
		return 0;
	return (uint64_t)v;
}

int
modcache_set_floor(struct agent *a, const char *name, uint64_t published_at,
    struct mu_err *err)
{
	char path[CONF_PATH_MAX + 96], dir[CONF_PATH_MAX + 32], buf[32];
	int rc;

	if (published_at <= modcache_floor(a, name))
		return MU_OK;
	snprintf(dir, sizeof(dir), "%s/floor", a->net.mods.dir);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(buf, sizeof(buf), "%" PRIu64 "\n", published_at);
	if ((rc = write_atomic(path, buf, strlen(buf), err)) == MU_OK)
		fsync_dir(dir);
	return rc;
}

/* ---- entries ------------------------------------------------------------ */

struct modcached *
modcache_find(struct agent *a, const char *sha256)
{
	struct modcached *e;

	for (e = a->net.mods.cache; e; e = e->next)
		if (strcmp(e->sha256, sha256) == 0)
			return e;
	return NULL;
}

/* The newest cached build of a name (by published_at), or NULL. */
struct modcached *
modcache_newest(struct agent *a, const char *name)
{
	struct modcached *e, *best = NULL;

	for (e = a->net.mods.cache; e; e = e->next)
		if (strcmp(e->name, name) == 0 &&
		    (best == NULL || e->published_at > best->published_at))
			best = e;
	return best;
}

bool
modcache_has_name(struct agent *a, const char *name)
{
	return modcache_newest(a, name) != NULL;
}

static void
entry_remove(struct agent *a, struct modcached *dead, const char *why)
{
	struct modcached **p;
	char path[CONF_PATH_MAX + 96];

	if (why)
		log_notice("module cache: removed %s %s (%.12s...): %s", dead->name,
		    dead->version, dead->sha256, why);
	if (cache_path(&a->net.mods, path, sizeof(path), dead->sha256, ".so") == MU_OK)
		unlink(path);
	if (cache_path(&a->net.mods, path, sizeof(path), dead->sha256, ".ptr") == MU_OK)
		unlink(path);
	for (p = &a->net.mods.cache; *p; p = &(*p)->next)
		if (*p == dead) {
			*p = dead->next;
			break;
		}
	a->net.mods.cache_bytes -= dead->size;
	free(dead);
}

static struct modcached *
entry_add(struct agent *a, const struct module_manifest *m, const char *signer,
    uint64_t last_used)
{
	struct modcached *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	snprintf(e->sha256, sizeof(e->sha256), "%s", m->sha256);
	snprintf(e->name, sizeof(e->name), "%s", m->name);
	snprintf(e->version, sizeof(e->version), "%s", m->version);
	snprintf(e->signer, sizeof(e->signer), "%s", signer);
	e->size = m->size;
	e->published_at = m->published_at;
	e->last_used = last_used;
	e->next = a->net.mods.cache;
	a->net.mods.cache = e;
	a->net.mods.cache_bytes += e->size;
	return e;
}

/* Least recently used first, never `keep`, until the cache fits. */
static void
evict(struct agent *a, const struct modcached *keep)
{
	struct modcached *e, *old;

	while (a->net.mods.cache_bytes > a->cfg.module_cache) {
		old = NULL;
		for (e = a->net.mods.cache; e; e = e->next)
			if (e != keep && (old == NULL || e->last_used < old->last_used))
				old = e;
		if (old == NULL)
			return;
		entry_remove(a, old, "evicted (cache over its size limit)");
	}
}

int
modcache_store(struct agent *a, const struct module_manifest *m, const char *signer,
    const void *ptr, size_t ptrlen, const void *so, size_t solen, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 96];
	struct modcached *e;
	int rc;

	if (modcache_find(a, m->sha256) != NULL)
		return MU_OK;
	if ((rc = cache_path(&a->net.mods, path, sizeof(path), m->sha256, ".so")) != MU_OK ||
	    (rc = write_atomic(path, so, solen, err)) != MU_OK)
		return rc;
	if ((rc = cache_path(&a->net.mods, path, sizeof(path), m->sha256, ".ptr")) != MU_OK ||
	    (rc = write_atomic(path, ptr, ptrlen, err)) != MU_OK) {
		cache_path(&a->net.mods, path, sizeof(path), m->sha256, ".so");
		unlink(path);
		return rc;
	}
	fsync_dir(a->net.mods.dir);
	if ((e = entry_add(a, m, signer, now_wall_ms())) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	evict(a, e);
	return MU_OK;
}

void
modcache_drop(struct agent *a, const char *name, const char *sha256, const char *why)
{
	struct modcached *e = modcache_find(a, sha256);

	/* A withdrawal names builds of its own module only. */
	if (e != NULL && strcmp(e->name, name) == 0)
		entry_remove(a, e, why);
}

/*
 * A newer signed pointer names a build already cached under an older
 * manifest (a version published again, or one a withdrawal falls back
 * to): the cache's manifest becomes the pointer's, since the parent
 * checks the cached one against its own floor, which the newer build
 * it ran may have raised past the old manifest.
 */
int
modcache_refresh(struct agent *a, const struct module_manifest *m, const char *signer,
    const void *ptr, size_t ptrlen, struct mu_err *err)
{
	struct modcached *e = modcache_find(a, m->sha256);
	char path[CONF_PATH_MAX + 96];
	int rc;

	if (e == NULL || strcmp(e->name, m->name) != 0 || m->published_at <= e->published_at)
		return MU_OK;
	if ((rc = cache_path(&a->net.mods, path, sizeof(path), m->sha256, ".ptr")) != MU_OK ||
	    (rc = write_atomic(path, ptr, ptrlen, err)) != MU_OK)
		return rc;
	fsync_dir(a->net.mods.dir);
	e->published_at = m->published_at;
	snprintf(e->version, sizeof(e->version), "%s", m->version);
	snprintf(e->signer, sizeof(e->signer), "%s", signer);
	return MU_OK;
}

/* The signer must still be one this host trusts: a publisher removed from
 * [trust] publishers takes its builds' trust with it. */
static bool
signer_trusted(const struct agent *a, const char *fpr)
{
	int i;

	for (i = 0; i < a->cfg.npublishers; i++)
		if (strcasecmp(a->cfg.publishers[i], fpr) == 0)
			return true;
	return false;
}

/*
 * Before a cached build is offered for a run: hash it again and compare
 * with its manifest.  MU_ESTALE: the entry was damaged or is no longer
 * trusted and has been removed (e is gone); the caller fetches the build
 * again.  (The parent checks what it loads once more, modopen_build().)
 */
int
modcache_check(struct agent *a, struct modcached *e, struct mu_err *err)
{
	char path[CONF_PATH_MAX + 96], sha[SHA256_HEX_LEN + 1];
	uint8_t *buf;
	size_t len;
	int rc;

	if (!signer_trusted(a, e->signer)) {
		entry_remove(a, e, "its signer is no longer a trusted publisher");
		return mu_errf(err, MU_ESTALE, "cached build untrusted");
	}
	if ((rc = cache_path(&a->net.mods, path, sizeof(path), e->sha256, ".so")) != MU_OK)
		return mu_errf(err, rc, "module cache path too long");
	rc = read_file(path, a->cfg.module_max, &buf, &len, NULL);
	if (rc == MU_OK) {
		sha256_hex(buf, len, sha);
		if (len != e->size || strcmp(sha, e->sha256) != 0)
			rc = MU_ESTALE;
		free(buf);
	}
	if (rc != MU_OK) {
		a->net.mods.tampered++;
		log_warnx("module cache: %s %s (%.12s...) does not match its signed "
		    "manifest", e->name, e->version, e->sha256);
		entry_remove(a, e, "damaged or tampered with; fetching it again");
		return mu_errf(err, MU_ESTALE, "cached build damaged");
	}
	e->last_used = now_wall_ms();
	a->net.mods.cache_hits++;
	return MU_OK;
}

/* ---- start-up ----------------------------------------------------------- */

/* Re-check one <sha>.ptr found on disk; keep it only if it still verifies. */
static void
load_one(struct agent *a, const char *sha)
{
	char path[CONF_PATH_MAX + 96], fpr[PGP_FPR_MAX + 1];
	struct module_manifest m;
	struct signed_pointer p;
	struct mu_err err;
	struct stat st;
	uint8_t *buf;
	size_t len;
	int rc;

	if (cache_path(&a->net.mods, path, sizeof(path), sha, ".ptr") != MU_OK ||
	    read_file(path, SIGNED_POINTER_MAX, &buf, &len, NULL) != MU_OK)
		return;
	rc = pointer_decode(buf, len, &p, &err);
	if (rc == MU_OK) {
		rc = verify_module_manifest(a, NULL, p.manifest.ptr, p.manifest.len, p.sig.ptr,
		    p.sig.len, &m, fpr, &err);
		if (rc == MU_OK && strcmp(m.sha256, sha) != 0)
			rc = mu_errf(&err, MU_EINVAL, "manifest names another build");
		if (rc == MU_OK) {
			wire_doc_free(&m.doc);
			cache_path(&a->net.mods, path, sizeof(path), sha, ".so");
			if (stat(path, &st) == -1 || (uint64_t)st.st_size != m.size)
				rc = mu_errf(&err, MU_ENOENT, "module file missing or resized");
		}
		wire_doc_free(&p.doc);
	}
	free(buf);
	if (rc == MU_OK && entry_add(a, &m, fpr, (uint64_t)st.st_mtime * 1000) != NULL)
		return;
	log_notice("module cache: dropped %.12s...: %s", sha, err.msg);
	cache_path(&a->net.mods, path, sizeof(path), sha, ".ptr");
	unlink(path);
	cache_path(&a->net.mods, path, sizeof(path), sha, ".so");
	unlink(path);
}

int
modcache_load(struct agent *a, struct mu_err *err)
{
	char sha[SHA256_HEX_LEN + 1], floor[CONF_PATH_MAX + 32];
	struct dirent *de;
	size_t n;
	DIR *d;

	if (snprintf(a->net.mods.dir, sizeof(a->net.mods.dir), "%s/modcache", a->net_dir) >=
	    (int)sizeof(a->net.mods.dir))
		return mu_errf(err, MU_EINVAL, "state_dir too long");
	snprintf(floor, sizeof(floor), "%s/floor", a->net.mods.dir);
	if ((mkdir(a->net.mods.dir, 0755) == -1 && errno != EEXIST) ||
	    (mkdir(floor, 0755) == -1 && errno != EEXIST))
		return mu_errf(err, MU_EIO, "%s: %s", a->net.mods.dir, strerror(errno));
	if ((d = opendir(a->net.mods.dir)) == NULL)
		return mu_errf(err, MU_EIO, "%s: %s", a->net.mods.dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (n == SHA256_HEX_LEN + 4 && strcmp(de->d_name + SHA256_HEX_LEN, ".ptr") == 0) {
			memcpy(sha, de->d_name, SHA256_HEX_LEN);
			sha[SHA256_HEX_LEN] = '\0';
			if (sha256hex_valid(sha))
				load_one(a, sha);
		}
	}
	closedir(d);
	evict(a, NULL);
	if (a->net.mods.cache)
		log_info("module cache: %" PRIu64 " bytes in %s", a->net.mods.cache_bytes,
		    a->net.mods.dir);
	return MU_OK;
}

void
modcache_free(struct agent *a)
{
	struct modcached *e;

	while ((e = a->net.mods.cache) != NULL) {
		a->net.mods.cache = e->next;
		free(e);
	}
	a->net.mods.cache_bytes = 0;
}
