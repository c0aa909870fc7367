# SPDX-License-Identifier: Apache-2.0
"""The parent against a lying network process (issue 22, design.md §8).

There is no scripted network process yet, so each test does to
state_dir/net what a network process running someone else's code could do
(it owns those files): plant a FIFO or a symlink where the parent reads,
forget its own floors, offer an older signed build.  Everything else is
real: TLS mosquitto, musterd as root with its network process, the
runner, OpenPGP signatures from scripts/gen-keys.
"""
import hashlib
import os
import shutil
import signal
import threading
import time

import pytest

from muster_fixtures import (
    MODULES_DIR, all_procs, assert_no_sanitizer_reports, log_count, module_payloads,
    new_job, now_ms, run_job, topic, wait_until,
)
from update_fixtures import UpdAgent, publish_release, selftest_module

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the boundary exists only as root (one process otherwise)")

MODULE = "os.release"
CHANNEL = "canary"


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


@pytest.fixture
def op(mqtt):
    return mqtt("op:alice")


@pytest.fixture
def pub(mqtt):
    return mqtt("pub:release")


def so_bytes(pad=0):
    return (MODULES_DIR / f"{MODULE}.so").read_bytes() + b"\0" * pad


def publish(pub, keys, so, version, published_at=None):
    ptr, art, sha = module_payloads(keys, so, MODULE, version, 1,
                                    published_at=published_at)
    pub.publish(topic("modules", MODULE, sha), art, retain=True)
    pub.publish(topic("modules", MODULE), ptr, retain=True)
    return sha


def start(agents, name):
    return agents(name, wake_port=0, extra={"modules": {
        "fetch_timeout": "3s", "prefetch_delay": "0"}}).start()


def run(op, operator, host, timeout=20, **fields):
    body = new_job("run", f"host/{host}", module=MODULE, **fields)
    got = run_job(op, operator, body, [host], timeout=timeout)
    assert host in got, f"no result for {body['id']} from {host}"
    return got[host]


def ping(op, operator, agent, timeout=10):
    body = new_job("ping", f"host/{agent.name}")
    got = run_job(op, operator, body, [agent.name], timeout=timeout)
    assert got.get(agent.name, {}).get("status") == "pass", got


def net_uid(agent):
    return (agent.state_dir / "net").stat().st_uid


def net_pid(agent):
    kids = [p["pid"] for p in all_procs()
            if p["ppid"] == agent.pid and p["comm"] == "musterd"]
    return kids[0] if len(kids) == 1 else None


def assert_answers_sigterm(agent):
    """The parent reads its signals in its event loop: it logs "stopping"
    within a second of SIGTERM if the loop is running (a parent blocked
    in open() never does), then exits after its goodbye to the network
    process, whose length depends on the load, hence the wider bound."""
    before = log_count(agent, "signal 15: stopping")
    agent.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: log_count(agent, "signal 15: stopping") > before, 1.0,
               what="the parent to act on SIGTERM")
    try:
        agent.proc.wait(10)
    except Exception:
        agent.proc.kill()
        agent.proc.wait()
        raise AssertionError("musterd did not exit within 10 s of SIGTERM")


# ---- item 4: FIFOs and symlinks where the parent reads ---------------------------


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_fifo_or_symlink_in_the_module_cache(agents, op, operator, pub, keys,
                                             kind):
    """The parent reads net/modcache/<sha>.ptr for every cached run.  A
    FIFO there once blocked it in open() for good (deaf to SIGTERM); a
    symlink to a root-only file must not be followed.  The network
    process itself only re-reads the .so, so the run reaches the parent."""
    sha = publish(pub, keys, so_bytes(), "1.0.0")
    h1 = start(agents, "h1")
    assert run(op, operator, "h1")["status"] == "pass"
    ptr = h1.state_dir / "net" / "modcache" / f"{sha}.ptr"
    good = ptr.read_bytes()
    ptr.unlink()
    if kind == "fifo":
        os.mkfifo(ptr, 0o600)
        os.chown(ptr, net_uid(h1), -1)
    else:
        # A good pointer, readable by root only: followed, the run
        # would pass.
        secret = h1.state_dir / "root-only.ptr"
        secret.write_bytes(good)
        os.chmod(secret, 0o600)
        os.symlink(secret, ptr)
        os.lchown(ptr, net_uid(h1), -1)
    r = run(op, operator, "h1", timeout=10)
    assert r["status"] == "error", r
    assert "not a regular file of the network process's" in r.get("reason", ""), r
    # Still answering, and a SIGTERM is acted on at once.
    ping(op, operator, h1)
    assert_answers_sigterm(h1)


