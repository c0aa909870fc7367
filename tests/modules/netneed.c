/* SPDX-License-Identifier: Apache-2.0 */
/* netneed: netprobe.c, declaring MUSTER_NEEDS_NET. */
#include <muster/module.h>

#define NETPROBE_NAME	"netneed"
#define NETPROBE_NEEDS	MUSTER_NEEDS_NET
#include "netprobe.c"
