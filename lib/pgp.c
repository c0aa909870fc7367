/* SPDX-License-Identifier: Apache-2.0 */
#include "pgp.h"

#include <locale.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gpgme.h>

/* Summary bits that refuse a signature whatever its status says: revoking
 * a key or letting it expire is how a publisher withdraws it, including
 * everything it signed before. */
#define SIGSUM_REFUSED	(GPGME_SIGSUM_RED | GPGME_SIGSUM_KEY_REVOKED | \
    GPGME_SIGSUM_KEY_EXPIRED | GPGME_SIGSUM_SIG_EXPIRED | \
    GPGME_SIGSUM_KEY_MISSING | GPGME_SIGSUM_SYS_ERROR)

static pthread_once_t pgp_once = PTHREAD_ONCE_INIT;

static void
pgp_init(void)
{
	gpgme_check_version(NULL);
	/* The GPGME manual calls setlocale(LC_ALL, "") first; we only pass on
	 * whatever locale the program chose, since the locale is process-wide
	 * state that is not ours to change.  It only matters to pinentry,
	 * which loopback mode never starts. */
	gpgme_set_locale(NULL, LC_CTYPE, setlocale(LC_CTYPE, NULL));
#ifdef LC_MESSAGES
	gpgme_set_locale(NULL, LC_MESSAGES, setlocale(LC_MESSAGES, NULL));
#endif
}

static bool
hex_digit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

int
pgp_fpr_normalize(const char *in, char *out, struct mu_err *err)
{
	char buf[PGP_FPR_MAX + 1];
	size_t n = 0;

	if (in == NULL)
		return mu_errf(err, MU_EINVAL, "fingerprint is missing");
	for (; *in != '\0'; in++) {
		if (*in == ' ')
			continue;
		if (!hex_digit(*in))
			return mu_errf(err, MU_EINVAL,
			    "fingerprint has a character that is not hex");
		if (n == PGP_FPR_MAX)
			return mu_errf(err, MU_EINVAL, "fingerprint is too long");
		buf[n++] = (*in >= 'a' && *in <= 'f') ? *in - 'a' + 'A' : *in;
	}
	if (n != 40 && n != 64)
		return mu_errf(err, MU_EINVAL,
		    "fingerprint must be 40 or 64 hex digits, not %zu", n);
	buf[n] = '\0';
	/* Through buf so that in and out may be the same string. */
	memcpy(out, buf, n + 1);
	return MU_OK;
}

static int
ctx_open(const char *home, gpgme_ctx_t *ctx, struct mu_err *err)
{
	gpgme_error_t ge;

	*ctx = NULL;
	pthread_once(&pgp_once, pgp_init);
	if ((ge = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP)) != 0)
		return mu_errf(err, MU_EIO, "gpg is not usable: %s",
		    gpgme_strerror(ge));
	if ((ge = gpgme_new(ctx)) != 0) {
		*ctx = NULL;
		return mu_errf(err, MU_EIO, "gpgme: %s", gpgme_strerror(ge));
	}
	ge = gpgme_ctx_set_engine_info(*ctx, GPGME_PROTOCOL_OpenPGP, NULL,
	    home);
	/* Never prompt: we run unattended, often without a terminal. */
	if (ge == 0)
		ge = gpgme_set_pinentry_mode(*ctx, GPGME_PINENTRY_MODE_LOOPBACK);
	if (ge != 0) {
		gpgme_release(*ctx);
		*ctx = NULL;
		return mu_errf(err, MU_EIO, "gpgme setup for %s: %s",
		    home != NULL ? home : "the default gnupg home",
		    gpgme_strerror(ge));
	}
	/* A gpg.conf with auto-key-retrieve must not make a verification
	 * reach out to key servers: the keyring is the whole truth. */
	gpgme_set_offline(*ctx, 1);
	return MU_OK;
}

static int
data_wrap(const void *buf, size_t len, gpgme_data_t *d, struct mu_err *err)
{
	gpgme_error_t ge;

	*d = NULL;
	/* GPGME refuses a NULL buffer even for zero bytes. */
	if (buf == NULL) {
		if (len != 0)
			return mu_errf(err, MU_EINVAL, "no buffer for %zu bytes",
			    len);
		buf = "";
	}
	if ((ge = gpgme_data_new_from_mem(d, buf, len, 0)) != 0) {
		*d = NULL;
		return mu_errf(err, MU_ENOMEM, "gpgme data: %s",
		    gpgme_strerror(ge));
	}
	return MU_OK;
}

