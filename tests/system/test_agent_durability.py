# SPDX-License-Identifier: Apache-2.0
"""Exactly one result per accepted job and host (design.md §3), across broker
restarts, a broker that lost its state, and an agent killed with SIGKILL.

The observer keeps a persistent MQTT session, so what the agent publishes
while the observer is cut off by a broker restart is queued for it.
"Exactly once" is proved with a control: once the agent's spool is empty
(every result acknowledged, nothing left to resend) a ping goes through the
same agent, broker and observer, and only then are the results counted -
a copy published earlier would have arrived before the ping's answer.
"""
import os
import secrets
import signal
import time

import pytest

from muster_fixtures import (
    Client, assert_no_sanitizer_reports, broker_received, install_any_modules,
    journaled_runs, new_job, now_ms, proc_alive, runner_pid, send_job, spool_files,
    topic, wait_until,
)

HOST = "h1"
# Quick reconnects, no splay: these scenarios time jobs against the
# agent's return (the splay has its own test in test_agent_session.py).
FAST_RETRY = {"broker": {"retry_min": "200ms", "retry_max": "1s", "reconnect_splay": "0"}}


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    """Agents stop before this runs: their logs are checked for ASan/UBSan."""
    yield
    assert_no_sanitizer_reports()


class Observer:
    """An operator client with a persistent session on results/+/h1 that
    survives broker restarts (reconnect() after the broker is back)."""

    def __init__(self, broker):
        self.broker = broker
        self.client_id = f"obs-{secrets.token_hex(4)}"
        self.msgs = []
        self.c = None
        self.reconnect(first=True)

    def reconnect(self, first=False):
        if self.c is not None:
            self.msgs += self.c.pending()
            self.c.close()
        # clean_start off even the first time: Mosquitto saves only such
        # sessions in its database.
        self.c = Client(self.broker, "op:alice", client_id=self.client_id,
                        clean_start=False, session_expiry=600)
        if first:
            self.c.subscribe(topic("results", "+", HOST), qos=1)

    def take(self, timeout):
        """All messages so far, waiting up to timeout for a first one."""
        m = self.c.get(timeout)
        if m is not None:
            self.msgs.append(m)
        self.msgs += self.c.collect(0)
        out, self.msgs = self.msgs, []
        return out

    def close(self):
        if self.c is not None:
            self.c.close()


@pytest.fixture
def observer(broker):
    o = Observer(broker)
    yield o
    o.close()


def job_of(m):
    return m.topic.split("/")[-2]


def wait_results(obs, want, timeout):
    """Results (decoded, in arrival order) until every job in want has one."""
    got = []
    deadline = time.monotonic() + timeout
    while not want <= {r["job"] for r in got}:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        got += [m.decode() for m in obs.take(min(left, 0.5))]
    return got


def settle_and_control(a, obs, operator, broker, timeout=15):
    """Wait until the agent holds no result, then a ping round trip; returns
    every result that arrived up to the ping's answer (the ping excluded)."""
    wait_until(lambda: not spool_files(a), timeout,
               what="the agent's spool to drain")
    ping = new_job("ping", f"host/{HOST}")
    with broker.client("op:alice") as op:
        send_job(op, operator, ping)
    got = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ms = obs.take(0.5)
        got += [m.decode() for m in ms]
        if any(r["job"] == ping["id"] for r in got):
            break
    else:
        raise AssertionError("control ping got no answer:\n" + a.log()[-3000:])
    return [r for r in got if r["job"] != ping["id"]]


def assert_once_each(results, jobs, broker):
    counts = {j: 0 for j in jobs}
    for r in results:
        counts[r["job"]] = counts.get(r["job"], 0) + 1
    sent = {j: broker_received(broker, topic("results", j, HOST), HOST)
            for j in counts}
    assert all(n == 1 for n in counts.values()), \
        f"results per job {counts}; PUBLISHes the broker got {sent}"


def test_broker_restart_while_jobs_run_gives_each_result_once(
        agents, observer, broker, operator):
    a = agents(HOST, max_jobs=5, extra=FAST_RETRY, wake_port=0)
    install_any_modules(a, "probe")
    a.start()
    # They finish before, during and after the outage (the agent is back
    # some 2-3 s after the broker: back-off plus Paho's connect loop).
    jobs = [new_job("run", f"host/{HOST}", module="probe", timeout_ms=20000,
                    args={"cmd": ["sleep", f"{d:.1f}"]})
            for d in (0.5, 1.6, 2.0, 5.0, 5.5)]
    with broker.client("op:alice") as op:
        for j in jobs:
            send_job(op, operator, j)
    for j in jobs:
        runner_pid(a, j["id"])
    time.sleep(1.0)
    down_ms = now_ms()
    broker.restart(down=0.8)
    up_ms = now_ms()
    observer.reconnect()
    ids = {j["id"] for j in jobs}
    got = wait_results(observer, ids, 20)
    got += settle_and_control(a, observer, operator, broker)
    assert {r["job"] for r in got} == ids, (got, a.log()[-3000:])
    assert all(r["status"] == "pass" for r in got), got
    assert_once_each(got, ids, broker)
    log = a.log()
    assert "connection lost" in log
    back = log.index("connected to the broker (session resumed)")
    fin = sorted(r["finished_at"] for r in got)
    assert fin[0] < down_ms < fin[1] < up_ms, (down_ms, up_ms, fin)
    # ... and two after the agent was back.
    assert all(log.index(f"job {j['id']}: pass") > back for j in jobs[3:]), log


