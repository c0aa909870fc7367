/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check.c - muster-server --check-config: what the service will need at
 * start, checked as the user it will run as.
 *
 * The unit runs the server as [server] user (muster-server) and runs this
 * check first as ExecStartPre, as that user: then every check is a plain
 * open() or access().  Run by hand as root, it forks a child that takes
 * that user's uid, gid and groups before checking, so a key only root can
 * read fails here, naming the file, instead of as "TCP/TLS connect failure
 * (reason 0)" from Paho once the service runs.  Every problem found is
 * reported (file and reason), not only the first; the configuration's
 * own syntax errors stop at the first, as the parser does.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "sign.h"

/* What to do about a certificate the user cannot read. */
#define PUBLIC_HINT	" (it is public: install it 0644)"

struct check {
	const char *path;	/* the configuration, in front of every message */
	char user[CONF_USER_MAX + 1];	/* whom the checks run as */
	char group[64];		/* that user's primary group, for the hints */
	char secret_hint[128];	/* how to make a secret readable by it alone */
	int failed;
};

static void __attribute__((format(printf, 2, 3)))
check_fail(struct check *k, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "muster-server: %s: ", k->path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	k->failed++;
}

/* Open a file the service will read, as the service would.  NULL (and a
 * message naming the key, the file and the reason) if it cannot. */
static FILE *
check_open(struct check *k, const char *what, const char *file, const char *hint)
{
	struct stat st;
	FILE *f;
	int e;

	if ((f = fopen(file, "re")) == NULL) {
		e = errno;
		if (e == ENOENT)
			check_fail(k, "%s %s: %s", what, file, strerror(e));
		else
			check_fail(k, "%s %s: cannot be read by user %s: %s%s", what, file,
			    k->user, strerror(e), e == EACCES ? hint : "");
		return NULL;
	}
	if (fstat(fileno(f), &st) == -1 || !S_ISREG(st.st_mode)) {
		check_fail(k, "%s %s: not a regular file", what, file);
		fclose(f);
		return NULL;
	}
	return f;
}

/* The last OpenSSL error as text, or a fallback. */
static const char *
ssl_reason(const char *fallback)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r != NULL ? r : fallback;
}

/* A pass phrase would be asked for on the terminal: the service has none. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* [broker] ca: the server checks every host signature against it. */
static X509_STORE *
check_ca(struct check *k, const struct broker_config *b)
{
	X509_STORE *store;
	X509 *x;
	FILE *f;
	int n = 0;

	if (b->ca[0] == '\0') {
		check_fail(k, "[broker] ca is not set: the server checks every host "
		    "signature against the fleet CA (e.g. /etc/muster/ca.crt)");
		return NULL;
	}
	if ((f = check_open(k, "[broker] ca", b->ca, PUBLIC_HINT)) == NULL)
		return NULL;
	if ((store = X509_STORE_new()) == NULL) {
		fclose(f);
		check_fail(k, "out of memory");
		return NULL;
	}
	while ((x = PEM_read_X509(f, NULL, no_passphrase, NULL)) != NULL) {
		if (X509_STORE_add_cert(store, x) == 1)
			n++;
		X509_free(x);
	}
	ERR_clear_error();
	fclose(f);
	if (n == 0) {
		check_fail(k, "[broker] ca %s: no PEM certificate in it", b->ca);
		X509_STORE_free(store);
		return NULL;
	}
	return store;
}

/*
 * [broker] cert: a PEM certificate, in force, issued by the CA, with the
 * server's role in its CN (the broker's ACL gives server rights to
 * srv:NAME only: with another CN the server connects, and then the broker
 * silently hands it nothing).  Returns it for the key check.
 */
