# SPDX-License-Identifier: Apache-2.0
"""scripts/demo end to end: a broker, muster-server and four agents with
their own PKI, the demo's jobs, the server's page and archive, `scripts/demo env`, and `scripts/demo stop` leaving no
process behind.  Runs in a temporary MUSTER_DEMO_DIR with the build under
test (MUSTER_BUILD_DIR), so it never touches a demo/ someone is using."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from muster_fixtures import (
    BUILD_DIR, is_sanitized, MUSTER_CLI, SOURCE_DIR, run_cli, sanitizer_report, wait_until,
)

DEMO = SOURCE_DIR / "scripts" / "demo"
HOSTS = ("web1", "web2", "db1", "db2")

pytestmark = pytest.mark.skipif(not MUSTER_CLI.exists(),
                                reason=f"{MUSTER_CLI} is not built")


def demo(*args: str, env: dict, timeout: float = 90) -> subprocess.CompletedProcess:
    r = subprocess.run([str(DEMO), *args], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    bad = sanitizer_report(r.stdout)
    assert bad is None, f"sanitizer report in scripts/demo {args}:\n{r.stdout}"
    return r


def pids(run_dir: Path) -> dict[str, int]:
    return {f.stem: int(f.read_text().split()[0])
            for f in run_dir.glob("*.pid") if f.read_text().strip()}


def gone(pid: int) -> bool:
    """Exited (a zombie nobody reaped yet counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


def section(out: str, title: str) -> str:
    """The demo's output from the "==> ..." line containing title to the next."""
    m = re.search(r"^==> [^\n]*" + re.escape(title) + r"[^\n]*\n(.*?)(?=^==> |\Z)",
                  out, re.M | re.S)
    assert m, f"no step '{title}' in:\n{out}"
    return m.group(1)


def test_demo_end_to_end(tmp_path):
    # Each host runs its own copy of the runner, which runs as muster-job:
    # the demo folder must be reachable by it (pytest's folders are 0700).
    top = Path(tempfile.mkdtemp(prefix="muster-demo-"))
    os.chmod(top, 0o755)
    d = top / "demo"
    env = dict(os.environ, MUSTER_DEMO_DIR=str(d), MUSTER_BUILD_DIR=str(BUILD_DIR))
    env.pop("MUSTER_CONFIG", None)
    started: list[dict[str, int]] = []
    try:
        r = demo(env=env)
        assert r.returncode == 0, r.stdout
        started.append(pids(d / "run"))
        assert set(started[0]) == {"broker", "server", *HOSTS}, started[0]
        assert not any(gone(p) for p in started[0].values())

        out = r.stdout
        # muster-server: its page's URL is printed, and it serves the page
        # and the archive of the demo's jobs.
        m = re.search(r"^==> muster-server: the live page at (http://127\.0\.0\.1:\d+/)", out, re.M)
        assert m, out
        url = m.group(1)
        assert url in section(out, "the fleet is running")
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and b"<title>muster fleet</title>" in page.read()
        def archived():
            with urllib.request.urlopen(url + "api/jobs", timeout=10) as api:
                return sum(j["total"] for j in json.loads(api.read())["jobs"])
        wait_until(lambda: archived() == 4 + 2 + 2 + 2, 10, what="the demo's 4 jobs archived")
        hosts = section(out, "fleet:")
        for h in HOSTS:
            assert re.search(rf"^{h}\s+online\s", hosts, re.M), hosts
        qc = section(out, "qc.install profile:=@seeds/qc/base.json")
        assert "4 expected, 4 answered" in qc, qc
        # The four hosts are this machine: the same checks of the same
        # files give each the same verdict, and every check can be made
        # (an "error" is a check that could not be: a broken demo).
        rows = {}
        for h in HOSTS:
            m = re.search(rf"^{h}\s+(\S+)\s+\S+\s+(.*)$", qc, re.M)
            assert m, qc
            rows[h] = m.groups()
        assert len(set(rows.values())) == 1, qc
        status, text = rows[HOSTS[0]]
        if status == "pass":
            assert text == "QC base: 10 checks, 10 pass, 0 fail, 0 error", qc
        else:
            assert status == "fail" and text.startswith("failed: ") and \
                "could not check" not in text, qc
        assert "2 expected, 2 answered" in section(out, "-g web os.release")
        # Issue 24: a filtered broadcast reaches the hosts whose own facts
        # match (custom.rack from their facts_dir), and the CLI expected
        # exactly those from their retained facts.
        rack = section(out, "-F custom.rack=b7")
        assert "2 expected, 2 answered" in rack, rack
        assert re.search(r"^web1\s+pass", rack, re.M) and re.search(r"^db1\s+pass", rack, re.M), rack
        assert not re.search(r"^(web2|db2)\s", rack, re.M), rack
        # ... and its page's address, whose job muster-server knows from the
        # operator-signed announce: two expected, both answered.
        m = re.search(r"^==> its page: (http://127\.0\.0\.1:\d+/)#/jobs/(\S+)$", out, re.M)
        assert m and m.group(1) == url, out
        with urllib.request.urlopen(f"{url}api/jobs/{m.group(2)}", timeout=10) as api:
            view = json.loads(api.read())
        assert view["announced"] and sorted(view["expected"]) == ["db1", "web1"], view
        assert view["counts"]["answered"] == 2 and view["counts"]["missing"] == 0, view
        # Issue 8: the shipped modules are published signed, and every host
        # fetched what it ran from the broker (none was copied by hand).
        pub = section(out, "muster module publish")
        for m in ("os.release", "qc.install", "disk.usage"):
            assert re.search(rf"^{re.escape(m)}\s+1\.0\.0\s+[0-9a-f]{{16}}", pub, re.M), pub
        fetched = section(out, "fetched from the broker")
        for h in HOSTS:
            assert re.search(rf"^{h}: .*qc\.install 1\.0\.0", fetched, re.M), fetched
        assert re.search(r"^web1: .*os\.release", fetched, re.M), fetched
        for h in HOSTS:
            assert not list((d / h / "modules").iterdir())

        e = demo("env", env=env)
        assert e.returncode == 0
        m = re.search(r"^export MUSTER_CONFIG=(\S+)$", e.stdout, re.M)
        assert m and Path(m.group(1)) == d / "muster.conf", e.stdout
        assert f"{BUILD_DIR}/ctl" in e.stdout
        # The printed config works with the CLI.
        p = run_cli("ping", "--all", "--json", conf=m.group(1),
                    env={"HOME": tmp_path})
        assert p.returncode == 0, p.stdout + p.stderr
        assert '"expected":4,"answered":4' in p.stdout

        # Issue 11: a new agent version, canary first, then stable at 50 %
        # (db2 only: buckets db2 49, db1 52, web2 58), then 100 %.  Not on
        # the sanitizer build: it builds the agent a second time and waits
        # in real time for three rounds of self-tests (test_update.py covers
        # self-update there).
        if not is_sanitized(BUILD_DIR / "agent" / "musterd"):
            u = demo("update", env=dict(env, MUSTER_DEMO_VERSION="0.1.0+demo2"),
                     timeout=600)
            assert u.returncode == 0, u.stdout
            canary = section(u.stdout, "--channel canary")
            assert re.search(r"^canary: 0\.1\.0\+demo2, rollout 100%.*\n.*0\.1\.0\+demo2 +1 online",
                             canary, re.M), canary
            half = section(u.stdout, "--rollout 50")
            assert re.search(r"^stable: 0\.1\.0\+demo2, rollout 50%", half, re.M), half
            assert re.search(r"^  0\.1\.0\+demo2 +1 online", half, re.M), half
            assert re.search(r"^  0\.1\.0 +2 online", half, re.M), half
            full = section(u.stdout, "rollout --channel stable 100")
            assert re.search(r"^  0\.1\.0\+demo2 +3 online", full, re.M), full
            for h in HOSTS:
                assert "passed its self-test" in (d / h / "agent.log").read_text()
            # The update job to hosts in their healthy window or already
            # updated: each says it is at that version (pass).
            assert "4 expected, 4 answered: 4 pass" in section(u.stdout, "muster update --all"), \
                section(u.stdout, "muster update --all")
            # Issue 25: a broken release on a schedule; db2 (bucket 49, in
            # the 50 % step) tries it and fails, muster-server halts it, and
            # web2 and db1 never try it, though the 100 % step has come.
            halt = section(u.stdout, "halted by muster-server after the first failure")
            assert re.search(r"^  progress of 0\.1\.0\+demo2\.broken: 1 attempted \(0 healthy, "
                             r"0 testing, 1 failed\), 2 halted, 0 pending", halt, re.M), halt
            assert re.search(r"^  0\.1\.0\+demo2 +3 online", halt, re.M), halt
            api = section(u.stdout, "from /api/releases")
            assert re.search(r"^stable: 0\.1\.0\+demo2\.broken: 1 attempted, 1 failed; halted: "
                             r"1 of 1 hosts that tried it failed", api, re.M), api
            for h in ("web2", "db1"):
                fetched = [l for l in (d / h / "agent.log").read_text().splitlines()
                           if "demo2.broken" in l and "fetching in" in l]
                assert fetched == [], (h, fetched)

        # Running it again replaces the fleet: the old processes are gone.
        r = demo(env=env)
        assert r.returncode == 0, r.stdout
        started.append(pids(d / "run"))
        assert all(gone(p) for p in started[0].values()), started[0]
        assert "4 expected, 4 answered" in section(
            r.stdout, "qc.install profile:=@seeds/qc/base.json")
    finally:
        s = demo("stop", env=env, timeout=60)
    assert s.returncode == 0, s.stdout
    assert "demo stopped" in s.stdout
    assert list((d / "run").glob("*.pid")) == []
    left = {name: pid for run in started for name, pid in run.items()
            if not gone(pid)}
    assert left == {}, f"still running after scripts/demo stop: {left}"
    for h in HOSTS:
        assert "stopping" in (d / h / "agent.log").read_text()
    assert "stopped" in (d / "server" / "server.log").read_text()
    shutil.rmtree(top, ignore_errors=True)
