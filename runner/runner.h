/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runner.h - muster-runner: loads one module and runs it for one job.
 *
 * Three roles, one file each:
 *
 *   runner.c    runner_main()    the contract with musterd: the job body
 *                                on stdin, events on fd 3, the module (a
 *                                sealed memfd) on fd 4
 *   describe.c  describe_main()  --describe FILE.so: the descriptor as JSON
 *   local.c     local_main()     --run FILE.so: a module author's edit-run
 *                                loop; plays musterd for a runner child
 *
 * The rest is shared: module.c (dlopen and the descriptor checks), api.c
 * (the helper vtable), args.c (argument values), getargs.c (checked
 * getters, fail/error, line readers), data.c (result data),
 * events.c (frames on fd 3), cmd.c (read_file, run_cmd), text.c (bounded
 * UTF-8 text).  JSON <-> msgpack, and --run's key=value / key:=JSON
 * arguments (mpjson_arg()), are lib/mpjson's.
 *
 * Functions return 0 on success and otherwise either an enum mu_rc (for
 * the building blocks) or an enum runner_exit (for what decides how the
 * process ends), with a reason in a struct mu_err.
 */
#ifndef MUSTER_RUNNER_H
#define MUSTER_RUNNER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include <muster/module.h>

#include "err.h"
#include "ipc.h"
#include "wire.h"

/* How the runner ends: a module's verdict, or why there is none.  With a
 * working fd 3 every code from 2 on also comes with an error verdict that
 * carries the same reason. */
enum runner_exit {
	RUNNER_EXIT_PASS = 0,		/* module returned MUSTER_PASS */
	RUNNER_EXIT_FAIL = 1,		/* module returned MUSTER_FAIL */
	RUNNER_EXIT_ERROR = 2,		/* module returned MUSTER_ERROR */
	RUNNER_EXIT_USAGE = 64,		/* bad command line */
	RUNNER_EXIT_BADJOB = 65,	/* stdin is not a run job body */
	RUNNER_EXIT_LOAD = 66,		/* dlopen() failed; reason has dlerror() */
	RUNNER_EXIT_NOSYM = 67,		/* no muster_module symbol */
	RUNNER_EXIT_MAGIC = 68,		/* descriptor has the wrong magic */
	RUNNER_EXIT_ABI = 69,		/* descriptor speaks another ABI */
	RUNNER_EXIT_NAME = 70,		/* descriptor name is not the job's module */
	RUNNER_EXIT_PIPE = 71,		/* fd 3 missing or a write to it failed */
	RUNNER_EXIT_DESC = 72,		/* descriptor too small, NULL or bad fields */
	RUNNER_EXIT_BADRET = 73,	/* run() returned something not 0, 1 or 2 */
	RUNNER_EXIT_INTERNAL = 74,	/* out of memory, fork failed, ... */
	RUNNER_EXIT_TIMEOUT = 75,	/* --run --timeout expired (local mode only) */
	RUNNER_EXIT_NEEDS = 76,		/* the module needs what the job may not
					 * have (the network), or what this
					 * runner does not know */
	/* --run only: a runner child killed by signal N exits 128 + N. */
	RUNNER_EXIT_SIGNAL_BASE = 128,
};

#define RUNNER_EVENT_FD		3
#define RUNNER_MODULE_FD	4
#define RUNNER_MODULE_PATH	"/proc/self/fd/4"
#define RUNNER_SELF		"/proc/self/exe"
#define RUNNER_STD_PATH	"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#define RUNNER_OUTPUT_DEFAULT	(64u * 1024)	/* --output-limit */
#define RUNNER_OUTPUT_MAX	(16u * 1024 * 1024)
#define RUNNER_LINE_MAX		(16u * 1024)	/* one output line */
#define RUNNER_TEXT_MAX		1024		/* summary, reason */
#define RUNNER_FORMAT_MAX	(1024u * 1024)	/* one printf-style call */
#define RUNNER_DATA_MAX_BYTES	(64u * 1024)	/* data, encoded */
#define RUNNER_DATA_MAX_KEYS	1024		/* map entries + list items */
#define RUNNER_DATA_MAX_DEPTH	7		/* path elements */
#define RUNNER_DATA_PATH_MAX	1024
#define RUNNER_READ_MAX		(256u * 1024 * 1024)	/* read_file max */
#define RUNNER_CMD_OUT_MAX	(64u * 1024 * 1024)	/* run_cmd max_out */
/* State frames (events_state()) per run, each counted as its size plus
 * RUNNER_STATE_FRAME_COST: 64 full data maps, or some 14,000 small
 * changes of a module that sets a counter in a loop. */
