# SPDX-License-Identifier: Apache-2.0
"""The licence is Apache-2.0 and says so everywhere (issue 19, point 7):
every tracked source file carries the SPDX line, LICENSE is the licence's
text, and packaging/copyright (each package's /usr/share/doc/PKG/copyright)
is a machine-readable DEP-5 file naming Apache-2.0.  Source only."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SOURCE_DIR

SPDX = "SPDX-License-Identifier: Apache-2.0"
SOURCE_SUFFIXES = (".c", ".h", ".py", ".cmake", ".sh", ".service", ".js", ".css",
                   ".html", ".awk")
DEP5_FORMAT = "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
COMMON_LICENSE = Path("/usr/share/common-licenses/Apache-2.0")


def tracked_files():
    if shutil.which("git") is None or not (SOURCE_DIR / ".git").exists():
        pytest.skip(f"{SOURCE_DIR} is not a git checkout (or git is missing)")
    out = subprocess.run(["git", "-C", str(SOURCE_DIR), "ls-files", "-z"],
                         capture_output=True, check=True).stdout
    return [SOURCE_DIR / p for p in out.decode().split("\0") if p]


def is_source(path: Path) -> bool:
    """A file the SPDX rule covers: by suffix, CMakeLists.txt, or a script
    (a #! line: shell scripts, maintainer scripts, test stand-ins)."""
    if path.name == "CMakeLists.txt" or path.suffix in SOURCE_SUFFIXES:
        return True
    with open(path, "rb") as f:
        return f.read(2) == b"#!"


def test_every_source_file_has_the_spdx_line():
    files = [p for p in tracked_files() if p.is_file() and is_source(p)]
    assert len(files) > 200, len(files)	# the rule reached the tree at all
    kinds = {p.name if p.name == "CMakeLists.txt" else p.suffix or "script" for p in files}
    assert {".c", ".h", ".py", ".service", ".js", ".css", ".html",
            "CMakeLists.txt", "script"} <= kinds, kinds
    # Near the top (after a #! line, a doctype, a comment opener), as every
    # file's first comment: not somewhere a grep would also find it.
    missing = [str(p.relative_to(SOURCE_DIR)) for p in files
               if SPDX not in "\n".join(p.read_text(errors="replace").splitlines()[:5])]
    assert not missing, f"no '{SPDX}' in the first 5 lines of: {missing}"


def normalised(text: str) -> str:
    return " ".join(text.split())


def test_licence_is_the_apache_2_0_text():
    text = (SOURCE_DIR / "LICENSE").read_text()
    if COMMON_LICENSE.exists():
        # Debian's copy (base-files) is the licence as the ASF publishes it.
        assert normalised(text) == normalised(COMMON_LICENSE.read_text())
    else:
        for marker in ("Apache License", "Version 2.0, January 2004",
                       "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
                       "9. Accepting Warranty or Additional Liability.",
                       "END OF TERMS AND CONDITIONS"):
            assert marker in text, marker
    assert "All rights reserved" not in text


def deb822(text: str) -> list[dict[str, str]]:
    """Paragraphs of a deb822 file: {field: value}, continuation lines
    joined with newlines, field names case-insensitive (lowercased)."""
    paras, cur, last = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                paras.append(cur)
            cur, last = {}, None
        elif line[0] in " \t":
            assert last is not None, f"continuation line without a field: {line!r}"
            cur[last] += "\n" + line.strip()
        else:
            m = re.match(r"([!-9;-~][!-9;-~]*):\s*(.*)$", line)
            assert m, f"not a field: {line!r}"
            last = m.group(1).lower()
            assert last not in cur, f"field {last} twice in a paragraph"
            cur[last] = m.group(2)
    if cur:
        paras.append(cur)
    return paras


def test_copyright_is_dep5_apache_2_0():
    paras = deb822((SOURCE_DIR / "packaging" / "copyright").read_text())
    header, rest = paras[0], paras[1:]
    assert header.get("format") == DEP5_FORMAT, header
    assert header.get("upstream-name") == "muster", header
    files = [p for p in rest if "files" in p]
    licences = {p["license"].split("\n", 1)[0]: p["license"] for p in rest
                if "files" not in p}
    assert files and files[0]["files"].split() == ["*"], files
    for p in files:
        assert p.get("copyright"), p
        assert p.get("license", "").split("\n", 1)[0] == "Apache-2.0", p
    # A Files paragraph without the text names a stand-alone License paragraph.
    text = licences.get("Apache-2.0", "")
    assert "Licensed under the Apache License, Version 2.0" in text, licences
    assert "/usr/share/common-licenses/Apache-2.0" in text, text
