# SPDX-License-Identifier: Apache-2.0
"""The parent against a scripted, lying network process (issue 22).

The test build's hook MUSTER_TEST_NET_EXEC (cmake -DMUSTER_TEST_HOOKS,
never in a package) makes the real parent exec tests/system/hostile_net.py
in place of `musterd --net`; the test then speaks the frames itself.  The
rest is real: musterd as root, the runner, operator signatures, modules.
"""
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from hostile_net import EXEC_ENV, HostileNet, priv
from muster_fixtures import (
    TEST_MODULES_DIR, assert_no_sanitizer_reports, cert_der, host_sigs, install_modules,
    is_agent_envelope, is_sanitized, new_job, target_topic, unpack, wait_until,
)

# The memory bounds are measured as the parent's peak RSS, which says
# nothing under ASan (its quarantine keeps freed memory; every run is
# several times slower, 1200 runs do not fit the test's time): the two
# tests of a peer that never reads run in the plain build, which CI runs
# first.
not_under_asan = pytest.mark.skipif(
    is_sanitized(), reason="RSS bounds are not meaningful under ASan's quarantine")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the boundary exists only as root (one process otherwise)")


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


@pytest.fixture
def hostile(agents):
    """hostile(name, **agent_kw) -> (Agent, HostileNet), not yet started."""
    made = []

    def make(name="h1", **kw):
        d = tempfile.mkdtemp(prefix="hn-")	# a short path for AF_UNIX
        net = HostileNet(Path(d) / "s")
        a = agents(name, wake_port=0, **kw)
        if EXEC_ENV.encode() not in a.binary.read_bytes():
            pytest.skip(f"{a.binary} is built without MUSTER_TEST_HOOKS")
        a.env.update(net.env())
        made.append((net, d))
        return a, net

    yield make
    for net, d in made:
        net.close()
        shutil.rmtree(d, ignore_errors=True)


