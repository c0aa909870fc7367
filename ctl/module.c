/* SPDX-License-Identifier: Apache-2.0 */
/*
 * module.c - muster module publish | list | show | retire: the publisher's
 * side of signed modules on the broker (design.md §3 "Modules and releases on
 * the broker"; docs/modules.md "Publishing a module").
 *
 * publish reads the module's descriptor through `muster-runner --describe`
 * (run on the very bytes it then publishes, through a memfd, so the file
 * cannot change in between), signs a module manifest with the publisher's
 * OpenPGP key (lib/pgp.c), and publishes the artifact, then the pointer,
 * both retained at QoS 1, each acknowledged by the broker.  The artifact
 * goes first so that a pointer never names an artifact the broker lacks.
 *
 * Ownership: a struct mod_ptr owns its raw payload; its decoded pointer and
 * manifest borrow from it (wire.h) and mod_ptr_free() releases all three.
 * Every other buffer is owned by the function that allocated it and freed
 * before it returns.  No global state: everything lives in struct ctl or
 * on the stack.
 */
#include "ctl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hostsig.h"
#include "loop.h"
#include "pgp.h"
#include "pointer.h"
#include "util.h"

extern char **environ;

#define EXIT_NOTFOUND		1	/* show/retire: the module has no pointer */
#define RETAINED_QUIET_MS	300	/* no retained message for this long: done */
#define ARTIFACT_WAIT_MS	3000	/* an artifact may be large: wait longer */
#define SUBACK_WAIT_MS		10000
#define PUBACK_WAIT_MS		30000
#define DESCRIBE_WAIT_MS	10000	/* muster-runner --describe */
#define DESCRIBE_OUT_MAX	(64 * 1024)

/* ---- usage ------------------------------------------------------------ */

static const char usage_module[] =
    "usage: muster module publish|list|show|retire|withdraw ... (--help for each)\n"
    "  publish FILE.so [--version V] [--force] [--runner PATH] [--json]\n"
    "                      sign and publish a module (artifact and pointer)\n"
    "  list [--json]       every published module, its signer checked\n"
    "  show NAME [--json]  one module's manifest, and whether its artifact is\n"
    "                      on the broker\n"
    "  retire NAME [--purge]   clear the pointer (and with --purge the\n"
    "                      artifacts): hosts stop fetching it\n"
    "  withdraw NAME VERSION   hosts drop and refuse that version's builds;\n"
    "                      the next lower version serves jobs\n"
    "exit: 0 done; 1 no such module (show, retire) or version (withdraw);\n"
    "2 usage, config, key, broker or publish error\n";

static const char usage_publish[] =
    "usage: muster module publish FILE.so [--version V] [--force] [--runner PATH]\n"
    "       [--json]\n"
    "  reads name, version and ABI with `muster-runner --describe` (which loads\n"
    "  the module: publish only what you built), signs a manifest (sha256,\n"
    "  size, published_at) with [publisher] fingerprint from [publisher]\n"
    "  gnupg_home (or the global --fingerprint, --gnupg-home), and publishes\n"
    "  the artifact on R/modules/NAME/SHA256, then the pointer on R/modules/NAME,\n"
    "  both retained, each acknowledged by the broker\n"
    "  --version V     must equal the module's own version (a check, never an\n"
    "                  override: hosts report the version the module states)\n"
    "  --force         publish even though the pointer names another build of\n"
    "                  the same version (refused otherwise: hosts that cached\n"
    "                  that build would keep it under the same version)\n"
    "  the publisher's certificate ([broker] cert, CN pub:NAME) is needed: the\n"
    "  broker lets no other role write modules (the demo: -c demo/publisher.conf)\n"
    "  --runner PATH   muster-runner to use (default: $MUSTER_RUNNER, then next\n"
    "                  to this muster binary, then ../libexec/muster/ and\n"
    "                  ../runner/ of it, then PATH)\n"
    "  --json          one JSON object: what was published\n"
    "exit: 0 published; 2 bad module, key, config or broker error, or the version\n"
    "already published as another build (nothing or, when the pointer was\n"
    "refused, only the artifact was published)\n";

static const char usage_list[] =
    "usage: muster module list [--json]\n"
    "  every module pointer retained on the broker: name, version, sha256, size,\n"
    "  when published, and the signer: its fingerprint when the signature is\n"
    "  good and by [publisher] fingerprint, \"unknown signer\" when it is by\n"
    "  another key, \"BAD SIGNATURE\" when it does not verify\n"
    "  --json          one JSON object per module\n";

static const char usage_show[] =
    "usage: muster module show NAME [--json]\n"
    "  the pointer's manifest (every field), the signature check, and whether\n"
    "  the artifact it names is on the broker and matches\n"
    "exit: 0 shown; 1 not published; 2 usage, config or broker error\n";

static const char usage_retire[] =
    "usage: muster module retire NAME [--purge]\n"
    "  clears the retained pointer R/modules/NAME.  Hosts that have the module\n"
    "  cached keep running their cached build for jobs; hosts without it answer\n"
    "  \"error: module NAME is not published\".\n"
    "  --purge         also clear every artifact R/modules/NAME/+ (jobs that pin\n"
    "                  a build's sha256 can then not fetch it either)\n"
    "exit: 0 retired; 1 not published (nothing to retire); 2 usage, config or\n"
    "broker error\n";

static const char usage_withdraw[] =
    "usage: muster module withdraw NAME VERSION | NAME@VERSION | NAME@SHA256\n"
    "  withdraws every build of NAME VERSION (or the one build SHA256, a\n"
    "  version re-published with --force): the pointer is signed again for\n"
    "  the build it names, or if that is withdrawn, the highest lower version\n"
    "  (for SHA256: or another build of the same version)\n"
    "  whose artifact (signed by [publisher] fingerprint) is on the broker,\n"
    "  its manifest listing the withdrawn\n"
    "  builds, and their artifacts are cleared.  Hosts drop those builds from\n"
    "  their cache and refuse them, pinned or not; unpinned jobs run the\n"
    "  lower version.\n"
    "exit: 0 withdrawn; 1 no such version, or no lower version to fall back\n"
    "to (nothing changed); 2 usage, config, key or broker error\n";

/* getopt_long over a subcommand's argv; --help prints text to stdout. */
int
sub_opts(int argc, char **argv, const struct option *opts, const char *text,
    int (*take)(int o, const char *v, void *arg), void *arg)
{
	int o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'h') {
			fputs(text, stdout);
			return CTL_HELP;
		}
		if (o == '?' || take(o, optarg, arg) != 0) {
			fputs(text, stderr);
			return EXIT_USAGE;
		}
	}
	return 0;
}

/* ---- the module file and its descriptor -------------------------------- */

struct desc {
	char name[NAME_MAX_LEN + 1];
	char version[WIRE_MAX_VERSION + 1];
	uint32_t abi;
	bool net;		/* "needs" has "net": MUSTER_NEEDS_NET */
};

/* The whole file, which must be a regular file of 1..WIRE_MAX_BIN bytes. */
static int
read_so(const char *path, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 || fstat(fd, &st) == -1) {
		fprintf(stderr, "muster: %s: %s\n", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return EXIT_USAGE;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > WIRE_MAX_BIN) {
		fprintf(stderr, "muster: %s: not a regular file of 1 byte to %u MiB\n",
		    path, WIRE_MAX_BIN >> 20);
		close(fd);
		return EXIT_USAGE;
	}
	if ((buf = malloc((size_t)st.st_size)) == NULL) {
		close(fd);
		return fprintf(stderr, "muster: out of memory\n"), EXIT_USAGE;
	}
	while (got < (size_t)st.st_size &&
	    ((n = read(fd, buf + got, (size_t)st.st_size - got)) > 0 ||
	    (n == -1 && errno == EINTR)))
		if (n > 0)
			got += (size_t)n;
	close(fd);
	if (got != (size_t)st.st_size) {
		fprintf(stderr, "muster: %s: short read (the file changed?)\n", path);
		free(buf);
		return EXIT_USAGE;
	}
	*out = buf;
	*len = got;
	return 0;
}