static int
allowed_check(const char *const *allowed, size_t nallowed,
    struct mu_err *err)
{
	char fpr[PGP_FPR_MAX + 1];
	struct mu_err e;
	size_t i;

	if (allowed == NULL || nallowed == 0)
		return mu_errf(err, MU_ETRUST,
		    "no publisher fingerprint is allowed");
	for (i = 0; i < nallowed; i++)
		if (pgp_fpr_normalize(allowed[i], fpr, &e) != MU_OK)
			return mu_errf(err, MU_EINVAL,
			    "allowed fingerprint #%zu: %s", i + 1, e.msg);
	return MU_OK;
}

static bool
fpr_allowed(const char *fpr, const char *const *allowed, size_t nallowed)
{
	char norm[PGP_FPR_MAX + 1];
	size_t i;

	for (i = 0; i < nallowed; i++)
		if (pgp_fpr_normalize(allowed[i], norm, NULL) == MU_OK &&
		    strcmp(norm, fpr) == 0)
			return true;
	return false;
}

/* Why gpg would not vouch for this signature, if it would not. */
static int
sig_refusal(gpgme_signature_t s, struct mu_err *err)
{
	const char *fpr = s->fpr != NULL ? s->fpr : "(unknown)";
	gpgme_sigsum_t sum = s->summary;
	gpgme_err_code_t code = gpgme_err_code(s->status);

	if ((sum & GPGME_SIGSUM_KEY_MISSING) || code == GPG_ERR_NO_PUBKEY)
		return mu_errf(err, MU_ESIG, "signing key %s not in keyring",
		    fpr);
	if ((sum & GPGME_SIGSUM_KEY_REVOKED) || code == GPG_ERR_CERT_REVOKED)
		return mu_errf(err, MU_ESIG, "signing key %s is revoked", fpr);
	if ((sum & GPGME_SIGSUM_KEY_EXPIRED) || code == GPG_ERR_KEY_EXPIRED)
		return mu_errf(err, MU_ESIG, "signing key %s has expired", fpr);
	if ((sum & GPGME_SIGSUM_SIG_EXPIRED) || code == GPG_ERR_SIG_EXPIRED)
		return mu_errf(err, MU_ESIG, "signature by %s has expired", fpr);
	if (code == GPG_ERR_BAD_SIGNATURE)
		return mu_errf(err, MU_ESIG,
		    "bad signature (data tampered or wrong key)");
	if (code != GPG_ERR_NO_ERROR || (sum & SIGSUM_REFUSED))
		return mu_errf(err, MU_ESIG, "signature by %s is not valid: %s",
		    fpr, gpgme_strerror(s->status));
	/* gpg 2.2 still calls SHA-1 and MD5 data signatures good; collisions
	 * make them worthless for binding a manifest. */
	if (s->hash_algo == GPGME_MD_MD5 || s->hash_algo == GPGME_MD_SHA1 ||
	    s->hash_algo == GPGME_MD_RMD160 || s->hash_algo == GPGME_MD_MD2)
		return mu_errf(err, MU_ESIG, "signature by %s uses the weak hash %s",
		    fpr, gpgme_hash_algo_name(s->hash_algo));
	return MU_OK;
}

static bool
key_has_fpr(gpgme_key_t key, const char *fpr)
{
	gpgme_subkey_t sub;

	for (sub = key->subkeys; sub != NULL; sub = sub->next)
		if (sub->fpr != NULL && strcasecmp(sub->fpr, fpr) == 0)
			return true;
	return false;
}

/* Allow-lists name primary keys, but a signature names the (sub)key that
 * made it.  gpgme_get_key runs its own listing context, so the verify
 * result held in ctx stays valid. */
static int
primary_fpr(gpgme_ctx_t ctx, const char *sigfpr, char *out,
    struct mu_err *err)
{
	gpgme_key_t key = NULL;
	gpgme_error_t ge;
	int rc;

