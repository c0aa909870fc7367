/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wire_check.c - the bounded structural pre-check run before msgpack-c
 * unpacks anything (see wire.h for why).
 */
#include "wire.h"

#include <string.h>

/* Read a big-endian unsigned integer of n bytes (n <= 4). */
static uint32_t
be_read(const uint8_t *p, size_t n)
{
	uint32_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

enum item { ITEM_SCALAR, ITEM_STR, ITEM_BIN, ITEM_ARRAY, ITEM_MAP, ITEM_EXT, ITEM_BAD };

/*
 * Classify the item whose first byte is at p: how many header bytes it
 * takes, and either its payload length (str/bin) or its element count.
 */
static enum item
item_head(uint8_t b, size_t *hdr, size_t *lenfield, size_t *fixed)
{
	*hdr = 1, *lenfield = 0, *fixed = 0;
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
		return ITEM_SCALAR;
	if (b >= 0x80 && b <= 0x8f)
		return ITEM_MAP;
	if (b >= 0x90 && b <= 0x9f)
		return ITEM_ARRAY;
	if (b >= 0xa0 && b <= 0xbf)
		return ITEM_STR;
	switch (b) {
	case 0xca: *fixed = 4; return ITEM_SCALAR;
	case 0xcb: *fixed = 8; return ITEM_SCALAR;
	case 0xcc: case 0xd0: *fixed = 1; return ITEM_SCALAR;
	case 0xcd: case 0xd1: *fixed = 2; return ITEM_SCALAR;
	case 0xce: case 0xd2: *fixed = 4; return ITEM_SCALAR;
	case 0xcf: case 0xd3: *fixed = 8; return ITEM_SCALAR;
	case 0xc4: *lenfield = 1; return ITEM_BIN;
	case 0xc5: *lenfield = 2; return ITEM_BIN;
	case 0xc6: *lenfield = 4; return ITEM_BIN;
	case 0xd9: *lenfield = 1; return ITEM_STR;
	case 0xda: *lenfield = 2; return ITEM_STR;
	case 0xdb: *lenfield = 4; return ITEM_STR;
	case 0xdc: *lenfield = 2; return ITEM_ARRAY;
	case 0xdd: *lenfield = 4; return ITEM_ARRAY;
	case 0xde: *lenfield = 2; return ITEM_MAP;
	case 0xdf: *lenfield = 4; return ITEM_MAP;
	case 0xc7: case 0xc8: case 0xc9:
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		return ITEM_EXT;
	}
	return ITEM_BAD;	/* 0xc1 */
}

int
wire_check(const void *buf, size_t len, struct mu_err *err)
{
	const uint8_t *p = buf;
	size_t off = 0, depth = 0;
	/* Items still expected at each open nesting level; level 0 is the
	 * single top-level object. */
	size_t pending[WIRE_MAX_DEPTH + 1];

	if (buf == NULL || len == 0)
		return mu_errf(err, MU_EINVAL, "empty message");
	if (len > WIRE_MAX_MSG)
		return mu_errf(err, MU_EINVAL, "message of %zu bytes is over the %u byte limit",
		    len, WIRE_MAX_MSG);
	pending[0] = 1;
	for (;;) {
		size_t hdr, lenfield, fixed, n = 0;
		enum item kind;

		while (pending[depth] == 0) {
			if (depth == 0) {
				if (off != len)
					return mu_errf(err, MU_EINVAL,
					    "%zu trailing bytes after the message", len - off);
				return MU_OK;
			}
			depth--;
		}
		pending[depth]--;
		if (off >= len)
			return mu_errf(err, MU_EINVAL, "message is truncated");
		kind = item_head(p[off], &hdr, &lenfield, &fixed);
		if (kind == ITEM_BAD)
			return mu_errf(err, MU_EINVAL, "invalid msgpack byte 0x%02x", p[off]);
		if (kind == ITEM_EXT)
			return mu_errf(err, MU_EINVAL, "msgpack ext types are not allowed");
		if (len - off < hdr + lenfield + fixed)
			return mu_errf(err, MU_EINVAL, "message is truncated");
		if (lenfield)
			n = be_read(p + off + 1, lenfield);
		else if (kind == ITEM_STR)
			n = p[off] & 0x1f;
		else if (kind == ITEM_MAP || kind == ITEM_ARRAY)
			n = p[off] & 0x0f;
		off += hdr + lenfield + fixed;
		switch (kind) {
		case ITEM_STR:
		case ITEM_BIN:
			if (kind == ITEM_STR && n > WIRE_MAX_STR)
				return mu_errf(err, MU_EINVAL,
				    "string of %zu bytes is over the %u byte limit", n, WIRE_MAX_STR);
			if (n > len - off)
				return mu_errf(err, MU_EINVAL, "message is truncated");
			off += n;
			break;
		case ITEM_MAP:
		case ITEM_ARRAY:
			if (kind == ITEM_MAP)
				n *= 2;
			/* Every element takes at least one byte. */
			if (n > len - off)
				return mu_errf(err, MU_EINVAL, "message is truncated");
			if (depth == WIRE_MAX_DEPTH)
				return mu_errf(err, MU_EINVAL,
				    "nesting deeper than %d levels", WIRE_MAX_DEPTH);
			pending[++depth] = n;
			break;
		default:
			break;
		}
	}
}
