/* SPDX-License-Identifier: Apache-2.0 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

int
mu_errf(struct mu_err *err, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return rc;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return rc;
}

const char *
mu_strrc(int rc)
{
	switch (rc) {
	case MU_OK:	return "ok";
	case MU_EINVAL:	return "invalid input";
	case MU_ENOMEM:	return "out of memory";
	case MU_EIO:	return "i/o error";
	case MU_ESIG:	return "bad signature";
	case MU_ETRUST:	return "untrusted signer";
	case MU_ENOENT:	return "not found";
	case MU_ESTALE:	return "stale";
	}
	return "unknown error";
}
