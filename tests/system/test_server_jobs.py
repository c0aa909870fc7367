# SPDX-License-Identifier: Apache-2.0
"""Job announces at muster-server (issue 24, design.md §3): the CLI signs
one announce per job on R/jobs/<job> before the job; the server believes
it only under a key of its [trust] operators, with the topic's id and its
own fleet's aud, stores it, and GET /api/jobs/<id> then says who was
expected, who answered with what, who is missing and which of those are
offline.

Refusals are proved by order, not by sleeping: the bad announces go out
first, a good one last on the same connection; once the good one is
stored (the server takes messages in order), the bad ones were handled,
and the counters and the archive say how.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
import urllib.error
from pathlib import Path

import pytest

from muster_fixtures import (BUILD_DIR, MUSTER_CLI, Agent, now_ms, pack, run_cli,
                             topic, wait_until, write_cli_conf)
from server_fixtures import (SERVER_BIN, Postgres, Server, announce, metric_value,
                             pg_available, result_topic, signed_result)

pytestmark = pytest.mark.skipif(not SERVER_BIN.exists() or not MUSTER_CLI.exists(),
                                reason="muster-server or muster is not built")


def announce_body(job: str, expected: list[str], **fields) -> dict:
    t = now_ms()
    body = {"v": 1, "kind": "announce", "id": job, "aud": "muster/v1",
            "issued_at": t, "not_after": t + 300000, "operator": "alice",
            "target": "all", "job_kind": "ping", "expected": sorted(expected)}
    body.update(fields)
    return body


def refused(m: str, reason: str) -> float:
    return metric_value(m, "muster_announces_refused_total", {"reason": reason})


def get_status(server: Server, path: str) -> int:
    try:
        return server.get(path)[0]
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture
def server(broker, keys, tmp_path):
    s = Server(broker, tmp_path / "server",
               extra={"trust": {"operators": str(keys.operators_dir)}})
    yield s
    if s.running:
        s.stop()


def sse_events(server: Server):
    """Read /api/events (after its hello) as (event, data) pairs."""
    import urllib.request
    r = urllib.request.urlopen(server.url + "/api/events", timeout=10)
    ev = None
    for raw in r:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            ev = line[7:]
        elif line.startswith("data: "):
            yield ev, line[6:]


def test_announce_event_on_the_stream(broker, mqtt, server, operator):
    """A stored announce is an SSE "announce" event for the live page; a
    refused one is not (it comes first and the stored one is the first
    announce event)."""
    server.start()
    stream = sse_events(server)
    assert next(stream)[0] == "hello"
    op = mqtt("op:alice")
    op.publish(topic("jobs", "x1"), operator.envelope(announce_body("other", ["h1"])))
    op.publish(topic("jobs", "e1"), operator.envelope(
        announce_body("e1", ["h1", "h2", "h3"], job_kind="version")))
    ev, data = next(e for e in stream if e[0] == "announce")
    d = json.loads(data)
    assert (d["job"], d["expected"], d["kind"], d["module"], d["target"]) == \
        ("e1", 3, "version", None, "all")


def test_announces_verified_stored_refusals_counted(broker, mqtt, server, operator,
                                                    untrusted_keys):
    """A genuine announce is stored with every field; a forged one (bad
    signature), one under a key the server does not trust, one whose body
    names another job than its topic, one for another fleet and one that
    is not an envelope are refused, each counted under its reason, and
    none of them is stored."""
    server.start()
    op = mqtt("op:alice")
    mallory = untrusted_keys.operator("mallory")

    env = bytearray(operator.envelope(announce_body("forged", ["h1"])))
    env[-1] ^= 1				# the last body byte: the signature fails
    op.publish(topic("jobs", "forged"), bytes(env))
    op.publish(topic("jobs", "unknown"), mallory.envelope(announce_body("unknown", ["h1"])))
    op.publish(topic("jobs", "elsewhere"),
               operator.envelope(announce_body("other-id", ["h1"])))
    op.publish(topic("jobs", "fleet2"),
               operator.envelope(announce_body("fleet2", ["h1"], aud="other/v1")))
    op.publish(topic("jobs", "junk"), b"\x81\xa1v\x01")
    good = announce_body("good", ["h2", "h1"], job_kind="run", module="os.release",
                         args={"id": "debian"}, timeout_ms=5000, target="group/web",
                         filter=[["os.id", "==", "debian"]])
    op.publish(topic("jobs", "good"), operator.envelope(good))

    wait_until(lambda: server.sql("SELECT count(*) FROM announces WHERE job='good'")[0][0]
               == 1, 15, what="the good announce stored")
    assert server.sql("SELECT job FROM announces") == [("good",)]
    m = server.metrics()
    assert metric_value(m, "muster_announces_total") == 1
    assert refused(m, "forged") == 1
    assert refused(m, "unknown_key") == 1
    assert refused(m, "wrong_topic") == 2		# another id, another fleet
    assert refused(m, "malformed") == 1
    assert metric_value(m, "muster_jobs_open") == 1
    assert metric_value(m, "muster_job_expected", {"job": "good"}) == 2
    assert metric_value(m, "muster_job_missing", {"job": "good"}) == 2

    v = server.api("/api/jobs/good")
    a = v["announce"]
    assert v["announced"] is True and v["job"] == "good"
    assert (a["kind"], a["module"], a["args"], a["target"], a["filter"], a["operator"],
            a["timeout_ms"], a["issued_at"], a["not_after"]) == \
        ("run", "os.release", {"id": "debian"}, "group/web", [["os.id", "==", "debian"]],
         "alice", 5000, good["issued_at"], good["not_after"])
    assert isinstance(a["received_at"], int)
    assert v["expected"] == ["h1", "h2"]
    # No host has a status: both missing, and offline (unknown counts so).
    assert v["missing"] == [{"host": "h1", "online": False, "at": None},
                            {"host": "h2", "online": False, "at": None}]
    assert v["counts"]["missing"] == 2 and v["counts"]["offline"] == 2
    assert get_status(server, "/api/jobs/forged") == 404
    assert get_status(server, "/api/jobs/nosuch") == 404
    assert get_status(server, "/api/jobs/good/hosts/h1") == 404

    # The first announce of an id wins: a second one (another expected
    # set, validly signed) is not stored over it.
    op.publish(topic("jobs", "good"), operator.envelope(announce_body("good", ["h9"])))
    op.publish(topic("jobs", "good2"), operator.envelope(announce_body("good2", [])))
    wait_until(lambda: server.sql("SELECT count(*) FROM announces WHERE job='good2'")[0][0]
               == 1, 15, what="the control announce stored")
    assert server.api("/api/jobs/good")["expected"] == ["h1", "h2"]

    # A restart reads the open jobs back from the archive for the metrics.
    server.stop()
    server.start()
    m = server.metrics()
    assert metric_value(m, "muster_jobs_open") == 2		# good and good2
    assert metric_value(m, "muster_job_expected", {"job": "good"}) == 2
    assert metric_value(m, "muster_announces_total") == 0	# counters restart


def test_server_without_operators_reads_no_announces(broker, mqtt, tmp_path, operator):
    """Without [trust] operators the server does not subscribe to R/jobs/+
    and stores nothing (the job view then counts from results only)."""
    s = Server(broker, tmp_path / "plain").start()
    try:
        h1 = mqtt("h1")
        announce(h1, broker.pki, "h1")
        op = mqtt("op:alice")
        op.publish(topic("jobs", "j1"), operator.envelope(announce_body("j1", ["h1", "h2"])))
        h1.publish(result_topic("j1", "h1"), signed_result(broker.pki, "h1", "j1"))
        wait_until(lambda: s.sql("SELECT count(*) FROM results")[0][0] == 1, 15,
                   what="the result stored")
        assert s.sql("SELECT count(*) FROM announces")[0][0] == 0
        v = s.api("/api/jobs/j1")
        assert v["announced"] is False and v["announce"] is None and v["expected"] == []
        assert v["counts"]["answered"] == 1 and v["counts"]["pass"] == 1
        assert v["counts"]["missing"] == 0 and v["counts"]["expected"] == 0
        assert v["results"][0]["expected"] is False
        assert "no [trust] operators" in s.log()
    finally:
        s.stop()


# ---- the CLI against real agents ---------------------------------------------------


@pytest.fixture
def fleet(broker, keys, tmp_path):
    """h1, h2, h3 online with facts (rack b7); os.release installed on h1 and
    h3 only, so that h2's answer to a run of it is a failure (error)."""
    mods = tmp_path / "mods"
    mods.mkdir()
    shutil.copyfile(BUILD_DIR / "modules" / "os.release.so", mods / "os.release.so")
    os.chmod(mods / "os.release.so", 0o644)
    empty = tmp_path / "nomods"
    empty.mkdir()
    made = {}
    try:
        for name, groups in (("h1", ["web"]), ("h2", ["web", "db"]), ("h3", ["db"])):
            d = tmp_path / f"facts-{name}"
            d.mkdir()
            (d / "rack.json").write_text(json.dumps({"rack": "b7"}))
            a = Agent(name, broker, keys, tmp_path / f"agent-{name}", groups=groups,
                      extra={"agent": {"modules_dir": str(empty if name == "h2" else mods),
                                       "facts_dir": str(d)}})
            made[name] = a.start(wait_online=False)
        for a in made.values():
            a.wait_status("online")
        yield made
    finally:
        for a in made.values():
            a.cleanup()


