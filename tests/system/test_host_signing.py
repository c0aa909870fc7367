# SPDX-License-Identifier: Apache-2.0
"""Signed agent messages (design.md §3) seen from `muster`: a real broker, a
real agent h1, and a scripted host h2 that connects with its own real
certificate and answers jobs with whatever the test wants it to say -
forged, mismatched, retained, or hostile text.  The CLI must count forged
messages, never as answers, and report the real results as if the forged
ones did not exist.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import msgpack
import pytest

from muster_fixtures import (
    MUSTER_CLI, TEST_MODULES_DIR, Agent, Broker, Client, cert_der, gen_pki,
    host_sign, install_modules, now_ms, run_cli, topic, unpack, write_cli_conf,
)

pytestmark = pytest.mark.skipif(not MUSTER_CLI.exists(),
                                reason=f"{MUSTER_CLI} is not built")

# A result body as h2 would send it; `reply` functions return (topic, body,
# retain) tuples for one job body.
Reply = Callable[[dict], list]


class ScriptedHost:
    """h2 on the broker with its own TLS certificate; signs with key/cert
    (its own signing pair by default, or another CA's) and answers each job
    it receives with what self.reply says."""

    def __init__(self, broker: Broker, name: str, key: Path, cert: Path):
        self.broker, self.name, self.key, self.cert = broker, name, key, cert
        self.reply: Optional[Reply] = None
        self.error: Optional[Exception] = None
        self.client = Client(broker, name)
        self.client.subscribe(topic("hosts", name, "jobs"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def signed(self, body: dict | bytes) -> bytes:
        return host_sign(self.key, self.cert, body)

    def status(self, host: Optional[str] = None, state: str = "online") -> bytes:
        t = now_ms()
        return self.signed({"v": 1, "host": host or self.name, "state": state,
                            "version": "0.1.0", "channel": "stable",
                            "groups": ["web"], "started_at": t, "at": t,
                            "cert_der": cert_der(self.cert)})

    def publish_status(self, **kw) -> None:
        self.client.publish(topic("hosts", self.name, "status"), self.status(**kw),
                            retain=True)

    def result(self, job_: dict, **over) -> dict:
        t = now_ms()
        r = {"v": 1, "job": job_["id"], "host": self.name, "kind": job_["kind"],
             "status": "pass", "summary": "pong", "started_at": t, "finished_at": t,
             "agent_version": "0.1.0"}
        r.update(over)
        return r

    def _loop(self) -> None:
        jobs = topic("hosts", self.name, "jobs")
        while not self._stop.is_set():
            m = self.client.get(0.1, topic=jobs)
            if m is None or self.reply is None:
                continue
            job = unpack(unpack(m.payload)["body"])
            try:
                for t, payload, retain in self.reply(job):
                    self.client.publish(t, payload, retain=retain)
            except Exception as e:	# shown by the test that set reply
                self.error = e

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()


@pytest.fixture(scope="module")
def world(pki, keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("hostsig")
    other = gen_pki(base / "other-pki", hosts=["h2:web"])	# another CA
    broker = Broker(pki, base / "broker").start()
    a = Agent("h1", broker, keys, base / "agent-h1", groups=["web"])
    install_modules(a, "hang", src=TEST_MODULES_DIR)
    a.start()
    h2 = ScriptedHost(broker, "h2", pki.sign_key("h2"), pki.sign_cert("h2"))
    h2.publish_status()
    conf = write_cli_conf(base / "muster.conf", broker, keys=keys)
    try:
        yield type("World", (), dict(broker=broker, pki=pki, other=other, h1=a,
                                     h2=h2, conf=conf))
    finally:
        h2.close()
        a.cleanup()
        broker.stop()


@pytest.fixture
def h2(world):
    """The scripted h2, its own status back in place after each test."""
    world.h2.key, world.h2.cert = world.pki.sign_key("h2"), world.pki.sign_cert("h2")
    world.h2.reply = None
    world.h2.error = None
    world.h2.publish_status()
    yield world.h2
    assert world.h2.error is None, repr(world.h2.error)
    world.h2.reply = None
    world.h2.key, world.h2.cert = world.pki.sign_key("h2"), world.pki.sign_cert("h2")
    world.h2.publish_status()


def cli(world, *args, timeout: float = 30):
    return run_cli(*args, conf=world.conf, timeout=timeout)


def ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def res_topic(job: dict, host: str) -> str:
    return topic("results", job["id"], host)


def test_genuine_answers_have_no_forged_line(world, h2):
    h2.reply = lambda j: [(res_topic(j, "h2"), h2.signed(h2.result(j)), False)]
    r = cli(world, "ping", "-H", "h1", "-H", "h2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "forged" not in r.stdout
    r = cli(world, "ping", "-H", "h1", "-H", "h2", "--json")
    lines = ndjson(r.stdout)
    assert {x["host"] for x in lines if x["type"] == "result"} == {"h1", "h2"}
    assert lines[-1]["forged"] == 0
    ping = next(x for x in lines if x["type"] == "result" and x["host"] == "h1")
    assert ping["data"] == {"running": 0}	# load is in the ping answer


def test_result_naming_another_host_is_forged(world, h2):
    """h2, with its real certificate, answers at once on its own topic a
    result claiming to be h1's pass; h1 really times out a second later.
    Without the check the forged pass would be h1's answer (and the real
    one dropped as a duplicate)."""
    def reply(j):
        return [(res_topic(j, "h2"), h2.signed(h2.result(j, host="h1")), False),
                (res_topic(j, "h2"), h2.signed(h2.result(j, status="pass")), False)]
    h2.reply = reply
    r = cli(world, "run", "-H", "h2", "-H", "h1", "--timeout", "1s", "hang")
    rows = {line.split()[0]: line.split()[1] for line in r.stdout.splitlines()
            if line.startswith(("h1 ", "h2 "))}
    assert rows == {"h1": "timeout", "h2": "pass"}, r.stdout
    assert "forged: 1 message (not counted)" in r.stdout, r.stdout
    assert r.returncode == 1	# h1's timeout, as if the forgery did not exist

    r = cli(world, "run", "-H", "h2", "-H", "h1", "--timeout", "1s", "--json", "hang")
    lines = ndjson(r.stdout)
    forged = [x for x in lines if x["type"] == "forged"]
    assert len(forged) == 1 and forged[0]["topic"].endswith("/h2"), forged
    assert "names host h1" in forged[0]["reason"]
    assert lines[-1]["forged"] == 1 and lines[-1]["exit"] == 1


def test_status_naming_another_host_is_forged(world, h2):
    """h2's retained status claiming h1 went offline: h1 stays online."""
    h2.client.publish(topic("hosts", "h2", "status"),
                      h2.status(host="h1", state="offline"), retain=True)
    r = cli(world, "hosts")
    assert r.returncode == 0, r.stderr
    h1 = [line for line in r.stdout.splitlines() if line.startswith("h1 ")]
    assert len(h1) == 1 and h1[0].split()[1] == "online", r.stdout
    assert not any(line.startswith("h2 ") for line in r.stdout.splitlines())
    assert "forged: 1 message (not counted)" in r.stdout
    r = cli(world, "hosts", "--json")
    forged = [x for x in ndjson(r.stdout) if x.get("type") == "forged"]
    assert len(forged) == 1 and "names host h1" in forged[0]["reason"], r.stdout


