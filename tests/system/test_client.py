# SPDX-License-Identifier: Apache-2.0
"""libmuster-client (client/, muster-client(3), design.md §10) against a
real broker and real agents, through its test driver
build/tests/client/client-probe (tests/client/client-probe.c), which uses
the public header and the shared library only.

The library runs the CLI's own job machinery (ctl/sendcore.c): the same
results, checked the same way, and each result's JSON exactly what
`muster run --json` prints for it, which the tests compare line by line.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from muster_fixtures import (
    BUILD_DIR, MUSTER_CLI, SOURCE_DIR, TEST_MODULES_DIR, Agent, Broker,
    install_modules, is_sanitized, run_cli, sanitizer_report, write_cli_conf,
)
from test_host_signing import ScriptedHost, res_topic

PROBE = BUILD_DIR / "tests" / "client" / "client-probe"
LIB = BUILD_DIR / "client" / "libmuster-client.so"
HEADER = SOURCE_DIR / "client" / "include" / "muster" / "client.h"

pytestmark = pytest.mark.skipif(not PROBE.exists(), reason=f"{PROBE} is not built")

# What a program linked with a sanitizer build of the library needs too.
SAN = ["-fsanitize=address,undefined"] if is_sanitized() else []

RC = {"MUSTER_OK": 0, "MUSTER_DONE": 1, "MUSTER_ETIMEOUT": 2, "MUSTER_ECONFIG": 3,
      "MUSTER_EKEY": 4, "MUSTER_ECONNECT": 5, "MUSTER_ELOST": 6, "MUSTER_EINVAL": 7,
      "MUSTER_EREFUSED": 8}


def lines(text: str) -> list[dict]:
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def probe(*args: str, conf=None, env=None, timeout: float = 60,
          binary: Path | None = None) -> tuple[int, list[dict]]:
    e = dict(os.environ)
    e.pop("MUSTER_CONFIG", None)
    e["HOME"] = "/nonexistent"
    if conf is not None:
        e["MUSTER_CONFIG"] = str(conf)
    e.update(env or {})
    # MUSTER_CLIENT_WRAP="valgrind --error-exitcode=99 --leak-check=full -q":
    # the same tests with the library under a memory checker.
    wrap = os.environ.get("MUSTER_CLIENT_WRAP", "").split()
    p = subprocess.run([*wrap, str(binary or PROBE), *args], capture_output=True, text=True, env=e,
                       timeout=timeout * (5 if wrap else 1), stdin=subprocess.DEVNULL)
    assert sanitizer_report(p.stderr) is None, p.stderr
    # The library never prints: the driver prints stdout only.
    assert p.stderr == "", p.stderr
    return p.returncode, lines(p.stdout)


def results(out: list[dict]) -> list[dict]:
    return [o for o in out if o.get("type") == "result"]


@pytest.fixture(scope="module")
def world(pki, keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("client")
    broker = Broker(pki, base / "broker").start()
    made = []
    try:
        for name, groups in (("h1", ["web"]), ("h2", ["web", "db"])):
            a = Agent(name, broker, keys, base / f"agent-{name}", groups=groups)
            install_modules(a, "echoargs", "hang", src=TEST_MODULES_DIR)
            made.append(a.start(wait_online=False))
        for a in made:
            a.wait_status("online")
        h3 = ScriptedHost(broker, "h3", pki.sign_key("h3"), pki.sign_cert("h3"))
        h3.publish_status()
        conf = write_cli_conf(base / "muster.conf", broker, keys=keys)
        yield type("World", (), dict(broker=broker, conf=conf, keys=keys, pki=pki,
                                     base=base, h3=h3))
        h3.close()
    finally:
        for a in made:
            a.cleanup()
        broker.stop()


# ---- a real fleet --------------------------------------------------------

@pytest.mark.parametrize("callback", [False, True])
def test_ping_two_hosts(world, callback):
    rc, out = probe(*(["--callback"] if callback else []), "--signals", "ping", "-H", "h1",
                    "-H", "h2", conf=world.conf)
    assert rc == 0, out
    got = results(out)
    assert sorted((r["host"], r["status"]) for r in got) == [("h1", "pass"), ("h2", "pass")]
    end = out[-1]
    assert end["type"] == "end" and end["name"] == "MUSTER_OK", end
    # An open session has left the caller's signals alone.
    (sig,) = [o for o in out if o["type"] == "signals"]
    assert sig == {"type": "signals", "int_default": True, "term_default": True,
                   "blocked": False}, sig
    assert (end["expected"], end["answered"], end["missing_n"], end["forged"],
            end["pass"]) == (2, 2, 0, 0, 2), end
    assert end["missing"] == [] and len(end["ids"]) == 2, end
    for r in got:
        assert r["job"] in end["ids"]


def test_version(world):
    rc, out = probe("version", "-H", "h1", conf=world.conf)
    assert rc == 0, out
    (r,) = results(out)
    f = next(o for o in out if o["type"] == "fields")
    assert r["status"] == "pass" and f["agent_version"] == r["agent_version"] != ""


def test_run_module_with_args(world):
    rc, out = probe("run", "-H", "h2", "echoargs", '{"max_pct": 90, "name": "web"}',
                    conf=world.conf)
    assert rc == 0, out
    (r,) = results(out)
    f = next(o for o in out if o["type"] == "fields")
    assert r["host"] == f["host"] == "h2" and r["status"] == f["status"] == "pass"
    assert f["module"] == "echoargs" == r.get("module")
    # The accessors say what the JSON says.
    assert f["data"] == r.get("data", {}), (f, r)
    assert f["data"]["args"]["max_pct"] == 90 and f["data"]["args"]["name"] == "web"
    assert f["started_at"] == r["started_at"] and f["finished_at"] == r["finished_at"]
    assert f["finished_at"] >= f["started_at"] > 0


def test_result_json_is_the_cli_json(world):
    """muster_result_json() is what `muster run --json` prints per result:
    the same job through both, compared field by field except what differs
    from run to run (job id, times, ...) - and both made by one function."""
    rc, out = probe("run", "-H", "h1", "echoargs", '{"k": "v"}', conf=world.conf)
    assert rc == 0, out
    (lib,) = results(out)
    r = run_cli("run", "-H", "h1", "echoargs", "k=v", "--json", conf=world.conf)
    assert r.returncode == 0, r.stdout + r.stderr
    (cli,) = [o for o in lines(r.stdout) if o["type"] == "result"]
    vary = {"job", "started_at", "finished_at", "seq", "duration_ms"}
    assert set(lib) == set(cli), (lib, cli)
    assert {k: v for k, v in lib.items() if k not in vary} == \
        {k: v for k, v in cli.items() if k not in vary}
    # Key order too: one compact line from one encoder.
    assert list(lib) == list(cli)


def test_filters_and_groups(world):
    rc, out = probe("ping", "-g", "db", conf=world.conf, timeout=60)
    assert rc == 0, out
    assert [r["host"] for r in results(out)] == ["h2"]
    # Filters alone mean every host, narrowed by the hosts' verified facts
    # (h3, the scripted host, publishes none: not expected, not missing).
    rc, out = probe("--wait", "10000", "ping", "-F", "groups has db", "-F", "cpus>=1",
                    conf=world.conf, timeout=60)
    assert rc == 0, out
    assert [r["host"] for r in results(out)] == ["h2"], out
    assert out[-1]["expected"] == 1 and out[-1]["missing"] == [], out[-1]


# ---- error paths ------------------------------------------------------------

def test_no_config(world, tmp_path):
    rc, out = probe("--no-settings", "ping", "-H", "h1")
    assert rc == RC["MUSTER_ECONFIG"], out
    assert out[0]["call"] == "open" and "no configuration" in out[0]["error"]
    rc, out = probe("--config", str(tmp_path / "missing.conf"), "ping", "-H", "h1")
    assert rc == RC["MUSTER_ECONFIG"] and "missing.conf" in out[0]["error"], out


def test_bad_config_line(world, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[broker]\nkeepalive = ten\n")
    rc, out = probe("--config", str(bad), "ping", "-H", "h1")
    assert rc == RC["MUSTER_ECONFIG"] and "bad.conf:2" in out[0]["error"], out


def test_unreadable_operator_key(world, tmp_path):
    key = tmp_path / "op.key"
    key.write_text("not a key\n")
    rc, out = probe("--operator-key", str(key), "ping", "-H", "h1", conf=world.conf)
    assert rc == RC["MUSTER_EKEY"] and out[0]["call"] == "open", out
    rc, out = probe("--operator-key", str(tmp_path / "nope.key"), "ping", "-H", "h1",
                    conf=world.conf)
    assert rc == RC["MUSTER_EKEY"] and "nope.key" in out[0]["error"], out


def test_broker_down(world):
    from muster_fixtures import free_port
    rc, out = probe("--broker", f"ssl://127.0.0.1:{free_port()}", "ping", "-H", "h1",
                    conf=world.conf)
    assert rc == RC["MUSTER_ECONNECT"] and out[0]["call"] == "open", out
    assert "127.0.0.1" in out[0]["error"], out


@pytest.mark.parametrize("args,what", [
    (["run", "-H", "h1", "Bad/Module"], "bad module name"),
    (["run", "-H", "h1"], "bad module name"),
    (["ping", "-H", "H1!"], "not a valid name"),
    (["ping", "-g", "a b"], "not a valid name"),
    (["ping"], "no target"),
    (["ping", "-F", "mem_mb <<< 3"], "-F"),
    (["run", "-H", "h1", "echoargs", "[1, 2]"], "not a JSON object"),
    (["run", "-H", "h1", "echoargs", "{nope"], "args_json"),
    (["bogus", "-H", "h1"], "unknown job kind"),
])
def test_bad_spec(world, args, what):
    rc, out = probe(*args, conf=world.conf)
    assert rc == RC["MUSTER_EINVAL"], out
    assert out[0]["call"] == "send" and what in out[0]["error"], out


def test_timeout_lists_the_missing_host(world):
    rc, out = probe("--wait", "1500", "ping", "-H", "h1", "-H", "nosuchhost",
                    conf=world.conf)
    assert rc == RC["MUSTER_ETIMEOUT"], out
    assert [r["host"] for r in results(out)] == ["h1"]
    end = out[-1]
    assert end["missing"] == ["nosuchhost"] and end["missing_n"] == 1, end
    assert (end["expected"], end["answered"]) == (2, 1), end
    assert "did not answer" in end["error"], end


def test_host_timeout_is_a_result(world):
    rc, out = probe("--timeout", "1000", "run", "-H", "h1", "hang", conf=world.conf)
    assert rc == 0, out
    (r,) = results(out)
    assert r["status"] == "timeout" and out[-1]["timeout"] == 1, out


# ---- verification ------------------------------------------------------------

def test_forged_result_is_counted_never_delivered(world):
    """h3 (a real certificate, scripted) answers with a result claiming to
    be h1's, then its own genuine one: the library delivers h1's real
    answer and h3's, and counts the forgery."""
    h3 = world.h3
    h3.publish_status()

    def reply(j):
        return [(res_topic(j, "h3"), h3.signed(h3.result(j, host="h1", summary="forged")),
                 False),
                (res_topic(j, "h3"), h3.signed(h3.result(j)), False)]
    h3.reply = reply
    try:
        rc, out = probe("ping", "-H", "h1", "-H", "h3", conf=world.conf)
    finally:
        h3.reply = None
    assert h3.error is None, repr(h3.error)
    assert rc == 0, out
    got = results(out)
    assert sorted(r["host"] for r in got) == ["h1", "h3"], out
    assert all(r.get("summary") != "forged" for r in got), out
    assert out[-1]["forged"] == 1, out[-1]


