# SPDX-License-Identifier: Apache-2.0
"""`muster retry JOB --failed | --missing | --not-pass` (issue 24) against a
real broker, real agents and a real muster-server: the same job (kind,
module, filter) goes again, under a new id, to exactly the hosts that
failed or did not answer - proved by the agents' results (the new job's
answers come from those hosts only) and by the job counts in the server's
archive (every other host still has one result) - with the job and its
hosts from the server (GET /api/jobs/<id>, from the announce) and from the
first run's --json output on stdin.

One fleet for the file: h1..h4, all in group web.  h1 and h3 have the
module os.release, h2 and h4 do not (a run there ends in error).  h4 is
stopped for the first run, so it is missing (-F: expected by its facts,
online or not).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from muster_fixtures import (BUILD_DIR, MUSTER_CLI, Agent, Broker, run_cli, wait_until,
                             write_cli_conf)
from server_fixtures import SERVER_BIN, Server, result_topic, signed_result

pytestmark = pytest.mark.skipif(not SERVER_BIN.exists() or not MUSTER_CLI.exists(),
                                reason="muster-server or muster is not built")

HOSTS = ["h1", "h2", "h3", "h4"]
WITH_MODULE = {"h1", "h3"}


def lines(text: str) -> list[dict]:
    return [json.loads(x) for x in text.splitlines() if x.strip()]


class Fleet:
    def __init__(self, broker, agents, server, conf, plain, home):
        self.broker, self.agents, self.server = broker, agents, server
        self.conf, self.plain, self.home = conf, plain, home

    def cli(self, *args, conf=None, input=None, timeout=30):
        if input is None:
            return run_cli(*args, conf=conf or self.conf, env={"HOME": self.home},
                           timeout=timeout)
        # run_cli gives the CLI /dev/null for stdin: this one feeds it.
        e = dict(os.environ, MUSTER_CONFIG=str(conf or self.conf), HOME=str(self.home))
        return subprocess.run([str(MUSTER_CLI), *args], env=e, input=input, text=True,
                              capture_output=True, timeout=timeout)

    def counts(self) -> dict[str, int]:
        """Results per host in the server's archive: the job counts."""
        return dict(self.server.sql("SELECT host, count(*) FROM results GROUP BY host"))

    def wait_archived(self, job: str, n: int) -> list[tuple[str, str]]:
        wait_until(lambda: len(self.server.sql("SELECT host FROM results WHERE job=?", job))
                   == n, 20, what=f"{n} results of {job} archived")
        return sorted(self.server.sql("SELECT host, status FROM results WHERE job=?", job))


