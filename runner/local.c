/* SPDX-License-Identifier: Apache-2.0 */
/*
 * local.c - `muster-runner --run FILE.so [--json] [key=value | key:=JSON
 * ...]`: run a module on this machine, without a broker or musterd.
 *
 * This process plays musterd, so that a module author's edit-run loop goes
 * through the real path: it asks a `--describe` child for the module's
 * name, builds a job body, copies the module into a sealed memfd, and
 * execs a runner child with the job on stdin, a pipe on fd 3 and the memfd
 * on fd 4.  It decodes the child's frames like the agent does and prints
 * them as they come, then the verdict; a module that crashes, hangs or
 * calls exit() takes only the child with it.  Both children are started
 * by lib/subproc.c's spawn_start(), like musterd's.  The child has a process
 * group of its own, killed when it ends (nothing a module forked lingers),
 * on --timeout, and on SIGINT or SIGTERM to this process.
 *
 * The exit code is the child's (runner.h), 128 + N for a child killed by
 * signal N, RUNNER_EXIT_TIMEOUT after --timeout.
 */
#include "runner.h"
#include "loop.h"	/* the one clock of the project */
#include "subproc.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/wait.h>

#include <jansson.h>

#include "config.h"
#include "jobuid.h"
#include "log.h"
#include "mpjson.h"

#define LOCAL_DESCRIBE_MAX	(64u * 1024)
#define LOCAL_CHUNK		(64u * 1024)
#define LOCAL_TTL_MS		(3600u * 1000)
#define LOCAL_DRAIN_READS	64

struct local {
	const struct runner_opts *o;
	char name[NAME_MAX_LEN + 1];
	char version[WIRE_MAX_VERSION + 1];
	msgpack_sbuffer body;
	int memfd, jobw, evr, pidfd, self_fd;
	char **envp;			/* the runner's: local_env() */
	char *asan_opts;
	pid_t pid;
	struct sock_fprog filter;	/* the hosts' seccomp filter */
	struct ipc_reader rd;
	/* What came back. */
	bool have_verdict;
	enum result_status status;
	char *summary, *reason;
	bool truncated;
	char vmodule[NAME_MAX_LEN + 1];
	char vversion[WIRE_MAX_VERSION + 1];
	json_t *output, *data;
	int wstatus;
	bool reaped, timed_out, interrupted;
	/* A failure before or around the run: the report says this instead. */
	int fail_code;
	char fail[256];
};

static volatile sig_atomic_t local_child, local_stop;

static void
local_on_signal(int sig)
{
	(void)sig;
	local_stop = 1;
	if (local_child > 0)
		kill(-local_child, SIGKILL);
}

static int
local_failf(struct local *l, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
local_failf(struct local *l, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->fail, sizeof(l->fail), fmt, ap);
	va_end(ap);
	l->fail_code = code;
	return code;
}

static int
wait_child(pid_t pid, int *status)
{
	pid_t r;

	do
		r = waitpid(pid, status, 0);
	while (r == -1 && errno == EINTR);
	return r == pid ? MU_OK : MU_EIO;
}

/* A child of ours: our own program with our environment, stdin and
 * stderr, stdout on out (the --describe child) or our own stdout (the
 * runner, whose fds 0, 3 and 4 local_spawn() sets).  A failed exec is
 * reported by spawn_start(), not by a child's exit code. */
static void
spawn_init(struct spawn *sp, char *const argv[], int out)
{
	memset(sp, 0, sizeof(*sp));
	sp->path = RUNNER_SELF;
	sp->argv = argv;
	sp->envp = environ;
	sp->fds[0] = STDIN_FILENO;
	sp->fds[1] = out;
	sp->fds[2] = STDERR_FILENO;
	sp->fds[3] = sp->fds[4] = -1;
	sp->exec_report = true;
}

/* ---- 1. the module's name, from a --describe child -------------------- */

