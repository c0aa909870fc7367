# SPDX-License-Identifier: Apache-2.0
"""The Python binding (python/muster, package python3-muster) against a real
broker and real agents, through the built libmuster-client.so.0
(build/client/, given to the binding as MUSTER_CLIENT_LIB).

One fleet for the module: a broker and agents h1 (web), h2 (web, db),
h3 (db) with the shipped modules and the test modules echoargs and hang.
The binding is imported in this process (it is what a support tool does);
the example examples/python/qc-verdict.py runs as its own process.

Not on the sanitizer build: an ASan library cannot be loaded into a
Python that was not started with the ASan runtime.
"""
from __future__ import annotations

import datetime
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from muster_fixtures import (
    BUILD_DIR, SOURCE_DIR, Agent, Broker, Client, free_port, host_sign, is_sanitized,
    now_ms, topic, unpack, write_cli_conf,
)

LIB = BUILD_DIR / "client" / "libmuster-client.so.0"
PYTHON_DIR = SOURCE_DIR / "python"
EXAMPLE = SOURCE_DIR / "examples" / "python" / "qc-verdict.py"
FLEET = {"h1": ["web"], "h2": ["web", "db"], "h3": ["db"]}

pytestmark = [
    pytest.mark.skipif(not LIB.exists(), reason=f"{LIB} is not built"),
    pytest.mark.skipif(is_sanitized(), reason="an ASan library does not load "
                       "into a Python without the ASan runtime"),
]

# The binding under test, from the source tree, with the build's library.
os.environ["MUSTER_CLIENT_LIB"] = str(LIB)
sys.path.insert(0, str(PYTHON_DIR))
import muster  # noqa: E402


def module_dir(path: Path, extra: list[str]) -> Path:
    """Copies (owned by us, 0644: the agent refuses anything writable by
    others) of the shipped modules and the named test modules."""
    path.mkdir(parents=True, exist_ok=True)
    sos = list((BUILD_DIR / "modules").glob("*.so"))
    sos += [BUILD_DIR / "tests" / "modules" / f"{m}.so" for m in extra]
    for so in sos:
        dst = path / so.name
        shutil.copyfile(so, dst)
        os.chmod(dst, 0o644)
    return path


class Fleet:
    def __init__(self, broker: Broker, agents: dict[str, Agent], conf: Path,
                 home: Path):
        self.broker, self.agents, self.conf, self.home = broker, agents, conf, home


@pytest.fixture(scope="module")
def fleet(pki, keys, tmp_path_factory) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("pyclient")
    mods = module_dir(base / "mods", ["echoargs", "hang"])
    broker = Broker(pki, base / "broker").start()
    agents: dict[str, Agent] = {}
    try:
        for name, groups in FLEET.items():
            a = Agent(name, broker, keys, base / f"agent-{name}", groups=groups,
                      extra={"agent": {"modules_dir": str(mods)}})
            agents[name] = a.start(wait_online=False)
        for a in agents.values():
            a.wait_status("online")
        home = base / "home"
        home.mkdir()
        conf = write_cli_conf(base / "muster.conf", broker, keys=keys)
        yield Fleet(broker, agents, conf, home)
    finally:
        for a in agents.values():
            a.cleanup()
        broker.stop()


@pytest.fixture
def env(fleet, monkeypatch) -> Fleet:
    """The fleet's config as MUSTER_CONFIG and an empty HOME, as a support
    tool's environment would give them."""
    monkeypatch.setenv("MUSTER_CONFIG", str(fleet.conf))
    monkeypatch.setenv("HOME", str(fleet.home))
    return fleet


def by_host(results: list[muster.Result]) -> dict[str, muster.Result]:
    out = {r.host: r for r in results}
    assert len(out) == len(results), f"a host answered twice: {results}"
    return out


# ---- the calls ----------------------------------------------------------

def test_library_version():
    assert muster.library_version() == "0.1.0"


