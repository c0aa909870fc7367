# SPDX-License-Identifier: Apache-2.0
"""muster-runner --run FILE.so: the module author's edit-run loop."""
import json
import signal

import pytest

from conftest import (EXIT, RUNNER, asan_env, module_path, procs_with_cmdline, run_cli,
                      sanitized, wait_until)


def run_json(module, *args, **kw):
    r = run_cli("--run", module_path(module), "--json", *args, **kw)
    try:
        return r, json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"not JSON: {r.stdout!r} {r.stderr!r}")


def test_typed_args():
    r, j = run_json("echoargs", "a=1", "b=true", "c=false", "d=hello", "e=-5", "f=1.5",
                    "big=99999999999999999999", "empty=", "eq=x=y",
                    'g:=[1,2,3]', 'h:={"k":{"n":null}}', "q:=-3.5", 'qs:="true"',
                    "s=str", "i=7")
    assert r.returncode == 0, r.stderr
    assert j["status"] == "pass"
    assert j["module"] == "echoargs" and j["module_version"] == "1.2.3"
    assert j["exit_code"] == 0
    a = j["data"]["args"]
    assert a["a"] == 1 and a["b"] is True and a["c"] is False and a["d"] == "hello"
    assert a["e"] == -5 and a["f"] == "1.5"
    assert a["big"] == "99999999999999999999"     # too big for an integer
    assert a["empty"] == "" and a["eq"] == "x=y"
    assert a["g"] == [1, 2, 3]
    assert a["h"] == {"k": {"n": None}}
    assert a["q"] == -3.5
    assert a["qs"] == "true"                      # a JSON string stays a string
    t = j["data"]["typed"]
    assert t == {"s": "str", "i": 7, "b": True, "missing": "default",
                 "int_of_str": 42, "str_of_int": "default", "bool_of_int": True,
                 "len_of_scalar": 0, "absent_chain": "chained-default",
                 "out_of_range": 1, "has_float": True, "f": -1,  # "1.5" is a string
                 "float_of_int": 7, "float_of_str": -1, "float_missing": 2.5,
                 "float_of_null": 0.5}
    assert "d (str) = hello" in j["output"]
    assert j["truncated"] is False and j["reason"] is None
    assert j["summary"] == "echoed 15 args"


@pytest.mark.parametrize("value, want", [
    ("0", 0), ("-0", 0), ("42", 42), ("-42", -42),
    ("9223372036854775807", 9223372036854775807),
    ("-9223372036854775808", -9223372036854775808),
    ("9223372036854775808", "9223372036854775808"),
    # Integers only as JSON writes them, as the muster CLI does.
    ("0644", "0644"), ("007", "007"), ("00", "00"), ("-01", "-01"), ("+5", "+5"),
    ("1e3", "1e3"), ("0x10", "0x10"), (" 1", " 1"), ("1 ", "1 "), ("-", "-"),
    ("true", True), ("false", False), ("True", "True"), ("@x", "@x"),
])
def test_argument_typing(value, want):
    r, j = run_json("echoargs", f"v={value}")
    assert r.returncode == 0, r.stderr
    assert j["data"]["args"]["v"] == want
    assert type(j["data"]["args"]["v"]) is type(want)


def test_floats_through_value_float():
    r, j = run_json("echoargs", "f:=2.25", "i=7", "s=x", "l:=[0.5, 1]",
                    'm:={"k": -1e-3}')
    assert r.returncode == 0, r.stderr
    a, t = j["data"]["args"], j["data"]["typed"]
    assert a["f"] == 2.25 and a["l"] == [0.5, 1] and a["m"] == {"k": -0.001}
    assert t["has_float"] is True
    assert t["f"] == 2.25 and t["float_of_int"] == 7.0 and t["float_of_str"] == -1
    assert t["float_missing"] == 2.5 and t["float_of_null"] == 0.5


def test_json_from_a_file(tmp_path):
    f = tmp_path / "profile.json"
    f.write_text('{"name": "base", "checks": [{"kind": "os.release", "id": "007"}]}\n')
    r, j = run_json("echoargs", f"p:=@{f}", f"raw=@{f}")
    assert r.returncode == 0, r.stderr
    # echoargs shows a list of maps as a map by index.
    assert j["data"]["args"]["p"] == {"name": "base",
                                      "checks": {"0": {"kind": "os.release", "id": "007"}}}
    assert j["data"]["args"]["raw"] == f"@{f}"      # key=@FILE is just a string
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = run_cli("--run", module_path("echoargs"), f"p:=@{bad}")
    assert r.returncode == EXIT["usage"]
    assert "argument 'p': bad JSON" in r.stdout


def test_last_argument_wins():
    r, j = run_json("echoargs", "x=1", "x=2")
    assert j["data"]["args"] == {"x": 2}


def test_readable_output():
    r = run_cli("--run", module_path("echoargs"), "s=hi", 'l:=[1,"two"]')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "module: echoargs 1.2.3"
    assert "out: s (str) = hi" in lines
    assert "progress: 50%" in lines and "progress: 100%" in lines
    assert "PASS: echoed 2 args" in lines
    assert "data: {" in lines
    assert '    "l": [' in lines


@pytest.mark.parametrize("verdict, code, word", [
    ("fail", "fail", "FAIL: echoed 2 args"), ("error", "error", "ERROR: because")])
def test_verdicts(verdict, code, word):
    r = run_cli("--run", module_path("echoargs"), f"verdict={verdict}", "reason=because")
    assert r.returncode == EXIT[code]
    assert word in r.stdout.splitlines()
    r, j = run_json("echoargs", f"verdict={verdict}", "reason=because")
    assert j["status"] == verdict and j["reason"] == "because"


