/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hostsig.h - host signatures on agent messages (design.md §3).
 *
 * An agent signs the exact body bytes of every message it publishes with
 * its host signing key and wraps them in an agent envelope naming its
 * certificate by SHA-256 fingerprint.  That key is not the TLS client key:
 * only musterd's root parent reads it, so code running in the network
 * process (which holds the TLS key) cannot speak for the host.  EC keys
 * sign with ECDSA over SHA-256 (DER, as EVP_DigestSign writes it), Ed25519
 * keys with plain Ed25519; nothing else is accepted, on either side.
 *
 * A host signing certificate is issued by the fleet CA, has CN = the host
 * and extendedKeyUsage HOSTSIG_EKU_OID and none of clientAuth, serverAuth
 * or anyExtendedKeyUsage: the broker refuses it for TLS, and a TLS
 * certificate is refused here, on both sides (signer and verifier).
 *
 * A verifier holds the fleet CA and a cache of certificates already
 * checked, keyed by fingerprint: the chain (current time, no TLS purpose)
 * and the usage are checked once per certificate, so verifying 10,000
 * results costs 10,000 signature checks and one chain check per host.
 * Certificates that failed are cached too, with their reason, so a flood
 * of forgeries under one certificate does not cost a chain check each.
 *
 * Ownership:
 *  - hostsig_signer_load() allocates a signer (key, certificate DER, its
 *    fingerprint); hostsig_signer_free() releases it.  The pointers its
 *    accessors return live as long as the signer.
 *  - hostsig_verifier_new() allocates a verifier; hostsig_verifier_free()
 *    releases it and every cached certificate.  CN strings it hands out
 *    are borrowed and live as long as the verifier.
 *  - Envelopes are appended to a msgpack_sbuffer the caller owns.
 */
#ifndef MUSTER_HOSTSIG_H
#define MUSTER_HOSTSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "err.h"
#include "wire.h"

/* id-kp-documentSigning (RFC 9336), the one extendedKeyUsage of a host
 * signing certificate: a standard usage outside TLS, with short arcs that
 * every X.509 parser reads (a UUID OID's 128-bit arc broke Debian 12's
 * python3-cryptography). */
#define HOSTSIG_EKU_OID	"1.3.6.1.5.5.7.3.36"

struct hostsig_signer;
struct hostsig_verifier;

/* Load the host's signing key and certificate (PEM); the key must be EC or
 * Ed25519 and belong to the certificate, and the certificate must be a host
 * signing certificate (above), not a TLS one: MU_EINVAL otherwise. */
int hostsig_signer_load(const char *key_path, const char *cert_path,
    struct hostsig_signer **out, struct mu_err *err);
void hostsig_signer_free(struct hostsig_signer *s);
/* The one printable CN of a PEM certificate file, into out (NUL-terminated);
 * MU_EIO / MU_EINVAL with the reason and the path. */
int hostsig_cert_file_cn(const char *path, char *out, size_t outsz, struct mu_err *err);
const char *hostsig_signer_fpr(const struct hostsig_signer *s);	/* 64 hex */
struct wire_bytes hostsig_signer_cert(const struct hostsig_signer *s);	/* DER */

/* Sign body and append the whole agent envelope to out; s NULL (no host
 * key loaded yet) is MU_EINVAL. */
int hostsig_wrap(const struct hostsig_signer *s, const void *body, size_t len,
    msgpack_sbuffer *out, struct mu_err *err);

/* A verifier trusting the CA certificates in ca_file (PEM). */
int hostsig_verifier_new(const char *ca_file, struct hostsig_verifier **out,
    struct mu_err *err);
void hostsig_verifier_free(struct hostsig_verifier *v);

/*
 * Check a host certificate (DER) against the CA, or find it in the cache:
 * MU_OK with *cn its common name; MU_ETRUST (reason in err) if it does not
 * chain, is not a host signing certificate (a TLS certificate, say), is
 * outside its validity, or has no single printable CN; MU_EINVAL if it
 * does not parse.
 */
int hostsig_cert_add(struct hostsig_verifier *v, const void *der, size_t len,
    const char **cn, struct mu_err *err);
/* Whether a good certificate with this fingerprint is in the cache. */
bool hostsig_cert_known(const struct hostsig_verifier *v, const char *fpr);

/*
 * Verify an agent envelope: its certificate must be in the cache
 * (MU_ENOENT if unknown), good (MU_ETRUST) and still valid now, and the
 * signature must verify over the body (MU_ESIG).  MU_OK sets *cn.
 */
int hostsig_verify(struct hostsig_verifier *v, const struct agent_envelope *env,
    const char **cn, struct mu_err *err);

/* Cache statistics, for benchmarks and the log. */
struct hostsig_stats {
	uint64_t chain_checks, cache_hits, sig_checks;
	size_t certs;
};
void hostsig_verifier_stats(const struct hostsig_verifier *v, struct hostsig_stats *out);

#endif
