/* SPDX-License-Identifier: Apache-2.0 */
/*
 * run.c - one muster-runner process per job.
 *
 * The agent is multi-threaded (Paho), so between fork() and execve() the
 * child makes only async-signal-safe calls (design.md §9); argv, envp and
 * rlimits are prepared before fork().  The runner gets its own process
 * group, so timeout and cancel can kill everything it started: SIGTERM,
 * a grace period, then SIGKILL.  Runners are reaped by the parent's one
 * reaper (reap.c), which hands each to run_exited().
 *
 * Ownership: a struct run owns its pipes and, until reaped, its pid.  The
 * module memfd is owned only between modopen_build() and fork().
 */
#include "agent.h"
#include "subproc.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void run_finish(struct agent *a, struct run *r);
static void run_schedule(struct agent *a);
static void run_fail(struct agent *a, struct run *r, enum result_status st,
    const char *why);

/* ---- small helpers ---------------------------------------------------- */

static void
fd_close(int *fd)
{
	if (*fd != -1)
		close(*fd);
	*fd = -1;
}

static uint64_t
run_timeout_ms(const struct agent *a, const struct run *r)
{
	uint64_t t = r->job.timeout_ms ? r->job.timeout_ms : a->cfg.timeout_ms;

	if (r->timeout_cap_ms && t > r->timeout_cap_ms)
		t = r->timeout_cap_ms;	/* the policy's timeout<= */
	return t;
}

/*
 * "timed out after 2 s (job timeout)", and how long the module took to be
 * had when that was long enough to matter: the wait for it is bounded by
 * the same timeout but not part of the run's (run_wait()), so the operator
 * waited for both.
 */
static void
timeout_reason(const struct agent *a, const struct run *r, bool fetching,
    char *why, size_t len)
{
	uint64_t t = run_timeout_ms(a, r);
	const char *limit;
	char secs[32];
	size_t n;

	if (r->timeout_cap_ms && t == r->timeout_cap_ms &&
	    (r->job.timeout_ms == 0 || r->job.timeout_ms > t))
		limit = "the policy's timeout<=";
	else if (r->job.timeout_ms)
		limit = "job timeout";
	else
		limit = "[limits] timeout";
	if (t % 1000 == 0)
		snprintf(secs, sizeof(secs), "%" PRIu64 " s", t / 1000);
	else
		snprintf(secs, sizeof(secs), "%.1f s", t / 1000.0);
	n = (size_t)snprintf(why, len, "timed out after %s (%s)", secs, limit);
	if (n >= len)
		return;
	if (fetching)
		snprintf(why + n, len - n, " while module %s was still being fetched",
		    r->job.module);
	else if (r->fetch_ms >= 100)
		/* The wait for the module: its pointer looked up (a cached
		 * build too), the artifact fetched if it was not cached. */
		snprintf(why + n, len - n, "; getting module %s took %.1f s before the run",
		    r->job.module, r->fetch_ms / 1000.0);
}

static uint64_t
output_limit(const struct agent *a)
{
	return a->cfg.output < WIRE_MAX_STR ? a->cfg.output : WIRE_MAX_STR;
}

static void
output_append(struct agent *a, struct run *r, const char *p, size_t len)
{
	size_t room, limit = output_limit(a);
	char *n;

	if (r->output_len >= limit) {
		r->truncated = r->truncated || len > 0;
		return;
	}
	room = limit - r->output_len;
	if (len > room) {
		len = room;
		r->truncated = true;
	}
	if ((n = realloc(r->output, r->output_len + len + 1)) == NULL) {
		r->truncated = true;
		return;
	}
	r->output = n;
	memcpy(r->output + r->output_len, p, len);
	r->output_len += len;
	r->output[r->output_len] = '\0';
}

