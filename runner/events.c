/* SPDX-License-Identifier: Apache-2.0 */
/*
 * events.c - what the runner tells musterd on fd 3: output lines,
 * progress, and one verdict (lib/ipc.h has the frame format).
 *
 * Output is bounded by --output-limit, counted as the text plus one byte
 * per line, i.e. the size of the lines joined with newlines, which is how
 * the agent shows them.  Past the limit, lines are dropped and the verdict
 * says truncated; the module keeps running, since its verdict matters more
 * than its chatter.  Each change of the summary or data also goes out at
 * once as a state frame, within RUNNER_STATE_BUDGET, since a module that
 * crashes next gives no other chance.  When a write to fd 3 fails, nothing more is sent and
 * the runner ends with RUNNER_EXIT_PIPE after run() returns: a module has
 * no way to hear of it in the middle of a call.
 */
#include "runner.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int
ctx_init(struct muster_ctx *ctx, int evfd, size_t out_limit)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->evfd = evfd;
	ctx->out_limit = out_limit;
	ctx->pct = -1;
	return data_init(&ctx->data);
}

void
ctx_free(struct muster_ctx *ctx)
{
	args_free(&ctx->args);
	data_free(&ctx->data);
}

/* One encoded frame to fd 3; after a failed write, none. */
static int
events_send(struct muster_ctx *ctx, const msgpack_sbuffer *sb)
{
	if (ctx->ev_broken)
		return MU_EIO;
	if (ipc_frame_write(ctx->evfd, sb->data, sb->size) != MU_OK) {
		log_warn("cannot write to the event pipe");
		ctx->ev_broken = true;
		return MU_EIO;
	}
	return MU_OK;
}

