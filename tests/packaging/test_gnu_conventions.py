# SPDX-License-Identifier: Apache-2.0
"""GNU conventions on every program (issue 19): --version and --help print
on standard output and exit 0; a usage error (an unknown option, a stray
argument) prints on standard error, nothing on standard output, and exits 2.

muster-runner is the one exception in the exit code: its codes are the
module's verdict (0 pass, 1 fail, 2 error), so a usage error is 64
(muster-runner(8), runner/runner.h)."""
import subprocess

import pytest

from conftest import BUILD_DIR, cache_value

PROGRAMS = {	# name: (path in the build tree, exit code of a usage error)
    "musterd": ("agent/musterd", 2),
    "muster": ("ctl/muster", 2),
    "muster-runner": ("runner/muster-runner", 64),
    "muster-server": ("server/muster-server", 2),
}


def run(tmp_path, name, *args):
    path = BUILD_DIR / PROGRAMS[name][0]
    if not path.exists():
        pytest.skip(f"{path} is not built")
    # No configuration anywhere: these must not depend on one.
    return subprocess.run([str(path), *args], capture_output=True, text=True,
                          timeout=30, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_version_on_stdout(tmp_path, name):
    version = cache_value("MUSTER_VERSION")
    for flag in ("--version", "-V") if name != "muster-runner" else ("--version",):
        r = run(tmp_path, name, flag)
        assert r.returncode == 0, (flag, r.returncode, r.stderr)
        assert r.stderr == "", (flag, r.stderr)
        assert r.stdout.startswith(f"{name} {version}"), (flag, r.stdout)
        assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1, r.stdout


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_help_on_stdout(tmp_path, name):
    for flag in ("--help", "-h") if name != "muster-runner" else ("--help",):
        r = run(tmp_path, name, flag)
        assert r.returncode == 0, (flag, r.returncode, r.stderr)
        assert r.stderr == "", (flag, r.stderr)
        assert r.stdout.startswith(f"usage: {name} "), (flag, r.stdout)
        # The help names the conventions' own options.
        assert "--version" in r.stdout and "--help" in r.stdout, (flag, r.stdout)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_usage_error_on_stderr(tmp_path, name):
    code = PROGRAMS[name][1]
    # For muster a stray word is an unknown command.
    for args in (["--no-such-option"], ["stray-argument"]):
        r = run(tmp_path, name, *args)
        assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
        assert r.stdout == "", (args, r.stdout)
        assert "usage: " + name in r.stderr, (args, r.stderr)
