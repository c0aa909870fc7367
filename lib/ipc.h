/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ipc.h - the event stream from muster-runner to musterd (fd 3 of the
 * runner).
 *
 * The stream is a sequence of frames: a 4-byte big-endian length, then that
 * many bytes of one msgpack map {"v":1, "t":<type>, ...}:
 *
 *   "out"      text           one output line from the module
 *   "progress" pct            0..100
 *   "verdict"  status, reason?, summary?, data?, truncated?, module?,
 *              module_version?  -- last frame; status is pass|fail|error
 *   "state"    summary?, data?, truncated?  -- the summary and data as the
 *              module set them so far, each frame replacing what it
 *              carries; kept only if no verdict comes (a crash), where
 *              truncated means later changes were not sent
 *
 * The agent treats the stream as hostile (a module can write to fd 3): every
 * frame is length-checked before it is buffered, and every decode is the
 * same bounded wire_check() + typed read as the network messages.
 *
 * Ownership: ipc_event follows wire.h's rules (borrowed views, wire_doc to
 * free).  struct ipc_reader owns its buffer; ipc_reader_free() releases it.
 * A frame returned by ipc_reader_next() is valid until the next call.
 */
#ifndef MUSTER_IPC_H
#define MUSTER_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "wire.h"

#define IPC_MAX_FRAME	(256u * 1024)

/* Append only: the names index ipc.c's table. */
enum ipc_type { IPC_OUT, IPC_PROGRESS, IPC_VERDICT, IPC_STATE };

struct ipc_event {
	struct wire_doc doc;
	enum ipc_type type;
	struct wire_str text;			/* out */
	uint8_t pct;				/* progress */
	enum result_status status;		/* verdict: RS_PASS, RS_FAIL or RS_ERROR */
	struct wire_str reason, summary;	/* verdict, optional */
	const msgpack_object *data;		/* verdict, state: optional map */
	bool truncated;				/* verdict, state */
	char module[NAME_MAX_LEN + 1];		/* verdict, optional */
	char module_version[WIRE_MAX_VERSION + 1];	/* verdict, optional */
};

int ipc_event_decode(const void *buf, size_t len, struct ipc_event *out,
    struct mu_err *err);
int ipc_event_encode(const struct ipc_event *e, msgpack_sbuffer *out,
    struct mu_err *err);

/* Write one frame (length + payload) to a blocking fd; retries on EINTR
 * and short writes.  MU_EIO on error (e.g. EPIPE when the agent is gone). */
int ipc_frame_write(int fd, const void *payload, size_t len);

/* Reassembles frames from whatever read() returned. */
struct ipc_reader {
	uint8_t *buf;
	size_t len, cap;
	size_t consumed;	/* bytes of buf already handed out */
	size_t max_frame;	/* 0: IPC_MAX_FRAME */
};

/* Append bytes read from the pipe.  MU_EINVAL if a frame header announces
 * more than the reader's max_frame or the buffer would pass it. */
int ipc_reader_feed(struct ipc_reader *r, const void *data, size_t len,
    struct mu_err *err);
/* Next complete frame: MU_OK with frame and len set, MU_ENOENT if none yet. */
int ipc_reader_next(struct ipc_reader *r, const uint8_t **frame, size_t *len);
void ipc_reader_free(struct ipc_reader *r);

#endif
