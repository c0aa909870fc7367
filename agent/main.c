/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - musterd: options, start-up, the signal handling and the loop.
 */
#include "agent.h"
#include "daemon.h"
#include "hostsig.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#define PRUNE_INTERVAL_MS	(10 * 60 * 1000)

static int
usage(FILE *f, int rc)
{
	fprintf(f,
	    "usage: musterd [-c FILE] [--foreground] [--check-config] [--version]\n"
	    "  -c, --config FILE   configuration (default " AGENT_CONF_DEFAULT ")\n"
	    "  -f, --foreground    do not detach (the default under systemd)\n"
	    "      --check-config  parse the configuration, report the first error, exit\n"
	    "  -V, --version       print the version and exit\n"
	    "  -h, --help          print this help and exit\n");
	return rc;
}

/* ---- signals ---------------------------------------------------------- */

/* A key file that does not load is reported and left out (design.md §8). */
static void
key_warn(void *arg, const char *msg)
{
	(void)arg;
	log_warnx("operator keys: %s", msg);
}

/* A policy that does not load at reload never widens what is allowed: the
 * valid one in force stays, and with none in force every job is refused
 * until it loads (policy_reload(), design.md §8).  Said at error level: the
 * host is not running the policy its admin just wrote. */
static void
reload_policy(struct agent *a, const struct agent_config *fresh)
{
	struct mu_err err = { "" };

	switch (policy_reload(&a->par.policy, fresh->policy, intake_policy_optional(fresh), &err)) {
	case POLICY_LOADED:
		log_notice("reloaded policy %s: %zu rules", a->par.policy.path, a->par.policy.nrules);
		break;
	case POLICY_NONE:
		log_notice("no policy at %s: every trusted key may do everything",
		    a->par.policy.path);
		break;
	case POLICY_KEPT:
		log_err("reload: %s (keeping the policy in force: %zu rules of %s)", err.msg,
		    a->par.policy.nrules, a->par.policy.path);
		return;
	case POLICY_REFUSING:
		log_err("reload: %s (no valid policy was in force: every job is refused "
		    "until the policy loads)", err.msg);
		return;
	case POLICY_GONE:
		if (a->par.policy.refuse_all)
			log_err("reload: no policy at %s: still refusing every job (%s); "
			    "write a valid policy and reload, or restart musterd to run "
			    "without one", fresh->policy, a->par.policy.error);
		else
			log_err("reload: no policy at %s: keeping the %zu rules of %s in force; "
			    "only a restart drops a policy (then every trusted key may do "
			    "everything)", fresh->policy, a->par.policy.nrules, a->par.policy.path);
		return;
	}
	snprintf(a->cfg.policy, sizeof(a->cfg.policy), "%s", fresh->policy);
}

static void
reload(struct agent *a)
{
	struct agent_config fresh;
	struct mu_err err;

	config_agent_defaults(&fresh);
	if (config_agent_load(&fresh, a->conf_path, &err) != MU_OK) {
		log_err("reload: %s (keeping the running configuration)", err.msg);
		return;
	}
	/* Fails closed: only an unreadable folder keeps the old ring. */
	if (keyring_load_dir(&a->par.operators, fresh.operators, key_warn, a, &err) != MU_OK) {
		log_err("reload: %s (keeping the old operator keys)", err.msg);
		return;
	}
	snprintf(a->cfg.operators, sizeof(a->cfg.operators), "%s", fresh.operators);
	reload_policy(a, &fresh);
	/* SIGHUP publishes the facts even unchanged (design.md §3). */
	snprintf(a->cfg.facts_dir, sizeof(a->cfg.facts_dir), "%s", fresh.facts_dir);
	facts_refresh_logged(a, true);
	run_users_forget(a);	/* users, or the policy's run_as, may differ */
	/* Say so at the more verbose of the old and the new level: a reload
	 * that makes the log quieter is still confirmed in it. */
	if (fresh.log_level > a->cfg.log_level)
		log_set_level(fresh.log_level);
	log_notice("reloaded: %zu operator keys, log level %d", a->par.operators.nkeys,
	    fresh.log_level);
	a->cfg.log_level = fresh.log_level;
	log_set_level(fresh.log_level);
}

