# SPDX-License-Identifier: Apache-2.0
"""muster watch loses nothing over a short disconnect (--session), and says
so when results were really lost (the per-host result seq, design.md §3)."""
from __future__ import annotations

import json
import os
import queue
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from muster_fixtures import (
    MUSTER_CLI, host_sign, now_ms, run_cli, sanitizer_report, topic, write_cli_conf,
)


class CutProxy:
    """A TCP forwarder to the broker whose connections the test can cut, and
    which refuses new ones while closed: the watcher's link to the broker
    goes away and comes back, everything else stays up."""

    def __init__(self, port: int):
        self.target = port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.open = True
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if not self.open:
                c.close()
                continue
            u = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket):
        try:
            while (d := a.recv(65536)):
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.open = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns = []

    def close(self):
        self.cut()
        self.lsock.close()


class Watch:
    def __init__(self, conf: Path, home: Path, err: Path, *args: str):
        env = dict(os.environ, MUSTER_CONFIG=str(conf), HOME=str(home))
        self.err = err
        self.p = subprocess.Popen([str(MUSTER_CLI), "watch", "--json", *args],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=open(err, "w"), text=True, env=env)
        self.q: queue.Queue = queue.Queue()
        self.lines: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.q.put(json.loads(line))

    def drain(self, until=None, timeout: float = 0.0) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if until is not None and until(self):
                return True
            left = deadline - time.monotonic()
            try:
                self.lines.append(self.q.get(timeout=max(left, 0.01)))
            except queue.Empty:
                if left <= 0:
                    return until is None or until(self)

    def jobs(self) -> set[str]:
        return {o["job"] for o in self.lines if o.get("type") == "result"}

    def gaps(self) -> list[dict]:
        return [o for o in self.lines if o.get("type") == "gap"]

    def stop(self) -> str:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        text = self.err.read_text()
        assert sanitizer_report(text) is None, text
        return text


def ping(conf: Path, home: Path) -> dict:
    r = run_cli("ping", "-H", "h1", "--json", "--wait", "10s", conf=conf,
                env={"HOME": home})
    assert r.returncode == 0, r.stdout + r.stderr
    return [json.loads(s) for s in r.stdout.splitlines()
            if '"type":"result"' in s][0]


@pytest.mark.parametrize("how", ["flag", "config"])
def test_short_disconnect_loses_nothing_with_a_session(broker, agents, keys, tmp_path,
                                                       how):
    agents("h1").start()
    conf = write_cli_conf(tmp_path / "direct.conf", broker, keys=keys)
    proxy = CutProxy(broker.port)
    via = write_cli_conf(tmp_path / "via.conf", broker, keys=keys,
                         uri=f"ssl://localhost:{proxy.port}")
    name = "t" + secrets.token_hex(4)
    if how == "flag":
        kept = Watch(via, tmp_path, tmp_path / "kept.err", "--session", name)
    else:
        # [watch] session= in muster.conf does what --session does.
        kept_conf = write_cli_conf(tmp_path / "kept.conf", broker, keys=keys,
                                   uri=f"ssl://localhost:{proxy.port}",
                                   extra=f"\n[watch]\nsession = {name}\n"
                                         "session_expiry = 10m\n")
        kept = Watch(kept_conf, tmp_path, tmp_path / "kept.err")
    clean = Watch(via, tmp_path, tmp_path / "clean.err")
    try:
        # Both watchers are subscribed once both show a ping.
        for _ in range(40):
            job = ping(conf, tmp_path)["job"]
            if kept.drain(lambda w: job in w.jobs(), 1) and \
                    clean.drain(lambda w: job in w.jobs(), 1):
                break
        else:
            pytest.fail("the watchers never showed a ping")
        first = ping(conf, tmp_path)
        assert first["seq"] >= 1
        for w in (kept, clean):
            assert w.drain(lambda w: first["job"] in w.jobs(), 10)

        proxy.cut()
        away = [ping(conf, tmp_path) for _ in range(15)]
        seqs = [r["seq"] for r in away]
        assert seqs == list(range(first["seq"] + 1, first["seq"] + 16)), seqs
        time.sleep(0.3)
        proxy.open = True
        sent = {r["job"] for r in away}
        # The clean watcher has to be back and subscribed to see a new
        # result; keep pinging until it has one from after the outage.
        for _ in range(60):
            last = ping(conf, tmp_path)["job"]
            sent.add(last)
            if clean.drain(lambda w: last in w.jobs(), 1):
                break
        else:
            pytest.fail("the clean watcher never came back:\n" + clean.err.read_text())
        want = sent
        assert kept.drain(lambda w: want <= w.jobs(), 20), \
            (sorted(want - kept.jobs()), kept.err.read_text())
        kept.drain(timeout=0.5)
        # The session watcher saw everything, so no gap; the clean one lost
        # the results sent while it was away, and says how many.
        assert kept.gaps() == [], kept.lines
        missed = sum(g["missed"] for g in clean.gaps() if g["host"] == "h1")
        lost = len(sent - clean.jobs())
        assert lost > 0 and missed == lost, (missed, lost, clean.lines)
    finally:
        kept_err, clean_err = kept.stop(), clean.stop()
        proxy.close()
    assert "lost the broker" in kept_err and "connected again" in kept_err


def test_seq_survives_an_agent_restart(agents, broker, keys, tmp_path):
    a = agents("h1").start()
    conf = write_cli_conf(tmp_path / "direct.conf", broker, keys=keys)
    s1 = ping(conf, tmp_path)["seq"]
    s2 = ping(conf, tmp_path)["seq"]
    assert s2 == s1 + 1
    # Acknowledged, the spool is empty: the high mark alone carries on.
    a.restart()
    assert ping(conf, tmp_path)["seq"] == s2 + 1


def test_a_seq_jump_is_reported(broker, agents, keys, mqtt, tmp_path):
    agents("h1").start()
    conf = write_cli_conf(tmp_path / "direct.conf", broker, keys=keys)
    w = Watch(conf, tmp_path, tmp_path / "w.err")
    try:
        for _ in range(40):
            job = ping(conf, tmp_path)["job"]
            if w.drain(lambda w: job in w.jobs(), 1):
                break
        else:
            pytest.fail("the watcher never showed a ping")
        seq = ping(conf, tmp_path)["seq"]
        # h1's own credentials publish a result numbered 4 past the last
        # real one: three results are missing.
        h1 = mqtt("h1")
        pki = broker.pki
        body = {"v": 1, "job": "jump-1", "host": "h1", "kind": "ping",
                "status": "pass", "started_at": now_ms(), "finished_at": now_ms(),
                "agent_version": "0.1.0", "seq": seq + 4}
        h1.publish(topic("results", "jump-1", "h1"),
                   host_sign(pki.sign_key("h1"), pki.sign_cert("h1"), body))
        assert w.drain(lambda w: "jump-1" in w.jobs(), 10), w.lines
        assert w.gaps() == [{"type": "gap", "host": "h1", "missed": 3}], w.lines
        # Counting goes on from there: the agent's next real result is
        # older, so no new gap.
        ping(conf, tmp_path)
        w.drain(timeout=1)
        assert len(w.gaps()) == 1, w.lines
    finally:
        w.stop()
