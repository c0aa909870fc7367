/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the agent's side of fd 3: arbitrary bytes, fed to the
 * frame reader in chunks whose sizes come from the input itself, every
 * complete frame decoded.  The reader must refuse oversized frames and
 * never hand out a frame that runs past what it was fed.
 *
 * The outcome: the reader's refusal if it refused a chunk; MU_ENOENT if it
 * took everything but the input ends inside a frame; MU_OK when it handed
 * every byte it was fed back as whole frames.  Whether a frame is an event
 * is fuzz_ipc_event's business, not this target's.
 */
#include "fuzz.h"
#include "ipc.h"

int
fuzz_outcome(const uint8_t *data, size_t size, struct mu_err *err)
{
	struct ipc_reader r = { 0 };
	struct ipc_event e;
	const uint8_t *frame;
	size_t off = 0, flen, fed = 0, handed = 0;
	int rc = MU_OK;

	while (off < size) {
		/* The first byte of each step says how much follows in it. */
		size_t n = 1 + data[off] % 64;

		off++;
		if (n > size - off)
			n = size - off;
		if ((rc = ipc_reader_feed(&r, data + off, n, err)) != MU_OK)
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
	if (rc == MU_OK && handed != fed)
		rc = mu_errf(err, MU_ENOENT, "the input ends %zu bytes into a frame",
		    fed - handed);
	return rc;
}

FUZZ_ENTRY
