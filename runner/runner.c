/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runner.c - the runner as musterd starts it (design.md §4): the job body on
 * stdin, the event pipe on fd 3, the verified module as a sealed memfd on
 * fd 4.  Read the job, load and check the module, call run() once, send
 * the verdict, exit with a code that says the same (runner.h).
 *
 * Nothing here trusts what it is handed: a missing fd, a job that is not a
 * run job, a module that is not one, or that has another name, each ends
 * with its own exit code and, while fd 3 works, an error verdict with the
 * reason.  SIGPIPE is ignored so that a vanished agent is a failed write
 * (RUNNER_EXIT_PIPE), not a silent death.
 *
 * The state is static: if the module calls exit(), LeakSanitizer and
 * anyone else looking still find it reachable.
 *
 * A module that ran out of memory (under musterd's RLIMIT_AS) may return
 * without freeing any of it; the runner keeps a reserve of address space
 * that it gives back after run(), so that the verdict can still be built.
 */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"

#define RUNNER_RESERVE	(1024u * 1024)

struct runner {
	struct muster_ctx ctx;
	uint8_t *body;
	size_t body_len;
	struct job job;
	bool have_job;
	struct module mod;
	bool have_desc;		/* mod.desc passed module_check() */
	void *reserve;		/* freed after run(), for the verdict */
};

static struct runner runner;

static int
runner_fds(struct mu_err *err)
{
	if (fcntl(RUNNER_EVENT_FD, F_GETFD) == -1)
		return mu_errf(err, RUNNER_EXIT_PIPE, "fd %d (the event pipe) is not "
		    "open; musterd starts the runner, or try --run", RUNNER_EVENT_FD);
	/* Keep them out of anything a module exec()s on its own. */
	fcntl(RUNNER_EVENT_FD, F_SETFD, FD_CLOEXEC);
	fcntl(RUNNER_MODULE_FD, F_SETFD, FD_CLOEXEC);
	return MU_OK;
}

static int
runner_setup(struct runner *r, const struct runner_opts *o, struct mu_err *err)
{
	sigset_t none;
	int rc;

	/* The PID namespace's init before any other child (confine.c). */
	if ((rc = confine_pidns_init(err)) != MU_OK)
		return rc;
	/* Not dumpable, before the job: another job runs as the same user, and could
	 * otherwise read our /proc/PID/environ and mem, ptrace-style.  It
	 * must be set here, in the exec'd runner: execve() makes a process
	 * dumpable again, whatever musterd set before it. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		return mu_errf(err, RUNNER_EXIT_INTERNAL, "cannot make the runner "
		    "not dumpable: %s", strerror(errno));
	/* A mask inherited from whoever started us is no module's business. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (cmd_signals() != MU_OK || confine_sigsys() != MU_OK)
		return mu_errf(err, RUNNER_EXIT_INTERNAL, "cannot set signal handlers: %s",
		    strerror(errno));
	if ((rc = runner_fds(err)) != MU_OK)
		return rc;
	if (ctx_init(&r->ctx, RUNNER_EVENT_FD, o->output_limit) != MU_OK ||
	    (r->reserve = malloc(RUNNER_RESERVE)) == NULL)
		return mu_errf(err, RUNNER_EXIT_INTERNAL, "out of memory");
	return MU_OK;
}

/* All of stdin, up to one byte more than a job body may be. */
static int
runner_read_stdin(struct runner *r, struct mu_err *err)
{
	size_t cap = WIRE_MAX_BODY + 1;
	ssize_t n;

	if ((r->body = malloc(cap)) == NULL)
		return mu_errf(err, RUNNER_EXIT_INTERNAL, "out of memory");
	while (r->body_len < cap) {
		n = read(STDIN_FILENO, r->body + r->body_len, cap - r->body_len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return mu_errf(err, RUNNER_EXIT_BADJOB, "cannot read the job on "
			    "stdin: %s", strerror(errno));
		if (n == 0)
			break;
		r->body_len += (size_t)n;
	}
	if (r->body_len == 0)
		return mu_errf(err, RUNNER_EXIT_BADJOB, "no job on stdin");
	if (r->body_len > WIRE_MAX_BODY)
		return mu_errf(err, RUNNER_EXIT_BADJOB, "job body is over %u bytes",
		    WIRE_MAX_BODY);
	return MU_OK;
}

/* The job is read; stdin goes to /dev/null so that its fd number is
 * never reused for something a module would then read by accident. */
static void
runner_stdin_done(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd == -1 || dup2(fd, STDIN_FILENO) == -1)
		close(STDIN_FILENO);
	if (fd > STDIN_FILENO)
		close(fd);
}

static int
runner_job(struct runner *r, struct mu_err *err)
{
	struct mu_err why = { "" };
	int rc;

	rc = runner_read_stdin(r, err);
	runner_stdin_done();
	if (rc != MU_OK)
		return rc;
	if (job_decode(r->body, r->body_len, &r->job, &why) != MU_OK)
		return mu_errf(err, RUNNER_EXIT_BADJOB, "bad job on stdin: %s", why.msg);
	r->have_job = true;
	if (r->job.kind != JOB_RUN)
		return mu_errf(err, RUNNER_EXIT_BADJOB, "job kind is '%s'; the runner "
		    "runs only 'run' jobs", job_kind_name(r->job.kind));
	if (args_build(&r->ctx.args, r->job.args, &why) != MU_OK)
		return mu_errf(err, RUNNER_EXIT_INTERNAL, "%s", why.msg);
	return MU_OK;
}

static int
runner_load(struct runner *r, const struct runner_opts *o, struct mu_err *err)
{
	int rc;

	if ((rc = module_open(RUNNER_MODULE_PATH, &r->mod, err)) != MU_OK)
		return rc;
	if ((rc = module_check(&r->mod, r->job.module, err)) != MU_OK)
		return rc;
	r->have_desc = true;
	return module_confine(&r->mod, o->no_net, err);
}

static const char *
runner_module_name(const struct runner *r)
{
	return r->have_job && r->job.kind == JOB_RUN ? r->job.module : NULL;
}

static const char *
runner_module_version(const struct runner *r)
{
	return r->have_desc ? r->mod.desc->version : NULL;
}

/* No run: say why on stderr and, if fd 3 works, in an error verdict. */
static int
runner_refuse(struct runner *r, int code, const struct mu_err *err)
{
	log_warnx("%s", err->msg);
	text_set(&r->ctx.reason, "%s", err->msg);
	if (events_verdict(&r->ctx, RS_ERROR, runner_module_name(r),
	    runner_module_version(r)) != MU_OK)
		log_warnx("no verdict sent");
	return code;
}

/* What run() returned, as a status and an exit code. */
static int
runner_outcome(struct runner *r, int ret, enum result_status *st)
{
	switch (ret) {
	case MUSTER_PASS:
		*st = RS_PASS;
		return RUNNER_EXIT_PASS;
	case MUSTER_FAIL:
		*st = RS_FAIL;
		return RUNNER_EXIT_FAIL;
	case MUSTER_ERROR:
		*st = RS_ERROR;
		if (!r->ctx.reason.set)
			text_set(&r->ctx.reason, "module reported an error without a reason");
		return RUNNER_EXIT_ERROR;
	default:
		*st = RS_ERROR;
		text_set(&r->ctx.reason, "module returned %d", ret);
		log_warnx("module returned %d, not 0, 1 or 2", ret);
		return RUNNER_EXIT_BADRET;
	}
}

/* A run that did not pass after the filter refused a call says so
 * first: the module saw only EPERM (confine.c). */
static void
runner_name_blocked(struct runner *r, enum result_status st)
{
	char name[64], was[RUNNER_TEXT_MAX + 1];

	if (st == RS_PASS || !confine_blocked(name, sizeof(name)))
		return;
	snprintf(was, sizeof(was), "%s", r->ctx.reason.set ? r->ctx.reason.s : "");
	text_set(&r->ctx.reason, "blocked system call: %s (the seccomp filter of "
	    "every host; docs/modules.md)%s%s", name, was[0] ? "; " : "", was);
}

static int
runner_run(struct runner *r)
{
	enum result_status st;
	int code, ret, rc;

	ret = r->mod.desc->run(&r->ctx, &runner_api);
	free(r->reserve);
	r->reserve = NULL;
	code = runner_outcome(r, ret, &st);
	runner_name_blocked(r, st);
	rc = events_verdict(&r->ctx, st, runner_module_name(r), runner_module_version(r));
	if (rc == MU_EIO || r->ctx.ev_broken) {
		log_warnx("the verdict could not be sent");
		return RUNNER_EXIT_PIPE;
	}
	if (rc != MU_OK) {
		log_warnx("the verdict could not be made: %s", mu_strrc(rc));
		return RUNNER_EXIT_INTERNAL;
	}
	return code;
}

static void
runner_free(struct runner *r)
{
	ctx_free(&r->ctx);
	free(r->reserve);
	r->reserve = NULL;
	if (r->have_job)
		wire_doc_free(&r->job.doc);
	free(r->body);
	/* The module stays loaded: its destructors and atexit() handlers run
	 * at exit, after the verdict is out, and cannot change it. */
	memset(&r->job, 0, sizeof(r->job));
	r->body = NULL;
	r->have_job = false;
}

int
runner_main(const struct runner_opts *o)
{
	struct runner *r = &runner;
	struct mu_err err = { "" };
	int rc;

	if ((rc = runner_setup(r, o, &err)) != MU_OK) {
		log_warnx("%s", err.msg);
		return rc;
	}
	rc = runner_job(r, &err);
	if (rc == MU_OK)
		rc = runner_load(r, o, &err);
	if (rc == MU_OK)
		rc = runner_run(r);
	else
		rc = runner_refuse(r, rc, &err);
	runner_free(r);
	return rc;
}