def peak_kib(pid):
    """The most memory the process has held (its RSS high-water mark)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


class Current:
    """The network process of the moment: a send to one the parent has
    replaced (it closed its end) goes to its successor instead."""

    def __init__(self, net, peer):
        self.net, self.peer, self.replaced = net, peer, 0

    def send(self, msg):
        try:
            self.peer.send(msg)
        except (BrokenPipeError, ConnectionResetError):
            self.peer.close()
            self.peer = self.net.live()
            self.replaced += 1
            self.peer.send(priv("ready"))
            self.peer.send(msg)


def signed_body(payload):
    """The body of what the parent hands over: an agent envelope it
    signed (the network process holds no signing key, design.md §8)."""
    d = unpack(payload)
    assert is_agent_envelope(d), d
    return unpack(d["body"])


def job_frame(operator, body):
    return priv("job", topic=target_topic(body["target"]),
                payload=operator.envelope(body))


def ping_round_trip(peer, operator, host="h1", timeout=20):
    """A ping through the channel and its result back: every frame the
    parent sent before that result has been read (the channel is ordered)."""
    body = new_job("ping", f"host/{host}")
    peer.send(job_frame(operator, body))
    seen = []

    def mine(m):
        seen.append(m)
        return m.get("t") == "result" and m.get("job") == body["id"]
    peer.expect(mine, timeout, what=f"the result of ping {body['id']}")
    return body["id"], seen[:-1]


# run.c's line for each run's result (any status: a runner may crash on a
# loaded machine, which is an answer too).
FINISHED = re.compile(r"job (\S+): (pass|warn|fail|error|crashed|timeout|"
                      r"cancelled|rejected|interrupted)\b")
NOT_KEPT = re.compile(r"job (\S+): \d+ results \(\d+ bytes\) wait .* not kept")


@not_under_asan
@pytest.mark.parametrize("stream", [False, True], ids=["results", "stream"])
def test_a_peer_that_never_reads_keeps_the_parent_bounded(hostile, operator, stream):
    """A network process that stops reading (and never acknowledges) must
    not grow the parent.  Results: 1200 results of 64 KiB (the most output
    a result holds; the old parent grew by about 90 MiB, and more with
    every one) fill the pending list to its bound.  Stream: 300 stream
    runs add an event per line of output (the old parent grew by about as
    much), so the outgoing buffer meets its bound and the network process
    is replaced.  Either way its peak RSS stays within 48 MiB of where it
    was (the bounds allow 16 MiB of pending results and about as much again
    waiting in the channel); the pending results go to the next network
    process, and those past the bound are answered "interrupted" at the
    next start, so none is lost."""
    n, out = (300 if stream else 1200), 64 * 1024
    a, net = hostile(max_jobs=4)
    install_modules(a, "flood", src=TEST_MODULES_DIR)
    a.start(wait_online=False)
    p = net.accept()
    p.send(priv("ready"))
    ping = ping_round_trip(p, operator)[0]
    p.send(priv("spooled", job=ping))
    ping_round_trip(p, operator)	# and that one's "spooled" is read
    base = peak_kib(a.pid)

    # Each run's module, as a network process answers "want" (the local
    # build), without reading the wants: this one reads nothing more, nor
    # acknowledges.  In batches: a run holds its module's fd until it ends.
    # If the parent replaces it, its successor does the same.
    cur = Current(net, p)
    sha = hashlib.sha256((a.modules_dir / "flood.so").read_bytes()).hexdigest()
    ids = []
    for _ in range(n // 100):
        batch = []
        for _ in range(100):
            body = new_job("run", "host/h1", module="flood", stream=stream or None,
                           args={"bytes": out + 4096}, timeout_ms=60000)
            batch.append(body["id"])
            cur.send(job_frame(operator, body))
        ids += batch
        # Taken, so waiting for their module (intake.c logs it after the flush).
        wait_until(lambda: all(f"accepted job {i} " in a.log() for i in batch), 60,
                   what="the batch accepted")
        for i in batch:
            cur.send(priv("module", job=i, source="local", sha256=sha))
        wait_until(lambda: {i for i, _ in FINISHED.findall(a.log())} >= set(batch),
                   120, what="the batch finished")
    grown = (peak_kib(a.pid) - base) // 1024
    print(f"the parent grew by {grown} MiB")
    assert grown < 48, f"the parent grew by {grown} MiB for {n} unread results"
    if stream:
        assert "stopped reading: replacing it" in a.log()

    # Nothing lost: the next network process gets every result still
    # pending; the rest were dropped from memory with a log line ...
    dropped = set(NOT_KEPT.findall(a.log()))
    assert dropped, "over the bound, some result must have been left out"
    cur.peer.close()	# if the parent has not replaced it already
    p2 = net.live()
    p2.send(priv("ready"))
    _, before = ping_round_trip(p2, operator)
    resent = {m["job"] for m in before if m.get("t") == "result"} & set(ids)
    for j in resent:
        p2.send(priv("spooled", job=j))
    assert not resent & dropped, resent & dropped
    assert resent | dropped == set(ids), set(ids) - resent - dropped
    ping_round_trip(p2, operator)	# the "spooled" frames are taken

    # ... and are answered "interrupted" by the agent's next start.
    a.stop()
    a.start(wait_online=False)
    p3 = net.accept(20)
    p3.send(priv("ready"))
    _, after = ping_round_trip(p3, operator)
    interrupted = {m["job"] for m in after if m.get("t") == "result" and
                   signed_body(m["payload"]).get("status") == "interrupted"}
    assert dropped <= interrupted, dropped - interrupted


def test_a_flood_of_huge_job_frames_keeps_the_parent_bounded(hostile, operator):
    """200 job frames of nearly the largest size the channel takes (1 MiB
    payloads, not valid envelopes), sent as fast as the parent reads: its
    peak RSS stays within 48 MiB and it still answers a ping after them
    (the reader holds one frame at a time; a regression test: the old
    parent passes it too)."""
    a, net = hostile()
    a.start(wait_online=False)
    p = net.accept()
    p.send(priv("ready"))
    ping_round_trip(p, operator)
    base = peak_kib(a.pid)
    junk = priv("job", topic=target_topic("host/h1"), payload=b"\x93" * (1 << 20))
    for _ in range(200):
        p.send(junk)
    ping_round_trip(p, operator, timeout=60)
    grown = (peak_kib(a.pid) - base) // 1024
    assert grown < 48, f"the parent grew by {grown} MiB for 200 huge frames"
    assert a.running


def test_a_reason_with_newlines_is_logged_escaped(hostile, operator):
    """The network process's words reach the parent's log as one line: a
    failed set-up's reason and a module answer's reason, each carrying a
    newline that would start a forged log line and a terminal escape."""
    forged = "musterd[1]: FORGED job j-0: pass"
    a, net = hostile()
    install_modules(a, "flood", src=TEST_MODULES_DIR)
    a.start(wait_online=False)
    p = net.accept()
    p.send(priv("failed", reason=f"set-up failed\n{forged}\x1b[2J\r"))
    p.close()
    p2 = net.accept(20)		# the parent took the first one's end
    p2.send(priv("ready"))
    body = new_job("run", "host/h1", module="flood", args={"bytes": 10})
    p2.send(job_frame(operator, body))
    m = p2.expect(lambda m: m.get("t") == "want" and m["job"] == body["id"], 20,
                  what="a want")
    p2.send(priv("module", job=m["job"], source="none",
                 reason=f"no build\n{forged}\x1b]0;x\x07"))
    res = p2.expect(lambda m: m.get("t") == "result" and m["job"] == body["id"], 20,
                    what="the run's result")
    assert signed_body(res["payload"])["status"] == "error"
    log = a.log()
    lines = log.splitlines()
    assert not [ln for ln in lines if ln.lstrip().startswith("musterd[1]: FORGED")], \
        "a reason started a log line of its own"
    assert "\x1b" not in log and "\r" not in log.replace("\r\n", "\n")
    assert [ln for ln in lines if "set-up failed?musterd[1]: FORGED" in ln], log[-3000:]
    assert [ln for ln in lines if "no build?musterd[1]: FORGED" in ln], log[-3000:]


def test_the_parent_signs_what_it_hands_over_and_nothing_a_peer_asks(hostile, operator):
    """The host signing key is the parent's alone (issue 22): every
    presence, facts and result frame it hands the network process is an
    agent envelope already signed with hosts/h1.sign.crt and passes the
    CLI's checks; no frame makes it sign bytes of the peer's.  What a peer
    may report, its release check's state, is taken only as fetching,
    refused or staging, with its reason escaped inside the signed status.
    Fails on main before this change: there the parent sent bodies, and the
    network process signed them with the TLS key."""
    a, net = hostile()
    a.start(wait_online=False)
    p = net.accept(20)
    sigs = host_sigs(a.pki)
    status_topic = "muster/v1/hosts/h1/status"

    def presence(n, what):
        m = p.expect(lambda m: m.get("t") == "status" and m.get("n") == n, 20, what=what)
        return sigs.open(status_topic, unpack(m["payload"]))

    will = presence(1, "the will")
    assert (will["state"], will["reason"]) == ("offline", "lost"), will
    bye = presence(2, "the goodbye")
    assert (bye["state"], bye["reason"]) == ("offline", "shutdown"), bye
    p.send(priv("ready"))
    facts = p.expect(lambda m: m.get("t") == "facts", 20, what="the facts")
    assert sigs.open("muster/v1/hosts/h1/facts", unpack(facts["payload"]))["host"] == "h1"
    p.send(priv("connected"))
    online = presence(0, "the online status, signed as of the connect")
    assert online["state"] == "online" and online["host"] == "h1", online
    # The status carries the signing certificate, which signed the facts.
    assert online["cert_der"] == cert_der(a.pki.sign_cert("h1"))
    assert unpack(facts["payload"])["cert"] == \
        hashlib.sha256(online["cert_der"]).hexdigest()

    # A made-up state is dropped; a real one's reason arrives escaped.
    p.send(priv("relstate", name="healthy", version="9.9.9", reason="all good"))
    p.send(priv("relstate", name="refused", version="9.9.9",
                reason="bad signature\nmusterd: forged line\x1b[31m"))
    seen = []

    def refused(m):
        if m.get("t") == "status" and m.get("n") == 0:
            seen.append(sigs.open(status_topic, unpack(m["payload"])))
            return (seen[-1].get("update") or {}).get("state") == "refused"
        return False
    p.expect(refused, 20, what="a status with the refused release")
    assert not any((b.get("update") or {}).get("state") == "healthy" for b in seen), seen
    reason = seen[-1]["update"]["reason"]
    assert "\n" not in reason and "\x1b" not in reason, reason
    assert "bad signature" in reason and "forged line" in reason, reason

    # A result: signed and numbered by the parent.
    body = new_job("ping", "host/h1")
    p.send(job_frame(operator, body))
    m = p.expect(lambda m: m.get("t") == "result" and m.get("job") == body["id"], 20,
                 what="the ping's result")
    r = sigs.open(f"muster/v1/results/{body['id']}/h1", unpack(m["payload"]))
    assert r["status"] == "pass" and r["seq"] >= 1, r