static int
describe_read(int fd, char *buf, size_t cap, size_t *len)
{
	ssize_t n;

	*len = 0;
	while (*len < cap) {
		n = read(fd, buf + *len, cap - *len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	return MU_OK;
}

/* What the --describe child said, into l->name and l->version. */
static int
describe_parse(struct local *l, const char *buf, size_t len, int status)
{
	const char *name, *version, *why;
	json_t *j = json_loadb(buf, len, 0, NULL);
	int rc = MU_OK;

	name = json_string_value(json_object_get(j, "name"));
	version = json_string_value(json_object_get(j, "version"));
	why = json_string_value(json_object_get(j, "error"));
	if (WIFSIGNALED(status))
		rc = local_failf(l, RUNNER_EXIT_SIGNAL_BASE + WTERMSIG(status),
		    "crashed: signal %d (%s) while loading the module", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		rc = local_failf(l, WIFEXITED(status) ? WEXITSTATUS(status) :
		    RUNNER_EXIT_INTERNAL, "%s", why ? why : "--describe failed");
	else if (name == NULL || version == NULL ||
	    strlen(name) > NAME_MAX_LEN || strlen(version) > WIRE_MAX_VERSION)
		rc = local_failf(l, RUNNER_EXIT_INTERNAL, "--describe said nothing useful");
	else {
		strcpy(l->name, name);
		strcpy(l->version, version);
	}
	json_decref(j);
	return rc;
}

static int
local_describe(struct local *l)
{
	char *argv[] = { "muster-runner", "--describe", (char *)l->o->run, NULL };
	struct mu_err err = { "" };
	struct spawn sp;
	char *buf;
	size_t len = 0;
	int out[2], status = 0, rc;
	pid_t pid;

	if ((buf = malloc(LOCAL_DESCRIBE_MAX)) == NULL)
		return local_failf(l, RUNNER_EXIT_INTERNAL, "out of memory");
	if (pipe2(out, O_CLOEXEC) == -1) {
		free(buf);
		return local_failf(l, RUNNER_EXIT_INTERNAL, "pipe: %s", strerror(errno));
	}
	spawn_init(&sp, argv, out[1]);
	pid = spawn_start(&sp, &err);
	close(out[1]);
	if (pid == -1)
		rc = local_failf(l, RUNNER_EXIT_INTERNAL, "%s", err.msg);
	else {
		describe_read(out[0], buf, LOCAL_DESCRIBE_MAX, &len);
		rc = wait_child(pid, &status);
		rc = rc ? local_failf(l, RUNNER_EXIT_INTERNAL, "waitpid: %s",
		    strerror(errno)) : describe_parse(l, buf, len, status);
	}
	close(out[0]);
	free(buf);
	return rc;
}

/* ---- 2. the job body -------------------------------------------------- */

static int
local_args(struct local *l, msgpack_sbuffer *sb)
{
	struct mu_err err = { "" };
	msgpack_packer pk;
	json_t *args;
	int i, rc = MU_OK;

	if ((args = json_object()) == NULL)
		return local_failf(l, RUNNER_EXIT_INTERNAL, "out of memory");
	for (i = 0; rc == MU_OK && i < l->o->nargs; i++)
		rc = mpjson_arg(args, l->o->args[i], &err);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (rc == MU_OK && mpjson_pack(&pk, args) != 0)
		rc = mu_errf(&err, MU_ENOMEM, "out of memory");
	json_decref(args);
	if (rc != MU_OK)
		return local_failf(l, RUNNER_EXIT_USAGE, "%s", err.msg);
	return MU_OK;
}

static int
local_job(struct local *l)
{
	struct mu_err err = { "" };
	msgpack_unpacked up;
	msgpack_sbuffer sb;
	struct job j;
	size_t off = 0;
	int rc;

	memset(&j, 0, sizeof(j));
	msgpack_sbuffer_init(&sb);
	msgpack_unpacked_init(&up);
	if ((rc = local_args(l, &sb)) == MU_OK &&
	    msgpack_unpack_next(&up, sb.data, sb.size, &off) != MSGPACK_UNPACK_SUCCESS)
		rc = local_failf(l, RUNNER_EXIT_INTERNAL, "cannot unpack the arguments");
	if (rc == MU_OK) {
		snprintf(j.id, sizeof(j.id), "local-%ld", (long)getpid());
		j.kind = JOB_RUN;
		j.target.kind = TARGET_ALL;
		j.issued_at = now_wall_ms();
		j.not_after = j.issued_at + LOCAL_TTL_MS;
		/* Never sent anywhere; the default fleet, as every job has one. */
		aud_format(j.aud, sizeof(j.aud), TOPIC_ROOT_DEFAULT);
		strcpy(j.module, l->name);
		j.args = &up.data;
		j.timeout_ms = l->o->timeout_ms > UINT32_MAX ? UINT32_MAX : l->o->timeout_ms;
		if (job_encode(&j, &l->body, &err) != MU_OK)
			rc = local_failf(l, RUNNER_EXIT_USAGE, "bad arguments: %s", err.msg);
	}
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* ---- 3. the module in a sealed memfd, as musterd hands it over -------- */

static int
local_memfd(struct local *l)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int src, rc;

	/* Following a symlink is fine here: the author names the file. */
	if ((src = open(l->o->run, O_RDONLY | O_CLOEXEC)) == -1)
		return local_failf(l, RUNNER_EXIT_LOAD, "cannot open %s: %s", l->o->run,
		    strerror(errno));
	rc = read_fd(src, WIRE_MAX_BIN, &buf, &len, NULL);
	close(src);
	if (rc == MU_EINVAL)
		return local_failf(l, RUNNER_EXIT_LOAD, "cannot copy %s into a memfd: "
		    "not a regular file of 1 byte to 64 MiB", l->o->run);
	if (rc == MU_OK)
		rc = memfd_sealed_copy("muster-module", buf, len, &l->memfd);
	free(buf);
	if (rc != MU_OK)
		return local_failf(l, RUNNER_EXIT_INTERNAL, "cannot copy %s into a memfd: %s",
		    l->o->run, strerror(errno));
	return MU_OK;
}

/* ---- 4. the runner child ---------------------------------------------- */

/*
 * The confined runner's environment: ours, but MUSTER_TOOLS_DIR (a test's
 * fake tools) as the module sees it, the folder bound into its private
 * /tmp (lib/subproc.h), since the real /tmp is hidden and a folder on the
 * way may be closed to the job's uid; and in an ASan build no leak check
 * in a runner whose children have a PID namespace of their own, which it
 * cannot make (lib/subproc.h, SPAWN_PIDNS_ASAN_OPTIONS).  l->envp borrows
 * environ's strings; l->asan_opts is its own.
 */
static int
local_env(struct local *l, struct spawn *sp)
{
	const char *dir = getenv("MUSTER_TOOLS_DIR"), *opts = getenv("ASAN_OPTIONS");
	bool tools = dir != NULL && dir[0] == '/';
	bool asan = false;
	size_t n = 0, i, j = 0;

#if defined(__SANITIZE_ADDRESS__)
	asan = sp->new_pidns;
#endif
	if (tools && access(dir, X_OK) == -1) {
		log_warnx("MUSTER_TOOLS_DIR %s: %s", dir, strerror(errno));
		tools = false;
	}
	if (!tools && !asan)
		return MU_OK;
	while (environ[n])
		n++;
	if ((l->envp = calloc(n + 3, sizeof(*l->envp))) == NULL)
		return local_failf(l, RUNNER_EXIT_INTERNAL, "out of memory");
	for (i = 0; i < n; i++)
		if ((!tools || strncmp(environ[i], "MUSTER_TOOLS_DIR=", 17) != 0) &&
		    (!asan || strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0))
			l->envp[j++] = environ[i];
	if (tools) {
		l->envp[j++] = "MUSTER_TOOLS_DIR=" SPAWN_TOOLS_DIR;
		sp->tools_dir = dir;
	}
	if (asan) {
		/* After the caller's options: the last one of a name wins. */
		if (asprintf(&l->asan_opts, "ASAN_OPTIONS=%s%s" SPAWN_PIDNS_ASAN_OPTIONS,
		    opts ? opts : "", opts && opts[0] ? ":" : "") == -1) {
			l->asan_opts = NULL;
			return local_failf(l, RUNNER_EXIT_INTERNAL, "out of memory");
		}
		l->envp[j++] = l->asan_opts;
	}
	l->envp[j] = NULL;
	sp->envp = l->envp;
	return MU_OK;
}

/*
 * Confine the runner child as a host with the default agent.conf does
 * (lib/subproc.h spawn_confine(), design.md §8): the seccomp filter, the
 * rlimits, a session of its own, no new privileges; as root also a uid of
 * its own from the default [limits] job_uids (or the run_as user when a
 * user holds one of those uids), a PID namespace and a private /tmp.
 * What cannot be applied is said on stderr, so that nobody takes a pass
 * here for a pass on a host.  --no-confine: none of it.
 */
static int
local_confine(struct local *l, struct spawn *sp)
{
	struct spawn_confinement c = { 0 };
	struct agent_config cfg;
	struct mu_err err = { "" };
	struct jobuids ju;
	bool root = geteuid() == 0;
	uid_t uid;

	if (l->o->no_confine) {
		log_warnx("--no-confine: the module runs as uid %u, with no seccomp filter, "
		    "limits or namespaces (only its network declaration holds): not as on "
		    "a host", (unsigned)geteuid());
		return MU_OK;
	}
	config_agent_defaults(&cfg);
	/* The network as the module declares it: the runner child holds it
	 * to its descriptor (runner/module.c), as for a local module on a host. */
	if (spawn_filter_build(&l->filter, false, &err) != MU_OK)
		return local_failf(l, RUNNER_EXIT_INTERNAL, "%s", err.msg);
	c.memory = cfg.memory;
	c.cpu_ms = cfg.cpu_ms;
	c.processes = cfg.processes;
	c.filter = &l->filter;
	c.namespaces = root;
#if defined(__SANITIZE_ADDRESS__)
	/* AddressSanitizer reserves terabytes of address space. */
	c.memory = RLIM_INFINITY;
#endif
	spawn_confine(sp, &c);
	/* The job's user must reach only the file, not the folders on its
	 * path (as musterd's runner_fd). */
	if ((l->self_fd = open(RUNNER_SELF, O_PATH | O_CLOEXEC)) == -1)
		return local_failf(l, RUNNER_EXIT_INTERNAL, "%s: %s", RUNNER_SELF,
		    strerror(errno));
	sp->use_exec_fd = true;
	sp->exec_fd = l->self_fd;
	if (!root) {
		log_warnx("not root: the module runs as uid %u, not as a job's own uid; "
		    "no PID namespace, no private /tmp, /var/tmp, /dev/shm and IPC; "
		    "applied: the seccomp filter, the limits (memory, CPU, files, "
		    "processes), a session of its own (run as root to be confined "
		    "as on a host, --no-confine for none of it)", (unsigned)geteuid());
		return MU_OK;
	}
	if (local_env(l, sp) != MU_OK)
		return l->fail_code;
	jobuid_init(&ju, cfg.job_uid_first, cfg.job_uid_count);
	if (jobuid_check(cfg.job_uid_first, cfg.job_uid_count, 1, &err) == MU_OK &&
	    jobuid_take(&ju, &uid, &err) == MU_OK) {
		/* The job's uid and the gid of the same number, no groups:
		 * what musterd gives a job (agent/parent/run.c). */
		sp->switch_user = true;
		sp->uid = uid;
		sp->gid = (gid_t)uid;
		sp->ngroups = 0;
		sp->read_only = true;	/* as musterd's job uids: run.c */
		return MU_OK;
	}
	log_warnx("%s; running as [limits] run_as %s instead", err.msg, cfg.run_as);
	if (spawn_set_user(sp, cfg.run_as, &err) != MU_OK)
		return local_failf(l, RUNNER_EXIT_INTERNAL, "cannot confine the run: %s "
		    "(--no-confine runs it as you)", err.msg);
	return MU_OK;
}

static int
local_spawn(struct local *l)
{
	char limit[24];
	char *argv[] = { "muster-runner", "--output-limit", limit, NULL };
	struct mu_err err = { "" };
	struct spawn sp;
	int jobp[2], evp[2];

	snprintf(limit, sizeof(limit), "%zu", l->o->output_limit);
	if (pipe2(jobp, O_CLOEXEC) == -1)
		return local_failf(l, RUNNER_EXIT_INTERNAL, "pipe: %s", strerror(errno));
	if (pipe2(evp, O_CLOEXEC) == -1) {
		close(jobp[0]), close(jobp[1]);
		return local_failf(l, RUNNER_EXIT_INTERNAL, "pipe: %s", strerror(errno));
	}
	l->jobw = jobp[1], l->evr = evp[0];
	/* The job on stdin, events on fd 3, the module on fd 4 (design.md §4);
	 * a group of its own, so that one kill reaches what a module forked.
	 * What the module prints itself goes to our stdout beside the "out:"
	 * lines, but to stderr under --json, whose stdout is one JSON object. */
	spawn_init(&sp, argv, l->o->json ? STDERR_FILENO : STDOUT_FILENO);
	sp.fds[0] = jobp[0];
	sp.fds[RUNNER_EVENT_FD] = evp[1];
	sp.fds[RUNNER_MODULE_FD] = l->memfd;
	sp.own_pgrp = true;
	if (local_confine(l, &sp) != MU_OK) {
		close(jobp[0]), close(evp[1]);
		return l->fail_code;
	}
	l->pid = spawn_start(&sp, &err);
	close(jobp[0]), close(evp[1]);
	close(l->memfd);
	l->memfd = -1;
	if (l->pid == -1)
		return local_failf(l, RUNNER_EXIT_INTERNAL, "cannot start the runner: %s",
		    err.msg);
	local_child = l->pid;
	l->pidfd = pidfd_open(l->pid, 0);
	return MU_OK;
}

static int
local_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = local_on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) == -1 || sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGHUP, &sa, NULL) == -1)
		return MU_EIO;
	return MU_OK;
}

