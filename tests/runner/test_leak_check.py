# SPDX-License-Identifier: Apache-2.0
"""ASan builds only: LeakSanitizer and `muster-runner --run` (issue 23).

As root, --run gives the runner's children a PID namespace, where
LeakSanitizer cannot stop the world at exit (lib/subproc.h,
SPAWN_PIDNS_ASAN_OPTIONS): that runner must go without the check instead
of dying of it ("LeakSanitizer has encountered a fatal error", SIGABRT),
while --no-confine keeps the check and still finds a leak.  The module
(alloc keep=true) leaks on purpose."""
import os
import subprocess

import pytest

from conftest import EXIT, RUNNER, module_path, sanitized

pytestmark = pytest.mark.skipif(not sanitized(), reason="LeakSanitizer runs only in "
                                "the ASan build (scripts/test --sanitize)")

LEAKY = (module_path("alloc"), "keep:=true", "cap_mb:=4", "chunk_kb:=64")


def run(*args):
    # Not run_cli(): it fails on any sanitizer report, and one is expected.
    return subprocess.run([RUNNER, "--run", *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.skipif(os.geteuid() != 0, reason="the PID namespace needs root")
def test_confined_runner_does_not_die_of_the_leak_check():
    r = run(*LEAKY)
    assert "LeakSanitizer" not in r.stderr, r.stderr[-3000:]
    # Reaching cap_mb is the module's fail: the verdict, not a crash.
    assert r.returncode == EXIT["fail"], (r.stdout, r.stderr[-3000:])
    assert "crashed" not in r.stdout


def test_unconfined_runner_keeps_the_leak_check():
    r = run(LEAKY[0], "--no-confine", *LEAKY[1:])
    assert "ERROR: LeakSanitizer: detected memory leaks" in r.stderr, r.stderr[-3000:]
