# SPDX-License-Identifier: Apache-2.0
"""Self-update on staged channels (issue 11, design.md §5).

Real everything: a TLS mosquitto with the generated ACL, muster-server
answering the self-test handshake, musterd (as root: privilege separation)
built twice with different version strings (update_fixtures.V1, V2),
releases signed with the publisher's OpenPGP key.  Agents run from copies
of the binaries in their own folders, under a supervisor that restarts
them like systemd does.
"""
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from muster_fixtures import (
    assert_no_sanitizer_reports, host_sign, log_count, new_job, now_ms, pack, run_cli,
    run_job, topic, unpack, wait_until,
)
from server_fixtures import Server, announce, signed_result
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
        wait_until(lambda: (update_state(a)[1] or {}).get("state") == "healthy", 20,
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
    # The binaries came over the one fetch connection (agent/net/fetch.c).
    assert "h1.fetch" in a.broker.log() and "h1.release" not in a.broker.log()


class ProcScanner:
    """Reads every process's cmdline and environ over and over until
    finish(), keeping what it saw of self-test processes (any process whose
    cmdline says --self-test) and all the texts, to search afterwards."""

    def __init__(self):
        self.texts: set[bytes] = set()		# the same texts recur: a set
        self.selftests: set[bytes] = set()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            for e in os.listdir("/proc"):
                if not e.isdigit():
                    continue
                try:
                    cmd = Path(f"/proc/{e}/cmdline").read_bytes()
                    env = Path(f"/proc/{e}/environ").read_bytes()
                except OSError:
                    continue
                self.texts.update((cmd, env))
                if b"--self-test" in cmd:
                    self.selftests.add(cmd)
            time.sleep(0.005)

    def finish(self):
        self._stop.set()
        self._t.join()


def test_selftest_nonce_not_in_proc(upd_agents, server, op, operator, pub, keys, v2):
    """The self-test nonce crosses the execs of the staged agent and of its
    network process through a pipe: during a whole self-test no process's
    cmdline or environment shows it (issue 22.7)."""
    a = upd_agents("h1").start()
    scan = ProcScanner()
    try:
        publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes())
        wait_version(a, V2, timeout=90)
    finally:
        scan.finish()
    # The scan saw the self-test's agent and its network process.
    assert any(b"--net\0" not in c for c in scan.selftests), scan.selftests
    assert any(b"--net\0" in c for c in scan.selftests), scan.selftests
    # The nonce (its first 12 digits, all the self-test logs of it).
    m = re.search(r"asks for a test job \(nonce ([0-9a-f]{12})", a.log())
    assert m, a.log()[-2000:]
    prefix = m.group(1).encode()
    shown = [t for t in scan.texts if prefix in t]
    assert shown == [], shown


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
            '[ "$(readlink /proc/$pid/exe)" = "$REAL" ] && kill -ABRT $pid\n'
            'wait $pid\nexit $?\n').encode()


def test_new_binary_crashes_at_start_rolls_back(upd_agents, server, op, operator, pub,
                                                keys, v2):
    a = upd_agents("h1", update={"healthy": "10s"}).start()
    publish_release(pub, keys, CHANNEL, V2, crashing_wrapper(v2[0]), v2[1].read_bytes())
    st = wait_update(a, "rolled_back", timeout=90)
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


# ---- muster update: an update job ----------------------------------------------


def test_update_job_skips_jitter_and_is_answered_by_new_version(
        upd_agents, server, op, operator, pub, keys, v2):
    # No [update] agent: the default, the running binary (/proc/self/exe).
    a = upd_agents("h1", update={"jitter": "1h", "agent": None}).start()
    body = new_job("update", "host/h1")
    got = run_job(op, operator, body, ["h1"], timeout=20)
    assert got["h1"]["status"] == "fail", got	# nothing published yet
    assert "no release published" in got["h1"]["reason"]
    publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes())
    wait_until(lambda: log_count(a, "fetching in") >= 1, 20, what="release noticed")
    assert a.status()["version"] == V1	# waiting out its jitter (up to 1 h)
    body = new_job("update", "host/h1")
    got = run_job(op, operator, body, ["h1"], timeout=90)
    r = got["h1"]
    assert r["status"] == "pass", r
    assert r["agent_version"] == V2, r
    assert r["summary"] == f"updated from {V1} to {V2}"
    # Asked again: nothing to do, said so.
    body = new_job("update", "host/h1")
    got = run_job(op, operator, body, ["h1"], timeout=20)
    assert got["h1"]["status"] == "pass" and "already at version" in got["h1"]["reason"]


