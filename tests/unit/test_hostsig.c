/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/hostsig.c: host signing keys (EC P-256 as
 * scripts/gen-pki makes them, and Ed25519) signing agent envelopes, and a
 * verifier over a CA made in a temp folder with the openssl command: chain,
 * usage (a TLS certificate must neither sign nor pass a verifier), CN, a
 * second CA, tampering, the certificate cache, and a facts message checked
 * as the CLI and muster-server check it (lib/agentmsg.c).  The last test
 * times verifying 10,000 results from 100 hosts (docs/BENCHMARKS.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agentmsg.h"
#include "hostsig.h"
#include "sign.h"

struct fixture {
	char dir[64];
};

static int __attribute__((format(printf, 1, 2)))
run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/*
 * DIR/ca (EC CA), DIR/ca2 (another CA), leaf certificates signed by ca,
 * host signing certificates (extendedKeyUsage HOSTSIG_EKU_OID, as
 * scripts/gen-pki makes hosts/NAME.sign.crt) unless said otherwise:
 * h1 (EC), ed (Ed25519), two (EC, two CNs), b0..b99 (EC); evil (EC, CN h1)
 * signed by ca2; and certificates that must not sign: tls (CN h1,
 * clientAuth: a TLS host certificate), srv (serverAuth), both (CN h1, the
 * OID and clientAuth), any (CN h1, the OID and anyExtendedKeyUsage), noeku
 * (CN h1, no extendedKeyUsage), mail (CN h1, emailProtection only).
 */
static const char pki_script[] =
    "set -e; cd %1$s; exec 2>/dev/null\n"
    /* ext VALUE NAME: NAME.cnf, a leaf's extensions with one more line */
    "ext() { printf '[x]\\nbasicConstraints=critical,CA:FALSE\\n"
    "keyUsage=critical,digitalSignature\\n%%s\\n' \"$1\" > $2.cnf; }\n"
    "ext extendedKeyUsage=" HOSTSIG_EKU_OID " signer\n"
    "ext extendedKeyUsage=clientAuth client\n"
    "ext extendedKeyUsage=serverAuth server\n"
    "ext extendedKeyUsage=" HOSTSIG_EKU_OID ",clientAuth both\n"
    "ext extendedKeyUsage=" HOSTSIG_EKU_OID ",anyExtendedKeyUsage any\n"
    "ext '' noeku\n"
    "ext extendedKeyUsage=emailProtection mail\n"
    "ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1.key; }\n"
    "ca() { ec $1; openssl req -new -x509 -key $1.key -subj \"/CN=$1 test CA\" -days 30 "
    "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
    "-out $1.crt; }\n"
    "leaf() { openssl req -new -key $1.key -subj \"$2\" -out $1.csr;"
    " openssl x509 -req -in $1.csr -CA $3.crt -CAkey $3.key -set_serial $((n += 1)) -days 30"
    " -extfile $4.cnf -extensions x -out $1.crt; }\n"
    "n=1; ca ca; ca ca2\n"
    "ec h1; leaf h1 /CN=h1 ca signer\n"
    "openssl genpkey -algorithm ed25519 -out ed.key; leaf ed /CN=ed ca signer\n"
    "ec two; leaf two /CN=a/CN=b ca signer\n"
    "ec evil; leaf evil /CN=h1 ca2 signer\n"
    "ec tls; leaf tls /CN=h1 ca client\n"
    "ec srv; leaf srv /CN=srv ca server\n"
    "ec both; leaf both /CN=h1 ca both\n"
    "ec any; leaf any /CN=h1 ca any\n"
    "ec noeku; leaf noeku /CN=h1 ca noeku\n"
    "ec mail; leaf mail /CN=h1 ca mail\n"
    "for i in $(seq 0 99); do ec b$i; leaf b$i /CN=b$i ca signer; done\n";

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_hostsig.XXXXXX");
	if (mkdtemp(f->dir) == NULL || run(pki_script, f->dir) != 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	run("rm -rf '%s'", f->dir);
	free(f);
	return 0;
}

static struct hostsig_signer *
signer(const struct fixture *f, const char *name)
{
	char key[128], crt[128];
	struct hostsig_signer *s = NULL;
	struct mu_err err;

	snprintf(key, sizeof(key), "%s/%s.key", f->dir, name);
	snprintf(crt, sizeof(crt), "%s/%s.crt", f->dir, name);
	if (hostsig_signer_load(key, crt, &s, &err) != MU_OK)
		fail_msg("%s", err.msg);
	return s;
}

static struct hostsig_verifier *
verifier(const struct fixture *f, const char *ca)
{
	struct hostsig_verifier *v = NULL;
	struct mu_err err;
	char path[128];

	snprintf(path, sizeof(path), "%s/%s.crt", f->dir, ca);
	if (hostsig_verifier_new(path, &v, &err) != MU_OK)
		fail_msg("%s", err.msg);
	return v;
}

/* Wrap body with s, decode the envelope into e (sb keeps its bytes). */
static void
wrap(struct hostsig_signer *s, const char *body, msgpack_sbuffer *sb,
    struct agent_envelope *e)
{
	struct mu_err err;

	msgpack_sbuffer_init(sb);
	assert_int_equal(hostsig_wrap(s, body, strlen(body), sb, &err), MU_OK);
	assert_int_equal(agent_envelope_decode(sb->data, sb->size, e, &err), MU_OK);
}

/* Sign and verify with one key type; then tamper with body and sig. */
static void
roundtrip(const struct fixture *f, const char *name, size_t maxsig)
{
	struct hostsig_signer *s = signer(f, name);
	struct hostsig_verifier *v = verifier(f, "ca");
	struct wire_bytes der = hostsig_signer_cert(s);
	struct agent_envelope e;
	msgpack_sbuffer sb;
	struct mu_err err;
	const char *cn;

	wrap(s, "the body", &sb, &e);
	assert_string_equal(e.cert, hostsig_signer_fpr(s));
	assert_true(e.sig.len > 0 && e.sig.len <= maxsig);
	/* Unknown until its certificate is added (from the status). */
	assert_int_equal(hostsig_verify(v, &e, &cn, &err), MU_ENOENT);
	assert_false(hostsig_cert_known(v, e.cert));
	assert_int_equal(hostsig_cert_add(v, der.ptr, der.len, &cn, &err), MU_OK);
	assert_string_equal(cn, name);
	assert_true(hostsig_cert_known(v, e.cert));
	assert_int_equal(hostsig_verify(v, &e, &cn, &err), MU_OK);
	assert_string_equal(cn, name);
	((uint8_t *)e.body.ptr)[0] ^= 1;
	assert_int_equal(hostsig_verify(v, &e, &cn, &err), MU_ESIG);
	assert_null(cn);
	((uint8_t *)e.body.ptr)[0] ^= 1;
	((uint8_t *)e.sig.ptr)[e.sig.len - 1] ^= 1;
	assert_int_equal(hostsig_verify(v, &e, &cn, &err), MU_ESIG);
	wire_doc_free(&e.doc);
	msgpack_sbuffer_destroy(&sb);
	hostsig_verifier_free(v);
	hostsig_signer_free(s);
}

static void
test_ec(void **state)
{
	roundtrip(*state, "h1", 72);	/* ECDSA P-256 DER */
}

static void
test_ed25519(void **state)
{
	roundtrip(*state, "ed", 64);
}

/* The DER of DIR/name.crt (OPENSSL_free it) and its length. */
static size_t
file_der(const struct fixture *f, const char *name, uint8_t **der)
{
	char path[128];
	FILE *fp;
	X509 *x;
	int n;

	snprintf(path, sizeof(path), "%s/%s.crt", f->dir, name);
	assert_non_null(fp = fopen(path, "r"));
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	*der = NULL;
	n = i2d_X509(x, der);
	X509_free(x);
	assert_true(n > 0);
	return (size_t)n;
}

/*
 * An envelope over body signed with DIR/name.key naming DIR/name.crt, made
 * by hand as a forger (or an agent still signing with its TLS key) would:
 * hostsig_signer_load() refuses most of these certificates.
 */
static void
raw_wrap(const struct fixture *f, const char *name, const char *body,
    msgpack_sbuffer *sb, struct agent_envelope *e)
{
	char path[128], fpr[SHA256_HEX_LEN + 1];
	uint8_t *der, sig[WIRE_MAX_HOSTSIG];
	size_t n = file_der(f, name, &der), siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	struct mu_err err;
	EVP_PKEY *k;
	FILE *fp;

	assert_int_equal(sha256_hex(der, n, fpr), MU_OK);
	OPENSSL_free(der);
	snprintf(path, sizeof(path), "%s/%s.key", f->dir, name);
	assert_non_null(fp = fopen(path, "r"));
	k = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(k);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL,
	    EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (const uint8_t *)body,
	    strlen(body)), 1);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	msgpack_sbuffer_init(sb);
	assert_int_equal(agent_envelope_encode(fpr, sig, siglen, body, strlen(body), sb,
	    &err), MU_OK);
	assert_int_equal(agent_envelope_decode(sb->data, sb->size, e, &err), MU_OK);
}