#define RUNNER_STATE_BUDGET	(4u * 1024 * 1024)
#define RUNNER_STATE_FRAME_COST	256u

/* The v1 descriptor: every field up to and including run(). */
#define MODULE_V1_SIZE	(offsetof(struct muster_module, run) + \
	sizeof(((struct muster_module *)0)->run))

struct runner_opts {
	size_t output_limit;
	const char *describe;		/* --describe FILE */
	const char *run;		/* --run FILE */
	bool json;			/* --run --json */
	uint64_t timeout_ms;		/* --run --timeout; 0 = none */
	/* --no-net WHY: musterd did not grant this job the network (WHY:
	 * "manifest" or "policy"); NULL: the descriptor decides. */
	const char *no_net;
	bool no_confine;		/* --run --no-confine */
	int nargs;			/* --run key=value | key:=JSON ... */
	char **args;
};

int runner_main(const struct runner_opts *);
int describe_main(const struct runner_opts *);
int local_main(const struct runner_opts *);

/* ---- text.c ----------------------------------------------------------- */

/* Make s[0..len) valid UTF-8 in place (a bad byte or NUL becomes '?') and
 * cut it at a character boundary to at most max bytes; the new length. */
size_t utf8_clean(char *s, size_t len, size_t max);

/* One printf-style formatting, small results without malloc. */
struct fbuf {
	char small[512];
	char *p;		/* small or malloc'd */
	size_t len;
	bool cut;		/* longer than RUNNER_FORMAT_MAX */
};