static X509 *
check_cert(struct check *k, const struct broker_config *b, X509_STORE *ca)
{
	X509_STORE_CTX *ctx;
	char cn[256];
	X509 *x;
	FILE *f;
	int ok;

	if ((f = check_open(k, "[broker] cert", b->cert, PUBLIC_HINT)) == NULL)
		return NULL;
	x = PEM_read_X509(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (x == NULL) {
		check_fail(k, "[broker] cert %s: not a PEM certificate (%s)", b->cert,
		    ssl_reason("no certificate"));
		return NULL;
	}
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
	    sizeof(cn)) <= 0)
		cn[0] = '\0';
	if (strncmp(cn, "srv:", 4) != 0 || cn[4] == '\0')
		check_fail(k, "[broker] cert %s: CN '%s' is not a server's (want "
		    "srv:NAME, as scripts/gen-pki --server NAME makes it; the "
		    "broker's ACL gives server rights to srv: names only)", b->cert, cn);
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
		check_fail(k, "[broker] cert %s: expired", b->cert);
	else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
		check_fail(k, "[broker] cert %s: not valid yet", b->cert);
	else if (ca != NULL) {
		if ((ctx = X509_STORE_CTX_new()) == NULL ||
		    X509_STORE_CTX_init(ctx, ca, x, NULL) != 1) {
			check_fail(k, "out of memory");
		} else {
			ok = X509_verify_cert(ctx);
			if (ok != 1)
				check_fail(k, "[broker] cert %s: not issued by [broker] ca "
				    "%s: %s", b->cert, b->ca, X509_verify_cert_error_string(
				    X509_STORE_CTX_get_error(ctx)));
		}
		X509_STORE_CTX_free(ctx);
	}
	ERR_clear_error();
	return x;
}

/* [broker] key: readable by the service (the usual failure), unencrypted
 * PEM, and the certificate's. */
static void
check_key(struct check *k, const struct broker_config *b, X509 *cert,
    const char *hint)
{
	EVP_PKEY *pk;
	FILE *f;

	if ((f = check_open(k, "[broker] key", b->key, hint)) == NULL)
		return;
	pk = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (pk == NULL) {
		check_fail(k, "[broker] key %s: not an unencrypted PEM private key (%s)",
		    b->key, ssl_reason("no key"));
		return;
	}
	if (cert != NULL && X509_check_private_key(cert, pk) != 1)
		check_fail(k, "[broker] key %s: does not belong to [broker] cert %s",
		    b->key, b->cert);
	ERR_clear_error();
	EVP_PKEY_free(pk);
}

static void
check_broker(struct check *k, const struct broker_config *b)
{
	X509_STORE *ca;
	X509 *cert = NULL;
	bool tls = false;
	int i;

	for (i = 0; i < b->nuris; i++)
		if (strncmp(b->uris[i], "ssl://", 6) == 0 ||
		    strncmp(b->uris[i], "mqtts://", 8) == 0 ||
		    strncmp(b->uris[i], "wss://", 6) == 0)
			tls = true;
	ca = check_ca(k, b);
	if (b->cert[0] == '\0' && b->key[0] == '\0') {
		/* The broker of broker-config/ takes no client without one. */
		if (tls)
			check_fail(k, "[broker] cert and key are not set: the broker "
			    "needs the server's certificate (scripts/gen-pki --server NAME)");
	} else if (b->cert[0] == '\0' || b->key[0] == '\0') {
		check_fail(k, "[broker] %s is set but %s is not", b->cert[0] ? "cert" : "key",
		    b->cert[0] ? "key" : "cert");
	} else {
		cert = check_cert(k, b, ca);
		check_key(k, b, cert, k->secret_hint);
	}
	X509_free(cert);
	X509_STORE_free(ca);
}

/* An SQLite file, its folder (the journal files are made next to it) and
 * journal files an earlier run (perhaps as another user) left. */