def test_wrong_key_signature_is_forged(world):
    """A result signed by another CA's certificate is not an answer."""
    from muster_fixtures import gen_pki
    other = gen_pki(world.base / "other-pki", hosts=["h3:web"])
    h3 = world.h3
    h3.key, h3.cert = other.sign_key("h3"), other.sign_cert("h3")
    h3.reply = lambda j: [(res_topic(j, "h3"), h3.signed(h3.result(j)), False)]
    try:
        rc, out = probe("--wait", "2000", "ping", "-H", "h3", conf=world.conf)
    finally:
        h3.reply = None
        h3.key, h3.cert = world.pki.sign_key("h3"), world.pki.sign_cert("h3")
    assert rc == RC["MUSTER_ETIMEOUT"], out
    assert results(out) == [] and out[-1]["forged"] >= 1, out
    assert out[-1]["missing"] == ["h3"], out


# ---- ABI ------------------------------------------------------------------------

def test_only_the_api_is_exported():
    out = subprocess.run(["nm", "-D", "--defined-only", str(LIB)], capture_output=True,
                         text=True, check=True).stdout
    # The version node itself (type A) aside, each symbol is muster_*@@MUSTER_CLIENT_0.
    named = [line.split()[-1] for line in out.splitlines() if line.split()[1] != "A"]
    assert named and all(s.endswith("@@MUSTER_CLIENT_0") for s in named), named
    syms = [s.split("@")[0] for s in named]
    assert all(s.startswith("muster_") for s in syms), syms
    # Every function the header declares is there.
    declared = set(re.findall(r"MUSTER_API [^;]*?\b(muster_[a-z_]+)\(", HEADER.read_text()))
    assert declared and declared <= set(syms), declared - set(syms)


