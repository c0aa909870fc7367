/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sha256.h - SHA-256 (FIPS 180-4), small and self-contained, because a
 * module may link libc only.
 */
#ifndef MUSTER_SHA256_H
#define MUSTER_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN	32
#define SHA256_HEX	(2 * SHA256_LEN + 1)

struct sha256 {
	uint32_t	h[8];
	uint64_t	bytes;		/* message length so far */
	uint8_t		buf[64];
	size_t		used;		/* bytes waiting in buf */
};

void	sha256_init(struct sha256 *);
void	sha256_update(struct sha256 *, const void *, size_t);
void	sha256_final(struct sha256 *, uint8_t out[SHA256_LEN]);
void	sha256_hex(const uint8_t md[SHA256_LEN], char hex[SHA256_HEX]);

#endif
