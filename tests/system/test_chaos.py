# SPDX-License-Identifier: Apache-2.0
"""Chaos: a stream of group jobs while agents are SIGKILLed and restarted
and the broker restarts, all at random from one seed (design.md §3: exactly
one answer per (job, host), duplicates get no new answer).

Eight agents in three groups (two of them overlap, so half the hosts get
the jobs of two groups) take a few hundred jobs: pings, and runs of the
test module chaoslog, which appends "<job> <host>" to a shared log with one
O_APPEND write when it starts and then sleeps a little.  Meanwhile, from
random.Random(seed), agents are killed with SIGKILL (and started again a
few seconds later: jobs for their groups wait in their persistent
sessions), network processes alone are SIGKILLed (their parent starts
another), the broker is restarted (SIGTERM, so it keeps its sessions), and
the publisher re-sends jobs it already sent, as publishers do after a
reconnect.

When the faults stop and every agent is back, and after a drain, it checks:
- every (job, host) of a job's group has an answer, and only those;
- each (job, host) has one answer: the same result may arrive twice (QoS 1),
  a second, different one never (not even with the same status);
- statuses are the ones a fault can explain: a ping "pass"; a run "pass",
  or "interrupted" when that agent was SIGKILLed after the job was sent
  and before the restart that answered it;
- from chaoslog's log: no job ran twice on a host, a run answered "pass"
  ran exactly once there, and nothing ran on a host outside its group.

It fails on agents broken on purpose (tried by hand, not kept): one that
answers a duplicate delivery "rejected: replayed job id" (issue 10's old
behaviour: "different answers"), one that runs a duplicate again ("ran
twice"), one that never reports runs cut off by a kill ("no answer"), one
that answers runs it finished "interrupted" ("unexpected status").

The seed is printed; MUSTER_CHAOS_SEED=N repeats a run.  Run with -s to see
the counts: answers by status, duplicate deliveries, interrupted runs.
"""
import collections
import os
import pwd
import random
import secrets
import signal
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from muster_fixtures import (
    Agent, Broker, Client, all_procs, ConnectError, ForgedMessage,
    assert_no_sanitizer_reports, gen_pki, install_any_modules, is_sanitized, log_count,
    new_job, send_job, spool_files, topic, wait_until,
)

DEFAULT_SEED = 20261130
SEED = int(os.environ.get("MUSTER_CHAOS_SEED") or DEFAULT_SEED)

GROUPS = {
    "chaos-a": ["c1", "c2", "c3", "c4"],
    "chaos-b": ["c5", "c6", "c7", "c8"],
    "chaos-c": ["c2", "c4", "c6", "c8"],
}
HOSTS = sorted({h for hs in GROUPS.values() for h in hs})
N_JOBS = 300
CHAOS_SECONDS = 40		# the stream of jobs and faults
# At most, for the last answers after the faults (the sanitizer build is
# several times slower: eight agents, two processes each, on two cores).
DRAIN_SECONDS = 150 if is_sanitized() else 45
RUN_SHARE = 0.6			# of the jobs, runs of chaoslog (the rest pings)
BROKER_RESTARTS = 3
FAST_RETRY = {"broker": {"retry_min": "200ms", "retry_max": "1s", "reconnect_splay": "0"}}


def host_groups(host):
    return [g for g, hs in GROUPS.items() if host in hs]


class Observer:
    """An operator client with a persistent session on every result; it
    keeps what it received across broker restarts."""

    def __init__(self, broker):
        self.broker = broker
        self.client_id = f"chaos-obs-{secrets.token_hex(4)}"
        self.msgs = []
        self.c = None
        self.connect(first=True)

    def connect(self, first=False):
        if self.c is not None:
            self.msgs += self.c.pending()
            self.c.close()
            self.c = None
        self.c = Client(self.broker, "op:alice", client_id=self.client_id,
                        clean_start=False, session_expiry=3600)
        if first:
            self.c.subscribe(topic("results", "+", "+"), qos=1)

    def take(self):
        if self.c is not None:
            self.msgs += self.c.collect(0)
        out, self.msgs = self.msgs, []
        return out

    def close(self):
        if self.c is not None:
            self.c.close()


class Publisher:
    """Signs and sends jobs; after a broker restart, reconnects and re-sends
    what it is not sure the broker took."""

    def __init__(self, broker, key):
        self.broker, self.key = broker, key
        self.c = None
        self.sent = []		# every job body, in order of first send
        self.sent_ms = {}	# job id -> wall clock (ms) before its first send
        self.resent = 0		# deliberate second publishes

    def _client(self):
        if self.c is None or not self.c.connected:
            if self.c is not None:
                self.c.close()
            self.c = Client(self.broker, "op:alice")
        return self.c

    def send(self, body, again=False):
        if not again:
            self.sent_ms.setdefault(body["id"], int(time.time() * 1000))
        for attempt in range(3):
            try:
                send_job(self._client(), self.key, body)
                break
            except (ConnectError, TimeoutError):
                if self.c is not None:
                    self.c.close()
                self.c = None
                time.sleep(0.3)
        else:
            raise AssertionError(f"could not publish {body['id']}")
        if again:
            self.resent += 1
        else:
            self.sent.append(body)

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


