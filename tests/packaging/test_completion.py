# SPDX-License-Identifier: Apache-2.0
"""bash completion for muster: parses, and completes commands, module
subcommands and options (needs the bash-completion package)."""
import subprocess
from pathlib import Path

import pytest

from conftest import SOURCE_DIR

COMPLETION = SOURCE_DIR / "packaging" / "muster.bash-completion"
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")


def complete(line):
    words = line.split(" ")
    script = f"""
source {BASH_COMPLETION}
source {COMPLETION}
COMP_WORDS=({" ".join(repr(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={line!r}
COMP_POINT={len(line)}
_muster
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                       timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    return sorted(w for w in r.stdout.split("\n") if w)


def test_parses():
    r = subprocess.run(["bash", "-n", str(COMPLETION)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not BASH_COMPLETION.exists(), reason="bash-completion is not installed")
def test_completes():
    assert complete("muster mo") == ["module"]
    assert complete("muster ") == sorted(
        "run ping version cancel retry hosts facts watch keygen module update release "
        "history".split())
    assert complete("muster module ") == ["--help", "list", "publish", "retire", "show"]
    assert complete("muster release ") == ["--help", "halt", "publish", "rollout", "show"]
    assert complete("muster release publish --sc") == ["--schedule"]
    assert complete("muster run --st") == ["--stream"]
    assert complete("muster --broker x --top") == ["--topic-root"]
    assert complete("muster module retire x --p") == ["--purge"]
    assert complete("muster --protocol ") == ["3.1.1", "5"]
    assert complete("muster hosts --f") == ["--filter"]
    assert complete("muster ping --fi") == ["--filter"]
    assert complete("muster facts --") == ["--help", "--json"]
    assert complete("muster run -F ") == []
