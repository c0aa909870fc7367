/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pgp.h - OpenPGP detached signatures through GPGME, for module and release
 * manifests.
 *
 * Verification trusts nothing in the keyring by itself: a signature counts
 * only if GPGME reports it fully valid (good, key not expired or revoked)
 * AND the signing key's primary fingerprint is in the caller's allow-list.
 * The gnupg home is the caller's folder; nothing here changes process-wide
 * state except initialising GPGME once (gpgme_check_version is idempotent).
 *
 * Ownership: pgp_sign() returns a malloc'd signature the caller frees.
 */
#ifndef MUSTER_PGP_H
#define MUSTER_PGP_H

#include <stddef.h>

#include "err.h"

#define PGP_FPR_MAX	64	/* hex chars of a v4/v5 fingerprint, plus room */

/*
 * Verify the binary or armored detached signature sig over data.  allowed is
 * an array of nallowed fingerprints (hex, case-insensitive; spaces ignored).
 * On success writes the signer's primary fingerprint (uppercase hex) to
 * fpr_out (at least PGP_FPR_MAX + 1 bytes) when non-NULL.
 * Refusals: MU_ESIG (not a signature, bad signature, tampered data, key
 * missing from the keyring), MU_ETRUST (good signature, signer not allowed).
 */
int pgp_verify(const char *gnupg_home, const void *data, size_t len,
    const void *sig, size_t siglen, const char *const *allowed, size_t nallowed,
    char *fpr_out, struct mu_err *err);

/* Make a binary detached signature over data with the secret key whose
 * fingerprint is given (no passphrase: the key must not need one, or an
 * agent must have it cached). */
int pgp_sign(const char *gnupg_home, const char *fingerprint,
    const void *data, size_t len, void **sig_out, size_t *siglen_out,
    struct mu_err *err);

/* Normalise a fingerprint: strip spaces, uppercase, check it is 40 or 64
 * hex digits.  Writes to out (PGP_FPR_MAX + 1 bytes). */
int pgp_fpr_normalize(const char *in, char *out, struct mu_err *err);

#endif
