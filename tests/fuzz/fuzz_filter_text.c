/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the text form of a fact filter predicate (muster -F,
 * lib/facts.c filter_text_pack): any text is packed or refused with a
 * reason; what is packed must be a filter the agent's filter_decode()
 * takes, and facts_match() must answer on it.  The outcome is
 * filter_text_pack's.
 */
#include "fuzz_facts.h"

int
fuzz_outcome(const uint8_t *data, size_t size, struct mu_err *err)
{
	struct fact_filter flt;
	struct mu_err e2;
	msgpack_unpacked up;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char *text;
	int rc;

	/* An argv string: no NUL inside. */
	if (memchr(data, '\0', size) != NULL)
		return mu_errf(err, MU_EINVAL, "a NUL in the text");
	if ((text = malloc(size + 1)) == NULL)
		fuzz_fail("out of memory", "");
	memcpy(text, data, size);
	text[size] = '\0';
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 1);
	rc = filter_text_pack(text, &pk, err);
	if (rc != MU_OK && sb.size != 1)
		fuzz_fail("filter_text_pack packed something and refused", err->msg);
	if (rc == MU_OK) {
		msgpack_unpacked_init(&up);
		if (msgpack_unpack_next(&up, sb.data, sb.size, NULL) != MSGPACK_UNPACK_SUCCESS)
			fuzz_fail("filter_text_pack packed no msgpack", "");
		if (filter_decode(&up.data, &flt, &e2) != MU_OK)
			fuzz_fail("filter_decode refused what filter_text_pack packed", e2.msg);
		(void)facts_match(fuzz_host_facts(), &flt);
		msgpack_unpacked_destroy(&up);
	}
	msgpack_sbuffer_destroy(&sb);
	free(text);
	return rc;
}

FUZZ_ENTRY