def test_spool_link_moves_nothing_outside(agents, op, operator, tmp_path):
    """When it starts a new network process the parent reads net/spool
    again (results the old one spooled).  A link the old one put there
    must not make root rename a damaged file or remove an old marker in
    the folder it points to."""
    h1 = start(agents, "h1")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o755)
    files = {"00000000000000000007.res": b"not a spooled result",
             "last-00000000000000000001": b"", "last-00000000000000000002": b""}
    for name, data in files.items():
        (outside / name).write_bytes(data)
    spool = h1.state_dir / "net" / "spool"
    shutil.rmtree(spool)
    os.symlink(outside, spool)
    os.lchown(spool, net_uid(h1), -1)
    old = net_pid(h1)
    os.kill(old, signal.SIGKILL)
    # The parent's look at the spool when it starts the next one.
    wait_until(lambda: log_count(h1, "started (user") >= 2, 20,
               what="the parent to start a new network process")
    time.sleep(0.5)
    assert sorted(p.name for p in outside.iterdir()) == sorted(files), \
        list(outside.iterdir())


# ---- item 3: module floors kept by the parent ---------------------------------


def test_older_signed_module_refused_by_the_parent(agents, op, operator, pub, keys):
    """The parent ran v2; a network process that forgets its own floor
    and offers the older signed v1 (replayed on the broker) gets nothing
    for an unpinned job.  A job pinning v1 still runs it: the refusal is
    the floor, not v1."""
    t0 = now_ms()
    sha1 = publish(pub, keys, so_bytes(), "1.0.0", published_at=t0 - 60000)
    h1 = start(agents, "h1")
    assert run(op, operator, "h1")["module_sha256"] == sha1
    sha2 = publish(pub, keys, so_bytes(pad=64), "2.0.0", published_at=t0)
    wait_until(lambda: (h1.state_dir / "net" / "modcache" / f"{sha2}.so").exists(),
               10, what="v2 to be prefetched")
    r = run(op, operator, "h1")
    assert r["status"] == "pass" and r["module_sha256"] == sha2, r
    # What a lying network process can do to its own files: forget v2 and
    # its floor.  The broker replays v1's pointer.
    h1.stop()
    cache = h1.state_dir / "net" / "modcache"
    for f in cache.glob(f"{sha2}*"):
        f.unlink()
    (cache / "floor" / MODULE).unlink()
    publish(pub, keys, so_bytes(), "1.0.0", published_at=t0 - 60000)
    h1.start()
    r = run(op, operator, "h1")
    assert r["status"] == "error", r
    assert "older than the newest this host accepted" in r.get("reason", ""), r
    assert log_count(h1, "older than the newest this host accepted") >= 1
    r = run(op, operator, "h1", module_sha256=sha1)
    assert r["status"] == "pass" and r["module_sha256"] == sha1, r
    # The floor that refused it: the parent's, root's, not lowered by the
    # pinned run.
    floor = h1.state_dir / "floors" / "modules" / MODULE
    assert int(floor.read_text()) == t0 and floor.stat().st_uid == 0


def test_local_answer_does_not_replace_a_signed_build(agents, op, operator, pub,
                                                     keys):
    """prefer = signed: once the parent has run a signed build of a module,
    a "local" answer from the network process is refused for an unpinned
    job.  Here the network process answers "local" honestly (the pointer
    is retired and a local file appeared); a lying one could say it at
    any time, and the parent cannot tell the two apart."""
    sha = publish(pub, keys, so_bytes(), "1.0.0")
    h1 = start(agents, "h1")
    assert run(op, operator, "h1")["module_sha256"] == sha
    local = so_bytes(pad=8)
    h1.modules_dir.mkdir(parents=True, exist_ok=True)
    p = h1.modules_dir / f"{MODULE}.so"
    p.write_bytes(local)
    os.chmod(p, 0o644)
    local_sha = hashlib.sha256(local).hexdigest()
    pub.publish(topic("modules", MODULE), b"", retain=True)
    wait_until(lambda: log_count(h1, f"module {MODULE}: retired") >= 1, 5,
               what="the agent to see the retirement")
    r = run(op, operator, "h1")
    assert r["status"] == "error", r
    assert "prefer = signed" in r.get("reason", ""), r
    # Pinned, the local file runs.
    r = run(op, operator, "h1", module_sha256=local_sha)
    assert r["status"] == "pass" and r["module_sha256"] == local_sha, r


