"""Self-update on staged channels (issue 11, DESIGN §5).

Real everything: a TLS mosquitto with the generated ACL, muster-server
answering the self-test handshake, musterd (as root: privilege separation)
built twice with different version strings (update_fixtures.V1, V2),
releases signed with the publisher's OpenPGP key.  Agents run from copies
of the binaries in their own folders, under a supervisor that restarts
them like systemd does.
"""
import os
import socket
import threading
import time

import pytest

from muster_fixtures import (
    assert_no_sanitizer_reports, log_count, new_job, run_job, wait_until,
)
from server_fixtures import Server
from update_fixtures import (
    V1, V2, UpdAgent, build_version, publish_release, selftest_module,
    version_of,
)

CHANNEL = "canary"


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


@pytest.fixture(scope="session")
def v2(tmp_path_factory):
    """(musterd, muster-runner) of version V2."""
    agent, runner = build_version(tmp_path_factory.mktemp("build-v2"), V2)
    assert version_of(agent) == V2
    return agent, runner


@pytest.fixture
def op(mqtt):
    return mqtt("op:alice")


@pytest.fixture
def pub(mqtt):
    return mqtt("pub:release")


@pytest.fixture
def server(broker, keys, tmp_path):
    """muster-server answering self-tests, signing with alice's key (which
    every test agent trusts)."""
    s = Server(broker, tmp_path / "server", extra={
        "selftest": {"key": str(keys.operator_key("alice")), "timeout": "20s"}})
    s.start()
    yield s
    if s.running:
        s.stop()


@pytest.fixture
def upd_agents(broker, keys, tmp_path):
    made = []

    def make(name, channel=CHANNEL, **kw):
        kw.setdefault("groups", [])
        a = UpdAgent(name, broker, keys, tmp_path / f"agent-{name}", channel=channel,
                     **kw)
        selftest_module(a)
        made.append(a)
        return a

    yield make
    for a in made:
        a.cleanup()


def ping(op, operator, agent, timeout=10):
    body = new_job("ping", f"host/{agent.name}")
    got = run_job(op, operator, body, [agent.name], timeout=timeout)
    assert got.get(agent.name, {}).get("status") == "pass", got
    return got[agent.name]


def update_state(agent):
    s = agent.status() or {}
    return s.get("version"), s.get("update")


def wait_version(agent, version, timeout=60):
    return agent.wait_status("online", timeout=timeout, fresh=False,
                             match=lambda s: s.get("version") == version)


class WakeProber:
    """Connects to the wake port in a loop; counts refusals."""

    def __init__(self, port):
        self.port = port
        self.ok = self.refused = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                    self.ok += 1
            except OSError:
                self.refused += 1
            time.sleep(0.05)

    def finish(self):
        self.stop = True
        self.t.join(5)


def listener_inode(agent):
    """The inode of the wake listener socket, from /proc/net/tcp."""
    port = f"{agent.wake_port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[1].endswith(":" + port) and parts[3] == "0A":	# LISTEN
                return parts[9]
    return None


# ---- the happy path --------------------------------------------------------------


def test_happy_path_canary(upd_agents, server, op, operator, pub, keys, v2):
    a = upd_agents("h1").start()
    assert a.status()["version"] == V1
    ping(op, operator, a)
    inode = listener_inode(a)
    assert inode
    pid = a.pid
    prober = WakeProber(a.wake_port)
    try:
        publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes())
        st = wait_version(a, V2, timeout=90)
        # Healthy window passed: update.pending gone, status says done.
        wait_until(lambda: (update_state(a)[1] or {}).get("state") == "done", 20,
                   what="update done")
    finally:
        prober.finish()
    assert prober.refused == 0, f"{prober.refused} wake connections refused"
    assert prober.ok > 10
    assert a.pid == pid, "exec keeps the process (and systemd's main pid)"
    assert listener_inode(a) == inode, "the same listening socket throughout"
    assert version_of(a.binary) == V2
    assert (a.binary.parent / "musterd.prev").exists()
    assert not (a.state_dir / "update.pending").exists()
    st = a.status()
    assert st["update"]["from"] == V1 and st["update"]["version"] == V2
    r = ping(op, operator, a)
    assert r["agent_version"] == V2
    assert a.restarts == 0
    assert "passed" in server.log()