/* ---- 5. the events ---------------------------------------------------- */

static void
local_verdict(struct local *l, const struct ipc_event *e)
{
	if (l->have_verdict)
		return;
	l->have_verdict = true;
	l->status = e->status;
	/* The verdict replaces what state frames said. */
	free(l->summary);
	json_decref(l->data);
	l->data = NULL;
	l->summary = wire_str_dup(e->summary);
	l->reason = wire_str_dup(e->reason);
	/* The runner child's data always shows; a module that wrote its own
	 * frames to fd 3 may have sent what JSON cannot. */
	if (e->data && (l->data = mpjson_from_msgpack(e->data)) == NULL)
		log_warnx("the verdict's data cannot be shown as JSON");
	l->truncated = e->truncated;
	strcpy(l->vmodule, e->module);
	strcpy(l->vversion, e->module_version);
}

/* The summary and data so far, shown if no verdict comes (a crash). */
static void
local_state(struct local *l, const struct ipc_event *e)
{
	json_t *data = NULL;

	if (l->have_verdict)
		return;
	l->truncated = l->truncated || e->truncated;
	if (e->truncated && !e->summary.ptr && !e->data)
		return;		/* the runner's "no more": keep the last */
	if (e->data && (data = mpjson_from_msgpack(e->data)) == NULL)
		log_warnx("the state's data cannot be shown as JSON");
	free(l->summary);
	l->summary = wire_str_dup(e->summary);
	json_decref(l->data);
	l->data = data;
}