static bool
executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* --runner, $MUSTER_RUNNER, next to this binary, ../libexec/muster/ of it
 * (installed: /usr/bin/muster, /usr/libexec/muster/muster-runner),
 * ../runner/ of it (the build tree), then PATH. */
static int
find_runner(const char *flag, char *out, size_t size)
{
	char self[PATH_MAX - 64], *slash, *path, *p, *save = NULL;
	const char *env = getenv("MUSTER_RUNNER");
	ssize_t n;

	if (flag || (env && env[0])) {
		snprintf(out, size, "%s", flag ? flag : env);
		if (executable(out))
			return 0;
		fprintf(stderr, "muster: %s: not an executable muster-runner\n", out);
		return EXIT_USAGE;
	}
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		if ((slash = strrchr(self, '/')) != NULL)
			*slash = '\0';
		snprintf(out, size, "%s/muster-runner", self);
		if (executable(out))
			return 0;
		snprintf(out, size, "%s/../libexec/muster/muster-runner", self);
		if (executable(out))
			return 0;
		snprintf(out, size, "%s/../runner/muster-runner", self);
		if (executable(out))
			return 0;
	}
	if ((path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin")) == NULL)
		return EXIT_USAGE;
	for (p = strtok_r(path, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		snprintf(out, size, "%s/muster-runner", p);
		if (executable(out)) {
			free(path);
			return 0;
		}
	}
	free(path);
	fprintf(stderr, "muster: cannot find muster-runner (use --runner PATH or "
	    "$MUSTER_RUNNER)\n");
	return EXIT_USAGE;
}

/* An fd of ours at 10 or above, so the child's dup2 onto 1 and 3 never
 * meets itself (dup2 onto the same fd would keep close-on-exec). */
static int
fd_high(int fd)
{
	int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);

	close(fd);
	return h;
}

/* Start the runner on the bytes in memfd (as /proc/self/fd/3), its stdout
 * into the pipe, stderr to /dev/null (its reason is in the JSON too), with
 * signals as a fresh process has them. */
static int
describe_spawn(const char *runner, int memfd, int pipe_w, pid_t *pid)
{
	char *argv[] = { (char *)runner, "--describe", "/proc/self/fd/3", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	int rc;

	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_adddup2(&fa, memfd, 3);
	posix_spawn_file_actions_adddup2(&fa, pipe_w, 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(pid, runner, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return rc;
}

/* Read the runner's stdout (bounded; the rest is drained) until EOF or the
 * deadline, then reap it.  Returns its wait status, or -1 on timeout. */
static int
describe_collect(pid_t pid, int fd, char *out, size_t size, size_t *len)
{
	uint64_t deadline = now_mono_ms() + DESCRIBE_WAIT_MS;
	struct pollfd pfd = { fd, POLLIN, 0 };
	char sink[4096];
	int status = 0, timed_out = 0;
	ssize_t n;

	*len = 0;
	for (;;) {
		uint64_t now = now_mono_ms();

		if (now >= deadline) {
			timed_out = 1;
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
			continue;
		if (*len < size)
			n = read(fd, out + *len, size - *len);
		else
			n = read(fd, sink, sizeof(sink));
		if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN))
			break;
		if (n > 0 && *len < size)
			*len += (size_t)n;
	}
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	return timed_out ? -1 : status;
}

/* The descriptor's "needs" (a runner before it has none): each one must
 * be one this CLI can put in a manifest. */
static int
desc_needs(const char *file, json_t *j, struct desc *d)
{
	json_t *needs = json_object_get(j, "needs"), *v;
	size_t i;

	d->net = false;
	if (needs == NULL)
		return 0;
	if (!json_is_array(needs))
		return fprintf(stderr, "muster: %s: the descriptor's needs is not a "
		    "list\n", file), EXIT_USAGE;
	json_array_foreach(needs, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), "net") == 0)
			d->net = true;
		else
			return fprintf(stderr, "muster: %s: the module needs '%s', which "
			    "this muster cannot publish\n", file, json_is_string(v) ?
			    json_string_value(v) : "?"), EXIT_USAGE;
	}
	return 0;
}

static int
desc_from_json(const char *file, const char *text, size_t len, int status,
    struct desc *d)
{
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je), *v;
	const char *name = NULL, *version = NULL;
	json_int_t abi = -1;
	int rc = EXIT_USAGE;

	if (j && json_is_string(v = json_object_get(j, "error")))
		fprintf(stderr, "muster: %s: broken module descriptor: %s\n", file,
		    json_string_value(v));
	else if (j == NULL || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "muster: %s: muster-runner --describe failed (%s %d)\n",
		    file, status == -1 ? "timed out after" : WIFEXITED(status) ?
		    "exit" : "signal", status == -1 ? DESCRIBE_WAIT_MS / 1000 :
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	else if (json_unpack(j, "{s:s, s:s, s:I}", "name", &name, "version", &version,
	    "abi", &abi) != 0 || strlen(version) == 0 ||
	    strlen(version) > WIRE_MAX_VERSION || abi < 0 || abi > UINT32_MAX)
		fprintf(stderr, "muster: %s: the descriptor's name, version or ABI is "
		    "not publishable\n", file);
	else if (!name_valid(name))
		fprintf(stderr, "muster: %s: module name '%s' is not publishable: %s\n",
		    file, name, NAME_RULE);
	else if (desc_needs(file, j, d) == 0) {
		snprintf(d->name, sizeof(d->name), "%s", name);
		snprintf(d->version, sizeof(d->version), "%s", version);
		d->abi = (uint32_t)abi;
		rc = 0;
	}
	json_decref(j);
	return rc;
}

/* The descriptor of the bytes in so, as muster-runner --describe sees it. */
static int
describe(const char *runner, const char *file, const uint8_t *so, size_t len,
    struct desc *d)
{
	char *out = NULL;
	size_t outlen = 0;
	int memfd, p[2] = { -1, -1 }, status, rc = EXIT_USAGE;
	pid_t pid;

	memfd = memfd_create("muster-module", MFD_CLOEXEC);
	if (memfd == -1 || (memfd = fd_high(memfd)) == -1 ||
	    write_full(memfd, so, len) != MU_OK || pipe2(p, O_CLOEXEC) == -1 ||
	    (p[1] = fd_high(p[1])) == -1 || (out = malloc(DESCRIBE_OUT_MAX)) == NULL) {
		fprintf(stderr, "muster: describe %s: %s\n", file, strerror(errno));
		goto done;
	}
	if ((errno = describe_spawn(runner, memfd, p[1], &pid)) != 0) {
		fprintf(stderr, "muster: %s: %s\n", runner, strerror(errno));
		goto done;
	}
	close(p[1]);
	p[1] = -1;
	status = describe_collect(pid, p[0], out, DESCRIBE_OUT_MAX, &outlen);
	rc = desc_from_json(file, out, outlen, status, d);
done:
	free(out);
	if (memfd != -1)
		close(memfd);
	if (p[0] != -1)
		close(p[0]);
	if (p[1] != -1)
		close(p[1]);
	return rc;
}

