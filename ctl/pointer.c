/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pointer.c - the signed pointer of a module or a release: its published_at
 * and its signature, for module.c and release.c alike (pointer.h).
 */
#include "pointer.h"

#include <stdlib.h>

#include "ctl.h"
#include "pgp.h"

int
pointer_next_published_at(uint64_t now, const uint64_t *current, const char *topic,
    uint64_t *out)
{
	*out = now;
	if (current == NULL || *current < now)
		return 0;
	/* +1 would wrap to 0, which every host refuses as a rollback. */
	if (*current == UINT64_MAX) {
		fprintf(stderr, "muster: the pointer on %s has the largest published_at: "
		    "nothing can replace it, clear it first\n", topic);
		return EXIT_USAGE;
	}
	*out = *current + 1;
	return 0;
}

int
pointer_sign(struct ctl *c, const msgpack_sbuffer *manifest, msgpack_sbuffer *ptr,
    void **sig, size_t *siglen)
{
	struct signed_pointer p = { 0 };
	struct mu_err err;
	void *s = NULL;
	size_t slen = 0;
	int rc = EXIT_USAGE;

	if (pgp_sign(c->cfg.gnupg_home[0] ? c->cfg.gnupg_home : NULL, c->cfg.fingerprint,
	    manifest->data, manifest->size, &s, &slen, &err) != MU_OK) {
		fprintf(stderr, "muster: cannot sign with publisher key %s from %s: %s\n",
		    c->cfg.fingerprint, c->cfg.gnupg_home[0] ? c->cfg.gnupg_home :
		    "the default gnupg home", err.msg);
		return rc;
	}
	p.manifest = (struct wire_bytes){ (const uint8_t *)manifest->data, manifest->size };
	p.sig = (struct wire_bytes){ s, slen };
	if (pointer_encode(&p, ptr, &err) != MU_OK)
		fprintf(stderr, "muster: encode: %s\n", err.msg);
	else
		rc = 0;
	if (rc == 0 && sig != NULL) {
		*sig = s;
		*siglen = slen;
	} else
		free(s);
	return rc;
}
