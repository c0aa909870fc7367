/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sign.h - Ed25519 operator keys (OpenSSL 3 EVP) and signed job envelopes.
 *
 * Keys are PEM files as `openssl genpkey -algorithm ed25519` writes them
 * (private) and `openssl pkey -pubout` writes them (public).  A key id is
 * the lowercase hex of the first 8 bytes of SHA-256 of the 32-byte raw
 * public key.
 *
 * Ownership: sign_key_load_*() allocate a struct sign_key that the caller
 * releases with sign_key_free().  A struct keyring owns the keys it holds;
 * keyring_free() releases them.  keyring_find() returns a borrowed pointer
 * valid until the ring is freed or reloaded.  sign_key_name() borrows from
 * its key.
 */
#ifndef MUSTER_SIGN_H
#define MUSTER_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "wire.h"

struct sign_key;	/* opaque: an EVP_PKEY plus its key id */

int sign_key_load_private(const char *path, struct sign_key **out, struct mu_err *err);
int sign_key_load_public(const char *path, struct sign_key **out, struct mu_err *err);
void sign_key_free(struct sign_key *k);
const char *sign_key_id(const struct sign_key *k);	/* 16 hex chars */
/* The key's name in a keyring: its .pub file name without ".pub" (the
 * OPERATOR of a policy rule, design.md §8); the file's path for keys loaded
 * alone. */
const char *sign_key_name(const struct sign_key *k);

/* Write a fresh key pair: DIR/NAME.key (0600) and DIR/NAME.pub. */
int sign_keygen(const char *dir, const char *name, struct mu_err *err);

int sign_bytes(const struct sign_key *k, const void *data, size_t len,
    uint8_t sig[ED25519_SIG_LEN], struct mu_err *err);
int sign_verify(const struct sign_key *k, const void *data, size_t len,
    const uint8_t sig[ED25519_SIG_LEN], struct mu_err *err);

/* Sign body with k and append the whole envelope to out. */
int envelope_sign(const struct sign_key *k, const void *body, size_t len,
    msgpack_sbuffer *out, struct mu_err *err);
/* The same with another body bound (WIRE_MAX_ANNOUNCE: a job announce). */
int envelope_sign_max(const struct sign_key *k, const void *body, size_t len,
    size_t max_body, msgpack_sbuffer *out, struct mu_err *err);

/* The trusted operator keys: every *.pub (PEM) file in one folder. */
struct keyring {
	struct sign_key **keys;
	size_t nkeys;
};

/*
 * Load the folder, failing closed (design.md §8): a file that does not load is
 * reported through warn() and left out, and keys whose ids are equal (the
 * same key under two names, or two keys whose ids collide) are all left
 * out, since a key id must name one key and one operator.  The ring is
 * replaced whenever the folder could be read, so a key whose file broke or
 * went away loses its trust.  Errors (the folder) leave the ring as it was.
 * warn may be NULL.
 */
typedef void keyring_warn_fn(void *arg, const char *msg);
int keyring_load_dir(struct keyring *ring, const char *dir, keyring_warn_fn *warn,
    void *arg, struct mu_err *err);
void keyring_free(struct keyring *ring);
const struct sign_key *keyring_find(const struct keyring *ring, const char *keyid);

/*
 * Verify a decoded envelope against the ring: MU_ETRUST if its key id is
 * not in the ring, MU_ESIG if the signature does not verify.
 */
int envelope_verify(const struct keyring *ring, const struct job_envelope *env,
    struct mu_err *err);

/* SHA-256 of a buffer as 64 lowercase hex chars + NUL. */
int sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);

#endif