static void
check_sqlite(struct check *k, const char *file)
{
	static const char *side[] = { "", "-wal", "-shm", "-journal" };
	char copy[CONF_PATH_MAX], path[CONF_PATH_MAX + 16];
	const char *dir;
	struct stat st;
	size_t i;

	snprintf(copy, sizeof(copy), "%s", file);
	dir = dirname(copy);
	if (stat(dir, &st) == -1) {
		check_fail(k, "[archive] url %s: folder %s: %s%s", file, dir, strerror(errno),
		    strcmp(file, SERVER_ARCHIVE_DEFAULT) == 0 ? " (the muster-server "
		    "package and the unit's StateDirectory= make it)" : "");
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		check_fail(k, "[archive] url %s: %s is not a folder", file, dir);
		return;
	}
	if (access(dir, W_OK | X_OK) == -1) {
		check_fail(k, "[archive] url %s: folder %s is not writable by user %s: %s",
		    file, dir, k->user, strerror(errno));
		return;
	}
	for (i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", file, side[i]);
		if (stat(path, &st) == -1)
			continue;
		if (!S_ISREG(st.st_mode))
			check_fail(k, "[archive] url %s: %s is not a regular file", file, path);
		else if (access(path, R_OK | W_OK) == -1)
			check_fail(k, "[archive] url %s: %s is not writable by user %s: %s",
			    file, path, k->user, strerror(errno));
	}
}

static void
check_archive(struct check *k, const char *url)
{
	PQconninfoOption *opts;
	char *msg = NULL;

	if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
		/* Only its form: the database may well be down at this time. */
		if ((opts = PQconninfoParse(url, &msg)) == NULL) {
			check_fail(k, "[archive] url: bad PostgreSQL URL: %s",
			    msg ? strtok(msg, "\n") : "out of memory");
			PQfreemem(msg);
			return;
		}
		PQconninfoFree(opts);
		return;
	}
	if (url[0] != '/') {
		check_fail(k, "[archive] url %s: want an absolute path (the service "
		    "runs in /) or a postgresql:// URL", url);
		return;
	}
	check_sqlite(k, url);
}

static void
operators_warn(void *arg, const char *msg)
{
	struct check *k = arg;

	check_fail(k, "[trust] operators: %s", msg);
}

/* [trust] operators: the keys job announces are checked with (jobs.c).
 * A key that does not load is left out by the server, and no key at all
 * refuses every announce: both fail the check. */
static void
check_operators(struct check *k, const struct server_config *c)
{
	struct keyring ring = { 0 };
	struct mu_err err;

	if (c->operators[0] == '\0')
		return;
	if (keyring_load_dir(&ring, c->operators, operators_warn, k, &err) != MU_OK) {
		check_fail(k, "[trust] operators %s: cannot be read by user %s: %s",
		    c->operators, k->user, err.msg);
		return;
	}
	if (ring.nkeys == 0)
		check_fail(k, "[trust] operators %s: no NAME.pub key in it: every job "
		    "announce would be refused", c->operators);
	keyring_free(&ring);
}

/* The signing pair of release halts (halt.c): set in the file, it must
 * load; only derived from [broker], missing is a note (the server then
 * counts releases and cannot halt them), anything else a failure. */
static void
check_sign_pair(struct check *k, const struct server_config *c)
{
	struct hostsig_signer *signer;
	struct mu_err err;

	if (c->sign_key[0] == '\0')
		return;
	if (!c->sign_set && access(c->sign_key, F_OK) == -1 && errno == ENOENT) {
		printf("muster-server: note: no signing pair %s: release halts cannot be "
		    "published (gen-pki issues srv/NAME.sign.{key,crt})\n", c->sign_key);
		return;
	}
	if (hostsig_signer_load(c->sign_key, c->sign_cert, &signer, &err) != MU_OK) {
		check_fail(k, "[server] sign_key/sign_cert (as user %s): %s", k->user, err.msg);
		return;
	}
	hostsig_signer_free(signer);
}