@pytest.fixture(scope="module")
def fleet(pki, keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("retry")
    broker = Broker(pki, base / "broker").start()
    agents, server = {}, None
    try:
        server = Server(broker, base / "server",
                        extra={"trust": {"operators": str(keys.operators_dir)}}).start()
        for name in HOSTS:
            mods = base / f"mods-{name}"
            mods.mkdir()
            if name in WITH_MODULE:
                shutil.copyfile(BUILD_DIR / "modules" / "os.release.so",
                                mods / "os.release.so")
                os.chmod(mods / "os.release.so", 0o644)
            a = Agent(name, broker, keys, base / f"agent-{name}", groups=["web"],
                      extra={"agent": {"modules_dir": str(mods)}})
            agents[name] = a.start(wait_online=False)
        for a in agents.values():
            a.wait_status("online")
        wait_until(lambda: sum(1 for h in server.api("/api/hosts")["hosts"]
                               if h["facts_at"]) == 4, 30, what="the fleet's facts")
        home = base / "home"
        home.mkdir()
        conf = write_cli_conf(base / "muster.conf", broker, keys=keys,
                              extra=f"\n[server]\nurl = {server.url}\n")
        plain = write_cli_conf(base / "plain.conf", broker, keys=keys)
        yield Fleet(broker, agents, server, conf, plain, home)
    finally:
        if server is not None and server.running:
            server.stop()
        for a in agents.values():
            a.cleanup()
        broker.stop()


@pytest.fixture(scope="module")
def first(fleet):
    """The first run: h4 stopped, so h1 and h3 pass, h2 errs, h4 is missing."""
    fleet.agents["h4"].stop()
    fleet.agents["h4"].wait_status("offline")
    r = fleet.cli("run", "-g", "web", "-F", "groups has web", "--wait", "8s", "--json",
                  "os.release")
    out = lines(r.stdout)
    s = out[-1]
    assert r.returncode == 1, r.stdout + r.stderr
    assert s["type"] == "summary" and len(s["jobs"]) == 1
    assert s["missing"] == ["h4"] and s["expected"] == 4
    assert sorted((o["host"], o["status"]) for o in out if o["type"] == "result") == \
        [("h1", "pass"), ("h2", "error"), ("h3", "pass")]
    # What retry needs of it, in the summary.
    assert s["job"] == {"kind": "run", "module": "os.release", "args": None,
                        "filter": ["groups has web"], "timeout_ms": None}
    job = s["jobs"][0]
    fleet.wait_archived(job, 3)
    wait_until(lambda: fleet.server.api(f"/api/jobs/{job}")["announced"], 10,
               what="the announce")
    # Back, h4 runs the job its session kept (a late answer, an error):
    # the counts below start from there.
    fleet.agents["h4"].start()
    assert fleet.wait_archived(job, 4)[3] == ("h4", "error")
    return job, r.stdout


def new_jobs(r) -> tuple[list[str], list[dict]]:
    out = lines(r.stdout)
    s = out[-1]
    assert s["type"] == "summary", r.stdout + r.stderr
    return s["jobs"], out


def test_retry_failed_via_the_server(fleet, first):
    """The server knows h2's error and h4's late one: those two, one job
    each (-H per host)."""
    job, _ = first
    before = fleet.counts()
    assert before == {"h1": 1, "h2": 1, "h3": 1, "h4": 1}
    r = fleet.cli("retry", job, "--failed", "--json", "--wait", "8s")
    assert r.returncode == 1, r.stdout + r.stderr
    jobs, out = new_jobs(r)
    assert len(jobs) == 2 and job not in jobs
    assert sorted((o["host"], o["status"]) for o in out if o["type"] == "result") == \
        [("h2", "error"), ("h4", "error")]
    assert out[-1]["expected"] == 2 and out[-1]["missing"] == []
    # The announce's filter, back in its text form (a string quoted).
    assert out[-1]["job"]["filter"] == ['groups has "web"']
    # The same job: the module, the kind, the filter; one host per job.
    for nj in jobs:
        (host, status), = fleet.wait_archived(nj, 1)
        v = fleet.server.api(f"/api/jobs/{nj}")
        assert v["expected"] == [host] and v["announce"]["module"] == "os.release"
        assert v["announce"]["target"] == f"host/{host}" and v["announce"]["kind"] == "run"
        assert v["announce"]["filter"] == [["groups", "has", "web"]]
    assert fleet.counts() == {"h1": 1, "h2": 2, "h3": 1, "h4": 2}


def test_retry_missing_from_stdin(fleet, first):
    """The server saw h4's late answer: nothing is missing there any more.
    The first run's output still says h4 was: --missing from it reaches h4
    alone."""
    job, out = first
    before = fleet.counts()
    r = fleet.cli("retry", job, "--missing")
    assert r.returncode == 0 and "no host to retry" in r.stderr, r.stdout + r.stderr
    assert fleet.counts() == before
    r = fleet.cli("retry", job, "--missing", "--stdin", "--json", "--wait", "8s",
                  input=out)
    assert r.returncode == 1, r.stdout + r.stderr	# h4 has no module either
    (nj,), res = new_jobs(r)
    assert [(o["host"], o["status"]) for o in res if o["type"] == "result"] == \
        [("h4", "error")]
    assert fleet.wait_archived(nj, 1) == [("h4", "error")]
    after = fleet.counts()
    assert after == {**before, "h4": before["h4"] + 1}


def test_retry_not_pass_without_a_server(fleet, first):
    """No [server] url: stdin it is.  --not-pass = h2 (failed) + h4 (missing)."""
    job, out = first
    fleet.agents["h4"].wait_status("online")
    before = fleet.counts()
    r = fleet.cli("retry", job, "--not-pass", "--json", "--wait", "8s", conf=fleet.plain,
                  input=out)
    assert r.returncode == 1, r.stdout + r.stderr
    jobs, res = new_jobs(r)
    assert sorted(o["host"] for o in res if o["type"] == "result") == ["h2", "h4"]
    assert res[-1]["expected"] == 2 and len(jobs) == 2
    for nj in jobs:
        fleet.wait_archived(nj, 1)
    assert fleet.counts() == {"h1": before["h1"], "h3": before["h3"],
                              "h2": before["h2"] + 1, "h4": before["h4"] + 1}


def test_retry_refusals(fleet, first):
    job, out = first
    # One mode, exactly.
    assert fleet.cli("retry", job).returncode == 2
    assert fleet.cli("retry", job, "--failed", "--missing").returncode == 2
    # An unknown job on the server; a job not in the given output.
    r = fleet.cli("retry", "nosuchjob", "--failed")
    assert r.returncode == 2 and "knows no job nosuchjob" in r.stderr, r.stderr
    r = fleet.cli("retry", "nosuchjob", "--failed", "--stdin", input=out)
    assert r.returncode == 2 and "no summary of job nosuchjob" in r.stderr, r.stderr
    # A job the server knows from a result only (no announce): it does
    # not know what the job was.
    h1 = fleet.broker.client("h1")
    try:
        h1.publish(result_topic("noann1", "h1"),
                   signed_result(fleet.broker.pki, "h1", "noann1", status="fail"))
    finally:
        h1.close()
    wait_until(lambda: fleet.server.sql("SELECT host FROM results WHERE job='noann1'"), 10,
               what="the result archived")
    r = fleet.cli("retry", "noann1", "--failed")
    assert r.returncode == 2 and "has no announce of noann1" in r.stderr, r.stderr
    # Nothing to retry: said, exit 0, nothing sent.
    before = fleet.counts()
    passed = "\n".join(x for x in out.splitlines()
                       if '"status":"error"' not in x) + "\n"
    r = fleet.cli("retry", job, "--failed", "--stdin", input=passed)
    assert r.returncode == 0 and "no host to retry" in r.stderr, r.stderr
    assert fleet.counts() == before


def test_retry_batches_over_64_hosts(fleet):
    """70 missing hosts: two runs of one -H each, 64 and 6 (no such hosts:
    all missing, exit 3)."""
    names = [f"ghost{i:02d}" for i in range(70)]
    summary = {"type": "summary", "jobs": ["j-old"], "expected": 70, "answered": 0,
               "missing": names, "running": [], "unexpected": [],
               "job": {"kind": "ping", "module": None, "args": None, "filter": [],
                       "timeout_ms": None}}
    r = fleet.cli("retry", "j-old", "--missing", "--stdin", "--json", "--wait", "1s",
                  input=json.dumps(summary) + "\n", timeout=60)
    assert r.returncode == 3, r.stdout + r.stderr
    sums = [o for o in lines(r.stdout) if o["type"] == "summary"]
    assert [len(s["jobs"]) for s in sums] == [64, 6]
    assert sorted(m for s in sums for m in s["missing"]) == names