def wait_facts(mqtt, hosts):
    c = mqtt("op:alice")
    c.subscribe(*(topic("hosts", h, "facts") for h in hosts))
    got = set()
    deadline = time.monotonic() + 30
    while got != set(hosts):
        m = c.get(timeout=max(0.1, deadline - time.monotonic()))
        assert time.monotonic() < deadline, f"no facts from {set(hosts) - got}"
        if m is not None and m.payload:
            got.add(m.topic.split("/")[-2])


def test_cli_job_view_offline_and_failing(broker, mqtt, keys, fleet, server, tmp_path):
    """`muster run -F custom.rack=b7 os.release` to three hosts whose facts
    match, h3 stopped (missing, offline) and h2 without the module (its
    answer a failure): exactly one announce for the job, and
    /api/jobs/<id> exact: counts, h3 missing with online false, h2's
    failure before h1's pass."""
    server.start()
    wait_facts(mqtt, ["h1", "h2", "h3"])
    fleet["h3"].stop()
    wait_until(lambda: metric_value(server.metrics(), "muster_hosts",
                                    {"state": "offline"}) == 1, 15, what="h3 offline")
    watcher = mqtt("srv:main")
    watcher.subscribe(topic("jobs", "+"))
    conf = write_cli_conf(tmp_path / "muster.conf", broker, keys=keys)
    r = run_cli("run", "-F", "custom.rack=b7", "--wait", "6s", "--json", "os.release",
                conf=conf, env={"HOME": tmp_path})
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    summary = lines[-1]
    assert summary["type"] == "summary", r.stdout + r.stderr
    assert "announce" not in r.stderr, r.stderr
    job = {o["job"] for o in lines if o["type"] == "result"}
    assert len(job) == 1, lines
    job = job.pop()

    anns = watcher.collect(1.0, topic=topic("jobs", "+"))
    assert [m.topic for m in anns] == [topic("jobs", job)]

    def answered():
        v = server.api(f"/api/jobs/{job}")
        return v if v["counts"]["answered"] == 2 else None
    v = wait_until(answered, 15, what="two answers archived")
    h3_at = server.api("/api/hosts")
    h3_at = next(h["at"] for h in h3_at["hosts"] if h["host"] == "h3")
    assert v["announced"] is True
    assert v["counts"] == {"expected": 3, "answered": 2, "missing": 1, "offline": 1,
                           "silent": 0, "unexpected": 0, "pass": 1, "fail": 0,
                           "error": 1, "timeout": 0, "crashed": 0, "rejected": 0,
                           "other": 0}
    assert v["expected"] == ["h1", "h2", "h3"]
    assert v["missing"] == [{"host": "h3", "online": False, "at": h3_at}]
    assert v["unexpected"] == []
    assert [(x["host"], x["expected"]) for x in v["results"]] == [("h2", True), ("h1", True)]
    # h2 has no os.release: the agent answers error (agent/parent/run.c).
    assert [x["status"] for x in v["results"]] == ["error", "pass"]
    assert v["results"][1]["module"] == "os.release"
    a = v["announce"]
    assert (a["kind"], a["module"], a["target"], a["filter"], a["args"]) == \
        ("run", "os.release", "all", [["custom.rack", "==", "b7"]], None)
    # One host's whole result, output and data included.
    one = server.api(f"/api/jobs/{job}/hosts/h1")["result"]
    assert one["host"] == "h1" and one["status"] == "pass" and "data" in one
    m = server.metrics()
    assert metric_value(m, "muster_job_expected", {"job": job}) == 3
    assert metric_value(m, "muster_job_answered", {"job": job}) == 2
    assert metric_value(m, "muster_job_missing", {"job": job}) == 1


