/* SPDX-License-Identifier: Apache-2.0 */
/*
 * netfilter.c - the network process's own seccomp filter (issue 22,
 * design.md §8), installed by net_main() once it is set up: privileges
 * dropped, state opened, MQTT session (and Paho's threads) started.
 *
 * A denylist, not an allowlist, and deliberately so: the network process
 * verifies signatures through GPGME, which forks and execs gpg (and gpg
 * may start gpg-agent); a seccomp filter is inherited across execve, so an
 * allowlist would have to cover every syscall of gpg, gpg-agent, the C
 * library's name service modules and OpenSSL, for every version Debian
 * ships - one missed call and signature checks fail in the field.  What
 * is denied here is what code execution in the network process could use
 * to reach further than the broker could: other processes (ptrace,
 * process_vm_*), the kernel's larger attack surfaces (namespaces, bpf,
 * io_uring, userfaultfd, perf, keyrings, module and kexec loading, odd
 * socket families), identity changes (the setuid family), terminals
 * (TIOCSTI) and the file types the parent's hardening guards against
 * (FIFOs and device nodes via mknod, symlinks).  execve stays allowed for
 * gpg; NO_NEW_PRIVS (net_drop()) keeps an exec from gaining anything.
 */
#include "agent.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <seccomp.h>

static const int net_denied[] = {
	/* other processes: the parent's and the runners' memory */
	SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
	SCMP_SYS(kcmp), SCMP_SYS(pidfd_getfd),
	/* mounts and namespaces */
	SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root), SCMP_SYS(chroot),
	SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(move_mount), SCMP_SYS(open_tree),
	SCMP_SYS(fsopen), SCMP_SYS(fsconfig), SCMP_SYS(fsmount), SCMP_SYS(fspick),
	SCMP_SYS(mount_setattr),
	/* the kernel's code and its larger surfaces */
	SCMP_SYS(init_module), SCMP_SYS(finit_module), SCMP_SYS(delete_module),
	SCMP_SYS(kexec_load), SCMP_SYS(kexec_file_load), SCMP_SYS(bpf),
	SCMP_SYS(perf_event_open), SCMP_SYS(userfaultfd), SCMP_SYS(io_uring_setup),
	SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register), SCMP_SYS(keyctl),
	SCMP_SYS(add_key), SCMP_SYS(request_key), SCMP_SYS(iopl), SCMP_SYS(ioperm),
	SCMP_SYS(open_by_handle_at), SCMP_SYS(name_to_handle_at),
	SCMP_SYS(fanotify_init), SCMP_SYS(lookup_dcookie),
	/* the host itself */
	SCMP_SYS(reboot), SCMP_SYS(swapon), SCMP_SYS(swapoff), SCMP_SYS(acct),
	SCMP_SYS(quotactl), SCMP_SYS(settimeofday), SCMP_SYS(clock_settime),
	SCMP_SYS(clock_adjtime), SCMP_SYS(adjtimex), SCMP_SYS(sethostname),
	SCMP_SYS(setdomainname), SCMP_SYS(syslog), SCMP_SYS(vhangup),
	/* identity: it dropped root for good (net_drop()) */
	SCMP_SYS(setuid), SCMP_SYS(setgid), SCMP_SYS(setreuid), SCMP_SYS(setregid),
	SCMP_SYS(setresuid), SCMP_SYS(setresgid), SCMP_SYS(setfsuid),
	SCMP_SYS(setfsgid), SCMP_SYS(setgroups),
	/* traps for the parent: FIFOs and devices (mknod), symlinks */
	SCMP_SYS(mknod), SCMP_SYS(mknodat), SCMP_SYS(symlink), SCMP_SYS(symlinkat),
};

/* clone() creating namespaces, one rule per flag (rules of one call are
 * or'ed); clone3() hides its flags in memory, so it answers ENOSYS and the
 * C library falls back to clone() (new Paho or gpgme threads, gpg's fork). */
static const unsigned long net_ns_flags[] = {
	CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
	CLONE_NEWNET, CLONE_NEWCGROUP,
};

static const unsigned long net_tty_denied[] = { TIOCSTI, TIOCLINUX };

/* Families it uses: the broker (AF_INET, AF_INET6), gpg-agent and the
 * name service (AF_UNIX), getaddrinfo()'s address check (AF_NETLINK). */
static bool
family_allowed(int f)
{
	return f == AF_UNIX || f == AF_INET || f == AF_INET6 || f == AF_NETLINK;
}

static int
net_filter_rules(scmp_filter_ctx ctx)
{
	size_t i;
	int f, rc = 0;

	for (i = 0; i < sizeof(net_denied) / sizeof(net_denied[0]) && rc == 0; i++) {
#if defined(__SANITIZE_ADDRESS__)
		/* LeakSanitizer stops the world with ptrace at exit (main.c
		 * net_process() runs the leak check). */
		if (net_denied[i] == SCMP_SYS(ptrace))
			continue;
#endif
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), net_denied[i], 0);
	}
	for (i = 0; i < sizeof(net_ns_flags) / sizeof(net_ns_flags[0]) && rc == 0; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, net_ns_flags[i], net_ns_flags[i]));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* The kernel reads the request as 32 bits: the mask keeps high bits
	 * set by the caller from slipping past the comparison. */
	for (i = 0; i < sizeof(net_tty_denied) / sizeof(net_tty_denied[0]) && rc == 0; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
		    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, net_tty_denied[i]));
	/* Every other family up to AF_MAX by name, then all above it. */
	for (f = 0; f <= AF_MAX && rc == 0; f++)
		if (!family_allowed(f))
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT),
			    SCMP_SYS(socket), 1,
			    SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffUL, (unsigned long)f));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
		    SCMP_A0(SCMP_CMP_GT, (unsigned long)AF_MAX));
	return rc;
}

/*
 * Load the filter on every thread of the process (TSYNC: Paho's threads
 * run already) and on all it starts or execs from now on.  A failure is
 * the caller's to report: the network process then stops rather than run
 * unfiltered.
 */
int
net_filter_install(struct mu_err *err)
{
	scmp_filter_ctx ctx;
	int rc;

	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL)
		return mu_errf(err, MU_ENOMEM, "seccomp_init failed");
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc == 0)
		rc = net_filter_rules(ctx);
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0)
		return mu_errf(err, MU_EIO, "the network process's seccomp filter: %s",
		    strerror(-rc));
	return MU_OK;
}
