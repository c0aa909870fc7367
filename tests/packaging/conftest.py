# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the packaging tests: the .debs built by CPack from the
build tree, unpacked with `dpkg -x` into a scratch root (no chroot, no
change to this machine's dpkg database or users).

Skips, with the reason, when a tool is missing or the build tree was
configured with another prefix than /usr (the packages' layout)."""
import os
import re
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest

SOURCE_DIR = Path(os.environ.get("MUSTER_SOURCE_DIR")
                  or Path(__file__).resolve().parents[2])
BUILD_DIR = Path(os.environ.get("MUSTER_BUILD_DIR") or SOURCE_DIR / "build")
sys.path.insert(0, str(SOURCE_DIR / "tests" / "system"))

PACKAGES = ("muster-agent", "muster-cli", "muster-dev")


def need(*tools):
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"{t} is not installed (scripts/setup installs it)")


def cache_value(key):
    cache = BUILD_DIR / "CMakeCache.txt"
    if not cache.exists():
        pytest.skip(f"{BUILD_DIR} is not configured")
    m = re.search(rf"^{key}:[A-Z]+=(.*)$", cache.read_text(), re.M)
    return m.group(1) if m else None


@pytest.fixture(scope="session")
def debs(tmp_path_factory):
    """{package name: path of its .deb}, built by cpack from BUILD_DIR."""
    need("cpack", "dpkg-deb", "dpkg-shlibdeps", "file")
    prefix = cache_value("CMAKE_INSTALL_PREFIX")
    if prefix != "/usr":
        pytest.skip(f"{BUILD_DIR} has CMAKE_INSTALL_PREFIX={prefix}; the "
                    f"packages need /usr (reconfigure with "
                    f"-DCMAKE_INSTALL_PREFIX=/usr, or a fresh scripts/setup)")
    out = tmp_path_factory.mktemp("debs")
    # The Maintainer field is the builder's (packaging/maintainer.cmake);
    # where there is none, the test packages get one.
    env = dict(os.environ)
    if subprocess.run(["cmake", f"-DMUSTER_SOURCE_DIR={SOURCE_DIR}", "-P",
                       str(SOURCE_DIR / "packaging" / "maintainer.cmake")],
                      capture_output=True).returncode != 0:
        env.update(DEBFULLNAME="muster tests", DEBEMAIL="tests@muster.invalid")
    r = subprocess.run(["cpack", "--config", str(BUILD_DIR / "CPackConfig.cmake"),
                        "-B", str(out)], cwd=out, capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    found = {}
    for deb in out.glob("*.deb"):
        name = subprocess.run(["dpkg-deb", "-f", str(deb), "Package"],
                              capture_output=True, text=True,
                              check=True).stdout.strip()
        found[name] = deb
    return found


@pytest.fixture(scope="session")
def root(debs):
    """Every package unpacked (dpkg -x) into one scratch root.  Not under
    pytest's 0700 tmp folder: as root, musterd starts runners as
    muster-job, which must be able to reach the installed runner."""
    r = Path(tempfile.mkdtemp(prefix="muster-root-"))
    os.chmod(r, 0o755)
    for deb in debs.values():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(r)], check=True)
    yield r
    shutil.rmtree(r, ignore_errors=True)


def control_file(deb, name, tmp):
    """The text of one control member (postinst, conffiles, ...), or None."""
    d = tmp / f"ctl-{deb.stem}"
    if not d.exists():
        subprocess.run(["dpkg-deb", "-e", str(deb), str(d)], check=True)
    p = d / name
    return p if p.exists() else None
