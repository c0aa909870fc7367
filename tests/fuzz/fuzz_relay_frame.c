/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Round-trip fuzz target for relay_frame_decode / _encode (lib/relay.c):
 * the frames between a call and the persist relay.  The encoder writes the
 * 4-byte length header too; the decoder reads a body.
 */
#include "fuzz.h"
#include "relay.h"

static bool
same(const struct relay_frame *a, const struct relay_frame *b)
{
	return FUZZ_EQ(a, b, type) && FUZZ_EQ(a, b, version) && FUZZ_EQ(a, b, ok) &&
	    FUZZ_EQ(a, b, token) && FUZZ_EQ(a, b, qos) && FUZZ_EQ(a, b, retain) &&
	    FUZZ_EQ(a, b, expiry_s) && fuzz_view_eq(a->topic, b->topic) &&
	    fuzz_bytes_eq(a->payload, b->payload) && fuzz_view_eq(a->reason, b->reason);
}

/* A frame as written, without its length header (checked first). */
static const uint8_t *
body(const msgpack_sbuffer *s, size_t *len)
{
	uint32_t n;

	if (s->size < 4)
		fuzz_fail("relay_frame_encode wrote no header", "");
	n = (uint32_t)((uint8_t)s->data[0] << 24 | (uint8_t)s->data[1] << 16 |
	    (uint8_t)s->data[2] << 8 | (uint8_t)s->data[3]);
	if (n != s->size - 4)
		fuzz_fail("relay_frame_encode's header is not the body's length", "");
	*len = n;
	return (const uint8_t *)s->data + 4;
}

int
fuzz_outcome(const uint8_t *data, size_t size, struct mu_err *err)
{
	struct relay_frame a, b;
	msgpack_sbuffer s1, s2;
	struct mu_err e2;
	const uint8_t *p;
	size_t n;
	int rc;

	if ((rc = relay_frame_decode(data, size, &a, err)) != MU_OK)
		return rc;
	msgpack_sbuffer_init(&s1);
	msgpack_sbuffer_init(&s2);
	if (relay_frame_encode(&a, &s1, &e2) != MU_OK)
		fuzz_fail("relay_frame_encode refused what relay_frame_decode accepted", e2.msg);
	p = body(&s1, &n);
	if (relay_frame_decode(p, n, &b, &e2) != MU_OK)
		fuzz_fail("relay_frame_decode refused what relay_frame_encode wrote", e2.msg);
	if (!same(&a, &b))
		fuzz_fail("fields differ after a round trip", "");
	if (relay_frame_encode(&b, &s2, &e2) != MU_OK || s1.size != s2.size ||
	    memcmp(s1.data, s2.data, s1.size) != 0)
		fuzz_fail("re-encoding is not stable", "");
	wire_doc_free(&a.doc);
	wire_doc_free(&b.doc);
	msgpack_sbuffer_destroy(&s1);
	msgpack_sbuffer_destroy(&s2);
	return MU_OK;
}

FUZZ_ENTRY