def test_cli_one_announce_per_job(broker, mqtt, keys, fleet, server, tmp_path):
    """`-H h1 -H h2` makes two jobs: two announces, each naming its one
    host; ping, version and run each announce with their own kind."""
    server.start()
    watcher = mqtt("srv:main")
    watcher.subscribe(topic("jobs", "+"))
    conf = write_cli_conf(tmp_path / "muster.conf", broker, keys=keys)
    r = run_cli("ping", "-H", "h1", "-H", "h2", "--json", conf=conf,
                env={"HOME": tmp_path})
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = {o["host"]: o["job"] for o in map(json.loads, r.stdout.splitlines())
            if o["type"] == "result"}
    assert set(jobs) == {"h1", "h2"}
    anns = watcher.collect(1.0, topic=topic("jobs", "+"))
    assert sorted(m.topic for m in anns) == sorted(topic("jobs", j) for j in jobs.values())
    for h, j in jobs.items():
        wait_until(lambda: server.sql("SELECT count(*) FROM announces WHERE job=?", j)[0][0]
                   == 1, 15, what=f"announce {j} stored")
        v = server.api(f"/api/jobs/{j}")
        assert v["expected"] == [h] and v["announce"]["target"] == f"host/{h}"
        assert v["announce"]["kind"] == "ping"
    r = run_cli("version", "-g", "db", "--json", conf=conf, env={"HOME": tmp_path})
    assert r.returncode == 0, r.stdout + r.stderr
    job = {o["job"] for o in map(json.loads, r.stdout.splitlines())
           if o["type"] == "result"}.pop()
    anns = watcher.collect(1.0, topic=topic("jobs", "+"))
    assert [m.topic for m in anns] == [topic("jobs", job)]
    wait_until(lambda: server.api(f"/api/jobs/{job}")["counts"]["answered"] == 2, 15,
               what="the version answers")
    v = server.api(f"/api/jobs/{job}")
    assert v["announce"]["kind"] == "version" and v["expected"] == ["h2", "h3"]
    assert metric_value(server.metrics(), "muster_announces_total") == 3