	if (sigfpr == NULL)
		return mu_errf(err, MU_ESIG, "signature names no signing key");
	if ((ge = gpgme_get_key(ctx, sigfpr, &key, 0)) != 0)
		return mu_errf(err, MU_ESIG, "signing key %s: %s", sigfpr,
		    gpgme_strerror(ge));
	/* A short key id could name another key; insist on the full match. */
	if (!key_has_fpr(key, sigfpr) || key->subkeys == NULL)
		rc = mu_errf(err, MU_ESIG,
		    "signing key %s not found by its fingerprint", sigfpr);
	else
		rc = pgp_fpr_normalize(key->subkeys->fpr, out, err);
	gpgme_key_unref(key);
	return rc;
}

static int
sig_judge(gpgme_ctx_t ctx, gpgme_signature_t s, const char *const *allowed,
    size_t nallowed, char *primary, struct mu_err *err)
{
	int rc;

	if ((rc = sig_refusal(s, err)) != MU_OK)
		return rc;
	if ((rc = primary_fpr(ctx, s->fpr, primary, err)) != MU_OK)
		return rc == MU_EINVAL ? MU_ESIG : rc;
	if (!fpr_allowed(primary, allowed, nallowed))
		return mu_errf(err, MU_ETRUST,
		    "signer %s is not an allowed publisher", primary);
	return MU_OK;
}

/* One allowed, valid signature is enough.  Otherwise report an untrusted
 * signer before a broken signature: it is the likelier thing to fix.  No
 * signatures at all must end in a refusal too: gpg reports a signed message
 * passed as a detached signature as a success with an empty list. */
static int
sigs_judge(gpgme_ctx_t ctx, gpgme_signature_t sigs,
    const char *const *allowed, size_t nallowed, char *fpr_out,
    struct mu_err *err)
{
	char primary[PGP_FPR_MAX + 1];
	struct mu_err e, why;
	gpgme_signature_t s;
	int rc, best = MU_ESIG;
	bool seen = false;

	mu_errf(&why, MU_ESIG, "no signature found");
	for (s = sigs; s != NULL; s = s->next) {
		rc = sig_judge(ctx, s, allowed, nallowed, primary, &e);
		if (rc == MU_OK) {
			if (fpr_out != NULL)
				memcpy(fpr_out, primary, strlen(primary) + 1);
			return MU_OK;
		}
		if (!seen || (rc == MU_ETRUST && best != MU_ETRUST)) {
			best = rc;
			why = e;
			seen = true;
		}
	}
	return mu_errf(err, best, "%s", why.msg);
}

static int
verify_run(gpgme_ctx_t ctx, gpgme_data_t dsig, gpgme_data_t ddata,
    const char *const *allowed, size_t nallowed, char *fpr_out,
    struct mu_err *err)
{
	gpgme_verify_result_t res;
	gpgme_error_t ge;

	ge = gpgme_op_verify(ctx, dsig, ddata, NULL);
	if (gpgme_err_code(ge) == GPG_ERR_NO_DATA)
		return mu_errf(err, MU_ESIG, "no signature found");
	if (ge != 0)
		return mu_errf(err, MU_ESIG, "signature not checked: %s",
		    gpgme_strerror(ge));
	res = gpgme_op_verify_result(ctx);
	return sigs_judge(ctx, res != NULL ? res->signatures : NULL, allowed,
	    nallowed, fpr_out, err);
}

int
pgp_verify(const char *gnupg_home, const void *data, size_t len,
    const void *sig, size_t siglen, const char *const *allowed, size_t nallowed,
    char *fpr_out, struct mu_err *err)
{
	gpgme_ctx_t ctx = NULL;
	gpgme_data_t dsig = NULL, ddata = NULL;
	int rc;

	if ((rc = allowed_check(allowed, nallowed, err)) != MU_OK)
		return rc;
	if ((rc = ctx_open(gnupg_home, &ctx, err)) != MU_OK)
		return rc;
	rc = data_wrap(sig, siglen, &dsig, err);
	if (rc == MU_OK)
		rc = data_wrap(data, len, &ddata, err);
	if (rc == MU_OK)
		rc = verify_run(ctx, dsig, ddata, allowed, nallowed, fpr_out,
		    err);
	gpgme_data_release(ddata);
	gpgme_data_release(dsig);
	gpgme_release(ctx);
	return rc;
}

