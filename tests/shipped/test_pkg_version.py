"""pkg.version: dpkg-query (or rpm) through run_cmd, Debian ordering."""
import os
import shutil

import pytest

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
def dpkg(bindir):
    return str(bindir / "fake-dpkg-query")


def fake(tmp_path, version):
    """A dpkg-query that has one package at version."""
    script = tmp_path / "dq"
    script.write_text("#!/bin/sh\nprintf 'installed\\t%s\\n' '" + version +
                      "'\n")
    script.chmod(0o755)
    return str(script)


def test_installed(run, dpkg):
    r = run("pkg.version", package="bash", dpkg_query=dpkg)
    assert r.status == "pass", r
    assert r.data == {"package": "bash", "manager": "dpkg", "installed": True,
                      "version": "5.2.15-2+b8", "dpkg_status": "installed"}
    assert r["summary"] == "bash 5.2.15-2+b8"


def test_name_is_an_alias_of_package(run, dpkg):
    r = run("pkg.version", name="bash", dpkg_query=dpkg, min="5")
    assert r.status == "pass", r


def test_min(run, dpkg):
    assert run("pkg.version", package="bash", dpkg_query=dpkg,
               min="5.2.15-2").status == "pass"
    r = run("pkg.version", package="bash", dpkg_query=dpkg, min="5.3~beta1")
    assert r.status == "fail", r
    assert r["reason"] == "bash 5.2.15-2+b8 is older than 5.3~beta1"
    assert r.data["min"] == "5.3~beta1"


def test_multiarch_takes_highest(run, dpkg):
    r = run("pkg.version", package="libc6", dpkg_query=dpkg)
    assert r.data["version"] == "2.36-9+deb12u13", r


def test_epoch(run, dpkg):
    r = run("pkg.version", package="epoch", dpkg_query=dpkg, min="99")
    assert r.status == "pass", r


@pytest.mark.parametrize("name", ["nginx", "removed", "known"])
def test_not_installed_fails(run, dpkg, name):
    r = run("pkg.version", package=name, dpkg_query=dpkg)
    assert r.status == "fail", r
    assert r["reason"] == f"{name} is not installed"
    assert r.data["installed"] is False


def test_must_not_be_installed(run, dpkg):
    assert run("pkg.version", package="nginx", dpkg_query=dpkg,
               installed=False).status == "pass"
    r = run("pkg.version", package="bash", dpkg_query=dpkg, installed="no")
    assert r.status == "fail", r
    assert r["reason"] == "bash 5.2.15-2+b8 is installed"


def test_exact_version(run, dpkg):
    assert run("pkg.version", package="bash", dpkg_query=dpkg,
               version="5.2.15-2+b8").status == "pass"
    r = run("pkg.version", package="bash", dpkg_query=dpkg, version="5.2.15")
    assert r.status == "fail", r
    assert r["reason"] == "bash is 5.2.15-2+b8, expected 5.2.15"


@pytest.mark.parametrize("have,other,sign", ORDER)
def test_debian_ordering(run, tmp_path, have, other, sign):
    dq = fake(tmp_path, have)
    r = run("pkg.version", package="p", dpkg_query=dq, min=other)
    assert r.status == ("fail" if sign < 0 else "pass"), r
    r = run("pkg.version", package="p", dpkg_query=dq, version=other)
    assert r.status == ("pass" if sign == 0 else "fail"), r


def test_query_error(run, dpkg):
    r = run("pkg.version", package="broken", dpkg_query=dpkg)
    assert r.status == "error", r
    assert "database is locked" in r["reason"]


def test_missing_command_is_error(run, tmp_path):
    r = run("pkg.version", package="bash",
            dpkg_query=str(tmp_path / "no-dpkg-query"))
    assert r.status == "error", r
    assert "no-dpkg-query" in r["reason"]


def test_rpm(run, bindir):
    rpm = str(bindir / "fake-rpm")
    r = run("pkg.version", package="kernel", rpm=rpm, min="5.14.0-400")
    assert r.status == "pass", r
    assert r.data["version"] == "5.14.0-427.el9"
    assert r.data["manager"] == "rpm"
    r = run("pkg.version", package="openssl", rpm=rpm, min="3.1")
    assert r.status == "pass", r  # the epoch wins
    r = run("pkg.version", package="nginx", rpm=rpm)
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
    r = run("pkg.version", dpkg_query=dpkg, **args)
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