static void
stream_event(struct agent *a, struct run *r, enum event_kind kind, const char *text,
    size_t tlen, int pct)
{
	struct event e = { .event = kind, .at = now_wall_ms() };
	msgpack_sbuffer body, env;

	if (!r->job.stream)
		return;
	if (r->event_seq >= RUN_MAX_EVENTS || tlen > RUN_MAX_EVENT_BYTES - r->event_bytes) {
		r->events_dropped++;
		return;
	}
	r->event_bytes += tlen;
	snprintf(e.job, sizeof(e.job), "%s", r->job.id);
	snprintf(e.host, sizeof(e.host), "%s", a->cfg.host);
	e.seq = ++r->event_seq;
	if (text)
		e.text = (struct wire_str){ text, tlen };
	if (pct >= 0)
		e.has_pct = true, e.pct = (uint8_t)pct;
	msgpack_sbuffer_init(&body);
	msgpack_sbuffer_init(&env);
	/* Signed here; the network process sends it, when connected. */
	if (event_encode(&e, &body, NULL) == MU_OK &&
	    sign_body(a, body.data, body.size, &env, NULL) == MU_OK)
		priv_send_event(a, r->job.id, env.data, env.size);
	msgpack_sbuffer_destroy(&body);
	msgpack_sbuffer_destroy(&env);
}

/* Stop the runner's whole process group: TERM now, KILL after the grace. */
static void
kill_timer_fired(struct loop *l, uint64_t id, void *arg)
{
	struct run *r = arg;

	(void)l, (void)id;
	r->kill_timer = 0;
	if (r->pid > 0)
		kill(-r->pid, SIGKILL);
}

static void
run_terminate(struct agent *a, struct run *r)
{
	if (r->pid <= 0 || r->kill_timer)
		return;
	kill(-r->pid, SIGTERM);
	r->kill_timer = loop_add_timer(a->loop, KILL_GRACE_MS, kill_timer_fired, r);
}

/* ---- events from the runner ------------------------------------------ */

/* A copy of e's data map, replacing the run's (NULL: none). */
static void
run_take_data(struct run *r, const struct ipc_event *e)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	free(r->data);
	r->data = NULL;
	r->data_len = 0;
	if (e->data) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, *e->data);
		r->data = (uint8_t *)sb.data;	/* hand the buffer over */
		r->data_len = sb.size;
	}
}

static void
run_take_verdict(struct run *r, const struct ipc_event *e)
{
	r->have_verdict = true;
	r->verdict = e->status;
	r->truncated = r->truncated || e->truncated;
	free(r->summary);
	free(r->reason);
	r->summary = wire_str_dup(e->summary);
	r->reason = wire_str_dup(e->reason);
	snprintf(r->module_version, sizeof(r->module_version), "%s", e->module_version);
	run_take_data(r, e);
}

/* The summary and data so far: what a crash leaves of the module's word
 * (ipc.h).  The verdict, once there, says it all and stays. */
static void
run_take_state(struct run *r, const struct ipc_event *e)
{
	if (r->have_verdict)
		return;
	r->state_truncated = r->state_truncated || e->truncated;
	if (e->truncated && !e->summary.ptr && !e->data)
		return;		/* the runner's "no more": keep the last */
	free(r->summary);
	r->summary = wire_str_dup(e->summary);
	run_take_data(r, e);
}

static int
run_handle_frame(struct agent *a, struct run *r, const uint8_t *f, size_t len,
    struct mu_err *err)
{
	struct ipc_event e;
	int rc;

	if ((rc = ipc_event_decode(f, len, &e, err)) != MU_OK)
		return rc;
	switch (e.type) {
	case IPC_OUT:
		output_append(a, r, e.text.ptr, e.text.len);
		output_append(a, r, "\n", 1);
		stream_event(a, r, EV_OUTPUT, e.text.ptr, e.text.len, -1);
		break;
	case IPC_PROGRESS:
		stream_event(a, r, EV_PROGRESS, NULL, 0, e.pct);
		break;
	case IPC_VERDICT:
		run_take_verdict(r, &e);
		break;
	case IPC_STATE:
		run_take_state(r, &e);
		break;
	}
	wire_doc_free(&e.doc);
	return MU_OK;
}

typedef bool chunk_fn(struct agent *, struct run *, const uint8_t *, size_t);

/* Read what fd has now, handing each chunk to take().  Returns false at
 * EOF, on a read error, or when take() refuses more; the caller closes. */