/* ---- the broker -------------------------------------------------------- */

/*
 * A refused publish on the module, release or artifact topics is almost
 * always the wrong certificate: the broker's ACL lets only the publisher
 * role (CN pub:NAME, docs/operations.md "Identities and the ACL") write
 * them, and the broker says no more than "refused".  Name the role and
 * what this configuration's certificate is instead.
 */
static void
role_hint(struct ctl *c)
{
	const char *cert = c->cfg.broker.cert;
	char cn[256];
	struct mu_err err;

	if (cert[0] == '\0') {
		fprintf(stderr, "muster: only a client certificate of the publisher role "
		    "(CN pub:NAME) may write modules and releases, and [broker] cert is "
		    "not set\n");
		return;
	}
	if (hostsig_cert_file_cn(cert, cn, sizeof(cn), &err) != MU_OK) {
		fprintf(stderr, "muster: only a client certificate of the publisher role "
		    "(CN pub:NAME) may write modules and releases (%s)\n", err.msg);
		return;
	}
	if (strncmp(cn, "pub:", 4) != 0)
		fprintf(stderr, "muster: only a client certificate of the publisher role "
		    "(CN pub:NAME) may write modules and releases; [broker] cert %s is "
		    "CN %s.  Use the publisher's configuration (-c FILE; in the demo: "
		    "-c demo/publisher.conf)\n", cert, cn);
	else
		fprintf(stderr, "muster: [broker] cert %s is CN %s, the publisher role, "
		    "and the broker still refused: check its ACL (the \"role pub:\" "
		    "lines of broker-config/acl) and that the topic root matches\n",
		    cert, cn);
}

struct puback {
	int token;
	bool done, failed;
	bool refused;		/* the broker said no (not: lost, timed out) */
	char why[128];
};

static bool
on_puback(struct ctl *c, struct bus_event *ev, void *arg)
{
	struct puback *p = arg;

	(void)c;
	if (ev->type == BUS_LOST) {
		snprintf(p->why, sizeof(p->why), "lost the broker: %.100s", ev->reason);
		p->failed = true;
	} else if ((ev->type == BUS_PUBLISHED || ev->type == BUS_PUBLISH_FAILED) &&
	    ev->token == p->token) {
		p->done = true;
		p->failed = p->refused = ev->type == BUS_PUBLISH_FAILED;
		snprintf(p->why, sizeof(p->why), "%s", ev->reason[0] ? ev->reason :
		    "refused by the broker");
	}
	return p->done || p->failed;
}

/* Publish retained at QoS 1 and wait for the broker's PUBACK.  A PUBACK
 * with an error reason (MQTT 5: not authorized, too large) is a failure. */
int
publish_acked(struct ctl *c, const char *topic, const void *buf, size_t len,
    const char *what)
{
	struct puback p = { 0 };
	struct mu_err err;

	if (bus_publish(c->bus, topic, buf, len, 1, true, 0, &p.token, &err) != MU_OK) {
		fprintf(stderr, "muster: cannot publish the %s on %s: %s\n", what, topic,
		    err.msg);
		return EXIT_USAGE;
	}
	ctl_pump(c, now_mono_ms() + PUBACK_WAIT_MS, on_puback, &p, NULL);
	if (p.done && !p.failed)
		return 0;
	fprintf(stderr, "muster: the broker did not accept the %s on %s: %s\n", what,
	    topic, p.failed ? p.why : c->interrupted ? "interrupted" :
	    "no acknowledgement in time");
	if (p.refused)
		role_hint(c);
	return EXIT_USAGE;
}

/* ---- pointers ---------------------------------------------------------- */

enum sig_state { SIG_UNCHECKED, SIG_GOOD, SIG_UNKNOWN, SIG_BAD };

struct mod_ptr {
	char name[NAME_MAX_LEN + 1];	/* from the topic */
	uint8_t *raw;			/* owned */
	size_t len;
	bool decoded;
	struct signed_pointer p;	/* borrows raw */
	struct module_manifest m;	/* borrows raw */
	char problem[256];		/* why it does not decode or fit */
	enum sig_state sig;
	char signer[PGP_FPR_MAX + 1];
	char sig_why[256];
};

struct ptr_list {
	struct mod_ptr *v;
	size_t n;
	size_t prefix;			/* strlen("R/modules/") */
	bool one;			/* one name asked: done at the first */
};

static void
mod_ptr_free(struct mod_ptr *mp)
{
	if (mp->decoded) {
		wire_doc_free(&mp->m.doc);
		wire_doc_free(&mp->p.doc);
	}
	free(mp->raw);
	memset(mp, 0, sizeof(*mp));
}