/*
 * Only a host signing certificate from the CA, with one CN, passes: not
 * one from another CA (CN h1 all the same), not h1's TLS certificate (same
 * CA and CN, a good signature: what code in the network process could
 * make), not one that is both, nor one made for something else.
 */
static void
test_cert_refused(void **state)
{
	const struct fixture *f = *state;
	struct hostsig_verifier *v = verifier(f, "ca");
	struct agent_envelope e;
	msgpack_sbuffer sb;
	struct mu_err err;
	const char *cn;
	uint8_t *der;
	size_t i, n;
	static const char *const bad[][2] = {
		{ "evil", "not trusted" },	/* another CA, CN h1 */
		{ "tls", "a TLS certificate, not a host signing certificate" },
		{ "srv", "a TLS certificate" },	/* serverAuth */
		{ "both", "a TLS certificate" },	/* the OID and clientAuth */
		{ "any", "a TLS certificate" },	/* the OID and anyExtendedKeyUsage */
		{ "noeku", "no extendedKeyUsage" },
		{ "mail", "lacks " HOSTSIG_EKU_OID },
		{ "two", "more than one CN" },
	};

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = file_der(f, bad[i][0], &der);
		assert_int_equal(hostsig_cert_add(v, der, n, &cn, &err), MU_ETRUST);
		if (strstr(err.msg, bad[i][1]) == NULL)
			fail_msg("%s: %s", bad[i][0], err.msg);
		assert_null(cn);
		OPENSSL_free(der);
		/* A known-bad certificate stays bad, from the cache. */
		raw_wrap(f, bad[i][0], "x", &sb, &e);
		assert_int_equal(hostsig_verify(v, &e, &cn, &err), MU_ETRUST);
		assert_non_null(strstr(err.msg, bad[i][1]));
		assert_false(hostsig_cert_known(v, e.cert));
		wire_doc_free(&e.doc);
		msgpack_sbuffer_destroy(&sb);
	}
	assert_int_equal(hostsig_cert_add(v, "\x30\x03\x02\x01\x01", 5, &cn, &err), MU_EINVAL);
	hostsig_verifier_free(v);
}

