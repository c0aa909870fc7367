# SPDX-License-Identifier: Apache-2.0
"""The shipped modules, each run through the real muster-runner:
`muster-runner --run build/modules/NAME.so --json key=value ...`.

MUSTER_BUILD_DIR names the build (ctest sets it; default: build/ next to
this source tree); MUSTER_RUNNER may name the runner binary directly.
"""
import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SOURCE = Path(os.environ.get("MUSTER_SOURCE_DIR", HERE.parents[1]))
BUILD = Path(os.environ.get("MUSTER_BUILD_DIR", SOURCE / "build"))
FIXTURES = HERE / "fixtures"
EXIT = {"pass": 0, "fail": 1, "error": 2}
JOB_USER = "muster-job"		# musterd's default run_as (scripts/setup makes it)


def find_runner():
    named = os.environ.get("MUSTER_RUNNER")
    if named:
        return Path(named)
    for path in (BUILD / "runner" / "muster-runner", BUILD / "muster-runner"):
        if path.is_file() and os.access(path, os.X_OK):
            return path
    for path in sorted(BUILD.rglob("muster-runner")):
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


@pytest.fixture(scope="session")
def runner():
    path = find_runner()
    if path is None:
        if (SOURCE / "runner" / "CMakeLists.txt").exists():
            pytest.fail(f"muster-runner is not built under {BUILD}")
        pytest.skip("no runner/ in this tree yet")
    return path


def arg(key, value):
    """key=value for strings, key:=JSON for everything else."""
    if isinstance(value, str):
        return f"{key}={value}"
    return f"{key}:={json.dumps(value)}"


class Result(dict):
    @property
    def status(self):
        return self["status"]

    @property
    def data(self):
        return self.get("data") or {}

    def __str__(self):
        return json.dumps(self, indent=1)


@pytest.fixture(scope="session")
def run(runner):
    """run("os.release", path=..., id="debian") -> the --json result, with
    the exit code checked against the status."""
    def go(module, *raw, _tools=None, _user=None, _wrap=(), **args):
        """_tools: a folder for MUSTER_TOOLS_DIR (the host's tools folder,
        where pkg.version and service.status look first).  _user: run the
        runner as this user (as root only; musterd runs modules as
        muster-job).  _wrap: a command prefix (e.g. unshare ...)."""
        env = dict(os.environ)
        env.pop("MUSTER_TOOLS_DIR", None)
        if _tools is not None:
            env["MUSTER_TOOLS_DIR"] = str(_tools)
        so = BUILD / "modules" / f"{module}.so"
        assert so.is_file(), f"{so} is not built"
        argv = list(_wrap)
        if _user is not None:
            pw = pwd.getpwnam(_user)
            argv += ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                     "--init-groups", "--"]
        # --no-confine: these test each module's logic against fixtures
        # in pytest's folders (under /tmp, 0700), which a confined run as
        # root would not see (its own /tmp, a job's uid); confinement is
        # tests/system/test_confinement.py's.
        argv += [str(runner), "--run", str(so), "--json", "--no-confine"]
        argv += list(raw) + [arg(k, v) for k, v in args.items()]
        proc = subprocess.run(argv, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL, env=env)
        assert proc.stdout.strip(), (
            f"no output from {argv}: rc {proc.returncode}, "
            f"stderr {proc.stderr}")
        res = Result(json.loads(proc.stdout))
        assert res["status"] in EXIT, res
        assert proc.returncode == EXIT[res["status"]], (proc.returncode, res)
        assert res["module"] == module
        if res["status"] != "pass":
            assert res.get("reason"), f"{module}: no reason for {res}"
        return res
    return go


@pytest.fixture(scope="session")
def bindir(tmp_path_factory):
    """The fake commands, copied and made executable: whatever mode git or
    a tarball left on them, the test does not depend on it."""
    dest = tmp_path_factory.mktemp("bin")
    for src in (FIXTURES / "bin").iterdir():
        shutil.copy(src, dest / src.name)
        os.chmod(dest / src.name, 0o755)
    return dest


def tools_dir(path, **fakes):
    """A tools folder: fakes maps a program name (dpkg-query, rpm,
    systemctl) to the script it runs."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, script in fakes.items():
        (path / name).symlink_to(script)
    return path


@pytest.fixture(scope="session")
def tools(bindir, tmp_path_factory):
    """The fixture fakes under their real names."""
    return tools_dir(tmp_path_factory.mktemp("tools"),
                     **{"dpkg-query": bindir / "fake-dpkg-query",
                        "systemctl": bindir / "fake-systemctl"})


def fill(text, bindir):
    return text.replace("@FIXTURES@", str(FIXTURES)).replace(
        "@BIN@", str(bindir))


@pytest.fixture(scope="session")
def profile(bindir):
    """A QC profile from a JSON file, with @FIXTURES@ and @BIN@ filled."""
    def load(path):
        return json.loads(fill(Path(path).read_text(), bindir))
    return load
