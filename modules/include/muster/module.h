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
 * Ownership: every string the API returns (arguments, value accessors,
 * get_str(), including an integer it converted) belongs to the runner and
 * lives until run() returns: the runner frees them after sending the
 * verdict, before the module's destructors and atexit() handlers run.
 * Buffers returned by read_file() and run_cmd() are malloc'd for the
 * module, which frees them with api->free() (or simply returns: the
 * process ends).
 *
 * On a host (and under `muster-runner --run` as root; docs/modules.md,
 * "What runs differently on a host", has the details): the module runs
 * as a uid of the job's own (files only root may read are unreadable),
 * with no capabilities and no new privileges, under a seccomp filter, with
 * limits (default 512 MiB of address space, 5 min CPU, 256 files, 128
 * processes), its children in a PID namespace of their own (all killed
 * when the run ends), a private empty /tmp, /var/tmp and /dev/shm, the
 * environment PATH and LANG only, and the host's timeout (default 60 s).
 * The filter refuses ptrace, process_vm_readv, process_vm_writev, kcmp,
 * mount, umount2, pivot_root, chroot, unshare, setns, move_mount,
 * open_tree, fsopen, fsconfig, fsmount, fspick, mount_setattr,
 * init_module, finit_module, delete_module, kexec_load, kexec_file_load,
 * bpf, reboot, swapon, swapoff, keyctl, add_key, request_key,
 * perf_event_open, userfaultfd, io_uring_setup, io_uring_enter,
 * io_uring_register, acct, quotactl, settimeofday, clock_settime,
 * clock_adjtime, adjtimex (glibc's adjtimex() and ntp_gettime() too, even
 * only reading), sethostname, setdomainname, iopl, ioperm,
 * open_by_handle_at, name_to_handle_at, fanotify_init, lookup_dcookie,
 * syslog, vhangup, clone with a CLONE_NEW* flag, and the TIOCSTI and
 * TIOCLINUX ioctls: the call fails with EPERM, and a result that is not a
 * pass has the reason "blocked system call: NAME ..."; a program run by
 * run_cmd() that makes one is killed by SIGSYS.  clone3 fails with ENOSYS
 * (the C library falls back to clone).
 *
 * Output: what a module writes to stdout or stderr itself (printf(),
 * perror()) also ends up in the operator's output: musterd adds it to the
 * job's output as it arrives, between out() lines, within the same limit;
 * `muster-runner --run` shows it (on stderr with --json).  But it is not
 * streamed live, and printf() to a pipe is buffered: it may come only at
 * exit, and is lost in a crash.  Use out().
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
	/* Run argv[0] (a path, or a name searched in MUSTER_TOOLS_DIR, then in
	 * the standard PATH; see below) with
	 * argv, no shell, stdin from /dev/null, a clean environment, stdout and
	 * stderr captured together up to max_out bytes (capped at 64 MiB),
	 * killed after timeout_ms (<= 0: no timeout).  Nothing it started
	 * outlives the call.  Returns 0 when it could be started (see *res;
	 * res->out is then always allocated), or -1 with errno: ENOENT for a
	 * command that does not exist (a name not in the PATH, a path to
	 * nothing), EINVAL for an empty argv, else the errno of the step that
	 * failed (EACCES or ENOEXEC from execve(), ...).  MUSTER_TOOLS_DIR is
	 * an absolute folder from the runner's own environment, searched first
	 * for a name without '/': tests and `muster-runner --run` set it to put
	 * fake tools first; musterd never passes it, and a job cannot set it. */
	int (*run_cmd)(struct muster_ctx *, const char *const argv[], int timeout_ms,
	    size_t max_out, struct muster_cmd_result *res);
	void (*free)(void *);

	/* Added after the first release: check MUSTER_API_HAS() first. */

	/* A float, or an integer converted to double; def for anything else. */
	double (*value_float)(const struct muster_value *, double def);
	double (*arg_float)(struct muster_ctx *, const char *key, double def);

	/* Added with the checked getters: check MUSTER_API_HAS(api, get_int).
	 *
	 * Checked getters: *out gets the argument's value and the call says
	 * how it was read (enum muster_arg).  Without MUSTER_ARG_STRICT a
	 * string is parsed for a number or a bool ("0.5", "12", "true"; see
	 * enum muster_arg), an integer is read for a float, a whole float
	 * (5.0) for an integer, 0 or 1 for a bool, and an integer for a
	 * string (12 reads as "12").  On MUSTER_ARG_BAD, *out is def and the
	 * runner has set the summary ("bad arguments", unless one is set) and
	 * the reason (naming the first bad argument and what it must be), so
	 * the module can simply return MUSTER_ERROR:
	 *
	 *	double max;
	 *	if (api->get_float(ctx, "max_offset_ms", MUSTER_ARG_REQUIRED,
	 *	    0, &max) == MUSTER_ARG_BAD)
	 *		return MUSTER_ERROR;
	 */
	int (*get_str)(struct muster_ctx *, const char *key, unsigned flags,
	    const char *def, const char **out);
	int (*get_int)(struct muster_ctx *, const char *key, unsigned flags,
	    int64_t def, int64_t *out);
	int (*get_float)(struct muster_ctx *, const char *key, unsigned flags,
	    double def, double *out);
	int (*get_bool)(struct muster_ctx *, const char *key, unsigned flags,
	    int def, int *out);
	/* How many get_*() calls returned MUSTER_ARG_BAD so far: read every
	 * argument, then "if (api->arg_errors(ctx)) return MUSTER_ERROR;". */
	int (*arg_errors)(struct muster_ctx *);

	/*
	 * The usual ways out: set the reason to the formatted text, and the
	 * summary to the same text unless a summary was set before; return
	 * MUSTER_FAIL and MUSTER_ERROR respectively:
	 *	return api->error(ctx, "cannot read %s: %s", path, strerror(errno));
	 * (cmocka defines a fail() macro: there, write (api->fail)(ctx, ...).)
	 */
	int (*fail)(struct muster_ctx *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
	int (*error)(struct muster_ctx *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

	/* Command output, read in place (the buffer is the module's, e.g.
	 * res.out of run_cmd(); it is changed: each line end becomes a NUL).
	 * next_line() returns the next line of *cursor without its "\n" (and a
	 * "\r" before it) and moves *cursor past it; NULL at the end.
	 * next_kv() returns the next line of the form KEY<sep>VALUE (sep is
	 * '=' for `systemctl show`, `timedatectl show`, os-release; ':' for
	 * `lscpu`-like output), skipping lines without sep or with an empty
	 * key: 1 with *key and *val pointing into the buffer, blanks around
	 * both trimmed (quotes are kept), 0 at the end.
	 *	char *cur = res.out, *k, *v;
	 *	while (api->next_kv(&cur, '=', &k, &v))
	 *		if (strcmp(k, "NTPSynchronized") == 0) ...
	 */
	char *(*next_line)(char **cursor);
	int (*next_kv)(char **cursor, char sep, char **key, char **val);
};

/* What a get_*() call found. */
enum muster_arg {
	MUSTER_ARG_BAD = -1,	/* unusable (see above): *out = def */
	MUSTER_ARG_OK = 0,	/* present with the type asked */
	MUSTER_ARG_ABSENT = 1,	/* absent or nil: *out = def */
	MUSTER_ARG_CONVERTED = 2, /* read from another type, e.g. "0.5" */
};

/* get_*() flags. */
#define MUSTER_ARG_REQUIRED	0x1u	/* absent, nil or "" is BAD */
#define MUSTER_ARG_STRICT	0x2u	/* no conversion: another type is BAD */

#define MUSTER_API_HAS(api, field) \
	((api)->size >= offsetof(struct muster_api, field) + sizeof((api)->field))

/*
 * What a module needs beyond the default confinement (muster_module.needs).
 * A module runs without network sockets (socket(2) of AF_INET or AF_INET6
 * fails with EPERM) unless it declares MUSTER_NEEDS_NET; `muster module
 * publish` copies the declaration into the signed manifest, and a host's
 * policy can still refuse it (net=no).  A runner refuses a module that
 * declares a need it does not know.
 */
#define MUSTER_NEEDS_NET	0x1u	/* IPv4/IPv6 sockets */

struct muster_module {
	uint64_t magic;		/* MUSTER_MODULE_MAGIC */
	uint32_t abi;		/* MUSTER_ABI the module was built for */
	uint32_t size;		/* sizeof(struct muster_module) */
	const char *name;	/* must equal the job's module name */
	const char *version;
	const char *summary;	/* one line: what it checks */
	int (*run)(struct muster_ctx *ctx, const struct muster_api *api);
	/* Added after the first release: read only when size covers it
	 * (modules built before it have none, and need nothing). */
	uint32_t needs;		/* MUSTER_NEEDS_* flags */
};

#define MUSTER_MODULE(name_, version_, summary_, run_)			\
	MUSTER_MODULE_NEEDS(name_, version_, summary_, run_, 0)

/* The same, with what the module needs: MUSTER_NEEDS_NET. */
#define MUSTER_MODULE_NEEDS(name_, version_, summary_, run_, needs_)	\
	__attribute__((visibility("default")))				\
	const struct muster_module muster_module = {			\
		MUSTER_MODULE_MAGIC, MUSTER_ABI,			\
		sizeof(struct muster_module),				\
		(name_), (version_), (summary_), (run_), (needs_)	\
	}

#endif
