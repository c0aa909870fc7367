# SPDX-License-Identifier: Apache-2.0
"""pkg.version: dpkg-query (or rpm) through run_cmd, Debian ordering.  The
program comes from the host (MUSTER_TOOLS_DIR, then the standard folders),
never from the job's arguments."""
import os
import shutil

import pytest

from conftest import tools_dir

# (installed, other, sign of installed <=> other) as dpkg orders them.
ORDER = [
    ("1.0", "1.0", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0", "1.0+b1", -1),
    ("1.0", "1.0.1", -1),
    ("1.0a", "1.0", 1),
    ("1.2a", "1.2.", -1),
    ("1.10", "1.9", 1),
    ("1.001", "1.1", 0),
    ("1:0.1", "2.0", 1),
    ("0:1.0", "1.0", 0),
    ("1.0-1", "1.0-2", -1),
    ("1.0-0", "1.0", 0),
    ("1.0-1~bpo1", "1.0-1", -1),
    ("2.36-9+deb12u4", "2.36-9+deb12u13", -1),
    ("5.2.15-2+b8", "5.2.15-2", 1),
    ("1.2-3-4", "1.2-3-5", -1),
    ("7.88.1-10+deb12u5", "7.88.1", 1),
]


@pytest.fixture
def dpkg(tools):
    """The tools folder with the fake dpkg-query (run(..., _tools=dpkg))."""
    return tools


def fake(tmp_path, version):
    """A tools folder whose dpkg-query has one package at version."""
    script = tmp_path / "dq"
    script.write_text("#!/bin/sh\nprintf 'installed\\t%s\\n' '" + version +
                      "'\n")
    script.chmod(0o755)
    return tools_dir(tmp_path / "tools", **{"dpkg-query": script})


def test_installed(run, dpkg):
    r = run("pkg.version", package="bash", _tools=dpkg)
    assert r.status == "pass", r
    assert r.data == {"package": "bash", "manager": "dpkg", "installed": True,
                      "version": "5.2.15-2+b8", "dpkg_status": "installed"}
    assert r["summary"] == "bash 5.2.15-2+b8"


def test_name_is_an_alias_of_package(run, dpkg):
    r = run("pkg.version", name="bash", _tools=dpkg, min="5")
    assert r.status == "pass", r


def test_min(run, dpkg):
    assert run("pkg.version", package="bash", _tools=dpkg,
               min="5.2.15-2").status == "pass"
    r = run("pkg.version", package="bash", _tools=dpkg, min="5.3~beta1")
    assert r.status == "fail", r
    assert r["reason"] == "bash 5.2.15-2+b8 is older than 5.3~beta1"
    assert r.data["min"] == "5.3~beta1"


def test_multiarch_takes_highest(run, dpkg):
    r = run("pkg.version", package="libc6", _tools=dpkg)
    assert r.data["version"] == "2.36-9+deb12u13", r


def test_epoch(run, dpkg):
    r = run("pkg.version", package="epoch", _tools=dpkg, min="99")
    assert r.status == "pass", r


@pytest.mark.parametrize("name", ["nginx", "removed", "known"])
def test_not_installed_fails(run, dpkg, name):
    r = run("pkg.version", package=name, _tools=dpkg)
    assert r.status == "fail", r
    assert r["reason"] == f"{name} is not installed"
    assert r.data["installed"] is False


def test_must_not_be_installed(run, dpkg):
    assert run("pkg.version", package="nginx", _tools=dpkg,
               installed=False).status == "pass"
    r = run("pkg.version", package="bash", _tools=dpkg, installed="no")
    assert r.status == "fail", r
    assert r["reason"] == "bash 5.2.15-2+b8 is installed"


def test_exact_version(run, dpkg):
    assert run("pkg.version", package="bash", _tools=dpkg,
               version="5.2.15-2+b8").status == "pass"
    r = run("pkg.version", package="bash", _tools=dpkg, version="5.2.15")
    assert r.status == "fail", r
    assert r["reason"] == "bash is 5.2.15-2+b8, expected 5.2.15"


@pytest.mark.parametrize("have,other,sign", ORDER)
def test_debian_ordering(run, tmp_path, have, other, sign):
    dq = fake(tmp_path, have)
    r = run("pkg.version", package="p", _tools=dq, min=other)
    assert r.status == ("fail" if sign < 0 else "pass"), r
    r = run("pkg.version", package="p", _tools=dq, version=other)
    assert r.status == ("pass" if sign == 0 else "fail"), r


def test_query_error(run, dpkg):
    r = run("pkg.version", package="broken", _tools=dpkg)
    assert r.status == "error", r
    assert "database is locked" in r["reason"]


@pytest.mark.parametrize("key", ["dpkg_query", "rpm"])
def test_program_from_the_job_is_refused(run, tmp_path, key):
    """Issue 10: a job must not choose a program to run.  The named
    program would create a file if it ran."""
    evil = tmp_path / "evil"
    evil.write_text(f"#!/bin/sh\ntouch {tmp_path}/ran\n")
    evil.chmod(0o755)
    r = run("pkg.version", package="bash", **{key: str(evil)})
    assert r.status == "error", r
    assert r["reason"] == (f'argument "{key}" is not accepted: the program '
                           "comes from the host, never from the job")
    assert not (tmp_path / "ran").exists()


def test_rpm(run, bindir, tmp_path):
    """A host with rpm in its tools folder and no dpkg-query there: rpm is
    asked (the tools folder comes before the standard ones)."""
    rpm = tools_dir(tmp_path / "tools", rpm=bindir / "fake-rpm")
    r = run("pkg.version", package="kernel", _tools=rpm, min="5.14.0-400")
    assert r.status == "pass", r
    assert r.data["version"] == "5.14.0-427.el9"
    assert r.data["manager"] == "rpm"
    r = run("pkg.version", package="openssl", _tools=rpm, min="3.1")
    assert r.status == "pass", r  # the epoch wins
    r = run("pkg.version", package="nginx", _tools=rpm)
    assert r.status == "fail", r
    assert r["reason"] == "nginx is not installed"


@pytest.mark.parametrize("args,reason", [
    ({}, 'argument "package" (or "name") is required'),
    ({"package": "-W"}, 'not a package name: "-W"'),
    ({"package": "a b"}, 'not a package name: "a b"'),
    ({"package": "bash", "min": "x1"}, 'not a version: "x1"'),
    ({"package": "bash", "installed": "perhaps"},
     'argument "installed" must be true or false'),
])
def test_bad_arguments(run, dpkg, args, reason):
    r = run("pkg.version", _tools=dpkg, **args)
    assert r.status == "error", r
    assert r["reason"] == reason


@pytest.mark.skipif(shutil.which("dpkg-query") is None and
                    not os.path.exists("/usr/bin/dpkg-query"),
                    reason="no dpkg here")
def test_this_host(run):
    r = run("pkg.version", package="dpkg", min="1.0")
    assert r.status == "pass", r
    assert r.data["manager"] == "dpkg"
    r = run("pkg.version", package="nosuchpackage-muster")
    assert r.status == "fail", r
