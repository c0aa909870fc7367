/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the agent's side of fd 3: arbitrary bytes, fed to the
 * frame reader in chunks whose sizes come from the input itself, every
 * complete frame decoded.  The reader must refuse oversized frames and
 * never hand out a frame that runs past what it was fed.
 */
#include "fuzz.h"
#include "ipc.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_reader r = { 0 };
	struct ipc_event e;
	const uint8_t *frame;
	size_t off = 0, flen, fed = 0, handed = 0;

	while (off < size) {
		/* The first byte of each step says how much follows in it. */
		size_t n = 1 + data[off] % 64;

		off++;
		if (n > size - off)
			n = size - off;
		if (ipc_reader_feed(&r, data + off, n, NULL) != MU_OK)
			break;
		fed += n, off += n;
		while (ipc_reader_next(&r, &frame, &flen) == MU_OK) {
			handed += 4 + flen;
			if (handed > fed || flen > IPC_MAX_FRAME)
				fuzz_fail("the reader handed out more than it was fed", "");
			if (ipc_event_decode(frame, flen, &e, NULL) == MU_OK)
				wire_doc_free(&e.doc);
		}
	}
	ipc_reader_free(&r);
	return 0;
}
