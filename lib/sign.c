/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sign.c - Ed25519 keys and envelope signatures with OpenSSL 3 EVP.
 */
#include "sign.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

struct sign_key {
	EVP_PKEY *pkey;
	char id[KEYID_HEX_LEN + 1];
	char name[256];
};

static void
hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

int
sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1])
{
	uint8_t md[32];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return MU_EIO;
	hex_encode(md, 32, out);
	return MU_OK;
}

/* Key id of a raw 32-byte public key, written as 16 hex chars + NUL. */
static int
sign_keyid_raw(const uint8_t pub[32], char out[KEYID_HEX_LEN + 1])
{
	uint8_t md[32];
	unsigned int mdlen = 0;

	if (!EVP_Digest(pub, 32, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return MU_EIO;
	hex_encode(md, KEYID_HEX_LEN / 2, out);
	return MU_OK;
}

/* Take ownership of pkey: check it is Ed25519 and compute its id. */
static int
key_wrap(EVP_PKEY *pkey, const char *path, struct sign_key **out, struct mu_err *err)
{
	struct sign_key *k;
	uint8_t pub[32];
	size_t publen = sizeof(pub);

	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		return mu_errf(err, MU_EINVAL, "%s: not an Ed25519 key", path);
	}
	if (!EVP_PKEY_get_raw_public_key(pkey, pub, &publen) || publen != 32) {
		EVP_PKEY_free(pkey);
		return mu_errf(err, MU_EINVAL, "%s: cannot read the public key", path);
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		EVP_PKEY_free(pkey);
		return mu_errf(err, MU_ENOMEM, "out of memory");
	}
	k->pkey = pkey;
	sign_keyid_raw(pub, k->id);
	snprintf(k->name, sizeof(k->name), "%s", path);
	*out = k;
	return MU_OK;
}

static int
key_load(const char *path, bool private, struct sign_key **out, struct mu_err *err)
{
	EVP_PKEY *pkey;
	FILE *f;

	*out = NULL;
	if ((f = fopen(path, "re")) == NULL)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	pkey = private ? PEM_read_PrivateKey(f, NULL, NULL, NULL) :
	    PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	if (pkey == NULL)
		return mu_errf(err, MU_EINVAL, "%s: not a PEM %s key", path,
		    private ? "private" : "public");
	return key_wrap(pkey, path, out, err);
}

int
sign_key_load_private(const char *path, struct sign_key **out, struct mu_err *err)
{
	return key_load(path, true, out, err);
}

int
sign_key_load_public(const char *path, struct sign_key **out, struct mu_err *err)
{
	return key_load(path, false, out, err);
}

void
sign_key_free(struct sign_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *
sign_key_id(const struct sign_key *k)
{
	return k->id;
}

const char *
sign_key_name(const struct sign_key *k)
{
	return k->name;
}

/* Write one PEM file, created exclusively with the given mode. */
static int
pem_write(const char *path, mode_t mode, EVP_PKEY *pkey, bool private,
    struct mu_err *err)
{
	FILE *f;
	int fd, ok;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd == -1)
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return mu_errf(err, MU_EIO, "%s: %s", path, strerror(errno));
	}
	ok = private ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) :
	    PEM_write_PUBKEY(f, pkey);
	if (fclose(f) != 0 || !ok) {
		unlink(path);
		return mu_errf(err, MU_EIO, "%s: cannot write the key", path);
	}
	return MU_OK;
}

int
sign_keygen(const char *dir, const char *name, struct mu_err *err)
{
	char priv[4096], pub[4096];
	EVP_PKEY *pkey;
	int rc;

	if (!name_valid(name))
		return mu_errf(err, MU_EINVAL, "key name '%s' is not a valid name", name);
	if ((size_t)snprintf(priv, sizeof(priv), "%s/%s.key", dir, name) >= sizeof(priv) ||
	    (size_t)snprintf(pub, sizeof(pub), "%s/%s.pub", dir, name) >= sizeof(pub))
		return mu_errf(err, MU_EINVAL, "key path is too long");
	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL)
		return mu_errf(err, MU_EIO, "cannot generate an Ed25519 key");
	rc = pem_write(priv, 0600, pkey, true, err);
	if (!rc) {
		rc = pem_write(pub, 0644, pkey, false, err);
		if (rc)
			unlink(priv);
	}
	EVP_PKEY_free(pkey);
	return rc;
}

int
sign_bytes(const struct sign_key *k, const void *data, size_t len,
    uint8_t sig[ED25519_SIG_LEN], struct mu_err *err)
{
	EVP_MD_CTX *ctx;
	size_t siglen = ED25519_SIG_LEN;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestSign(ctx, sig, &siglen, data, len) == 1 &&
	    siglen == ED25519_SIG_LEN;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (!ok)
		return mu_errf(err, MU_ESIG, "cannot sign (is key %s a private key?)", k->id);
	return MU_OK;
}

