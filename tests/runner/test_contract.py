# SPDX-License-Identifier: Apache-2.0
"""The runner as musterd starts it: job body on stdin, events on fd 3, the
module as a sealed memfd on fd 4.  The test plays musterd."""
import msgpack
import pytest

from conftest import EXIT, job_body, module_path, run_contract


def test_pass_with_args():
    r = run_contract("echoargs", args={"s": "hello", "i": 42, "b": True,
                                       "l": [1, "two", None], "m": {"k": {"n": 1.5}}})
    assert r.rc == 0, r
    v = r.verdict
    assert v["status"] == "pass"
    assert v["module"] == "echoargs" and v["module_version"] == "1.2.3"
    assert v["summary"] == "echoed 5 args"
    assert "truncated" not in v and "reason" not in v
    assert v["data"]["args"] == {"s": "hello", "i": 42, "b": True, "l": [1, "two", None],
                                 "m": {"k": {"n": 1.5}}}
    assert v["data"]["typed"]["s"] == "hello" and v["data"]["typed"]["i"] == 42
    assert v["data"]["typed"]["b"] is True
    assert r.out[0] == "s (str) = hello"
    assert r.progress == [50, 100]
    assert r.stderr == ""


def test_no_args_map():
    r = run_contract("echoargs", body=job_body("echoargs", args=None))
    assert r.rc == 0, r
    assert r.verdict["summary"] == "echoed 0 args"
    assert "args" not in r.verdict["data"]


@pytest.mark.parametrize("verdict, code", [("fail", "fail"), ("error", "error")])
def test_fail_and_error(verdict, code):
    r = run_contract("echoargs", args={"verdict": verdict, "reason": "disk full"})
    assert r.rc == EXIT[code]
    assert r.verdict["status"] == verdict and r.verdict["reason"] == "disk full"


def test_unknown_return_value():
    r = run_contract("badret")
    assert r.rc == EXIT["badret"]
    assert r.verdict["status"] == "error"
    assert r.verdict["reason"] == "module returned 7"


@pytest.mark.parametrize("module, code, reason", [
    ("badmagic", "magic", "bad magic"),
    ("badabi", "abi", "module ABI 999, runner speaks 1"),
    ("nosym", "nosym", "no muster_module symbol"),
    ("baddesc", "desc", "has no run()"),
    ("badversion", "desc", "version '1.0 beta' is not valid"),
    ("namemismatch", "name",
     "module is named 'othername', the job asked for 'namemismatch'"),
])
def test_bad_module(module, code, reason):
    r = run_contract(module)
    assert r.rc == EXIT[code], r
    assert r.verdict["status"] == "error"
    assert reason in r.verdict["reason"]
    assert r.verdict["module"] == module
    assert "module_version" not in r.verdict
    assert r.frames == [r.verdict]
    assert reason in r.stderr


def test_job_module_differs_from_descriptor():
    r = run_contract("echoargs", body=job_body("other"))
    assert r.rc == EXIT["name"]
    assert r.verdict["reason"] == "module is named 'echoargs', the job asked for 'other'"


def test_module_not_elf():
    r = run_contract("echoargs", so_bytes=b"\x7fELF but not really" * 10)
    assert r.rc == EXIT["load"]
    assert r.verdict["reason"].startswith("cannot load module: /proc/self/fd/4: ")


def test_no_module_fd():
    r = run_contract("echoargs", module_fd=False)
    assert r.rc == EXIT["load"]
    assert r.verdict["reason"].startswith("cannot load module: ")


def test_no_event_fd():
    r = run_contract("echoargs", event_fd="none")
    assert r.rc == EXIT["pipe"]
    assert "fd 3 (the event pipe) is not open" in r.stderr


def test_event_reader_gone():
    r = run_contract("echoargs", event_fd="closed", args={"s": "x"})
    assert r.rc == EXIT["pipe"], r
    assert r.proc.returncode > 0        # an exit code, not death by SIGPIPE
    assert "event pipe" in r.stderr


# ---- (e) bad job bodies ---------------------------------------------------

@pytest.mark.parametrize("body, reason", [
    (b"", "no job on stdin"),
    (b"\xc1 not msgpack", "bad job on stdin: invalid msgpack byte 0xc1"),
    (msgpack.packb([1, 2, 3]), "bad job on stdin: message is not a map"),
    (job_body(kind="ping"), "job kind is 'ping'; the runner runs only 'run' jobs"),
    (job_body(kind="launch"), "key 'kind' has an unknown value 'launch'"),
    (job_body(module=None), "missing key 'module'"),
    (job_body(module="Bad/Name"), "key 'module' is not a module name"),
    (job_body(v=2), "bad job on stdin"),
    (job_body(args=[1, 2]), "key 'args' must be a map"),
    (job_body(args={"s": "x" * 300000}), "job body is over 262144 bytes"),
    (job_body(args={"s": "x" * 70000}), "string of 70000 bytes is over"),
], ids=["empty", "not-msgpack", "not-a-map", "kind-ping", "kind-unknown", "no-module",
        "bad-module-name", "v2", "args-not-map", "too-big", "long-string"])
def test_bad_job(body, reason):
    r = run_contract("echoargs", body=body)
    assert r.rc == EXIT["badjob"], r
    assert r.verdict["status"] == "error"
    assert reason in r.verdict["reason"], r.verdict
    assert "module" not in r.verdict
    assert r.frames == [r.verdict]


