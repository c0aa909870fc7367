# SPDX-License-Identifier: Apache-2.0
"""Jobs end to end through the real musterd, broker and runner: ping,
version, run (pass and fail), and delivery by host, group and broadcast.

"Nobody else answered" is never a bare sleep: after the results that must
come, a control job goes to the hosts that must stay silent.  An agent
handles its messages and publishes its results in order, so once a host has
answered the control, any answer of it to the earlier job would have
arrived first.

A host cannot publish another host's result, nor read another host's jobs:
that is the broker's ACL, tested without agents in test_broker_acl.py
(test_host_cannot_publish_as_another_host,
test_host_never_receives_other_hosts_jobs); test_other_hosts_job_never_reaches
below checks the same end to end.
"""
import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from muster_fixtures import (
    MODULES_DIR, MUSTERD, RUNNER, assert_no_sanitizer_reports,
    collect_results, install_modules, log_count, new_job, run_job,
    sanitizer_report, send_job, start_fresh, topic, watch_results,
)


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


FAST = {"broker": {"retry_min": "100ms", "retry_max": "1s", "reconnect_splay": "0"}}


def os_release_id() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("ID="):
            return line[3:].strip().strip("\"'")
    return "linux"


def version_of(binary) -> str:
    out = subprocess.run([str(binary), "--version"], stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    # "musterd 0.1.0", "muster-runner 0.1.0 (module ABI 1)"
    m = re.match(r"\S+ (\S+)", out)
    assert m, out
    return m.group(1)


def control(op, operator, hosts, target=None):
    """A ping that `hosts` must answer; returns once they all did."""
    body = new_job("ping", target or f"host/{hosts[0]}", ttl_s=30)
    res = run_job(op, operator, body, hosts, timeout=10)
    assert sorted(res) == sorted(hosts), res
    return body["id"]


def leftover(op, job_id):
    """Results of job_id still queued (taken)."""
    return [m.decode() for m in op.collect(0, topic("results", job_id, "+"))]


def common_fields(r, body, host):
    assert r["v"] == 1
    assert r["job"] == body["id"] and r["host"] == host, r
    assert r["kind"] == body["kind"], r
    assert r["agent_version"] == version_of(MUSTERD), r
    assert r["started_at"] <= r["finished_at"], r
    # A sanitized runner reports into the job's output.
    assert sanitizer_report(r.get("output", "")) is None, r["output"]
    assert abs(r["finished_at"] - body["issued_at"]) < 60_000, r


def test_ping(agents, op_client, operator):
    start_fresh(agents("h1", extra=FAST))
    body = new_job("ping", "host/h1")
    res = run_job(op_client, operator, body, ["h1"], timeout=10)
    r = res["h1"]
    common_fields(r, body, "h1")
    assert (r["status"], r["summary"]) == ("pass", "pong"), r
    assert "reason" not in r, r
    assert r["data"] == {"running": 0}, r	# load is in the ping (design.md §3)


def test_version(agents, op_client, operator):
    """data = {version, runner_version, abi, channel}, each from the real
    thing: the binaries' --version and the agent's configured channel."""
    start_fresh(agents("h1", channel="canary", extra=FAST))
    body = new_job("version", "host/h1")
    r = run_job(op_client, operator, body, ["h1"], timeout=10)["h1"]
    common_fields(r, body, "h1")
    assert r["status"] == "pass", r
    runner_out = subprocess.run([str(RUNNER), "--version"],
                                stdout=subprocess.PIPE, text=True).stdout
    abi = int(re.search(r"ABI (\d+)", runner_out).group(1))
    assert r["data"] == {
        "version": version_of(MUSTERD),
        "runner_version": version_of(RUNNER),
        "abi": abi,
        "channel": "canary",
    }, r


@pytest.fixture
def h1_with_os_release(agents):
    a = agents("h1", extra=FAST)
    install_modules(a, "os.release")
    return start_fresh(a)


def test_run_pass(h1_with_os_release, op_client, operator):
    a = h1_with_os_release
    want = os_release_id()
    body = new_job("run", "host/h1", module="os.release", args={"id": want})
    r = run_job(op_client, operator, body, ["h1"], timeout=15)["h1"]
    common_fields(r, body, "h1")
    assert r["status"] == "pass", r
    assert r["module"] == "os.release" and r["module_version"] == "1.0.0", r
    so = (MODULES_DIR / "os.release.so").read_bytes()
    assert r["module_sha256"] == hashlib.sha256(so).hexdigest(), r
    assert r["data"]["id"] == want, r
    assert log_count(a, f"job {body['id']}: running module os.release") == 1


def test_run_fail(h1_with_os_release, op_client, operator):
    body = new_job("run", "host/h1", module="os.release",
                   args={"id": "nonexistent"})
    r = run_job(op_client, operator, body, ["h1"], timeout=15)["h1"]
    common_fields(r, body, "h1")
    assert r["status"] == "fail", r
    assert r["module"] == "os.release", r
    assert r["data"]["id"] == os_release_id(), r
    assert "nonexistent" in (r.get("summary", "") + r.get("reason", "")), r


def test_run_missing_module_is_an_error(agents, op_client, operator):
    start_fresh(agents("h1", extra=FAST))		# nothing installed
    body = new_job("run", "host/h1", module="os.release")
    r = run_job(op_client, operator, body, ["h1"], timeout=15)["h1"]
    assert r["status"] == "error", r


@pytest.fixture
def fleet(agents):
    """h1 (web), h2 (web, db), h3 (db), all online."""
    return {h: start_fresh(agents(h, extra=FAST)) for h in ("h1", "h2", "h3")}


def test_group_job_reaches_exactly_its_members(fleet, op_client, operator):
    body = new_job("ping", "group/web")
    res = collect_after_send(op_client, operator, body, ["h1", "h2"])
    assert sorted(res) == ["h1", "h2"], res
    for h, r in res.items():
        common_fields(r, body, h)
        assert r["status"] == "pass"
    # h3 (db only) answers a db job; had it taken the web job, that answer
    # would have come first.
    control(op_client, operator, ["h2", "h3"], target="group/db")
    assert leftover(op_client, body["id"]) == []
    assert body["id"] not in fleet["h3"].log()


def test_broadcast_reaches_everyone_once(fleet, op_client, operator):
    body = new_job("ping", "all")
    res = collect_after_send(op_client, operator, body, ["h1", "h2", "h3"])
    assert sorted(res) == ["h1", "h2", "h3"], res
    for h, r in res.items():
        common_fields(r, body, h)
        assert r["status"] == "pass"
    control(op_client, operator, ["h1", "h2", "h3"], target="all")
    assert leftover(op_client, body["id"]) == []


def test_other_hosts_job_never_reaches(fleet, op_client, operator):
    """A job for h2 on h2's topic: h2 answers; h1 and h3 never see it (the
    ACL and their subscriptions; were it delivered, intake would refuse it
    with a `rejected` result, which would show here too)."""
    body = new_job("ping", "host/h2")
    res = collect_after_send(op_client, operator, body, ["h2"])
    assert list(res) == ["h2"] and res["h2"]["status"] == "pass", res
    control(op_client, operator, ["h1", "h2", "h3"], target="all")
    assert leftover(op_client, body["id"]) == []
    for h in ("h1", "h3"):
        assert body["id"] not in fleet[h].log(), h


def collect_after_send(op, operator, body, hosts):
    watch_results(op, body["id"])
    send_job(op, operator, body)
    return collect_results(op, body["id"], hosts, timeout=10)