def test_ping_named_hosts(env):
    with muster.Session() as s:
        job = s.ping(hosts=["h1", "h2"])
        assert len(job.ids) == 2 and len(set(job.ids)) == 2, job.ids
        got = by_host(list(job))
        assert set(got) == {"h1", "h2"}
        for r in got.values():
            assert r.status == "pass" and r.ok, r
            assert r.job in job.ids
            assert json.loads(r.json)["host"] == r.host
        s = job.summary()
        assert (s.expected, s.answered, s.missing, s.unexpected, s.forged) == (2, 2, 0, 0, 0)
        assert s.counts["pass"] == 2 and sum(s.counts.values()) == 2, s
        assert job.missing() == [] and job.finished and not job.timed_out


def test_version_data(env):
    with muster.Session(env.conf) as s:
        (r,) = list(s.version(hosts="h3"))   # one str is one host
    assert r.host == "h3" and r.status == "pass"
    assert r.data["version"] == r.agent_version and r.data["abi"] >= 1, r.data
    assert {"runner_version", "channel"} <= set(r.data), r.data


def test_run_result_fields(env):
    args = {"word": "hello", "n": 7, "flag": True}
    before = datetime.datetime.now(datetime.timezone.utc)
    with muster.Session() as s:
        job = s.run("echoargs", hosts=["h1"], args=args, timeout=10)
        (r,) = list(job)
        summary = job.summary()
    assert (r.host, r.status, r.module) == ("h1", "pass", "echoargs"), r
    assert r.data["args"] == args, r.data
    assert "hello" in r.output and isinstance(r.output_bytes, bytes)
    raw = json.loads(r.json)
    assert raw["status"] == "pass" and raw["job"] == r.job and raw["data"] == r.data
    assert r.started_at is not None and r.finished_at is not None
    assert r.started_at <= r.finished_at
    assert abs((r.finished_at - before).total_seconds()) < 60
    assert r.finished_ms == raw["finished_at"]
    # Plain Python values only: nothing of ctypes reaches the caller.
    for name, value in vars(r).items():
        assert type(value).__module__ == "builtins", (name, type(value))
    assert all(type(v).__module__ == "builtins" for v in vars(summary).values())


def test_group_expects_its_members(env):
    with muster.Session() as s:
        job = s.ping(groups=["db"])
        assert sorted(r.host for r in job) == ["h2", "h3"]
        assert job.summary().expected == 2


def test_results_arrive_one_by_one(env):
    """The job is a generator: h1's answer is handed over at once, while
    the job still waits for nosuchhost (until its 4 s wait ends)."""
    with muster.Session() as s:
        t0 = time.monotonic()
        job = s.ping(hosts=["h1", "nosuchhost"], wait=4)
        it = iter(job)
        first = next(it)
        assert first.host == "h1" and time.monotonic() - t0 < 2.5
        assert not job.finished and job.missing() == ["nosuchhost"]
        assert job.summary().answered == 1
        with pytest.raises(muster.JobTimeout):
            next(it)
        assert time.monotonic() - t0 >= 3.5 and job.finished


def test_run_returns_once_the_broker_has_the_job(env):
    """Session.run() returns when the broker has the job, not when a host
    answers: hang runs 3 s on h2."""
    with muster.Session() as s:
        t0 = time.monotonic()
        job = s.run("hang", hosts=["h2"], timeout=3, wait=15)
        sent = time.monotonic() - t0
        (r,) = list(job)
        assert r.status == "timeout"
        assert sent < 1.5, f"run() took {sent:.1f} s"


def test_two_jobs_side_by_side(env):
    """Two jobs open at once on one session: each yields its own results
    (read in the other order than sent)."""
    with muster.Session() as s:
        pings = s.ping(hosts=["h1"])
        versions = s.version(hosts=["h2", "h3"])
        vs = list(versions)
        ps = list(pings)
    assert sorted(r.host for r in vs) == ["h2", "h3"], vs
    assert all(r.job in versions.ids and r.data["version"] for r in vs), vs
    assert [(r.host, r.job in pings.ids) for r in ps] == [("h1", True)], ps


