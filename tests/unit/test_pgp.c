/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_pgp.c - pgp.c against a real gpg.  Like in production, there are two
 * homes: the publisher's, holding secret keys, and the verifier's (an
 * agent's), holding only imported public keys with no ownertrust, so gpg
 * never calls their signatures "fully valid".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgp.h"

#define GPG	"gpg --batch --no-tty --pinentry-mode loopback --passphrase ''"

/* Short: gpg-agent's socket path must fit in ~100 characters. */
static char base[] = "/tmp/mupgXXXXXX";
static char pub_home[64], ver_home[64];

static char fpr_a[PGP_FPR_MAX + 1];	/* allowed publisher */
static char fpr_b[PGP_FPR_MAX + 1];	/* another, not allowed */
static char fpr_c[PGP_FPR_MAX + 1];	/* certify-only primary ... */
static char fpr_c_sub[PGP_FPR_MAX + 1];	/* ... signing with a subkey */
static char fpr_old[PGP_FPR_MAX + 1];	/* expired */
static char fpr_rev[PGP_FPR_MAX + 1];	/* revoked in the verifier home */
static char fpr_gone[PGP_FPR_MAX + 1];	/* never given to the verifier */

/* Binary on purpose (NUL, high bytes): manifests are msgpack. */
static const unsigned char manifest[] = {
	0x87, 0xa4, 'k', 'i', 'n', 'd', 0xa6, 'm', 'o', 'd', 'u', 'l', 'e',
	0xa4, 'n', 'a', 'm', 'e', 0xa4, 'd', 'i', 's', 'k', 0x00, 0xff,
	0xa6, 's', 'h', 'a', '2', '5', '6', 0xc4, 0x04, 0xde, 0xad, 0xbe, 0xef,
};

static int sh(const char *, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
	char cmd[2048], full[2200];
	va_list ap;
	int n, st;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		return -1;
	snprintf(full, sizeof(full), "( %s ) >%s/log 2>&1", cmd, base);
	if ((st = system(full)) != 0) {
		fprintf(stderr, "failed (%d): %s\n", st, cmd);
		snprintf(full, sizeof(full), "cat %s/log >&2", base);
		if (system(full) != 0)
			fprintf(stderr, "(no log)\n");
	}
	return st;
}

/* The idx'th fpr record of the key with this email: 0 is the primary. */
static int
key_fpr(const char *home, const char *email, int idx, char *out)
{
	char cmd[512], line[1024];
	FILE *p;
	int seen = 0, rc = -1;

	snprintf(cmd, sizeof(cmd), "gpg --homedir %s --with-colons "
	    "--list-keys '<%s>' 2>/dev/null", home, email);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), p) != NULL) {
		char *f = line;
		int i;

		if (strncmp(line, "fpr:", 4) != 0 || seen++ != idx)
			continue;
		for (i = 0; i < 9 && f != NULL; i++)
			f = strchr(f, ':') != NULL ? strchr(f, ':') + 1 : NULL;
		if (f != NULL && strchr(f, ':') != NULL)
			*strchr(f, ':') = '\0';
		if (f != NULL && strlen(f) <= PGP_FPR_MAX) {
			strcpy(out, f);
			rc = 0;
		}
	}
	pclose(p);
	return rc;
}

