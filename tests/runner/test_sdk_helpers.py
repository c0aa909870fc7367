# SPDX-License-Identifier: Apache-2.0
"""The SDK helpers of issue 23 through the real muster-runner: checked
getters (a type mismatch is told, numeric strings are parsed and said so,
required arguments), fail()/error(), next_line()/next_kv(), and run_cmd()
finding a fake tool through MUSTER_TOOLS_DIR.  The module is
tests/modules/checked.c."""
import json
import os

import pytest

from conftest import module_path, run_cli, run_contract

BAD, OK, ABSENT, CONVERTED = -1, 0, 1, 2


def run(*args, env=None):
    r = run_cli("--run", module_path("checked"), "--json", *args, env=env)
    try:
        return r, json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"not JSON: {r.stdout!r} {r.stderr!r}")


def got(gets, *args):
    r, j = run(f"get:={json.dumps(gets)}", *args)
    return r, j, j["data"].get("got", {})


@pytest.mark.parametrize("typ, arg, flags, rc, val", [
    # The case: "0.5" from the command line is a string; it reads
    # as 0.5 and says it was converted.
    ("float", "x=0.5", "", CONVERTED, 0.5),
    ("float", "x:=0.5", "", OK, 0.5),
    ("float", "x=3", "", OK, 3.0),           # an integer is a number
    ("float", "x=-1e3", "", CONVERTED, -1000.0),
    ("float", "x=.5", "", CONVERTED, 0.5),
    ("float", "x=0.5", "s", BAD, -7.5),      # strict: no parsing
    ("float", "x=abc", "", BAD, -7.5),
    ("float", "x=nan", "", BAD, -7.5),
    ("float", "x=inf", "", BAD, -7.5),
    ("float", "x=0x10", "", BAD, -7.5),
    ("float", "x=1e999", "", BAD, -7.5),
    ("float", "x=true", "", BAD, -7.5),
    ("float", "y=1", "", ABSENT, -7.5),
    ("float", "x:=null", "", ABSENT, -7.5),
    ("int", "x=12", "", OK, 12),
    ("int", "x=0644", "", CONVERTED, 644),   # typed a string by the CLI
    ("int", "x:=5.0", "", CONVERTED, 5),
    ("int", "x:=5.5", "", BAD, -7),
    ("int", "x=12a", "", BAD, -7),
    ("int", "x= 1", "", BAD, -7),
    ("int", "x=99999999999999999999", "", BAD, -7),
    ("int", "x:=[1]", "", BAD, -7),
    ("int", "x=0644", "s", BAD, -7),
    ("bool", "x=true", "", OK, 1),
    ("bool", "x=yes", "", CONVERTED, 1),
    ("bool", "x=OFF", "", CONVERTED, 0),
    ("bool", "x=1", "", CONVERTED, 1),
    ("bool", "x=2", "", BAD, 7),
    ("bool", "x=maybe", "", BAD, 7),
    ("str", "x=hi", "", OK, "hi"),
    ("str", "x=12", "", CONVERTED, "12"),
    ("str", "x=12", "s", BAD, "DEF"),
    ("str", "x:=1.5", "", BAD, "DEF"),
    ("str", "x=", "", OK, ""),
    ("str", "x=", "r", BAD, "DEF"),          # required: "" is not given
    ("str", "y=1", "r", BAD, "DEF"),
    ("int", "y=1", "r", BAD, -7),
])
def test_checked_getters(typ, arg, flags, rc, val):
    r, j, g = got([[typ, "x", flags]], arg)
    assert g["x"] == {"rc": rc, "val": val}, j
    if rc == BAD:
        assert r.returncode == 2 and j["status"] == "error", j
        assert j["summary"] == "bad arguments"
        assert '"x"' in j["reason"], j["reason"]
        assert j["data"]["errors"] == 1
    else:
        assert r.returncode == 0 and j["status"] == "pass", j
        assert j["data"]["errors"] == 0


def test_bad_argument_reason_names_the_value():
    _, j, _ = got([["float", "x", ""]], "x=abc")
    assert j["reason"] == 'argument "x" must be a number, not the string "abc"'
    _, j, _ = got([["int", "x", "r"]])
    assert j["reason"] == 'argument "x" is required'
    _, j, _ = got([["bool", "x", ""]], "x:=[1,2]")
    assert j["reason"] == 'argument "x" must be true or false, not a list'