static int
events_write(struct muster_ctx *ctx, const struct ipc_event *e)
{
	struct mu_err err = { "" };
	msgpack_sbuffer sb;
	int rc;

	if (ctx->ev_broken)
		return MU_EIO;
	msgpack_sbuffer_init(&sb);
	rc = ipc_event_encode(e, &sb, &err);
	if (rc == MU_OK && sb.data == NULL)
		rc = mu_errf(&err, MU_ENOMEM, "out of memory");
	if (rc == MU_OK)
		rc = events_send(ctx, &sb);
	else
		log_warnx("cannot encode an event: %s", err.msg);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* One line: cut to what the budget has left, cleaned, sent. */
static int
events_line(struct muster_ctx *ctx, char *line, size_t len)
{
	struct ipc_event e = { .type = IPC_OUT };
	size_t room, n;

	if (ctx->out_used >= ctx->out_limit) {
		ctx->out_truncated = true;
		return MU_OK;
	}
	room = ctx->out_limit - ctx->out_used - 1;
	if (room > RUNNER_LINE_MAX)
		room = RUNNER_LINE_MAX;
	n = utf8_clean(line, len, room);
	if (n < len)
		ctx->out_truncated = true;
	/* Nothing of it fits: an empty line would only mislead. */
	if (n == 0 && len > 0)
		return MU_OK;
	ctx->out_used += n + 1;
	e.text.ptr = line, e.text.len = n;
	return events_write(ctx, &e);
}

int
events_vout(struct muster_ctx *ctx, const char *fmt, va_list ap)
{
	struct fbuf fb;
	char *p, *nl, *end;
	int rc;

	rc = fbuf_vformat(&fb, fmt, ap);
	if (rc && rc != MU_ENOMEM)
		return rc;
	if (fb.cut || rc == MU_ENOMEM)
		ctx->out_truncated = true;
	end = fb.p + fb.len;
	/* A trailing newline ends the line rather than adding an empty one. */
	if (fb.len > 0 && end[-1] == '\n')
		end--;
	rc = MU_OK;
	for (p = fb.p; rc == MU_OK && p <= end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		rc = events_line(ctx, p, (size_t)(nl - p));
	}
	fbuf_free(&fb);
	return rc;
}

int
events_progress(struct muster_ctx *ctx, int pct)
{
	struct ipc_event e = { .type = IPC_PROGRESS };

	if (pct < 0)
		pct = 0;
	if (pct > 100)
		pct = 100;
	/* Repeats would only load the pipe of a module that reports in a loop. */
	if (pct == ctx->pct)
		return MU_OK;
	ctx->pct = pct;
	e.pct = (uint8_t)pct;
	return events_write(ctx, &e);
}

static void
copy_ident(char *dst, size_t dstsz, const char *src, bool (*valid)(const char *))
{
	dst[0] = '\0';
	if (src == NULL || strnlen(src, dstsz) >= dstsz)
		return;
	/* An invalid one would make the agent refuse the whole verdict. */
	if (valid(src))
		strcpy(dst, src);
}

/* ctx's data, packed into sb and unpacked into up, for e->data; a data
 * map that cannot be packed is left out and marked truncated. */
static void
events_data(struct muster_ctx *ctx, msgpack_sbuffer *sb, msgpack_unpacked *up,
    struct ipc_event *e)
{
	size_t off = 0;
	int rc;

	if (data_empty(&ctx->data))
		return;
	rc = data_pack(&ctx->data, sb);
	if (rc == MU_OK && msgpack_unpack_next(up, sb->data, sb->size, &off) !=
	    MSGPACK_UNPACK_SUCCESS)
		rc = MU_ENOMEM;
	if (rc == MU_OK)
		e->data = &up->data;
	else {
		log_warnx("cannot pack the result data: %s", mu_strrc(rc));
		ctx->data.truncated = true;
	}
}

int
events_verdict(struct muster_ctx *ctx, enum result_status status, const char *module,
    const char *version)
{
	struct ipc_event e = { .type = IPC_VERDICT, .status = status };
	msgpack_unpacked up;
	msgpack_sbuffer sb;
	int rc;

	if (ctx->summary.set)
		e.summary.ptr = ctx->summary.s, e.summary.len = strlen(ctx->summary.s);
	if (ctx->reason.set)
		e.reason.ptr = ctx->reason.s, e.reason.len = strlen(ctx->reason.s);
	copy_ident(e.module, sizeof(e.module), module, name_valid);
	copy_ident(e.module_version, sizeof(e.module_version), version, version_valid);
	msgpack_sbuffer_init(&sb);
	msgpack_unpacked_init(&up);
	events_data(ctx, &sb, &up, &e);
	e.truncated = ctx->out_truncated || ctx->data.truncated;
	rc = events_write(ctx, &e);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/*
 * Past the budget, one last frame with only "truncated" says that the
 * state musterd holds is older than the module's; the verdict, if one
 * comes, still carries all of it.
 */
int
events_state(struct muster_ctx *ctx)
{
	struct ipc_event e = { .type = IPC_STATE };
	struct mu_err err = { "" };
	msgpack_unpacked up;
	msgpack_sbuffer sb, frame;
	size_t cost;
	int rc;

	if (ctx->state_cut || ctx->ev_broken)
		return MU_OK;
	if (ctx->summary.set)
		e.summary.ptr = ctx->summary.s, e.summary.len = strlen(ctx->summary.s);
	msgpack_sbuffer_init(&sb);
	msgpack_sbuffer_init(&frame);
	msgpack_unpacked_init(&up);
	events_data(ctx, &sb, &up, &e);
	e.truncated = ctx->data.truncated;
	rc = ipc_event_encode(&e, &frame, &err);
	cost = frame.size + RUNNER_STATE_FRAME_COST;
	if (rc == MU_OK && frame.data != NULL &&
	    cost <= RUNNER_STATE_BUDGET - ctx->state_spent) {
		ctx->state_spent += cost;
		rc = events_send(ctx, &frame);
	} else {
		ctx->state_cut = true;
		e = (struct ipc_event){ .type = IPC_STATE, .truncated = true };
		rc = events_write(ctx, &e);
	}
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&frame);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}