/* A JSON string of bytes that may not be UTF-8 (bad ones become '?'):
 * text from a hostile stream is still shown. */
static json_t *
json_text(const char *p, size_t len)
{
	json_t *j;
	char *s;

	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(s, p, len);
	len = utf8_clean(s, len, len);
	j = json_stringn(s, len);
	free(s);
	return j;
}

static void
local_event(struct local *l, const struct ipc_event *e)
{
	switch (e->type) {
	case IPC_OUT:
		if (l->o->json)
			json_array_append_new(l->output, json_text(e->text.ptr, e->text.len));
		else
			printf("out: %.*s\n", (int)e->text.len, e->text.ptr);
		break;
	case IPC_PROGRESS:
		if (!l->o->json)
			printf("progress: %u%%\n", e->pct);
		break;
	case IPC_VERDICT:
		local_verdict(l, e);
		break;
	case IPC_STATE:
		local_state(l, e);
		break;
	}
	fflush(stdout);
}

/* Frames as the agent takes them: bounded, decoded strictly. */
static int
local_feed(struct local *l, const void *buf, size_t len)
{
	struct mu_err err = { "" };
	struct ipc_event e;
	const uint8_t *frame;
	size_t flen;
	int rc;

	if ((rc = ipc_reader_feed(&l->rd, buf, len, &err)) != MU_OK) {
		log_warnx("bad event stream: %s", err.msg);
		return rc;
	}
	while ((rc = ipc_reader_next(&l->rd, &frame, &flen)) == MU_OK) {
		if ((rc = ipc_event_decode(frame, flen, &e, &err)) != MU_OK) {
			log_warnx("bad event: %s", err.msg);
			return rc;
		}
		local_event(l, &e);
		wire_doc_free(&e.doc);
	}
	return rc == MU_ENOENT ? MU_OK : rc;
}

