# SPDX-License-Identifier: Apache-2.0
"""What passes on a module author's machine passes on the fleet (issue 23),
from the installed dev kit alone.

The agent and dev components are installed from the build tree under a
scratch DESTDIR (prefix /opt/muster, as tests/packaging/test_sdk_prefix.py
does); the installed template is copied out of the source tree, its hello.c
replaced by tests/sdk-fleet/fleetcheck.c and its tests by
tests/sdk-fleet/tests.cmake (a fake timedatectl through MUSTER_TOOLS_DIR),
and it is built with the installed CMake package only (CMAKE_PREFIX_PATH
into the DESTDIR) and passes its own ctest tests.  Each case then runs
locally with the INSTALLED muster-runner (`--run --json`, confined: root)
and on a real host (musterd from the build tree) that fetched the same .so
published signed to the test broker, and must give the same verdict: a
blocked system call, an unreadable file, abort() and a hang.  Last, the
CLI's view of that hang, with and without --timeout.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from muster_fixtures import (
    BUILD_DIR, SOURCE_DIR, assert_no_sanitizer_reports, module_payloads, new_job, run_cli,
    run_job, start_fresh, topic, write_cli_conf,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="muster-runner --run confines (a job's uid, PID namespace) only as root, "
           "and the host's runners need root too; CI runs the suite as root")

PREFIX = "/opt/muster"
NAME = "fleetcheck"
KIT_SRC = SOURCE_DIR / "tests" / "sdk-fleet"
# Not /tmp (a confined run has its own) and reachable by a job's uid:
# the unreadable file is then refused by its own mode, not by a folder.
OPEN_BASE = "/run"


def run(*args, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, **kw)


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """The installed kit and fleetcheck built with it: (prefix, module dir, .so)."""
    for tool in ("cmake", "ctest", "cc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    dest = tmp_path_factory.mktemp("destdir")
    for comp in ("agent", "dev"):
        r = run("cmake", "--install", BUILD_DIR, "--prefix", PREFIX, "--component", comp,
                env=dict(os.environ, DESTDIR=str(dest)))
        assert r.returncode == 0, r.stdout + r.stderr
    sdk = dest / PREFIX.lstrip("/")

    # Outside the source tree, from the template as installed.
    mod = tmp_path_factory.mktemp("author") / NAME
    shutil.copytree(sdk / "share/muster/module-template", mod, symlinks=True)
    (mod / "hello.c").unlink()
    shutil.rmtree(mod / "tests/tools")
    shutil.copy(KIT_SRC / "fleetcheck.c", mod / f"{NAME}.c")
    shutil.copytree(KIT_SRC / "tools", mod / "tests/tools")
    head, sep, _ = (mod / "CMakeLists.txt").read_text().partition("enable_testing()")
    assert sep and "find_package(muster" in head and "muster_add_module(hello" in head, head
    (mod / "CMakeLists.txt").write_text(head.replace("hello", NAME) +
                                        (KIT_SRC / "tests.cmake").read_text())

    # The installed package only: no hint of the build or source tree.
    env = dict(os.environ, CMAKE_PREFIX_PATH=str(sdk))
    r = run("cmake", "-S", mod, "-B", mod / "build", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    cache = (mod / "build/CMakeCache.txt").read_text()
    assert re.search(rf"^muster_DIR:PATH={re.escape(str(sdk))}/", cache, re.M), cache
    r = run("cmake", "--build", mod / "build", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    flags = (mod / f"build/CMakeFiles/{NAME}.dir/flags.make").read_text()
    assert f"-I{sdk}/include" in flags or f"-isystem {sdk}/include" in flags, flags
    assert str(SOURCE_DIR) not in flags and str(BUILD_DIR) not in flags, flags
    so = mod / "build" / f"{NAME}.so"
    assert so.is_file()
    return sdk, mod, so


@pytest.fixture
def open_dir():
    """A folder any uid may walk through and write."""
    d = Path(tempfile.mkdtemp(prefix="muster-open-", dir=OPEN_BASE))
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def op(mqtt):
    return mqtt("op:alice")


@pytest.fixture
def host(kit, agents, pub_client, op, operator, keys):
    """h1, a musterd from the build tree that fetches fleetcheck as the kit
    built it, published signed: host(args, **job fields) -> its result."""
    _, _, so = kit
    a = agents("h1", wake_port=0,
               extra={"modules": {"fetch_timeout": "10s", "prefetch_delay": "0"}})
    start_fresh(a)
    ptr, art, sha = module_payloads(keys, so.read_bytes(), NAME, "1.0.0", 1)
    pub_client.publish(topic("modules", NAME, sha), art, retain=True)
    pub_client.publish(topic("modules", NAME), ptr, retain=True)

    def run_on_host(args, **fields):
        body = new_job("run", "host/h1", module=NAME, args=args, **fields)
        got = run_job(op, operator, body, ["h1"], timeout=30)
        assert "h1" in got, f"no result for {body['id']}"
        return got["h1"]

    # Fetched and verified once, so no later job's timeout holds the fetch.
    r = run_on_host({"read": "/"})
    assert r["status"] == "pass" and r["summary"] == "read /", r
    return run_on_host


def local(kit, args, *extra):
    """The installed `muster-runner --run NAME.so --json`: as root, confined."""
    sdk, _, so = kit
    argv = [sdk / "bin/muster-runner", "--run", so, "--json", *extra]
    argv += [f"{k}:={json.dumps(v)}" for k, v in args.items()]
    r = run(*argv, timeout=30)
    assert r.stdout, r.stderr
    out = json.loads(r.stdout)
    out["stderr"] = r.stderr
    return out


def test_the_module_passes_its_own_tests_with_its_fake_tool(kit):
    _, mod, _ = kit
    r = run("ctest", "--test-dir", mod / "build", "--output-on-failure")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "100% tests passed, 0 tests failed out of 2" in r.stdout, r.stdout
    # The fake tool decides: one that says otherwise fails the test.
    tool = mod / "tests/tools/timedatectl"
    good = tool.read_text()
    try:
        tool.write_text("#!/bin/sh\necho NTPSynchronized=no\n")
        r = run("ctest", "--test-dir", mod / "build", "-R", "fleetcheck.synced")
        assert r.returncode != 0, r.stdout
    finally:
        tool.write_text(good)


def test_a_blocked_call_is_the_same_locally_and_on_a_host(kit, host):
    mine = local(kit, {"adjtimex": True})
    theirs = host({"adjtimex": True})
    for r in (mine, theirs):
        assert r["status"] == "error", r
        assert re.match(r"blocked system call: (adjtimex|clock_adjtime) ", r["reason"]), r
    assert mine["reason"] == theirs["reason"], (mine, theirs)


def test_an_unreadable_file_is_the_same_locally_and_on_a_host(kit, host, open_dir):
    secret = open_dir / "secret"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    mine = local(kit, {"read": str(secret)})
    theirs = host({"read": str(secret)})
    for r in (mine, theirs):
        assert r["status"] == "error", r
        assert r["reason"] == f"{secret}: Permission denied", r
    # The control: root itself reads it, unconfined.
    assert local(kit, {"read": str(secret)}, "--no-confine")["status"] == "pass"


def test_abort_is_sigabrt_locally_and_on_a_host(kit, host):
    mine = local(kit, {"abort": True})
    theirs = host({"abort": True})
    for r in (mine, theirs):
        assert r["status"] == "crashed", r
        assert r["signal"] == signal.SIGABRT, r
        assert "signal 6 (Aborted)" in r["reason"], r


def test_a_hang_times_out_locally_and_on_a_host(kit, host):
    mine = local(kit, {"hang": True}, "--timeout", "1500ms")
    theirs = host({"hang": True}, timeout_ms=1500)
    assert mine["status"] == theirs["status"] == "timeout", (mine, theirs)
    # The same words for the same limit.  The host adds how long getting
    # the module took when that reached 0.1 s (a cached one's pointer is
    # still looked up), never that it was cut short: the warm-up fetched it.
    assert mine["reason"] == "timed out after 1.5 s (--timeout)", mine
    assert re.fullmatch(r"timed out after 1\.5 s \(job timeout\)"
                        r"(; getting module fleetcheck took \d+\.\d s before the run)?",
                        theirs["reason"]), theirs


def test_the_cli_shows_a_hang_as_running_or_as_a_timeout(kit, host, broker, keys,
                                                        tmp_path):
    conf = write_cli_conf(tmp_path / "muster.conf", broker, keys=keys)
    env = {"HOME": tmp_path}
    # Without --timeout (the agent's 60 s) the CLI stops waiting first: the
    # host took the job and is at work, with the job id to cancel it.
    r = run_cli("run", "-H", "h1", "--wait", "2s", NAME, "hang=true", conf=conf, env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    job = re.search(r" answered: .*  job (\S+)$", r.stdout, re.M)
    assert job, r.stdout
    assert "still running: h1" in r.stdout and "no answer" not in r.stdout, r.stdout
    c = run_cli("cancel", "-H", "h1", job[1], conf=conf, env=env)
    assert c.returncode == 0, c.stdout + c.stderr
    # With --timeout the CLI waits for it: a timeout row with the reason.
    r = run_cli("run", "-H", "h1", "--timeout", "2s", NAME, "hang=true", conf=conf, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    rows = [line.split(None, 3) for line in r.stdout.splitlines()
            if line.startswith("h1 ")]
    assert len(rows) == 1, r.stdout
    assert rows[0][1] == "timeout", rows
    assert rows[0][3].startswith("timed out after 2 s (job timeout)"), rows