static void
ptr_list_free(struct ptr_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		mod_ptr_free(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Decode a pointer and its manifest; on failure say why in problem. */
static void
mod_ptr_decode(struct mod_ptr *mp)
{
	struct mu_err err;

	if (pointer_decode(mp->raw, mp->len, &mp->p, &err) != MU_OK) {
		snprintf(mp->problem, sizeof(mp->problem), "bad pointer: %.200s", err.msg);
		return;
	}
	if (module_manifest_decode(mp->p.manifest.ptr, mp->p.manifest.len, &mp->m,
	    &err) != MU_OK) {
		snprintf(mp->problem, sizeof(mp->problem), "bad manifest: %.200s", err.msg);
		wire_doc_free(&mp->p.doc);
		return;
	}
	mp->decoded = true;
	if (strcmp(mp->m.name, mp->name) != 0)
		snprintf(mp->problem, sizeof(mp->problem),
		    "the manifest names module %s", mp->m.name);
}

/* Check the signature against the publisher's own keyring and key. */
static void
mod_ptr_verify(struct ctl *c, struct mod_ptr *mp)
{
	const char *allowed[1] = { c->cfg.fingerprint };
	struct mu_err err;
	int rc;

	if (!mp->decoded)
		return;
	if (c->cfg.fingerprint[0] == '\0') {
		mp->sig = SIG_UNCHECKED;
		snprintf(mp->sig_why, sizeof(mp->sig_why), "no [publisher] fingerprint "
		    "to check against");
		return;
	}
	rc = pgp_verify(c->cfg.gnupg_home[0] ? c->cfg.gnupg_home : NULL,
	    mp->p.manifest.ptr, mp->p.manifest.len, mp->p.sig.ptr, mp->p.sig.len,
	    allowed, 1, mp->signer, &err);
	/* pgp.c says a key missing from the keyring with MU_ESIG and this
	 * wording; to us that is a signer we do not know, not a forgery. */
	if (rc == MU_OK)
		mp->sig = SIG_GOOD;
	else if (rc == MU_ETRUST || (rc == MU_ESIG && strstr(err.msg, "not in keyring")))
		mp->sig = SIG_UNKNOWN;
	else
		mp->sig = rc == MU_ESIG ? SIG_BAD : SIG_UNCHECKED;
	if (rc != MU_OK)
		snprintf(mp->sig_why, sizeof(mp->sig_why), "%s", err.msg);
}

static const char *
signer_label(const struct mod_ptr *mp)
{
	switch (mp->sig) {
	case SIG_GOOD: return mp->signer;
	case SIG_UNKNOWN: return "unknown signer";
	case SIG_BAD: return "BAD SIGNATURE";
	default: return "unchecked";
	}
}

static const char *
sig_state_name(enum sig_state s)
{
	static const char *names[] = { "unchecked", "good", "unknown signer", "bad" };

	return names[s];
}

static bool
ptr_take(struct bus_event *ev, void *arg)
{
	struct ptr_list *l = arg;
	struct mod_ptr *v, *mp;
	const char *name;

	/* name_valid() refuses '/': artifacts and anything deeper stay out. */
	if (strlen(ev->topic) <= l->prefix || !name_valid(name = ev->topic + l->prefix))
		return false;
	if ((v = reallocarray(l->v, l->n + 1, sizeof(*v))) == NULL)
		return false;
	l->v = v;
	mp = memset(&l->v[l->n++], 0, sizeof(*mp));
	snprintf(mp->name, sizeof(mp->name), "%s", name);
	mp->raw = ev->payload;
	mp->len = ev->len;
	ev->payload = NULL;	/* the list owns it now */
	mod_ptr_decode(mp);
	return l->one;
}

/* The retained pointers under filter ("R/modules/+" or one name). */
static int
pointers_collect(struct ctl *c, const char *filter, struct ptr_list *out)
{
	char base[TOPIC_MAX];
	int rc;

	memset(out, 0, sizeof(*out));
	out->one = strchr(filter, '+') == NULL;
	snprintf(base, sizeof(base), "%s/v1/modules/", c->root);
	out->prefix = strlen(base);
	if ((rc = retained_collect(c, filter, RETAINED_QUIET_MS, ptr_take, out)) != 0)
		ptr_list_free(out);
	return rc;
}

/* The pointer of one module, or none (out->n == 0). */
static int
pointer_get(struct ctl *c, const char *name, struct ptr_list *out)
{
	char topic[TOPIC_MAX];

	if (topic_build(topic, sizeof(topic), c->root, TOPIC_MODULE, name, NULL) !=
	    MU_OK) {
		fprintf(stderr, "muster: '%s' is not a module name\n", name);
		return EXIT_USAGE;
	}
	return pointers_collect(c, topic, out);
}

const char *
when(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
	return buf;
}

static json_t *
ptr_json(const struct mod_ptr *mp)
{
	json_t *o = json_object();

	json_object_set_new(o, "name", json_string(mp->name));
	if (mp->decoded) {
		json_object_set_new(o, "version", json_string(mp->m.version));
		json_object_set_new(o, "abi", json_integer(mp->m.abi));
		json_object_set_new(o, "sha256", json_string(mp->m.sha256));
		json_object_set_new(o, "size", json_integer((json_int_t)mp->m.size));
		json_object_set_new(o, "published_at",
		    json_integer((json_int_t)mp->m.published_at));
		json_object_set_new(o, "net", json_boolean(mp->m.net));
		json_object_set_new(o, "signature", json_string(sig_state_name(mp->sig)));
		json_object_set_new(o, "signer", mp->sig == SIG_GOOD ?
		    json_string(mp->signer) : json_null());
		if (mp->sig_why[0])
			json_object_set_new(o, "signature_error", json_string(mp->sig_why));
	}
	if (mp->problem[0])
		json_object_set_new(o, "problem", json_string(mp->problem));
	return o;
}

/* ---- publish ----------------------------------------------------------- */

struct publish {
	const char *file;
	const char *version;	/* --version, or NULL */
	const char *runner;	/* --runner, or NULL */
	bool json;
	bool force;		/* --force: replace a version's build */
};

static int
publish_opt(int o, const char *v, void *arg)
{
	struct publish *p = arg;

	if (o == 'V')
		p->version = v;
	else if (o == 'r')
		p->runner = v;
	else if (o == 'J')
		p->json = true;
	else if (o == 'f')
		p->force = true;
	else
		return -1;
	return 0;
}

/*
 * The pointer this one replaces: its published_at is what ours must pass
 * (pointer.c), and its manifest says which build the version now names.
 * Hosts know a build by its version: a second build under the same one
 * would run side by side with the first (hosts that cached it keep it) and
 * both report one version.  So that is refused unless --force.
 */
static int
module_replaces(struct ctl *c, const struct publish *p, struct module_manifest *m,
    const char *topic)
{
	const struct module_manifest *old;
	struct ptr_list cur;
	char t[32];
	int rc;

	/* One name asked: the list holds its pointer or nothing. */
	if ((rc = pointer_get(c, m->name, &cur)) != 0)
		return rc;
	old = cur.n > 0 && cur.v[0].decoded ? &cur.v[0].m : NULL;
	if (old && strcmp(old->version, m->version) == 0 &&
	    strcmp(old->sha256, m->sha256) != 0) {
		if (!p->force) {
			fprintf(stderr, "muster: %s %s is already published as another "
			    "build (sha256 %s, %s); hosts that have it cached would keep "
			    "running it under the same version.  Give the module a new "
			    "version, or --force to replace the build anyway\n", m->name,
			    m->version, old->sha256, when(old->published_at, t, sizeof(t)));
			ptr_list_free(&cur);
			return EXIT_USAGE;
		}
		fprintf(stderr, "muster: --force: replacing %s %s (sha256 %s) with "
		    "sha256 %s; hosts that cached the old build may keep running it\n",
		    m->name, m->version, old->sha256, m->sha256);
	}
	rc = pointer_next_published_at(now_wall_ms(), old ? &old->published_at : NULL,
	    topic, &m->published_at);
	ptr_list_free(&cur);
	return rc;
}

/* Sign the manifest; encode artifact and pointer. */
static int
publish_build(struct ctl *c, const struct module_manifest *m, const uint8_t *so,
    msgpack_sbuffer *art, msgpack_sbuffer *ptr)
{
	msgpack_sbuffer man;
	struct module_artifact a = { 0 };
	struct mu_err err;
	void *sig = NULL;
	size_t siglen = 0;
	int rc = EXIT_USAGE;

	msgpack_sbuffer_init(&man);
	if (module_manifest_encode(m, &man, &err) != MU_OK)
		fprintf(stderr, "muster: manifest: %s\n", err.msg);
	else if ((rc = pointer_sign(c, &man, ptr, &sig, &siglen)) == 0) {
		a.manifest = (struct wire_bytes){ (const uint8_t *)man.data, man.size };
		a.sig = (struct wire_bytes){ sig, siglen };
		a.so = (struct wire_bytes){ so, m->size };
		if (module_artifact_encode(&a, art, &err) != MU_OK) {
			fprintf(stderr, "muster: encode: %s\n", err.msg);
			rc = EXIT_USAGE;
		}
	}
	free(sig);
	msgpack_sbuffer_destroy(&man);
	return rc;
}

static void
publish_report(struct ctl *c, const struct publish *p, const struct module_manifest *m,
    const char *art_topic, const char *ptr_topic)
{
	char t[32];

	if (p->json) {
		json_print_line(json_pack("{s:s, s:s, s:i, s:s, s:I, s:I, s:b, s:s, s:s, s:s}",
		    "name", m->name, "version", m->version, "abi", (int)m->abi,
		    "sha256", m->sha256, "size", (json_int_t)m->size,
		    "published_at", (json_int_t)m->published_at, "net", (int)m->net,
		    "signer", c->cfg.fingerprint, "artifact", art_topic,
		    "pointer", ptr_topic));
		return;
	}
	printf("published %s %s\n", m->name, m->version);
	printf("  sha256     %s\n", m->sha256);
	printf("  size       %" PRIu64 " bytes\n", m->size);
	printf("  abi        %" PRIu32 "\n", m->abi);
	printf("  network    %s\n", m->net ? "yes (MUSTER_NEEDS_NET)" : "no");
	printf("  published  %s (%" PRIu64 ")\n", when(m->published_at, t, sizeof(t)),
	    m->published_at);
	printf("  signer     %s\n", c->cfg.fingerprint);
	printf("  artifact   %s\n", art_topic);
	printf("  pointer    %s\n", ptr_topic);
}

static int
publish_send(struct ctl *c, const struct publish *p, struct module_manifest *m,
    const uint8_t *so)
{
	char art_topic[TOPIC_MAX], ptr_topic[TOPIC_MAX];
	msgpack_sbuffer art, ptr;
	int rc;

	if (topic_build(art_topic, sizeof(art_topic), c->root, TOPIC_MODULE_ARTIFACT,
	    m->name, m->sha256) != MU_OK ||
	    topic_build(ptr_topic, sizeof(ptr_topic), c->root, TOPIC_MODULE, m->name,
	    NULL) != MU_OK)
		return fprintf(stderr, "muster: no topic for %s\n", m->name), EXIT_USAGE;
	if ((rc = ctl_connect(c)) != 0 || (rc = module_replaces(c, p, m, ptr_topic)) != 0)
		return rc;
	msgpack_sbuffer_init(&art);
	msgpack_sbuffer_init(&ptr);
	rc = publish_build(c, m, so, &art, &ptr);
	if (rc == 0)
		rc = publish_acked(c, art_topic, art.data, art.size, "module artifact");
	if (rc == 0 && (rc = publish_acked(c, ptr_topic, ptr.data, ptr.size,
	    "module pointer")) != 0)
		fprintf(stderr, "muster: the artifact %s is on the broker, but no "
		    "pointer names it\n", art_topic);
	if (rc == 0)
		publish_report(c, p, m, art_topic, ptr_topic);
	msgpack_sbuffer_destroy(&art);
	msgpack_sbuffer_destroy(&ptr);
	return rc;
}

static int
mod_publish(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "version", required_argument, NULL, 'V' },
		{ "runner", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'J' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct publish p = { 0 };
	struct module_manifest m = { 0 };
	char runner[PATH_MAX];
	struct desc d;
	uint8_t *so = NULL;
	size_t len = 0;
	int rc;

	if ((rc = sub_opts(argc, argv, opts, usage_publish, publish_opt, &p)) != 0)
		return rc == CTL_HELP ? EXIT_OK : rc;
	if (optind != argc - 1)
		return fputs(usage_publish, stderr), EXIT_USAGE;
	p.file = argv[optind];
	if (c->cfg.fingerprint[0] == '\0') {
		fprintf(stderr, "muster: no publisher key: set [publisher] fingerprint "
		    "(and gnupg_home), or --fingerprint (and --gnupg-home)\n");
		return EXIT_USAGE;
	}
	if ((rc = find_runner(p.runner, runner, sizeof(runner))) != 0 ||
	    (rc = read_so(p.file, &so, &len)) != 0)
		return rc;
	if ((rc = describe(runner, p.file, so, len, &d)) == 0 && p.version &&
	    strcmp(p.version, d.version) != 0) {
		fprintf(stderr, "muster: %s: --version %s, but the module says it is "
		    "%s (hosts report that one): rebuild it, or drop --version\n",
		    p.file, p.version, d.version);
		rc = EXIT_USAGE;
	}
	if (rc == 0) {
		snprintf(m.name, sizeof(m.name), "%s", d.name);
		snprintf(m.version, sizeof(m.version), "%s", d.version);
		m.abi = d.abi;
		m.net = d.net;
		m.size = len;
		if (sha256_hex(so, len, m.sha256) != MU_OK) {
			fprintf(stderr, "muster: sha256 failed\n");
			rc = EXIT_USAGE;
		}
	}
	if (rc == 0)
		rc = publish_send(c, &p, &m, so);
	free(so);
	return rc;
}

/* ---- list -------------------------------------------------------------- */

static int
json_opt(int o, const char *v, void *arg)
{
	(void)v;
	if (o != 'J')
		return -1;
	*(bool *)arg = true;
	return 0;
}

static int
ptr_cmp(const void *x, const void *y)
{
	return strcmp(((const struct mod_ptr *)x)->name, ((const struct mod_ptr *)y)->name);
}

static void
list_print(const struct ptr_list *l)
{
	char t[32], sha[20];
	size_t i;

	printf("%-24s  %-10s  %-16s  %10s  %-20s  %s\n", "NAME", "VERSION", "SHA256",
	    "SIZE", "PUBLISHED", "SIGNER");
	for (i = 0; i < l->n; i++) {
		const struct mod_ptr *mp = &l->v[i];

		if (!mp->decoded) {
			printf("%-24s  %s\n", mp->name, mp->problem);
			continue;
		}
		snprintf(sha, sizeof(sha), "%.16s", mp->m.sha256);
		printf("%-24s  %-10s  %-16s  %10" PRIu64 "  %-20s  %s%s%s\n", mp->name,
		    mp->m.version, sha, mp->m.size, when(mp->m.published_at, t, sizeof(t)),
		    signer_label(mp), mp->problem[0] ? "; " : "", mp->problem);
	}
}

static int
mod_list(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char filter[TOPIC_MAX];
	struct ptr_list l;
	size_t i;
	int rc;

	if ((rc = sub_opts(argc, argv, opts, usage_list, json_opt, &c->json)) != 0)
		return rc == CTL_HELP ? EXIT_OK : rc;
	if (optind != argc)
		return fputs(usage_list, stderr), EXIT_USAGE;
	if (topic_filter(filter, sizeof(filter), c->root, TOPIC_MODULE, "+", NULL) != MU_OK)
		return EXIT_USAGE;
	if ((rc = ctl_connect(c)) != 0 || (rc = pointers_collect(c, filter, &l)) != 0)
		return rc;
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), ptr_cmp);
	for (i = 0; i < l.n; i++)
		mod_ptr_verify(c, &l.v[i]);
	if (c->json)
		for (i = 0; i < l.n; i++)
			json_print_line(ptr_json(&l.v[i]));
	else
		list_print(&l);
	ptr_list_free(&l);
	return 0;
}

