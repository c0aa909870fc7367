# SPDX-License-Identifier: Apache-2.0
"""musterd.service's SystemCallFilter= lets the runner prelude
(lib/subproc.c) make every namespace, mount and Landlock call it makes.  No systemd
runs here (tests/install/units.py does not emulate the filter), so the
unit's effective allow list is computed with systemd-analyze, groups
expanded, in the order systemd applies the lines: the first line, an
allow list, sets the default to deny; a "~" line removes; a later allow
line adds back.  A call the filter denies would fail every job under the
unit with EPERM (a read-only root's mount_setattr() did, unnoticed by the
temp-folder tests)."""
import re
import subprocess
from functools import lru_cache

import pytest

from conftest import SOURCE_DIR, need

UNIT = SOURCE_DIR / "agent" / "musterd.service"
PRELUDE = SOURCE_DIR / "lib" / "subproc.c"


@lru_cache(maxsize=None)
def expand(name):
    if not name.startswith("@"):
        return frozenset([name])
    out = subprocess.run(["systemd-analyze", "syscall-filter", name],
                         capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        w = line.strip()
        if w and not w.startswith("#"):
            names |= expand(w)
    return frozenset(names)


def allowed():
    allow = set()
    for line in UNIT.read_text().splitlines():
        if not line.startswith("SystemCallFilter="):
            continue
        v = line.split("=", 1)[1].strip()
        deny = v.startswith("~")
        names = set().union(*(expand(w) for w in v.lstrip("~").split()))
        allow = allow - names if deny else allow | names
    return allow


def prelude_calls():
    """The mount and namespace calls the child prelude makes."""
    text = PRELUDE.read_text()
    calls = set(re.findall(r"\b(mount|unshare|setns)\(", text))
    calls |= set(re.findall(r"SYS_(mount_setattr|open_tree|move_mount|landlock_\w+)\b",
                            text))
    return calls


def test_the_unit_allows_every_call_of_the_runner_prelude():
    need("systemd-analyze")
    calls = prelude_calls()
    assert {"mount", "mount_setattr", "unshare", "landlock_create_ruleset",
            "landlock_restrict_self"} <= calls, calls
    missing = calls - allowed()
    assert not missing, f"musterd.service's SystemCallFilter= denies {sorted(missing)}"


def test_the_unit_still_denies_the_rest_of_mount():
    need("systemd-analyze")
    a = allowed()
    for name in ("umount2", "pivot_root", "move_mount", "open_tree", "fsmount"):
        assert name not in a, name


def test_the_unit_allows_seccomp_for_the_network_process():
    """agent/net/netfilter.c loads its filter with TSYNC, which needs the
    seccomp() call (prctl() has no such flag): systemd 252 has seccomp in
    no group but @known, so the unit must name it, or the network process
    dies at every start ("the network process's seccomp filter: Operation
    not supported", found by tests/install/test_systemd.py)."""
    need("systemd-analyze")
    net = (SOURCE_DIR / "agent" / "net" / "netfilter.c").read_text()
    assert "SCMP_FLTATR_CTL_TSYNC" in net
    assert "seccomp" in allowed(), "musterd.service's SystemCallFilter= denies seccomp"
