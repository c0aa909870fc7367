/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modsrc.c - the network process's half of where a job's module comes
 * from (design.md §3 "Modules and releases on the broker", §8): it follows
 * the pointers, fetches and caches signed builds, and answers the
 * parent's PRIV_MODULE_WANT with the build to run.  The parent believes
 * none of it: it checks and seals the build itself (parent/modopen.c).
 *
 * Two sources:
 *  - signed builds published on the broker: the retained pointer
 *    R/modules/<name> names the latest build, the retained artifact
 *    R/modules/<name>/<sha256> carries it.  A build is kept (modcache.c)
 *    only after its manifest's OpenPGP signature verified against a
 *    fingerprint in [trust] publishers and the bytes match the manifest's
 *    sha256 and size.
 *  - the local folder [agent] modules_dir, NAME.so: the parent reads it
 *    and tells us its sha256 in the request (local_sha).
 * A signed build wins over a local file unless [modules] prefer = local.
 * A job that pins module_sha256 gets exactly that build, whichever source
 * has it, and is exempt from the rollback floor.
 *
 * The agent subscribes to R/modules/+ and keeps the latest pointer of each
 * name as received; a pointer is verified only when a job needs it or when
 * its name is in the cache (then a newer build is prefetched after a
 * random delay, so a fleet does not ask at once).  A request whose build
 * is not cached waits (pick() returns MODSRC_WAIT) for one shared fetch,
 * bounded by [modules] fetch_timeout and by the job's own timeout.
 * Artifacts (up to 64 MiB) come over the fetch connection (fetch.c), which
 * this file asks for each artifact's topic while its fetch is pending.
 *
 * Ownership: pointers, fetches, requests and cache entries belong to
 * a->net.mods.
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

#define SETTLE_MS	300		/* retained pointers arrive right after SUBACK */
#define MAX_POINTERS	4096		/* names followed; more are ignored */
#define MODSRC_WAIT	100		/* pick(): the request waits */
#define ARTIFACT_SLACK	(WIRE_MAX_MANIFEST + WIRE_MAX_PGPSIG + 64)

/* ---- manifests and pointers ------------------------------------------- */