static void *
slurp(const char *name, size_t *len)
{
	char path[128];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", base, name);
	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static int
spit(const char *name, const void *buf, size_t len)
{
	char path[128];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", base, name);
	if ((f = fopen(path, "wb")) == NULL)
		return -1;
	ok = fwrite(buf, 1, len, f) == len;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int
gen_key(const char *uid, const char *usage, const char *extra)
{
	return sh(GPG " --homedir %s %s --quick-gen-key '%s' ed25519 %s",
	    pub_home, extra, uid, usage);
}

/* gpg writes a revocation certificate for every new key, defused by a
 * leading ':' so nobody imports it by accident; we do it on purpose. */
static int
revoke_in_verifier(const char *fpr)
{
	return sh("sed 's/^:-----BEGIN/-----BEGIN/' %s/openpgp-revocs.d/%s.rev"
	    " | " GPG " --homedir %s --import", pub_home, fpr, ver_home);
}

static int
make_keys(void)
{
	if (gen_key("Test Publisher <pub@example.invalid>", "sign never", "") ||
	    gen_key("Other Publisher <other@example.invalid>", "sign never",
	    "") ||
	    gen_key("Sub Publisher <sub@example.invalid>", "cert never", "") ||
	    gen_key("Revoked Publisher <rev@example.invalid>", "sign never",
	    "") ||
	    gen_key("Gone Publisher <gone@example.invalid>", "sign never",
	    "") ||
	    gen_key("Old Publisher <old@example.invalid>", "sign 1d",
	    "--faked-system-time 20200101T000000"))
		return -1;
	if (key_fpr(pub_home, "pub@example.invalid", 0, fpr_a) ||
	    key_fpr(pub_home, "other@example.invalid", 0, fpr_b) ||
	    key_fpr(pub_home, "sub@example.invalid", 0, fpr_c) ||
	    key_fpr(pub_home, "rev@example.invalid", 0, fpr_rev) ||
	    key_fpr(pub_home, "gone@example.invalid", 0, fpr_gone) ||
	    key_fpr(pub_home, "old@example.invalid", 0, fpr_old))
		return -1;
	if (sh(GPG " --homedir %s --quick-add-key %s ed25519 sign never",
	    pub_home, fpr_c))
		return -1;
	return key_fpr(pub_home, "sub@example.invalid", 1, fpr_c_sub);
}

static int
gpg_sign(const char *out, const char *opts, const char *in)
{
	return sh(GPG " --homedir %s --yes %s -o %s/%s %s/%s",
	    pub_home, opts, base, out, base, in);
}

static int
make_sigs(void)
{
	char u[256];

	snprintf(u, sizeof(u), "-u %s! -u %s! --detach-sign", fpr_a, fpr_b);
	if (gpg_sign("ab.sig", u, "data"))
		return -1;
	snprintf(u, sizeof(u), "-u %s! --detach-sign --armor", fpr_a);
	if (gpg_sign("a.asc", u, "data"))
		return -1;
	snprintf(u, sizeof(u), "-u %s! --digest-algo SHA1 --detach-sign", fpr_a);
	if (gpg_sign("sha1.sig", u, "data"))
		return -1;
	snprintf(u, sizeof(u), "-u %s! --sign", fpr_a);
	if (gpg_sign("inline.gpg", u, "evil"))
		return -1;
	snprintf(u, sizeof(u), "-u %s! --clearsign", fpr_a);
	if (gpg_sign("clear.asc", u, "evil"))
		return -1;
	snprintf(u, sizeof(u), "--faked-system-time 20200101T010000 "
	    "-u %s! --detach-sign", fpr_old);
	if (gpg_sign("old.sig", u, "data"))
		return -1;
	/* For C, name the primary: gpg must pick the signing subkey. */
	snprintf(u, sizeof(u), "-u %s --detach-sign", fpr_c);
	if (gpg_sign("c.sig", u, "data"))
		return -1;
	snprintf(u, sizeof(u), "-u %s! --detach-sign", fpr_a);
	if (gpg_sign("a.sig", u, "data"))
		return -1;
	snprintf(u, sizeof(u), "-u %s! --detach-sign", fpr_b);
	if (gpg_sign("b.sig", u, "data"))
		return -1;
	snprintf(u, sizeof(u), "-u %s! --detach-sign", fpr_rev);
	if (gpg_sign("rev.sig", u, "data"))
		return -1;
	snprintf(u, sizeof(u), "-u %s! --detach-sign", fpr_gone);
	if (gpg_sign("gone.sig", u, "data"))
		return -1;
	/* Two signature packets: one unverifiable, one good but untrusted. */
	return sh("cat %s/gone.sig %s/b.sig > %s/gone_b.sig", base, base, base);
}

static int
fill_verifier(void)
{
	if (sh("gpg --homedir %s --export %s %s %s %s %s > %s/pub.gpg",
	    pub_home, fpr_a, fpr_b, fpr_c, fpr_old, fpr_rev, base) ||
	    sh(GPG " --homedir %s --import %s/pub.gpg", ver_home, base))
		return -1;
	return revoke_in_verifier(fpr_rev);
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(base) == NULL)
		return -1;
	snprintf(pub_home, sizeof(pub_home), "%s/p", base);
	snprintf(ver_home, sizeof(ver_home), "%s/v", base);
	if (mkdir(pub_home, 0700) || mkdir(ver_home, 0700))
		return -1;
	if (spit("data", manifest, sizeof(manifest)) ||
	    spit("evil", "run this instead", 16))
		return -1;
	if (make_keys() || make_sigs() || fill_verifier())
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sh("gpgconf --homedir %s --kill all", pub_home);
	sh("gpgconf --homedir %s --kill all", ver_home);
	sh("rm -rf %s", base);
	return 0;
}

/* Verify the signature file name over buf in home. */
static int
verify(const char *home, const void *buf, size_t len, const char *name,
    const char *const *allowed, size_t nallowed, char *fpr,
    struct mu_err *err)
{
	size_t siglen;
	void *sig;
	int rc;

	sig = slurp(name, &siglen);
	assert_non_null(sig);
	rc = pgp_verify(home, buf, len, sig, siglen, allowed, nallowed, fpr,
	    err);
	free(sig);
	return rc;
}

#define VERIFY(home, name, allowed, fpr, err)				\
	verify((home), manifest, sizeof(manifest), (name), (allowed),	\
	    sizeof(allowed) / sizeof((allowed)[0]), (fpr), (err))

static void
test_good_allowed(void **state)
{
	const char *allowed[] = { fpr_b, fpr_a };
	char fpr[PGP_FPR_MAX + 1] = "";
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(VERIFY(ver_home, "a.sig", allowed, fpr, &err), MU_OK);
	assert_string_equal(fpr, fpr_a);
	/* fpr_out is optional. */
	assert_int_equal(VERIFY(ver_home, "a.sig", allowed, NULL, &err),
	    MU_OK);
}

static void
test_good_ultimately_trusted(void **state)
{
	const char *allowed[] = { fpr_a };
	char fpr[PGP_FPR_MAX + 1] = "";
	struct mu_err err = { "" };

	(void)state;
	/* Here gpg owns the key, so the summary says VALID too. */
	assert_int_equal(VERIFY(pub_home, "a.sig", allowed, fpr, &err), MU_OK);
	assert_string_equal(fpr, fpr_a);
}

static void
test_allowed_list_normalized(void **state)
{
	char spaced[128], fpr[PGP_FPR_MAX + 1] = "";
	const char *allowed[] = { spaced };
	struct mu_err err = { "" };
	size_t i, n = 0;

	(void)state;
	for (i = 0; fpr_a[i] != '\0'; i++) {
		if (i > 0 && i % 4 == 0)
			spaced[n++] = ' ';
		spaced[n++] = (fpr_a[i] >= 'A' && fpr_a[i] <= 'F') ?
		    fpr_a[i] - 'A' + 'a' : fpr_a[i];
	}
	spaced[n] = '\0';
	assert_int_equal(VERIFY(ver_home, "a.sig", allowed, fpr, &err), MU_OK);
	assert_string_equal(fpr, fpr_a);
}

static void
test_signer_not_allowed(void **state)
{
	const char *allowed[] = { fpr_a };
	char fpr[PGP_FPR_MAX + 1] = "";
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(VERIFY(ver_home, "b.sig", allowed, fpr, &err),
	    MU_ETRUST);
	assert_non_null(strstr(err.msg, fpr_b));
	assert_non_null(strstr(err.msg, "not an allowed publisher"));
	assert_string_equal(fpr, "");
}

static void
test_empty_allow_list(void **state)
{
	const char *allowed[] = { fpr_a };
	struct mu_err err = { "" };
	size_t len;
	void *sig;

	(void)state;
	sig = slurp("a.sig", &len);
	assert_non_null(sig);
	assert_int_equal(pgp_verify(ver_home, manifest, sizeof(manifest), sig,
	    len, allowed, 0, NULL, &err), MU_ETRUST);
	assert_non_null(strstr(err.msg, "no publisher fingerprint"));
	assert_int_equal(pgp_verify(ver_home, manifest, sizeof(manifest), sig,
	    len, NULL, 0, NULL, &err), MU_ETRUST);
	free(sig);
}

static void
test_bad_allow_list_entry(void **state)
{
	const char *allowed[] = { fpr_a, "not a fingerprint" };
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(VERIFY(ver_home, "a.sig", allowed, NULL, &err),
	    MU_EINVAL);
	assert_non_null(strstr(err.msg, "#2"));
}

static void
test_tampered_data(void **state)
{
	const char *allowed[] = { fpr_a };
	unsigned char buf[sizeof(manifest) + 1];
	struct mu_err err = { "" };

	(void)state;
	memcpy(buf, manifest, sizeof(manifest));
	buf[sizeof(manifest) / 2] ^= 0x01;
	assert_int_equal(verify(ver_home, buf, sizeof(manifest), "a.sig",
	    allowed, 1, NULL, &err), MU_ESIG);
	assert_non_null(strstr(err.msg, "bad signature"));

	memcpy(buf, manifest, sizeof(manifest));
	assert_int_equal(verify(ver_home, buf, sizeof(manifest) - 1, "a.sig",
	    allowed, 1, NULL, &err), MU_ESIG);
	buf[sizeof(manifest)] = 0;
	assert_int_equal(verify(ver_home, buf, sizeof(manifest) + 1, "a.sig",
	    allowed, 1, NULL, &err), MU_ESIG);
	/* And the untouched copy still passes, so the above meant it. */
	assert_int_equal(verify(ver_home, buf, sizeof(manifest), "a.sig",
	    allowed, 1, NULL, &err), MU_OK);
}

static void
test_tampered_signature(void **state)
{
	const char *allowed[] = { fpr_a };
	struct mu_err err = { "" };
	unsigned char *sig;
	size_t len;

	(void)state;
	sig = slurp("a.sig", &len);
	assert_non_null(sig);
	assert_true(len > 10);
	sig[len - 3] ^= 0x40;	/* inside the EdDSA S value */
	assert_int_equal(pgp_verify(ver_home, manifest, sizeof(manifest), sig,
	    len, allowed, 1, NULL, &err), MU_ESIG);
	free(sig);
}

static void
test_not_a_signature(void **state)
{
	const char *allowed[] = { fpr_a };
	const char *fake = "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n"
	    "-----END PGP SIGNATURE-----\n";
	unsigned char noise[300];
	struct mu_err err = { "" };
	uint32_t x = 12345;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(noise); i++) {
		x = x * 1103515245u + 12345u;
		noise[i] = (unsigned char)(x >> 16);
	}
	assert_int_equal(pgp_verify(ver_home, manifest, sizeof(manifest),
	    noise, sizeof(noise), allowed, 1, NULL, &err), MU_ESIG);
	assert_int_equal(pgp_verify(ver_home, manifest, sizeof(manifest),
	    "", 0, allowed, 1, NULL, &err), MU_ESIG);
	assert_non_null(strstr(err.msg, "no signature found"));
	assert_int_equal(pgp_verify(ver_home, manifest, sizeof(manifest),
	    NULL, 0, allowed, 1, NULL, &err), MU_ESIG);
	assert_int_equal(pgp_verify(ver_home, manifest, sizeof(manifest),
	    manifest, sizeof(manifest), allowed, 1, NULL, &err), MU_ESIG);
	assert_int_equal(pgp_verify(ver_home, manifest, sizeof(manifest),
	    fake, strlen(fake), allowed, 1, NULL, &err), MU_ESIG);
}