def test_other_ca_is_forged(world, h2):
    """h2 connects with its real TLS certificate but signs with a signing
    pair of the same name from another CA: its status and results are
    forged."""
    h2.key, h2.cert = world.other.sign_key("h2"), world.other.sign_cert("h2")
    h2.publish_status()
    h2.reply = lambda j: [(res_topic(j, "h2"), h2.signed(h2.result(j)), False)]
    r = cli(world, "ping", "-H", "h1", "-H", "h2", "--wait", "3s", "--json")
    lines = ndjson(r.stdout)
    assert [x["host"] for x in lines if x["type"] == "result"] == ["h1"]
    forged = [x for x in lines if x["type"] == "forged"]
    assert len(forged) == 2, forged	# the status and the result
    assert all("not trusted" in x["reason"] for x in forged), forged
    assert lines[-1]["missing"] == ["h2"] and lines[-1]["exit"] == 3


def test_job_id_mismatch_is_forged(world, h2):
    h2.reply = lambda j: [(res_topic(j, "h2"),
                           h2.signed(h2.result(j, job="someone-elses-job")), False)]
    r = cli(world, "ping", "-H", "h2", "--wait", "3s")
    assert r.returncode == 3, r.stdout
    assert "forged: 1 message (not counted)" in r.stdout
    r = cli(world, "ping", "-H", "h2", "--wait", "3s", "--json")
    forged = [x for x in ndjson(r.stdout) if x["type"] == "forged"]
    assert len(forged) == 1 and "names job someone-elses-job" in forged[0]["reason"]


