# SPDX-License-Identifier: Apache-2.0
"""Building the packages needs only build dependencies (issue 19): the
package build path of scripts/setup (--build-deps, which scripts/package
uses) installs no test-only package and creates no user; nothing in the
CMake install rules needs a user or root; and every file in the .debs is
root's with a sane mode (cpack runs under fakeroot)."""
import os
import re
import stat
import subprocess
from pathlib import Path

from conftest import SOURCE_DIR, need

# What the tests need and a package build must not pull in.
TEST_ONLY = {"mosquitto", "mosquitto-clients", "postgresql", "chromium",
             "chromium-driver", "prometheus", "rabbitmq-server", "debootstrap",
             "clang", "libclang-rt-dev", "libcmocka-dev", "mandoc",
             "bash-completion", "gnupg", "openssl"}
BUILD_NEEDS = {"build-essential", "cmake", "pkg-config", "scdoc", "dpkg-dev",
               "lintian", "fakeroot", "file", "libssl-dev", "libpaho-mqtt-dev",
               "libsqlite3-dev", "libpq-dev", "libmicrohttpd-dev"}


def run_setup(tmp_path, *args):
    """scripts/setup with dpkg-query, apt-get, useradd, getent, sudo and
    cmake replaced by stubs that log their arguments: dpkg-query says no
    package is installed, getent knows no user.  Returns (exit code,
    {tool: [argument lines]})."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    log.write_text("")
    bodies = {"dpkg-query": 'echo "dpkg-query $*" >> "$CALLS"; exit 1',
              "getent": 'echo "getent $*" >> "$CALLS"; exit 2'}
    for tool in ("dpkg-query", "apt-get", "useradd", "adduser", "getent", "sudo", "cmake"):
        p = stubs / tool
        p.write_text("#!/bin/sh\n" + bodies.get(tool, f'echo "{tool} $*" >> "$CALLS"; exit 0') + "\n")
        p.chmod(0o755)
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}", CALLS=str(log))
    r = subprocess.run([str(SOURCE_DIR / "scripts/setup"), *args], env=env,
                       capture_output=True, text=True, timeout=60)
    calls = {}
    for line in log.read_text().splitlines():
        tool, _, rest = line.partition(" ")
        calls.setdefault(tool, []).append(rest)
    return r, calls


def installed(calls):
    pkgs = set()
    for line in calls.get("apt-get", []):
        words = line.split()
        if "install" in words:
            pkgs |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
    return pkgs


def test_build_deps_mode_installs_only_build_dependencies(tmp_path):
    r, calls = run_setup(tmp_path, "--build-deps")
    assert r.returncode == 0, r.stdout + r.stderr
    pkgs = installed(calls)
    assert not pkgs & TEST_ONLY, f"test-only packages in the build path: {sorted(pkgs & TEST_ONLY)}"
    assert not {p for p in pkgs if p.startswith("python3")}, sorted(pkgs)
    assert BUILD_NEEDS <= pkgs, f"missing build needs: {sorted(BUILD_NEEDS - pkgs)}"
    assert "useradd" not in calls and "adduser" not in calls, calls
    assert "cmake" not in calls, "--build-deps builds nothing: " + repr(calls.get("cmake"))


def test_test_mode_still_installs_the_test_toolchain_and_users(tmp_path):
    # The same stubs in the default mode: proves they see what they should.
    r, calls = run_setup(tmp_path, "--no-build")
    assert r.returncode == 0, r.stdout + r.stderr
    pkgs = installed(calls)
    assert {"mosquitto", "postgresql", "debootstrap", "libcmocka-dev"} <= pkgs, sorted(pkgs)
    assert BUILD_NEEDS <= pkgs
    users = [c.split()[-1] for c in calls.get("useradd", [])]
    assert users == ["muster", "muster-job"], calls.get("useradd")


def test_package_script_uses_the_build_path_and_fakeroot():
    text = (SOURCE_DIR / "scripts/package").read_text()
    code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    assert re.search(r"^scripts/setup --build-deps$", code, re.M), \
        "scripts/package must install build dependencies only"
    assert "-DMUSTER_TESTS=OFF" in code, "the package build must not need cmocka"
    assert re.search(r"fakeroot cpack", code), "cpack must run under fakeroot"
    assert not re.search(r"\b(useradd|adduser|sudo)\b", code), "no users, no sudo"


def test_cmake_install_rules_need_no_user():
    """No install() rule chowns or names a user: ownership on the hosts is
    the postinst's job, so the package build needs neither root nor the
    agent's users."""
    bad = []
    for p in list(SOURCE_DIR.glob("**/CMakeLists.txt")) + list(SOURCE_DIR.glob("**/*.cmake")):
        rel = p.relative_to(SOURCE_DIR)
        if rel.parts[0].startswith("build") or rel.parts[0] == "tests":
            continue
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if re.search(r"\b(chown|chgrp|useradd)\b", line) or \
                    re.search(r"install\s*\(\s*(CODE|SCRIPT)", line):
                bad.append(f"{rel}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_deb_files_are_roots_with_sane_modes(debs):
    need("dpkg-deb")
    bad = []
    for name, deb in debs.items():
        out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
        for line in out.splitlines():
            perms, owner, _size, _date, _time, path = line.split(None, 5)
            mode = 0
            for i, c in enumerate(perms[1:10]):
                if c != "-":
                    mode |= 1 << (8 - i)
            if owner != "root/root":
                bad.append(f"{name}: {path}: owner {owner}")
            if any(c in perms for c in "sStT"):
                bad.append(f"{name}: {path}: {perms} (setuid/setgid/sticky)")
            kind = perms[0]
            if kind == "d" and mode != 0o755:
                bad.append(f"{name}: {path}: directory {perms}")
            elif kind == "-" and mode not in (0o644, 0o755):
                bad.append(f"{name}: {path}: file {perms}")
            elif kind not in "d-l":
                bad.append(f"{name}: {path}: type {kind}")
    assert not bad, "\n".join(bad)
    assert stat.S_IMODE(os.stat(SOURCE_DIR / "scripts/package").st_mode) & 0o111