/* A signed message is not a detached signature: if it were taken as one,
 * anything the publisher ever signed would vouch for arbitrary data. */
static void
test_inline_signature_is_not_detached(void **state)
{
	const char *allowed[] = { fpr_a };
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(VERIFY(ver_home, "inline.gpg", allowed, NULL, &err),
	    MU_ESIG);
	assert_int_not_equal(VERIFY(ver_home, "clear.asc", allowed, NULL,
	    &err), MU_OK);
	assert_int_not_equal(verify(ver_home, "run this instead", 16,
	    "inline.gpg", allowed, 1, NULL, &err), MU_OK);
}

static void
test_key_missing(void **state)
{
	const char *allowed[] = { fpr_gone };
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(VERIFY(ver_home, "gone.sig", allowed, NULL, &err),
	    MU_ESIG);
	assert_non_null(strstr(err.msg, "not in keyring"));
	/* The signature itself is fine where the key is known. */
	assert_int_equal(VERIFY(pub_home, "gone.sig", allowed, NULL, &err),
	    MU_OK);
}

static void
test_key_revoked(void **state)
{
	const char *allowed[] = { fpr_rev };
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(VERIFY(ver_home, "rev.sig", allowed, NULL, &err),
	    MU_ESIG);
	assert_non_null(strstr(err.msg, "is revoked"));
	assert_int_equal(VERIFY(pub_home, "rev.sig", allowed, NULL, &err),
	    MU_OK);
}