/* Read one chunk; MU_ENOENT at EOF. */
static int
local_read(struct local *l)
{
	char buf[LOCAL_CHUNK];
	ssize_t n;

	do
		n = read(l->evr, buf, sizeof(buf));
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno == EAGAIN)
		return MU_OK;
	if (n <= 0)
		return MU_ENOENT;
	return local_feed(l, buf, (size_t)n);
}

/* The child is gone: take what it wrote, not what its leftovers might
 * go on writing (a pipe holds 64 KiB; a few reads more are plenty). */
static void
local_drain(struct local *l)
{
	int i;

	if (l->evr == -1 || fcntl(l->evr, F_SETFL, O_NONBLOCK) == -1)
		return;
	for (i = 0; i < LOCAL_DRAIN_READS; i++) {
		struct pollfd p = { l->evr, POLLIN, 0 };

		if (poll(&p, 1, 0) != 1 || local_read(l) != MU_OK)
			break;
	}
}

static int
local_poll_ms(struct local *l, int64_t deadline)
{
	int64_t left;

	if (deadline == 0 || l->timed_out)
		return -1;
	if ((left = deadline - (int64_t)now_mono_ms()) <= 0) {
		kill(-l->pid, SIGKILL);
		l->timed_out = true;
		return -1;
	}
	return left > INT_MAX ? INT_MAX : (int)left;
}

