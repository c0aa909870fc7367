# SPDX-License-Identifier: Apache-2.0
"""Every shipped module: a good descriptor, and nothing else exported."""
import json
import shutil
import subprocess

import pytest

from conftest import BUILD

MODULES = ["os.release", "sys.info", "net.interfaces", "disk.usage",
           "file.check", "pkg.version", "service.status", "qc.install",
           "selftest.echo"]


@pytest.mark.parametrize("name", MODULES)
def test_describe(runner, name):
    so = BUILD / "modules" / f"{name}.so"
    proc = subprocess.run([str(runner), "--describe", str(so)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["name"] == name
    assert d["abi"] == 1
    assert d["version"] == "1.0.0"
    assert d["summary"]


@pytest.mark.skipif(shutil.which("nm") is None, reason="no nm")
@pytest.mark.parametrize("name", MODULES)
def test_exports_only_the_descriptor(name):
    so = BUILD / "modules" / f"{name}.so"
    out = subprocess.run(["nm", "-D", "--defined-only", str(so)],
                         capture_output=True, text=True, check=True).stdout
    syms = {line.split()[-1] for line in out.splitlines() if line.strip()}
    # ASan builds add their own __odr_asan.* markers.
    assert {s for s in syms if not s.startswith("__")} == {"muster_module"}
