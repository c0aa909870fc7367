/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check.c - `muster --check-config`: the configuration as a command would
 * use it (file, then flags), and the files it names, read as this user.
 *
 * A command finds a bad key only when it needs it, often after it has
 * connected (a TLS key that does not match its certificate shows up as a
 * refused handshake at the broker).  The check says it up front, naming
 * the key, so an admin can validate a muster.conf, and the tests can feed
 * the shipped examples to the program that reads them.
 */
#include "ctl.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* The first certificate in a PEM file, or NULL with the reason in err. */
static X509 *
cert_load(const char *what, const char *path, struct mu_err *err)
{
	FILE *f = fopen(path, "re");
	X509 *x;

	if (f == NULL) {
		mu_errf(err, MU_EIO, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		mu_errf(err, MU_EINVAL, "%s %s: not a PEM certificate", what, path);
	return x;
}

/* [broker] ca, cert, key: each set one loads, and the key is the
 * certificate's.  Unset ones are Paho's business (no client certificate:
 * the broker refuses the handshake, and says so). */
static int
check_tls(const struct broker_config *b, struct mu_err *err)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	FILE *f;
	int rc = MU_OK;

	if (b->ca[0]) {
		if ((x = cert_load("[broker] ca", b->ca, err)) == NULL)
			return MU_EINVAL;
		X509_free(x);
		x = NULL;
	}
	if (b->cert[0] && (x = cert_load("[broker] cert", b->cert, err)) == NULL)
		return MU_EINVAL;
	if (b->key[0]) {
		if ((f = fopen(b->key, "re")) == NULL)
			rc = mu_errf(err, MU_EIO, "[broker] key %s: %s", b->key, strerror(errno));
		else {
			key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
			fclose(f);
			if (key == NULL)
				rc = mu_errf(err, MU_EINVAL, "[broker] key %s: not a PEM private "
				    "key (or one with a passphrase)", b->key);
		}
	}
	if (rc == MU_OK && x != NULL && key != NULL && X509_check_private_key(x, key) != 1)
		rc = mu_errf(err, MU_EINVAL, "[broker] key %s does not belong to [broker] "
		    "cert %s", b->key, b->cert);
	if (rc == MU_OK && (x == NULL) != (key == NULL))
		rc = mu_errf(err, MU_EINVAL, "[broker] cert and key go together: only %s is set",
		    x ? "cert" : "key");
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

int
ctl_check_config(struct ctl *c, const char *path)
{
	struct mu_err err;
	struct stat st;

	if (check_tls(&c->cfg.broker, &err) != MU_OK) {
		fprintf(stderr, "muster: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (c->cfg.operator_key[0] && ctl_load_key(c) != 0)
		return EXIT_USAGE;			/* ctl_load_key() said why */
	if (c->cfg.gnupg_home[0] && stat(c->cfg.gnupg_home, &st) != 0) {
		fprintf(stderr, "muster: [publisher] gnupg_home %s: %s\n", c->cfg.gnupg_home,
		    strerror(errno));
		return EXIT_USAGE;
	}
	if (c->cfg.gnupg_home[0] && !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "muster: [publisher] gnupg_home %s: not a folder\n",
		    c->cfg.gnupg_home);
		return EXIT_USAGE;
	}
	printf("muster: %s: ok (broker %s", path ? path :
	    "no configuration file, defaults and flags", c->cfg.broker.uris[0]);
	if (c->key)
		printf(", operator key %s %s", sign_key_name(c->key), sign_key_id(c->key));
	printf(")\n");
	return EXIT_OK;
}