static int
signer_set(gpgme_ctx_t ctx, const char *fpr, struct mu_err *err)
{
	gpgme_key_t key = NULL;
	gpgme_error_t ge;
	int rc = MU_OK;

	ge = gpgme_get_key(ctx, fpr, &key, 1);
	if (gpgme_err_code(ge) == GPG_ERR_EOF)
		return mu_errf(err, MU_ENOENT, "no secret key %s", fpr);
	if (ge != 0)
		return mu_errf(err, MU_EIO, "secret key %s: %s", fpr,
		    gpgme_strerror(ge));
	if (!key->can_sign || key->revoked || key->expired || key->disabled)
		rc = mu_errf(err, MU_EINVAL, "key %s cannot sign "
		    "(revoked, expired, disabled or no signing subkey)", fpr);
	else if ((ge = gpgme_signers_add(ctx, key)) != 0)
		rc = mu_errf(err, MU_EIO, "signer %s: %s", fpr,
		    gpgme_strerror(ge));
	gpgme_key_unref(key);
	return rc;
}

/* Hand the signature over in plain malloc'd memory, as pgp.h promises,
 * rather than GPGME's. */
static int
data_take(gpgme_data_t d, void **out, size_t *outlen, struct mu_err *err)
{
	char *buf;
	size_t n = 0;

	buf = gpgme_data_release_and_get_mem(d, &n);
	if (buf == NULL || n == 0) {
		gpgme_free(buf);
		return mu_errf(err, MU_EIO, "gpg produced no signature");
	}
	if ((*out = malloc(n)) == NULL) {
		gpgme_free(buf);
		return mu_errf(err, MU_ENOMEM, "out of memory for a signature");
	}
	memcpy(*out, buf, n);
	*outlen = n;
	gpgme_free(buf);
	return MU_OK;
}

static int
sign_run(gpgme_ctx_t ctx, gpgme_data_t dplain, void **sig_out,
    size_t *siglen_out, struct mu_err *err)
{
	gpgme_data_t dsig = NULL;
	gpgme_sign_result_t res;
	gpgme_error_t ge;

	if ((ge = gpgme_data_new(&dsig)) != 0)
		return mu_errf(err, MU_ENOMEM, "gpgme data: %s",
		    gpgme_strerror(ge));
	ge = gpgme_op_sign(ctx, dplain, dsig, GPGME_SIG_MODE_DETACH);
	res = gpgme_op_sign_result(ctx);
	if (ge == 0 && (res == NULL || res->invalid_signers != NULL ||
	    res->signatures == NULL))
		ge = gpgme_error(GPG_ERR_UNUSABLE_SECKEY);
	if (ge != 0) {
		gpgme_data_release(dsig);
		return mu_errf(err, MU_EIO, "signing failed: %s",
		    gpgme_strerror(ge));
	}
	return data_take(dsig, sig_out, siglen_out, err);
}

int
pgp_sign(const char *gnupg_home, const char *fingerprint,
    const void *data, size_t len, void **sig_out, size_t *siglen_out,
    struct mu_err *err)
{
	char fpr[PGP_FPR_MAX + 1];
	gpgme_ctx_t ctx = NULL;
	gpgme_data_t dplain = NULL;
	int rc;

	*sig_out = NULL;
	*siglen_out = 0;
	if ((rc = pgp_fpr_normalize(fingerprint, fpr, err)) != MU_OK)
		return rc;
	if ((rc = ctx_open(gnupg_home, &ctx, err)) != MU_OK)
		return rc;
	/* Binary, as the wire format carries the signature as bin. */
	gpgme_set_armor(ctx, 0);
	rc = signer_set(ctx, fpr, err);
	if (rc == MU_OK)
		rc = data_wrap(data, len, &dplain, err);
	if (rc == MU_OK)
		rc = sign_run(ctx, dplain, sig_out, siglen_out, err);
	gpgme_data_release(dplain);
	gpgme_release(ctx);
	return rc;
}
