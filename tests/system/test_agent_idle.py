# SPDX-License-Identifier: Apache-2.0
"""An idle agent costs nothing: Paho's two threads sleep while the session
is idle (lib/paho_idle.c) instead of waking 2.9 times a second on Paho's
fixed timers, and that costs neither latency nor the keepalive.

Wake-ups are counted, not timed: the number of times the kernel ran each
of Paho's threads (/proc/PID/task/TID/schedstat, third field)."""
import time
from pathlib import Path

import pytest

from muster_fixtures import (
    assert_no_sanitizer_reports, new_job, run_job, start_fresh, wait_until,
)

PAHO_THREADS = ("MQTTAsync_rcv", "MQTTAsync_send")
# The fixtures' agents use a 5 s keepalive (quick will tests); the shipped
# default is 30 s, hence waits of 7.5 s.
KEEPALIVE_30S = {"broker": {"keepalive": "30s"}}


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


def paho_tasks(agent) -> dict[str, Path]:
    """Paho's threads in whichever of the agent's processes holds the
    session (the network process as root, the agent itself otherwise)."""
    pids = [agent.pid]
    for st in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = st.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == agent.pid:
            pids.append(int(st.parent.name))
    out = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                name = (task / "comm").read_text().strip()
            except OSError:
                continue
            if name in PAHO_THREADS:
                out[f"{pid}/{name}"] = task / "schedstat"
    assert len(out) == 2, out
    return out


def wakeups(tasks: dict[str, Path]) -> int:
    return sum(int(p.read_text().split()[2]) for p in tasks.values())


def idle_wakeups(agent, seconds: float) -> int:
    tasks = paho_tasks(agent)
    before = wakeups(tasks)
    time.sleep(seconds)
    return wakeups(tasks) - before


def ping_ms(op, operator, host) -> float:
    t0 = time.monotonic()
    r = run_job(op, operator, new_job("ping", f"host/{host}", ttl_s=30), [host],
                timeout=10)[host]
    assert r["status"] == "pass"
    return (time.monotonic() - t0) * 1000


def test_idle_threads_sleep(agents, mqtt, operator):
    """30 s keepalive: Paho's threads wait 7.5 s at a time when idle.  With
    Paho's own timers this counts about 23 wake-ups in 8 s."""
    a = start_fresh(agents("h1", extra=KEEPALIVE_30S))
    op = mqtt("op:alice")
    busy_ms = min(ping_ms(op, operator, "h1") for _ in range(3))
    time.sleep(1.5)
    n = idle_wakeups(a, 8)
    print(f"\nPaho threads of an idle agent: {n} wake-ups in 8 s")
    assert n <= 6, f"{n} wake-ups in 8 s: Paho's threads are not sleeping"
    # A job after the long sleep is answered at once: the socket wakes the
    # receive thread, and the publish wakes the send thread.
    ms = ping_ms(op, operator, "h1")
    print(f"ping after idling: {ms:.1f} ms (test client round trip; warm: {busy_ms:.1f} ms)")
    assert ms < 1000


def test_keepalive_survives_long_waits(agents, broker, mqtt, operator):
    """12 s keepalive, so 3 s waits: the agent still pings the broker in
    time (it would drop the session after 18 s), idle for 20 s, and keeps
    its one connection."""
    a = agents("h1", extra={"broker": {"keepalive": "12s"}})
    start_fresh(a)
    op = mqtt("op:alice")
    ping_ms(op, operator, "h1")
    log_before = broker.log()
    n = idle_wakeups(a, 20)
    log = broker.log()[len(log_before):]
    pings = log.count("Received PINGREQ from h1")
    print(f"\n20 s idle, keepalive 12 s: {n} wake-ups, {pings} PINGREQs")
    assert pings >= 1, log[-2000:]
    assert not [ln for ln in log.splitlines()
                if "New client connected" in ln and " as h1 " in ln], log[-2000:]
    assert "h1 has exceeded timeout" not in log
    # Paho's own timers: ~58 wake-ups in 20 s; 3 s waits: ~14-18.
    assert n <= 24, n
    assert ping_ms(op, operator, "h1") < 1000


def test_session_change_wakes_paho(agents, broker, mqtt, operator):
    """A broker restart while idle is noticed and the agent reconnects as
    fast as before (the lost socket wakes the receive thread; reconnecting
    is busy, so Paho's own timing applies until connected)."""
    a = start_fresh(agents("h1", extra=KEEPALIVE_30S))
    op = mqtt("op:alice")
    ping_ms(op, operator, "h1")
    time.sleep(2)
    log_before = broker.log()
    broker.restart()
    wait_until(lambda: broker.log()[len(log_before):].count(" as h1 ") > 0, 15,
               what="h1 back on the restarted broker")
    op = mqtt("op:alice")
    assert ping_ms(op, operator, "h1") < 1000
    time.sleep(1.5)
    assert idle_wakeups(a, 8) <= 6
