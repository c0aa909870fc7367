/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/sign.c: Ed25519 keys made in a temp folder (by us and
 * by the openssl command), key ids, envelope signatures and the keyring.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sign.h"

struct fixture {
	char dir[64];		/* temp folder with keys a, b (ours) and c (openssl) */
	char ring[80];		/* temp/ring: a.pub and c.pub only */
};

/* Run a shell command; fmt refers to its one argument as %1$s. */
static int __attribute__((format(printf, 1, 2)))
run(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct mu_err err;

	strcpy(f->dir, "/tmp/muster-sign-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->ring, sizeof(f->ring), "%s/ring", f->dir);
	if (sign_keygen(f->dir, "a", &err) || sign_keygen(f->dir, "b", &err))
		return -1;
	/* c is made by the openssl tool, as an operator would make it. */
	if (run("openssl genpkey -algorithm ed25519 -out %1$s/c.key 2>/dev/null && "
	    "openssl pkey -in %1$s/c.key -pubout -out %1$s/c.pub", f->dir) != 0)
		return -1;
	if (run("mkdir %1$s/ring && cp %1$s/a.pub %1$s/c.pub %1$s/ring/", f->dir) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	run("rm -rf %1$s", f->dir);
	free(f);
	return 0;
}

static struct sign_key *
load(const struct fixture *f, const char *file, bool private)
{
	struct sign_key *k = NULL;
	struct mu_err err;
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", f->dir, file);
	if (private)
		assert_int_equal(sign_key_load_private(path, &k, &err), MU_OK);
	else
		assert_int_equal(sign_key_load_public(path, &k, &err), MU_OK);
	return k;
}

/* The key id computed independently: sha256 of the raw key (the last 32
 * bytes of the DER SubjectPublicKeyInfo), first 8 bytes. */
static void
keyid_by_openssl(const struct fixture *f, const char *pub, char out[17])
{
	char cmd[256];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "openssl pkey -pubin -in %s/%s -outform DER | "
	    "tail -c 32 | sha256sum | cut -c1-16", f->dir, pub);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, 17, p));
	pclose(p);
}

/* What the keyring reported last (appended). */
static char warned[2048];

static void
warn_keep(void *arg, const char *msg)
{
	size_t n = strlen(warned);

	(void)arg;
	snprintf(warned + n, sizeof(warned) - n, "%s\n", msg);
}

static void
test_keyid(void **state)
{
	struct fixture *f = *state;
	struct sign_key *priv = load(f, "c.key", true), *pub = load(f, "c.pub", false);
	char want[17];

	keyid_by_openssl(f, "c.pub", want);
	assert_string_equal(sign_key_id(pub), want);
	assert_string_equal(sign_key_id(priv), want);
	sign_key_free(priv);
	sign_key_free(pub);
}

static void
test_sign_verify(void **state)
{
	struct fixture *f = *state;
	struct sign_key *priv = load(f, "a.key", true), *pub = load(f, "a.pub", false),
	    *other = load(f, "b.pub", false);
	uint8_t sig[64], body[] = "the exact body bytes";
	struct mu_err err;

	assert_int_equal(sign_bytes(priv, body, sizeof(body), sig, &err), MU_OK);
	assert_int_equal(sign_verify(pub, body, sizeof(body), sig, &err), MU_OK);
	body[3] ^= 0x01;
	assert_int_equal(sign_verify(pub, body, sizeof(body), sig, &err), MU_ESIG);
	body[3] ^= 0x01;
	sig[10] ^= 0x80;
	assert_int_equal(sign_verify(pub, body, sizeof(body), sig, &err), MU_ESIG);
	assert_non_null(strstr(err.msg, "does not verify"));
	sig[10] ^= 0x80;
	assert_int_equal(sign_verify(other, body, sizeof(body), sig, &err), MU_ESIG);
	/* A public key cannot sign. */
	assert_int_equal(sign_bytes(pub, body, sizeof(body), sig, &err), MU_ESIG);
	sign_key_free(priv);
	sign_key_free(pub);
	sign_key_free(other);
}

static void
test_envelope_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct sign_key *a = load(f, "a.key", true), *b = load(f, "b.key", true),
	    *c = load(f, "c.key", true);
	struct keyring ring = { NULL, 0 };
	struct job_envelope env;
	msgpack_sbuffer sb;
	struct mu_err err;
	const char body[] = "\x81\xa1v\x01";

	assert_int_equal(keyring_load_dir(&ring, f->ring, NULL, NULL, &err), MU_OK);
	assert_int_equal(ring.nkeys, 2);
	assert_non_null(keyring_find(&ring, sign_key_id(a)));
	assert_non_null(keyring_find(&ring, sign_key_id(c)));
	assert_null(keyring_find(&ring, sign_key_id(b)));

	msgpack_sbuffer_init(&sb);
	assert_int_equal(envelope_sign(c, body, 4, &sb, &err), MU_OK);
	assert_int_equal(envelope_decode(sb.data, sb.size, &env, &err), MU_OK);
	assert_string_equal(env.key, sign_key_id(c));
	assert_int_equal(envelope_verify(&ring, &env, &err), MU_OK);
	env.sig[0] ^= 1;
	assert_int_equal(envelope_verify(&ring, &env, &err), MU_ESIG);
	wire_doc_free(&env.doc);

	/* Signed by a key the ring does not hold. */
	msgpack_sbuffer_clear(&sb);
	assert_int_equal(envelope_sign(b, body, 4, &sb, &err), MU_OK);
	assert_int_equal(envelope_decode(sb.data, sb.size, &env, &err), MU_OK);
	assert_int_equal(envelope_verify(&ring, &env, &err), MU_ETRUST);
	assert_non_null(strstr(err.msg, "not a trusted operator key"));
	/* Claiming a trusted key id with b's signature: still refused. */
	memcpy(env.key, sign_key_id(a), 17);
	assert_int_equal(envelope_verify(&ring, &env, &err), MU_ESIG);
	wire_doc_free(&env.doc);

	msgpack_sbuffer_destroy(&sb);
	keyring_free(&ring);
	sign_key_free(a);
	sign_key_free(b);
	sign_key_free(c);
}

