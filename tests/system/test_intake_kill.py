# SPDX-License-Identifier: Apache-2.0
"""No job acknowledged by a host vanishes (issue 20.0, design.md §3).

The agent is stopped (SIGSTOP, by its MUSTER_TEST_STOP_AT hook) at one step
of a run job's intake, and then its parent or its network process is
killed (SIGKILL) right there:

  net-received     the network process has the message, not yet in its
                   inbox: not acknowledged, the broker sends it again
  net-inboxed      in the inbox (fdatasync'ed), the PUBACK not yet sent
  net-forwarding   acknowledged, not yet handed to the parent
  parent-verified  the parent has checked it, its id not yet recorded
  parent-flushed   its id in the flushed seen-set, nothing run yet

and, for the answer, net-spooled: the network process has the result in
its spool (fsync'ed), the parent not yet told.  A new network process finds
that file and is handed the result again: one answer, the spooled one.

Every time, the job gets exactly one answer: the agent started again (or
the replaced network process) answers it; a later control job's answer
proves that no second one was on its way.
"""
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from muster_fixtures import (
    TEST_MODULES_DIR, all_procs, collect_results, install_modules, log_count,
    new_job, proc_stat, send_job, topic, wait_until, watch_results,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the network process is a process of its own only as root "
           "(CI runs the suite as root)")

POINTS = ["net-received", "net-inboxed", "net-forwarding",
          "parent-verified", "parent-flushed"]


@pytest.fixture
def op(mqtt):
    return mqtt("op:alice")


def net_pid(agent):
    kids = [p["pid"] for p in all_procs()
            if p["ppid"] == agent.pid and p["comm"] == "musterd"]
    return kids[0] if len(kids) == 1 else None


def stopped(pid):
    s = proc_stat(pid)
    return s is not None and s["state"] in ("T", "t")


def answers(op, job_id, control_id):
    """Every further result of job_id that arrives before the control
    job's answer (the agent handles messages of one session in order)."""
    op.expect(topic("results", control_id, "h1"), timeout=30)
    return op.collect(0, topic=topic("results", job_id, "+"))


def agent_stopping_at(agents, request, point):
    """h1 running (with the escape module), set to stop at point once:
    the agent and the hook's flag file."""
    a = agents("h1", wake_port=0, extra={"broker": {"reconnect_splay": "0"}})
    install_modules(a, "escape", src=TEST_MODULES_DIR)
    # The flag file: reachable and removable by the network process's
    # user too (pytest's own folders are root's, 0700).
    flags = Path(tempfile.mkdtemp(prefix="muster-stop-"))
    request.addfinalizer(lambda: shutil.rmtree(flags, ignore_errors=True))
    os.chmod(flags, 0o777)
    flag = flags / point
    a.env = {"MUSTER_TEST_STOP_AT": f"{point}:{flag}"}
    a.start()
    flag.write_text("")
    os.chmod(flag, 0o666)
    return a, flag


@pytest.mark.parametrize("victim", ["parent", "net"])
@pytest.mark.parametrize("point", POINTS)
def test_killed_at_each_step_one_answer(agents, op, operator, request, point, victim):
    a, flag = agent_stopping_at(agents, request, point)

    body = new_job("run", "host/h1", module="escape", args={})
    watch_results(op, body["id"])
    send_job(op, operator, body)
    where = a.pid if point.startswith("parent") else None
    if where is None:
        where = wait_until(lambda: net_pid(a), 10, what="the network process")
    wait_until(lambda: stopped(where), 15, what=f"the agent to stop at {point}")
    assert not flag.exists()

    if victim == "parent":
        os.kill(a.pid, signal.SIGKILL)
        a.wait_exit(10)
        a.env = {}
        a.start()
    else:
        n = net_pid(a)
        os.kill(n, signal.SIGKILL)
        if point.startswith("parent"):
            os.kill(a.pid, signal.SIGCONT)
        wait_until(lambda: (net_pid(a) or n) != n, 20, what="a new network process")

    got = collect_results(op, body["id"], ["h1"], timeout=30)
    assert "h1" in got, f"{point}/{victim}: no answer\n{a.log()[-3000:]}"
    first = got["h1"]
    # A run killed with its parent after its id was recorded is answered
    # "interrupted" at the next start; every other case runs it.
    if point == "parent-flushed" and victim == "parent":
        assert first["status"] == "interrupted", first
    else:
        assert first["status"] == "pass", first
    control = new_job("ping", "host/h1")
    watch_results(op, control["id"])
    send_job(op, operator, control)
    more = answers(op, body["id"], control["id"])
    assert more == [], f"{point}/{victim}: a second answer {[m.decode() for m in more]}"
    assert log_count(a, "job " + body["id"] + ": duplicate delivery") <= 2


