# SPDX-License-Identifier: Apache-2.0
"""muster-runner --describe FILE.so: the descriptor as JSON, or why not."""
import json

import pytest

from conftest import EXIT, MODULES, module_path, run_cli


def test_describe_good():
    r = run_cli("--describe", module_path("echoargs"))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d == {"name": "echoargs", "version": "1.2.3", "summary": "Echoes its arguments",
                 "abi": 1, "size": 56, "magic_ok": True, "needs": []}


def test_describe_shows_the_network_declaration():
    r = run_cli("--describe", module_path("netneed"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["needs"] == ["net"]


def test_describe_bare_file_name_is_not_searched_in_the_library_path():
    r = run_cli("--describe", "echoargs.so", cwd=MODULES)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["name"] == "echoargs"


def test_describe_does_not_check_the_name():
    r = run_cli("--describe", module_path("namemismatch"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["name"] == "othername"


@pytest.mark.parametrize("module, code, reason", [
    ("badmagic", "magic", "bad magic 0x0123456789abcdef"),
    ("badabi", "abi", "module ABI 999, runner speaks 1"),
    ("nosym", "nosym", "no muster_module symbol"),
    ("baddesc", "desc", "module descriptor has no run()"),
    ("badversion", "desc", "module version '1.0 beta' is not valid"),
])
def test_describe_bad_module(module, code, reason):
    r = run_cli("--describe", module_path(module))
    assert r.returncode == EXIT[code], (r.stdout, r.stderr)
    assert reason in json.loads(r.stdout)["error"]
    assert reason in r.stderr


def test_describe_not_elf(tmp_path):
    bad = tmp_path / "notelf.so"
    bad.write_text("this is not a shared object\n" * 20)
    r = run_cli("--describe", str(bad))
    assert r.returncode == EXIT["load"]
    err = json.loads(r.stdout)["error"]
    assert err.startswith("cannot load module: ") and "invalid ELF header" in err


def test_describe_missing_file(tmp_path):
    r = run_cli("--describe", str(tmp_path / "nothere.so"))
    assert r.returncode == EXIT["load"]
    assert "No such file" in json.loads(r.stdout)["error"]


def test_a_descriptor_from_before_needs_runs_without_the_network():
    r = run_cli("--describe", module_path("olddesc"))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["size"], d["needs"]) == (48, []), d
    r = run_cli("--run", module_path("olddesc"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["data"]["inet"]["errno"] == 1, r.stdout	# EPERM


def test_a_need_the_runner_does_not_know_is_refused():
    r = run_cli("--describe", module_path("needsmore"))
    assert r.returncode == EXIT["needs"], (r.stdout, r.stderr)
    assert "module needs 0x80, which this runner does not know" in \
        json.loads(r.stdout)["error"]
    r = run_cli("--run", module_path("needsmore"), "--json")
    d = json.loads(r.stdout)
    assert d["status"] == "error" and "module needs 0x80" in d["reason"], d
