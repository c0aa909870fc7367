/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reap.c - the parent's one reaper: every child it has is reaped here, on
 * SIGCHLD from the main loop (main.c), and handed to its owner by pid:
 * the network process (common/priv.c), the staged self-test (update.c) or
 * a runner (run.c).  The owners never call waitpid(-1) themselves, so no
 * owner can reap another's child.  The network process reaps nothing:
 * gpgme reaps its own.
 */
#include "agent.h"

#include <sys/wait.h>

void
parent_reap(struct agent *a)
{
	struct run *r;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (a->role == ROLE_PARENT && pid == a->par.net_pid) {
			priv_net_exited(a, status);
			continue;
		}
		if (a->par.upd.child > 0 && pid == a->par.upd.child) {
			update_child_exited(a, status);
			continue;
		}
		for (r = a->par.runs; r && r->pid != pid; r = r->next)
			;
		if (r)
			run_exited(a, r, status);
	}
}