/* gpg --verify itself exits 0 for this one ("Good signature ...
 * [expired]"). */
static void
test_key_expired(void **state)
{
	const char *allowed[] = { fpr_old };
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(VERIFY(ver_home, "old.sig", allowed, NULL, &err),
	    MU_ESIG);
	assert_non_null(strstr(err.msg, "has expired"));
}

static void
test_subkey_resolves_to_primary(void **state)
{
	const char *primary[] = { fpr_c };
	const char *sub[] = { fpr_c_sub };
	char fpr[PGP_FPR_MAX + 1] = "";
	struct mu_err err = { "" };

	(void)state;
	assert_string_not_equal(fpr_c, fpr_c_sub);
	assert_int_equal(VERIFY(ver_home, "c.sig", primary, fpr, &err), MU_OK);
	assert_string_equal(fpr, fpr_c);
	/* Allow-lists pin primary keys; a subkey there pins nothing. */
	assert_int_equal(VERIFY(ver_home, "c.sig", sub, NULL, &err),
	    MU_ETRUST);
	assert_non_null(strstr(err.msg, fpr_c));
}

static void
test_two_signatures(void **state)
{
	const char *only_a[] = { fpr_a };
	const char *only_b[] = { fpr_b };
	const char *only_c[] = { fpr_c };
	char fpr[PGP_FPR_MAX + 1] = "";
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(VERIFY(ver_home, "ab.sig", only_a, fpr, &err), MU_OK);
	assert_string_equal(fpr, fpr_a);
	assert_int_equal(VERIFY(ver_home, "ab.sig", only_b, fpr, &err), MU_OK);
	assert_string_equal(fpr, fpr_b);
	assert_int_equal(VERIFY(ver_home, "ab.sig", only_c, NULL, &err),
	    MU_ETRUST);
	/* The untrusted signer is the refusal worth reporting, whatever the
	 * order of the signatures. */
	assert_int_equal(VERIFY(ver_home, "gone_b.sig", only_a, NULL, &err),
	    MU_ETRUST);
	assert_non_null(strstr(err.msg, fpr_b));
}