static bool
pipe_drain(struct agent *a, struct run *r, int fd, chunk_fn *take)
{
	uint8_t buf[16384];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return true;
		if (n <= 0 || !take(a, r, buf, (size_t)n))
			return false;
	}
}

static bool
take_events(struct agent *a, struct run *r, const uint8_t *p, size_t len)
{
	const uint8_t *frame;
	struct mu_err err;
	size_t flen;

	if (ipc_reader_feed(&r->events, p, len, &err) != MU_OK)
		goto violation;
	while (ipc_reader_next(&r->events, &frame, &flen) == MU_OK)
		if (run_handle_frame(a, r, frame, flen, &err) != MU_OK)
			goto violation;
	return true;
violation:
	/* A module wrote garbage to fd 3: the run is over, and says why. */
	log_warnx("job %s: bad event from the runner: %s", r->job.id, err.msg);
	if (!r->reason)
		r->reason = strdup("the runner broke the event protocol");
	r->have_verdict = false;
	run_terminate(a, r);
	return false;
}

static bool
take_output(struct agent *a, struct run *r, const uint8_t *p, size_t len)
{
	output_append(a, r, (const char *)p, len);
	return true;
}

static struct run *
run_by_fd(struct agent *a, int fd)
{
	struct run *r;

	for (r = a->par.runs; r; r = r->next)
		if (r->ev_fd == fd || r->out_fd == fd || r->in_fd == fd)
			return r;
	return NULL;
}

/* The runner's fd 3 and its stdout/stderr: read until EOF, then close. */
static void
on_pipe(struct loop *l, int fd, short revents, void *arg)
{
	struct agent *a = arg;
	struct run *r = run_by_fd(a, fd);
	bool events;

	(void)revents;
	if (r == NULL)
		return;
	events = fd == r->ev_fd;
	if (!pipe_drain(a, r, fd, events ? take_events : take_output)) {
		loop_del_fd(l, fd);
		fd_close(events ? &r->ev_fd : &r->out_fd);
	}
}

