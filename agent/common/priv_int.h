/* SPDX-License-Identifier: Apache-2.0 */
/*
 * priv_int.h - between the channel (priv.c) and the frames built on it
 * (priv_send.c); the rest of the agent sends through the priv_send_*()
 * functions of agent.h.
 *
 * Ownership: priv_chan_send() encodes m into the channel's own buffer at
 * once; the caller keeps m and everything it points to.
 */
#ifndef MUSTER_AGENT_PRIV_INT_H
#define MUSTER_AGENT_PRIV_INT_H

#include "agent.h"

/* Queue one frame on c (4-byte length, then the encoded m). */
int priv_chan_send(struct agent *a, struct chan *c, const struct priv_msg *m);

/* Who may send a type, and (accept, NULL: always) when the receiver
 * takes it; a frame from the wrong side ends the channel. */
enum priv_from { PRIV_FROM_NET = 1, PRIV_FROM_PARENT };

struct priv_rule {
	enum priv_from from;
	bool (*accept)(const struct agent *a);
};

extern const struct priv_rule priv_rules[PRIV_NTYPES];

/* m read on the parent's end (from_net) or the network process's: MU_OK
 * to handle it, MU_EINVAL when the other side may not send it, MU_ENOENT
 * when it is not taken in this state (dropped). */
int priv_rule_check(const struct agent *a, const struct priv_msg *m, bool from_net);

#endif
