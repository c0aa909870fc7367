/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hostsig.c - host signing keys sign agent messages; verifiers check them
 * against the fleet CA with a certificate cache (OpenSSL 3: EVP and X509
 * only).  Both sides refuse TLS certificates (hostsig.h).
 */
#include "hostsig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "sign.h"

#define CACHE_MAX	(1u << 20)	/* certificates one verifier remembers */
#define CN_MAX		255

struct hostsig_signer {
	EVP_PKEY *key;
	uint8_t *cert_der;		/* owned */
	size_t cert_len;
	char fpr[SHA256_HEX_LEN + 1];
};

/* One certificate seen by a verifier, good or not. */
struct cert_entry {
	char fpr[SHA256_HEX_LEN + 1];	/* "" = free slot */
	bool good;
	X509 *x509;			/* owned; NULL when not good */
	char cn[CN_MAX + 1];
	char why[160];			/* the reason it is not good */
};

struct hostsig_verifier {
	X509_STORE *store;		/* owned: the fleet CA */
	struct cert_entry *slots;	/* owned: open addressing by fpr */
	size_t cap, n;			/* cap is a power of two */
	struct hostsig_stats stats;
};

/* The last OpenSSL error as text in buf, for a reason line. */
static const char *
ossl_why(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (e == 0)
		return "unknown error";
	ERR_error_string_n(e, buf, len);
	return buf;
}

/* The digest an EVP_DigestSign/Verify with this key takes: SHA-256 for
 * EC, none for Ed25519 (it hashes itself); -1 for any other key type. */
static int
key_md(const EVP_PKEY *k, const EVP_MD **md)
{
	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_EC:
		*md = EVP_sha256();
		return 0;
	case EVP_PKEY_ED25519:
		*md = NULL;
		return 0;
	default:
		return -1;
	}
}

/*
 * Why x is not a host signing certificate, or NULL if it is: not a CA,
 * keyUsage (if any) with digitalSignature, and extendedKeyUsage holding
 * HOSTSIG_EKU_OID and no TLS usage.  The TLS case gets its own reason:
 * it is the mistake an operator makes (the old host certificate), and
 * also what a key stolen from the network process would bring.
 */
static const char *
cert_usage(X509 *x)
{
	EXTENDED_KEY_USAGE *eku;
	ASN1_OBJECT *o;
	bool ours = false, tls = false;
	char oid[96];
	int i, n, nid, crit = 0;

	if (X509_check_ca(x) != 0)
		return "a CA certificate, not a host signing certificate "
		    "(design.md section 3)";
	if ((X509_get_extension_flags(x) & EXFLAG_KUSAGE) &&
	    !(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE))
		return "the certificate's keyUsage lacks digitalSignature";
	if ((eku = X509_get_ext_d2i(x, NID_ext_key_usage, &crit, NULL)) == NULL) {
		ERR_clear_error();
		if (crit == -1)
			return "no extendedKeyUsage: not a host signing certificate "
			    "(design.md section 3)";
		return "the certificate's extendedKeyUsage is malformed or repeated";
	}
	for (i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
		o = sk_ASN1_OBJECT_value(eku, i);
		nid = OBJ_obj2nid(o);
		if (nid == NID_client_auth || nid == NID_server_auth ||
		    nid == NID_anyExtendedKeyUsage)
			tls = true;
		else if ((n = OBJ_obj2txt(oid, sizeof(oid), o, 1)) > 0 &&
		    (size_t)n < sizeof(oid) && strcmp(oid, HOSTSIG_EKU_OID) == 0)
			ours = true;
	}
	EXTENDED_KEY_USAGE_free(eku);
	if (tls)
		return "a TLS certificate, not a host signing certificate "
		    "(design.md section 3)";
	if (!ours)
		return "not a host signing certificate: its extendedKeyUsage lacks "
		    HOSTSIG_EKU_OID " (design.md section 3)";
	return NULL;
}

/* ---- signing ---------------------------------------------------------- */

static X509 *
read_cert(const char *path, struct mu_err *err)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (f == NULL) {
		mu_errf(err, MU_EIO, "%s: cannot open the certificate", path);
		return NULL;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		mu_errf(err, MU_EINVAL, "%s: not a PEM certificate", path);
	return x;
}

static EVP_PKEY *
read_key(const char *path, struct mu_err *err)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL) {
		mu_errf(err, MU_EIO, "%s: cannot open the key", path);
		return NULL;
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL)
		mu_errf(err, MU_EINVAL, "%s: not a PEM private key", path);
	return k;
}

