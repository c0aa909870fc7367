/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modsrc.c - where a job's module comes from (design.md §3 "Modules and
 * releases on the broker", §8).
 *
 * Two sources:
 *  - signed builds published on the broker: the retained pointer
 *    R/modules/<name> names the latest build, the retained artifact
 *    R/modules/<name>/<sha256> carries it.  A build runs only after its
 *    manifest's OpenPGP signature verified against a fingerprint in
 *    [trust] publishers and the bytes match the manifest's sha256 and size;
 *    it is then kept in the cache (modcache.c).
 *  - the local folder [agent] modules_dir, NAME.so, trusted by owner and
 *    mode (root or us, not writable by group or others).
 * A signed build wins over a local file unless [modules] prefer = local.
 * A job that pins module_sha256 gets exactly that build, whichever source
 * has it, and is exempt from the rollback floor.
 *
 * The agent subscribes to R/modules/+ and keeps the latest pointer of each
 * name as received; a pointer is verified only when a job needs it or when
 * its name is in the cache (then a newer build is prefetched after a
 * random delay, so a fleet does not ask at once).  A run whose build is
 * not cached waits (modsrc_open returns MODSRC_WAIT) for one shared fetch,
 * bounded by [modules] fetch_timeout and by the job's own timeout.
 * Artifacts (up to 64 MiB) come over a connection of their own, client id
 * "<host>.fetch", open only while fetches are pending: the job session
 * tells the broker to send it nothing bigger than a job (session.c).
 *
 * Ownership: pointers, fetches and cache entries belong to a->mods; the
 * memfd handed out in struct module_file belongs to the caller.
 */
#include "agent.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "muster/module.h"	/* MUSTER_ABI: what our runner loads */

