/* SPDX-License-Identifier: Apache-2.0 */
/* baddesc: a descriptor without run(). */
#include <stddef.h>

#include <muster/module.h>

__attribute__((visibility("default")))
const struct muster_module muster_module = {
	MUSTER_MODULE_MAGIC, MUSTER_ABI, sizeof(struct muster_module),
	"baddesc", "1.0.0", "Has no run()", NULL, 0,
};