static int
local_watch(struct local *l)
{
	int64_t deadline = l->o->timeout_ms ?
	    (int64_t)now_mono_ms() + (int64_t)l->o->timeout_ms : 0;
	struct pollfd pfd[2] = { { l->evr, POLLIN, 0 }, { l->pidfd, POLLIN, 0 } };
	int r;

	while (pfd[0].fd != -1 || pfd[1].fd != -1) {
		r = poll(pfd, 2, local_poll_ms(l, deadline));
		if (local_stop)
			l->interrupted = true;
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			break;
		if (pfd[0].revents) {
			/* On garbage, stop listening: the child's next write fails. */
			if (local_read(l) != MU_OK) {
				close(l->evr);
				l->evr = pfd[0].fd = -1;
			}
		} else if (pfd[1].revents) {
			local_drain(l);
			break;
		}
	}
	/* The group goes before the reap, while the zombie holds its id. */
	kill(-l->pid, SIGKILL);
	if (wait_child(l->pid, &l->wstatus) == MU_OK)
		l->reaped = true;
	local_child = 0;
	return MU_OK;
}

/* ---- 6. the report ---------------------------------------------------- */

/* How it ended, when there is no verdict to say it, or it was cut short. */
static const char *
local_end(struct local *l, char *buf, size_t len, int *code)
{
	int st = l->wstatus;

	if (l->fail_code) {
		*code = l->fail_code;
		return l->fail;
	}
	if (l->timed_out) {
		*code = RUNNER_EXIT_TIMEOUT;
		/* Worded as a host words it (agent/parent/run.c), so that a
		 * laptop's reason reads the same. */
		if (l->o->timeout_ms % 1000 == 0)
			snprintf(buf, len, "timed out after %llu s (--timeout)",
			    (unsigned long long)(l->o->timeout_ms / 1000));
		else
			snprintf(buf, len, "timed out after %.1f s (--timeout)",
			    l->o->timeout_ms / 1000.0);
	} else if (l->interrupted) {
		*code = RUNNER_EXIT_SIGNAL_BASE + SIGINT;
		snprintf(buf, len, "interrupted");
	} else if (!l->reaped) {
		*code = RUNNER_EXIT_INTERNAL;
		snprintf(buf, len, "lost the runner child");
	} else if (WIFSIGNALED(st)) {
		*code = RUNNER_EXIT_SIGNAL_BASE + WTERMSIG(st);
		snprintf(buf, len, "crashed: signal %d (%s)", WTERMSIG(st),
		    strsignal(WTERMSIG(st)));
	} else {
		*code = WEXITSTATUS(st);
		if (l->have_verdict)
			return NULL;
		snprintf(buf, len, "exited %d without a verdict", *code);
	}
	return buf;
}