/* musterd must not sign with a certificate every verifier refuses: the
 * error names the file and how to make a signing pair. */
static void
test_signer_refuses_tls(void **state)
{
	const struct fixture *f = *state;
	struct hostsig_signer *s;
	struct mu_err err;
	char key[128], crt[128];
	static const char *const bad[][2] = {
		{ "tls", "a TLS certificate, not a host signing certificate" },
		{ "srv", "a TLS certificate" },
		{ "both", "a TLS certificate" },
		{ "any", "a TLS certificate" },
		{ "noeku", "no extendedKeyUsage" },
		{ "mail", "lacks " HOSTSIG_EKU_OID },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(key, sizeof(key), "%s/%s.key", f->dir, bad[i][0]);
		snprintf(crt, sizeof(crt), "%s/%s.crt", f->dir, bad[i][0]);
		s = (struct hostsig_signer *)1;
		assert_int_equal(hostsig_signer_load(key, crt, &s, &err), MU_EINVAL);
		assert_null(s);
		if (strstr(err.msg, bad[i][1]) == NULL || strstr(err.msg, crt) == NULL ||
		    strstr(err.msg, "scripts/gen-pki DIR --host NAME") == NULL ||
		    strstr(err.msg, "hosts/NAME.sign.{key,crt}") == NULL)
			fail_msg("%s: %s", bad[i][0], err.msg);
	}
	/* A signing certificate loads and signs under its own fingerprint. */
	s = signer(f, "h1");
	assert_non_null(s);
	hostsig_signer_free(s);
}