# ---- item 1: the release floor kept by the parent -----------------------------


@pytest.fixture
def upd_agent(broker, keys, tmp_path):
    made = []

    def make(name):
        a = UpdAgent(name, broker, keys, tmp_path / f"agent-{name}", channel=CHANNEL,
                     groups=[])
        selftest_module(a)
        made.append(a)
        return a
    yield make
    for a in made:
        a.cleanup()


def update_state(agent):
    s = agent.status(timeout=1) or {}
    return s.get("update") or {}


def update_reason(agent):
    return update_state(agent).get("reason", "")


def test_older_signed_release_refused_by_the_parent(upd_agent, pub, keys, op,
                                                    operator):
    """A release staged once raises the parent's floor; a network process
    that forgets its own floor (net/release/floor) and forwards an older
    signed release gets it refused before anything is staged or run.
    The binaries are not real agents: the newer one fails its self-test
    (so staging happened), the older must never get that far."""
    a = upd_agent("h1").start()
    t0 = now_ms()
    publish_release(pub, keys, CHANNEL, "9.9.9", b"not an agent 9.9.9",
                    b"not a runner 9.9.9", published_at=t0)
    wait_until(lambda: "self-test" in update_reason(a), 30, interval=0.3,
               what="9.9.9 staged and its self-test failed")
    spawned = log_count(a, "self-test running")
    (a.state_dir / "net" / "release" / "floor").unlink()
    publish_release(pub, keys, CHANNEL, "9.9.8", b"not an agent 9.9.8",
                    b"not a runner 9.9.8", published_at=t0 - 1000)
    wait_until(lambda: "rollback" in update_reason(a), 30, interval=0.3,
               what="9.9.8 refused by the parent")
    assert "older than the newest this host accepted" in update_reason(a)
    assert log_count(a, "self-test running") == spawned
    assert not list(a.binary.parent.glob("*.staged"))
    ping(op, operator, a)
    floor = a.state_dir / "floors" / "release"
    assert int(floor.read_text()) == t0 and floor.stat().st_uid == 0


# ---- item 2: the self-test clean-up stays in its tree -------------------------


def test_selftest_cleanup_race_deletes_nothing_outside(upd_agent, pub, keys, tmp_path):
    """state_dir/selftest is emptied before each self-test, and folders in
    it may belong to the network process's user.  While the parent walks
    it, a folder is swapped again and again for a symlink to a folder
    outside holding files of the same names: a walk by path (nftw and
    remove()) deletes some of those; a walk by directory fd cannot."""
    a = upd_agent("h1").start()
    names = [f"f{i}" for i in range(3000)]
    outside = tmp_path / "outside"
    outside.mkdir()
    for n in names:
        (outside / n).write_text("root's")
    st = a.state_dir / "selftest"
    # Moved out of the walked tree (as the network process would, into
    # its own net/), so the walk meets only "d": folder or symlink.
    d, moved = st / "d", a.state_dir / "d.moved"
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).write_text("x")
    stop = threading.Event()

    # The walk removes entries in readdir order: once the first is gone it
    # is inside d, and swapping d for a symlink from then on sends every
    # path-based remove() outside.
    first = d / os.listdir(d)[0]

    def racer():
        while not stop.is_set() and os.path.lexists(first):
            time.sleep(0.0002)
        while not stop.is_set():
            for step in (lambda: os.rename(d, moved), lambda: os.symlink(outside, d),
                         lambda: time.sleep(0.002), lambda: os.unlink(d),
                         lambda: os.rename(moved, d)):
                try:
                    step()
                except OSError:
                    pass
    t = threading.Thread(target=racer, daemon=True)
    t.start()
    try:
        publish_release(pub, keys, CHANNEL, "9.9.9", b"not an agent 9.9.9",
                        b"not a runner 9.9.9")
        wait_until(lambda: update_state(a).get("state") == "failed", 30,
                   interval=0.3, what="the self-test to have been tried")
    finally:
        stop.set()
        t.join(5)
    gone = [n for n in names if not (outside / n).exists()]
    assert not gone, f"{len(gone)} files outside state_dir/selftest deleted"