def test_retained_result_is_ignored(world, h2):
    """A genuine, signed result published with the retain flag is never an
    answer (nor counted as forged)."""
    sent = []

    def reply(j):
        sent.append(res_topic(j, "h2"))
        return [(res_topic(j, "h2"), h2.signed(h2.result(j)), True)]
    h2.reply = reply
    try:
        r = cli(world, "ping", "-H", "h2", "--wait", "3s", "--json")
        last = ndjson(r.stdout)[-1]
        assert last["answered"] == 0 and last["missing"] == ["h2"], r.stdout
        assert last["forged"] == 0 and r.returncode == 3
    finally:
        for t in sent:
            h2.client.publish(t, b"", retain=True)


HOSTILE = "ok\x1b[2J\x1b]0;owned\x07\rgone\x9b31m"


def test_control_characters_are_escaped(world, h2):
    h2.reply = lambda j: [(res_topic(j, "h2"),
                           h2.signed(h2.result(j, summary=HOSTILE)), False)]
    r = cli(world, "ping", "-H", "h2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not any(c in r.stdout for c in "\x1b\x07\r\x9b"), repr(r.stdout)
    row = next(line for line in r.stdout.splitlines() if line.startswith("h2 "))
    assert row.endswith(r"ok\x1b[2J\x1b]0;owned\x07\x0dgone\xc2\x9b31m"), repr(row)
    # JSON carries the text as it was (jansson escapes the controls).
    r = cli(world, "ping", "-H", "h2", "--json")
    res = next(x for x in ndjson(r.stdout) if x["type"] == "result")
    assert res["summary"] == HOSTILE and "escaped" not in res


def test_bad_utf8_survives_in_json(world, h2):
    def reply(j):
        body = h2.result(j, output=b"caf\xe9 \xff\\x41 ok\n")
        # use_bin_type=False: bytes go out as a msgpack str, as a module's
        # raw output does.
        return [(res_topic(j, "h2"),
                 h2.signed(msgpack.packb(body, use_bin_type=False)), False)]
    h2.reply = reply
    r = cli(world, "ping", "-H", "h2", "--json")
    res = next(x for x in ndjson(r.stdout) if x["type"] == "result")
    # output is a list of lines (the runner's form); the last newline
    # ends the last line.
    assert res["output"] == ["caf\\xe9 \\xff\\\\x41 ok"], res
    assert res["escaped"] == ["output"]
    assert res["summary"] == "pong"


def test_watch_counts_forged(world, h2, tmp_path):
    """muster watch shows genuine results and a line per forged one."""
    import subprocess
    import os
    env = dict(os.environ, MUSTER_CONFIG=str(world.conf))
    p = subprocess.Popen([str(MUSTER_CLI), "watch", "-H", "h2", "--json"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        job = {"id": f"w-{now_ms()}", "kind": "ping"}
        h2.client.publish(res_topic(job, "h2"), h2.signed(h2.result(job)))
        h2.client.publish(res_topic(job, "h2"), h2.signed(h2.result(job, host="h1")))
        time.sleep(1.0)
    finally:
        p.terminate()
        out, _ = p.communicate(10)
    lines = ndjson(out)
    assert [x["type"] for x in lines] == ["result", "forged"], out
