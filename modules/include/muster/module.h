/* SPDX-License-Identifier: Apache-2.0 */
/*
 * muster/module.h - the module SDK: what a muster module exports and the
 * helper API muster-runner hands to it.
 *
 * A module is a shared object that exports exactly one symbol,
 * `muster_module`, made with MUSTER_MODULE().  muster-runner dlopen()s it in
 * a process of its own (one per job), checks magic, ABI and name, then calls
 * run() once and exits.  Whatever the module does wrong (crash, hang, leak,
 * exit()) costs only that process.
 *
 *	static int
 *	hello_run(struct muster_ctx *ctx, const struct muster_api *api)
 *	{
 *		const char *who = api->arg_str(ctx, "who", "world");
 *
 *		api->out(ctx, "hello, %s", who);
 *		api->data_str(ctx, "greeted", who);
 *		api->summary(ctx, "greeted %s", who);
 *		return MUSTER_PASS;
 *	}
 *	MUSTER_MODULE("hello", "1.0.0", "Say hello", hello_run);
 *
 * Ownership: every string the API returns (arguments, value accessors)
 * belongs to the runner and lives until run() returns.  Buffers returned
 * by read_file() and run_cmd() are malloc'd for the module, which frees
 * them with api->free() (or simply returns: the process ends).
 *
 * ABI: MUSTER_ABI changes only when an existing field changes meaning.
 * New helpers are appended to struct muster_api and announced by its
 * `size`; a module built against a newer header checks
 * MUSTER_API_HAS(api, field) before using a helper added later:
 *
 *	double max = MUSTER_API_HAS(api, arg_float) ?
 *	    api->arg_float(ctx, "max_load", 4.0) :
 *	    (double)api->arg_int(ctx, "max_load", 4);
 */
#ifndef MUSTER_MODULE_H
#define MUSTER_MODULE_H

#include <stddef.h>
#include <stdint.h>

#define MUSTER_MODULE_MAGIC	0x314e55525453554dULL	/* "MUSTRUN1" little-endian */
#define MUSTER_ABI		1

/* What run() returns. */
enum muster_verdict {
	MUSTER_PASS = 0,	/* the check held */
	MUSTER_FAIL = 1,	/* the check ran and did not hold */
	MUSTER_ERROR = 2,	/* the module could not do its work */
};

struct muster_ctx;		/* opaque, owned by the runner */
struct muster_value;		/* opaque view of one argument value */

enum muster_type {
	MUSTER_T_NONE = 0,	/* absent */
	MUSTER_T_NIL,
	MUSTER_T_BOOL,
	MUSTER_T_INT,
	MUSTER_T_FLOAT,
	MUSTER_T_STR,
	MUSTER_T_BIN,
	MUSTER_T_LIST,
	MUSTER_T_MAP,
};

/* Result of run_cmd(). */
struct muster_cmd_result {
	int exited;		/* 1 if it exited, 0 if killed by a signal */
	int status;		/* exit code, or signal number */
	int timed_out;		/* 1 if killed because the timeout passed */
	char *out;		/* stdout and stderr, NUL-terminated; api->free() */
	size_t out_len;
	int truncated;		/* 1 if output went past max_out */
};

struct muster_api {
	uint32_t abi;		/* MUSTER_ABI of the runner */
	uint32_t size;		/* sizeof(struct muster_api) of the runner */

	/* Arguments (the job's "args" map).  Typed getters return def when the
	 * key is absent or has another type.  Ints accept any integer that fits
	 * int64_t; bools accept true/false.  A key of NULL is absent. */
	const char *(*arg_str)(struct muster_ctx *, const char *key, const char *def);
	int64_t (*arg_int)(struct muster_ctx *, const char *key, int64_t def);
	int (*arg_bool)(struct muster_ctx *, const char *key, int def);
	/* Structured access, for lists and maps (a QC profile, say).  arg()
	 * returns NULL for an absent key; arg(ctx, NULL) returns the whole args
	 * map (empty when the job has none), to walk arguments not known by
	 * name.  Every accessor takes NULL for "absent" and then returns def,
	 * MUSTER_T_NONE, 0 or NULL, so chains need no checks in between:
	 *	api->value_str(api->value_get(api->arg(ctx, "p"), "name"), "x")
	 */
	const struct muster_value *(*arg)(struct muster_ctx *, const char *key);
	enum muster_type (*value_type)(const struct muster_value *);
	const char *(*value_str)(const struct muster_value *, const char *def);
	int64_t (*value_int)(const struct muster_value *, int64_t def);
	int (*value_bool)(const struct muster_value *, int def);
	/* Items of a list, entries of a map; 0 for anything else. */
	size_t (*value_len)(const struct muster_value *);
	/* A list's i-th item, or a map's i-th value (its key is value_key_at(v,
	 * i)); NULL past the end or for a scalar. */
	const struct muster_value *(*value_at)(const struct muster_value *, size_t i);
	/* A map's value for key (of duplicate keys, the last); NULL if none. */
	const struct muster_value *(*value_get)(const struct muster_value *, const char *key);
	/* A map's i-th key; NULL past the end or for anything but a map. */
	const char *(*value_key_at)(const struct muster_value *, size_t i);