def test_module_level_run_as_in_the_design(env):
    """design.md §10's line, as written (with this fleet's host name)."""
    seen = []
    for r in muster.run("disk.usage", hosts=["h1"], args={"max_pct": 100}):
        seen.append((r.host, r.status))
    assert seen == [("h1", "pass")]
    assert [r.status for r in muster.ping(hosts=["h2"])] == ["pass"]
    assert [r.data["version"] for r in muster.version(hosts=["h2"])] != []


def test_result_outlives_job_and_session(env):
    s = muster.Session()
    job = s.run("echoargs", hosts=["h1"], args={"k": "v"})
    (r,) = list(job)
    s.close()
    s.close()                                  # idempotent
    assert r.data["args"] == {"k": "v"} and r.host == "h1"
    with pytest.raises(muster.Error):
        job.summary()                          # freed with its session
    with pytest.raises(muster.Error):
        s.ping(hosts=["h1"])


# ---- errors ---------------------------------------------------------------

def test_timeout_names_the_missing_host(env):
    with muster.Session() as s:
        job = s.ping(hosts=["h1", "nosuchhost"], wait=2)
        got = []
        t0 = time.monotonic()
        with pytest.raises(muster.JobTimeout) as e:
            for r in job:
                got.append(r.host)
        assert time.monotonic() - t0 < 10
    assert got == ["h1"]
    assert e.value.missing == ["nosuchhost"] and "nosuchhost" in str(e.value)
    assert isinstance(e.value, TimeoutError) and e.value.rc == 2
    s_ = e.value.summary
    assert (s_.expected, s_.answered, s_.missing) == (2, 1, 1)


def test_timeout_without_raising(env):
    with muster.Session() as s:
        job = s.ping(hosts=["nosuchhost"], wait=1)
        assert list(job.results(raise_on_timeout=False)) == []
        assert job.timed_out and job.missing() == ["nosuchhost"]


