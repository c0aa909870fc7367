# SPDX-License-Identifier: Apache-2.0
"""No package carries musterd's test-only hooks (issue 22).

The development build compiles MUSTER_TEST_NET_EXEC into musterd (a
scripted network process for tests/system/test_hostile_net.py) and
MUSTER_TEST_USERDB_DIR (the tests' agents' own folder for the job uids'
records); the
packages are built by scripts/package, whose configuration must leave it
out.  This configures a scratch build with exactly the options
scripts/package gives cmake and compiles the one file holding the hook.
"""
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BUILD_DIR, SOURCE_DIR, cache_value, need

HOOK = b"MUSTER_TEST_NET_EXEC"
OBJ = Path("agent/CMakeFiles/agent_core.dir/common/priv.c.o")
# The crash points of tests/system/test_intake_kill.py (lib/util.c).
STOP = b"MUSTER_TEST_STOP_AT"
STOP_OBJ = Path("lib/CMakeFiles/muster.dir/util.c.o")
# The tests' own folder for the job uids' records (agent/parent/userdb.c).
USERDB = b"MUSTER_TEST_USERDB_DIR"
USERDB_OBJ = Path("agent/CMakeFiles/agent_core.dir/parent/userdb.c.o")


def package_cmake_options():
    """The -D options of scripts/package's configure step, as it gives them."""
    text = (SOURCE_DIR / "scripts/package").read_text()
    m = re.search(r'^[^#\n]*\bcmake -S \. -B "\$dir"(.*?)(?<!\\)\n', text,
                  re.M | re.S)
    assert m, "scripts/package has no `cmake -S . -B \"$dir\"` step"
    line = m.group(1).replace("\\\n", " ").split(">")[0]
    opts = [w for w in shlex.split(line) if w.startswith("-D")]
    # The maintainer is found by the script (packaging/maintainer.cmake).
    return [re.sub(r"^(-DMUSTER_MAINTAINER=).*", r"\1muster tests <tests@muster.invalid>", o)
            for o in opts]


def priv_c_flags(d):
    """The compile command of agent/common/priv.c in build folder d."""
    import json
    cmds = json.loads((d / "compile_commands.json").read_text())
    hits = [c["command"] for c in cmds if c["file"].endswith("agent/common/priv.c")]
    assert len(hits) == 1, hits
    return hits[0]


def configure(opts):
    d = Path(tempfile.mkdtemp(prefix="muster-hooks-"))
    r = subprocess.run(["cmake", "-S", str(SOURCE_DIR), "-B", str(d), *opts],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return d


def test_package_build_has_no_test_hooks():
    need("cmake", "make")
    opts = package_cmake_options()
    assert "-DMUSTER_TEST_HOOKS=OFF" in opts, opts
    d = configure(opts)
    try:
        assert "-DMUSTER_TEST_HOOKS" not in priv_c_flags(d)
        r = subprocess.run(["make", "-C", str(d / "agent"), "common/priv.c.o"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert HOOK not in (d / OBJ).read_bytes(), \
            "the package configuration compiles the scripted network process hook"
        r = subprocess.run(["make", "-C", str(d / "lib"), "util.c.o"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert STOP not in (d / STOP_OBJ).read_bytes(), \
            "the package configuration compiles the crash points"
        r = subprocess.run(["make", "-C", str(d / "agent"), "parent/userdb.c.o"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert USERDB not in (d / USERDB_OBJ).read_bytes(), \
            "the package configuration compiles the tests' userdb folder"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_the_check_sees_the_hook_in_a_test_build():
    """The control: the development build has the hook, and the same
    search finds it there (so the test above can fail)."""
    if cache_value("MUSTER_TEST_HOOKS") != "ON":
        pytest.skip(f"{BUILD_DIR} is built without MUSTER_TEST_HOOKS")
    obj = BUILD_DIR / OBJ
    if not obj.exists():
        pytest.skip(f"{obj} is not built")
    assert "-DMUSTER_TEST_HOOKS" in priv_c_flags(BUILD_DIR)
    assert HOOK in obj.read_bytes()
    assert HOOK in (BUILD_DIR / "agent" / "musterd").read_bytes()
    assert STOP in (BUILD_DIR / STOP_OBJ).read_bytes()
    assert USERDB in (BUILD_DIR / USERDB_OBJ).read_bytes()


def test_without_the_tests_there_are_no_hooks():
    """A build configured with only -DMUSTER_TESTS=OFF (as a distribution
    might) has no hooks either: the option follows MUSTER_TESTS."""
    need("cmake")
    d = configure(["-DMUSTER_TESTS=OFF", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"])
    try:
        assert "-DMUSTER_TEST_HOOKS" not in priv_c_flags(d), \
            "MUSTER_TEST_HOOKS must be off when the tests are"
    finally:
        shutil.rmtree(d, ignore_errors=True)
