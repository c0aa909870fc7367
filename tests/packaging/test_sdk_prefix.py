# SPDX-License-Identifier: Apache-2.0
"""A module author's kit under another prefix than /usr (issue 23): the
dev and agent components installed with DESTDIR and --prefix /opt/muster
from the build tree, the template copied out of the tree, built with CMake
(CMAKE_PREFIX_PATH) and with pkg-config (PKG_CONFIG_PATH) only, and its own
tests run: ctest, which runs the installed muster-runner with the
template's fake uname first through MUSTER_TOOLS_DIR."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import BUILD_DIR, need

PREFIX = "/opt/muster"


def run(*args, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """PREFIX as installed under a scratch DESTDIR: (root, prefix path)."""
    need("cmake")
    dest = tmp_path_factory.mktemp("destdir")
    for comp in ("agent", "dev"):
        r = run("cmake", "--install", BUILD_DIR, "--prefix", PREFIX, "--component", comp,
                env=dict(os.environ, DESTDIR=str(dest)))
        assert r.returncode == 0, r.stdout + r.stderr
    return dest / PREFIX.lstrip("/")


def test_the_runner_is_on_the_dev_path(sdk):
    link = sdk / "bin/muster-runner"
    assert link.is_symlink() and os.readlink(link) == "../libexec/muster/muster-runner"
    r = run(link, "--version")
    assert r.returncode == 0, r.stderr


def test_template_builds_with_cmake_and_passes_its_tests(sdk, tmp_path):
    need("cc", "ctest")
    mod = tmp_path / "hello"
    shutil.copytree(sdk / "share/muster/module-template", mod, symlinks=True)
    env = dict(os.environ, CMAKE_PREFIX_PATH=str(sdk))
    r = run("cmake", "-S", mod, "-B", mod / "build", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("cmake", "--build", mod / "build", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("ctest", "--test-dir", mod / "build", "--output-on-failure", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "100% tests passed, 0 tests failed out of 2" in r.stdout, r.stdout
    # The test can fail: a fake uname that says something else fails it.
    (mod / "tests/tools/uname").write_text("#!/bin/sh\necho 5.10.0-other\n")
    r = run("ctest", "--test-dir", mod / "build", "-R", "hello.greets", env=env)
    assert r.returncode != 0, r.stdout


def test_template_builds_with_pkg_config_alone(sdk, tmp_path):
    need("cc", "pkg-config")
    env = dict(os.environ, PKG_CONFIG_PATH=str(sdk / "share/pkgconfig"))
    env.pop("PKG_CONFIG_SYSROOT_DIR", None)
    r = run("pkg-config", "--cflags", "muster-module", env=env)
    assert r.returncode == 0, r.stderr
    assert os.path.realpath(r.stdout.strip().removeprefix("-I")) == str(sdk / "include")
    so = tmp_path / "hello.so"
    r = run("sh", "-c", "cc -std=c11 -fPIC -shared -fvisibility=hidden -Wl,--no-undefined "
            f"$(pkg-config --cflags muster-module) -o {so} "
            f"{sdk}/share/muster/module-template/hello.c", env=env)
    assert r.returncode == 0, r.stderr
    r = run(sdk / "bin/muster-runner", "--run", so, "--json", "who=pc",
            env=dict(os.environ, MUSTER_TOOLS_DIR=str(sdk / "share/muster/module-template/tests/tools")))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert res["data"] == {"greeted": "pc", "kernel": "6.1.0-fixture"}, res