static void
test_armored(void **state)
{
	const char *allowed[] = { fpr_a };
	char fpr[PGP_FPR_MAX + 1] = "";
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(VERIFY(ver_home, "a.asc", allowed, fpr, &err), MU_OK);
	assert_string_equal(fpr, fpr_a);
}

static void
test_weak_hash(void **state)
{
	const char *allowed[] = { fpr_a };
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(VERIFY(ver_home, "sha1.sig", allowed, NULL, &err), MU_ESIG);
	assert_non_null(strstr(err.msg, "weak hash SHA1"));
}

static void
test_sign_roundtrip(void **state)
{
	const char *allowed[] = { fpr_a };
	char fpr[PGP_FPR_MAX + 1] = "";
	struct mu_err err = { "" };
	unsigned char *sig = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(pgp_sign(pub_home, fpr_a, manifest, sizeof(manifest),
	    (void **)&sig, &len, &err), MU_OK);
	assert_non_null(sig);
	assert_true(len > 0);
	assert_true(sig[0] & 0x80);	/* a binary packet, not armor */
	assert_int_equal(pgp_verify(ver_home, manifest, sizeof(manifest), sig,
	    len, allowed, 1, fpr, &err), MU_OK);
	assert_string_equal(fpr, fpr_a);
	/* gpg itself agrees. */
	assert_int_equal(spit("rt.sig", sig, len), 0);
	assert_int_equal(sh("gpg --homedir %s --verify %s/rt.sig %s/data",
	    ver_home, base, base), 0);
	sig[len - 3] ^= 0x40;
	assert_int_equal(pgp_verify(ver_home, manifest, sizeof(manifest), sig,
	    len, allowed, 1, NULL, &err), MU_ESIG);
	free(sig);
}

static void
test_sign_by_subkey_owner_and_empty_data(void **state)
{
	const char *allowed[] = { fpr_c };
	char fpr[PGP_FPR_MAX + 1] = "";
	struct mu_err err = { "" };
	void *sig = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(pgp_sign(pub_home, fpr_c, NULL, 0, &sig, &len, &err),
	    MU_OK);
	assert_int_equal(pgp_verify(ver_home, "", 0, sig, len, allowed, 1, fpr,
	    &err), MU_OK);
	assert_string_equal(fpr, fpr_c);
	assert_int_equal(pgp_verify(ver_home, "x", 1, sig, len, allowed, 1,
	    NULL, &err), MU_ESIG);
	free(sig);
}