@pytest.fixture
def world(tmp_path_factory, keys):
    """Its own PKI and broker (the chaos hosts stay out of the session's
    inventory), a log folder every runner user can write, and the agents."""
    pki = gen_pki(tmp_path_factory.mktemp("chaos-pki"),
                  hosts=[f"{h}:{','.join(host_groups(h))}" for h in HOSTS],
                  operators=["alice"])
    broker = Broker(pki, tmp_path_factory.mktemp("chaos-broker")).start()
    # Runners may run as another user than the test (a uid of their own per
    # job, when the agent is root): the log is made here, writable by all
    # (a runner's umask would keep the next job's uid out of a log it
    # made), and each agent's folder (chaoslog reads its host from
    # agent.conf) is outside pytest's 0700 tmp_path and outside /tmp (a
    # runner has a /tmp of its own).
    top = Path(tempfile.mkdtemp(prefix="muster-chaos-", dir="/run" if os.geteuid() == 0
                                else None))
    os.chmod(top, 0o755)
    # One log per host, log/HOST/runs.log, writable by all; each agent's
    # jobs may write only their own host's folder ([limits] writable:
    # everything else is read-only for a job's own uid), which is how
    # chaoslog tells its host.
    logdir = top / "log"
    logdir.mkdir()
    os.chmod(logdir, 0o755)
    for h in HOSTS:
        (logdir / h).mkdir()
        os.chmod(logdir / h, 0o777)
        (logdir / h / "runs.log").touch()
        os.chmod(logdir / h / "runs.log", 0o666)
    made = []
    try:
        for h in HOSTS:
            d = top / h
            d.mkdir()
            os.chmod(d, 0o755)
            a = Agent(h, broker, keys, d, groups=host_groups(h),
                      max_jobs=4, wake_port=0, log_level="info",
                      extra=dict(FAST_RETRY, limits={"writable": str(logdir / h)}),
                      sync_acl=False)
            install_any_modules(a, "chaoslog")
            made.append(a)
        yield broker, made, logdir
    finally:
        for a in made:
            a.cleanup()
        broker.stop()
        shutil.rmtree(top, ignore_errors=True)
    assert_no_sanitizer_reports()


def net_pid(agent):
    """The agent's network process (the child musterd of its parent), if
    it runs now."""
    kids = [p["pid"] for p in all_procs()
            if p["ppid"] == agent.pid and p["comm"] == "musterd"]
    return kids[0] if len(kids) == 1 else None


def diagnose(broker, agent):
    """What the broker saw of an agent that did not come back, and which
    musterd processes run: a stuck agent is told from a stray one."""
    lines = [ln for ln in broker.log_path.read_text(errors="replace").splitlines()
             if agent.name in ln]
    ps = subprocess.run(["ps", "-eo", "pid,ppid,user,etime,args"],
                        capture_output=True, text=True).stdout
    procs = [ln for ln in ps.splitlines() if "musterd" in ln]
    return ("broker log, last lines naming " + agent.name + ":\n" +
            "\n".join(lines[-40:]) + "\nmusterd processes:\n" + "\n".join(procs))


def chaos_job(rng, log_path, n):
    group = rng.choice(sorted(GROUPS))
    jid = f"chaos-{SEED}-{n:04d}"
    if rng.random() < RUN_SHARE:
        return new_job("run", f"group/{group}", id=jid, module="chaoslog",
                       timeout_ms=20000, ttl_s=600,
                       args={"log": str(log_path), "job": jid,
                             "sleep_ms": rng.randrange(100, 1500)})
    return new_job("ping", f"group/{group}", id=jid, ttl_s=600)


