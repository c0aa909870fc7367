/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the network process's seccomp filter (agent/net/
 * netfilter.c): in a forked child (a filter cannot be taken off), each
 * denied call is first shown to work without the filter, then to fail
 * with it - on the thread that loaded it and on one started before (the
 * filter must reach Paho's threads) - while what the network process
 * needs (threads, fork and exec of gpg, TCP and Unix sockets) still works.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent.h"

/* Each check in the child exits with its own number when it fails. */
#define CHECK(n, cond) do { if (!(cond)) _exit(n); } while (0)

struct probe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int phase;	/* 0 wait, 1 go, 2 done */
	int setuid_errno, mknod_errno;
};

static void *
early_thread(void *arg)
{
	struct probe *p = arg;

	pthread_mutex_lock(&p->mu);
	while (p->phase == 0)
		pthread_cond_wait(&p->cv, &p->mu);
	p->setuid_errno = setuid(getuid()) == -1 ? errno : 0;
	p->mknod_errno = mkfifo("fifo-thread", 0600) == -1 ? errno : 0;
	p->phase = 2;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void *
noop(void *arg)
{
	return arg;
}

static int
run_true(void)
{
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	if (pid == -1 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
child(const char *dir)
{
	struct probe p = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -1, -1 };
	struct mu_err err;
	pthread_t t, t2;
	int fd;

	CHECK(2, chdir(dir) == 0);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	CHECK(3, pthread_create(&t, NULL, early_thread, &p) == 0);
	/* Controls: without the filter these work. */
	CHECK(4, setuid(getuid()) == 0);
	CHECK(5, mkfifo("fifo-control", 0600) == 0);
	CHECK(6, symlink("x", "link-control") == 0);

	CHECK(10, net_filter_install(&err) == MU_OK);
	CHECK(11, setuid(getuid()) == -1 && errno == EPERM);
	CHECK(12, setresgid(getgid(), getgid(), getgid()) == -1 && errno == EPERM);
	CHECK(13, mkfifo("fifo", 0600) == -1 && errno == EPERM);
	CHECK(14, symlink("x", "link") == -1 && errno == EPERM);
	CHECK(15, unshare(CLONE_NEWUSER) == -1 && errno == EPERM);
	CHECK(16, socket(AF_PACKET, SOCK_RAW, 0) == -1 && errno == EAFNOSUPPORT);
	CHECK(17, socket(AF_ALG, SOCK_SEQPACKET, 0) == -1 && errno == EAFNOSUPPORT);
	CHECK(18, socket(4242, SOCK_STREAM, 0) == -1 && errno == EAFNOSUPPORT);
#if !defined(__SANITIZE_ADDRESS__)
	/* Without the filter this succeeds (our parent becomes the tracer). */
	CHECK(19, ptrace(PTRACE_TRACEME, 0, NULL, NULL) == -1 && errno == EPERM);
#endif
	/* The thread started before the filter has it too (TSYNC). */
	pthread_mutex_lock(&p.mu);
	p.phase = 1;
	pthread_cond_broadcast(&p.cv);
	while (p.phase != 2)
		pthread_cond_wait(&p.cv, &p.mu);
	pthread_mutex_unlock(&p.mu);
	CHECK(20, p.setuid_errno == EPERM);
	CHECK(21, p.mknod_errno == EPERM);
	pthread_join(t, NULL);

	/* What it needs: threads, gpg's fork and exec, its sockets. */
	CHECK(30, pthread_create(&t2, NULL, noop, NULL) == 0 && pthread_join(t2, NULL) == 0);
	CHECK(31, run_true() == 0);
	CHECK(32, (fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 && close(fd) == 0);
	CHECK(33, (fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 && close(fd) == 0);
	CHECK(34, (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 && close(fd) == 0);
	CHECK(35, (fd = open("file", O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0 && close(fd) == 0);
	CHECK(36, rename("file", "file2") == 0 && unlink("file2") == 0);
	_exit(0);
}

static void
test_filter_denies_and_allows(void **state)
{
	char dir[] = "/tmp/test_agent_netfilter.XXXXXX", path[64];
	static const char *const names[] = { "fifo-control", "link-control", "fifo",
	    "link", "fifo-thread", "file", "file2" };
	size_t i;
	pid_t pid;
	int st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child(dir);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);	/* else: the failed CHECK's number */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_denies_and_allows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