static void
on_signal(struct loop *l, int fd, short revents, void *arg)
{
	struct agent *a = arg;
	struct signalfd_siginfo si;

	(void)revents;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			if (a->role != ROLE_NET)	/* gpgme reaps its own */
				parent_reap(a);
			break;
		case SIGHUP:
			if (a->role != ROLE_NET)	/* keys and policy live in the parent */
				reload(a);
			break;
		case SIGUSR2:
			priv_test_garbage(a);
			break;
		default:
			daemon_signal_stops(l, si.ssi_signo);
			break;
		}
	}
}

static int
signals_open(struct agent *a, struct mu_err *err)
{
	static const int signals[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR2 };

	/* Blocked before Paho starts its threads (daemon.h). */
	return daemon_signals_open(a->loop, signals, sizeof(signals) / sizeof(signals[0]),
	    on_signal, a, &a->sigfd, err);
}

/* ---- timers ----------------------------------------------------------- */

static void
prune_fired(struct loop *l, uint64_t id, void *arg)
{
	struct agent *a = arg;

	(void)id;
	seen_prune(&a->par.seen, now_wall_ms());
	modopen_local_expire(a);
	loop_add_timer(l, PRUNE_INTERVAL_MS, prune_fired, a);
}

/* ---- start-up --------------------------------------------------------- */

/* Ask the runner its version, before any thread exists. */
static void
probe_runner(struct agent *a)
{
	char buf[128] = "", *v;
	int p[2], st;
	ssize_t n;
	pid_t pid;

	snprintf(a->par.runner_version, sizeof(a->par.runner_version), "unknown");
	if (pipe2(p, O_CLOEXEC) == -1)
		return;
	if ((pid = fork()) == 0) {
		char *argv[] = { a->cfg.runner, "--version", NULL }, *envp[] = { NULL };

		dup2(p[1], 1);
		execve(a->cfg.runner, argv, envp);
		_exit(127);
	}
	close(p[1]);
	n = pid > 0 ? read(p[0], buf, sizeof(buf) - 1) : -1;
	close(p[0]);
	if (pid > 0)
		waitpid(pid, &st, 0);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	/* "muster-runner 0.1.0 (module ABI 1)": the version is the second
	 * word, not the last one. */
	v = strchr(buf, ' ');
	if (v != NULL) {
		v++;
		v[strcspn(v, " ")] = '\0';
	}
	if (v && version_valid(v))
		snprintf(a->par.runner_version, sizeof(a->par.runner_version), "%s", v);
	else
		log_warnx("runner %s did not tell its version", a->cfg.runner);
}

/*
 * design.md §8: runners run as run_as, under a seccomp filter, each in a PID
 * namespace of its own so nothing they start survives them.  Only root can
 * switch users or make namespaces; as anyone else runners run as we do,
 * in a process group, and the log says so.
 */
/* [limits] writable: each must be a folder now; a job would fail to
 * start otherwise (lib/subproc.c binds each). */
