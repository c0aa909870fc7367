/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/hostsig.c: host keys (EC P-256 as scripts/gen-pki
 * makes them, and Ed25519) signing agent envelopes, and a verifier over a
 * CA made in a temp folder with the openssl command: chain, purpose, CN,
 * a second CA, tampering, the certificate cache, and a facts message
 * checked as the CLI and muster-server check it (lib/agentmsg.c).  The last test times
 * verifying 10,000 results from 100 hosts (docs/BENCHMARKS.md).
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

#include "agentmsg.h"
#include "hostsig.h"

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
 * DIR/ca (EC CA), DIR/ca2 (another CA), leaf certificates signed by ca:
 * h1 (EC, clientAuth), ed (Ed25519, clientAuth), srv (EC, serverAuth only),
 * two (EC, two CNs); and evil (EC, CN h1) signed by ca2.
 */
static const char pki_script[] =
    "set -e; cd %1$s; exec 2>/dev/null\n"
    "printf '[ca]\\nbasicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n"
    "[client]\\nbasicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
    "extendedKeyUsage=clientAuth\\n[server]\\nbasicConstraints=critical,CA:FALSE\\n"
    "keyUsage=critical,digitalSignature\\nextendedKeyUsage=serverAuth\\n' > ext.cnf\n"
    "ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1.key; }\n"
    "ca() { ec $1; openssl req -new -x509 -key $1.key -subj \"/CN=$1 test CA\" -days 30 "
    "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
    "-out $1.crt; }\n"
    "leaf() { openssl req -new -key $1.key -subj \"$2\" -out $1.csr;"
    " openssl x509 -req -in $1.csr -CA $3.crt -CAkey $3.key -set_serial $((n += 1)) -days 30"
    " -extfile ext.cnf -extensions $4 -out $1.crt; }\n"
    "n=1; ca ca; ca ca2\n"
    "ec h1; leaf h1 /CN=h1 ca client\n"
    "openssl genpkey -algorithm ed25519 -out ed.key; leaf ed /CN=ed ca client\n"
    "ec srv; leaf srv /CN=srv ca server\n"
    "ec two; leaf two /CN=a/CN=b ca client\n"
    "ec evil; leaf evil /CN=h1 ca2 client\n"
    "for i in $(seq 0 99); do ec b$i; leaf b$i /CN=b$i ca client; done\n";

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
sign_verify(const struct fixture *f, const char *name, size_t maxsig)
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
	sign_verify(*state, "h1", 72);	/* ECDSA P-256 DER */
}

static void
test_ed25519(void **state)
{
	sign_verify(*state, "ed", 64);
}

/* The other host's valid key cannot pass for this one: CN is the name. */
static void
test_cert_refused(void **state)
{
	const struct fixture *f = *state;
	struct hostsig_verifier *v = verifier(f, "ca");
	struct hostsig_signer *s;
	struct wire_bytes der;
	struct agent_envelope e;
	msgpack_sbuffer sb;
	struct mu_err err;
	const char *cn;
	static const char *const bad[][2] = {
		{ "evil", "not trusted" },	/* another CA, CN h1 */
		{ "srv", "not trusted" },	/* serverAuth only */
		{ "two", "more than one CN" },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = signer(f, bad[i][0]);
		der = hostsig_signer_cert(s);
		assert_int_equal(hostsig_cert_add(v, der.ptr, der.len, &cn, &err), MU_ETRUST);
		assert_non_null(strstr(err.msg, bad[i][1]));
		/* A known-bad certificate stays bad, from the cache. */
		wrap(s, "x", &sb, &e);
		assert_int_equal(hostsig_verify(v, &e, &cn, &err), MU_ETRUST);
		assert_false(hostsig_cert_known(v, e.cert));
		wire_doc_free(&e.doc);
		msgpack_sbuffer_destroy(&sb);
		hostsig_signer_free(s);
	}
	assert_int_equal(hostsig_cert_add(v, "\x30\x03\x02\x01\x01", 5, &cn, &err), MU_EINVAL);
	hostsig_verifier_free(v);
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
		cmocka_unit_test(test_key_mismatch),
		cmocka_unit_test(test_facts_topic),
		cmocka_unit_test(test_agentmsg_facts),
		cmocka_unit_test(test_cache_bench),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