int
sign_verify(const struct sign_key *k, const void *data, size_t len,
    const uint8_t sig[ED25519_SIG_LEN], struct mu_err *err)
{
	EVP_MD_CTX *ctx;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestVerify(ctx, sig, ED25519_SIG_LEN, data, len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (!ok)
		return mu_errf(err, MU_ESIG, "signature does not verify with key %s", k->id);
	return MU_OK;
}

int
envelope_sign(const struct sign_key *k, const void *body, size_t len,
    msgpack_sbuffer *out, struct mu_err *err)
{
	uint8_t sig[ED25519_SIG_LEN];
	int rc;

	rc = sign_bytes(k, body, len, sig, err);
	if (rc)
		return rc;
	return envelope_encode(k->id, sig, body, len, out, err);
}

int
envelope_sign_max(const struct sign_key *k, const void *body, size_t len,
    size_t max_body, msgpack_sbuffer *out, struct mu_err *err)
{
	uint8_t sig[ED25519_SIG_LEN];
	int rc;

	rc = sign_bytes(k, body, len, sig, err);
	if (rc)
		return rc;
	return envelope_encode_max(k->id, sig, body, len, max_body, out, err);
}

/* ---- keyring ---------------------------------------------------------- */

static bool
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && strcmp(s + n - m, suffix) == 0;
}

static int
keyring_add(struct keyring *ring, struct sign_key *k)
{
	struct sign_key **keys;

	keys = reallocarray(ring->keys, ring->nkeys + 1, sizeof(*keys));
	if (keys == NULL) {
		sign_key_free(k);
		return MU_ENOMEM;
	}
	ring->keys = keys;
	ring->keys[ring->nkeys++] = k;
	return MU_OK;
}

static void warnf(keyring_warn_fn *warn, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
warnf(keyring_warn_fn *warn, void *arg, const char *fmt, ...)
{
	char msg[sizeof(((struct mu_err *)0)->msg) + 512];
	va_list ap;

	if (warn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	warn(arg, msg);
}

/* Drop every key whose id another key of the ring has too: which operator
 * signed a job must never depend on the order readdir() returns. */
static void
keyring_drop_collisions(struct keyring *ring, keyring_warn_fn *warn, void *arg)
{
	bool *dup = calloc(ring->nkeys ? ring->nkeys : 1, sizeof(*dup));
	size_t i, j, n = 0;

	for (i = 0; dup && i < ring->nkeys; i++)
		for (j = i + 1; j < ring->nkeys; j++)
			if (strcmp(ring->keys[i]->id, ring->keys[j]->id) == 0) {
				warnf(warn, arg, "operator keys '%s' and '%s' have the same key id "
				    "%s: both refused (remove one)", ring->keys[i]->name,
				    ring->keys[j]->name, ring->keys[i]->id);
				dup[i] = dup[j] = true;
			}
	for (i = 0; i < ring->nkeys; i++) {
		if (dup == NULL || dup[i])
			sign_key_free(ring->keys[i]);	/* no memory: trust nothing */
		else
			ring->keys[n++] = ring->keys[i];
	}
	ring->nkeys = n;
	free(dup);
}

int
keyring_load_dir(struct keyring *ring, const char *dir, keyring_warn_fn *warn,
    void *arg, struct mu_err *err)
{
	struct keyring fresh = { NULL, 0 };
	struct mu_err why;
	struct dirent *de;
	struct sign_key *k;
	char path[4096];
	size_t n;
	DIR *d;
	int rc = MU_OK;

	if ((d = opendir(dir)) == NULL)
		return mu_errf(err, MU_EIO, "%s: %s", dir, strerror(errno));
	while (rc == MU_OK && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || !has_suffix(de->d_name, ".pub"))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		    sizeof(path)) {
			warnf(warn, arg, "%s/%s: path too long; key left out", dir, de->d_name);
			continue;
		}
		if (sign_key_load_public(path, &k, &why) != MU_OK) {
			warnf(warn, arg, "%s; key left out", why.msg);
			continue;
		}
		n = strlen(de->d_name) - 4;
		snprintf(k->name, sizeof(k->name), "%.*s", (int)n, de->d_name);
		if ((rc = keyring_add(&fresh, k)) != MU_OK)
			mu_errf(err, rc, "out of memory");
	}
	closedir(d);
	if (rc) {
		keyring_free(&fresh);
		return rc;
	}
	keyring_drop_collisions(&fresh, warn, arg);
	keyring_free(ring);
	*ring = fresh;
	return MU_OK;
}

void
keyring_free(struct keyring *ring)
{
	size_t i;

	for (i = 0; i < ring->nkeys; i++)
		sign_key_free(ring->keys[i]);
	free(ring->keys);
	ring->keys = NULL;
	ring->nkeys = 0;
}

const struct sign_key *
keyring_find(const struct keyring *ring, const char *keyid)
{
	size_t i;

	for (i = 0; i < ring->nkeys; i++)
		if (strcmp(ring->keys[i]->id, keyid) == 0)
			return ring->keys[i];
	return NULL;
}

int
envelope_verify(const struct keyring *ring, const struct job_envelope *env,
    struct mu_err *err)
{
	const struct sign_key *k = keyring_find(ring, env->key);

	if (k == NULL)
		return mu_errf(err, MU_ETRUST, "key %s is not a trusted operator key", env->key);
	return sign_verify(k, env->body.ptr, env->body.len, env->sig, err);
}