/* ---- show -------------------------------------------------------------- */

struct art_check {
	const char *topic;
	const struct module_manifest *want;
	bool seen;
	char state[160];
};

static bool
art_take(struct bus_event *ev, void *arg)
{
	struct art_check *k = arg;
	struct module_artifact a;
	struct module_manifest m;
	char sha[SHA256_HEX_LEN + 1];
	struct mu_err err;

	if (strcmp(ev->topic, k->topic) != 0)
		return false;
	k->seen = true;
	if (module_artifact_decode(ev->payload, ev->len, &a, &err) != MU_OK) {
		snprintf(k->state, sizeof(k->state), "present but broken: %.120s", err.msg);
		return true;
	}
	if (module_manifest_decode(a.manifest.ptr, a.manifest.len, &m, &err) != MU_OK)
		snprintf(k->state, sizeof(k->state), "present but its manifest is "
		    "broken: %.100s", err.msg);
	else {
		sha256_hex(a.so.ptr, a.so.len, sha);
		if (strcmp(sha, k->want->sha256) != 0 || a.so.len != k->want->size ||
		    strcmp(m.sha256, k->want->sha256) != 0)
			snprintf(k->state, sizeof(k->state), "present but its content "
			    "does not match the pointer (sha256 %.16s..., %zu bytes)", sha,
			    a.so.len);
		else
			snprintf(k->state, sizeof(k->state), "present (sha256 and size "
			    "match)");
		wire_doc_free(&m.doc);
	}
	wire_doc_free(&a.doc);
	return true;
}