@pytest.mark.parametrize("point", ["parent-verified", "parent-flushed"])
def test_ping_killed_with_its_parent_one_answer(agents, op, operator, request, point):
    """A ping's answer is immediate, but a parent killed between the
    seen-set flush and that answer must still give it one (the journal
    keeps pings too): "interrupted" at the next start."""
    a, _ = agent_stopping_at(agents, request, point)
    body = new_job("ping", "host/h1")
    watch_results(op, body["id"])
    send_job(op, operator, body)
    wait_until(lambda: stopped(a.pid), 15, what=f"the parent to stop at {point}")
    os.kill(a.pid, signal.SIGKILL)
    a.wait_exit(10)
    a.env = {}
    a.start()
    got = collect_results(op, body["id"], ["h1"], timeout=30)
    assert "h1" in got, a.log()[-3000:]
    want = "interrupted" if point == "parent-flushed" else "pass"
    assert got["h1"]["status"] == want, got
    control = new_job("ping", "host/h1")
    watch_results(op, control["id"])
    send_job(op, operator, control)
    assert answers(op, body["id"], control["id"]) == []


@pytest.mark.parametrize("victim", ["parent", "net"])
def test_killed_with_the_result_spooled_one_answer(agents, op, operator, request, victim):
    """Found by the chaos test's network-process kills: the new network
    process published the old one's spooled file and spooled the result
    the parent handed it again a second time, under a new seq."""
    a, flag = agent_stopping_at(agents, request, "net-spooled")
    body = new_job("run", "host/h1", module="escape", args={})
    watch_results(op, body["id"])
    send_job(op, operator, body)
    n = wait_until(lambda: net_pid(a), 10, what="the network process")
    wait_until(lambda: stopped(n), 15, what="the network process to stop at net-spooled")
    assert not flag.exists()
    if victim == "parent":
        os.kill(a.pid, signal.SIGKILL)
        a.wait_exit(10)
        a.env = {}
        a.start()
    else:
        os.kill(n, signal.SIGKILL)
        wait_until(lambda: (net_pid(a) or n) != n, 20, what="a new network process")
    got = collect_results(op, body["id"], ["h1"], timeout=30)
    assert "h1" in got, f"{victim}: no answer\n{a.log()[-3000:]}"
    assert got["h1"]["status"] == "pass", got
    control = new_job("ping", "host/h1")
    watch_results(op, control["id"])
    send_job(op, operator, control)
    more = [m.decode() for m in answers(op, body["id"], control["id"])]
    # The same spooled bytes again is QoS 1; another seq is another answer.
    assert all(m == got["h1"] for m in more), f"{victim}: a second answer {more}"


def test_network_process_never_outlives_its_parent(agents, request):
    """setuid() clears the death signal the network process is started
    with: a parent killed before it is armed again must still end it (it
    checks, and the channel's end-of-file backs that), or a second client
    with the host's id would take the next agent's broker session from it
    and back, for good."""
    a = agents("h1", wake_port=0)
    flags = Path(tempfile.mkdtemp(prefix="muster-stop-"))
    request.addfinalizer(lambda: shutil.rmtree(flags, ignore_errors=True))
    os.chmod(flags, 0o777)
    flag = flags / "net-dropped"
    flag.write_text("")
    os.chmod(flag, 0o666)
    a.env = {"MUSTER_TEST_STOP_AT": f"net-dropped:{flag}"}
    a.start(wait_online=False)
    n = wait_until(lambda: net_pid(a), 10, what="the network process")
    wait_until(lambda: stopped(n), 15, what="the network process to stop after setuid")
    os.kill(a.pid, signal.SIGKILL)
    a.wait_exit(10)
    os.kill(n, signal.SIGCONT)
    wait_until(lambda: proc_stat(n) is None or proc_stat(n)["state"] == "Z", 10,
               what=f"network process {n} to end with its parent")