/* The key must belong to the certificate. */
static void
test_key_mismatch(void **state)
{
	const struct fixture *f = *state;
	struct hostsig_signer *s = NULL;
	struct mu_err err;
	char key[128], crt[128];

	snprintf(key, sizeof(key), "%s/ed.key", f->dir);
	snprintf(crt, sizeof(crt), "%s/h1.crt", f->dir);
	assert_int_equal(hostsig_signer_load(key, crt, &s, &err), MU_EINVAL);
	assert_null(s);
	assert_non_null(strstr(err.msg, "does not belong"));
	snprintf(key, sizeof(key), "%s/nope.key", f->dir);
	assert_int_equal(hostsig_signer_load(key, crt, &s, &err), MU_EINVAL);
}

/* A facts body of host (named in it) with one fact, signed by s, into sb. */
static void
signed_facts(struct hostsig_signer *s, const char *host, msgpack_sbuffer *sb)
{
	struct facts_msg m = { .at = 1 };
	msgpack_sbuffer body;
	struct mu_err err;

	snprintf(m.host, sizeof(m.host), "%s", host);
	assert_int_equal(facts_set_str(&m.facts, "custom.rack", "b7", &err), MU_OK);
	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(sb);
	assert_int_equal(facts_encode(&m, &body, &err), MU_OK);
	assert_int_equal(hostsig_wrap(s, body.data, body.size, sb, &err), MU_OK);
	msgpack_sbuffer_destroy(&body);
	facts_free(&m.facts);
}

static void
test_facts_topic(void **state)
{
	static const char *const bad[] = {
		"muster/v1/hosts/h1/status", "muster/v1/hosts/h1/facts/x",
		"muster/v1/hosts//facts", "muster/v1/hosts/H1/facts", "other/v1/hosts/h1/facts",
		"muster/v1/hosts/h1", "muster/v1/results/j/h1",
	};
	char host[NAME_MAX_LEN + 1];
	size_t i;

	(void)state;
	assert_int_equal(agentmsg_facts_topic("muster/v1/hosts/web-1/facts", "muster", host),
	    MU_OK);
	assert_string_equal(host, "web-1");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(agentmsg_facts_topic(bad[i], "muster", host), MU_EINVAL);
		assert_string_equal(host, "");
	}
}

/* Facts are checked like a result: certificate from a status, CN = the
 * topic's host = the body's; anything else is not h1's facts. */
static void
test_agentmsg_facts(void **state)
{
	const struct fixture *f = *state;
	struct hostsig_verifier *v = verifier(f, "ca");
	struct hostsig_signer *h1 = signer(f, "h1"), *evil = signer(f, "evil");
	struct wire_bytes der = hostsig_signer_cert(h1), bad = hostsig_signer_cert(evil);
	struct facts_msg m;
	msgpack_sbuffer sb, other, forged, garbage;
	struct mu_err err;
	const char *cn;

	signed_facts(h1, "h1", &sb);
	/* Unknown until h1's status brought its certificate. */
	assert_int_equal(agentmsg_facts(v, "h1", (uint8_t *)sb.data, sb.size, &m, &err),
	    MU_ENOENT);
	assert_int_equal(hostsig_cert_add(v, der.ptr, der.len, &cn, &err), MU_OK);
	assert_int_equal(agentmsg_facts(v, "h1", (uint8_t *)sb.data, sb.size, &m, &err), MU_OK);
	assert_string_equal(m.host, "h1");
	assert_string_equal(facts_get(&m.facts, "custom.rack")->s, "b7");
	facts_free(&m.facts);
	/* On another host's topic. */
	assert_int_equal(agentmsg_facts(v, "h2", (uint8_t *)sb.data, sb.size, &m, &err),
	    MU_ETRUST);
	assert_non_null(strstr(err.msg, "not by h2"));
	/* Signed by h1, naming h2, on h1's topic. */
	signed_facts(h1, "h2", &other);
	assert_int_equal(agentmsg_facts(v, "h1", (uint8_t *)other.data, other.size, &m, &err),
	    MU_ETRUST);
	assert_non_null(strstr(err.msg, "facts of h1 name host h2"));
	/* CN h1 from another CA. */
	assert_int_equal(hostsig_cert_add(v, bad.ptr, bad.len, &cn, &err), MU_ETRUST);
	signed_facts(evil, "h1", &forged);
	assert_int_equal(agentmsg_facts(v, "h1", (uint8_t *)forged.data, forged.size, &m,
	    &err), MU_ETRUST);
	/* Well signed, but not a facts body. */
	msgpack_sbuffer_init(&garbage);
	assert_int_equal(hostsig_wrap(h1, "\x81\xa1v\x01", 4, &garbage, &err), MU_OK);
	assert_int_equal(agentmsg_facts(v, "h1", (uint8_t *)garbage.data, garbage.size, &m,
	    &err), MU_ESIG);
	assert_null(m.facts.v);
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_destroy(&other);
	msgpack_sbuffer_destroy(&forged);
	msgpack_sbuffer_destroy(&garbage);
	hostsig_signer_free(h1);
	hostsig_signer_free(evil);
	hostsig_verifier_free(v);
}