static void
show_print(const struct mod_ptr *mp, const char *ptr_topic, const char *art_topic,
    const char *art_state)
{
	const struct module_manifest *m = &mp->m;
	char t[32];

	printf("name          %s\n", mp->name);
	printf("kind          module\n");
	printf("version       %s\n", m->version);
	printf("abi           %" PRIu32 "\n", m->abi);
	printf("sha256        %s\n", m->sha256);
	printf("size          %" PRIu64 " bytes\n", m->size);
	printf("network       %s\n", m->net ? "yes (MUSTER_NEEDS_NET)" : "no");
	printf("published_at  %" PRIu64 " (%s)\n", m->published_at,
	    when(m->published_at, t, sizeof(t)));
	printf("signer        %s%s%s%s\n", signer_label(mp), mp->sig_why[0] ? " (" : "",
	    mp->sig_why, mp->sig_why[0] ? ")" : "");
	if (mp->problem[0])
		printf("problem       %s\n", mp->problem);
	printf("pointer       %s\n", ptr_topic);
	printf("artifact      %s: %s\n", art_topic, art_state);
}

static int
mod_show(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char ptr_topic[TOPIC_MAX], art_topic[TOPIC_MAX];
	struct art_check k = { .topic = art_topic, .state = "missing" };
	struct ptr_list l;
	struct mod_ptr *mp;
	json_t *o;
	int rc;

	if ((rc = sub_opts(argc, argv, opts, usage_show, json_opt, &c->json)) != 0)
		return rc == CTL_HELP ? EXIT_OK : rc;
	if (optind != argc - 1)
		return fputs(usage_show, stderr), EXIT_USAGE;
	if (!name_valid(argv[optind]))
		return fprintf(stderr, "muster: bad module name '%s': %s\n", argv[optind],
		    NAME_RULE), EXIT_USAGE;
	topic_build(ptr_topic, sizeof(ptr_topic), c->root, TOPIC_MODULE, argv[optind], NULL);
	if ((rc = ctl_connect(c)) != 0 || (rc = pointer_get(c, argv[optind], &l)) != 0)
		return rc;
	if (l.n == 0) {
		fprintf(stderr, "muster: module %s is not published\n", argv[optind]);
		ptr_list_free(&l);
		return EXIT_NOTFOUND;
	}
	mp = &l.v[l.n - 1];
	mod_ptr_verify(c, mp);
	if (!mp->decoded) {
		fprintf(stderr, "muster: %s: %s\n", ptr_topic, mp->problem);
		ptr_list_free(&l);
		return EXIT_USAGE;
	}
	k.want = &mp->m;
	topic_build(art_topic, sizeof(art_topic), c->root, TOPIC_MODULE_ARTIFACT, mp->name,
	    mp->m.sha256);
	rc = retained_collect(c, art_topic, ARTIFACT_WAIT_MS, art_take, &k);
	if (rc == 0 && c->json) {
		o = ptr_json(mp);
		json_object_set_new(o, "kind", json_string("module"));
		json_object_set_new(o, "pointer", json_string(ptr_topic));
		json_object_set_new(o, "artifact", json_string(art_topic));
		json_object_set_new(o, "artifact_present", json_boolean(k.seen));
		json_object_set_new(o, "artifact_state", json_string(k.state));
		json_print_line(o);
	} else if (rc == 0)
		show_print(mp, ptr_topic, art_topic, k.state);
	ptr_list_free(&l);
	return rc;
}

/* ---- retire ------------------------------------------------------------ */

struct topics {
	char (*v)[TOPIC_MAX];		/* owned */
	size_t n;
	char prefix[TOPIC_MAX];		/* R/modules/NAME/ */
};

static bool
topic_take(struct bus_event *ev, void *arg)
{
	struct topics *t = arg;
	char (*v)[TOPIC_MAX];
	const char *sha;

	/* R/modules/NAME/<sha256> only: not the pointer, nothing odd. */
	if (strncmp(ev->topic, t->prefix, strlen(t->prefix)) != 0 ||
	    !sha256hex_valid(sha = ev->topic + strlen(t->prefix)) ||
	    strlen(ev->topic) >= TOPIC_MAX ||
	    (v = reallocarray(t->v, t->n + 1, sizeof(*v))) == NULL)
		return false;
	t->v = v;
	snprintf(t->v[t->n++], TOPIC_MAX, "%s", ev->topic);
	return false;
}

/* Clear every retained artifact of the module the broker sends us. */
static int
purge_artifacts(struct ctl *c, const char *name)
{
	char filter[TOPIC_MAX + 2];
	struct topics t = { 0 };
	size_t i;
	int rc;

	snprintf(t.prefix, sizeof(t.prefix), "%s/v1/modules/%s/", c->root, name);
	snprintf(filter, sizeof(filter), "%s+", t.prefix);
	rc = retained_collect(c, filter, ARTIFACT_WAIT_MS, topic_take, &t);
	for (i = 0; rc == 0 && i < t.n; i++)
		rc = publish_acked(c, t.v[i], "", 0, "clearing of the artifact");
	if (rc == 0)
		printf("cleared %zu artifact%s of %s\n", t.n, t.n == 1 ? "" : "s", name);
	free(t.v);
	return rc;
}

static int
purge_opt(int o, const char *v, void *arg)
{
	(void)v;
	if (o != 'p')
		return -1;
	*(bool *)arg = true;
	return 0;
}

static int
mod_retire(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "purge", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char topic[TOPIC_MAX];
	struct ptr_list l;
	const char *name;
	bool purge = false;
	int rc;

	if ((rc = sub_opts(argc, argv, opts, usage_retire, purge_opt, &purge)) != 0)
		return rc == CTL_HELP ? EXIT_OK : rc;
	if (optind != argc - 1)
		return fputs(usage_retire, stderr), EXIT_USAGE;
	if (!name_valid(argv[optind]))
		return fprintf(stderr, "muster: bad module name '%s': %s\n", argv[optind],
		    NAME_RULE), EXIT_USAGE;
	name = argv[optind];
	topic_build(topic, sizeof(topic), c->root, TOPIC_MODULE, name, NULL);
	if ((rc = ctl_connect(c)) != 0 || (rc = pointer_get(c, name, &l)) != 0)
		return rc;
	if (l.n == 0 && !purge) {
		fprintf(stderr, "muster: module %s is not published; nothing to retire\n",
		    name);
		ptr_list_free(&l);
		return EXIT_NOTFOUND;
	}
	/* The pointer first: it must never name an artifact already gone. */
	if (l.n > 0 && (rc = publish_acked(c, topic, "", 0, "clearing of the pointer")) == 0) {
		if (l.v[0].decoded)
			printf("retired %s (was %s, sha256 %s)\n", name, l.v[0].m.version,
			    l.v[0].m.sha256);
		else
			printf("retired %s\n", name);
		printf("hosts that have %s cached keep running their cached build for "
		    "jobs;\nhosts without it answer: error: module %s is not published\n",
		    name, name);
	}
	if (rc == 0 && purge)
		rc = purge_artifacts(c, name);
	ptr_list_free(&l);
	return rc;
}

/* ---- withdraw ---------------------------------------------------------- */

/* One retained artifact of the module: owned bytes, and what they say. */
struct art {
	uint8_t *raw;			/* owned */
	size_t len;
	char topic[TOPIC_MAX];
	bool decoded;			/* a and m borrow raw */
	struct module_artifact a;
	struct module_manifest m;
	bool mine;			/* signed by [publisher] fingerprint, and
					 * the bytes are the manifest's */
};