def test_no_config(fleet, monkeypatch, tmp_path):
    monkeypatch.delenv("MUSTER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(muster.ConfigError) as e:
        muster.Session()
    assert e.value.rc == 3 and e.value.message
    with pytest.raises(muster.ConfigError):
        list(muster.run("disk.usage", hosts=["h1"]))
    with pytest.raises(muster.ConfigError):
        muster.Session(tmp_path / "absent.conf")


@pytest.mark.parametrize("bad", ["absent", "garbage"])
def test_unreadable_operator_key(env, tmp_path, bad):
    path = tmp_path / "alice.key"
    if bad == "garbage":
        path.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(muster.OperatorKeyError) as e:
        with muster.Session(operator_key=path) as s:
            list(s.ping(hosts=["h1"], wait=2))
    assert e.value.rc == 4 and e.value.message


def test_broker_down(env):
    uri = f"ssl://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(muster.ConnectError) as e:
        muster.Session(broker_uri=uri)
    assert e.value.rc == 5 and isinstance(e.value, ConnectionError)
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("module", ["Bad Name", "../etc", "", "a" * 64])
def test_bad_module_name(env, module):
    with muster.Session() as s:
        with pytest.raises(muster.InvalidArgument) as e:
            s.run(module, hosts=["h1"])
        assert e.value.rc == 7 and e.value.message
        # the session is still usable
        assert [r.status for r in s.ping(hosts=["h1"])] == ["pass"]


def test_bad_arguments_refused_before_sending(env):
    with muster.Session() as s:
        with pytest.raises(muster.InvalidArgument):
            s.ping()                                   # no target
        with pytest.raises(muster.InvalidArgument):
            s.run("echoargs", hosts=["h1"], args={"x": float("nan")})
        with pytest.raises(muster.InvalidArgument):
            s.run("echoargs", hosts=["h1"], args=["not", "a", "map"])  # type: ignore[arg-type]
        with pytest.raises(muster.InvalidArgument):
            s.ping(hosts=["h1\0h2"])
        with pytest.raises(muster.InvalidArgument):
            s.ping(hosts=["Not A Host"])


def test_unknown_module_is_a_result(env):
    with muster.Session() as s:
        (r,) = list(s.run("no.such.module", hosts=["h1"], wait=20))
    assert r.host == "h1" and r.status == "error" and r.reason, r


def test_forged_result_counted_not_yielded(env):
    """A result for h2 signed with a key that is not h2's signing key is
    never handed over but counted as forged; the genuine one (hang's
    timeout) is handed over.  The forger is a second connection with h2's
    TLS identity (the broker lets it publish h2's results): it reads the
    job off h2's job topic and answers at once, long before the agent."""
    pki = env.broker.pki
    forged: list[str] = []
    with Client(env.broker, "h2") as h2:
        h2.subscribe(topic("hosts", "h2", "jobs"))

        def forge() -> None:
            m = h2.get(timeout=20, topic=topic("hosts", "h2", "jobs"))
            jid = unpack(unpack(m.payload)["body"])["id"]
            t = now_ms()
            body = {"v": 1, "job": jid, "host": "h2", "kind": "run", "status": "pass",
                    "summary": "forged", "started_at": t, "finished_at": t,
                    "agent_version": "0.1.0"}
            h2.publish(topic("results", jid, "h2"),
                       host_sign(pki.key("h2"), pki.cert("h2"), body))
            forged.append(jid)

        forger = threading.Thread(target=forge, daemon=True)
        forger.start()
        with muster.Session() as s:
            job = s.run("hang", hosts=["h2"], timeout=3, wait=15)
            got = list(job)
            forger.join(20)
            assert forged == job.ids, (forged, job.ids)
            assert [(r.host, r.status) for r in got] == [("h2", "timeout")], got
            assert job.summary().forged == 1, job.summary()


# ---- type hints -----------------------------------------------------------

def test_type_hints_mypy_strict():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (scripts/setup installs python3-mypy)")
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                        "--cache-dir", "/dev/null", str(PYTHON_DIR / "muster"), str(EXAMPLE)],
                       env=dict(os.environ, MYPYPATH=str(PYTHON_DIR)),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout


# ---- the example support tool ---------------------------------------------

def run_example(fleet: Fleet, *args: str, timeout: float = 60,
                **env: Any) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ, PYTHONPATH=str(PYTHON_DIR), MUSTER_CLIENT_LIB=str(LIB),
             MUSTER_CONFIG=str(fleet.conf), HOME=str(fleet.home),
             PYTHONDONTWRITEBYTECODE="1")
    e.update(env)
    return subprocess.run([sys.executable, str(EXAMPLE), *args], env=e,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)


def test_example_text_page(fleet):
    r = run_example(fleet, "h1")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    out = r.stdout
    assert out.startswith("QC verdict for h1\n"), out
    verdict = "PASS" if r.returncode == 0 else "FAIL"
    assert f"verdict:  {verdict}" in out, out
    profile = json.loads((SOURCE_DIR / "seeds" / "qc" / "base.json").read_text())
    for check in profile["checks"]:
        assert f"\n{check['name']} " in out, (check["name"], out)
    assert "by muster agent 0.1.0" in out


def test_example_html_page(fleet):
    r = run_example(fleet, "h2", "--html")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert r.stdout.startswith("<!DOCTYPE html>") and "<h1>QC verdict for h2</h1>" in r.stdout
    assert r.stdout.count("<tr>") == 1 + len(json.loads(
        (SOURCE_DIR / "seeds" / "qc" / "base.json").read_text())["checks"])


def test_example_no_answer(fleet):
    r = run_example(fleet, "nosuchhost", "--wait", "1")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "NO ANSWER: nosuchhost did not answer in time." in r.stdout


def test_example_no_config(fleet, tmp_path):
    r = run_example(fleet, "h1", MUSTER_CONFIG=str(tmp_path / "absent.conf"))
    assert r.returncode == 3 and r.stdout == "", r.stdout + r.stderr
    assert r.stderr.startswith("qc-verdict: "), r.stderr


