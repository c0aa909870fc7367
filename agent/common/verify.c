/* SPDX-License-Identifier: Apache-2.0 */
/*
 * verify.c - the checks both processes make the same way on what the
 * broker sent (design.md §3, §5, §8): the network process to decide what
 * to fetch and forward, the parent again before it believes any of it
 * (it trusts no verdict of the network process's, only these functions
 * run in its own address space).
 */
#include "agent.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "muster/module.h"	/* MUSTER_ABI: what our runner loads */

/* Before any decoding: an unverified message gets no work in proportion
 * to its size, and no answer (it has no verified id).  The network process
 * checks first; the parent again. */
bool
job_oversize(struct agent *a, size_t len)
{
	if (len <= a->cfg.max_job)
		return false;
	a->jobs_oversize++;
	log_warnx("dropped a %zu-byte job envelope: over max_job (%llu bytes); "
	    "%llu dropped so far", len, (unsigned long long)a->cfg.max_job,
	    (unsigned long long)a->jobs_oversize);
	return true;
}

/* pgp_verify() against [trust] publishers: the one list both a module's
 * manifest and a release pointer must be signed by. */
static int
publisher_verify(struct agent *a, const void *data, size_t len, const void *sig,
    size_t siglen, char fpr[PGP_FPR_MAX + 1], struct mu_err *why)
{
	const char *allowed[CONF_MAX_FPRS];
	int i;

	for (i = 0; i < a->cfg.npublishers; i++)
		allowed[i] = a->cfg.publishers[i];
	return pgp_verify(a->cfg.gnupg_home, data, len, sig, siglen, allowed,
	    (size_t)a->cfg.npublishers, fpr, why);
}

int
verify_module_manifest(struct agent *a, const char *name, const void *manifest,
    size_t mlen, const void *sig, size_t siglen, struct module_manifest *m,
    char fpr[PGP_FPR_MAX + 1], struct mu_err *err)
{
	struct mu_err why;
	int rc;

	rc = publisher_verify(a, manifest, mlen, sig, siglen, fpr, &why);
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

int
verify_release_pointer(struct agent *a, const void *p, size_t len, struct release_manifest *m,
    char fpr[PGP_FPR_MAX + 1], struct mu_err *err)
{
	struct signed_pointer sp;
	struct mu_err why;
	int rc;

	if (len > SIGNED_POINTER_MAX)
		return mu_errf(err, MU_EINVAL, "release pointer of %zu bytes is too big", len);
	if ((rc = pointer_decode(p, len, &sp, &why)) != MU_OK)
		return mu_errf(err, rc, "malformed release pointer (%s)", why.msg);
	rc = publisher_verify(a, sp.manifest.ptr, sp.manifest.len, sp.sig.ptr, sp.sig.len,
	    fpr, &why);
	if (rc == MU_ETRUST)
		rc = mu_errf(err, rc, "release not signed by a trusted publisher (%s)", why.msg);
	else if (rc != MU_OK)
		rc = mu_errf(err, rc, "release has a bad signature (%s)", why.msg);
	else if ((rc = release_manifest_decode(sp.manifest.ptr, sp.manifest.len, m,
	    &why)) != MU_OK)
		rc = mu_errf(err, rc, "bad release manifest (%s)", why.msg);
	else if (strcmp(m->channel, a->cfg.channel) != 0) {
		rc = mu_errf(err, MU_EINVAL, "the release is for channel %s, this host "
		    "follows %s", m->channel, a->cfg.channel);
		wire_doc_free(&m->doc);
	}
	wire_doc_free(&sp.doc);
	return rc;
}

/* Bucket of this host for rollouts: the parent decides with it again. */
unsigned
release_bucket(const char *host)
{
	uint8_t md[32];
	char hex[SHA256_HEX_LEN + 1];
	unsigned i;

	/* sha256_hex is what lib has; the first 8 hex digits are the 4 bytes. */
	sha256_hex(host, strlen(host), hex);
	for (i = 0; i < 4; i++) {
		unsigned hi = (unsigned)(hex[2 * i] <= '9' ? hex[2 * i] - '0' : hex[2 * i] - 'a' + 10);
		unsigned lo = (unsigned)(hex[2 * i + 1] <= '9' ? hex[2 * i + 1] - '0' :
		    hex[2 * i + 1] - 'a' + 10);

		md[i] = (uint8_t)(hi << 4 | lo);
	}
	return (unsigned)(((uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 |
	    (uint32_t)md[2] << 8 | md[3]) % 100);
}