/* Feed the job body to the runner's stdin without blocking the loop. */
static void
on_stdin(struct loop *l, int fd, short revents, void *arg)
{
	struct agent *a = arg;
	struct run *r = run_by_fd(a, fd);
	ssize_t n;

	(void)revents;
	if (r == NULL)
		return;
	while (r->in_off < r->body_len) {
		n = write(fd, r->body + r->in_off, r->body_len - r->in_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;
		r->in_off += (size_t)n;
	}
	loop_del_fd(l, fd);
	fd_close(&r->in_fd);
}

/* ---- starting --------------------------------------------------------- */

/* ---- run_as users (agent.h, struct user_cache) ------------------------ */

/* Inode, size and change time of both files: any edit changes one. */
static void
user_files_id(char *out, size_t size)
{
	const char *paths[] = { "/etc/passwd", "/etc/group" };
	struct stat st;
	size_t i, n = 0;

	out[0] = '\0';
	for (i = 0; i < 2 && n < size; i++) {
		if (stat(paths[i], &st) == -1)
			memset(&st, 0, sizeof(st));
		n += (size_t)snprintf(out + n, size - n, "%llu:%lld:%lld.%ld;",
		    (unsigned long long)st.st_ino, (long long)st.st_size,
		    (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	}
}

void
run_users_forget(struct agent *a)
{
	memset(&a->par.users, 0, sizeof(a->par.users));
}

static struct user_cache_entry *
user_cached(struct agent *a, const char *name)
{
	uint64_t now = now_mono_ms();
	char files[sizeof(a->par.users.files)];
	size_t i;

	user_files_id(files, sizeof(files));
	if (strcmp(files, a->par.users.files) != 0) {
		run_users_forget(a);
		snprintf(a->par.users.files, sizeof(a->par.users.files), "%s", files);
		return NULL;
	}
	for (i = 0; i < USER_CACHE_SLOTS; i++) {
		struct user_cache_entry *e = &a->par.users.e[i];

		if (strcmp(e->name, name) == 0 && now - e->resolved_at < USER_CACHE_TTL_MS)
			return e;
	}
	return NULL;
}

/* Resolve user into sp (switch_user, uid, gid, groups), from the cache
 * when it may be trusted; a user that does not resolve is not cached. */
static int
run_user(struct agent *a, struct spawn *sp, const char *user, struct mu_err *err)
{
	struct user_cache_entry *e = user_cached(a, user);
	int rc;

	if (e == NULL) {
		if ((rc = spawn_set_user(sp, user, err)) != MU_OK)
			return rc;
		e = &a->par.users.e[a->par.users.next++ % USER_CACHE_SLOTS];
		snprintf(e->name, sizeof(e->name), "%s", user);
		e->resolved_at = now_mono_ms();
		e->uid = sp->uid, e->gid = sp->gid, e->ngroups = sp->ngroups;
		memcpy(e->groups, sp->groups, sizeof(e->groups));
		return MU_OK;
	}
	sp->switch_user = true;
	sp->uid = e->uid, sp->gid = e->gid, sp->ngroups = e->ngroups;
	memcpy(sp->groups, e->groups, sizeof(sp->groups));
	return MU_OK;
}

/* What the runner's child needs, built before fork (argv, limits, user). */
struct runner_child {
	struct spawn sp;
	char *argv[6];
	char limit_arg[24];
	int in_r, out_w, ev_w, memfd;	/* child ends, owned until spawned */
};

static char *const runner_envp[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C",
	NULL,
};

#if defined(__SANITIZE_ADDRESS__)
/* A runner whose children have a PID namespace cannot be leak-checked
 * (lib/subproc.h, SPAWN_PIDNS_ASAN_OPTIONS). */
static char *const runner_envp_pidns[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C",
	"ASAN_OPTIONS=" SPAWN_PIDNS_ASAN_OPTIONS,
	NULL,
};
#endif

/* The job's own uid, and the gid of the same number, no other groups.
 * Held by r until run_finish() (jobuid.h: the runner is reaped by then). */
static int
run_job_uid(struct agent *a, struct run *r, struct spawn *sp, struct mu_err *err)
{
	int rc;

	if (r->job_uid == 0 && (rc = jobuid_take(&a->par.jobuids, &r->job_uid, err)) != MU_OK)
		return rc;
	sp->switch_user = true;
	sp->uid = r->job_uid;
	sp->gid = (gid_t)r->job_uid;
	sp->ngroups = 0;
	/* It owns no file: all it could write outside its tmpfs is what
	 * anyone may write, and what it left there would keep its uid for
	 * the next job given the same one.  So nothing but [limits] writable
	 * (lib/subproc.h).  A run_as user keeps the files it owns. */
	_Static_assert(SPAWN_MAX_WRITABLE == CONF_WRITABLE_MAX, "one list, one size");
	if (sp->private_tmp) {
		sp->read_only = true;
		sp->nwritable = a->par.nwritable;
		memcpy(sp->writable, a->par.writable, sizeof(a->par.writable));
	}
	return MU_OK;
}

/*
 * Whether the job may use IPv4/IPv6 sockets (design.md §8): a signed
 * module only if its manifest declares "net", a local one (the host's own
 * file, no manifest) as its descriptor says, and never where the policy
 * rule says net=no.  NULL: granted; else why not, for the runner's
 * reason.  The runner holds the module to its descriptor as well
 * (runner/module.c).
 */
static const char *
run_no_net(const struct run *r, const struct module_file *mod)
{
	if (r->net_no)
		return "policy";
	if (!mod->local && !mod->net)
		return "manifest";
	return NULL;
}

static int
child_prepare(struct agent *a, struct run *r, const struct module_file *mod,
    struct runner_child *c, struct mu_err *err)
{
	const char *no_net = run_no_net(r, mod);
	struct spawn *sp = &c->sp;
	int n = 0, rc;

	snprintf(c->limit_arg, sizeof(c->limit_arg), "%" PRIu64, output_limit(a));
	c->argv[n++] = a->cfg.runner;
	c->argv[n++] = "--output-limit";
	c->argv[n++] = c->limit_arg;
	if (no_net) {
		c->argv[n++] = "--no-net";
		c->argv[n++] = (char *)no_net;
	}
	c->argv[n] = NULL;
	sp->argv = c->argv;
	sp->envp = runner_envp;
	sp->use_exec_fd = a->par.runner_fd >= 0;
	sp->exec_fd = a->par.runner_fd;
	/* The same confinement as `muster-runner --run` (lib/subproc.c); the
	 * filter without IPv4/IPv6 sockets unless the job may have them. */
	spawn_confine(sp, &(struct spawn_confinement){
	    .memory = a->cfg.memory, .cpu_ms = a->cfg.cpu_ms,
	    .processes = a->cfg.processes,
	    .filter = no_net ? &a->par.runner_filter_no_inet : &a->par.runner_filter,
	    .namespaces = a->par.confined });
	if (sp->filter->len == 0)
		sp->filter = NULL;
#if defined(__SANITIZE_ADDRESS__)
	if (sp->new_pidns)
		sp->envp = runner_envp_pidns;
#endif
	/* A uid of its own (lib/jobuid.h) unless a policy rule names another
	 * user; else resolve r->run_as (design.md §8). */
	if (r->run_as[0] && a->par.jobuids.count && strcmp(r->run_as, a->cfg.run_as) == 0)
		return run_job_uid(a, r, sp, err);
	if (r->run_as[0] && (rc = run_user(a, sp, r->run_as, err)) != MU_OK)
		return rc;
	return MU_OK;
}

static int
pipes_open(struct run *r, struct runner_child *c, struct mu_err *err)
{
	int in[2], out[2], ev[2];

	if (pipe2(in, O_CLOEXEC) == -1)
		return mu_errf(err, MU_EIO, "pipe: %s", strerror(errno));
	if (pipe2(out, O_CLOEXEC) == -1) {
		close(in[0]), close(in[1]);
		return mu_errf(err, MU_EIO, "pipe: %s", strerror(errno));
	}
	if (pipe2(ev, O_CLOEXEC) == -1) {
		close(in[0]), close(in[1]), close(out[0]), close(out[1]);
		return mu_errf(err, MU_EIO, "pipe: %s", strerror(errno));
	}
	c->in_r = in[0], r->in_fd = in[1];
	r->out_fd = out[0], c->out_w = out[1];
	r->ev_fd = ev[0], c->ev_w = ev[1];
	fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
	fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(r->ev_fd, F_SETFL, O_NONBLOCK);
	/* stdin = the job, stdout and stderr = output, 3 = events, 4 = the
	 * module (design.md §4). */
	c->sp.fds[0] = c->in_r;
	c->sp.fds[1] = c->sp.fds[2] = c->out_w;
	c->sp.fds[3] = c->ev_w;
	c->sp.fds[4] = c->memfd;
	return MU_OK;
}

static void
child_close_ends(struct runner_child *c)
{
	fd_close(&c->in_r);
	fd_close(&c->out_w);
	fd_close(&c->ev_w);
	fd_close(&c->memfd);
}

static void
timeout_fired(struct loop *l, uint64_t id, void *arg)
{
	struct run *r = arg;

	(void)l, (void)id;
	r->timeout_timer = 0;
	r->timed_out = true;
	log_notice("job %s: timed out", r->job.id);
	if (r->pid > 0) {
		kill(-r->pid, SIGTERM);
		if (!r->kill_timer)
			r->kill_timer = loop_add_timer(l, KILL_GRACE_MS, kill_timer_fired, r);
	}
}

/* Takes over mod->memfd. */
static int
run_spawn(struct agent *a, struct run *r, struct module_file *mod, struct mu_err *err)
{
	struct runner_child c = { .in_r = -1, .out_w = -1, .ev_w = -1, .memfd = -1 };
	uint64_t timeout;
	int rc;

	snprintf(r->module_sha256, sizeof(r->module_sha256), "%s", mod->sha256);
	c.memfd = mod->memfd;
	mod->memfd = -1;
	if ((rc = child_prepare(a, r, mod, &c, err)) != MU_OK ||
	    (rc = pipes_open(r, &c, err)) != MU_OK) {
		child_close_ends(&c);
		return rc;
	}
	r->pid = spawn_start(&c.sp, err);
	child_close_ends(&c);
	if (r->pid == -1)
		return MU_EIO;
	loop_add_fd(a->loop, r->in_fd, POLLOUT, on_stdin, a);
	loop_add_fd(a->loop, r->ev_fd, POLLIN, on_pipe, a);
	loop_add_fd(a->loop, r->out_fd, POLLIN, on_pipe, a);
	timeout = run_timeout_ms(a, r);
	r->timeout_timer = loop_add_timer(a->loop, timeout, timeout_fired, r);
	return MU_OK;
}

static void
wait_expired(struct loop *l, uint64_t id, void *arg)
{
	struct run *r = arg;
	char why[200];

	(void)l, (void)id;
	r->wait_timer = 0;
	timeout_reason(r->agent, r, true, why, sizeof(why));
	log_notice("job %s: %s", r->job.id, why);
	run_fail(r->agent, r, RS_TIMEOUT, why);
}

/*
 * Ask the network process for the run's module (it may have to fetch it);
 * the run holds no slot meanwhile.  The fetch has its own limit
 * (fetch_timeout) and is answered either way; this bounds the run by its
 * own timeout too.
 */
static void
run_wait(struct agent *a, struct run *r)
{
	char local[SHA256_HEX_LEN + 1];
	struct mu_err err;
	int rc;

	r->state = RUN_WAITING;
	if (!r->wait_timer) {
		r->wait_began = now_mono_ms();
		r->wait_timer_ms = run_timeout_ms(a, r);
		r->wait_timer = loop_add_timer(a->loop, r->wait_timer_ms, wait_expired, r);
	}
	/* A local file that is refused (owner, mode, symlink) is named in the
	 * answer if no signed build stands in for it. */
	rc = modopen_local_sha(a, r->job.module, local, &err);
	if (rc != MU_OK && rc != MU_ENOENT)
		snprintf(r->local_why, sizeof(r->local_why), "%s", err.msg);
	priv_send_want(a, r, rc == MU_OK ? local : NULL);
}

/* A new network process: ask again for what the old one did not answer. */
void
run_net_restarted(struct agent *a)
{
	struct run *r;

	for (r = a->par.runs; r; r = r->next)
		if (r->state == RUN_WAITING)
			run_wait(a, r);
}

static void
run_start(struct agent *a, struct run *r)
{
	struct mu_err err;
	int rc;

	if (r->module == NULL) {
		run_wait(a, r);
		return;
	}
	r->state = RUN_RUNNING;
	r->started_at = now_wall_ms();
	a->par.nrunning++;
	stream_event(a, r, EV_STARTED, NULL, 0, -1);
	rc = run_spawn(a, r, r->module, &err);
	if (rc != MU_OK) {
		log_warnx("job %s: %s", r->job.id, err.msg);
		run_fail(a, r, RS_ERROR, err.msg);
		return;
	}
	log_info("job %s: running module %s (pid %d)", r->job.id, r->job.module, (int)r->pid);
}

static void
run_schedule(struct agent *a)
{
	struct run *r;

	if (a->stopping)
		return;
	for (r = a->par.runs; r && a->par.nrunning < a->cfg.max_jobs; r = r->next)
		if (r->state == RUN_QUEUED) {
			run_start(a, r);
			/* run_start may have finished r and changed the list. */
			run_schedule(a);
			return;
		}
}

int
run_submit(struct agent *a, struct run *r)
{
	struct run **p;

	r->state = RUN_QUEUED;
	r->pid = -1;
	r->in_fd = r->ev_fd = r->out_fd = -1;
	r->agent = a;
	for (p = &a->par.runs; *p; p = &(*p)->next)
		;
	*p = r;
	stream_event(a, r, EV_ACCEPTED, NULL, 0, -1);
	run_schedule(a);
	return MU_OK;
}

/* ---- finishing -------------------------------------------------------- */

static void
run_free(struct run *r)
{
	if (r->module) {
		if (r->module->memfd != -1)
			close(r->module->memfd);
		free(r->module);
	}
	wire_doc_free(&r->job.doc);
	ipc_reader_free(&r->events);
	free(r->body);
	free(r->output);
	free(r->summary);
	free(r->reason);
	free(r->data);
	free(r);
}

static void
run_unlink(struct agent *a, struct run *r)
{
	struct run **p;

	for (p = &a->par.runs; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			return;
		}
}

static void
result_outcome(struct run *r, struct result *res, char *why, size_t whylen)
{
	int st = r->wait_status;

	if (r->interrupted) {
		res->status = RS_INTERRUPTED;
		snprintf(why, whylen, "the agent stopped while the job ran");
	}
	else if (r->cancelled)
		res->status = RS_CANCELLED;
	else if (r->timed_out) {
		res->status = RS_TIMEOUT;
		timeout_reason(r->agent, r, false, why, whylen);
	}
	else if (r->have_verdict)
		res->status = r->verdict;
	else {
		res->status = RS_CRASHED;
		if (WIFSIGNALED(st))
			snprintf(why, whylen, "runner killed by signal %d (%s)", WTERMSIG(st),
			    strsignal(WTERMSIG(st)));
		else
			snprintf(why, whylen, "runner exited with code %d without a verdict",
			    WEXITSTATUS(st));
	}
	if (r->pid > 0 && WIFSIGNALED(st))
		res->has_signal = true, res->signal = WTERMSIG(st);
	else if (r->pid > 0 && WIFEXITED(st))
		res->has_exit_code = true, res->exit_code = WEXITSTATUS(st);
}

static void
run_close_pipes(struct agent *a, struct run *r)
{
	int *fds[] = { &r->in_fd, &r->ev_fd, &r->out_fd };
	size_t i;

	for (i = 0; i < 3; i++)
		if (*fds[i] != -1) {
			loop_del_fd(a->loop, *fds[i]);
			fd_close(fds[i]);
		}
}

static void
run_finish(struct agent *a, struct run *r)
{
	msgpack_unpacked data;
	struct result res;
	char why[256] = "";

	/* The runner is reaped (or never ran): its uid is free again.  One
	 * not reaped keeps its uid for good rather than share it. */
	if (r->job_uid && (r->reaped || r->pid <= 0))
		jobuid_give(&a->par.jobuids, r->job_uid);
	result_init(a, &res, &r->job, RS_ERROR);
	res.started_at = r->started_at ? r->started_at : res.finished_at;
	result_outcome(r, &res, why, sizeof(why));
	/* A timeout's own words beat a verdict sent in the kill grace. */
	if (r->timed_out && !r->interrupted && !r->cancelled && why[0])
		res.reason = (struct wire_str){ why, strlen(why) };
	else if (r->reason || why[0])
		res.reason = r->reason ? (struct wire_str){ r->reason, strlen(r->reason) } :
		    (struct wire_str){ why, strlen(why) };
	if (r->summary)
		res.summary = (struct wire_str){ r->summary, strlen(r->summary) };
	if (r->output_len)
		res.output = (struct wire_str){ r->output, r->output_len };
	/* Without a verdict, the summary and data are a state frame's. */
	res.truncated = r->truncated || (!r->have_verdict && r->state_truncated);
	res.events_dropped = r->events_dropped;
	snprintf(res.module_version, sizeof(res.module_version), "%s", r->module_version);
	snprintf(res.module_sha256, sizeof(res.module_sha256), "%s", r->module_sha256);
	msgpack_unpacked_init(&data);
	if (r->data && msgpack_unpack_next(&data, (const char *)r->data, r->data_len, NULL) ==
	    MSGPACK_UNPACK_SUCCESS)
		res.data = &data.data;
	log_info("job %s: %s%s%s", r->job.id, result_status_name(res.status),
	    res.reason.ptr ? ": " : "", res.reason.ptr ? res.reason.ptr : "");
	/* The journal entry goes once the result is spooled (priv.c). */
	result_submit(a, &res);
	msgpack_unpacked_destroy(&data);
	if (r->state == RUN_RUNNING)
		a->par.nrunning--;
	r->state = RUN_DONE;
	if (r->timeout_timer)
		loop_del_timer(a->loop, r->timeout_timer);
	if (r->kill_timer)
		loop_del_timer(a->loop, r->kill_timer);
	if (r->wait_timer)
		loop_del_timer(a->loop, r->wait_timer);
	run_close_pipes(a, r);
	run_unlink(a, r);
	run_free(r);
	run_schedule(a);
}

/* The runner exited: clean up its group, drain its pipes, report. */
void
run_exited(struct agent *a, struct run *r, int status)
{
	r->wait_status = status;
	r->reaped = true;
	/* Anything the module left behind in the group goes with it. */
	kill(-r->pid, SIGKILL);
	if (r->ev_fd != -1)
		pipe_drain(a, r, r->ev_fd, take_events);
	if (r->out_fd != -1)
		pipe_drain(a, r, r->out_fd, take_output);
	run_finish(a, r);
}

struct run *
run_find(struct agent *a, const char *id)
{
	struct run *r;

	for (r = a->par.runs; r; r = r->next)
		if (strcmp(r->job.id, id) == 0)
			return r;
	return NULL;
}

void
run_cancel(struct agent *a, struct run *r)
{
	r->cancelled = true;
	if (r->state == RUN_QUEUED || r->state == RUN_WAITING) {
		r->reaped = true;
		run_finish(a, r);
		return;
	}
	run_terminate(a, r);
}

/* On shutdown: stop every runner and answer its job now, so the results go
 * out before the goodbye.  (After a crash the journal does the same on the
 * next start.) */
void
run_interrupt_all(struct agent *a)
{
	int status;

	while (a->par.runs) {
		struct run *r = a->par.runs;

		r->interrupted = true;
		if (r->pid > 0 && !r->reaped) {
			kill(-r->pid, SIGKILL);
			if (waitpid(r->pid, &status, 0) == r->pid)
				r->wait_status = status;
			r->reaped = true;
		}
		run_finish(a, r);
	}
}

/* A run that never got a runner: answer it with st and why. */
static void
run_fail(struct agent *a, struct run *r, enum result_status st, const char *why)
{
	r->have_verdict = true;
	r->verdict = st;
	free(r->reason);
	r->reason = strdup(why);
	r->reaped = true;
	run_finish(a, r);
}

/*
 * The network process named the run's build (or why there is none).  The
 * parent trusts none of it: modopen_build() checks the build again before
 * the run may start.
 */
void
run_module_answer(struct agent *a, const struct priv_msg *m)
{
	struct module_file *mod;
	struct mu_err err;
	struct run *r = run_find(a, m->job);
	char why[320];

	if (r == NULL || r->state != RUN_WAITING)
		return;		/* late: the run timed out or was cancelled */
	if (!priv_source_has_build(m->source)) {
		/* The network process's words: escaped before our log and the
		 * result show them (no forged lines). */
		if (m->reason.ptr && m->reason.len)
			printable_copy(why, sizeof(why), m->reason.ptr, m->reason.len > 300 ?
			    300 : m->reason.len);
		else
			snprintf(why, sizeof(why), "no module");
		/* Found nowhere, and the parent refused modules_dir's file:
		 * its reason says more than "not installed". */
		if (r->local_why[0] && m->source == PRIV_SRC_NOWHERE)
			snprintf(why, sizeof(why), "%s", r->local_why);
		run_fail(a, r, RS_ERROR, why);
		return;
	}
	if ((mod = calloc(1, sizeof(*mod))) == NULL) {
		run_fail(a, r, RS_ERROR, "agent out of memory");
		return;
	}
	if (modopen_build(a, r, m->source, m->sha256, mod, &err) != MU_OK) {
		free(mod);
		log_warnx("job %s: %s", r->job.id, err.msg);
		run_fail(a, r, RS_ERROR, err.msg);
		return;
	}
	r->module = mod;
	r->fetch_ms = now_mono_ms() - r->wait_began;
	if (r->wait_timer)
		loop_del_timer(a->loop, r->wait_timer);
	r->wait_timer = 0;
	r->state = RUN_QUEUED;
	run_schedule(a);
}