# ---- PostgreSQL ---------------------------------------------------------------------


@pytest.mark.skipif(pg_available() is not None, reason=pg_available() or "")
def test_announces_on_postgresql(broker, mqtt, keys, operator, tmp_path):
    """The same table and view on PostgreSQL: stored once, the view exact."""
    d = tempfile.mkdtemp(prefix="muster-pg-")
    os.chmod(d, 0o755)
    pg = Postgres(Path(d) / "pg").start()
    s = Server(broker, tmp_path / "server", archive=pg.url,
               extra={"trust": {"operators": str(keys.operators_dir)}})
    try:
        s.start()
        h1 = mqtt("h1")
        announce(h1, broker.pki, "h1")
        op = mqtt("op:alice")
        body = announce_body("pg1", ["h1", "h2"])
        op.publish(topic("jobs", "pg1"), operator.envelope(body))
        op.publish(topic("jobs", "pg1"), operator.envelope(body))	# again: once
        h1.publish(result_topic("pg1", "h1"),
                   signed_result(broker.pki, "h1", "pg1", status="fail", module=None))
        wait_until(lambda: pg.query("SELECT count(*) FROM results") == [["1"]], 20,
                   what="the result in PostgreSQL")
        assert pg.query("SELECT job, nexpected FROM announces") == [["pg1", "2"]]
        v = s.api("/api/jobs/pg1")
        assert v["counts"]["expected"] == 2 and v["counts"]["answered"] == 1
        assert v["counts"]["fail"] == 1 and v["counts"]["missing"] == 1
        assert v["missing"] == [{"host": "h2", "online": False, "at": None}]
        assert [(x["host"], x["status"]) for x in v["results"]] == [("h1", "fail")]
    finally:
        if s.running:
            s.stop()
        pg.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_announces_pruned_like_results(broker, mqtt, keys, operator, tmp_path):
    """Retention by age takes old announces as it takes old results; a
    newer one stays."""
    s = Server(broker, tmp_path / "aged",
               extra={"trust": {"operators": str(keys.operators_dir)},
                      "archive": {"max_age": "3s", "prune_interval": "300ms"}})
    try:
        s.start()
        op = mqtt("op:alice")
        op.publish(topic("jobs", "old"), operator.envelope(announce_body("old", ["h1"])))
        wait_until(lambda: s.sql("SELECT count(*) FROM announces")[0][0] == 1, 10,
                   what="the old announce stored")
        time.sleep(2.0)
        op.publish(topic("jobs", "new"), operator.envelope(announce_body("new", ["h1"])))
        wait_until(lambda: s.sql("SELECT job FROM announces") == [("new",)], 10,
                   what="the old announce pruned, the new one kept")
    finally:
        if s.running:
            s.stop()


