"""Self-update on staged channels (issue 11, DESIGN §5).

Real everything: a TLS mosquitto with the generated ACL, muster-server
answering the self-test handshake, musterd (as root: privilege separation)
built twice with different version strings (update_fixtures.V1, V2),
releases signed with the publisher's OpenPGP key.  Agents run from copies
of the binaries in their own folders, under a supervisor that restarts
them like systemd does.
"""
import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from muster_fixtures import (
    assert_no_sanitizer_reports, log_count, new_job, pack, run_job, topic, unpack,
    wait_until,
)
from server_fixtures import Server
from update_fixtures import (
    V1, V2, UpdAgent, build_version, publish_release, release_payloads,
    selftest_module, version_of,
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


# ---- faults: each ends on a good version, saying why in status ------------------


def wait_update(agent, state, timeout=30):
    """The retained status once its "update" map says state (restarts by
    the supervisor allowed)."""
    got = {}

    def ok():
        s = agent.status(timeout=1) or {}
        if s.get("state") == "online" and (s.get("update") or {}).get("state") == state:
            got.update(s)
            return True
        return False
    wait_until(ok, timeout, interval=0.3, what=f"update state {state}")
    return got


def assert_refused(agent, op, operator, state, words, timeout=30):
    """The agent stays at V1, online, answering, and its status says why."""
    st = wait_update(agent, state, timeout)
    assert st["version"] == V1
    reason = st["update"].get("reason", "")
    for w in words:
        assert w in reason, reason
    ping(op, operator, agent)
    assert version_of(agent.binary) == V1
    assert not (agent.state_dir / "update.pending").exists()
    assert not list(agent.binary.parent.glob("*.staged"))
    return st


def test_bad_signature(upd_agents, server, op, operator, pub, keys, v2):
    a = upd_agents("h1").start()
    ptr = publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes())
    d = unpack(ptr)
    sig = bytearray(d["sig"])
    sig[-5] ^= 0xff
    d["sig"] = bytes(sig)
    # A newer pointer with a broken signature replaces the good one.
    pub.publish(topic("releases", CHANNEL), pack(d), retain=True)
    assert_refused(a, op, operator, "refused", ["signature"])


def test_signer_not_allowed(upd_agents, server, op, operator, pub, untrusted_keys, v2):
    a = upd_agents("h1").start()
    publish_release(pub, untrusted_keys, CHANNEL, V2, v2[0].read_bytes(),
                    v2[1].read_bytes())
    # Not in this agent's keyring at all, or in it but not listed: refused.
    assert_refused(a, op, operator, "refused", ["sign"])


def test_sha256_mismatch(upd_agents, server, op, operator, pub, keys, v2):
    a = upd_agents("h1").start()
    agent = v2[0].read_bytes()
    evil = bytearray(agent)
    evil[1000] ^= 0x01
    pointer, arts = release_payloads(keys, CHANNEL, V2, agent, v2[1].read_bytes())
    sha = hashlib.sha256(agent).hexdigest()
    arts[sha] = pack({"v": 1, "data": bytes(evil)})
    for s, art in arts.items():
        pub.publish(topic("artifacts", s), art, retain=True)
    pub.publish(topic("releases", CHANNEL), pointer, retain=True)
    assert_refused(a, op, operator, "refused", ["sha256 mismatch"])


