# SPDX-License-Identifier: Apache-2.0
"""The CLI side of facts (issue 24, design.md §3) against a real broker and
real agents: -F on run and ping (alone it means -a; with -g it narrows the
group), the expected hosts taken from the retained, host-signed facts (a
host whose facts do not match stays silent and is not missing; a matching
host that is stopped is missing; one without facts is not expected, and an
answer from it is "unexpected"; forged facts are counted, never used),
muster hosts -F, muster facts HOST, and malformed -F text (exit 2).

One fleet for the file: h1 (web, rack b7), h2 (web and db, rack c1), h3
(db, rack b7).  The last test stops h1 and spoils h2's and h3's retained
facts, so it stays last.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from muster_fixtures import (
    BUILD_DIR, MUSTER_CLI, Agent, Broker, host_sign, now_ms, run_cli, topic,
    write_cli_conf,
)

pytestmark = pytest.mark.skipif(not MUSTER_CLI.exists(),
                                reason=f"{MUSTER_CLI} is not built")

FLEET = {"h1": (["web"], "b7"), "h2": (["web", "db"], "c1"), "h3": (["db"], "b7")}


def facts_topic(host: str) -> str:
    return topic("hosts", host, "facts")


def ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Fleet:
    def __init__(self, broker: Broker, agents: dict, conf: Path, home: Path):
        self.broker, self.agents, self.conf, self.home = broker, agents, conf, home

    def cli(self, *args, **kw):
        return run_cli(*args, conf=self.conf, env={"HOME": self.home}, **kw)

    def json(self, *args, **kw) -> tuple[int, list[dict], dict]:
        """muster ... --json: exit code, results, summary."""
        r = self.cli(*args, "--json", **kw)
        lines = ndjson(r.stdout)
        assert lines and lines[-1]["type"] == "summary", r.stdout + r.stderr
        return r.returncode, [o for o in lines if o["type"] == "result"], lines[-1]

    def wait_facts(self, hosts, timeout: float = 30) -> dict:
        """The retained facts of each host, once all have them."""
        c = self.broker.client("op:alice")
        try:
            c.subscribe(*(facts_topic(h) for h in hosts))
            got, deadline = {}, time.monotonic() + timeout
            while set(got) != set(hosts):
                left = deadline - time.monotonic()
                assert left > 0, f"no facts from {set(hosts) - set(got)}"
                m = c.get(timeout=left)
                if m is not None and m.topic.endswith("/facts") and m.payload:
                    body = m.decode()
                    got[body["host"]] = body
            return got
        finally:
            c.close()


@pytest.fixture(scope="module")
def fleet(pki, keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("factscli")
    mods = base / "mods"
    mods.mkdir()
    shutil.copyfile(BUILD_DIR / "modules" / "os.release.so", mods / "os.release.so")
    os.chmod(mods / "os.release.so", 0o644)
    broker = Broker(pki, base / "broker").start()
    agents = {}
    try:
        for name, (groups, rack) in FLEET.items():
            d = base / f"facts-{name}"
            d.mkdir()
            (d / "rack.json").write_text(json.dumps({"rack": rack}))
            a = Agent(name, broker, keys, base / f"agent-{name}", groups=groups,
                      extra={"agent": {"modules_dir": str(mods), "facts_dir": str(d)}})
            agents[name] = a.start(wait_online=False)
        for a in agents.values():
            a.wait_status("online")
        home = base / "home"
        home.mkdir()
        conf = write_cli_conf(base / "muster.conf", broker, keys=keys)
        f = Fleet(broker, agents, conf, home)
        f.wait_facts(list(FLEET))
        yield f
    finally:
        for a in agents.values():
            a.cleanup()
        broker.stop()


def test_filter_alone_means_all_and_expects_only_matching_hosts(fleet):
    rc, results, s = fleet.json("run", "-F", "custom.rack=b7", "os.release")
    assert rc == 0, s
    assert sorted(r["host"] for r in results) == ["h1", "h3"]
    assert all(r["status"] == "pass" for r in results)
    assert s["expected"] == 2 and s["answered"] == 2
    assert s["missing"] == [] and s["running"] == [] and s["unexpected"] == []
    assert s["facts"] == {"match": 2, "no_match": 1, "no_facts": 0}
    assert s["forged"] == 0
    # The non-matching host ran nothing and said nothing (design.md §3).
    deadline = time.monotonic() + 10
    while "its filter does not match this host's facts" not in fleet.agents["h2"].log():
        assert time.monotonic() < deadline, "h2 did not skip the job"
        time.sleep(0.2)

    # The text report says why the expected set is what it is.
    r = fleet.cli("ping", "-a", "-F", "custom.rack = b7")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 expected, 2 answered: 2 pass" in r.stdout
    assert "facts: 2 target hosts match, 1 does not, 0 without facts (not expected)" \
        in r.stdout
    assert "no answer" not in r.stdout and "unexpected" not in r.stdout


def test_filter_narrows_a_group_and_takes_every_operator(fleet):
    rc, results, s = fleet.json("ping", "-g", "web", "-F", "custom.rack=b7")
    assert rc == 0, s
    assert [r["host"] for r in results] == ["h1"]
    assert s["expected"] == 1 and s["facts"] == {"match": 1, "no_match": 1, "no_facts": 0}

    # Several predicates, all must hold: only h3 is a db host in a b rack.
    rc, results, s = fleet.json("ping", "-F", "groups has db", "-F", "cpus>=1",
                                "-F", "custom.rack~b*", "-F", "os.id!=nosuch",
                                "-F", "mem_mb>0")
    assert rc == 0, s
    assert [r["host"] for r in results] == ["h3"]
    assert s["expected"] == 1 and s["missing"] == []

    # -H with -F: a named host whose facts do not match is not expected.
    rc, results, s = fleet.json("ping", "-H", "h2", "-H", "h1", "-F", "custom.rack=b7")
    assert rc == 0, s
    assert [r["host"] for r in results] == ["h1"]
    assert s["facts"] == {"match": 1, "no_match": 1, "no_facts": 0}

    # Nothing matches: nobody is expected, nobody answers.
    rc, results, s = fleet.json("ping", "-F", "custom.rack=zz", "--wait", "2s")
    assert (rc, results, s["expected"], s["missing"]) == (0, [], 0, [])


def test_hosts_filter(fleet):
    r = fleet.cli("hosts", "-F", "custom.rack=b7")
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()[1:] if line.strip()]
    assert names == ["h1", "h3"]
    r = fleet.cli("hosts", "--filter", "groups has web", "--json")
    assert r.returncode == 0, r.stderr
    assert [o["host"] for o in ndjson(r.stdout)] == ["h1", "h2"]
    r = fleet.cli("hosts", "-F", "custom.rack=zz", "--json")
    assert r.returncode == 0 and r.stdout == ""
    # Without -F: every host, as before.
    r = fleet.cli("hosts", "--json")
    assert [o["host"] for o in ndjson(r.stdout)] == ["h1", "h2", "h3"]


def test_facts_of_a_host(fleet):
    retained = fleet.wait_facts(["h2"])["h2"]
    r = fleet.cli("facts", "h2", "--json")
    assert r.returncode == 0, r.stderr
    (o,) = ndjson(r.stdout)
    assert o["host"] == "h2" and o["at"] == retained["at"]
    assert o["facts"] == retained["facts"]
    assert o["facts"]["custom.rack"] == "c1" and o["facts"]["groups"] == ["web", "db"]

    r = fleet.cli("facts", "h2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("h2, facts of ")
    rows = {line.split()[0]: line.split(None, 1)[1] for line in lines[2:]}
    assert rows["custom.rack"] == "c1" and rows["groups"] == "web, db"
    assert rows["cpus"] == str(os.cpu_count())

    r = fleet.cli("facts", "nosuch")
    assert r.returncode == 1 and "no facts from nosuch" in r.stderr
    assert fleet.cli("facts").returncode == 2
    assert fleet.cli("facts", "Bad!").returncode == 2


@pytest.mark.parametrize("args, text, why", [
    (["ping", "-F", "mem_mb<4k"], "mem_mb<4k", "'<' compares integers"),
    (["run", "-a", "-F", "os.id", "os.release"], "os.id", "no operator after 'os.id'"),
    (["version", "-F", "OS.id=debian"], "OS.id=debian", "is not a fact name"),
    (["update", "all", "-F", "os.id=~deb"], "os.id=~deb", "starts with '~'"),
    (["hosts", "-F", "os.id="], "os.id=", "no value"),
])
def test_malformed_filter_exits_2(fleet, args, text, why):
    r = fleet.cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"muster: -F '{text}': " in r.stderr and why in r.stderr, r.stderr
    assert r.stdout == ""


def test_too_many_predicates_exit_2(fleet):
    args = ["ping"]
    for i in range(33):
        args += ["-F", f"cpus>={i}"]
    r = fleet.cli(*args)
    assert r.returncode == 2 and "more than 32 filters" in r.stderr, r.stderr


def test_missing_unexpected_and_forged(fleet, pki):
    """Last: it changes the fleet.  h1 matches but is stopped: missing.  h3
    matches but its retained facts are gone: not expected, and its answer
    is unexpected.  h2's retained facts are replaced by facts signed with
    its TLS key (not its signing key), claiming rack b7: forged, counted,
    not used (h2 is neither expected nor, being c1, an answer)."""
    fleet.agents["h1"].stop()
    fleet.agents["h1"].wait_status("offline")
    h2 = fleet.broker.client("h2")
    h3 = fleet.broker.client("h3")
    try:
        forged = {"v": 1, "host": "h2", "at": now_ms(),
                  "facts": {"custom.rack": "b7", "groups": ["web", "db"]}}
        h2.publish(facts_topic("h2"), host_sign(pki.key("h2"), pki.cert("h2"), forged),
                   retain=True)
        h3.publish(facts_topic("h3"), b"", retain=True)
        time.sleep(0.5)
        rc, results, s = fleet.json("ping", "-F", "custom.rack=b7", "--wait", "5s")
        assert rc == 3, s
        assert [r["host"] for r in results] == ["h3"]
        assert s["expected"] == 1 and s["answered"] == 1
        assert s["missing"] == ["h1"] and s["unexpected"] == ["h3"]
        assert s["facts"] == {"match": 1, "no_match": 0, "no_facts": 2}
        assert s["forged"] == 1

        r = fleet.cli("ping", "-F", "custom.rack=b7", "--wait", "5s")
        assert r.returncode == 3, r.stdout + r.stderr
        assert "no answer: h1" in r.stdout
        assert "unexpected: h3   (answered without being expected)" in r.stdout
        assert "facts: 1 target host matches, 0 do not, 2 without facts (not expected)" \
            in r.stdout
        assert "1 expected, 1 answered: 1 pass" in r.stdout
        assert "forged: 1 message (not counted)" in r.stdout

        r = fleet.cli("hosts", "-F", "custom.rack=b7")
        assert [line.split()[0] for line in r.stdout.splitlines()[1:]
                if line.startswith("h")] == ["h1"]
        assert "without facts (not shown): 2 hosts" in r.stdout
        assert "forged: 1 message" in r.stdout
        assert fleet.cli("facts", "h2").returncode == 1
    finally:
        h2.publish(facts_topic("h2"), b"", retain=True)
        h2.close()
        h3.close()
