# SPDX-License-Identifier: Apache-2.0
"""The system calls the hosts' seccomp filter refuses (lib/subproc.c) are
the ones docs/modules.md and module.h list for module authors (issue 23):
a call added to the filter and not to the docs fails here."""
import os
import re

SRC = os.environ.get("MUSTER_SOURCE_DIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))


def read(path):
    with open(os.path.join(SRC, path)) as f:
        return f.read()


def denied():
    src = read("lib/subproc.c")
    block = src[src.index("static const int denied[]"):]
    block = block[:block.index("};")]
    return set(re.findall(r"SCMP_SYS\((\w+)\)", block))


def test_the_filter_denies_what_the_docs_name():
    calls = denied()
    assert {"ptrace", "adjtimex", "clock_adjtime", "mount"} <= calls
    doc = read("docs/modules.md")
    section = doc[doc.index("### What runs differently on a host"):]
    section = section[:section.index("\n## ")]
    listed = set(re.findall(r"`(\w+)`", section))
    assert calls <= listed, sorted(calls - listed)
    header = read("modules/include/muster/module.h")
    words = set(re.findall(r"\w+", header[:header.index("#ifndef MUSTER_MODULE_H")]))
    assert calls <= words, sorted(calls - words)