def test_update_job_in_the_healthy_window_passes(upd_agents, server, op, operator, pub,
                                                 keys, v2):
    """An update job reaching a host that updated and is still proving
    itself says it is at that version (pass), not a failure."""
    a = upd_agents("h1", update={"healthy": "60s"}).start()
    publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes())
    wait_version(a, V2, timeout=90)
    assert (update_state(a)[1] or {}).get("state") == "verifying"
    got = run_job(op, operator, new_job("update", "host/h1"), ["h1"], timeout=20)
    r = got["h1"]
    assert r["status"] == "pass", r
    assert r["reason"] == (f"already at version {V2} (updated from {V1}; its healthy "
                           "window has not ended yet)"), r


# ---- rollout by bucket -------------------------------------------------------------


def bucket(host: str) -> int:
    return int.from_bytes(hashlib.sha256(host.encode()).digest()[:4], "big") % 100


def test_rollout_0_50_100(upd_agents, server, op, operator, pub, keys, v2):
    names = [f"r{i}" for i in range(1, 30)]
    low = [n for n in names if bucket(n) < 50][:2]
    high = [n for n in names if bucket(n) >= 50][:2]
    agents = {n: upd_agents(n, wake_port=0).start() for n in low + high}
    t0 = now_ms()
    agent_b, runner_b = v2[0].read_bytes(), v2[1].read_bytes()
    publish_release(pub, keys, CHANNEL, V2, agent_b, runner_b, rollout=0,
                    published_at=t0)
    for n, a in agents.items():
        wait_until(lambda: log_count(a, "at 0% rollout") >= 1, 20, what=f"{n} skips")
    publish_release(pub, keys, CHANNEL, V2, agent_b, runner_b, rollout=50,
                    published_at=t0 + 1)
    for n in low:
        wait_version(agents[n], V2, timeout=90)
    for n in high:
        wait_until(lambda: log_count(agents[n], "at 50% rollout") >= 1, 20,
                   what=f"{n} outside 50%")
        assert agents[n].status()["version"] == V1
    publish_release(pub, keys, CHANNEL, V2, agent_b, runner_b, rollout=100,
                    published_at=t0 + 2)
    for n in high:
        wait_version(agents[n], V2, timeout=90)
    for a in agents.values():
        assert a.restarts == 0
        ping(op, operator, a)


# ---- two servers share the self-tests ---------------------------------------------


def test_two_servers_answer_20_concurrent_selftests_once(broker, pki, keys, mqtt,
                                                          tmp_path):
    hosts = [f"st{i:02d}" for i in range(20)]
    pki.run(*[x for h in hosts for x in ("--host", h)])
    broker.reload()
    servers = [Server(broker, tmp_path / f"srv{i}", name=f"s{i}", extra={
        "selftest": {"key": str(keys.operator_key("alice")), "timeout": "20s"}}).start()
        for i in range(2)]
    try:
        clients = {}
        for h in hosts:
            c = mqtt(h, client_id=f"{h}.selftest")
            c.subscribe(topic("hosts", h, "selftest", "jobs"),
                        topic("hosts", h, "selftest", "verdict"))
            announce(c, pki, h)
            clients[h] = c
        time.sleep(1)	# the servers learn the certificates from the statuses
        nonces = {h: secrets.token_hex(16) for h in hosts}
        for h, c in clients.items():
            c.publish(topic("hosts", h, "selftest", "request"),
                      host_sign(pki.sign_key(h), pki.sign_cert(h),
                                {"v": 1, "host": h, "nonce": nonces[h],
                                 "version": "9.9.9"}))
        jobs = {}
        for h, c in clients.items():
            m = c.get(15, topic=topic("hosts", h, "selftest", "jobs"))
            assert m is not None, f"no test job for {h}"
            env = unpack(m.payload)
            body = unpack(env["body"])
            assert body["module"] == "selftest.echo" and body["target"] == f"host/{h}"
            jobs[h] = body
        for h, c in clients.items():
            b = jobs[h]
            c.publish(topic("results", b["id"], h),
                      signed_result(pki, h, b["id"], module="selftest.echo",
                                    data={"nonce": b["args"]["nonce"]}))
        for h, c in clients.items():
            m = c.get(15, topic=topic("hosts", h, "selftest", "verdict"))
            assert m is not None, f"no verdict for {h}"
            v = unpack(m.payload)
            assert v["ok"] is True and v["nonce"] == nonces[h], v
        time.sleep(1)
        for h, c in clients.items():	# exactly once: no second job or verdict
            assert c.get(0.1, topic=topic("hosts", h, "selftest", "jobs")) is None
            assert c.get(0.1, topic=topic("hosts", h, "selftest", "verdict")) is None
        per = [s.log().count("): passed") for s in servers]
        assert sum(per) == 20 and all(n > 0 for n in per), per
    finally:
        for s in servers:
            s.stop()


