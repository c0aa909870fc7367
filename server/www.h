/* SPDX-License-Identifier: Apache-2.0 */
/*
 * www.h - the live page's files (server/www/), built into the binary by
 * embed.cmake so that muster-server needs nothing installed beside it and
 * the page works offline.  [server] www serves the same names from a
 * folder instead (for editing the page without a rebuild).
 *
 * Ownership: the table and its data are constant.
 */
#ifndef MUSTER_WWW_H
#define MUSTER_WWW_H

#include <stddef.h>

struct www_file {
	const char *name;	/* "index.html" */
	const char *type;	/* Content-Type */
	const unsigned char *data;
	size_t len;
};

/* Only these names are served: a URL never becomes a path. */
const struct www_file *www_find(const char *name);

#endif