static double
secs(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/*
 * 10,000 results from 100 hosts (100 each): every certificate is added
 * each time a message names it, as the CLI does with each status; the
 * chain is checked 100 times, not 10,000.
 */
static void
test_cache_bench(void **state)
{
	const struct fixture *f = *state;
	enum { HOSTS = 100, PER = 100 };
	struct hostsig_signer *s[HOSTS];
	struct hostsig_verifier *v = verifier(f, "ca"), *cold;
	msgpack_sbuffer sb[HOSTS];
	struct agent_envelope e;
	struct hostsig_stats st;
	struct timespec t0, t1, t2;
	struct wire_bytes der;
	struct mu_err err;
	const char *cn;
	char name[16], body[160];
	int h, i;

	for (h = 0; h < HOSTS; h++) {
		snprintf(name, sizeof(name), "b%d", h);
		s[h] = signer(f, name);
		msgpack_sbuffer_init(&sb[h]);
		snprintf(body, sizeof(body), "result body of job-%d on host b%d, about the size "
		    "of a ping result's fields", h, h);
		assert_int_equal(hostsig_wrap(s[h], body, strlen(body), &sb[h], &err), MU_OK);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < PER; i++)
		for (h = 0; h < HOSTS; h++) {
			der = hostsig_signer_cert(s[h]);
			assert_int_equal(hostsig_cert_add(v, der.ptr, der.len, &cn, &err), MU_OK);
			assert_int_equal(agent_envelope_decode(sb[h].data, sb[h].size, &e, &err),
			    MU_OK);
			assert_int_equal(hostsig_verify(v, &e, &cn, &err), MU_OK);
			wire_doc_free(&e.doc);
		}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	hostsig_verifier_stats(v, &st);
	assert_int_equal(st.chain_checks, HOSTS);
	assert_int_equal(st.sig_checks, HOSTS * PER);
	assert_int_equal(st.certs, HOSTS);
	/* Without the cache: one chain check per message (1,000 of them). */
	for (i = 0; i < 10; i++)
		for (h = 0; h < HOSTS; h++) {
			cold = verifier(f, "ca");
			der = hostsig_signer_cert(s[h]);
			assert_int_equal(hostsig_cert_add(cold, der.ptr, der.len, &cn, &err), MU_OK);
			hostsig_verifier_free(cold);
		}
	clock_gettime(CLOCK_MONOTONIC, &t2);
	printf("bench: verified %d results from %d hosts in %.3f s (%.1f us each, %llu "
	    "chain checks); with no cache (fresh verifier: CA load, parse, chain) %.1f us a message\n",
	    HOSTS * PER, HOSTS, secs(&t0, &t1), secs(&t0, &t1) * 1e6 / (HOSTS * PER),
	    (unsigned long long)st.chain_checks, secs(&t1, &t2) * 1e6 / (10 * HOSTS));
	for (h = 0; h < HOSTS; h++) {
		msgpack_sbuffer_destroy(&sb[h]);
		hostsig_signer_free(s[h]);
	}
	hostsig_verifier_free(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ec),
		cmocka_unit_test(test_ed25519),
		cmocka_unit_test(test_cert_refused),
		cmocka_unit_test(test_signer_refuses_tls),
		cmocka_unit_test(test_key_mismatch),
		cmocka_unit_test(test_facts_topic),
		cmocka_unit_test(test_agentmsg_facts),
		cmocka_unit_test(test_cache_bench),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