def test_soname():
    out = subprocess.run(["readelf", "-d", str(LIB)], capture_output=True, text=True,
                         check=True).stdout
    assert "Library soname: [libmuster-client.so.0]" in out
    assert os.readlink(LIB) == "libmuster-client.so.0"


@pytest.mark.parametrize("cc,args", [
    ("gcc", ["-x", "c", "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"]),
    ("g++", ["-x", "c++", "-std=c++11", "-pedantic", "-Wall", "-Wextra", "-Werror"]),
])
def test_header_compiles(tmp_path, cc, args):
    if shutil.which(cc) is None:
        pytest.skip(f"no {cc}")
    src = tmp_path / "use.c"
    src.write_text('#include <muster/client.h>\n'
                   'int main(void) { muster_session *s = 0;\n'
                   '  struct muster_settings st = { sizeof st, 0, 0, 0, 0, 0, 0, 0, 0, -1 };\n'
                   '  (void)st; muster_session_close(s);\n'
                   '  return muster_strerror(MUSTER_OK)[0] == 0; }\n')
    exe = tmp_path / "use"
    p = subprocess.run([cc, *args, *SAN, "-I", str(HEADER.parent.parent), str(src), "-x", "none",
                        "-o", str(exe), "-L", str(LIB.parent), "-lmuster-client"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    # C++ linkage: the names are C's (extern "C"), so it links and runs.
    r = subprocess.run([str(exe)], env=dict(os.environ, LD_LIBRARY_PATH=str(LIB.parent)))
    assert r.returncode == 0


# ---- the C example -------------------------------------------------------------

def test_example_builds_with_pkg_config_and_runs(world, tmp_path):
    """examples/client/qc-host.c, built by its own Makefile through
    pkg-config against the build tree's muster-client.pc, run on the fleet."""
    if shutil.which("pkg-config") is None or shutil.which("make") is None:
        pytest.skip("no pkg-config or make")
    src = tmp_path / "example"
    shutil.copytree(SOURCE_DIR / "examples" / "client", src)
    pc = BUILD_DIR / "client" / "uninstalled"
    env = dict(os.environ, PKG_CONFIG_PATH=str(pc))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "muster-client"],
                           capture_output=True, text=True, env=env, check=True).stdout
    assert "-lmuster-client" in flags and str(HEADER.parent.parent) in flags, flags
    if SAN:
        env.update(CFLAGS=" ".join(["-O1", "-g", *SAN]), LDFLAGS=" ".join(SAN))
    p = subprocess.run(["make", "-C", str(src)], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    run_env = dict(os.environ, LD_LIBRARY_PATH=str(LIB.parent), HOME="/nonexistent",
                   MUSTER_CONFIG=str(world.conf))
    r = subprocess.run([str(src / "qc-host"), "h1", "echoargs", '{"x": 1}'],
                       capture_output=True, text=True, env=run_env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("h1: echoargs PASSED: pass"), r.stdout
    r = subprocess.run([str(src / "qc-host"), "-w", "1", "nosuchhost", "echoargs"],
                       capture_output=True, text=True, env=run_env, timeout=60)
    assert r.returncode == 3 and "NO ANSWER" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([str(src / "qc-host"), "-c", str(tmp_path / "none.conf"), "h1"],
                       capture_output=True, text=True, env=run_env, timeout=60)
    assert r.returncode == 2 and "none.conf" in r.stderr, r.stdout + r.stderr


def test_install_components(tmp_path):
    """The runtime (.so.0) in component libclient, the rest (header, .so
    link, .pc, man page) in libclient-dev: the Debian packages are made of
    these."""
    if shutil.which("cmake") is None:
        pytest.skip("no cmake")
    got = {}
    for comp in ("libclient", "libclient-dev"):
        dest = tmp_path / comp
        subprocess.run(["cmake", "--install", str(BUILD_DIR), "--component", comp],
                       env=dict(os.environ, DESTDIR=str(dest)), check=True,
                       capture_output=True)
        # Each package's copyright and changelog (packaging/) aside.
        files = [str(p.relative_to(dest)) for p in dest.rglob("*") if not p.is_dir()]
        docs = sorted(f for f in files if "/share/doc/" in f)
        assert all(f.rsplit("/", 1)[1] in ("copyright", "changelog.gz") for f in docs), docs
        got[comp] = sorted(f.split("/")[-1] for f in files if f not in docs)
    assert got["libclient"] == ["libmuster-client.so.0", "libmuster-client.so.0.1.0"], got
    dev = got["libclient-dev"]
    assert {"client.h", "libmuster-client.so", "muster-client.pc"} <= set(dev), dev
    if (BUILD_DIR / "packaging" / "man" / "muster-client.3.gz").exists():
        assert "muster-client.3.gz" in dev, dev
    pc = next((tmp_path / "libclient-dev").rglob("muster-client.pc")).read_text()
    assert "-lmuster-client" in pc and "Version: " in pc


def test_jobs_open_side_by_side(world):
    """Three jobs sent before any result is read: each one's results
    reach that job (ctl_pump() routes another open job's messages to it)
    instead of being dropped while another job waits."""
    rc, out = probe("--jobs", "3", "--wait", "10000", "ping", "-H", "h1", "-H", "h2",
                    conf=world.conf)
    assert rc == 0, out
    ends = [o for o in out if o["type"] == "end"]
    assert [e["name"] for e in ends] == ["MUSTER_OK"] * 3, ends
    assert all(e["answered"] == 2 and e["missing"] == [] for e in ends), ends
    ids = [set(e["ids"]) for e in ends]
    for e, got in zip(ends, ids):
        assert len(got) == 2
    assert len(set().union(*ids)) == 6
    by_job = {}
    for r in results(out):
        by_job.setdefault(r["job"], []).append(r["host"])
    assert all(sorted(by_job[i]) in (["h1"], ["h2"]) for i in set().union(*ids)), by_job


def test_sequential_jobs_one_session(world):
    """Many jobs in a row on one session (the support tool's loop): each
    answered, and the per-job time printed for the record (-s shows it)."""
    rc, out = probe("--repeat", "50", "ping", "-H", "h1", conf=world.conf, timeout=120)
    assert rc == 0, out
    (b,) = [o for o in out if o["type"] == "bench"]
    assert b["n"] == 50 and 0 < b["p50_ms"] <= b["p90_ms"] <= b["max_ms"], b
    print(f"\nlibrary: 50 one-host pings on one session: p50 {b['p50_ms']:.1f} ms, "
          f"p90 {b['p90_ms']:.1f} ms")


def test_settings_without_a_file(world):
    """Every setting given by the caller, no muster.conf anywhere."""
    pki = world.pki
    rc, out = probe("--broker", world.broker.uri, "--ca", str(pki.ca),
                    "--cert", str(pki.cert("op:alice")), "--key", str(pki.key("op:alice")),
                    "--operator-key", str(world.keys.operator_key("alice")),
                    "ping", "-H", "h1")
    assert rc == 0, out
    assert [r["host"] for r in results(out)] == ["h1"]
    # The setting is used: another topic root, which the broker's ACL does
    # not let op:alice write, so the broker refuses the job.
    rc, out = probe("--topic-root", "elsewhere", "--wait", "1000", "ping", "-H", "h1",
                    conf=world.conf)
    assert rc == RC["MUSTER_EREFUSED"], out
    assert out[0]["call"] == "send" and "did not take the job" in out[0]["error"], out


def test_job_too_large_is_einval(world):
    """A job the wire format refuses (a string argument past 64 KiB) is the
    caller's error, said, not a lost connection."""
    big = json.dumps({"x": "a" * 70000})
    rc, out = probe("run", "-H", "h1", "echoargs", big, conf=world.conf)
    assert rc == RC["MUSTER_EINVAL"], out
    assert out[0]["call"] == "send" and out[0]["error"], out


def test_older_shorter_structs(world):
    """A program built against an older header passes shorter structs: the
    library reads no field past their size (the newer ones take their
    defaults) and writes none past the summary's."""
    rc, out = probe("--old-abi", "ping", "-H", "h1", "-H", "h2", conf=world.conf)
    assert rc == 0, out
    assert sorted(r["host"] for r in results(out)) == ["h1", "h2"]
    (o,) = [x for x in out if x["type"] == "old_abi"]
    assert o["tail_untouched"] is True, out
    assert out[-1]["expected"] == 2 and out[-1]["answered"] == 2, out[-1]


def test_built_against_the_first_release(world):
    """The driver compiled against ABI 0's first header (a frozen copy in
    tests/client/abi0) runs with this build's library: a ping and a run,
    results verified and the summary read."""
    old = PROBE.parent / "client-probe-abi0"
    assert old.exists(), old
    import subprocess as sp
    ldd = sp.run(["ldd", str(old)], capture_output=True, text=True).stdout
    assert "libmuster-client.so.0" in ldd, ldd
    rc, out = probe("ping", "-H", "h1", "-H", "h2", conf=world.conf, binary=old)
    assert rc == 0, out
    assert sorted(r["host"] for r in results(out)) == ["h1", "h2"]
    rc, out = probe("run", "-H", "h1", "echoargs", '{"k": 1}', conf=world.conf, binary=old)
    assert rc == 0 and [r["status"] for r in results(out)] == ["pass"], out
