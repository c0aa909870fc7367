/* SPDX-License-Identifier: Apache-2.0 */
/*
 * err.h - return codes and human-readable reasons shared by libmuster.
 *
 * Every fallible function returns an enum mu_rc (0 = success) and, when the
 * caller passes a struct mu_err, writes one line a human can act on.  The
 * caller owns the struct (usually on its stack); nothing here allocates.
 */
#ifndef MUSTER_ERR_H
#define MUSTER_ERR_H

#include <stddef.h>

enum mu_rc {
	MU_OK = 0,
	MU_EINVAL,	/* malformed or out-of-bounds input */
	MU_ENOMEM,	/* allocation failed */
	MU_EIO,		/* file, socket or library I/O failed */
	MU_ESIG,	/* signature missing, malformed or not valid */
	MU_ETRUST,	/* valid signature, but not from a trusted signer */
	MU_ENOENT,	/* the thing looked up does not exist */
	MU_ESTALE,	/* outside its validity window, replayed, or rolled back */
};

struct mu_err {
	char msg[256];
};

/* Format a reason into err (if non-NULL) and return rc, so callers can write
 * "return mu_errf(err, MU_EINVAL, "...", ...);". */
int mu_errf(struct mu_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A short constant name for a return code ("invalid input", ...). */
const char *mu_strrc(int rc);

#endif