static void
test_sign_refusals(void **state)
{
	struct mu_err err = { "" };
	void *sig = (void *)1;
	size_t len = 1;

	(void)state;
	assert_int_equal(pgp_sign(pub_home, "nothex", manifest, 1, &sig, &len,
	    &err), MU_EINVAL);
	assert_null(sig);
	assert_int_equal(len, 0);
	/* Unknown key, and a key whose secret part is elsewhere. */
	assert_int_equal(pgp_sign(pub_home,
	    "0000000000000000000000000000000000000000", manifest, 1, &sig,
	    &len, &err), MU_ENOENT);
	assert_null(sig);
	assert_int_equal(pgp_sign(ver_home, fpr_a, manifest, 1, &sig, &len,
	    &err), MU_ENOENT);
	assert_null(sig);
}

static void
test_fpr_normalize(void **state)
{
	char out[PGP_FPR_MAX + 1], in[256];
	struct mu_err err = { "" };

	(void)state;
	assert_int_equal(pgp_fpr_normalize(
	    "1dd6 b448 5e5d bf6b 37d4  ff2e 6fd3 30b8 332c 8aa5", out, &err),
	    MU_OK);
	assert_string_equal(out, "1DD6B4485E5DBF6B37D4FF2E6FD330B8332C8AA5");
	memset(in, 'a', 64);
	in[64] = '\0';
	assert_int_equal(pgp_fpr_normalize(in, out, &err), MU_OK);
	assert_int_equal(strlen(out), 64);
	assert_int_equal(out[0], 'A');
	/* In place. */
	assert_int_equal(pgp_fpr_normalize(in, in, &err), MU_OK);
	assert_string_equal(in, out);

	memset(in, 'a', 39);
	in[39] = '\0';
	assert_int_equal(pgp_fpr_normalize(in, out, &err), MU_EINVAL);
	strcat(in, "aa");
	assert_int_equal(pgp_fpr_normalize(in, out, &err), MU_EINVAL);
	memset(in, 'f', 200);	/* longer than out: must not overflow it */
	in[200] = '\0';
	assert_int_equal(pgp_fpr_normalize(in, out, &err), MU_EINVAL);
	assert_int_equal(pgp_fpr_normalize("", out, &err), MU_EINVAL);
	assert_int_equal(pgp_fpr_normalize(NULL, out, &err), MU_EINVAL);
	assert_int_equal(pgp_fpr_normalize(
	    "1DD6B4485E5DBF6B37D4FF2E6FD330B8332C8AAG", out, &err), MU_EINVAL);
	assert_int_equal(pgp_fpr_normalize(
	    "1DD6B4485E5DBF6B37D4FF2E6FD330B8332C8AA5\t", out, &err),
	    MU_EINVAL);
	assert_int_equal(pgp_fpr_normalize(
	    "0x1DD6B4485E5DBF6B37D4FF2E6FD330B8332C8AA5", out, &err),
	    MU_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fpr_normalize),
		cmocka_unit_test(test_weak_hash),
		cmocka_unit_test(test_good_allowed),
		cmocka_unit_test(test_good_ultimately_trusted),
		cmocka_unit_test(test_allowed_list_normalized),
		cmocka_unit_test(test_signer_not_allowed),
		cmocka_unit_test(test_empty_allow_list),
		cmocka_unit_test(test_bad_allow_list_entry),
		cmocka_unit_test(test_tampered_data),
		cmocka_unit_test(test_tampered_signature),
		cmocka_unit_test(test_not_a_signature),
		cmocka_unit_test(test_inline_signature_is_not_detached),
		cmocka_unit_test(test_key_missing),
		cmocka_unit_test(test_key_revoked),
		cmocka_unit_test(test_key_expired),
		cmocka_unit_test(test_subkey_resolves_to_primary),
		cmocka_unit_test(test_two_signatures),
		cmocka_unit_test(test_armored),
		cmocka_unit_test(test_sign_roundtrip),
		cmocka_unit_test(test_sign_by_subkey_owner_and_empty_data),
		cmocka_unit_test(test_sign_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
