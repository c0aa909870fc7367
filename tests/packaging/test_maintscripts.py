# SPDX-License-Identifier: Apache-2.0
"""muster-agent's maintainer scripts, run as dpkg would run them but against
a scratch root ($DPKG_ROOT) with adduser, getent and the systemd helpers
replaced by stubs that record their calls: users, folders, modes,
idempotence, purge.  This machine's users and units are never touched."""
import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import control_file

STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE/calls"
"""
GETENT = """#!/bin/sh
[ "$1" = passwd ] && grep -q "^$2:" "$FAKE/passwd" 2>/dev/null
"""
ADDUSER = STUB + """for u; do :; done
echo "$u:x:999:999::/nonexistent:/usr/sbin/nologin" >> "$FAKE/passwd"
"""


@pytest.fixture
def maint(debs, tmp_path):
    """run(script, *args) -> CompletedProcess, in a scratch root."""
    scripts = {n: control_file(debs["muster-agent"], n, tmp_path)
               for n in ("postinst", "prerm", "postrm")}
    fake, bin_, root = tmp_path / "fake", tmp_path / "bin", tmp_path / "root"
    for d in (fake, bin_, root):
        d.mkdir()
    for name, text in (("adduser", ADDUSER), ("getent", GETENT),
                       ("deb-systemd-helper", STUB), ("deb-systemd-invoke", STUB),
                       ("systemctl", STUB)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    env = {"PATH": f"{bin_}:/usr/sbin:/usr/bin:/sbin:/bin", "FAKE": str(fake),
           "DPKG_ROOT": str(root), "DPKG_MAINTSCRIPT_PACKAGE": "muster-agent"}

    def run(script, *args):
        (fake / "calls").write_text("")
        return subprocess.run([str(scripts[script]), *args], env=env,
                              capture_output=True, text=True, timeout=30)

    run.scripts, run.root, run.fake = scripts, root, fake
    run.calls = lambda: (fake / "calls").read_text().splitlines()
    return run


def test_scripts_parse_and_are_executable(maint):
    for name, path in maint.scripts.items():
        assert path is not None, name
        assert os.access(path, os.X_OK), name
        assert path.read_text().startswith("#!/bin/sh\n"), name
        r = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, f"{name}: {r.stderr}"


def test_postinst_makes_users_and_folders_once(maint):
    r = maint("postinst", "configure", "")
    assert r.returncode == 0, r.stderr
    adds = [c for c in maint.calls() if c.startswith("adduser")]
    assert len(adds) == 2, adds
    for user, call in zip(("muster", "muster-job"), adds):
        args = call.split()
        assert args[-1] == user
        for opt in ("--system", "--no-create-home", "--home", "/nonexistent"):
            assert opt in args, call
        assert "/usr/sbin/nologin" in args
    assert "deb-systemd-helper update-state musterd.service" in maint.calls()
    # Not enabled on install: it needs a certificate first.
    assert not [c for c in maint.calls() if " enable " in f" {c} "]
    state = maint.root / "var/lib/muster"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert (maint.root / "etc/muster/operators").is_dir()
    assert (maint.root / "etc/muster/facts.d").is_dir()

    (state / "seen").write_text("job-1\n")
    state.chmod(0o755)
    r = maint("postinst", "configure", "0.1.0")   # reconfigure / upgrade
    assert r.returncode == 0, r.stderr
    assert not [c for c in maint.calls() if c.startswith("adduser")]
    assert (state / "seen").read_text() == "job-1\n", "postinst must keep the state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700, "postinst restores the mode"


def test_remove_keeps_state_purge_removes_it(maint):
    assert maint("postinst", "configure", "").returncode == 0
    state = maint.root / "var/lib/muster"
    (state / "spool").mkdir()
    assert maint("prerm", "remove").returncode == 0
    assert maint("postrm", "remove").returncode == 0
    assert state.is_dir(), "remove keeps the state; purge removes it"

    r = maint("postrm", "purge")
    assert r.returncode == 0, r.stderr
    assert not state.exists()
    assert not (maint.root / "etc/muster").exists()
    assert "deb-systemd-helper purge musterd.service" in maint.calls()
    assert maint("postrm", "purge").returncode == 0, "purge twice"


def test_purge_keeps_operator_keys_dpkg_does_not_own(maint):
    assert maint("postinst", "configure", "").returncode == 0
    key = maint.root / "etc/muster/operators/alice.pub"
    key.write_text("-----BEGIN PUBLIC KEY-----\n")
    facts = maint.root / "etc/muster/facts.d/rack.json"
    facts.write_text('{"rack": "b7"}\n')
    assert maint("postrm", "purge").returncode == 0
    assert key.exists() and facts.exists()


def test_unknown_action_fails(maint):
    assert maint("postinst", "frobnicate").returncode == 1
    assert maint("postrm", "frobnicate").returncode == 1
