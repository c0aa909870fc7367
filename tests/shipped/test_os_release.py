# SPDX-License-Identifier: Apache-2.0
"""os.release: parse os-release(5), match ID and VERSION_ID."""
import os

import pytest

from conftest import FIXTURES

OSR = FIXTURES / "os-release"


def test_fields_into_data(run):
    r = run("os.release", path=str(OSR / "debian12"))
    assert r.status == "pass", r
    assert r.data["id"] == "debian"
    assert r.data["version_id"] == "12"
    assert r.data["version_codename"] == "bookworm"
    assert r.data["pretty_name"] == "Debian GNU/Linux 12 (bookworm)"
    assert r.data["path"] == str(OSR / "debian12")
    assert r["summary"] == "Debian GNU/Linux 12 (bookworm)"


def test_match_pass(run):
    r = run("os.release", path=str(OSR / "debian12"), id="debian",
            version_id="12")
    assert r.status == "pass", r


def test_id_mismatch_fails(run):
    r = run("os.release", path=str(OSR / "debian12"), id="rhel")
    assert r.status == "fail", r
    assert r["reason"] == 'ID is "debian", expected "rhel"'


def test_version_mismatch_fails(run):
    r = run("os.release", path=str(OSR / "rhel9"), id="rhel",
            version_id="9.2")
    assert r.status == "fail", r
    assert "VERSION_ID is \"9.3\"" in r["reason"]


def test_quoting(run):
    r = run("os.release", path=str(OSR / "rhel9"), id="rhel",
            version_id="9.3")
    assert r.status == "pass", r
    d = r.data
    assert d["id_like"] == "fedora"
    assert d["platform_id"] == "platform:el9"
    assert d["ansi_color"] == "0;31"
    assert d["variant"] == 'Say "hi", $USER \\ `x`'
    assert "lower_case" not in d
    assert "reason" not in d


def test_id_defaults_to_linux(run):
    r = run("os.release", path=str(OSR / "noid"), id="linux")
    assert r.status == "pass", r
    assert r.data["id"] == "linux"
    assert r["summary"] == "linux 1"


def test_numbers_read_as_strings(run):
    """version_id=12 on a command line may arrive as the integer 12."""
    r = run("os.release", "version_id=12", "version_id:=12",
            path=str(OSR / "debian12"))
    assert r.status == "pass", r
    r = run("os.release", "version_id:=11", path=str(OSR / "debian12"))
    assert r.status == "fail", r


def test_missing_file_is_error(run):
    r = run("os.release", path=str(OSR / "nope"))
    assert r.status == "error"
    assert "No such file" in r["reason"]


def test_bad_argument_is_error(run):
    r = run("os.release", path=str(OSR / "debian12"), id=True)
    assert r.status == "error"
    assert r["reason"] == 'argument "id" must be a string'


@pytest.mark.skipif(not (os.path.exists("/etc/os-release") or
                         os.path.exists("/usr/lib/os-release")),
                    reason="no os-release on this host")
def test_this_host(run):
    r = run("os.release")
    assert r.status == "pass", r
    assert r.data["path"] in ("/etc/os-release", "/usr/lib/os-release")
    assert r.data["id"]