static const char *
local_status(const struct local *l, const char *end)
{
	if (l->fail_code)
		return l->fail_code < RUNNER_EXIT_SIGNAL_BASE ? "error" : "crashed";
	if (l->timed_out)
		return "timeout";
	if (l->interrupted)
		return "interrupted";
	if (end != NULL || !l->have_verdict)
		return "crashed";
	return result_status_name(l->status);
}

static void
print_data(json_t *data)
{
	char *s;

	if (data == NULL || json_object_size(data) == 0)
		return;
	if ((s = json_dumps(data, JSON_INDENT(2))) == NULL)
		return;
	printf("data: %s\n", s);
	free(s);
}

static void
local_print(struct local *l, const char *end)
{
	static const char *const words[] = {
		[RS_PASS] = "PASS", [RS_FAIL] = "FAIL", [RS_ERROR] = "ERROR",
	};
	const char *word;

	if (l->have_verdict) {
		/* ipc_event_decode() lets only these three through. */
		word = l->status <= RS_ERROR ? words[l->status] : "?";
		if (l->status == RS_ERROR && l->reason) {
			printf("%s: %s\n", word, l->reason);
			if (l->summary)
				printf("summary: %s\n", l->summary);
		} else {
			printf("%s%s%s\n", word, l->summary ? ": " : "",
			    l->summary ? l->summary : "");
			if (l->reason)
				printf("reason: %s\n", l->reason);
		}
		print_data(l->data);
		if (l->truncated)
			printf("note: output or data was truncated\n");
	} else {
		/* What the module had said before it died. */
		if (l->summary)
			printf("summary: %s\n", l->summary);
		print_data(l->data);
		if (l->truncated)
			printf("note: output or data was truncated\n");
	}
	if (end != NULL)
		printf("%s%s\n", l->fail_code && l->fail_code < RUNNER_EXIT_SIGNAL_BASE ?
		    "ERROR: " : "", end);
	fflush(stdout);
}

