/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chk.h - what the shipped modules share: one check is a function that
 * reads its arguments and reports through a struct chk, so that the
 * standalone module (arguments = the job's args, data at the top level)
 * and qc.install (arguments = one entry of a profile, data under
 * "checks/<label>/") run the very same code.
 */
#ifndef MUSTER_CHK_H
#define MUSTER_CHK_H

#include <stddef.h>
#include <stdint.h>

#include <muster/module.h>

#define CHK_LINE	1024	/* summary, reason, one output line */
#define CHK_KEY		1024	/* one data key, prefix included */
#define CHK_NUMS	16	/* integers read as strings, per check */

struct chk {
	struct muster_ctx *ctx;
	const struct muster_api *api;
	const struct muster_value *args;	/* NULL: the job's own args */
	const char *prefix;		/* prepended to data keys */
	int quiet;			/* no output lines (qc.install) */
	int bad;			/* an argument was unusable */
	char summary[CHK_LINE];
	char reason[CHK_LINE];
	char nums[CHK_NUMS][24];	/* integers read as strings */
	int nnums;
};

typedef int (*chk_fn)(struct chk *);

/* The checks, one per shipped module; each returns a MUSTER_* verdict. */
int	check_os_release(struct chk *);
int	check_sys_info(struct chk *);
int	check_net_interfaces(struct chk *);
int	check_disk_usage(struct chk *);
int	check_file(struct chk *);
int	check_pkg_version(struct chk *);
int	check_service_status(struct chk *);

/* The check for a qc.install "kind", or NULL. */
chk_fn	chk_lookup(const char *kind);

/* A standalone module's run(): fn over the job's args, then the verdict. */
int	chk_main(struct muster_ctx *, const struct muster_api *, chk_fn);

/*
 * Arguments.  Absent (or nil) arguments give def.  A present argument of
 * a type that cannot be read marks the chk bad with a reason; a check
 * reads all it needs, then returns chk_args_error() if chk_args_bad().
 * Strings are accepted for ints and bools ("90", "true"), and integers
 * for strings (12 reads as "12"): whoever builds the args may have
 * guessed types from `key=value` either way.
 */
const struct muster_value *chk_arg(struct chk *, const char *key);
const char	*chk_str(struct chk *, const char *key, const char *def);
const char	*chk_req(struct chk *, const char *key);
int64_t		 chk_int(struct chk *, const char *key, int64_t def);
int		 chk_bool(struct chk *, const char *key, int def);
int		 chk_args_bad(const struct chk *);
int		 chk_args_error(struct chk *);

/* Reporting.  chk_reason_add() appends "; "-separated parts. */
void	chk_out(struct chk *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	chk_summary(struct chk *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	chk_reason(struct chk *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	chk_reason_add(struct chk *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	chk_error(struct chk *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* MUSTER_ERROR with the reason already set (by chk_read(), chk_run()). */
int	chk_error_reason(struct chk *);

/* Data: key is relative to the chk's prefix; a NULL key is ignored. */
void	chk_data_str(struct chk *, const char *key, const char *val);
void	chk_data_int(struct chk *, const char *key, int64_t val);
void	chk_data_bool(struct chk *, const char *key, int val);
void	chk_data_float(struct chk *, const char *key, double val);

/* Format a data key into buf; NULL if it does not fit. */
const char *chk_key(char *buf, size_t size, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* One path element made safe for a data key: no '/', no "[]". */
void	chk_key_part(char *dst, size_t size, const char *src);
/* A path as one key element, systemd style: "/" -> "-", "/var/lib" ->
 * "var-lib", with '-', '\' and odd bytes as \xNN. */
void	chk_key_path(char *dst, size_t size, const char *path);

const char *chk_verdict_name(int verdict);

/* ---- small helpers shared by several checks -------------------------- */

/* Read a whole (small) file through api->read_file.  0 or -1 with the
 * chk's reason set; *buf is api->free()'d by the caller. */
int	chk_read(struct chk *, const char *path, size_t max, char **buf,
	    size_t *len);
/* root + "/" + rel without a doubled slash; NULL if it does not fit. */
const char *chk_join(char *buf, size_t size, const char *root, const char *rel);
/*
 * Where the programs a check runs come from.  Never from the job: a job
 * that names a program to run could run any program (issue 10).  First the
 * folder named by MUSTER_TOOLS_DIR in the runner's environment, if any:
 * that environment is the host's (musterd gives runners a fixed one, and a
 * job cannot set it), and tests and `muster-runner --run` use it to put
 * fakes first.  Then the fixed list /usr/local/sbin, /usr/local/bin,
 * /usr/sbin, /usr/bin, /sbin, /bin.  chk_which_tools() looks in the first
 * only; both return NULL when nothing executable is found.
 */
const char *chk_which(char *buf, size_t size, const char *name);
const char *chk_which_tools(char *buf, size_t size, const char *name);
/* 0, or -1 with the reason set when the job gives an argument that named a
 * program in earlier versions (names: NULL-terminated). */
int	chk_no_program_args(struct chk *, const char *const names[]);
/* Run argv; 0 with *res filled, or -1 with the reason set. */
int	chk_run(struct chk *, const char *const argv[], int timeout_ms,
	    size_t max_out, struct muster_cmd_result *res);
/* The next line of *p (NUL-terminated in place), or NULL at the end. */
char	*chk_line(char **p);
/* Strict decimal parse of a whole string; 0 or -1. */
int	chk_parse_i64(const char *s, int64_t *out);

/* Debian version ordering: <0, 0, >0 like strcmp.  debver_valid() says
 * whether a string can be compared at all. */
int	debver_cmp(const char *a, const char *b);
int	debver_valid(const char *s);

#endif
