# SPDX-License-Identifier: Apache-2.0
"""service.status: systemctl show through run_cmd, or a clear error."""
import os

import pytest

from conftest import FIXTURES


@pytest.fixture
def sd(tools):
    """Arguments that make a systemd host out of the fixtures: the fake
    systemctl comes from the host's tools folder, never from the job."""
    return {"_tools": tools, "systemd_dir": str(FIXTURES)}


def test_active_and_enabled(run, sd):
    r = run("service.status", unit="nginx.service", enabled=True, **sd)
    assert r.status == "pass", r
    assert r.data == {"unit": "nginx.service", "load_state": "loaded",
                      "active_state": "active", "sub_state": "running",
                      "unit_file_state": "enabled", "enabled": True}
    assert r["summary"] == "nginx.service: active (running), enabled"


def test_not_enabled(run, sd):
    assert run("service.status", unit="cron.service", **sd).status == "pass"
    r = run("service.status", unit="cron.service", enabled="true", **sd)
    assert r.status == "fail", r
    assert r["reason"] == "cron.service is disabled, expected enabled"
    r = run("service.status", unit="nginx", enabled=False, **sd)
    assert r.status == "fail", r
    assert r["reason"] == "nginx is enabled, expected disabled"


def test_failed_unit(run, sd):
    r = run("service.status", unit="broken.service", **sd)
    assert r.status == "fail", r
    assert r["reason"] == "broken.service is failed (failed), expected active"


def test_expected_inactive(run, sd):
    r = run("service.status", unit="oneshot.service", active="inactive",
            enabled=True, **sd)
    assert r.status == "pass", r  # static counts as enabled
    r = run("service.status", unit="masked.service", active="inactive",
            enabled=True, **sd)
    assert r.status == "fail", r
    assert r["reason"] == "masked.service is masked, expected enabled"


def test_unknown_unit(run, sd):
    r = run("service.status", unit="ghost.service", **sd)
    assert r.status == "fail", r
    assert r["reason"] == "unit ghost.service not found"
    assert r.data["load_state"] == "not-found"
    assert run("service.status", unit="ghost.service", active="inactive",
               **sd).status == "pass"


def test_systemctl_fails(run, sd):
    r = run("service.status", unit="bus.service", **sd)
    assert r.status == "error", r
    assert "Failed to connect to bus" in r["reason"]


def test_no_systemd(run, tools, tmp_path):
    r = run("service.status", unit="nginx.service",
            systemd_dir=str(tmp_path / "none"), _tools=tools)
    assert r.status == "error", r
    assert r["reason"] == "systemd is not running on this host"


# Where the module looks for systemctl after the host's tools folder
# (modules/common/chk.c chk_which()).
STD_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
            "/sbin", "/bin")


def without_systemctl(tmp_path):
    """A command prefix that runs the rest in a private mount namespace in
    which every systemctl of the standard folders is an empty file that
    cannot be run (bind-mounted over it); () if there is none to hide.  As
    root only (Debian has /usr/bin/systemctl)."""
    found = sorted({os.path.realpath(f"{d}/systemctl") for d in STD_DIRS
                    if os.access(f"{d}/systemctl", os.X_OK)})
    if not found:
        return ()
    if os.geteuid() != 0:
        pytest.skip("this host has a systemctl; hiding it needs a mount "
                    "namespace, so root (CI runs the suite as root)")
    empty = tmp_path / "no-systemctl"
    empty.write_text("")
    empty.chmod(0o644)
    script = ('e=$1; n=$2; shift 2; while [ "$n" -gt 0 ]; do '
              'mount --bind "$e" "$1" || exit 99; shift; n=$((n - 1)); done; '
              'exec "$@"')
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c",
            script, "sh", str(empty), str(len(found)), *found)


def test_no_systemctl(run, tools, tmp_path):
    hide = without_systemctl(tmp_path)
    # Control: the same way, the host's tools folder has one: it is used.
    r = run("service.status", unit="nginx.service", systemd_dir=str(FIXTURES),
            _tools=tools, _wrap=hide)
    assert r.status == "pass", r
    r = run("service.status", unit="nginx.service", systemd_dir=str(FIXTURES),
            _tools=tmp_path, _wrap=hide)
    assert r.status == "error", r
    assert r["reason"] == "systemd is not running on this host (no systemctl)", r


def test_program_from_the_job_is_refused(run, tmp_path, tools):
    """Issue 10: a job must not choose a program to run."""
    evil = tmp_path / "evil"
    evil.write_text(f"#!/bin/sh\ntouch {tmp_path}/ran\n")
    evil.chmod(0o755)
    r = run("service.status", unit="nginx.service", systemd_dir=str(FIXTURES),
            systemctl=str(evil), _tools=tools)
    assert r.status == "error", r
    assert r["reason"] == ('argument "systemctl" is not accepted: the program '
                           "comes from the host, never from the job")
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("args,reason", [
    ({}, 'argument "unit" is required'),
    ({"unit": "-H"}, 'not a unit name: "-H"'),
    ({"unit": "a;b"}, 'not a unit name: "a;b"'),
    ({"unit": "x", "enabled": "sometimes"},
     'argument "enabled" must be true or false'),
])
def test_bad_arguments(run, sd, args, reason):
    r = run("service.status", **sd, **args)
    assert r.status == "error", r
    assert r["reason"] == reason


def test_this_host(run):
    r = run("service.status", unit="muster-nosuch.service")
    if os.path.isdir("/run/systemd/system"):
        assert r.status == "fail", r
    else:
        assert r.status == "error", r
        assert r["reason"].startswith("systemd is not running on this host")