def test_first_bad_argument_is_the_reason_all_are_counted():
    r, j, g = got([["int", "a", ""], ["int", "ok", ""], ["float", "b", "r"]],
                  "a=x", "ok=3")
    assert r.returncode == 2, j
    assert j["data"]["errors"] == 2 and g["ok"] == {"rc": OK, "val": 3}
    assert j["reason"] == 'argument "a" must be an integer, not the string "x"'


def test_bad_argument_keeps_a_summary_already_set():
    _, j, _ = got([["int", "a", ""]], "a=x", "summary=checking a")
    assert j["summary"] == "checking a" and j["status"] == "error"


@pytest.mark.parametrize("leave, code", [("fail", 1), ("error", 2)])
def test_fail_and_error_set_reason_and_summary(leave, code):
    r, j = run(f"leave={leave}", "msg=offset 12 ms over 5 ms")
    assert r.returncode == code and j["status"] == leave, j
    assert j["reason"] == j["summary"] == "offset 12 ms over 5 ms"
    # A summary set before stays; the reason is the new text.
    r, j = run(f"leave={leave}", "msg=why", "summary=what")
    assert j["summary"] == "what" and j["reason"] == "why", j


def test_next_kv_parses_command_output():
    text = ("Timezone=Etc/UTC\nLocalRTC=no\n\nno separator here\n=empty key\n"
            "  Spaced Key = spaced value \r\nNTPSynchronized=yes\nEq=a=b\nLast=")
    _, j = run(f"text={text}")
    assert j["data"]["kv"] == ["Timezone|Etc/UTC", "LocalRTC|no", "Spaced Key|spaced value",
                               "NTPSynchronized|yes", "Eq|a=b", "Last|"], j
    _, j = run("text=Model name:   Intel\nCPU(s): 2\nbad\n", "sep=:")
    assert j["data"]["kv"] == ["Model name|Intel", "CPU(s)|2"], j


def test_next_line_cuts_line_ends():
    _, j = run("lines=one\r\ntwo\n\nthree")
    assert j["data"]["lines"] == ["one", "two", "", "three"], j


def tools(tmp_path, name, script):
    d = tmp_path / "tools"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(script)
    p.chmod(0o755)
    return d


def test_run_cmd_takes_a_fake_tool_from_muster_tools_dir(tmp_path):
    d = tools(tmp_path, "timedatectl", "#!/bin/sh\necho NTPSynchronized=fake\n")
    env = dict(os.environ, MUSTER_TOOLS_DIR=str(d))
    r = run_contract("probe", args={"cmd": ["timedatectl", "show"]}, env=env)
    assert r.verdict["data"]["cmd"]["out"] == "NTPSynchronized=fake\n", r
    # A name not in the folder still comes from the standard PATH.
    r = run_contract("probe", args={"cmd": ["echo", "std"]}, env=env)
    assert r.verdict["data"]["cmd"]["out"] == "std\n", r
    # The same through --run, which passes its environment on.
    r = run_cli("--run", module_path("probe"), "--json", 'cmd:=["timedatectl"]', env=env)
    assert json.loads(r.stdout)["data"]["cmd"]["out"] == "NTPSynchronized=fake\n", r.stdout


def test_muster_tools_dir_must_be_absolute(tmp_path, monkeypatch):
    d = tools(tmp_path, "echo", "#!/bin/sh\necho fake\n")
    monkeypatch.chdir(tmp_path)
    env = dict(os.environ, MUSTER_TOOLS_DIR=os.path.relpath(d, tmp_path))
    r = run_contract("probe", args={"cmd": ["echo", "real"]}, env=env)
    assert r.verdict["data"]["cmd"]["out"] == "real\n", r


def test_what_a_module_prints_is_shown_and_json_stays_json():
    r = run_cli("--run", module_path("checked"), "print=PRINTED", "eprint=EPRINTED")
    assert r.returncode == 0 and "PRINTED" in r.stdout and "EPRINTED" in r.stderr, r
    # --json: stdout is one JSON object; the module's printf goes to stderr.
    r, j = run("print=PRINTED", "eprint=EPRINTED")
    assert j["status"] == "pass" and "PRINTED" in r.stderr and "EPRINTED" in r.stderr, r
    # Under musterd the runner's stdout and stderr are the job's output
    # (agent/run.c take_output): here, what reaches the runner's fds 1, 2.
    c = run_contract("checked", args={"print": "PRINTED", "eprint": "EPRINTED"})
    assert c.verdict["status"] == "pass"
    assert "PRINTED" in c.stdout and "EPRINTED" in c.stderr, c