def test_server_refuses_wrong_nonce_and_forged_request(broker, pki, keys, mqtt, server):
    def st(h, what):
        return topic("hosts", h, "selftest", what)

    def request(client, signer, host, nonce):
        client.publish(st(host, "request"),
                       host_sign(pki.sign_key(signer), pki.sign_cert(signer),
                                 {"v": 1, "host": host, "nonce": nonce, "version": "1"}))

    c = mqtt("h2", client_id="h2.selftest")
    c.subscribe(st("h2", "jobs"), st("h2", "verdict"))
    announce(c, pki, "h2")
    c3 = mqtt("h3", client_id="h3.selftest")
    c3.subscribe(st("h3", "jobs"), st("h3", "verdict"))
    announce(c3, pki, "h3")
    wait_until(lambda: {"h2", "h3"} <= {h["host"] for h in server.api("/api/hosts")["hosts"]},
               15, what="the server to have both statuses")
    # The server knows h3's certificate: a request h3 signs for itself
    # gets its test job (answered, so that test ends well).
    n3 = secrets.token_hex(16)
    request(c3, "h3", "h3", n3)
    m = c3.get(15, topic=st("h3", "jobs"))
    assert m is not None, server.log()[-3000:]
    b3 = unpack(unpack(m.payload)["body"])
    c3.publish(topic("results", b3["id"], "h3"),
               signed_result(pki, "h3", b3["id"], module="selftest.echo",
                             data={"nonce": b3["args"]["nonce"]}))
    v = unpack(c3.get(15, topic=st("h3", "verdict")).payload)
    assert v["ok"] is True and v["nonce"] == n3, v

    # Signed by h3, published on h2's topic (h3's key, h2's name): refused
    # as signed by another host, not as an unknown certificate.
    refused = log_count(server, "self-test request for h2 refused")
    request(c, "h3", "h2", "ab" * 16)
    wait_until(lambda: log_count(server, "self-test request for h2 refused") > refused,
               15, what="the server to refuse the forged request")
    line = [ln for ln in server.log().splitlines()
            if "self-test request for h2 refused" in ln][-1]
    assert "unknown certificate" not in line, line
    # Then h2's own request, the same way: the first job on h2's topic is
    # its answer, and no other job comes before its verdict.
    nonce = secrets.token_hex(16)
    request(c, "h2", "h2", nonce)
    m = c.get(10, topic=st("h2", "jobs"))
    body = unpack(unpack(m.payload)["body"])
    c.publish(topic("results", body["id"], "h2"),
              signed_result(pki, "h2", body["id"], module="selftest.echo",
                            data={"nonce": "not-" + body["args"]["nonce"]}))
    v = unpack(c.get(10, topic=st("h2", "verdict")).payload)
    assert v["ok"] is False and v["nonce"] == nonce and "nonce" in v["reason"], v
    assert [x.topic for x in c.pending()] == [], c.pending()
    assert log_count(server, "self-test of h2: job ") == 1, server.log()[-3000:]


# ---- the CLI: muster release publish | rollout | show, muster update -------------


def cli_conf(path, broker, keys, cn):
    pki = broker.pki
    path.write_text(
        f"[broker]\nuri = {broker.uri}\nca = {pki.ca}\ncert = {pki.cert(cn)}\n"
        f"key = {pki.key(cn)}\n\n[publisher]\ngnupg_home = {keys.gnupg_home}\n"
        f"fingerprint = {keys.publisher_fpr}\n\n[operator]\n"
        f"key = {keys.operator_key('alice')}\n")
    return path