static void
test_bad_keys(void **state)
{
	struct fixture *f = *state;
	struct keyring ring = { NULL, 0 };
	struct sign_key *k = NULL;
	struct mu_err err;
	char path[128];

	snprintf(path, sizeof(path), "%s/nope.pub", f->dir);
	assert_int_equal(sign_key_load_public(path, &k, &err), MU_EIO);
	assert_non_null(strstr(err.msg, "nope.pub"));
	snprintf(path, sizeof(path), "%s/a.key", f->dir);
	assert_int_equal(sign_key_load_public(path, &k, &err), MU_EINVAL);
	assert_int_equal(run("openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 "
	    "2>/dev/null | openssl pkey -pubout -out %1$s/ec.pub 2>/dev/null", f->dir), 0);
	snprintf(path, sizeof(path), "%s/ec.pub", f->dir);
	assert_int_equal(sign_key_load_public(path, &k, &err), MU_EINVAL);
	assert_non_null(strstr(err.msg, "not an Ed25519 key"));
	assert_null(k);

	/* Fail closed (design.md §8): a bad .pub is reported and left out, the
	 * good keys load. */
	assert_int_equal(keyring_load_dir(&ring, f->ring, NULL, NULL, &err), MU_OK);
	assert_int_equal(run("echo junk > %1$s/ring/zz.pub", f->dir), 0);
	warned[0] = '\0';
	assert_int_equal(keyring_load_dir(&ring, f->ring, warn_keep, NULL, &err), MU_OK);
	assert_non_null(strstr(warned, "zz.pub"));
	assert_int_equal(ring.nkeys, 2);
	/* A key whose file breaks loses its trust at the next load: it is
	 * never kept alive from the old ring. */
	assert_int_equal(run("cp %1$s/ring/zz.pub %1$s/ring/a.pub", f->dir), 0);
	assert_int_equal(keyring_load_dir(&ring, f->ring, warn_keep, NULL, &err), MU_OK);
	assert_int_equal(ring.nkeys, 1);
	assert_string_equal(sign_key_name(ring.keys[0]), "c");
	assert_int_equal(run("rm %1$s/ring/zz.pub; cp %1$s/a.pub %1$s/ring/a.pub", f->dir), 0);
	/* An unreadable folder keeps the ring as it was. */
	assert_int_equal(keyring_load_dir(&ring, "/nonexistent-muster", NULL, NULL, &err),
	    MU_EIO);
	assert_int_equal(ring.nkeys, 1);
	keyring_free(&ring);

	/* keygen refuses to overwrite. */
	assert_int_equal(sign_keygen(f->dir, "a", &err), MU_EIO);
	assert_int_equal(sign_keygen(f->dir, "../x", &err), MU_EINVAL);
}

/* Two files with the same key id (here the same key under two names; two
 * different keys whose ids collide take the same path): both are refused,
 * with an error naming both, and the other keys still load. */
static void
test_keyid_collision(void **state)
{
	struct fixture *f = *state;
	struct keyring ring = { NULL, 0 };
	struct sign_key *a = load(f, "a.pub", false), *c = load(f, "c.pub", false);
	struct mu_err err;

	assert_int_equal(run("cp %1$s/a.pub %1$s/ring/alias.pub", f->dir), 0);
	warned[0] = '\0';
	assert_int_equal(keyring_load_dir(&ring, f->ring, warn_keep, NULL, &err), MU_OK);
	assert_int_equal(ring.nkeys, 1);
	assert_null(keyring_find(&ring, sign_key_id(a)));
	assert_non_null(keyring_find(&ring, sign_key_id(c)));
	assert_non_null(strstr(warned, "same key id"));
	assert_non_null(strstr(warned, "both refused"));
	assert_non_null(strstr(warned, "'alias'"));
	assert_non_null(strstr(warned, sign_key_id(a)));
	/* Remove the duplicate: the key is trusted again. */
	assert_int_equal(run("rm %1$s/ring/alias.pub", f->dir), 0);
	assert_int_equal(keyring_load_dir(&ring, f->ring, warn_keep, NULL, &err), MU_OK);
	assert_int_equal(ring.nkeys, 2);
	assert_non_null(keyring_find(&ring, sign_key_id(a)));
	keyring_free(&ring);
	sign_key_free(a);
	sign_key_free(c);
}

static void
test_sha256(void **state)
{
	char hex[65];

	(void)state;
	assert_int_equal(sha256_hex("abc", 3, hex), MU_OK);
	assert_string_equal(hex,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyid),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_envelope_roundtrip),
		cmocka_unit_test(test_bad_keys),
		cmocka_unit_test(test_keyid_collision),
		cmocka_unit_test(test_sha256),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