static struct modptr *
ptr_find(struct agent *a, const char *name)
{
	struct modptr *p;

	for (p = a->net.mods.ptrs; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

/*
 * What an accepted pointer withdraws (`muster module withdraw`) leaves
 * the cache, and is refused from now on (pick()); the build it names, if
 * cached under an older manifest, takes the pointer's, which is what the
 * parent will check.
 */
static void
ptr_withdraw(struct agent *a, struct modptr *p, const struct module_manifest *m,
    const char *fpr)
{
	struct mu_err why;
	size_t i;

	free(p->withdrawn);
	p->withdrawn = NULL;
	p->nwithdrawn = 0;
	if (m->nwithdrawn && (p->withdrawn = calloc(m->nwithdrawn,
	    sizeof(*p->withdrawn))) == NULL)
		log_warnx("module %s: out of memory for its withdrawn builds (the "
		    "parent still refuses them)", p->name);
	else
		p->nwithdrawn = m->nwithdrawn;
	for (i = 0; i < m->nwithdrawn; i++) {
		if (i < p->nwithdrawn)
			snprintf(p->withdrawn[i], sizeof(p->withdrawn[i]), "%s",
			    m->withdrawn[i]);
		modcache_drop(a, p->name, m->withdrawn[i], "withdrawn by its publisher");
	}
	if (modcache_refresh(a, m, fpr, p->raw, p->len, &why) != MU_OK)
		log_warnx("module %s: cannot refresh the cached manifest: %s", p->name,
		    why.msg);
}

static bool
ptr_withdrew(const struct modptr *p, const char *sha)
{
	size_t i;

	for (i = 0; i < p->nwithdrawn; i++)
		if (strcmp(p->withdrawn[i], sha) == 0)
			return true;
	return false;
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
		rc = verify_module_manifest(a, p->name, sp.manifest.ptr, sp.manifest.len,
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
		a->net.mods.refused++;
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
	ptr_withdraw(a, p, &m, fpr);
	log_info("module %s: pointer to version %s (%.12s...) signed by %s", p->name,
	    p->version, p->sha256, fpr);
	return MU_OK;
}

/* ---- fetching ------------------------------------------------------------ */

static void artifact_message(struct agent *a, const char *topic, const uint8_t *p,
    size_t len);
static void reqs_ready(struct agent *a, const char *sha);
static void reqs_failed(struct agent *a, const char *sha, const char *why);

static struct modfetch *
modfetch_find(struct agent *a, const char *sha)
{
	struct modfetch *f;

	for (f = a->net.mods.fetches; f; f = f->next)
		if (strcmp(f->sha256, sha) == 0)
			return f;
	return NULL;
}

/* Forget the fetch, then tell the runs waiting for it (which may start
 * new fetches: the list is consistent by then). */
static void
modfetch_end(struct agent *a, struct modfetch *f, const char *why)
{
	char sha[SHA256_HEX_LEN + 1], reason[256];
	struct modfetch **pp;

	fetch_drop(a, f->topic, true);
	if (f->timer)
		loop_del_timer(a->loop, f->timer);
	for (pp = &a->net.mods.fetches; *pp; pp = &(*pp)->next)
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
	if (why)
		reqs_failed(a, sha, reason);
	else
		reqs_ready(a, sha);
}

static void
modfetch_expired(struct loop *l, uint64_t id, void *arg)
{
	struct modfetch *f = arg;
	struct agent *a = f->agent;
	char why[256];

	(void)l, (void)id;
	f->timer = 0;
	snprintf(why, sizeof(why), "module %s: not published (no artifact for build "
	    "%.12s... on the broker after %.1f s)", f->name, f->sha256,
	    a->cfg.fetch_timeout_ms / 1000.0);
	modfetch_end(a, f, why);
}

static int
modfetch_start(struct agent *a, const char *name, const char *sha, struct mu_err *err)
{
	struct modfetch *f;

	if (modfetch_find(a, sha) != NULL)
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
	f->timer = loop_add_timer(a->loop, a->cfg.fetch_timeout_ms, modfetch_expired, f);
	f->next = a->net.mods.fetches;
	a->net.mods.fetches = f;
	a->net.mods.fetches_started++;
	log_notice("module %s: fetching build %.12s... from the broker", name, sha);
	return fetch_want(a, f->topic, artifact_message, err);
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
	rc = verify_module_manifest(a, f->name, art.manifest.ptr, art.manifest.len,
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
artifact_message(struct agent *a, const char *topic, const uint8_t *p, size_t len)
{
	char name[NAME_MAX_LEN + 1], sha[SHA256_HEX_LEN + 1], why[320];
	struct modfetch *f;
	struct mu_err err;

	if (topic_parse_module(topic, a->root, name, sha) != MU_OK || !sha[0])
		return;
	f = modfetch_find(a, sha);
	if (f == NULL || len == 0)	/* late, unasked, or a cleared artifact */
		return;
	if (artifact_accept(a, f, p, len, &err) != MU_OK) {
		a->net.mods.refused++;
		snprintf(why, sizeof(why), "module %s: build %.12s... refused: %.200s", f->name,
		    f->sha256, err.msg);
		modfetch_end(a, f, why);
		return;
	}
	a->net.mods.fetched++;
	modfetch_end(a, f, NULL);
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
	if (modfetch_start(a, p->name, p->sha256, &err) != MU_OK)
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

	if (a->net.mods.nptrs >= MAX_POINTERS) {
		log_warnx("module %s: more than %d module names published; ignored", name,
		    MAX_POINTERS);
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->agent = a;
	p->next = a->net.mods.ptrs;
	a->net.mods.ptrs = p;
	a->net.mods.nptrs++;
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

	if (len > SIGNED_POINTER_MAX) {
		log_warnx("module %s: pointer of %zu bytes ignored (too large)", name, len);
		return;
	}
	if (p == NULL && (len == 0 || (p = ptr_add(a, name)) == NULL))
		return;
	p->gen = a->net.mods.gen;
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
	a->net.mods.settle_timer = 0;
	a->net.mods.settled = true;
	for (p = a->net.mods.ptrs; p; p = p->next)
		if (p->gen != a->net.mods.gen)
			ptr_retire(a, p);
	reqs_ready(a, "");
}

void
modsrc_connected(struct agent *a)
{
	a->net.mods.gen++;
	a->net.mods.settled = false;
	a->net.mods.awaiting_suback = true;
	if (a->net.mods.settle_timer) {
		loop_del_timer(a->loop, a->net.mods.settle_timer);
		a->net.mods.settle_timer = 0;
	}
}

void
modsrc_subscribed(struct agent *a)
{
	if (!a->net.mods.awaiting_suback)
		return;
	a->net.mods.awaiting_suback = false;
	a->net.mods.settle_timer = loop_add_timer(a->loop, SETTLE_MS, settle_fired, a);
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
	if ((rc = modfetch_start(a, q->module, sha, err)) != MU_OK)
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
	p = ptr_find(a, q->module);
	if (q->pin[0]) {
		/* Exactly that build; a pinned job is exempt from the floor,
		 * not from a withdrawal, which the pointer may carry. */
		if (!a->net.mods.settled)
			return MODSRC_WAIT;
		if (p && p->raw && ptr_check(a, p, err) == MU_OK && ptr_withdrew(p, q->pin))
			return mu_errf(err, MU_ETRUST, "module %s: build %.12s... was "
			    "withdrawn by its publisher", q->module, q->pin);
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
	if (p && p->raw) {
		if ((rc = ptr_check(a, p, err)) != MU_OK)
			return rc;
		snprintf(sha, SHA256_HEX_LEN + 1, "%s", p->sha256);
		return pick_build(a, q, p->sha256, err);
	}
	if (!a->net.mods.settled)
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
	*src = PRIV_SRC_NOWHERE;	/* a code the parent decides on */
	return mu_errf(err, MU_ENOENT, "module %s is not published and not installed on "
	    "this host", q->module);
}

/* Answer q if its build is known (or cannot be had); true when done. */
static bool
req_answer(struct agent *a, struct modreq *q)
{
	char sha[SHA256_HEX_LEN + 1] = "";
	enum priv_source src = PRIV_SRC_NONE;
	struct mu_err err;
	int rc;

	rc = pick(a, q, &src, sha, &err);
	if (rc == MODSRC_WAIT)
		return false;
	if (rc == MU_OK)
		priv_send_module(a, q->job, src, sha, NULL);
	else
		priv_send_module(a, q->job, src == PRIV_SRC_NOWHERE ? src : PRIV_SRC_NONE,
		    NULL, err.msg);
	return true;
}

static void
req_unlink(struct agent *a, struct modreq *q)
{
	struct modreq **pp;

	for (pp = &a->net.mods.reqs; *pp; pp = &(*pp)->next)
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
		priv_send_module(a, m->job, PRIV_SRC_NONE, NULL, "agent out of memory");
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
	q->next = a->net.mods.reqs;
	a->net.mods.reqs = q;
}

/* Requests waiting for sha ("" = the pointers) try again; each is
 * answered or waits anew (one done may start another fetch). */
static void
reqs_ready(struct agent *a, const char *sha)
{
	struct modreq *q, *next, *todo = NULL;

	for (q = a->net.mods.reqs; q; q = next) {
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
			q->next = a->net.mods.reqs;
			a->net.mods.reqs = q;
		}
	}
}

static void
reqs_failed(struct agent *a, const char *sha, const char *why)
{
	struct modreq *q, *next;

	for (q = a->net.mods.reqs; q; q = next) {
		next = q->next;
		if (strcmp(q->wait_sha, sha) == 0) {
			req_unlink(a, q);
			priv_send_module(a, q->job, PRIV_SRC_NONE, NULL, why);
			free(q);
		}
	}
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

	if (a->net.mods.fetches_started || a->net.mods.cache_hits || a->net.mods.refused)
		log_info("modules: %" PRIu64 " fetches started, %" PRIu64 " stored, %" PRIu64
		    " cache hits, %" PRIu64 " refused, %" PRIu64 " damaged cache entries",
		    a->net.mods.fetches_started, a->net.mods.fetched, a->net.mods.cache_hits,
		    a->net.mods.refused, a->net.mods.tampered);
	while ((f = a->net.mods.fetches) != NULL) {
		a->net.mods.fetches = f->next;
		free(f);
	}
	while ((q = a->net.mods.reqs) != NULL) {
		a->net.mods.reqs = q->next;
		free(q);
	}
	while ((p = a->net.mods.ptrs) != NULL) {
		a->net.mods.ptrs = p->next;
		free(p->raw);
		free(p->withdrawn);
		free(p);
	}
	modcache_free(a);
}