def test_old_acl_the_job_still_goes(broker, mqtt, keys, fleet, server, tmp_path):
    """A broker whose ACL predates announces (no `topic write
    muster/v1/jobs/+` for operators): the job goes out and is answered all
    the same, the CLI succeeds and says at most once that the announce did
    not go out, and the server has no announce (it counts the job from its
    results)."""
    acl = broker.key_dir / "acl"
    text = acl.read_text()
    assert "topic write muster/v1/jobs/+" in text
    acl.write_text(text.replace("topic write muster/v1/jobs/+\n", ""))
    # Not broker.reload(): it installs the PKI's (new) ACL again first.
    broker.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    server.start()
    conf = write_cli_conf(tmp_path / "muster.conf", broker, keys=keys)
    r = run_cli("ping", "-H", "h1", "-H", "h2", "--json", conf=conf,
                env={"HOME": tmp_path})
    assert r.returncode == 0, r.stdout + r.stderr
    # Mosquitto refuses both announces in their PUBACK (MQTT 5): said once.
    assert r.stderr.count("the job announce did not go out") == 1, r.stderr
    jobs = [o["job"] for o in map(json.loads, r.stdout.splitlines())
            if o["type"] == "result"]
    assert len(jobs) == 2
    for j in jobs:
        wait_until(lambda: server.sql("SELECT count(*) FROM results WHERE job=?", j)[0][0]
                   == 1, 15, what=f"the result of {j} archived")
        v = server.api(f"/api/jobs/{j}")
        assert v["announced"] is False and v["counts"]["answered"] == 1
    assert server.sql("SELECT count(*) FROM announces")[0][0] == 0
