# SPDX-License-Identifier: Apache-2.0
"""muster-server and hosts' facts (issue 24, API-24.md) against a real broker
and real agents: the facts are verified like statuses, kept (in memory and
in the archive table facts) and counted; a forged or malformed facts message
is refused and counted and changes nothing; GET /api/hosts?filter= evaluates
every operator as the agents do (the CLI's own `muster hosts -F` over the
retained facts names the same hosts); a bad filter is a 400; GET
/api/hosts/<host> carries facts, groups, presence and the update map; facts
survive a server restart with the retained copies gone.

One fleet for the file: h1 (web, rack b7, n 1), h2 (web and db, rack c1,
n 5), h3 (db, rack b7, n 10).  The last test clears h3's retained facts, so
it stays last.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.parse

import pytest

from muster_fixtures import (BUILD_DIR, MUSTER_CLI, Agent, Broker, host_sign, now_ms,
                             run_cli, topic, wait_until, write_cli_conf)
from server_fixtures import SERVER_BIN, Server, metric_value

pytestmark = pytest.mark.skipif(not SERVER_BIN.exists() or not MUSTER_CLI.exists(),
                                reason="muster-server or muster is not built")

FLEET = {"h1": (["web"], "b7", 1), "h2": (["web", "db"], "c1", 5),
         "h3": (["db"], "b7", 10)}


def facts_topic(host: str) -> str:
    return topic("hosts", host, "facts")


class Fleet:
    def __init__(self, broker, agents, server, conf, home, keys):
        self.broker, self.agents, self.server, self.keys = broker, agents, server, keys
        self.conf, self.home = conf, home

    def hosts(self, *filters: str, target: str | None = None) -> list[str]:
        q = [("filter", f) for f in filters]
        if target is not None:
            q.append(("target", target))
        o = self.server.api("/api/hosts?" + urllib.parse.urlencode(q))
        return [h["host"] for h in o["hosts"]]

    def cli_hosts(self, *filters: str) -> list[str]:
        args = ["hosts", "--json"]
        for f in filters:
            args += ["-F", f]
        r = run_cli(*args, conf=self.conf, env={"HOME": self.home})
        assert r.returncode == 0, r.stderr
        return [json.loads(line)["host"] for line in r.stdout.splitlines() if line]

    def bad(self, query: str) -> tuple[int, str]:
        try:
            self.server.get("/api/hosts?" + query)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())["error"]
        raise AssertionError(f"{query}: not refused")


@pytest.fixture(scope="module")
def fleet(pki, keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("srvhosts")
    broker = Broker(pki, base / "broker").start()
    agents, server = {}, None
    try:
        for name, (groups, rack, n) in FLEET.items():
            d = base / f"facts-{name}"
            d.mkdir()
            (d / "rack.json").write_text(json.dumps({"rack": rack, "n": n}))
            a = Agent(name, broker, keys, base / f"agent-{name}", groups=groups,
                      extra={"agent": {"facts_dir": str(d)}})
            agents[name] = a.start(wait_online=False)
        for a in agents.values():
            a.wait_status("online")
        server = Server(broker, base / "server").start()
        home = base / "home"
        home.mkdir()
        conf = write_cli_conf(base / "muster.conf", broker, keys=keys)
        f = Fleet(broker, agents, server, conf, home, keys)
        wait_until(lambda: all(h["facts_at"] for h in server.api("/api/hosts")["hosts"])
                   and len(server.api("/api/hosts")["hosts"]) == 3, 30,
                   what="the facts of h1..h3 on the server")
        yield f
    finally:
        if server is not None:
            server.stop()
        for a in agents.values():
            a.cleanup()
        broker.stop()


def test_facts_are_stored_and_counted(fleet):
    s = fleet.server
    assert metric_value(s.metrics(), "muster_facts_total") >= 3
    wait_until(lambda: len(s.sql("SELECT host FROM facts")) == 3, 10, what="facts rows")
    rows = {h: (at, json.loads(f)) for h, at, f in s.sql("SELECT host, at, facts FROM facts")}
    for name, (groups, rack, n) in FLEET.items():
        at, facts = rows[name]
        assert facts["custom.rack"] == rack and facts["custom.n"] == n
        assert facts["groups"] == groups
        live = s.api(f"/api/hosts/{name}")
        assert live["facts"] == facts and live["facts_at"] == at
    listed = {h["host"]: h["facts_at"] for h in s.api("/api/hosts")["hosts"]}
    assert listed == {h: rows[h][0] for h in FLEET}


@pytest.mark.parametrize("filters, want", [
    (["custom.rack==b7"], ["h1", "h3"]),
    (["custom.rack = b7"], ["h1", "h3"]),
    (["custom.rack!=b7"], ["h2"]),
    (["custom.n<5"], ["h1"]),
    (["custom.n<=5"], ["h1", "h2"]),
    (["custom.n>5"], ["h3"]),
    (["custom.n>=5"], ["h2", "h3"]),
    (["custom.rack~c*"], ["h2"]),
    (["groups has db"], ["h2", "h3"]),
    (["groups has db", "custom.rack=b7"], ["h3"]),
    (["custom.nosuch!=x"], []),		# a missing fact: false, != included
    (["custom.rack=zz"], []),
])
def test_filter_each_operator_as_the_agents_do(fleet, filters, want):
    assert fleet.hosts(*filters) == want
    # The CLI evaluates the retained facts itself: the same answer.
    assert fleet.cli_hosts(*filters) == want


def test_filter_with_target(fleet):
    assert fleet.hosts("custom.n>=5", target="group/web") == ["h2"]
    assert fleet.hosts(target="group/db") == ["h2", "h3"]
    assert fleet.hosts(target="host/h1") == ["h1"]
    assert fleet.hosts("custom.rack=c1", target="host/h1") == []
    assert fleet.hosts(target="all") == ["h1", "h2", "h3"]
    assert fleet.hosts() == ["h1", "h2", "h3"]
    # Paging counts matching hosts.
    o = fleet.server.api("/api/hosts?filter=custom.n%3E0&limit=1&offset=1")
    assert [h["host"] for h in o["hosts"]] == ["h2"]


@pytest.mark.parametrize("query, why", [
    ("filter=custom.n%3Cabc", "'<' compares integers"),
    ("filter=custom.rack", "no operator"),
    ("filter=OS.id%3Ddebian", "is not a fact name"),
    ("filter=", "no fact name"),
    ("&".join(f"filter=cpus%3E%3D{i}" for i in range(33)), "more than 32 filters"),
    ("target=nosuch", "target must be"),
    ("target=host/Bad!", "invalid name"),
])
def test_bad_filter_is_400(fleet, query, why):
    code, err = fleet.bad(query)
    assert code == 400 and why in err, err


def test_one_host(fleet):
    s = fleet.server
    o = s.api("/api/hosts/h2")
    assert o["host"] == "h2" and o["online"] is True
    assert o["groups"] == ["web", "db"]
    assert o["facts"]["custom.rack"] == "c1" and o["facts"]["cpus"] == os.cpu_count()
    assert o["update"] is None		# no self-update under way
    assert o["presence"] and o["presence"][0]["state"] == "online"
    assert [p["at"] for p in o["presence"]] == sorted((p["at"] for p in o["presence"]),
                                                      reverse=True)
    assert o["version"] and o["at"] == o["presence"][0]["at"]
    for bad in ("nosuch", "Bad!"):
        try:
            s.get(f"/api/hosts/{bad}")
            raise AssertionError("not a 404")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    # The old sub-path stays.
    assert s.api("/api/hosts/h2/history")["host"] == "h2"


def test_presence_newest_first_after_a_restart_of_the_agent(fleet):
    a = fleet.agents["h1"]
    a.stop()
    a.wait_status("offline")
    a.start()
    s = fleet.server
    wait_until(lambda: [p["state"] for p in s.api("/api/hosts/h1")["presence"]][:3]
               == ["online", "offline", "online"], 20, what="h1's presence on the server")
    # Its facts came again, with a newer "at": the archive keeps the newer.
    wait_until(lambda: s.sql("SELECT at FROM facts WHERE host='h1'")[0][0]
               == s.api("/api/hosts/h1")["facts_at"], 10, what="h1's facts archived")


def test_forged_and_malformed_facts_are_refused_and_counted(fleet, pki):
    """h2 publishes (not retained) on its own facts topic: facts naming
    its signing certificate but signed with its TLS key, claiming rack b7
    (a bad signature), then facts
    signed by h2 naming h1, then bytes that are no envelope.  Each is
    counted, none is stored: h2 still matches rack c1 only."""
    s = fleet.server
    before = s.metrics()
    forged0 = metric_value(before, "muster_facts_refused_total", {"reason": "forged"})
    bad0 = metric_value(before, "muster_facts_refused_total", {"reason": "malformed"})
    total0 = metric_value(before, "muster_facts_total")
    h2 = fleet.broker.client("h2")
    try:
        tls = {"v": 1, "host": "h2", "at": now_ms(), "facts": {"custom.rack": "b7"}}
        h2.publish(facts_topic("h2"), host_sign(pki.key("h2"), pki.sign_cert("h2"), tls))
        other = {"v": 1, "host": "h1", "at": now_ms(), "facts": {"custom.rack": "b7"}}
        h2.publish(facts_topic("h2"),
                   host_sign(pki.sign_key("h2"), pki.sign_cert("h2"), other))
        h2.publish(facts_topic("h2"), b"\x93not an envelope")
    finally:
        h2.close()
    wait_until(lambda: metric_value(s.metrics(), "muster_facts_refused_total",
                                    {"reason": "forged"}) == forged0 + 2
               and metric_value(s.metrics(), "muster_facts_refused_total",
                                {"reason": "malformed"}) == bad0 + 1, 10,
               what="the refusals counted")
    assert metric_value(s.metrics(), "muster_facts_total") == total0
    assert fleet.hosts("custom.rack=b7") == ["h1", "h3"]
    assert s.api("/api/hosts/h2")["facts"]["custom.rack"] == "c1"
    assert json.loads(s.sql("SELECT facts FROM facts WHERE host='h2'")[0][0])[
        "custom.rack"] == "c1"
    assert "forged facts on" in s.log() and "malformed facts on" in s.log()


def test_facts_survive_a_restart(fleet):
    """Last: h3's retained facts are cleared while the server is down, so
    after the restart only the archive can know them."""
    s = fleet.server
    want = s.api("/api/hosts/h3")["facts"]
    s.stop()
    h3 = fleet.broker.client("h3")
    try:
        h3.publish(facts_topic("h3"), b"", retain=True)
        probe = fleet.broker.client("op:alice")
        probe.subscribe(facts_topic("h3"))
        assert probe.get(timeout=1, topic=facts_topic("h3")) is None
        probe.close()
    finally:
        h3.close()
    s.start()
    assert "facts of 3 hosts from the archive" in s.log()
    wait_until(lambda: "h3" in [h["host"] for h in s.api("/api/hosts")["hosts"]], 15,
               what="h3's status")
    assert s.api("/api/hosts/h3")["facts"] == want
    assert fleet.hosts("custom.rack=b7") == ["h1", "h3"]
    # The CLI, with the retained copy gone, no longer sees h3's.
    assert fleet.cli_hosts("custom.rack=b7") == ["h1"]


# ---- the CLI's expected hosts from the server ([server] url) -------------------
# After test_facts_survive_a_restart: h3's retained facts are gone, the
# server still has them.  So the CLI expects h3 for rack b7 only when it
# asks the server, and the fallback (server stopped) shows the difference.

def server_conf(fleet, url: str):
    return write_cli_conf(fleet.conf.parent / "muster-srv.conf", fleet.broker,
                          keys=fleet.keys, extra=f"\n[server]\nurl = {url}\n")


def json_run(conf, home, *args):
    r = run_cli(*args, "--json", conf=conf, env={"HOME": home})
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert lines and lines[-1]["type"] == "summary", r.stdout + r.stderr
    return r, [o for o in lines if o["type"] == "result"], lines[-1]


def test_cli_expects_what_the_server_names(fleet):
    conf = server_conf(fleet, fleet.server.url)
    r, results, s = json_run(conf, fleet.home, "ping", "-F", "custom.rack=b7")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(x["host"] for x in results) == ["h1", "h3"]
    assert s["expected"] == 2 and s["answered"] == 2 and s["missing"] == []
    assert s["unexpected"] == [] and s["forged"] == 0
    assert s["facts"] == {"match": 2, "no_match": 1, "no_facts": 0}
    assert "muster-server" not in r.stderr
    # The retained facts alone (no [server] url) no longer know h3's.
    r, results, s = json_run(fleet.conf, fleet.home, "ping", "-F", "custom.rack=b7",
                             "--wait", "5s")
    assert s["expected"] == 1 and s["facts"]["no_facts"] == 1, s

    # Without -F: a group's online hosts, from the server's presence.
    r, results, s = json_run(conf, fleet.home, "ping", "-g", "db")
    assert r.returncode == 0, r.stdout + r.stderr
    assert s["expected"] == 2 and sorted(x["host"] for x in results) == ["h2", "h3"]
    # A filter the server refuses: a usage error before anything is sent?
    # The CLI refuses it first (exit 2), as without a server.
    r = run_cli("ping", "-F", "cpus<abc", conf=conf, env={"HOME": fleet.home})
    assert r.returncode == 2


def test_cli_falls_back_when_the_server_does_not_answer(fleet):
    from muster_fixtures import free_port
    conf = server_conf(fleet, f"http://127.0.0.1:{free_port()}")
    r, results, s = json_run(conf, fleet.home, "ping", "-F", "custom.rack=b7",
                             "--wait", "5s")
    assert r.stderr.count("\n") == 1 and "muster: muster-server: no answer; the " \
        "expected hosts come from the retained messages" in r.stderr, r.stderr
    # As from the retained facts: h3's are gone there.
    assert s["expected"] == 1 and s["facts"] == {"match": 1, "no_match": 1,
                                                 "no_facts": 1}, s


# ---- the archive: newer facts only, both backends; the update map ---------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_facts_archive_newer_only_and_the_update_map(broker, mqtt, pki, tmp_path,
                                                     backend):
    """Signed messages of h1 (its own keys, as musterd signs them): a status
    with groups and an update map, facts at t, then older facts (counted as
    verified, changing nothing, in memory or archived), then newer ones.
    A restart loads the newest from the archive (PostgreSQL too)."""
    from server_fixtures import Postgres, pg_available, signed_status
    import tempfile
    from pathlib import Path
    pg = None
    if backend == "postgresql":
        if pg_available() is not None:
            pytest.skip(pg_available())
        d = tempfile.mkdtemp(prefix="muster-pg-")
        os.chmod(d, 0o755)
        pg = Postgres(Path(d) / "pg").start()
    s = Server(broker, tmp_path / "server", archive=pg.url if pg else None)
    try:
        s.start()
        h1 = mqtt("h1")
        upd = {"state": "staged", "version": "0.2.0"}
        h1.publish(topic("hosts", "h1", "status"),
                   signed_status(pki, "h1", groups=["web", "db"], update=upd), retain=True)
        t = now_ms()

        def facts(at, rack):
            body = {"v": 1, "host": "h1", "at": at,
                    "facts": {"custom.rack": rack, "cpus": 4, "groups": ["web", "db"]}}
            return host_sign(pki.sign_key("h1"), pki.sign_cert("h1"), body)

        def total():
            return metric_value(s.metrics(), "muster_facts_total")

        def stored():
            if pg:
                return [(int(a), json.loads(f)["custom.rack"]) for a, f in
                        pg.query("SELECT at, facts FROM facts WHERE host = 'h1'")]
            return [(a, json.loads(f)["custom.rack"]) for a, f in
                    s.sql("SELECT at, facts FROM facts WHERE host = 'h1'")]

        h1.publish(facts_topic("h1"), facts(t, "b7"))
        wait_until(lambda: stored() == [(t, "b7")], 10, what="the facts archived")
        h1.publish(facts_topic("h1"), facts(t - 1000, "old"))
        wait_until(lambda: total() == 2, 10, what="the older facts taken")
        time.sleep(0.3)		# a batch interval: the row would be written by now
        assert stored() == [(t, "b7")]
        o = s.api("/api/hosts/h1")
        assert o["facts_at"] == t and o["facts"]["custom.rack"] == "b7"
        assert o["update"] == upd and o["groups"] == ["web", "db"]
        h1.publish(facts_topic("h1"), facts(t + 1000, "c1"))
        wait_until(lambda: stored() == [(t + 1000, "c1")], 10, what="the newer facts")
        assert [h["host"] for h in s.api("/api/hosts?filter=custom.rack%3Dc1")["hosts"]] \
            == ["h1"]
        assert s.api("/api/hosts?filter=cpus%3E%3D4&target=group/db")["hosts"][0][
            "facts_at"] == t + 1000
        s.stop()
        s.start()
        assert "facts of 1 hosts from the archive" in s.log()
        wait_until(lambda: "h1" in [h["host"] for h in s.api("/api/hosts")["hosts"]], 10,
                   what="h1's retained status")
        assert s.api("/api/hosts/h1")["facts"]["custom.rack"] == "c1"
    finally:
        if s.running:
            s.stop()
        if pg is not None:
            pg.stop()
            shutil.rmtree(d, ignore_errors=True)


def test_facts_of_10000_hosts_load_at_start(broker, tmp_path):
    """10,000 archived facts rows (14 facts each, as agents gather) are all
    loaded at start; prints the time it took and the server's memory, as
    docs/BENCHMARKS.md records."""
    import re
    import sqlite3
    def rss(pid):
        return [line.split()[1] for line in open(f"/proc/{pid}/status")
                if line.startswith("VmRSS")][0] + " kB"

    s = Server(broker, tmp_path / "server", extra={"server": {"log_level": "info"}})
    s.start()
    empty = rss(s.proc.pid)
    s.stop()
    t = now_ms()
    rows = []
    for i in range(10_000):
        f = {"os.id": "debian", "os.version_id": "12", "kernel": "6.1.0-18-amd64",
             "os.pretty": "Debian GNU/Linux 12 (bookworm)", "arch": "x86_64",
             "cpus": 2 + i % 8, "mem_mb": 2048 + (i % 16) * 1024,
             "agent.version": "0.1.0", "agent.channel": "stable",
             "groups": ["web"] if i % 2 else ["web", "db"], "custom.rack": f"b{i % 10}",
             "custom.db": i % 3 == 0, "custom.owner": "team-x", "custom.n": i}
        rows.append((f"host{i:05d}", t, json.dumps(f), t))
    con = sqlite3.connect(s.db)
    con.executemany("INSERT INTO facts VALUES (?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    s.start()
    log = s.log()[s._mark:]
    stamps = re.findall(r"(\d\d):(\d\d):(\d\d)\.(\d{3})Z muster-server: "
                        r"(\d+ host certificates|facts of 10000 hosts) from the archive", log)
    assert len(stamps) == 2, log[-2000:]
    ms = [((int(h) * 60 + int(m)) * 60 + int(sec)) * 1000 + int(frac)
          for h, m, sec, frac, _ in stamps]
    print(f"\nfacts of 10,000 hosts loaded in {ms[1] - ms[0]} ms; server RSS "
          f"{rss(s.proc.pid)} (empty archive: {empty})")
    assert ms[1] - ms[0] < 20_000
    s.stop()