#define SETTLE_MS	300		/* retained pointers arrive right after SUBACK */
#define MAX_POINTERS	4096		/* names followed; more are ignored */
#define POINTER_MAX	(WIRE_MAX_MANIFEST + WIRE_MAX_PGPSIG + 64)
#define MODSRC_WAIT	100		/* pick(): the request waits */
#define ARTIFACT_SLACK	(WIRE_MAX_MANIFEST + WIRE_MAX_PGPSIG + 64)
#define FETCH_RETRY_MS	1000		/* fetch connection lost: try again */
#define FETCH_IDLE_MS	5000		/* close it after this long unused */

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
		struct modlocal *e = &a->local[i];

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
		if (strcmp(a->local[i].name, name) == 0)
			e = &a->local[i];
	for (i = 0; i < LOCAL_SLOTS && e == NULL; i++)
		if (a->local[i].name[0] == '\0')
			e = &a->local[i];
	for (i = 0; e == NULL && i < LOCAL_SLOTS; i++)
		if (i == 0 || a->local[i].used_at < e->used_at)
			e = &a->local[i];
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
modsrc_local_expire(struct agent *a)
{
	uint64_t now = now_mono_ms();
	size_t i;

	for (i = 0; i < LOCAL_SLOTS; i++)
		if (a->local[i].name[0] && now - a->local[i].used_at >= LOCAL_IDLE_MS)
			local_drop(&a->local[i]);
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
		if ((rc = modsrc_seal(buf, len, out, err)) == MU_OK)
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

/* ---- manifests and pointers ------------------------------------------- */

int
modsrc_check_manifest(struct agent *a, const char *name, const void *manifest,
    size_t mlen, const void *sig, size_t siglen, struct module_manifest *m,
    char fpr[PGP_FPR_MAX + 1], struct mu_err *err)
{
	const char *allowed[CONF_MAX_FPRS];
	struct mu_err why;
	int i, rc;

	for (i = 0; i < a->cfg.npublishers; i++)
		allowed[i] = a->cfg.publishers[i];
	rc = pgp_verify(a->cfg.gnupg_home, manifest, mlen, sig, siglen, allowed,
	    (size_t)a->cfg.npublishers, fpr, &why);
	if (rc == MU_ETRUST)
		return mu_errf(err, rc, "not a trusted publisher here (%s)", why.msg);
	if (rc != MU_OK)
		return mu_errf(err, rc, "bad signature (%s)", why.msg);
	if ((rc = module_manifest_decode(manifest, mlen, m, &why)) != MU_OK)
		return mu_errf(err, rc, "bad manifest (%s)", why.msg);
	if (name && strcmp(m->name, name) != 0)
		rc = mu_errf(err, MU_EINVAL, "the manifest is for module %s", m->name);
	else if (m->abi != MUSTER_ABI)
		rc = mu_errf(err, MU_EINVAL, "built for ABI %" PRIu32 "; this host's runner "
		    "loads ABI %d", m->abi, MUSTER_ABI);
	else if (m->size > a->cfg.module_max)
		rc = mu_errf(err, MU_EINVAL, "%" PRIu64 " bytes, over this host's limit of %"
		    PRIu64 " ([modules] max_size)", m->size, a->cfg.module_max);
	if (rc)
		wire_doc_free(&m->doc);
	return rc;
}

static struct modptr *
ptr_find(struct agent *a, const char *name)
{
	struct modptr *p;

	for (p = a->mods.ptrs; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

/*
 * Verify a pointer once (the verdict is kept until the pointer changes):
 * signature, manifest, and the rollback floor, which moves up when a
 * newer pointer is accepted.
 */
static int
ptr_check(struct agent *a, struct modptr *p, struct mu_err *err)
{
	char fpr[PGP_FPR_MAX + 1] = "";
	struct module_manifest m;
	struct signed_pointer sp;
	struct mu_err why;
	uint64_t floor;
	int rc;

	if (p->checked)
		return p->rc ? mu_errf(err, p->rc, "%s", p->why) : MU_OK;
	p->checked = true;
	rc = pointer_decode(p->raw, p->len, &sp, &why);
	if (rc == MU_OK) {
		rc = modsrc_check_manifest(a, p->name, sp.manifest.ptr, sp.manifest.len,
		    sp.sig.ptr, sp.sig.len, &m, fpr, &why);
		wire_doc_free(&sp.doc);
	} else
		mu_errf(&why, rc, "malformed pointer");
	if (rc == MU_OK) {
		wire_doc_free(&m.doc);
		floor = modcache_floor(a, p->name);
		if (m.published_at < floor)
			rc = mu_errf(&why, MU_ESTALE, "published_at %" PRIu64 " is older than "
			    "the newest accepted (%" PRIu64 "): refused as a rollback",
			    m.published_at, floor);
	}
	p->rc = rc;
	if (rc) {
		a->mods.refused++;
		snprintf(p->why, sizeof(p->why), "module %s: published pointer refused: %.150s",
		    p->name, why.msg);
		log_warnx("%s", p->why);
		return mu_errf(err, rc, "%s", p->why);
	}
	snprintf(p->sha256, sizeof(p->sha256), "%s", m.sha256);
	snprintf(p->version, sizeof(p->version), "%s", m.version);
	p->published_at = m.published_at;
	if (modcache_set_floor(a, p->name, m.published_at, &why) != MU_OK)
		log_warnx("module %s: %s", p->name, why.msg);
	log_info("module %s: pointer to version %s (%.12s...) signed by %s", p->name,
	    p->version, p->sha256, fpr);
	return MU_OK;
}

/* ---- fetching ------------------------------------------------------------ */

static int fetchbus_want(struct agent *a, struct modfetch *f, struct mu_err *err);
static void reqs_ready(struct agent *a, const char *sha);
static void reqs_failed(struct agent *a, const char *sha, const char *why);

static struct modfetch *
fetch_find(struct agent *a, const char *sha)
{
	struct modfetch *f;

	for (f = a->mods.fetches; f; f = f->next)
		if (strcmp(f->sha256, sha) == 0)
			return f;
	return NULL;
}

/* Forget the fetch, then tell the runs waiting for it (which may start
 * new fetches: the list is consistent by then). */
static void fetchbus_idle(struct agent *a);

static void
fetch_end(struct agent *a, struct modfetch *f, const char *why)
{
	char sha[SHA256_HEX_LEN + 1], reason[256];
	struct modfetch **pp;

	if (a->mods.fetch_bus && bus_connected(a->mods.fetch_bus))
		bus_unsubscribe(a->mods.fetch_bus, f->topic, NULL);
	if (f->timer)
		loop_del_timer(a->loop, f->timer);
	for (pp = &a->mods.fetches; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	snprintf(sha, sizeof(sha), "%s", f->sha256);
	if (why) {
		snprintf(reason, sizeof(reason), "%s", why);
		log_warnx("%s", reason);
	}
	free(f);
	if (a->mods.fetches == NULL)
		fetchbus_idle(a);
	if (why)
		reqs_failed(a, sha, reason);
	else
		reqs_ready(a, sha);
}

static void
fetch_expired(struct loop *l, uint64_t id, void *arg)
{
	struct modfetch *f = arg;
	struct agent *a = f->agent;
	char why[256];

	(void)l, (void)id;
	f->timer = 0;
	snprintf(why, sizeof(why), "module %s: not published (no artifact for build "
	    "%.12s... on the broker after %.1f s)", f->name, f->sha256,
	    a->cfg.fetch_timeout_ms / 1000.0);
	fetch_end(a, f, why);
}

static int
fetch_start(struct agent *a, const char *name, const char *sha, struct mu_err *err)
{
	struct modfetch *f;

	if (fetch_find(a, sha) != NULL)
		return MU_OK;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	if (topic_build(f->topic, sizeof(f->topic), a->root, TOPIC_MODULE_ARTIFACT, name,
	    sha) != MU_OK) {
		free(f);
		return mu_errf(err, MU_EINVAL, "bad module topic for %s", name);
	}
	snprintf(f->name, sizeof(f->name), "%s", name);
	snprintf(f->sha256, sizeof(f->sha256), "%s", sha);
	f->agent = a;
	f->timer = loop_add_timer(a->loop, a->cfg.fetch_timeout_ms, fetch_expired, f);
	f->next = a->mods.fetches;
	a->mods.fetches = f;
	a->mods.fetches_started++;
	log_notice("module %s: fetching build %.12s... from the broker", name, sha);
	return fetchbus_want(a, f, err);
}

/* ---- the fetch connection ------------------------------------------------ */

static void artifact_message(struct agent *a, const char *sha, const uint8_t *p,
    size_t len);

static void
fetchbus_subscribe_all(struct agent *a)
{
	struct modfetch *f;
	char *topic;

	for (f = a->mods.fetches; f; f = f->next) {
		topic = f->topic;
		bus_subscribe(a->mods.fetch_bus, &topic, 1, 1, NULL);
	}
}

static void
fetchbus_retry_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;
	struct mu_err err;

	(void)l, (void)id;
	a->mods.fetch_retry_timer = 0;
	if (a->mods.fetch_bus && a->mods.fetches &&
	    bus_connect(a->mods.fetch_bus, &err) != MU_OK) {
		log_warnx("module fetch connection: %s", err.msg);
		a->mods.fetch_retry_timer = loop_add_timer(a->loop, FETCH_RETRY_MS,
		    fetchbus_retry_fired, a);
	}
}

static void
fetchbus_event(struct agent *a, struct bus_event *ev)
{
	char name[NAME_MAX_LEN + 1], sha[SHA256_HEX_LEN + 1];

	switch (ev->type) {
	case BUS_CONNECTED:
		bus_tune_sockets();
		fetchbus_subscribe_all(a);
		break;
	case BUS_CONNECT_FAILED:
	case BUS_LOST:
		log_warnx("module fetch connection: %s", ev->reason);
		if (!a->mods.fetch_retry_timer)
			a->mods.fetch_retry_timer = loop_add_timer(a->loop, FETCH_RETRY_MS,
			    fetchbus_retry_fired, a);
		break;
	case BUS_MESSAGE:
		if (topic_parse_module(ev->topic, a->root, name, sha) == MU_OK && sha[0])
			artifact_message(a, sha, ev->payload, ev->len);
		break;
	default:
		break;
	}
}

static void
on_fetchbus_fd(struct loop *l, int fd, short revents, void *arg)
{
	struct agent *a = arg;
	struct bus_event *ev;

	(void)l, (void)fd, (void)revents;
	/* Events may end the last fetch; the bus itself is freed only by the
	 * idle timer, never while we drain it. */
	while (a->mods.fetch_bus && (ev = bus_next(a->mods.fetch_bus)) != NULL) {
		fetchbus_event(a, ev);
		bus_event_free(ev);
	}
}

static void
fetchbus_close(struct agent *a)
{
	if (a->mods.fetch_retry_timer)
		loop_del_timer(a->loop, a->mods.fetch_retry_timer);
	if (a->mods.fetch_idle_timer)
		loop_del_timer(a->loop, a->mods.fetch_idle_timer);
	a->mods.fetch_retry_timer = a->mods.fetch_idle_timer = 0;
	if (a->mods.fetch_bus == NULL)
		return;
	loop_del_fd(a->loop, bus_fd(a->mods.fetch_bus));
	bus_free(a->mods.fetch_bus);
	a->mods.fetch_bus = NULL;
}

static void
fetchbus_idle_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)l, (void)id;
	a->mods.fetch_idle_timer = 0;
	if (a->mods.fetches == NULL)
		fetchbus_close(a);
}

/* No fetch left: keep the connection a little for the next one. */
static void
fetchbus_idle(struct agent *a)
{
	if (a->mods.fetch_bus && !a->mods.fetch_idle_timer)
		a->mods.fetch_idle_timer = loop_add_timer(a->loop, FETCH_IDLE_MS,
		    fetchbus_idle_fired, a);
}

/* Subscribe f's artifact on the fetch connection, opening it first. */
static int
fetchbus_want(struct agent *a, struct modfetch *f, struct mu_err *err)
{
	struct bus_opts o = { 0 };
	char client_id[NAME_MAX_LEN + 8];
	char *topic = f->topic;
	int rc;

	if (a->mods.fetch_idle_timer) {
		loop_del_timer(a->loop, a->mods.fetch_idle_timer);
		a->mods.fetch_idle_timer = 0;
	}
	if (a->mods.fetch_bus) {
		if (bus_connected(a->mods.fetch_bus))
			bus_subscribe(a->mods.fetch_bus, &topic, 1, 1, NULL);
		return MU_OK;	/* else: subscribed on connect */
	}
	/* Its own client id: two clients with one id kick each other off. */
	snprintf(client_id, sizeof(client_id), "%s.fetch", a->cfg.host);
	o.broker = &a->cfg.broker;
	o.client_id = client_id;
	o.clean_start = true;
	if ((rc = bus_new(&a->mods.fetch_bus, &o, err)) != MU_OK)
		return rc;
	loop_add_fd(a->loop, bus_fd(a->mods.fetch_bus), POLLIN, on_fetchbus_fd, a);
	if (bus_connect(a->mods.fetch_bus, err) != MU_OK) {
		log_warnx("module fetch connection: %s", err->msg);
		a->mods.fetch_retry_timer = loop_add_timer(a->loop, FETCH_RETRY_MS,
		    fetchbus_retry_fired, a);
	}
	return MU_OK;
}

/* Every check before anything is written: a refused artifact never
 * reaches a place it could be loaded from. */
static int
artifact_accept(struct agent *a, struct modfetch *f, const uint8_t *p, size_t len,
    struct mu_err *err)
{
	char fpr[PGP_FPR_MAX + 1] = "", sha[SHA256_HEX_LEN + 1];
	struct signed_pointer sp = { 0 };
	struct module_manifest m;
	struct module_artifact art;
	msgpack_sbuffer sb;
	struct mu_err why;
	int rc;

	if (len > a->cfg.module_max + ARTIFACT_SLACK)
		return mu_errf(err, MU_EINVAL, "artifact of %zu bytes is over this host's "
		    "limit ([modules] max_size %" PRIu64 ")", len, a->cfg.module_max);
	if ((rc = module_artifact_decode(p, len, &art, &why)) != MU_OK)
		return mu_errf(err, rc, "malformed artifact (%s)", why.msg);
	rc = modsrc_check_manifest(a, f->name, art.manifest.ptr, art.manifest.len,
	    art.sig.ptr, art.sig.len, &m, fpr, err);
	if (rc) {
		wire_doc_free(&art.doc);
		return rc;
	}
	sha256_hex(art.so.ptr, art.so.len, sha);
	if (strcmp(m.sha256, f->sha256) != 0)
		rc = mu_errf(err, MU_EINVAL, "the artifact's manifest names build %.12s..., "
		    "not %.12s...", m.sha256, f->sha256);
	else if (art.so.len != m.size)
		rc = mu_errf(err, MU_EINVAL, "the module is %zu bytes, its manifest says %"
		    PRIu64 " (truncated?)", art.so.len, m.size);
	else if (strcmp(sha, m.sha256) != 0)
		rc = mu_errf(err, MU_EINVAL, "sha256 mismatch: the manifest says %.12s..., "
		    "the module is %.12s...", m.sha256, sha);
	if (rc == MU_OK) {
		sp.manifest = art.manifest;
		sp.sig = art.sig;
		msgpack_sbuffer_init(&sb);
		rc = pointer_encode(&sp, &sb, err);
		if (rc == MU_OK)
			rc = modcache_store(a, &m, fpr, sb.data, sb.size, art.so.ptr, art.so.len,
			    err);
		msgpack_sbuffer_destroy(&sb);
	}
	if (rc == MU_OK)
		log_notice("module %s: stored version %s (%.12s..., %" PRIu64 " bytes) signed "
		    "by %s", m.name, m.version, m.sha256, m.size, fpr);
	wire_doc_free(&m.doc);
	wire_doc_free(&art.doc);
	return rc;
}

static void
artifact_message(struct agent *a, const char *sha, const uint8_t *p, size_t len)
{
	struct modfetch *f = fetch_find(a, sha);
	char why[320];
	struct mu_err err;

	if (f == NULL || len == 0)	/* late, unasked, or a cleared artifact */
		return;
	if (artifact_accept(a, f, p, len, &err) != MU_OK) {
		a->mods.refused++;
		snprintf(why, sizeof(why), "module %s: build %.12s... refused: %.200s", f->name,
		    f->sha256, err.msg);
		fetch_end(a, f, why);
		return;
	}
	a->mods.fetched++;
	fetch_end(a, f, NULL);
}

/* ---- prefetch ------------------------------------------------------------ */

static void
prefetch_fired(struct loop *l, uint64_t id, void *arg)
{
	struct modptr *p = arg;
	struct agent *a = p->agent;
	struct mu_err err;

	(void)l, (void)id;
	p->prefetch_timer = 0;
	if (p->raw == NULL || ptr_check(a, p, &err) != MU_OK ||
	    modcache_find(a, p->sha256) != NULL)
		return;
	if (fetch_start(a, p->name, p->sha256, &err) != MU_OK)
		log_warnx("module %s: prefetch: %s", p->name, err.msg);
}

/* A name this host has used got a new pointer: fetch it before a job
 * needs it, after a random delay. */
static void
prefetch_schedule(struct agent *a, struct modptr *p)
{
	uint64_t delay;
	struct mu_err err;

	if (p->prefetch_timer || !modcache_has_name(a, p->name) ||
	    ptr_check(a, p, &err) != MU_OK || modcache_find(a, p->sha256) != NULL)
		return;
	delay = random_below(a->cfg.prefetch_delay_ms + 1);
	log_info("module %s: version %s published; prefetching in %.1f s", p->name,
	    p->version, delay / 1000.0);
	p->prefetch_timer = loop_add_timer(a->loop, delay, prefetch_fired, p);
}

/* ---- pointers from the broker ------------------------------------------- */

static struct modptr *
ptr_add(struct agent *a, const char *name)
{
	struct modptr *p;

	if (a->mods.nptrs >= MAX_POINTERS) {
		log_warnx("module %s: more than %d module names published; ignored", name,
		    MAX_POINTERS);
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->agent = a;
	p->next = a->mods.ptrs;
	a->mods.ptrs = p;
	a->mods.nptrs++;
	return p;
}

static void
ptr_retire(struct agent *a, struct modptr *p)
{
	(void)a;
	if (p->raw == NULL)
		return;
	log_notice("module %s: retired by its publisher (cached builds still run)",
	    p->name);
	free(p->raw);
	p->raw = NULL;
	p->len = 0;
	p->checked = false;
}

static void
pointer_message(struct agent *a, const char *name, const uint8_t *buf, size_t len)
{
	struct modptr *p = ptr_find(a, name);
	uint8_t *copy;

	if (len > POINTER_MAX) {
		log_warnx("module %s: pointer of %zu bytes ignored (too large)", name, len);
		return;
	}
	if (p == NULL && (len == 0 || (p = ptr_add(a, name)) == NULL))
		return;
	p->gen = a->mods.gen;
	if (len == 0) {
		ptr_retire(a, p);
		return;
	}
	if (p->raw && p->len == len && memcmp(p->raw, buf, len) == 0)
		return;
	if ((copy = malloc(len)) == NULL)
		return;
	memcpy(copy, buf, len);
	free(p->raw);
	p->raw = copy;
	p->len = len;
	p->checked = false;
	prefetch_schedule(a, p);
}

void
modsrc_message(struct agent *a, const char *topic, const uint8_t *p, size_t len)
{
	char name[NAME_MAX_LEN + 1], sha[SHA256_HEX_LEN + 1];

	/* Artifacts come over the fetch connection only. */
	if (topic_parse_module(topic, a->root, name, sha) != MU_OK || sha[0])
		return;
	pointer_message(a, name, p, len);
}

int
modsrc_subscription(const struct agent *a, char *buf, size_t len)
{
	return topic_filter(buf, len, a->root, TOPIC_MODULE, "+", NULL);
}

/* ---- the connection ------------------------------------------------------ */

/* The retained pointers have been delivered: names without one now are
 * not published (a pointer retired while we were away is dropped). */
static void
settle_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;
	struct modptr *p;

	(void)l, (void)id;
	a->mods.settle_timer = 0;
	a->mods.settled = true;
	for (p = a->mods.ptrs; p; p = p->next)
		if (p->gen != a->mods.gen)
			ptr_retire(a, p);
	reqs_ready(a, "");
}

void
modsrc_connected(struct agent *a)
{
	a->mods.gen++;
	a->mods.settled = false;
	a->mods.awaiting_suback = true;
	if (a->mods.settle_timer) {
		loop_del_timer(a->loop, a->mods.settle_timer);
		a->mods.settle_timer = 0;
	}
}

void
modsrc_subscribed(struct agent *a)
{
	if (!a->mods.awaiting_suback)
		return;
	a->mods.awaiting_suback = false;
	a->mods.settle_timer = loop_add_timer(a->loop, SETTLE_MS, settle_fired, a);
}

/* ---- a run's module: the network process chooses ---------------------- */

/* A build by sha256: in the cache (checked again), else fetched. */
static int
pick_build(struct agent *a, struct modreq *q, const char *sha, struct mu_err *err)
{
	struct modcached *e = modcache_find(a, sha);
	int rc;

	if (e && (rc = modcache_check(a, e, err)) != MU_ESTALE)
		return rc;
	if ((rc = fetch_start(a, q->module, sha, err)) != MU_OK)
		return rc;
	snprintf(q->wait_sha, sizeof(q->wait_sha), "%s", sha);
	return MODSRC_WAIT;
}

/*
 * The order of design.md §3 / docs/modules.md.  MU_OK with *src and sha set,
 * MODSRC_WAIT (q waits for a fetch or for the pointers), or an error.
 */
static int
pick(struct agent *a, struct modreq *q, enum priv_source *src, char *sha,
    struct mu_err *err)
{
	struct modcached *e;
	struct modptr *p;
	int rc;

	q->wait_sha[0] = '\0';
	*src = PRIV_SRC_CACHE;
	if (q->pin[0]) {
		/* Exactly that build; a pinned job is exempt from the floor. */
		snprintf(sha, SHA256_HEX_LEN + 1, "%s", q->pin);
		if (strcmp(q->local_sha, q->pin) == 0) {
			*src = PRIV_SRC_LOCAL;
			return MU_OK;
		}
		return pick_build(a, q, q->pin, err);
	}
	if (a->cfg.prefer_local && q->local_sha[0]) {
		*src = PRIV_SRC_LOCAL;
		snprintf(sha, SHA256_HEX_LEN + 1, "%s", q->local_sha);
		return MU_OK;
	}
	p = ptr_find(a, q->module);
	if (p && p->raw) {
		if ((rc = ptr_check(a, p, err)) != MU_OK)
			return rc;
		snprintf(sha, SHA256_HEX_LEN + 1, "%s", p->sha256);
		return pick_build(a, q, p->sha256, err);
	}
	if (!a->mods.settled)
		return MODSRC_WAIT;	/* wait_sha "": for the pointers */
	if (q->local_sha[0]) {
		*src = PRIV_SRC_LOCAL;
		snprintf(sha, SHA256_HEX_LEN + 1, "%s", q->local_sha);
		return MU_OK;
	}
	/* Retired, but this host has a build its publisher signed. */
	if ((e = modcache_newest(a, q->module)) != NULL && modcache_check(a, e, err) == MU_OK) {
		snprintf(sha, SHA256_HEX_LEN + 1, "%s", e->sha256);
		return MU_OK;
	}
	return mu_errf(err, MU_ENOENT, "module %s is not published and not installed on "
	    "this host", q->module);
}

/* Answer q if its build is known (or cannot be had); true when done. */
static bool
req_answer(struct agent *a, struct modreq *q)
{
	char sha[SHA256_HEX_LEN + 1] = "";
	enum priv_source src;
	struct mu_err err;
	int rc;

	rc = pick(a, q, &src, sha, &err);
	if (rc == MODSRC_WAIT)
		return false;
	if (rc == MU_OK)
		priv_module(a, q->job, src, sha, NULL);
	else
		priv_module(a, q->job, PRIV_SRC_NONE, NULL, err.msg);
	return true;
}

static void
req_unlink(struct agent *a, struct modreq *q)
{
	struct modreq **pp;

	for (pp = &a->mods.reqs; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			return;
		}
}

void
modsrc_want(struct agent *a, const struct priv_msg *m)
{
	struct modreq *q = calloc(1, sizeof(*q));

	if (q == NULL) {
		priv_module(a, m->job, PRIV_SRC_NONE, NULL, "agent out of memory");
		return;
	}
	snprintf(q->job, sizeof(q->job), "%s", m->job);
	snprintf(q->module, sizeof(q->module), "%s", m->name);
	snprintf(q->pin, sizeof(q->pin), "%s", m->sha256);
	snprintf(q->local_sha, sizeof(q->local_sha), "%s", m->local);
	if (req_answer(a, q)) {
		free(q);
		return;
	}
	q->next = a->mods.reqs;
	a->mods.reqs = q;
}

/* Requests waiting for sha ("" = the pointers) try again; each is
 * answered or waits anew (one done may start another fetch). */
static void
reqs_ready(struct agent *a, const char *sha)
{
	struct modreq *q, *next, *todo = NULL;

	for (q = a->mods.reqs; q; q = next) {
		next = q->next;
		if (strcmp(q->wait_sha, sha) == 0) {
			req_unlink(a, q);
			q->next = todo;
			todo = q;
		}
	}
	for (q = todo; q; q = next) {
		next = q->next;
		if (req_answer(a, q))
			free(q);
		else {
			q->next = a->mods.reqs;
			a->mods.reqs = q;
		}
	}
}

static void
reqs_failed(struct agent *a, const char *sha, const char *why)
{
	struct modreq *q, *next;

	for (q = a->mods.reqs; q; q = next) {
		next = q->next;
		if (strcmp(q->wait_sha, sha) == 0) {
			req_unlink(a, q);
			priv_module(a, q->job, PRIV_SRC_NONE, NULL, why);
			free(q);
		}
	}
}

/* ---- a run's module: the parent checks ---------------------------------- */

int
modsrc_local_sha(struct agent *a, const char *name, char sha[SHA256_HEX_LEN + 1],
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
	if ((rc = read_untrusted(path, POINTER_MAX, net_file_owner(a), &ptr, &plen, NULL)))
		return rc == MU_ENOENT ? mu_errf(err, MU_ENOENT, "module %s: build %.12s... is "
		    "not in the cache", r->job.module, sha) : mu_errf(err, MU_ETRUST,
		    "module %s: cached pointer %.12s... refused: not a regular file of "
		    "the network process's", r->job.module, sha);
	if ((rc = pointer_decode(ptr, plen, &p, err)) == MU_OK) {
		rc = modsrc_check_manifest(a, r->job.module, p.manifest.ptr, p.manifest.len,
		    p.sig.ptr, p.sig.len, &m, fpr, err);
		wire_doc_free(&p.doc);
	}
	free(ptr);
	if (rc)
		return mu_errf(err, rc, "module %s: cached manifest refused: %.200s",
		    r->job.module, err->msg);
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
	else if ((rc = modsrc_seal(so, slen, out, err)) == MU_OK &&
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
	free(so);
	wire_doc_free(&m.doc);
	return rc;
}

int
modsrc_open(struct agent *a, const struct run *r, enum priv_source src,
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
	return rc;
}

/* ---- life cycle ----------------------------------------------------------- */

int
modsrc_init(struct agent *a, struct mu_err *err)
{
	if (a->cfg.npublishers == 0)
		log_info("no [trust] publishers: only modules in %s can run",
		    a->cfg.modules_dir);
	return modcache_load(a, err);
}

void
modsrc_free(struct agent *a)
{
	struct modfetch *f;
	struct modreq *q;
	struct modptr *p;

	if (a->mods.fetches_started || a->mods.cache_hits || a->mods.refused)
		log_info("modules: %" PRIu64 " fetches started, %" PRIu64 " stored, %" PRIu64
		    " cache hits, %" PRIu64 " refused, %" PRIu64 " damaged cache entries",
		    a->mods.fetches_started, a->mods.fetched, a->mods.cache_hits,
		    a->mods.refused, a->mods.tampered);
	while ((f = a->mods.fetches) != NULL) {
		a->mods.fetches = f->next;
		free(f);
	}
	while ((q = a->mods.reqs) != NULL) {
		a->mods.reqs = q->next;
		free(q);
	}
	fetchbus_close(a);
	while ((p = a->mods.ptrs) != NULL) {
		a->mods.ptrs = p->next;
		free(p->raw);
		free(p);
	}
	modcache_free(a);
}