struct art_list {
	struct art *v;
	size_t n;
	char prefix[TOPIC_MAX];		/* R/modules/NAME/ */
	const char *name;
};

static void
art_list_free(struct art_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->v[i].decoded) {
			wire_doc_free(&l->v[i].m.doc);
			wire_doc_free(&l->v[i].a.doc);
		}
		free(l->v[i].raw);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static bool
art_list_take(struct bus_event *ev, void *arg)
{
	struct art_list *l = arg;
	char sha[SHA256_HEX_LEN + 1];
	struct mu_err err;
	struct art *v, *x;
	const char *tsha;

	if (strncmp(ev->topic, l->prefix, strlen(l->prefix)) != 0 ||
	    !sha256hex_valid(tsha = ev->topic + strlen(l->prefix)) ||
	    strlen(ev->topic) >= TOPIC_MAX ||
	    (v = reallocarray(l->v, l->n + 1, sizeof(*v))) == NULL)
		return false;
	l->v = v;
	x = memset(&l->v[l->n++], 0, sizeof(*x));
	snprintf(x->topic, sizeof(x->topic), "%s", ev->topic);
	x->raw = ev->payload;
	x->len = ev->len;
	ev->payload = NULL;
	if (module_artifact_decode(x->raw, x->len, &x->a, &err) != MU_OK)
		return false;
	if (module_manifest_decode(x->a.manifest.ptr, x->a.manifest.len, &x->m, &err) !=
	    MU_OK) {
		wire_doc_free(&x->a.doc);
		return false;
	}
	x->decoded = true;
	sha256_hex(x->a.so.ptr, x->a.so.len, sha);
	x->mine = strcmp(x->m.name, l->name) == 0 && strcmp(x->m.sha256, tsha) == 0 &&
	    strcmp(sha, tsha) == 0 && x->a.so.len == x->m.size;
	return false;
}

/* Our signature on an artifact's manifest: only builds this publisher
 * signed are published again, never bytes the broker merely holds. */
static void
art_verify(struct ctl *c, struct art *x)
{
	const char *allowed[1] = { c->cfg.fingerprint };
	char signer[PGP_FPR_MAX + 1];
	struct mu_err err;

	if (x->mine && pgp_verify(c->cfg.gnupg_home[0] ? c->cfg.gnupg_home : NULL,
	    x->a.manifest.ptr, x->a.manifest.len, x->a.sig.ptr, x->a.sig.len, allowed, 1,
	    signer, &err) != MU_OK)
		x->mine = false;
}

/*
 * Versions in their natural order: runs of digits compare as numbers,
 * anything else byte by byte ("1.10.0" after "1.9.2").
 */
static int
version_cmp(const char *a, const char *b)
{
	while (*a && *b) {
		if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
			const char *x = a, *y = b;
			size_t lx, ly;
			int d;

			while (*x == '0' && isdigit((unsigned char)x[1]))
				x++;
			while (*y == '0' && isdigit((unsigned char)y[1]))
				y++;
			for (a = x; isdigit((unsigned char)*a); a++)
				;
			for (b = y; isdigit((unsigned char)*b); b++)
				;
			lx = (size_t)(a - x), ly = (size_t)(b - y);
			if (lx != ly)
				return lx < ly ? -1 : 1;
			if ((d = strncmp(x, y, lx)) != 0)
				return d;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++, b++;
	}
	return *a ? 1 : *b ? -1 : 0;
}

struct withdraw {
	const char *name, *version;
	const char *sha;		/* NAME@SHA256: that build only */
	char version_of_sha[WIRE_MAX_VERSION + 1];
	char withdrawn[WIRE_MAX_WITHDRAWN][SHA256_HEX_LEN + 1];
	size_t n;
};

static bool
withdraw_has(const struct withdraw *w, const char *sha)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		if (strcmp(w->withdrawn[i], sha) == 0)
			return true;
	return false;
}

static int
withdraw_add(struct withdraw *w, const char *sha)
{
	if (withdraw_has(w, sha))
		return 0;
	if (w->n == WIRE_MAX_WITHDRAWN) {
		fprintf(stderr, "muster: %s: more than %d builds withdrawn; publish a new "
		    "version instead\n", w->name, WIRE_MAX_WITHDRAWN);
		return EXIT_USAGE;
	}
	snprintf(w->withdrawn[w->n++], SHA256_HEX_LEN + 1, "%s", sha);
	return 0;
}

/* What the current pointer withdrew already, which the new one must go on
 * saying (only from a pointer whose signature holds). */
static int
withdraw_carry(struct withdraw *w, const struct mod_ptr *cur)
{
	size_t i;
	int rc = 0;

	for (i = 0; rc == 0 && cur && cur->decoded && cur->sig == SIG_GOOD &&
	    i < cur->m.nwithdrawn; i++)
		rc = withdraw_add(w, cur->m.withdrawn[i]);
	return rc;
}

/* NAME@SHA256: the one build, wherever the broker shows it; its version is
 * what the fallback must not be above. */
static int
withdraw_collect_sha(struct withdraw *w, const struct mod_ptr *cur,
    const struct art_list *arts, bool *found)
{
	const char *version = NULL;
	size_t i;
	int rc;

	if (cur && cur->decoded && strcmp(cur->m.sha256, w->sha) == 0)
		version = cur->m.version;
	for (i = 0; version == NULL && i < arts->n; i++)
		if (arts->v[i].decoded && strcmp(arts->v[i].m.sha256, w->sha) == 0)
			version = arts->v[i].m.version;
	if (version == NULL)
		return 0;
	*found = true;
	snprintf(w->version_of_sha, sizeof(w->version_of_sha), "%s", version);
	w->version = w->version_of_sha;
	rc = withdraw_add(w, w->sha);
	return rc ? rc : withdraw_carry(w, cur);
}

/*
 * The builds to withdraw: every one of that version on the broker (the
 * pointer's, the artifacts') and what the current pointer withdrew
 * already, which the new pointer must go on saying.
 */
static int
withdraw_collect(struct withdraw *w, struct mod_ptr *cur, const struct art_list *arts,
    bool *found)
{
	size_t i;
	int rc = 0;

	*found = false;
	if (w->sha)
		return withdraw_collect_sha(w, cur, arts, found);
	if (cur && cur->decoded && strcmp(cur->m.version, w->version) == 0) {
		*found = true;
		rc = withdraw_add(w, cur->m.sha256);
	}
	if (rc == 0)
		rc = withdraw_carry(w, cur);
	for (i = 0; rc == 0 && i < arts->n; i++)
		if (arts->v[i].decoded && strcmp(arts->v[i].m.version, w->version) == 0) {
			*found = true;
			rc = withdraw_add(w, arts->v[i].m.sha256);
		}
	return rc;
}

/*
 * What the pointer names next: the build it names now, if that is not
 * withdrawn (an older version was); else the highest version below the
 * withdrawn one, of equal versions the newest published.  Only builds we
 * signed whose artifact is on the broker.
 */
static struct art *
withdraw_fallback(const struct withdraw *w, const struct mod_ptr *cur,
    struct art_list *arts)
{
	struct art *best = NULL, *x;
	size_t i;
	int d;