def test_truncated_artifact(upd_agents, server, op, operator, pub, keys, v2):
    a = upd_agents("h1").start()
    agent = v2[0].read_bytes()
    pointer, arts = release_payloads(keys, CHANNEL, V2, agent, v2[1].read_bytes())
    sha = hashlib.sha256(agent).hexdigest()
    arts[sha] = pack({"v": 1, "data": agent[:len(agent) // 2]})
    for s, art in arts.items():
        pub.publish(topic("artifacts", s), art, retain=True)
    pub.publish(topic("releases", CHANNEL), pointer, retain=True)
    assert_refused(a, op, operator, "refused", ["truncated"])


def test_selftest_job_fails_with_broken_runner(upd_agents, server, op, operator, pub,
                                               keys, v2):
    a = upd_agents("h1").start()
    broken = b"#!/bin/sh\necho 'muster-runner 9.9.9 (module ABI 1)'\nexit 3\n"
    publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), broken)
    assert_refused(a, op, operator, "failed", ["self-test"], timeout=60)
    assert "failed" in server.log()


def test_no_verdict_server_down(upd_agents, op, operator, pub, keys, v2):
    a = upd_agents("h1", update={"selftest_timeout": "4s"}).start()
    publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes())
    assert_refused(a, op, operator, "failed", ["no verdict"], timeout=40)


def crashing_wrapper(real: Path) -> bytes:
    """A "new version" that passes its self-test (it is the real V2 there)
    but crashes 1.5 s after every normal start - after V2 counted the start
    in update.pending, before its healthy window (10 s) ends.  Once the
    rollback exec()ed the old binary in its place, it is left alone."""
    return (f"#!/bin/sh\nREAL={real}\n"
            'case " $* " in *" --self-test "*|*" --version "*) exec "$REAL" "$@";; esac\n'
            '"$REAL" "$@" & pid=$!\nsleep 1.5\n'
            '[ "$(readlink /proc/$pid/exe)" = "$REAL" ] && kill -SEGV $pid\n'
            'wait $pid\nexit $?\n').encode()


def test_new_binary_crashes_at_start_rolls_back(upd_agents, server, op, operator, pub,
                                                keys, v2):
    a = upd_agents("h1", update={"healthy": "10s"}).start()
    publish_release(pub, keys, CHANNEL, V2, crashing_wrapper(v2[0]), v2[1].read_bytes())
    st = wait_update(a, "failed", timeout=90)
    assert st["version"] == V1, st
    assert "died 2 times" in st["update"]["reason"], st["update"]
    assert st["update"]["version"] == V2
    assert a.restarts == 2, a.exits
    wait_until(lambda: version_of(a.binary) == V1, 10, what="old binary restored")
    ping(op, operator, a)
    # That version is refused from now on, even when an update job asks.
    body = new_job("update", "host/h1")
    got = run_job(op, operator, body, ["h1"], timeout=30)
    assert got["h1"]["status"] == "fail", got
    assert V1 == ping(op, operator, a)["agent_version"]


def test_kill9_while_testing(upd_agents, op, operator, pub, keys, v2):
    """No server: the self-test waits for its verdict; the agent dies."""
    a = upd_agents("h1", update={"selftest_timeout": "60s"}).start()
    publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes())
    wait_until(lambda: log_count(a, "self-test running") == 1, 30, what="self-test")
    staged = a.binary.parent / "musterd.staged"
    assert staged.exists()
    os.kill(a.pid, 9)
    st = assert_refused(a, op, operator, "failed", ["restarted while staging"],
                        timeout=30)
    assert a.restarts == 1
    # The self-test died with its parent.
    assert not [p for p in os.listdir("/proc") if p.isdigit() and
                _cmdline(p).find("--self-test") >= 0 and str(a.dir) in _cmdline(p)]


def test_kill9_during_install(upd_agents, server, op, operator, keys, v2):
    """The state a kill -9 between the runner's and the agent's rename
    leaves: update.pending names V2, the runner is V2, the agent V1."""
    a = upd_agents("h1")
    a.state_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(a.runner, a.runner.parent / "muster-runner.prev")
    shutil.copy2(v2[1], a.runner)
    (a.state_dir / "update.pending").write_text(
        f"version={V2}\nprev={V1}\npublished_at=1\nstarts=0\n")
    a.start()
    st = assert_refused(a, op, operator, "failed", ["during the install"])
    out = subprocess.run([str(a.runner), "--version"], capture_output=True, text=True)
    assert V1 in out.stdout


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
