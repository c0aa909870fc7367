/* SPDX-License-Identifier: Apache-2.0 */
/* nosym: a shared object without a muster_module symbol. */
__attribute__((visibility("default"))) int not_a_module(void);

int
not_a_module(void)
{
	return 42;
}