/* Fill s from a loaded key and certificate (borrowed). */
static int
signer_fill(struct hostsig_signer *s, EVP_PKEY *key, X509 *x, const char *key_path,
    struct mu_err *err)
{
	const EVP_MD *md;
	uint8_t *p;
	int n;

	if (key_md(key, &md) != 0)
		return mu_errf(err, MU_EINVAL, "%s: host keys must be EC or Ed25519", key_path);
	if (X509_check_private_key(x, key) != 1)
		return mu_errf(err, MU_EINVAL, "%s: the key does not belong to the certificate",
		    key_path);
	if ((n = i2d_X509(x, NULL)) <= 0 || (size_t)n > WIRE_MAX_CERT)
		return mu_errf(err, MU_EINVAL, "the host certificate is over %u bytes",
		    WIRE_MAX_CERT);
	if ((s->cert_der = malloc((size_t)n)) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	p = s->cert_der;
	if (i2d_X509(x, &p) != n)
		return mu_errf(err, MU_EIO, "cannot encode the host certificate");
	s->cert_len = (size_t)n;
	if (sha256_hex(s->cert_der, s->cert_len, s->fpr) != MU_OK)
		return mu_errf(err, MU_EIO, "cannot hash the host certificate");
	return MU_OK;
}

int
hostsig_signer_load(const char *key_path, const char *cert_path,
    struct hostsig_signer **out, struct mu_err *err)
{
	struct hostsig_signer *s;
	EVP_PKEY *key = NULL;
	const char *why;
	X509 *x = NULL;
	int rc;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	rc = (x = read_cert(cert_path, err)) == NULL ? MU_EINVAL : MU_OK;
	/* Refuse to sign with a TLS certificate: verifiers would call every
	 * message forged, and the TLS key is the one the network process has. */
	if (!rc && (why = cert_usage(x)) != NULL)
		rc = mu_errf(err, MU_EINVAL, "%s: %s; `scripts/gen-pki DIR --host NAME` "
		    "makes hosts/NAME.sign.{key,crt}", cert_path, why);
	if (!rc)
		rc = (key = read_key(key_path, err)) == NULL ? MU_EINVAL : MU_OK;
	if (!rc)
		rc = signer_fill(s, key, x, key_path, err);
	X509_free(x);
	ERR_clear_error();
	if (rc) {
		EVP_PKEY_free(key);
		free(s->cert_der);
		free(s);
		return rc;
	}
	s->key = key;
	*out = s;
	return MU_OK;
}

void
hostsig_signer_free(struct hostsig_signer *s)
{
	if (s == NULL)
		return;
	EVP_PKEY_free(s->key);
	free(s->cert_der);
	free(s);
}

const char *
hostsig_signer_fpr(const struct hostsig_signer *s)
{
	return s->fpr;
}

struct wire_bytes
hostsig_signer_cert(const struct hostsig_signer *s)
{
	return (struct wire_bytes){ s->cert_der, s->cert_len };
}

/* Sign body; *siglen is the room in sig on entry (WIRE_MAX_HOSTSIG is
 * enough) and the signature's length on return. */
static int
hostsig_sign(const struct hostsig_signer *s, const void *body, size_t len,
    uint8_t *sig, size_t *siglen, struct mu_err *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const EVP_MD *md = NULL;
	char why[128];
	size_t need = 0;
	int rc = MU_OK;

	key_md(s->key, &md);
	if (ctx == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	if (EVP_DigestSignInit(ctx, NULL, md, NULL, s->key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &need, body, len) != 1)
		rc = mu_errf(err, MU_ESIG, "cannot sign: %s", ossl_why(why, sizeof(why)));
	else if (need > *siglen)
		rc = mu_errf(err, MU_ESIG, "cannot sign: signature over %zu bytes", *siglen);
	/* One-shot: Ed25519 cannot be fed twice, so sign in a fresh context. */
	else if (EVP_DigestSignInit(ctx, NULL, md, NULL, s->key) != 1 ||
	    EVP_DigestSign(ctx, sig, siglen, body, len) != 1)
		rc = mu_errf(err, MU_ESIG, "cannot sign: %s", ossl_why(why, sizeof(why)));
	EVP_MD_CTX_free(ctx);
	return rc;
}

int
hostsig_wrap(const struct hostsig_signer *s, const void *body, size_t len,
    msgpack_sbuffer *out, struct mu_err *err)
{
	uint8_t sig[WIRE_MAX_HOSTSIG];
	size_t siglen = sizeof(sig);
	int rc;

	if (s == NULL)
		return mu_errf(err, MU_EINVAL, "no host key loaded");
	if ((rc = hostsig_sign(s, body, len, sig, &siglen, err)) != MU_OK)
		return rc;
	return agent_envelope_encode(s->fpr, sig, siglen, body, len, out, err);
}

/* ---- verifying -------------------------------------------------------- */

int
hostsig_verifier_new(const char *ca_file, struct hostsig_verifier **out,
    struct mu_err *err)
{
	struct hostsig_verifier *v;

	*out = NULL;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	v->cap = 64;
	if ((v->slots = calloc(v->cap, sizeof(*v->slots))) == NULL ||
	    (v->store = X509_STORE_new()) == NULL) {
		hostsig_verifier_free(v);
		return mu_errf(err, MU_ENOMEM, "out of memory");
	}
	if (X509_STORE_load_file(v->store, ca_file) != 1) {
		ERR_clear_error();
		hostsig_verifier_free(v);
		return mu_errf(err, MU_EIO, "%s: cannot load the CA certificate", ca_file);
	}
	*out = v;
	return MU_OK;
}

void
hostsig_verifier_free(struct hostsig_verifier *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v->slots && i < v->cap; i++)
		X509_free(v->slots[i].x509);
	free(v->slots);
	X509_STORE_free(v->store);
	free(v);
}

void
hostsig_verifier_stats(const struct hostsig_verifier *v, struct hostsig_stats *out)
{
	*out = v->stats;
	out->certs = v->n;
}

/* The slot of fpr, or the free slot where it would go.  A SHA-256 is
 * already uniform: its first hex digits are the hash. */
static struct cert_entry *
slot_of(const struct cert_entry *slots, size_t cap, const char *fpr)
{
	size_t i = 0, k;

	for (k = 0; k < 12; k++)
		i = i << 4 | (size_t)(fpr[k] <= '9' ? fpr[k] - '0' : fpr[k] - 'a' + 10);
	i &= cap - 1;

	while (slots[i].fpr[0] != '\0' && strcmp(slots[i].fpr, fpr) != 0)
		i = (i + 1) & (cap - 1);
	return (struct cert_entry *)&slots[i];
}

static int
grow(struct hostsig_verifier *v)
{
	struct cert_entry *ns;
	size_t i, ncap = v->cap * 2;

	if ((ns = calloc(ncap, sizeof(*ns))) == NULL)
		return MU_ENOMEM;
	for (i = 0; i < v->cap; i++)
		if (v->slots[i].fpr[0] != '\0')
			*slot_of(ns, ncap, v->slots[i].fpr) = v->slots[i];
	free(v->slots);
	v->slots = ns, v->cap = ncap;
	return MU_OK;
}

bool
hostsig_cert_known(const struct hostsig_verifier *v, const char *fpr)
{
	const struct cert_entry *e;

	if (!sha256hex_valid(fpr))
		return false;
	e = slot_of(v->slots, v->cap, fpr);
	return e->fpr[0] != '\0' && e->good;
}

/* The one CN of x as printable UTF-8 without NUL or control bytes. */
static const char *
cert_cn(X509 *x, char *out, size_t outsz)
{
	const X509_NAME *name = X509_get_subject_name(x);
	unsigned char *utf8 = NULL;
	const char *why = NULL;
	int i, n;

	if ((i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0)
		return "the certificate has no CN";
	if (X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return "the certificate has more than one CN";
	n = ASN1_STRING_to_UTF8(&utf8,
	    X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n <= 0 || (size_t)n >= outsz)
		why = "the certificate's CN is empty or too long";
	else if (memchr(utf8, '\0', (size_t)n) != NULL)
		why = "the certificate's CN holds a NUL byte";
	else {
		memcpy(out, utf8, (size_t)n);
		out[n] = '\0';
	}
	OPENSSL_free(utf8);
	return why;
}

int
hostsig_cert_file_cn(const char *path, char *out, size_t outsz, struct mu_err *err)
{
	const char *why;
	X509 *x;

	if ((x = read_cert(path, err)) == NULL)
		return MU_EINVAL;
	why = cert_cn(x, out, outsz);
	X509_free(x);
	ERR_clear_error();
	return why ? mu_errf(err, MU_EINVAL, "%s: %s", path, why) : MU_OK;
}

/* Chain x to the CA, valid now.  No TLS purpose: a host signing
 * certificate has none; cert_usage() checks what it is for. */
static const char *
cert_chain(struct hostsig_verifier *v, X509 *x, char *buf, size_t len)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok;

	if (ctx == NULL)
		return "out of memory";
	v->stats.chain_checks++;
	ok = X509_STORE_CTX_init(ctx, v->store, x, NULL) == 1 &&
	    X509_verify_cert(ctx) == 1;
	if (!ok)
		snprintf(buf, len, "certificate not trusted: %s",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return ok ? NULL : buf;
}

/* Check a parsed certificate into entry e (which owns x if it is good). */
static void
cert_judge(struct hostsig_verifier *v, struct cert_entry *e, X509 *x)
{
	const EVP_MD *md;
	const char *why;
	char buf[sizeof(e->why)];

	why = cert_chain(v, x, buf, sizeof(buf));
	if (why == NULL)
		why = cert_usage(x);
	if (why == NULL && key_md(X509_get0_pubkey(x), &md) != 0)
		why = "the certificate's key is neither EC nor Ed25519";
	if (why == NULL)
		why = cert_cn(x, e->cn, sizeof(e->cn));
	if (why != NULL) {
		snprintf(e->why, sizeof(e->why), "%s", why);
		X509_free(x);
		return;
	}
	e->good = true;
	e->x509 = x;
}

int
hostsig_cert_add(struct hostsig_verifier *v, const void *der, size_t len,
    const char **cn, struct mu_err *err)
{
	const unsigned char *p = der;
	char fpr[SHA256_HEX_LEN + 1];
	struct cert_entry *e;
	X509 *x;

	*cn = NULL;
	if (len == 0 || len > WIRE_MAX_CERT || sha256_hex(der, len, fpr) != MU_OK)
		return mu_errf(err, MU_EINVAL, "certificate empty or too large");
	e = slot_of(v->slots, v->cap, fpr);
	if (e->fpr[0] == '\0') {
		if (v->n >= CACHE_MAX)
			return mu_errf(err, MU_ENOMEM, "certificate cache full");
		if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != (const uint8_t *)der + len) {
			X509_free(x);
			ERR_clear_error();
			return mu_errf(err, MU_EINVAL, "not a DER certificate");
		}
		if ((v->n + 1) * 2 > v->cap && grow(v) != MU_OK) {
			X509_free(x);
			return mu_errf(err, MU_ENOMEM, "out of memory");
		}
		e = slot_of(v->slots, v->cap, fpr);
		memcpy(e->fpr, fpr, sizeof(fpr));
		v->n++;
		cert_judge(v, e, x);
	} else
		v->stats.cache_hits++;
	if (!e->good)
		return mu_errf(err, MU_ETRUST, "%s", e->why);
	if (X509_cmp_current_time(X509_get0_notAfter(e->x509)) <= 0)
		return mu_errf(err, MU_ETRUST, "certificate has expired");
	*cn = e->cn;
	return MU_OK;
}

int
hostsig_verify(struct hostsig_verifier *v, const struct agent_envelope *env,
    const char **cn, struct mu_err *err)
{
	struct cert_entry *e = slot_of(v->slots, v->cap, env->cert);
	EVP_MD_CTX *ctx;
	const EVP_MD *md = NULL;
	EVP_PKEY *key;
	int ok;

	*cn = NULL;
	if (e->fpr[0] == '\0')
		return mu_errf(err, MU_ENOENT, "unknown certificate %.16s", env->cert);
	if (!e->good)
		return mu_errf(err, MU_ETRUST, "%s", e->why);
	if (X509_cmp_current_time(X509_get0_notAfter(e->x509)) <= 0)
		return mu_errf(err, MU_ETRUST, "certificate has expired");
	v->stats.cache_hits++;
	v->stats.sig_checks++;
	key = X509_get0_pubkey(e->x509);
	key_md(key, &md);
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	ok = EVP_DigestVerifyInit(ctx, NULL, md, NULL, key) == 1 &&
	    EVP_DigestVerify(ctx, env->sig.ptr, env->sig.len, env->body.ptr,
	    env->body.len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (!ok)
		return mu_errf(err, MU_ESIG, "bad signature");
	*cn = e->cn;
	return MU_OK;
}
