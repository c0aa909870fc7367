# SPDX-License-Identifier: Apache-2.0
"""musterd split in two (issue 9, design.md §8).

As root, musterd is a privileged parent and a network process running as
[agent] user (muster) with no capabilities.  These tests look at the real
process tree in /proc, kill the network process in the middle of a job,
and make it send a malformed frame (its SIGUSR2 test hook).
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from muster_fixtures import (
    TEST_MODULES_DIR, all_procs, assert_no_sanitizer_reports, collect_results,
    install_modules, log_count, new_job, run_job, send_job, wait_until,
    watch_results,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="privilege separation needs root; not root, musterd is one process "
           "(CI runs the suite as root)")


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


@pytest.fixture
def op(mqtt):
    return mqtt("op:alice")


def status_of(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def net_pid(agent):
    kids = [p["pid"] for p in all_procs()
            if p["ppid"] == agent.pid and p["comm"] == "musterd"]
    assert len(kids) <= 1, kids
    return kids[0] if kids else None


def start(agents):
    a = agents("h1", wake_port=0)
    install_modules(a, "escape", src=TEST_MODULES_DIR)
    return a.start()


def ping(op, operator):
    body = new_job("ping", "host/h1")
    return run_job(op, operator, body, ["h1"], 10).get("h1")


def test_process_tree_users_and_capabilities(agents, op, operator):
    a = start(agents)
    n = wait_until(lambda: net_pid(a), 10, what="the network process")
    parent, net = status_of(a.pid), status_of(n)
    muster = pwd.getpwnam("muster")
    assert parent["Uid"].split()[0] == "0"
    assert net["Uid"].split() == [str(muster.pw_uid)] * 4, net["Uid"]
    assert net["Gid"].split() == [str(muster.pw_gid)] * 4, net["Gid"]
    assert net["Groups"] == "", net["Groups"]
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(net[cap], 16) == 0, (cap, net[cap])
    assert net["NoNewPrivs"] == "1"
    # The TLS session is the network process's; the parent has none.
    assert any(os.readlink(f"/proc/{n}/fd/{fd}").startswith("socket:")
               for fd in os.listdir(f"/proc/{n}/fd"))
    # The host key is not readable by the network user on disk: the parent
    # hands it over (memfd); it still connects and answers.
    key = Path(a.conf["broker"]["key"])
    assert key.stat().st_mode & 0o077 == 0
    assert ping(op, operator)["status"] == "pass"
    # A runner: a uid of its own ([limits] job_uids), not the network user.
    body = new_job("run", "host/h1", module="escape", args={})
    r = run_job(op, operator, body, ["h1"], 15)["h1"]
    assert 60928 <= r["data"]["id"]["uid"] <= 61183, r
    assert "network process" in a.log()


def test_network_process_has_its_own_seccomp_filter(agents, op, operator):
    """Once set up, every thread of the network process (Paho's, started
    before the filter, included) runs under a seccomp filter; the parent
    has none of its own; and the agent still works through it (a module
    fetched and verified with gpg, a job run, a result sent)."""
    a = start(agents)
    n = wait_until(lambda: net_pid(a), 10, what="the network process")
    assert ping(op, operator)["status"] == "pass"
    wait_until(lambda: log_count(a, "seccomp filter active"), 10,
               what="the filter's log line")
    assert status_of(a.pid)["Seccomp"] == "0"
    tasks = os.listdir(f"/proc/{n}/task")
    assert len(tasks) > 1, tasks		# Paho's threads are there
    for t in tasks:
        st = status_of(f"{n}/task/{t}")
        assert st["Seccomp"] == "2", (t, st["Seccomp"])
    body = new_job("run", "host/h1", module="escape", args={})
    r = run_job(op, operator, body, ["h1"], 15)["h1"]
    assert r["status"] == "pass", r


def test_network_process_killed_mid_job_one_result(agents, op, operator, broker):
    from muster_fixtures import broker_received, spool_files, topic
    a = start(agents)
    n = wait_until(lambda: net_pid(a), 10, what="the network process")
    body = new_job("run", "host/h1", module="escape", args={"sleep": 3000})
    watch_results(op, body["id"])
    send_job(op, operator, body)
    wait_until(lambda: log_count(a, f"job {body['id']}: running module"), 10,
               what="the job to start")
    os.kill(n, signal.SIGKILL)
    n2 = wait_until(lambda: (net_pid(a) or 0) not in (0, n) and net_pid(a), 15,
                    what="a new network process")
    assert n2 != n
    got = collect_results(op, body["id"], ["h1"], 20)
    assert got["h1"]["status"] == "pass", got
    # Exactly one answer.  Once the agent holds no result (nothing left to
    # send again), a ping goes the same way: anything published before its
    # answer has arrived before it; and the broker got one PUBLISH.
    wait_until(lambda: not spool_files(a), 15, what="the agent's spool to drain")
    assert ping(op, operator)["status"] == "pass"
    extra = [m for m in op.pending() if body["id"] in m.topic]
    assert extra == [], extra
    assert broker_received(broker, topic("results", body["id"], "h1"), "h1") == 1
    assert log_count(a, "network process killed by signal 9") == 1


def test_malformed_frame_replaces_the_network_process(agents, op, operator):
    a = start(agents)
    n = wait_until(lambda: net_pid(a), 10, what="the network process")
    assert ping(op, operator)["status"] == "pass"
    os.kill(n, signal.SIGUSR2)		# test hook: one malformed frame
    wait_until(lambda: log_count(a, "malformed message from the network process"),
               10, what="the parent to notice")
    n2 = wait_until(lambda: (net_pid(a) or 0) not in (0, n) and net_pid(a), 15,
                    what="a new network process")
    assert n2 != n
    # Nothing ran because of it, and the new one serves.
    assert log_count(a, "running module") == 0
    wait_until(lambda: ping(op, operator), 15, what="the agent to answer again")


CAP_DAC_OVERRIDE = 1


def test_state_as_the_unit_makes_it(agents, op, operator):
    """Issue 19.1: state_dir 0700 root (StateDirectoryMode), the unit's
    capability bounding set (no CAP_DAC_OVERRIDE for the parent): the
    network process works in state_dir/net, its own, and reaches the
    broker without one "Permission denied" or restart."""
    a = start(agents)
    n = wait_until(lambda: net_pid(a), 10, what="the network process")
    assert int(status_of(a.pid)["CapBnd"], 16) & (1 << CAP_DAC_OVERRIDE) == 0
    assert ping(op, operator)["status"] == "pass"
    st = a.state_dir.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)
    muster = pwd.getpwnam("muster")
    for d in ("net", "net/spool", "net/modcache", "net/release", "net/gnupg"):
        s = (a.state_dir / d).stat()
        assert (s.st_uid, s.st_gid) == (muster.pw_uid, muster.pw_gid), d
        assert s.st_mode & 0o077 == 0, (d, oct(s.st_mode))
    # The parent's part stays root's.
    assert (a.state_dir / "seen").stat().st_uid == 0
    # The publishers' keyring reached the network process's copy.
    assert any((a.state_dir / "net" / "gnupg").iterdir())
    assert os.readlink(f"/proc/{n}/cwd") == str(a.state_dir / "net")
    log = a.log()
    assert "Permission denied" not in log
    assert "network process exited" not in log


def test_state_of_an_older_version_moves_into_net(agents, op, operator):
    """Folders an older version kept at the top of state_dir move into
    state_dir/net at the first start (the spool, so nothing is lost)."""
    a = start(agents)
    assert ping(op, operator)["status"] == "pass"
    a.stop()
    net = a.state_dir / "net"
    for d in ("spool", "modcache", "release"):
        (net / d).rename(a.state_dir / d)
    (a.state_dir / "spool" / "marker").write_bytes(b"")
    shutil.rmtree(net)
    a.start()
    assert ping(op, operator)["status"] == "pass"
    for d in ("spool", "modcache", "release"):
        assert not (a.state_dir / d).exists(), d
        assert (net / d).is_dir(), d
    assert (net / "spool" / "marker").exists()
    assert log_count(a, "state: moved") == 3


class Notify:
    """A NOTIFY_SOCKET as systemd gives a Type=notify service: a thread
    records every datagram with the time it came (and keeps the queue
    empty, as systemd does: a full one blocks the sender)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.got = []			# (monotonic time, {key: value})
        self.lock = threading.Lock()
        self.done = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while not self.done:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            kv = dict(l.split("=", 1) for l in data.splitlines() if "=" in l)
            with self.lock:
                self.got.append((time.monotonic(), kv))

    def close(self):
        self.done = True

    def values(self, key):
        with self.lock:
            return [kv[key] for _, kv in self.got if key in kv]

    def last_at(self, key):
        with self.lock:
            times = [t for t, kv in self.got if key in kv]
        return times[-1] if times else None