def test_chaos_one_answer_per_job_and_host(world, operator):
    broker, agents, log_path = world
    rng = random.Random(SEED)
    print(f"\nchaos seed {SEED} (MUSTER_CHAOS_SEED={SEED} repeats this run)")
    for a in agents:
        a.start(wait_online=False)
    for a in agents:
        a.wait_status("online", timeout=30)
    by_name = {a.name: a for a in agents}
    obs = Observer(broker)
    pub = Publisher(broker, operator)
    faults = collections.Counter()
    down_until = {}		# agent name -> monotonic time to start it again
    killed_ms = collections.defaultdict(list)	# agent -> wall clock (ms) of each SIGKILL
    broker_steps = set(rng.sample(range(N_JOBS // 10, N_JOBS - N_JOBS // 10),
                                  BROKER_RESTARTS))

    try:
        t0 = time.monotonic()
        step = CHAOS_SECONDS / N_JOBS
        for n in range(N_JOBS):
            # Agents whose time is up come back.
            now = time.monotonic()
            for name, t in list(down_until.items()):
                if now >= t:
                    by_name[name].start(wait_online=False)
                    del down_until[name]
                    faults["agent restarts"] += 1
            r = rng.random()
            if n in broker_steps:
                # The broker restarts (SIGTERM: it saves its sessions); the
                # publisher re-sends its last jobs, as a publisher that
                # lost its connection does.
                pub.close()
                broker.restart(down=rng.uniform(0.2, 2.0))
                faults["broker restarts"] += 1
                obs.connect()
                for body in pub.sent[-3:]:
                    pub.send(body, again=True)
            elif r < 0.035 and len(down_until) < 3:
                victim = rng.choice([h for h in HOSTS if h not in down_until])
                killed_ms[victim].append(int(time.time() * 1000))
                by_name[victim].kill9()
                down_until[victim] = time.monotonic() + rng.uniform(0.5, 4.0)
                faults["agent SIGKILLs"] += 1
            elif r < 0.065 and pub.sent:
                pub.send(rng.choice(pub.sent[-50:]), again=True)
            elif r < 0.085:
                # The network process alone dies (a crash, the OOM
                # killer): its parent starts another, and what the old one
                # had spooled or is handed again is answered once.
                victim = rng.choice([h for h in HOSTS if h not in down_until])
                pid = net_pid(by_name[victim])
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    faults["network process SIGKILLs"] += 1
            pub.send(chaos_job(rng, log_path, n))
            # Keep to the schedule, without drifting after a slow step.
            delay = t0 + (n + 1) * step - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        chaos_s = time.monotonic() - t0

        # The faults stop: every agent comes back.
        for name in list(down_until):
            by_name[name].start(wait_online=False)
            faults["agent restarts"] += 1
        down_until.clear()
        for a in agents:
            try:
                a.wait_status("online", timeout=30)
            except AssertionError as e:
                raise AssertionError(f"{e}\n{diagnose(broker, a)}") from None

        jobs = {b["id"]: b for b in pub.sent}
        want = {(j, h) for j, b in jobs.items()
                for h in GROUPS[b["target"].split("/", 1)[1]]}
        answers = collections.defaultdict(list)	# (job, host) -> bodies
        forged = []

        def absorb():
            for m in obs.take():
                try:
                    body = m.decode()
                except ForgedMessage as e:
                    forged.append((m.topic, str(e)))
                    continue
                answers[(body["job"], body["host"])].append(body)

        def all_answered():
            absorb()
            return want <= set(answers)

        def try_wait(pred, timeout, what):
            try:
                wait_until(pred, timeout, interval=0.2, what=what)
            except TimeoutError as e:
                drain_notes.append(str(e))

        drain_notes = []
        t1 = time.monotonic()
        try_wait(all_answered, DRAIN_SECONDS, "an answer for every (job, host)")
        # Then nothing is left to resend anywhere: every agent's spool is
        # empty, and a control ping to every host comes back after
        # whatever was still on its way.
        try_wait(lambda: not any(spool_files(a) for a in agents), 20,
                 "the agents' spools to drain")
        control = new_job("ping", "all", ttl_s=600)
        pub.send(control, again=True)

        def control_back():
            absorb()
            return all((control["id"], h) in answers for h in HOSTS)
        try_wait(control_back, 20, "the control ping's answers")
        time.sleep(1.0)
        absorb()
        drain_s = time.monotonic() - t1
    finally:
        pub.close()
        obs.close()
    for h in HOSTS:
        answers.pop((control["id"], h), None)

    # ---- what happened --------------------------------------------------
    runs = collections.Counter()		# (job, host) -> lines in the log
    stray = []
    log_owner = "-"
    for host_log in sorted(log_path.glob("*/runs.log")):
        uid = host_log.stat().st_uid
        try:
            log_owner = pwd.getpwuid(uid).pw_name
        except KeyError:			# a job's own uid: no entry
            log_owner = str(uid)
        for line in host_log.read_text().splitlines():
            f = line.split()
            if len(f) != 2 or f[1] != host_log.parent.name:
                stray.append(line)
                continue
            runs[(f[0], f[1])] += 1

    by_status = collections.Counter()
    redelivered = 0			# the same result received again
    conflicting = {}			# (job, host) -> answers that differ
    for key, bodies in answers.items():
        first = bodies[0]
        by_status[first["status"]] += 1
        for b in bodies[1:]:
            if b == first:
                redelivered += 1
            else:
                conflicting[key] = bodies
    def killed_while_it_could_run(j, h, r):
        """An "interrupted" is answered by the next start after the agent
        died with the run open (its finished_at is that start): h must
        have been SIGKILLed after the job was sent and before that."""
        return any(pub.sent_ms[j] <= t <= r["finished_at"] for t in killed_ms[h])

    missing = sorted(want - set(answers))
    unexpected = sorted(set(answers) - want)
    bad_status = {}
    for (j, h), bodies in answers.items():
        if (j, h) not in want:
            continue
        st = bodies[0]["status"]
        ok = {"ping": {"pass"}, "run": {"pass", "interrupted"}}[jobs[j]["kind"]]
        if st not in ok or (st == "interrupted" and
                            not killed_while_it_could_run(j, h, bodies[0])):
            bad_status[(j, h)] = bodies[0]
    ran_twice = {k: n for k, n in runs.items() if n > 1}
    pass_not_run = sorted(k for k, bodies in answers.items()
                          if k in want and jobs[k[0]]["kind"] == "run" and
                          bodies[0]["status"] == "pass" and runs.get(k) != 1)
    # A runner whose agent was SIGKILLed before the module read its host
    # from /proc logs "?" (its parent is gone; PDEATHSIG follows at once):
    # fine when that job has an "interrupted" answer, a problem otherwise.
    interrupted_jobs = {j for (j, h), bodies in answers.items()
                        if bodies[0]["status"] == "interrupted"}
    orphaned = sorted(k for k in runs if k[1] == "?" and k[0] in interrupted_jobs)
    ran_outside = sorted(k for k in runs if k not in want and k not in orphaned)
    agent_dups = sum(log_count(a, "duplicate delivery of an accepted id")
                     for a in agents)
    interrupted_runs = sum(1 for k, bodies in answers.items()
                           if bodies[0]["status"] == "interrupted")
    interrupted_ran = sum(1 for k, bodies in answers.items()
                          if bodies[0]["status"] == "interrupted" and runs.get(k))

    n_run = sum(1 for b in jobs.values() if b["kind"] == "run")
    print(f"chaos: {len(jobs)} jobs ({n_run} runs, {len(jobs) - n_run} pings) "
          f"to {len(HOSTS)} agents in {len(GROUPS)} groups, "
          f"{len(want)} (job, host) pairs; {chaos_s:.1f} s of chaos, "
          f"{drain_s:.1f} s to drain")
    print("faults: " + ", ".join(f"{v} {k}" for k, v in sorted(faults.items())))
    print("answers by status: " + ", ".join(
        f"{k} {v}" for k, v in sorted(by_status.items())))
    print(f"duplicate deliveries: {pub.resent} jobs re-published, "
          f"{agent_dups} duplicate job deliveries the agents logged (no answer), "
          f"{redelivered} results received again (same result)")
    print(f"interrupted: {interrupted_runs} runs ({interrupted_ran} of them had "
          f"started the module); runs logged: {sum(runs.values())} "
          f"(log written by runners as {log_owner})")
    print(f"bad: missing {len(missing)}, different answers {len(conflicting)}, "
          f"unexpected status {len(bad_status)}, ran twice {len(ran_twice)}, "
          f"pass without exactly one run {len(pass_not_run)}, "
          f"ran outside the group {len(ran_outside)} (and {len(orphaned)} runs cut off "
          f"before naming their host), unexpected answers "
          f"{len(unexpected)}, forged {len(forged)}")

    def show(k):
        j, h = k
        return (f"{j} on {h}: answers "
                f"{[(b['status'], b.get('reason')) for b in answers.get(k, [])]}, "
                f"runs logged {runs.get(k, 0)}")

    problems = []
    if missing:
        problems.append("no answer: " + "; ".join(show(k) for k in missing[:10]))
    if conflicting:
        problems.append("different answers: " + "; ".join(
            f"{k}: {v}" for k, v in list(conflicting.items())[:5]))
    if bad_status:
        problems.append("unexpected status: " + "; ".join(
            show(k) for k in list(bad_status)[:10]))
    if ran_twice:
        problems.append("ran twice: " + "; ".join(show(k) for k in ran_twice))
    if pass_not_run:
        problems.append("pass without exactly one run: " + "; ".join(
            show(k) for k in pass_not_run[:10]))
    if ran_outside or unexpected or stray:
        problems.append(f"outside the groups: ran {ran_outside[:10]}, answered "
                        f"{unexpected[:10]}, stray log lines {stray[:5]}")
    if forged:
        problems.append(f"forged results: {forged[:5]}")
    if drain_notes:
        problems.append("drain: " + "; ".join(drain_notes))
    assert not problems, f"seed {SEED}:\n" + "\n".join(problems)
    # The chaos did something: otherwise this test proves nothing.
    assert faults["agent SIGKILLs"] >= 2 and faults["broker restarts"] >= 1, faults
    assert sum(runs.values()) > 0 and by_status["pass"] > 0
