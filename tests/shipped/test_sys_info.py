# SPDX-License-Identifier: Apache-2.0
"""sys.info: kernel, uptime, load, memory, CPUs; /proc movable."""
import os

import pytest

from conftest import FIXTURES


def test_fake_proc(run):
    r = run("sys.info", proc=str(FIXTURES / "proc" / "good"))
    assert r.status == "pass", r
    d = r.data
    assert d["uptime_s"] == 1234567
    assert d["load"] == {"1": 0.5, "5": 0.25, "15": 0.1}
    assert d["memory"] == {"total_bytes": 2048000 * 1024,
                           "available_bytes": 1024000 * 1024}
    assert d["kernel"]["name"] == os.uname().sysname
    assert d["kernel"]["release"] == os.uname().release
    assert d["machine"] == os.uname().machine
    assert d["cpus"] >= 1 and d["cpus_configured"] >= d["cpus"]
    assert "up 14d 6h 56m" in r["summary"], r["summary"]
    assert "load 0.50 0.25 0.10" in r["summary"]


def test_min_mem_pass_and_fail(run):
    proc = str(FIXTURES / "proc" / "good")
    assert run("sys.info", proc=proc, min_mem_mb=2000).status == "pass"
    r = run("sys.info", proc=proc, min_mem_mb="4096")
    assert r.status == "fail", r
    assert r["reason"] == "2000 MiB of memory, expected at least 4096"


def test_min_cpus_fail(run):
    r = run("sys.info", proc=str(FIXTURES / "proc" / "good"),
            min_cpus=100000)
    assert r.status == "fail", r
    assert "expected at least 100000" in r["reason"]


def test_missing_proc_is_error(run, tmp_path):
    r = run("sys.info", proc=str(tmp_path))
    assert r.status == "error"
    assert "uptime" in r["reason"]


def test_bad_loadavg_is_error(run):
    r = run("sys.info", proc=str(FIXTURES / "proc" / "badload"))
    assert r.status == "error"
    assert "loadavg: unreadable" in r["reason"]


def test_bad_argument_is_error(run):
    r = run("sys.info", min_mem_mb="lots")
    assert r.status == "error"
    assert r["reason"] == 'argument "min_mem_mb" must be an integer'


def test_this_host(run):
    r = run("sys.info")
    assert r.status == "pass", r
    assert r.data["memory"]["total_bytes"] > 0
    assert r.data["uptime_s"] >= 0


@pytest.mark.parametrize("uptime,loadavg", [
    ("1e308 1\n", "0.1 0.2 0.3 1/2 3\n"),
    ("nan 1\n", "0.1 0.2 0.3 1/2 3\n"),
    ("-5 1\n", "0.1 0.2 0.3 1/2 3\n"),
    ("5 1\n", "inf 0.2 0.3 1/2 3\n"),
])
def test_absurd_numbers_are_errors(run, tmp_path, uptime, loadavg):
    (tmp_path / "uptime").write_text(uptime)
    (tmp_path / "loadavg").write_text(loadavg)
    (tmp_path / "meminfo").write_text("MemTotal: 100 kB\n")
    r = run("sys.info", proc=str(tmp_path))
    assert r.status == "error", r
    assert "unreadable" in r["reason"]