# ---- the demo fleet (scripts/demo) ----------------------------------------

def test_example_and_design_line_on_the_demo_fleet(tmp_path):
    """scripts/demo's fleet (web1, web2, db1, db2, modules fetched signed
    from the broker), its printed MUSTER_CONFIG: design.md §10's line
    exactly as written, and qc-verdict.py on web1.  In a temporary
    MUSTER_DEMO_DIR, as tests/system/test_demo.py does."""
    top = Path(tempfile.mkdtemp(prefix="muster-pydemo-"))
    os.chmod(top, 0o755)   # the runners (muster-job) must reach the demo folder
    d = top / "demo"
    env = dict(os.environ, MUSTER_DEMO_DIR=str(d), MUSTER_BUILD_DIR=str(BUILD_DIR))
    env.pop("MUSTER_CONFIG", None)
    demo = SOURCE_DIR / "scripts" / "demo"

    def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(demo), *args], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=180)
    try:
        r = run_demo()
        assert r.returncode == 0, r.stdout
        e = run_demo("env")
        m = re.search(r"^export MUSTER_CONFIG=(\S+)$", e.stdout, re.M)
        assert m, e.stdout
        conf = m.group(1)
        code = ("import muster\n"
                "for r in muster.run(\"disk.usage\", hosts=[\"web1\"], args={\"max_pct\": 90}):\n"
                "    print(r.host, r.status, r.module, r.summary)\n")
        p = subprocess.run([sys.executable, "-c", code], env=dict(
            os.environ, PYTHONPATH=str(PYTHON_DIR), MUSTER_CLIENT_LIB=str(LIB),
            MUSTER_CONFIG=conf, HOME=str(tmp_path)), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        assert re.fullmatch(r"web1 (pass|fail) disk\.usage .+\n", p.stdout), p.stdout
        home = tmp_path / "home"
        home.mkdir()
        q = subprocess.run([sys.executable, str(EXAMPLE), "web1"], env=dict(
            os.environ, PYTHONPATH=str(PYTHON_DIR), MUSTER_CLIENT_LIB=str(LIB),
            MUSTER_CONFIG=conf, HOME=str(home)), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, timeout=60)
        # The demo's hosts are this machine: pass or fail by its files, but
        # every check made (the demo's own test asks the same).
        assert q.returncode in (0, 1), q.stdout + q.stderr
        assert q.stdout.startswith("QC verdict for web1\n") and "os is debian" in q.stdout, q.stdout
        assert re.search(r"^verdict:  (PASS|FAIL)$", q.stdout, re.M), q.stdout
        assert not re.search(r"^\S.*  error ", q.stdout, re.M), q.stdout
        # The C example (examples/client/qc-host.c) on the same fleet, built
        # by its own Makefile through pkg-config against this build.
        if shutil.which("pkg-config") and shutil.which("make"):
            src = tmp_path / "c-example"
            shutil.copytree(SOURCE_DIR / "examples" / "client", src)
            mk = subprocess.run(["make", "-C", str(src)], capture_output=True, text=True,
                                env=dict(os.environ, PKG_CONFIG_PATH=str(
                                    BUILD_DIR / "client" / "uninstalled")))
            assert mk.returncode == 0, mk.stdout + mk.stderr
            c = subprocess.run([str(src / "qc-host"), "web1", "disk.usage", '{"max_pct": 99}'],
                               env=dict(os.environ, LD_LIBRARY_PATH=str(LIB.parent),
                                        MUSTER_CONFIG=conf, HOME=str(home)),
                               capture_output=True, text=True, timeout=60)
            assert c.returncode in (0, 1), c.stdout + c.stderr
            assert re.match(r"web1: disk\.usage (PASSED|FAILED): ", c.stdout), c.stdout
    finally:
        s = run_demo("stop")
        shutil.rmtree(top, ignore_errors=True)
    assert s.returncode == 0, s.stdout