def test_result_finished_while_broker_down_is_delivered_once(
        agents, observer, broker, operator):
    a = agents(HOST, extra=FAST_RETRY, wake_port=0)
    install_any_modules(a, "probe")
    a.start()
    body = new_job("run", f"host/{HOST}", module="probe", timeout_ms=20000,
                   args={"cmd": ["sleep", "1"]})
    with broker.client("op:alice") as op:
        send_job(op, operator, body)
    runner_pid(a, body["id"])		# it runs
    broker.stop()
    down_ms = int(time.time() * 1000)
    # It finishes with nobody to tell: the result waits in the spool.
    wait_until(lambda: f"job {body['id']}: pass" in a.log(), 10,
               what="the job to finish")
    # (The log line comes just before the result is spooled.)
    wait_until(lambda: len(spool_files(a)) == 1, 5, what="the spooled result")
    # What waits there is this job's result (nothing can reach the
    # observer while the broker is down, so that is not worth asking).
    assert body["id"].encode() in spool_files(a)[0].read_bytes()
    broker.start()
    up_ms = int(time.time() * 1000)
    observer.reconnect()
    got = wait_results(observer, {body["id"]}, 15)
    got += settle_and_control(a, observer, operator, broker)
    assert_once_each(got, [body["id"]], broker)
    r = got[0]
    assert r["status"] == "pass" and down_ms < r["finished_at"] < up_ms, r


def test_broker_that_lost_its_state_still_gets_each_result_once(
        agents, observer, broker, operator):
    """The agent publishes a result the broker never reads (stopped), then
    the broker dies and comes back without its database: no session, and
    Paho drops what it had in flight.  The spool still delivers it, once.
    A long back-off and a poke make the agent reconnect only after the
    observer is back."""
    a = agents(HOST, extra={"broker": {"retry_min": "60s",
                                       "retry_max": "60s"}})
    install_any_modules(a, "probe")
    a.start()
    body = new_job("run", f"host/{HOST}", module="probe", timeout_ms=20000,
                   args={"cmd": ["sleep", "0.5"]})
    t = topic("results", body["id"], HOST)
    with broker.client("op:alice") as op:
        send_job(op, operator, body)
    runner_pid(a, body["id"])
    broker.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: f"job {body['id']}: pass" in a.log(), 10,
                   what="the job to finish")
        wait_until(lambda: len(spool_files(a)) == 1, 5,
                   what="the spooled result")
        time.sleep(0.2)		# the PUBLISH goes into the socket
    finally:
        broker.kill()		# SIGKILL works on a stopped process
    assert len(spool_files(a)) == 1, "acknowledged by a stopped broker?"
    for f in broker.data_dir.glob("*.db"):
        os.unlink(f)
    wait_until(lambda: "connection lost" in a.log(), 10, what="the loss")
    broker.start()
    observer.reconnect()
    observer.c.subscribe(topic("results", "+", HOST), qos=1)	# new session
    a.poke()
    got = wait_results(observer, {body["id"]}, 15)
    assert "session new" in a.log()
    got += settle_and_control(a, observer, operator, broker)
    assert_once_each(got, [body["id"]], broker)
    assert broker_received(broker, t, HOST) == 1


def test_agent_killed_while_job_runs_reports_interrupted_once(
        agents, observer, broker, operator):
    a = agents(HOST, wake_port=0)
    install_any_modules(a, "hang")
    a.start()
    body = new_job("run", f"host/{HOST}", module="hang", timeout_ms=30000)
    with broker.client("op:alice") as op:
        send_job(op, operator, body)
    pid = runner_pid(a, body["id"])
    assert proc_alive(pid)
    a.kill9()
    # PR_SET_PDEATHSIG: the runner does not outlive the agent.
    wait_until(lambda: not proc_alive(pid), 5, what="the orphaned runner to die")
    assert journaled_runs(a) == {body["id"]: "hang"}
    a.start()
    got = wait_results(observer, {body["id"]}, 15)
    got += settle_and_control(a, observer, operator, broker)
    assert_once_each(got, [body["id"]], broker)
    r = got[0]
    assert r["status"] == "interrupted" and r["module"] == "hang", r
    assert "restarted" in r["reason"]
    wait_until(lambda: journaled_runs(a) == {}, 5, what="the run's done mark")
    # A second restart does not report it again.
    a.restart()
    assert settle_and_control(a, observer, operator, broker) == []