int fbuf_vformat(struct fbuf *, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void fbuf_free(struct fbuf *);

/* A summary or reason: one line of at most RUNNER_TEXT_MAX bytes, held
 * without malloc, so that a module out of memory can still say so. */
struct text {
	char s[RUNNER_TEXT_MAX + 1];
	bool set;
};

/* Format, clean, cut, and make newlines spaces; the last call wins. */
int text_vset(struct text *, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
int text_set(struct text *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- args.c: the job's args as a tree of struct muster_value ---------- */

/* Bump allocator: everything the value tree holds, freed at once. */
struct arena {
	struct arena_chunk *head;
};

void *arena_alloc(struct arena *, size_t);
void arena_free(struct arena *);

struct muster_value {
	enum muster_type type;
	bool b;
	bool int_ok;			/* i holds the integer (it fits) */
	int64_t i;
	double f;			/* FLOAT, and INT as a double */
	const char *s;			/* STR: NUL-terminated copy */
	size_t len;			/* STR, BIN: bytes; LIST, MAP: entries */
	const char **keys;		/* MAP */
	struct muster_value *items;	/* LIST, MAP */
};

struct args {
	struct arena arena;
	struct muster_value *root;	/* always a MAP, maybe empty */
};

int args_build(struct args *, const msgpack_object *map, struct mu_err *);
void args_free(struct args *);
const struct muster_value *value_get(const struct muster_value *, const char *key);

/* ---- data.c: the verdict's data map ----------------------------------- */

enum dtype { D_NIL, D_BOOL, D_INT, D_FLOAT, D_STR, D_MAP, D_LIST };

struct dval {
	enum dtype type;
	bool b;
	int64_t i;
	double f;
	const char *s;
	size_t len;
};

struct dnode;

struct data {
	struct dnode *root;	/* a D_MAP */
	size_t nodes;		/* every node but the root */
	size_t bytes;		/* encoded size, an upper bound */
	bool truncated;		/* a set was dropped for a bound */
};

int data_init(struct data *);
/* Set path to v.  MU_EINVAL for a bad path; a set past the bounds is
 * dropped and marks the data truncated, and still returns MU_OK. */
int data_set(struct data *, const char *path, const struct dval *v, struct mu_err *);
bool data_empty(const struct data *);
int data_pack(const struct data *, msgpack_sbuffer *);
void data_free(struct data *);

/* ---- the context a module's run() gets -------------------------------- */

struct muster_ctx {
	int evfd;
	bool ev_broken;		/* a write to evfd failed: send nothing more */
	size_t out_limit, out_used;
	bool out_truncated;
	int pct;		/* last progress sent, -1 before the first */
	struct text summary, reason;
	size_t state_spent;	/* RUNNER_STATE_BUDGET used */
	bool state_cut;		/* the budget ran out: no more state frames */
	int arg_errors;		/* get_*() calls that returned MUSTER_ARG_BAD */
	struct args args;
	struct data data;
};

int ctx_init(struct muster_ctx *, int evfd, size_t out_limit);
void ctx_free(struct muster_ctx *);

/* ---- events.c --------------------------------------------------------- */

int events_vout(struct muster_ctx *, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
int events_progress(struct muster_ctx *, int pct);
int events_verdict(struct muster_ctx *, enum result_status, const char *module,
    const char *version);
/* The summary and data so far, sent after each change so that a module
 * that dies without a verdict does not take them along. */
int events_state(struct muster_ctx *);

/* ---- api.c ------------------------------------------------------------ */

extern const struct muster_api runner_api;

/* ---- getargs.c: checked getters, fail/error, line readers ------------- */

int api_get_str(struct muster_ctx *, const char *key, unsigned flags,
    const char *def, const char **out);
int api_get_int(struct muster_ctx *, const char *key, unsigned flags,
    int64_t def, int64_t *out);
int api_get_float(struct muster_ctx *, const char *key, unsigned flags,
    double def, double *out);
int api_get_bool(struct muster_ctx *, const char *key, unsigned flags,
    int def, int *out);
int api_arg_errors(struct muster_ctx *);
int api_fail(struct muster_ctx *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int api_error(struct muster_ctx *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *api_next_line(char **cursor);
int api_next_kv(char **cursor, char sep, char **key, char **val);

/* ---- cmd.c ------------------------------------------------------------ */

int cmd_read_file(const char *path, size_t max, char **buf, size_t *len);
int cmd_run(const char *const argv[], int timeout_ms, size_t max_out,
    struct muster_cmd_result *res);
/* SIGTERM to the runner also kills the group of a command it is running. */
int cmd_signals(void);

/* ---- confine.c: the runner's part of a host's confinement ------------ */

/* Fork the init of our children's PID namespace, if they have one. */
int confine_pidns_init(struct mu_err *);
/* Trap the filter's blocked calls: EPERM, remembered. */
int confine_sigsys(void);
/* End our children's PID namespace and reap them all (at the runner's
 * end; async-signal-safe; nothing to do without a namespace). */
void confine_end(void);
/* The first blocked call's name into name; false if none was made. */
bool confine_blocked(char *name, size_t len);

/* ---- module.c --------------------------------------------------------- */

struct module {
	void *handle;
	const struct muster_module *desc;
	size_t symsize;		/* st_size of muster_module; 0 if unknown */
};

/* The MUSTER_NEEDS_* flags of a checked descriptor (0 for one made before
 * the field). */
uint32_t module_needs(const struct module *);
/* Hold the module to what it declares (module.h, "needs"): refuse one that
 * needs the network when no_net says why it may not have it, or that needs
 * what this runner does not know; confine one that does not declare the
 * network to sockets without it.  RUNNER_EXIT_NEEDS or _INTERNAL. */
int module_confine(const struct module *, const char *no_net, struct mu_err *);

/* RUNNER_EXIT_LOAD or RUNNER_EXIT_NOSYM on failure. */
int module_open(const char *path, struct module *, struct mu_err *);
/* RUNNER_EXIT_MAGIC, _ABI, _DESC or _NAME; want may be NULL (no job). */
int module_check(const struct module *, const char *want, struct mu_err *);

#endif