def test_oversized_job():
    r = run_contract("echoargs", body=b"\x00" * (300 * 1024))
    assert r.rc == EXIT["badjob"]
    assert r.verdict["reason"] == "job body is over 262144 bytes"


# ---- bounds -----------------------------------------------------------------

def test_long_line_is_cut():
    r = run_contract("probe", args={"line_len": 100000})
    assert r.rc == 0
    assert len(r.out) == 1 and len(r.out[0]) == 16384 and set(r.out[0]) == {"y"}
    assert r.verdict["truncated"] is True


def test_lines_split_and_budget():
    r = run_contract("probe", args={"lines": "a\nb\n\nc\n"}, runner_args=["--output-limit", "6"])
    assert r.out == ["a", "b", ""]
    assert r.verdict["truncated"] is True
    r = run_contract("probe", args={"lines": "a\nb\n\nc\n"})
    assert r.out == ["a", "b", "", "c"]
    assert "truncated" not in r.verdict


def test_zero_output_limit():
    r = run_contract("probe", args={"lines": "a"}, runner_args=["--output-limit", "0"])
    assert r.out == [] and r.verdict["truncated"] is True


def test_summary_and_reason_are_bounded():
    r = run_contract("probe", args={"summary_len": 5000, "reason_len": 5000, "verdict": "fail"})
    assert r.rc == EXIT["fail"]
    assert r.verdict["summary"] == "s" * 1024
    assert r.verdict["reason"] == "r" * 1024


def test_bad_utf8_is_cleaned():
    r = run_contract("probe", args={"bad_utf8": True})
    assert r.rc == 0
    # parse_frames() decoded every string as UTF-8 already.
    assert r.out == ["bad ?? utf8 caf\u00e9"]
    assert r.verdict["summary"] == "summary ? bad"
    assert r.verdict["data"]["bad?"] == "value ??? surrogate"


def test_progress_is_clamped_and_deduplicated():
    r = run_contract("probe", args={"progress": [10, 10, 20, 200, 300, -5]})
    assert r.progress == [10, 20, 100, 0]


def test_data_paths():
    r = run_contract("probe", args={"data_paths": True})
    assert r.rc == 0
    d = r.verdict["data"]
    assert d["a"] == {"b": {"c": "second", "d": 1}}
    assert d["list"] == [1, "two", True]
    assert d["deep"] == {"2": {"3": {"4": {"5": {"6": {"7": True, "l": [7]}}}}}}
    assert d["f"] == 1.5 and d["nan"] is None and d["inf"] is None and d["nil"] is None
    assert d["x"] == {"y": 2}           # a scalar replaced by a map: last wins
    assert d["m"] == 3 and d["s"] == 5 and d["t"] == [6]
    assert d["loop"] == 9999
    assert set(d) == {"a", "list", "deep", "f", "nan", "inf", "nil", "x", "m", "s", "t",
                      "loop"}
    assert "truncated" not in r.verdict
    for bad in ("bad//path", "/lead", "trail/", "mid[]/x", "deep/2/3/4/5/6/7/8"):
        assert f"data key '{bad}' ignored" in r.stderr


def test_data_key_bound():
    r = run_contract("probe", args={"data_many": 2000})
    assert r.rc == 0
    many = r.verdict["data"]["many"]
    assert 900 < len(many) < 1024
    assert r.verdict["truncated"] is True
    assert many["k0"] == 0


def test_data_byte_bound():
    r = run_contract("echoargs", args={f"k{i}": "v" * 1000 for i in range(100)})
    assert r.rc == 0
    assert r.verdict["truncated"] is True
    assert len(msgpack.packb(r.verdict["data"])) <= 64 * 1024
    assert 50 < len(r.verdict["data"]["args"]) < 100


# ---- read_file ----------------------------------------------------------------

def test_read_file(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("hello\nworld\n")
    d = run_contract("probe", args={"read": str(p)}).verdict["data"]["read"]
    assert d == {"rc": 0, "errno": 0, "len": 12, "buf": True, "nul": True,
                 "text": "hello\nworld\n"}


def test_read_file_too_big(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("0123456789")
    d = run_contract("probe", args={"read": str(p), "read_max": 4}).verdict["data"]["read"]
    assert d == {"rc": -1, "errno": 27, "len": 4, "buf": True, "nul": True, "text": "0123"}
    d = run_contract("probe", args={"read": str(p), "read_max": 10}).verdict["data"]["read"]
    assert d["rc"] == 0 and d["text"] == "0123456789"


def test_read_file_errors(tmp_path):
    d = run_contract("probe", args={"read": str(tmp_path / "none")}).verdict["data"]["read"]
    assert d == {"rc": -1, "errno": 2, "len": 0, "buf": False}
    d = run_contract("probe", args={"read": str(tmp_path)}).verdict["data"]["read"]
    assert d["rc"] == -1 and d["errno"] == 21 and d["buf"] is False


def test_read_file_proc():
    d = run_contract("probe", args={"read": "/proc/self/status"}).verdict["data"]["read"]
    assert d["rc"] == 0 and d["len"] > 100 and d["text"].startswith("Name:")


def test_read_file_fifo_does_not_hang(tmp_path):
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = run_contract("probe", args={"read": str(fifo)}, timeout=10)
    assert r.verdict["data"]["read"]["rc"] == 0
    assert r.verdict["data"]["read"]["len"] == 0