	/* Output: one line per call (a trailing newline is not needed).  Lines
	 * past the job's output limit are dropped and the result marked
	 * truncated. */
	void (*out)(struct muster_ctx *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

	/* Result data.  key is a path of '/'-separated map keys, nested up to 7
	 * levels ("interfaces/eth0/mtu"); a last element ending in "[]"
	 * appends to a list ("interfaces/eth0/addrs[]").  Setting a key twice
	 * keeps the last value.  A NULL string or a float that is not finite
	 * stores nil; a bad key (empty element, more than 7 levels, "[]" not
	 * at the end) is ignored.  Data is bounded: at most 1024 entries (map
	 * keys and list items) and 64 KiB encoded.  A set that would pass a
	 * bound is dropped whole and marks the result truncated. */
	void (*data_str)(struct muster_ctx *, const char *key, const char *val);
	void (*data_int)(struct muster_ctx *, const char *key, int64_t val);
	void (*data_bool)(struct muster_ctx *, const char *key, int val);
	void (*data_float)(struct muster_ctx *, const char *key, double val);

	/* One line that says what happened; the last call wins. */
	void (*summary)(struct muster_ctx *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
	/* Progress 0..100, sent live for stream jobs. */
	void (*progress)(struct muster_ctx *, int pct);
	/* Why the module returned MUSTER_ERROR (or FAIL), for the result's reason. */
	void (*reason)(struct muster_ctx *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

	/* Read at most max bytes of a file (max is capped at 256 MiB).  Returns
	 * 0 and a NUL-terminated malloc'd buffer, or -1 with errno set (EFBIG
	 * if it is larger than max; *buf then holds the first max bytes). */
	int (*read_file)(struct muster_ctx *, const char *path, size_t max,
	    char **buf, size_t *len);
	/* Run argv[0] (a path, or a name searched in the standard PATH) with
	 * argv, no shell, stdin from /dev/null, a clean environment, stdout and
	 * stderr captured together up to max_out bytes (capped at 64 MiB),
	 * killed after timeout_ms (<= 0: no timeout).  Nothing it started
	 * outlives the call.  Returns 0 when it could be started (see *res;
	 * res->out is then always allocated), or -1 with errno: ENOENT for a
	 * command that does not exist (a name not in the PATH, a path to
	 * nothing), EINVAL for an empty argv, else the errno of the step that
	 * failed (EACCES or ENOEXEC from execve(), ...). */
	int (*run_cmd)(struct muster_ctx *, const char *const argv[], int timeout_ms,
	    size_t max_out, struct muster_cmd_result *res);
	void (*free)(void *);

	/* Added after the first release: check MUSTER_API_HAS() first. */

	/* A float, or an integer converted to double; def for anything else. */
	double (*value_float)(const struct muster_value *, double def);
	double (*arg_float)(struct muster_ctx *, const char *key, double def);
};

#define MUSTER_API_HAS(api, field) \
	((api)->size >= offsetof(struct muster_api, field) + sizeof((api)->field))

struct muster_module {
	uint64_t magic;		/* MUSTER_MODULE_MAGIC */
	uint32_t abi;		/* MUSTER_ABI the module was built for */
	uint32_t size;		/* sizeof(struct muster_module) */
	const char *name;	/* must equal the job's module name */
	const char *version;
	const char *summary;	/* one line: what it checks */
	int (*run)(struct muster_ctx *ctx, const struct muster_api *api);
};

#define MUSTER_MODULE(name_, version_, summary_, run_)			\
	__attribute__((visibility("default")))				\
	const struct muster_module muster_module = {			\
		MUSTER_MODULE_MAGIC, MUSTER_ABI,			\
		sizeof(struct muster_module),				\
		(name_), (version_), (summary_), (run_)			\
	}

#endif