def notified_agent(agents, tmp_path):
    a = agents("h1", wake_port=0)
    n = Notify(tmp_path / "notify")
    a.env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    return a, n


def test_ready_only_once_the_network_process_is_set_up(agents, op, operator, tmp_path):
    a, notify = notified_agent(agents, tmp_path)
    a.start()
    wait_until(lambda: notify.values("READY"), 10, what="READY=1")
    ready_at = notify.last_at("READY")
    # The network process said it was ready before the parent told systemd.
    assert log_count(a, "network process") >= 1
    wait_until(lambda: any("connected to the broker as h1" in s
                           for s in notify.values("STATUS")), 10,
               what="STATUS: connected")
    statuses = notify.values("STATUS")
    assert statuses[0] == "starting the network process", statuses
    time.sleep(1.2)
    assert notify.last_at("WATCHDOG") > ready_at
    assert ping(op, operator)["status"] == "pass"


def test_failing_network_process_starves_the_watchdog(agents, op, operator, tmp_path):
    """Issue 19.1: a network process that cannot set itself up gives no
    READY=1, says why in STATUS=, and after five failures in a row the
    watchdog is no longer fed; once it can, it is ready and fed again."""
    a = agents("h1", wake_port=0).start()
    a.stop()
    cache = a.state_dir / "net" / "modcache"
    os.chmod(cache, 0)		# the network process cannot open its cache
    a2, notify = a, Notify(tmp_path / "notify")
    a2.env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    a2.start(wait_online=False)
    wait_until(lambda: log_count(a2, "watchdog is no longer fed"), 20,
               what="the watchdog to be starved")
    starved = time.monotonic()
    # The notify thread may read the last STATUS a moment after the log.
    wait_until(lambda: any("failed 5 times in a row" in s for s in notify.values("STATUS")),
               5, what="STATUS: failed 5 times")
    assert notify.values("READY") == []
    st = notify.values("STATUS")
    assert any("failed 5 times in a row" in s and "Permission denied" in s
               for s in st), st
    assert log_count(a2, "network process failed 1 times in a row: ./modcache: Permission denied") == 1
    time.sleep(2.5)
    fed = notify.last_at("WATCHDOG")
    assert fed is None or fed < starved + 0.2, (fed, starved)
    assert a2.proc.poll() is None		# systemd decides, by the watchdog
    # Repaired: the next network process (10 s later at most) is ready.
    os.chmod(cache, 0o700)
    wait_until(lambda: notify.values("READY"), 20, what="READY=1 after the repair")
    time.sleep(1.5)
    assert notify.last_at("WATCHDOG") > notify.last_at("READY")
    a2.wait_status("online", timeout=15)
    assert ping(op, operator)["status"] == "pass"