def test_error_without_reason_gets_one():
    r, j = run_json("echoargs", "verdict=error")
    assert r.returncode == EXIT["error"]
    assert j["reason"] == "module reported an error without a reason"


@pytest.mark.parametrize("arg, why", [
    ("noequals", "is not key=value"), ("=x", "is not key=value"), (":=1", "has no key"),
    ("x:={", "bad JSON"), ('x:=[[[[[[[[[1]]]]]]]]]', "deeper than 8"),
    ("x:=" + "[" * 100 + "]" * 100, "deeper than 8"),
    ("x:=0644", "bad JSON"), ("x:=@/nonexistent/args.json", "unable to open"),
])
def test_bad_arguments(arg, why):
    r = run_cli("--run", module_path("echoargs"), arg)
    assert r.returncode == EXIT["usage"]
    assert why in r.stdout


@pytest.mark.parametrize("module, code, reason", [
    ("badabi", "abi", "module ABI 999, runner speaks 1"),
    ("badmagic", "magic", "bad magic"),
    ("nosym", "nosym", "no muster_module symbol"),
])
def test_bad_module(module, code, reason):
    r = run_cli("--run", module_path(module))
    assert r.returncode == EXIT[code]
    assert f"ERROR: " in r.stdout and reason in r.stdout
    r, j = run_json(module)
    assert j["status"] == "error" and reason in j["reason"]
    assert j["exit_code"] == EXIT[code]


def test_crash_is_reported_not_fatal():
    env = asan_env("handle_segv=0") if sanitized() else None
    r = run_cli("--run", module_path("segv"), env=env)
    assert r.returncode == 128 + signal.SIGSEGV
    assert "out: about to crash" in r.stdout
    assert "crashed: signal 11" in r.stdout
    r, j = run_json("segv", env=env)
    assert j["status"] == "crashed" and j["signal"] == 11
    assert j["output"] == ["about to crash"]


def test_exit_without_verdict():
    r = run_cli("--run", module_path("exit3"))
    assert r.returncode == 3
    assert "exited 3 without a verdict" in r.stdout


def test_timeout():
    r = run_cli("--run", module_path("hang"), "--timeout", "300ms", timeout=20)
    assert r.returncode == EXIT["timeout"]
    assert "timed out after 0.3 s (--timeout)" in r.stdout
    r, j = run_json("hang", "busy=true", "--timeout", "300ms", timeout=20)
    assert j["status"] == "timeout" and j["exit_code"] == EXIT["timeout"]


def test_sigint_stops_the_child(tmp_path):
    import subprocess
    import time
    p = subprocess.Popen([RUNNER, "--run", module_path("hang"), "--output-limit", "65539"],
                         stdout=subprocess.PIPE, text=True)
    assert wait_until(lambda: procs_with_cmdline("muster-runner", "--output-limit", "65539"))
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=10)
    assert p.returncode == 128 + signal.SIGINT
    assert "interrupted" in out
    assert procs_with_cmdline("muster-runner", "--output-limit", "65539") == []


def test_forked_children_do_not_outlive_the_run():
    r, j = run_json("forker", "--output-limit", "65538")
    assert r.returncode == 0 and j["data"]["children"] == 50
    # The children are forks of the runner child: its argv, our limit.
    assert wait_until(lambda: procs_with_cmdline(
        "muster-runner", "--output-limit", "65538") == [])


def test_flood_is_truncated():
    r, j = run_json("flood", timeout=120)
    assert r.returncode == 0
    assert j["truncated"] is True
    assert sum(len(l) + 1 for l in j["output"]) <= 65536
    assert j["data"]["lines"] == 100000


def test_output_limit_option():
    r, j = run_json("flood", "bytes=100000", "--output-limit", "1K")
    assert j["truncated"] is True
    assert 900 < sum(len(l) + 1 for l in j["output"]) <= 1024


@pytest.mark.parametrize("args", [
    ["--describe", "x.so", "--run", "y.so"],
    ["key=value"],
    ["--json"],
    ["--timeout", "1s"],
    ["--output-limit", "lots"],
    ["--run", "x.so", "--timeout", "soon"],
    ["--frobnicate"],
    ["--run"],
])
def test_usage_errors(args):
    r = run_cli(*args)
    assert r.returncode == EXIT["usage"], r
    assert "usage:" in r.stderr


def test_version_and_help():
    r = run_cli("--version")
    assert r.returncode == 0 and "module ABI 1" in r.stdout
    r = run_cli("--help")
    assert r.returncode == 0 and "--describe" in r.stdout


@pytest.mark.parametrize("how", ["abort", "segv", "_exit"])
def test_crash_keeps_what_was_said(how):
    env = asan_env("handle_segv=0") if sanitized() else None
    r = run_cli("--run", module_path("crashsay"), f"how={how}", env=env)
    assert "summary: checked 2 of 3 disks" in r.stdout, r.stdout
    assert '"sda": "ok"' in r.stdout, r.stdout
    assert ("exited 4 without a verdict" if how == "_exit" else "crashed: signal") in r.stdout
    r, j = run_json("crashsay", f"how={how}", env=env)
    assert j["status"] == "crashed", j
    assert j["summary"] == "checked 2 of 3 disks"
    assert j["data"] == {"checked": 2, "disks": {"sda": "ok"}}
    assert j["truncated"] is False
    assert j["reason"].startswith("exited 4" if how == "_exit" else "crashed: signal")
    assert j["output"] == [f"about to die: {how}"]


def test_crash_after_the_state_budget_says_truncated():
    r, j = run_json("crashsay", "how=loop")
    assert j["status"] == "crashed" and j["truncated"] is True, j
    assert j["summary"] == "checked 2 of 3 disks" and j["data"]["checked"] == 2