	for (i = 0; cur && cur->decoded && cur->sig == SIG_GOOD && i < arts->n; i++) {
		x = &arts->v[i];
		if (x->decoded && x->mine && strcmp(x->m.sha256, cur->m.sha256) == 0 &&
		    !withdraw_has(w, x->m.sha256))
			return x;
	}
	for (i = 0; i < arts->n; i++) {
		x = &arts->v[i];
		/* One build withdrawn (NAME@SHA256): another of its version
		 * will do as well as a lower one. */
		d = version_cmp(x->m.version, w->version);
		if (!x->decoded || !x->mine || withdraw_has(w, x->m.sha256) ||
		    d > 0 || (d == 0 && w->sha == NULL))
			continue;
		if (best == NULL || (d = version_cmp(x->m.version, best->m.version)) > 0 ||
		    (d == 0 && x->m.published_at > best->m.published_at))
			best = x;
	}
	return best;
}

/* Point at the fallback again, freshly signed and carrying the list. */
static int
withdraw_repoint(struct ctl *c, const struct withdraw *w, const struct mod_ptr *cur,
    const struct art *fb, struct module_manifest *m)
{
	char art_topic[TOPIC_MAX], ptr_topic[TOPIC_MAX];
	msgpack_sbuffer art, ptr;
	int rc;

	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", fb->m.name);
	snprintf(m->version, sizeof(m->version), "%s", fb->m.version);
	snprintf(m->sha256, sizeof(m->sha256), "%s", fb->m.sha256);
	m->abi = fb->m.abi;
	m->size = fb->m.size;
	/* Its own declaration, as signed when it was published. */
	m->net = fb->m.net;
	m->nwithdrawn = w->n;
	memcpy(m->withdrawn, w->withdrawn, sizeof(m->withdrawn));
	topic_build(art_topic, sizeof(art_topic), c->root, TOPIC_MODULE_ARTIFACT, m->name,
	    m->sha256);
	topic_build(ptr_topic, sizeof(ptr_topic), c->root, TOPIC_MODULE, m->name, NULL);
	if ((rc = pointer_next_published_at(now_wall_ms(), cur && cur->decoded ?
	    &cur->m.published_at : NULL, ptr_topic, &m->published_at)) != 0)
		return rc;
	msgpack_sbuffer_init(&art);
	msgpack_sbuffer_init(&ptr);
	rc = publish_build(c, m, fb->a.so.ptr, &art, &ptr);
	if (rc == 0)
		rc = publish_acked(c, art_topic, art.data, art.size, "module artifact");
	if (rc == 0)
		rc = publish_acked(c, ptr_topic, ptr.data, ptr.size, "module pointer");
	msgpack_sbuffer_destroy(&art);
	msgpack_sbuffer_destroy(&ptr);
	return rc;
}

static int
no_opt(int o, const char *v, void *arg)
{
	(void)o, (void)v, (void)arg;
	return -1;
}

/* NAME VERSION, NAME@VERSION or NAME@SHA256 (64 hex digits: a build). */
static int
withdraw_args(struct withdraw *w, int argc, char **argv)
{
	char *at;

	if (argc == 2)
		w->name = argv[0], w->version = argv[1];
	else if (argc == 1 && (at = strchr(argv[0], '@')) != NULL) {
		*at = '\0';
		w->name = argv[0];
		if (sha256hex_valid(at + 1))
			w->sha = at + 1;
		else
			w->version = at + 1;
	} else
		return fputs(usage_withdraw, stderr), EXIT_USAGE;
	if (!name_valid(w->name))
		return fprintf(stderr, "muster: bad module name '%s': %s\n", w->name,
		    NAME_RULE), EXIT_USAGE;
	if (w->version && !version_valid(w->version))
		return fprintf(stderr, "muster: bad version '%s' (or a sha256: 64 lower-case "
		    "hex digits)\n", w->version), EXIT_USAGE;
	return 0;
}

static int
mod_withdraw(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct withdraw w = { 0 };
	struct art_list arts = { 0 };
	struct module_manifest m;
	char filter[TOPIC_MAX + 2];
	struct mod_ptr *cur;
	struct ptr_list l;
	struct art *fb;
	bool found;
	size_t i;
	int rc;

	if ((rc = sub_opts(argc, argv, opts, usage_withdraw, no_opt, NULL)) != 0)
		return rc == CTL_HELP ? EXIT_OK : rc;
	if ((rc = withdraw_args(&w, argc - optind, argv + optind)) != 0)
		return rc;
	if (c->cfg.fingerprint[0] == '\0') {
		fprintf(stderr, "muster: no publisher key: set [publisher] fingerprint "
		    "(and gnupg_home), or --fingerprint (and --gnupg-home)\n");
		return EXIT_USAGE;
	}
	if ((rc = ctl_connect(c)) != 0 || (rc = pointer_get(c, w.name, &l)) != 0)
		return rc;
	cur = l.n > 0 ? &l.v[0] : NULL;
	if (cur)
		mod_ptr_verify(c, cur);
	arts.name = w.name;
	snprintf(arts.prefix, sizeof(arts.prefix), "%s/v1/modules/%s/", c->root, w.name);
	snprintf(filter, sizeof(filter), "%s+", arts.prefix);
	rc = retained_collect(c, filter, ARTIFACT_WAIT_MS, art_list_take, &arts);
	for (i = 0; rc == 0 && i < arts.n; i++)
		art_verify(c, &arts.v[i]);
	if (rc == 0 && (rc = withdraw_collect(&w, cur, &arts, &found)) == 0 && !found) {
		fprintf(stderr, "muster: no build of %s %s is on the broker\n", w.name,
		    w.sha ? w.sha : w.version);
		rc = EXIT_NOTFOUND;
	}
	if (rc == 0 && (fb = withdraw_fallback(&w, cur, &arts)) == NULL) {
		fprintf(stderr, "muster: no lower version of %s than %s, signed by %s, is "
		    "on the broker to fall back to; nothing changed.  Publish one first "
		    "(hosts then run it), or retire %s --purge (hosts that cached %s "
		    "keep it)\n", w.name, w.version, c->cfg.fingerprint, w.name,
		    w.version);
		rc = EXIT_NOTFOUND;
	}
	/* The new pointer first: hosts learn of the withdrawal from it, and it
	 * never names an artifact that is gone. */
	if (rc == 0 && (rc = withdraw_repoint(c, &w, cur, fb, &m)) == 0) {
		printf("withdrew %s %s%s%s (%zu build%s withdrawn in all); the pointer now "
		    "names %s (sha256 %s)\n", w.name, w.sha ? "build " : "",
		    w.sha ? w.sha : w.version, w.sha ? "" : "", w.n, w.n == 1 ? "" : "s",
		    m.version, m.sha256);
		printf("hosts drop the withdrawn builds from their cache and refuse "
		    "them, pinned or not\n");
		for (i = 0; rc == 0 && i < arts.n; i++)
			if (arts.v[i].decoded && withdraw_has(&w, arts.v[i].m.sha256))
				rc = publish_acked(c, arts.v[i].topic, "", 0,
				    "clearing of the artifact");
	}
	art_list_free(&arts);
	ptr_list_free(&l);
	return rc;
}

/* ---- the command ------------------------------------------------------- */

int
cmd_module(struct ctl *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct ctl *, int, char **);
	} subs[] = {
		{ "publish", mod_publish }, { "list", mod_list },
		{ "show", mod_show }, { "retire", mod_retire },
		{ "withdraw", mod_withdraw },
	};
	size_t i;

	if (argc >= 2)
		for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
			if (strcmp(argv[1], subs[i].name) == 0)
				return subs[i].fn(c, argc - 1, argv + 1);
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage_module, stdout);
		return EXIT_OK;
	}
	if (argc >= 2)
		fprintf(stderr, "muster: unknown module command '%s'\n", argv[1]);
	fputs(usage_module, stderr);
	return EXIT_USAGE;
}