def test_without_a_watchdog_it_gives_up(agents, tmp_path):
    a = agents("h1", wake_port=0).start()
    a.stop()
    os.chmod(a.state_dir / "net" / "modcache", 0)
    a.start(wait_online=False)
    assert a.proc.wait(timeout=20) == 1
    assert log_count(a, "giving up: the network process failed 5 times in a row") == 1


def memory_holds(pid, needles):
    """Whether any readable mapping of pid holds one of the byte strings
    (root reads /proc/PID/mem even of a process that is not dumpable).
    Read in chunks that overlap by a needle's length; mappings over 1 GiB
    (ASan's shadow) are skipped: no heap or stack is that big here."""
    chunk, overlap = 16 << 20, max(len(n) for n in needles)
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            addr, perms = line.split()[:2]
            if perms[0] != "r" or "[vvar]" in line or "[vsyscall]" in line:
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            if hi - lo > 1 << 30:
                continue
            at = lo
            while at < hi:
                try:
                    mem.seek(at)
                    data = mem.read(min(chunk + overlap, hi - at))
                except (OSError, OverflowError):
                    break
                if any(n in data for n in needles):
                    return True
                at += chunk
    return False


def test_network_process_never_holds_the_signing_key(agents, op, operator):
    """Issue 22: the host signing key is the parent's alone.  The network
    process's user cannot open it (0600, root's), and after a job has been
    answered and published, the key's private scalar is nowhere in the
    network process's memory, while the parent's holds it, and the network
    process's holds its TLS key (which shows the search finds keys).  On main before this change the network process
    loaded the key it signed with."""
    from cryptography.hazmat.primitives import serialization
    a = start(agents)
    n = wait_until(lambda: net_pid(a), 10, what="the network process")
    assert ping(op, operator)["status"] == "pass"
    key_path = a.pki.sign_key("h1")
    muster = pwd.getpwnam("muster")
    r = subprocess.run(["setpriv", f"--reuid={muster.pw_uid}", f"--regid={muster.pw_gid}",
                        "--clear-groups", "cat", str(key_path)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr, (r.returncode, r.stderr)
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    d = key.private_numbers().private_value
    needles = [d.to_bytes(32, "big"), d.to_bytes(32, "little")]
    assert memory_holds(a.pid, needles), "the search must find the key in the parent"
    assert not memory_holds(n, needles), "the network process holds the signing key"
    # ... and it does find a key in the network process: its TLS key.
    tls = serialization.load_pem_private_key(a.pki.key("h1").read_bytes(), None)
    t = tls.private_numbers().private_value
    assert memory_holds(n, [t.to_bytes(32, "big"), t.to_bytes(32, "little")]), \
        "the search must find the TLS key in the network process"