static int
runner_writable(struct agent *a, struct mu_err *err)
{
	const char *bad;
	struct stat st;
	int i;

	snprintf(a->par.writable_buf, sizeof(a->par.writable_buf), "%s", a->cfg.writable);
	a->par.nwritable = config_writable(a->par.writable_buf, a->par.writable,
	    CONF_WRITABLE_MAX, &bad);
	if (a->par.nwritable < 0)
		return mu_errf(err, MU_EINVAL, "[limits] writable: %s", bad ? bad : "too many");
	for (i = 0; i < a->par.nwritable; i++) {
		if (stat(a->par.writable[i], &st) == -1)
			return mu_errf(err, MU_EINVAL, "[limits] writable: %s: %s",
			    a->par.writable[i], strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return mu_errf(err, MU_EINVAL, "[limits] writable: %s: not a folder",
			    a->par.writable[i]);
	}
	return MU_OK;
}

static int
runner_confinement(struct agent *a, struct mu_err *err)
{
	int rc;

	if ((rc = spawn_filter_build(&a->par.runner_filter, false, err)) != MU_OK ||
	    (rc = spawn_filter_build(&a->par.runner_filter_no_inet, true, err)) != MU_OK ||
	    (rc = runner_writable(a, err)) != MU_OK)
		return rc;
	/* Runners exec this fd: the runner's user need not be able to walk
	 * the path to it, only to execute the file. */
	if ((a->par.runner_fd = open(a->cfg.runner, O_PATH | O_CLOEXEC)) == -1)
		log_warnx("runner %s: %s (runs will fail)", a->cfg.runner, strerror(errno));
	a->par.switch_user = a->par.confined = geteuid() == 0;
	/* A uid of its own per job (lib/jobuid.h); only root can switch. */
	if (a->par.confined && a->cfg.job_uid_count) {
		if ((rc = jobuid_check(a->cfg.job_uid_first, a->cfg.job_uid_count,
		    a->cfg.max_jobs, err)) != MU_OK)
			return rc;
		jobuid_init(&a->par.jobuids, a->cfg.job_uid_first, a->cfg.job_uid_count);
		/* Not a self-test: the records outlive it, and a version before
		 * them that stays live would, at its next start, find the range
		 * named and refuse it. */
		if (!a->selftest)
			userdb_start(a);
	}
	/* Said once: a run_as set for every job that job_uids overrides. */
	if (a->par.confined && a->par.jobuids.count && strcmp(a->cfg.run_as, "muster-job") != 0)
		log_warnx("[limits] run_as %s is not used: [limits] job_uids gives each job a "
		    "uid of its own (job_uids = none runs jobs as %s)", a->cfg.run_as,
		    a->cfg.run_as);
	if (a->par.confined && a->par.jobuids.count)
		log_notice("runners: a uid of their own from %u-%u unless a policy rule "
		    "names a user, seccomp filter (%u instructions), a PID namespace each "
		    "(all they start dies with them), a mount and IPC namespace each "
		    "(private /tmp), at most %d processes", (unsigned)a->par.jobuids.first,
		    (unsigned)(a->par.jobuids.first + a->par.jobuids.count - 1), a->par.runner_filter.len,
		    a->cfg.processes);
	else if (a->par.confined)
		log_notice("runners: user %s unless a policy rule names another, seccomp "
		    "filter (%u instructions), a PID namespace each (all they start dies "
		    "with them), a mount and IPC namespace each (private /tmp)", a->cfg.run_as,
		    a->par.runner_filter.len);
	else
		log_notice("not running as root: run_as (default %s) is ignored; runners run "
		    "as this user under the seccomp filter, in a process group (no PID "
		    "namespace)", a->cfg.run_as);
	if (spawn_scope_available())
		log_info("runners: a Landlock domain each: no abstract Unix socket and no "
		    "signal outside their own job");
	else
		log_notice("runners: this kernel has no Landlock scopes (Linux 6.12): jobs "
		    "that share a uid (a policy run_as, job_uids = none) can signal each "
		    "other and connect to each other's abstract Unix sockets");
	return MU_OK;
}

static int
agent_open(struct agent *a, struct mu_err *err)
{
	int rc;

	a->started_at = now_wall_ms();
	a->par.wake_fd = a->sigfd = a->par.runner_fd = a->par.seq_fd = -1;
	/* No channel yet: a failure before priv_start() must not take fd 0
	 * for one at shutdown. */
	a->par.to_net.fd = a->net.to_parent.fd = -1;
	snprintf(a->root, sizeof(a->root), "%s", a->cfg.broker.topic_root);
	if ((a->loop = loop_new()) == NULL)
		return mu_errf(err, MU_ENOMEM, "out of memory");
	/* First: a version that keeps dying is rolled back before it can do
	 * anything else (design.md §5). */
	if (!a->selftest && (rc = update_boot(a, a->par.upd.argv, err)) != MU_OK)
		return rc;
	if ((rc = signals_open(a, err)) != MU_OK)
		return rc;
	if ((rc = keyring_load_dir(&a->par.operators, a->cfg.operators, key_warn, a, err)) != MU_OK)
		return rc;
	if (a->par.operators.nkeys == 0)
		log_warnx("no operator keys in %s: every job will be refused", a->cfg.operators);
	if ((rc = intake_policy_load(&a->cfg, &a->par.policy, err)) != MU_OK)
		return rc;
	if (a->par.policy.present)
		log_notice("policy %s: %zu rules", a->par.policy.path, a->par.policy.nrules);
	else
		log_notice("no policy at %s: every trusted key may do everything",
		    a->par.policy.path);
	if ((rc = runner_confinement(a, err)) != MU_OK)
		return rc;
	if ((rc = net_state_prepare(a, err)) != MU_OK ||
	    /* As root the spool is the network process's (priv_start()). */
	    (rc = (geteuid() == 0 ? spool_read : spool_open)(&a->spool, a->net_dir,
	    a->cfg.state_dir, err)) != MU_OK ||
	    (rc = seen_open(&a->par.seen, a->cfg.state_dir, now_wall_ms(), err)) != MU_OK)
		return rc;
	probe_runner(a);
	/* Before any job: filters read them.  Without them (out of memory,
	 * an os-release value over the bounds) filters match nothing. */
	if (facts_start(a, err) != MU_OK)
		log_err("facts: %s", err->msg);
	/* A self-test's nonce, made here when none was given: the network
	 * process gets it at its exec, the request we sign carries it. */
	if (a->selftest && a->selftest_nonce[0] == '\0' &&
	    (rc = selftest_nonce_make(a)) != MU_OK)
		return mu_errf(err, rc, "self-test: no randomness for a nonce");
	if ((rc = wake_open(a, err)) != MU_OK ||
	    (rc = priv_start(a, err)) != MU_OK)
		return rc;
	/* After priv_start: the results of the journal go to the network
	 * process, which sends them when connected. */
	intake_interrupted(a);
	/* Split, net_spawn() did it: the will, the goodbye, a request. */
	if (a->role == ROLE_BOTH)
		update_net_started(a);
	if (!a->selftest)
		update_started(a);
	return MU_OK;
}

int
agent_main(struct agent *a)
{
	struct mu_err err;

	if (agent_open(a, &err) != MU_OK) {
		log_err("%s", err.msg);
		agent_shutdown(a);
		return 1;
	}
	log_notice("musterd %s started as host %s (%zu operator keys, %d groups)",
	    AGENT_VERSION, a->cfg.host, a->par.operators.nkeys, a->cfg.ngroups);
	loop_add_timer(a->loop, PRUNE_INTERVAL_MS, prune_fired, a);
	/* Starved on purpose when the network process keeps failing (priv.c). */
	a->par.watchdog.starved = &a->par.watchdog_starved;
	daemon_watchdog_start(a->loop, &a->par.watchdog);
	/* Split in two, the network process says when it is ready. */
	if (a->role == ROLE_BOTH)
		agent_ready(a);
	else
		agent_status(a, "starting the network process");
	if (loop_run(a->loop) != 0)
		log_err("event loop failed: %s", strerror(errno));
	sd_notify(0, "STOPPING=1");
	agent_shutdown(a);
	return a->selftest ? a->selftest_rc : a->exit_rc;
}

void
agent_shutdown(struct agent *a)
{
	a->stopping = true;
	if (a->loop)
		run_interrupt_all(a);
	/* The goodbye as of now (sign.c), before the network process stops. */
	if (!a->selftest && a->role != ROLE_NET)
		sign_status(a, PRIV_STATUS_GOODBYE);
	/* The interrupted runs' results reach the network process first. */
	if (a->role == ROLE_BOTH && a->loop) {
		priv_drain(a);
		net_stop(a);
	}
	priv_stop(a);
	priv_free(a);
	update_free(a);
	wake_close(a);
	spool_close(&a->spool);
	seen_close(&a->par.seen);
	keyring_free(&a->par.operators);
	spawn_filter_free(&a->par.runner_filter);
	spawn_filter_free(&a->par.runner_filter_no_inet);
	if (a->par.runner_fd > 0)
		close(a->par.runner_fd);
	policy_free(&a->par.policy);
	facts_stop(a);
	free(a->net.facts);
	if (a->sigfd != -1)
		close(a->sigfd);
	for (int i = 0; i < PRIV_NSTATUS; i++)
		free(a->net.status[i]);
	free(a->net.selftest_req);
	loop_free(a->loop);
	a->loop = NULL;
}

/* ---- main ------------------------------------------------------------- */

/* The TLS pair: readable, and the key is the certificate's. */
static int
tls_pair_check(const char *key_path, const char *cert_path, struct mu_err *err)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	FILE *f;
	int ok;

	if ((f = fopen(cert_path, "re")) != NULL) {
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (x == NULL) {
		ERR_clear_error();
		return mu_errf(err, MU_EIO, "%s: %s", cert_path, errno ? strerror(errno) :
		    "not a PEM certificate");
	}
	if ((f = fopen(key_path, "re")) != NULL) {
		key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	ok = key != NULL && X509_check_private_key(x, key) == 1;
	EVP_PKEY_free(key);
	X509_free(x);
	ERR_clear_error();
	if (!ok)
		return mu_errf(err, MU_EINVAL, "%s: %s", key_path, key == NULL ?
		    "cannot read a PEM private key" : "not the key of the certificate");
	return MU_OK;
}

/*
 * What the service will need beyond a file that parses (issue 19), checked
 * as the service checks it: the TLS files as root reads them for the
 * network process (key and certificate a pair), the users, the runner, the
 * folders.  The first problem, with the file it is about.
 */
static int
check_service_needs(const struct agent_config *c, struct mu_err *err)
{
	struct hostsig_signer *signer;
	struct passwd *pw;
	struct stat st;
	char parent[CONF_PATH_MAX], *slash;
	int rc;

	if (c->broker.ca[0] && access(c->broker.ca, R_OK) != 0)
		return mu_errf(err, MU_EIO, "[broker] ca %s: %s", c->broker.ca, strerror(errno));
	if (c->broker.cert[0] || c->broker.key[0]) {
		errno = 0;
		if ((rc = tls_pair_check(c->broker.key, c->broker.cert, err)) != MU_OK)
			return mu_errf(err, rc, "[broker] key/cert: %.200s%s", err->msg,
			    geteuid() != 0 ? " (the service reads them as root: run "
			    "--check-config as root)" : "");
	}
	if (geteuid() == 0) {
		if ((pw = getpwnam(c->user)) == NULL || pw->pw_uid == 0)
			return mu_errf(err, MU_EINVAL, "[agent] user %s: %s", c->user,
			    pw ? "is root" : "no such user");
		if (getpwnam(c->run_as) == NULL)
			return mu_errf(err, MU_EINVAL, "[limits] run_as %s: no such user",
			    c->run_as);
		if ((rc = jobuid_check(c->job_uid_first, c->job_uid_count, c->max_jobs,
		    err)) != MU_OK)
			return rc;
	}
	/* The host signing key: the parent's alone, a signing certificate
	 * (design.md §3), for this host. */
	if (c->sign_key[0] || c->sign_cert[0]) {	/* none: as the TLS pair above */
		pw = geteuid() == 0 ? getpwnam(c->user) : NULL;
		if ((rc = sign_key_private(c->sign_key, pw != NULL, pw ? pw->pw_uid : 0,
		    c->user, err)) != MU_OK)
			return rc;
		if ((rc = hostsig_signer_load(c->sign_key, c->sign_cert, &signer, err)) != MU_OK)
			return mu_errf(err, rc, "[agent] sign_key/sign_cert: %.300s", err->msg);
		hostsig_signer_free(signer);
	}
	if (access(c->runner, X_OK) != 0)
		return mu_errf(err, MU_EIO, "[agent] runner %s: %s", c->runner, strerror(errno));
	if (stat(c->state_dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return mu_errf(err, MU_EIO, "[agent] state_dir %s: not a folder",
			    c->state_dir);
	} else {
		snprintf(parent, sizeof(parent), "%s", c->state_dir);
		if ((slash = strrchr(parent, '/')) != NULL && slash != parent)
			*slash = '\0';
		if (access(parent, W_OK | X_OK) != 0)
			return mu_errf(err, MU_EIO, "[agent] state_dir %s cannot be made: %s: %s",
			    c->state_dir, parent, strerror(errno));
	}
	if (access(c->operators, R_OK | X_OK) != 0)
		return mu_errf(err, MU_EIO, "[trust] operators %s: %s", c->operators,
		    strerror(errno));
	return MU_OK;
}

static int
check_config(const char *path)
{
	struct agent_config c;
	struct mu_err err;

	struct policy p;

	config_agent_defaults(&c);
	if (config_agent_load(&c, path, &err) != MU_OK ||
	    config_agent_identity(&c, path, &err) != MU_OK ||
	    check_service_needs(&c, &err) != MU_OK ||
	    intake_policy_load(&c, &p, &err) != MU_OK) {
		fprintf(stderr, "musterd: %s\n", err.msg);
		return 1;
	}
	printf("musterd: %s: ok (host %s)\n", path, c.host);
	policy_free(&p);
	return 0;
}

/* A self-test lives in state_dir/selftest (the live agent made it empty),
 * without a wake port: it shares nothing with the agent it may replace. */
static int
selftest_setup(struct agent_config *c)
{
	char dir[CONF_PATH_MAX];

	if (snprintf(dir, sizeof(dir), "%s/selftest", c->state_dir) >= (int)sizeof(dir)) {
		log_err("self-test: state_dir too long");
		return -1;
	}
	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		log_err("self-test: %s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(c->state_dir, sizeof(c->state_dir), "%s", dir);
	c->wake_port = 0;
	return 0;
}

/* musterd --net FDS: the network process, exec'ed by the parent (priv.c). */
static int
net_process(struct agent *a, const char *fds)
{
	struct mu_err err;
	int rc;

	a->started_at = now_wall_ms();
	a->par.wake_fd = a->sigfd = -1;
	snprintf(a->root, sizeof(a->root), "%s", a->cfg.broker.topic_root);
	if ((a->loop = loop_new()) == NULL)
		return 1;
	if (signals_open(a, &err) != MU_OK) {
		log_err("%s", err.msg);
		return 1;
	}
	rc = net_main(a, fds);
	if (rc == 0 && a->selftest)
		rc = a->selftest_rc;
	close(a->sigfd);
	for (int i = 0; i < PRIV_NSTATUS; i++)
		free(a->net.status[i]);
	free(a->net.selftest_req);
	free(a->net.facts);
	loop_free(a->loop);
	/*
	 * Paho's threads may still be inside OpenSSL when exit handlers run
	 * OPENSSL_cleanup(), which then crashes now and then (seen under
	 * ASan): everything of ours is closed and flushed, so leave without
	 * them - after the leak check a sanitized build would have made.
	 */
	fflush(NULL);
#if defined(__SANITIZE_ADDRESS__)
	__lsan_do_leak_check();
#endif
	_exit(rc);
}

/* --nonce-fd N: the self-test nonce from the pipe its starter filled
 * (nonce_pipe()), read once and closed, so no later exec inherits it. */
static int
nonce_read(struct agent *a, int fd)
{
	char buf[WIRE_MAX_NONCE + 2];
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(buf) - 1 &&
	    ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0 ||
	    (n == -1 && errno == EINTR)))
		if (n > 0)
			got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	if (got >= sizeof(a->selftest_nonce) || !nonce_valid(buf))
		return -1;
	memcpy(a->selftest_nonce, buf, got + 1);
	return 0;
}

/* musterd's options beyond those of every daemon (daemon_options()). */
struct own_opts {
	struct agent *a;
	bool foreground;
	const char *net, *runner;
};

static int
own_opt(int o, const char *arg, void *ctx)
{
	struct own_opts *own = ctx;
	char *end;
	long fd;

	switch (o) {
	case 'f':
		own->foreground = true;
		break;
	case 'N':
		own->net = arg;
		break;
	case 'S':
		own->a->selftest = true;
		break;
	case 'R':
		own->runner = arg;
		break;
	case 'n':	/* from a live agent older than --nonce-fd */
		if (!nonce_valid(arg))
			return -1;
		snprintf(own->a->selftest_nonce, sizeof(own->a->selftest_nonce), "%s", arg);
		break;
	case 'F':
		errno = 0;
		fd = strtol(arg, &end, 10);
		if (errno || *end || fd < 3 || fd > 65535)
			return -1;
		return nonce_read(own->a, (int)fd);
	case 'W':
		errno = 0;
		fd = strtol(arg, &end, 10);
		if (errno || *end || fd < 3 || fd > 65535)
			return -1;
		own->a->par.wake_fd_inherited = (int)fd;
		break;
	default:
		return -1;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "net", required_argument, NULL, 'N' },	/* internal (priv.c) */
		/* internal (update.c): a staged version tests itself; the
		 * listener handed over by the version it replaces */
		{ "self-test", no_argument, NULL, 'S' },
		{ "runner", required_argument, NULL, 'R' },
		{ "wake-fd", required_argument, NULL, 'W' },
		{ "nonce", required_argument, NULL, 'n' },
		{ "nonce-fd", required_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	static struct agent agent;	/* the one agent of this process */
	struct own_opts own = { .a = &agent };
	const struct daemon_options o = {
		.name = "musterd", .version = AGENT_VERSION, .usage = usage,
		.check = check_config, .conf_path = agent.conf_path,
		.conf_path_size = sizeof(agent.conf_path), .take = own_opt, .ctx = &own,
	};
	struct mu_err err;
	int rc;

	agent.par.wake_fd_inherited = -1;
	agent.selftest_rc = 1;	/* no verdict: failed */
	agent.par.upd.argv = argv;
	snprintf(agent.conf_path, sizeof(agent.conf_path), "%s", AGENT_CONF_DEFAULT);
	if ((rc = daemon_options(argc, argv, "c:fVh", opts, &o)) != DAEMON_RUN)
		return rc;
	config_agent_defaults(&agent.cfg);
	if (config_agent_load(&agent.cfg, agent.conf_path, &err) != MU_OK ||
	    config_agent_identity(&agent.cfg, agent.conf_path, &err) != MU_OK) {
		fprintf(stderr, "musterd: %s\n", err.msg);
		return 1;
	}
	log_init("musterd", agent.cfg.log_level);
	/* journald stamps what it gets; a file or a terminal does not. */
	log_timestamps(!log_to_journal());
	if (own.runner)
		snprintf(agent.cfg.runner, sizeof(agent.cfg.runner), "%s", own.runner);
	if (agent.selftest && selftest_setup(&agent.cfg) != 0)
		return 1;
	snprintf(agent.net_dir, sizeof(agent.net_dir), "%s/net", agent.cfg.state_dir);
	if (own.net)
		return net_process(&agent, own.net);
	/*
	 * A fixed mmap threshold: a big message (a module, or a job envelope
	 * dropped for max_job) is mmap()ed and given back on free().  glibc's
	 * default raises the threshold after each such free, so the next big
	 * buffer would land in a heap arena and stay resident.
	 */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	/* Under systemd (or when asked) stay attached; otherwise detach the
	 * traditional way, keeping stderr for the log. */
	if (!own.foreground && getenv("INVOCATION_ID") == NULL && daemon(0, 1) == -1)
		fatal("daemon");
	return agent_main(&agent);
}