/* Everything else the server opens at start. */
static void
check_files(struct check *k, const struct server_config *c)
{
	struct sign_key *key;
	struct mu_err err;
	FILE *f;

	if (c->auth_file[0] != '\0' &&
	    (f = check_open(k, "[server] auth_file", c->auth_file, k->secret_hint)) != NULL) {
		fclose(f);
		if (http_auth_check(c->auth_file, &err) != MU_OK)
			check_fail(k, "[server] auth_file %s", err.msg);
	}
	if (c->www[0] != '\0' && access(c->www, R_OK | X_OK) == -1)
		check_fail(k, "[server] www %s: cannot be read by user %s: %s", c->www,
		    k->user, strerror(errno));
	/* The self-test key is used only when a request comes: load it now. */
	if (c->selftest_key[0] != '\0') {
		if ((f = check_open(k, "[selftest] key", c->selftest_key, k->secret_hint)) != NULL) {
			fclose(f);
			if (sign_key_load_private(c->selftest_key, &key, &err) != MU_OK)
				check_fail(k, "[selftest] key: %s", err.msg);
			else
				sign_key_free(key);
		}
	}
}

/* The checks, as whoever this process is now. */
static int
check_as_self(struct check *k)
{
	struct server_config c;
	struct passwd *pw;
	struct group *gr;
	struct mu_err err;

	if ((pw = getpwuid(geteuid())) != NULL)
		snprintf(k->user, sizeof(k->user), "%s", pw->pw_name);
	else
		snprintf(k->user, sizeof(k->user), "%u", (unsigned)geteuid());
	if ((gr = getgrgid(getegid())) != NULL)
		snprintf(k->group, sizeof(k->group), "%s", gr->gr_name);
	else
		snprintf(k->group, sizeof(k->group), "%u", (unsigned)getegid());
	snprintf(k->secret_hint, sizeof(k->secret_hint), " (install it 0640 root:%s)",
	    k->group);
	/* Read again as this user: the service must be able to read it too. */
	config_server_defaults(&c);
	if (config_server_load(&c, k->path, &err) != MU_OK) {
		fprintf(stderr, "muster-server: %s", err.msg);
		if (strstr(err.msg, "Permission denied") != NULL)
			fprintf(stderr, " (user %s must read it: install it 0640 root:%s, "
			    "as the package does)", k->user, k->group);
		fputc('\n', stderr);
		return 1;
	}
	check_broker(k, &c.broker);
	check_archive(k, c.archive_url);
	check_files(k, &c);
	check_operators(k, &c);
	check_sign_pair(k, &c);
	if (k->failed > 0)
		return 1;
	printf("muster-server: %s: ok as user %s (name %s, http://%s:%d/, archive %s)\n",
	    k->path, k->user, c.name, c.listen, c.port, c.archive_url);
	if (strcmp(k->user, c.user) != 0)
		printf("muster-server: checked as %s, not as [server] user %s: run it as "
		    "root to check what %s can read\n", k->user, c.user, c.user);
	return 0;
}

/* Root: the same checks in a child that has become the service's user. */
static int
check_as_user(struct check *k, const char *user)
{
	struct passwd *pw;
	pid_t pid;
	int status;

	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		fprintf(stderr, "muster-server: %s: [server] user %s: %s (the muster-server "
		    "package makes it; set the unit's User= and this key alike)\n", k->path,
		    user, errno ? strerror(errno) : "no such user");
		return 1;
	}
	fflush(NULL);
	if ((pid = fork()) == -1) {
		fprintf(stderr, "muster-server: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		if (initgroups(pw->pw_name, pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
		    setuid(pw->pw_uid) == -1) {
			fprintf(stderr, "muster-server: cannot become user %s: %s\n", user,
			    strerror(errno));
			_exit(1);
		}
		status = check_as_self(k);
		fflush(NULL);
		_exit(status);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			fprintf(stderr, "muster-server: waitpid: %s\n", strerror(errno));
			return 1;
		}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int
check_config(const char *path)
{
	struct server_config c;
	struct check k;
	struct mu_err err;

	memset(&k, 0, sizeof(k));
	k.path = path;
	if (geteuid() != 0)
		return check_as_self(&k);
	/* Root reads the file first to learn whom to check as. */
	config_server_defaults(&c);
	if (config_server_load(&c, path, &err) != MU_OK) {
		fprintf(stderr, "muster-server: %s\n", err.msg);
		return 1;
	}
	if (strcmp(c.user, "root") != 0)
		return check_as_user(&k, c.user);
	return check_as_self(&k);
}