static json_t *
json_str_or_null(const char *s)
{
	return s != NULL ? json_text(s, strlen(s)) : json_null();
}

static void
local_print_json(struct local *l, const char *end, int code)
{
	json_t *j;

	j = json_pack("{s:s, s:o, s:o, s:O, s:o, s:b, s:o, s:o, s:i}",
	    "status", local_status(l, end),
	    "summary", json_str_or_null(l->summary),
	    "reason", json_str_or_null(end != NULL ? end : l->reason),
	    "output", l->output,
	    "data", l->data != NULL ? json_incref(l->data) : json_object(),
	    "truncated", l->truncated,
	    "module", json_str_or_null(l->vmodule[0] ? l->vmodule :
	    l->name[0] ? l->name : NULL),
	    "module_version", json_str_or_null(l->vversion[0] ? l->vversion :
	    l->version[0] ? l->version : NULL),
	    "exit_code", (json_int_t)code);
	if (j != NULL && l->reaped && WIFSIGNALED(l->wstatus))
		json_object_set_new(j, "signal", json_integer(WTERMSIG(l->wstatus)));
	if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2)) != 0)
		log_warnx("cannot print the result as JSON");
	else
		putchar('\n');
	fflush(stdout);
	json_decref(j);
}

static int
local_report(struct local *l)
{
	char buf[256];
	const char *end;
	int code = 0;

	end = local_end(l, buf, sizeof(buf), &code);
	if (l->o->json)
		local_print_json(l, end, code);
	else
		local_print(l, end);
	return code;
}

/* ---- the role --------------------------------------------------------- */

static int
local_run(struct local *l)
{
	int rc;

	if ((rc = local_describe(l)) != MU_OK)
		return rc;
	if (!l->o->json) {
		printf("module: %s %s\n", l->name, l->version);
		fflush(stdout);
	}
	if ((rc = local_job(l)) != MU_OK || (rc = local_memfd(l)) != MU_OK)
		return rc;
	if (local_signals() != MU_OK)
		return local_failf(l, RUNNER_EXIT_INTERNAL, "sigaction: %s",
		    strerror(errno));
	if ((rc = local_spawn(l)) != MU_OK)
		return rc;
	/* EPIPE here means the child died first; the report says how. */
	write_full(l->jobw, l->body.data, l->body.size);
	close(l->jobw);
	l->jobw = -1;
	return local_watch(l);
}

static void
local_free(struct local *l)
{
	if (l->evr != -1)
		close(l->evr);
	if (l->jobw != -1)
		close(l->jobw);
	if (l->memfd != -1)
		close(l->memfd);
	if (l->pidfd != -1)
		close(l->pidfd);
	if (l->self_fd != -1)
		close(l->self_fd);
	free(l->envp);
	free(l->asan_opts);
	spawn_filter_free(&l->filter);
	ipc_reader_free(&l->rd);
	msgpack_sbuffer_destroy(&l->body);
	json_decref(l->output);
	json_decref(l->data);
	free(l->summary);
	free(l->reason);
}

int
local_main(const struct runner_opts *o)
{
	struct local l;
	int rc;

	memset(&l, 0, sizeof(l));
	l.o = o;
	l.memfd = l.jobw = l.evr = l.pidfd = l.self_fd = -1;
	msgpack_sbuffer_init(&l.body);
	signal(SIGPIPE, SIG_IGN);
	if ((l.output = json_array()) == NULL)
		local_failf(&l, RUNNER_EXIT_INTERNAL, "out of memory");
	else
		local_run(&l);
	rc = local_report(&l);
	local_free(&l);
	return rc;
}