def test_cli_release_and_update(upd_agents, server, broker, keys, tmp_path, v2):
    home = tmp_path / "home"
    home.mkdir()
    pubc = cli_conf(tmp_path / "pub.conf", broker, keys, "pub:release")
    opc = cli_conf(tmp_path / "op.conf", broker, keys, "op:alice")

    def cli(conf, *args, timeout=60):
        return run_cli(*args, conf=conf, env={"HOME": home}, timeout=timeout)

    a = upd_agents("h1").start()
    r = cli(pubc, "release", "publish", "--channel", CHANNEL, "--version", V2,
            "--agent", v2[0], "--runner", v2[1], "--rollout", "0", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["version"] == V2 and out["rollout"] == 0
    assert out["agent_sha256"] == hashlib.sha256(v2[0].read_bytes()).hexdigest()
    r = cli(pubc, "release", "show", "--channel", CHANNEL, "--json")
    assert r.returncode == 0, r.stderr
    show = json.loads(r.stdout)
    assert show["version"] == V2 and show["rollout"] == 0 and show["signature"] == "good"
    assert show["hosts"] == {V1: {"online": 1, "offline": 0}}, show
    r = cli(opc, "update", "host/h1", timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)	# not in a 0 % rollout
    assert "rollout" in r.stdout + r.stderr
    r = cli(pubc, "release", "rollout", "--channel", CHANNEL, "100")
    assert r.returncode == 0, r.stderr
    wait_version(a, V2, timeout=90)
    wait_update(a, "healthy")
    r = cli(pubc, "release", "show", "--json")
    show = json.loads(r.stdout)
    assert show["rollout"] == 100 and show["hosts"] == {V2: {"online": 1, "offline": 0}}
    r = cli(opc, "update", "-H", "h1", "--json", timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "already at version" in r.stdout
    r = cli(pubc, "release", "rollout", "--channel", "nochannel", "50")
    assert r.returncode == 1


def test_signer_in_keyring_but_not_listed(upd_agents, server, op, operator, pub, keys,
                                          untrusted_keys, v2):
    """A good signature by a key the host has, whose fingerprint is not in
    [trust] publishers: refused as an unlisted signer."""
    a = upd_agents("h1", extra={"trust": {"publishers": untrusted_keys.publisher_fpr}})
    a.start()
    publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes())
    assert_refused(a, op, operator, "refused", ["not signed by a trusted publisher"])


def test_kill9_while_fetching_then_update_job(upd_agents, server, op, operator, pub,
                                              keys, v2):
    """The runner's artifact is not on the broker yet: the agent is killed
    while it waits for it, comes back on its version, says why, and an
    update job finishes the update once the artifact is there."""
    a = upd_agents("h1", extra={"modules": {"fetch_timeout": "5s"}})
    a.start()
    agent_b, runner_b = v2[0].read_bytes(), v2[1].read_bytes()
    pointer, arts = release_payloads(keys, CHANNEL, V2, agent_b, runner_b)
    r_sha = hashlib.sha256(runner_b).hexdigest()
    for s, art in arts.items():
        if s != r_sha:
            pub.publish(topic("artifacts", s), art, retain=True)
    pub.publish(topic("releases", CHANNEL), pointer, retain=True)
    wait_until(lambda: log_count(a, "agent binary fetched") == 1, 20, what="half fetched")
    os.kill(a.pid, 9)
    wait_until(lambda: a.restarts == 1, 10, what="restart")
    # Back on its version; it looks again and says what is missing.
    assert_refused(a, op, operator, "refused", ["not published"])
    pub.publish(topic("artifacts", r_sha), arts[r_sha], retain=True)
    body = new_job("update", "host/h1")
    got = run_job(op, operator, body, ["h1"], timeout=90)
    assert got["h1"]["status"] == "pass" and got["h1"]["agent_version"] == V2, got


def test_not_healthy_without_a_working_runner_rolls_back(upd_agents, server, op, operator,
                                                         pub, keys, v2, tmp_path):
    """A runner that runs jobs but fails the start-up self-check (it does
    not tell its version): the self-test passes, the installed version is
    never healthy, exits, and the third start rolls back."""
    # Not in /tmp: the script runs in the runner's own mount namespace.
    shared = Path(tempfile.mkdtemp(prefix="muster-upd-runner-",
                                   dir="/run" if os.geteuid() == 0 else None))
    try:
        os.chmod(shared, 0o755)
        real = shared / "muster-runner"
        shutil.copy2(v2[1], real)
        broken = (f"#!/bin/sh\ncase \"$1\" in --version) exit 1;; esac\n"
                  f"exec {real} \"$@\"\n").encode()
        a = upd_agents("h1", update={"healthy": "2s"}).start()
        publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), broken)
        st = wait_update(a, "rolled_back", timeout=120)
        assert st["version"] == V1 and "died 2 times" in st["update"]["reason"], st
        assert log_count(a, "is not healthy") >= 2
        ping(op, operator, a)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_server_check_config_selftest_key(tmp_path, keys, broker):
    """On top of a configuration the server can start with (the check
    also wants its CA, certificate and archive folder)."""
    from server_fixtures import SERVER_BIN
    s = Server(broker, tmp_path / "server")

    def check(selftest):
        s.conf["selftest"] = selftest
        s.write_conf()
        return subprocess.run([str(SERVER_BIN), "--check-config", "-c", str(s.conf_path)],
                              capture_output=True, text=True)

    r = check({"key": "/nonexistent/selftest.key", "timeout": "30s"})
    assert r.returncode == 1 and "[selftest] key" in r.stderr, r
    r = check({"key": str(keys.operator_key("alice")), "timeout": "0s"})
    assert r.returncode == 1 and "timeout" in r.stderr, r
    r = check({"key": str(keys.operator_key("alice"))})
    assert r.returncode == 0, r
