# SPDX-License-Identifier: Apache-2.0
"""The wake port (design.md §6): a trusted TCP connect makes a disconnected
agent in a long back-off reconnect at once; an untrusted one does nothing;
nothing sent to the port is ever read.

The agent's own reaction is measured at the socket level (/proc: its TCP
connection to the broker appears) and end to end (its retained status is
online again).  A running Paho receive loop notices a new connection only
after a fixed 1000 ms wait, so a poked agent replaces its MQTT client
(fresh threads start with a 10 ms wait) instead of reusing it.
"""
import re
import socket
import time

import pytest

from muster_fixtures import (
    assert_no_sanitizer_reports, new_job, now_ms, proc_io, run_job, tcp_conns,
    topic, wait_until,
)

HOST = "h1"
LONG_BACKOFF = {"retry_min": "60s", "retry_max": "120s"}
AGENT_REACTS_S = 0.3	# poke -> the agent's TCP connect to the broker
ONLINE_WITHIN_S = 1.0	# poke -> online again (the "within a second")


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    """Agents stop before this runs: their logs are checked for ASan/UBSan."""
    yield
    assert_no_sanitizer_reports()


def agent_in_long_backoff(agents, broker, **wake):
    """An agent that lost its broker and waits >= 30 s to retry, with the
    broker already back."""
    extra = {"broker": dict(LONG_BACKOFF)}
    if wake:
        extra["wake"] = wake
    a = agents(HOST, extra=extra)
    a.start()
    broker.stop()
    m = wait_until(lambda: re.findall(r"reconnecting in ([\d.]+) s", a.log()),
                   10, what="the agent to notice the outage")
    assert float(m[-1]) >= 30, m
    broker.start()
    # Control: the broker is back, and the agent does not know yet.
    assert tcp_conns(a.pid, broker.port) == []
    return a


def fresh_online(client, since_ms, timeout):
    return client.get(timeout, topic("hosts", HOST, "status"),
                      match=lambda m: m.decode().get("state") == "online"
                      and m.decode().get("at", 0) >= since_ms)


def test_trusted_poke_reconnects_at_once(agents, broker, mqtt):
    a = agent_in_long_backoff(agents, broker)
    obs = mqtt("op:alice")
    obs.subscribe(topic("hosts", HOST, "status"))
    obs.get(1)				# the retained one, from before
    t_ms, t0 = now_ms(), time.monotonic()
    a.poke()
    wait_until(lambda: tcp_conns(a.pid, broker.port), 5, interval=0.002,
               what="the agent to connect")
    reacted = time.monotonic() - t0
    m = fresh_online(obs, t_ms, 5)
    online = time.monotonic() - t0
    print(f"\npoke -> TCP connect {reacted * 1000:.1f} ms, "
          f"-> online {online * 1000:.0f} ms")
    assert m is not None, "no reconnect after the poke:\n" + a.log()[-2000:]
    assert reacted < AGENT_REACTS_S, reacted
    assert online < ONLINE_WITHIN_S, online
    log = a.log()
    assert "wake: poke from 127.0.0.1" in log and "poked: reconnecting now" in log
    # A second poke while connected only refreshes the status.
    time.sleep(1.0)			# past the poke rate limit
    t_ms = now_ms()
    a.poke()
    assert fresh_online(obs, t_ms, 2) is not None
    assert a.log().count("connected to the broker") == 2


def test_untrusted_peer_causes_nothing(agents, broker, mqtt):
    a = agent_in_long_backoff(agents, broker, trusted="10.0.0.0/8")
    obs = mqtt("op:alice")
    obs.subscribe(topic("hosts", HOST, "status"))
    obs.get(1)
    t_ms = now_ms()
    a.poke()
    # The agent handled the connection: accepted, looked, closed.
    wait_until(lambda: "untrusted peer 127.0.0.1 ignored" in a.log(), 5,
               what="the agent to refuse the peer")
    # A trusted poke has the agent connecting within milliseconds and back
    # online in about a second; this one, nothing for longer than that.
    deadline = time.monotonic() + ONLINE_WITHIN_S
    while time.monotonic() < deadline:
        assert tcp_conns(a.pid, broker.port) == [], "the agent reconnected"
        time.sleep(0.01)
    assert fresh_online(obs, t_ms, 0) is None
    log = a.log()
    assert "poked" not in log and "poke from" not in log
    assert log.count("connected to the broker") == 1
    # The broker saw the agent connect once: before the outage.
    assert broker.log().count(f" as {HOST} (") == 1


def test_wake_port_never_reads(agents, broker, mqtt, operator):
    a = agents(HOST)
    a.start()
    before = proc_io(a.pid)["rchar"]
    mib = b"x" * (1 << 20)
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", a.wake_port), timeout=5)
    sent_all, closed = True, None
    try:
        try:
            s.sendall(mib)
        except (BrokenPipeError, ConnectionResetError) as e:
            sent_all, closed = False, type(e).__name__
        if closed is None:
            try:
                closed = "eof" if s.recv(1) == b"" else "data"
            except ConnectionResetError:
                closed = "reset"
    finally:
        s.close()
    dt = time.monotonic() - t0
    wait_until(lambda: "wake: poke from 127.0.0.1" in a.log(), 5,
               what="the agent to take the connection")
    grew = proc_io(a.pid)["rchar"] - before
    print(f"\n1 MiB to the wake port: closed by {closed} after "
          f"{dt * 1000:.0f} ms (all sent into buffers: {sent_all}); "
          f"agent rchar +{grew} bytes")
    assert closed in ("BrokenPipeError", "ConnectionResetError", "eof",
                      "reset"), closed
    assert dt < 1.0, dt
    assert grew < 256 * 1024, grew
    # And the agent is as good as before.
    op = mqtt("op:alice")
    got = run_job(op, operator, new_job("ping", f"host/{HOST}"), [HOST], 5)
    assert got[HOST]["status"] == "pass"
