# SPDX-License-Identifier: Apache-2.0
"""docs/design.md must answer every citation of it: each "design.md §N" in
the tree (C, Python, shell, CMake, docs, packaging, broker config) names a
"## N." section of it, a quoted sub-section ("§3 \"Modules and releases on
the broker\"") is a "###" heading of that section, and every file and
function its "Where to find what" table names exists.  The tree uses "§"
for design.md only, so a bare "§N" must resolve too."""
import os
import pathlib
import re

ROOT = pathlib.Path(os.environ.get("MUSTER_SOURCE_DIR", pathlib.Path(__file__).parents[2]))
DESIGN = ROOT / "docs" / "design.md"

# Build trees, generated keys and packages are not the project's text.
SKIP_DIRS = ("build", "dist", "demo", "PKI", "pki", "keys", "__pycache__")

# A comment leader at the start of a wrapped line, so that a citation
# broken over two lines ("design.md\n * §8") reads as one.
LEADER = re.compile(r"\n[ \t]*(?:\*|#|//|;|--)?[ \t]*")
# "design.md §3", "design.md §1, §8", "design.md §3 \"Title\", §8".
CHAIN = re.compile(r'design\.md\s*§(\d+)((?:\s*(?:"[^"]*"\s*)?(?:,|and|or)\s*§\d+)*)')
QUOTED = re.compile(r'§(\d+)\s*"([A-Z][A-Za-z0-9 ,\'-]*)"')
CODE = re.compile(r"`([^`]+)`")
FUNC = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\(\)")


def _sections():
    """Section number -> its text (heading included)."""
    text = DESIGN.read_text()
    parts = re.split(r"(?m)^(?=## )", text)
    out = {}
    for part in parts:
        m = re.match(r"## (\d+)\. ", part)
        if m:
            out[int(m.group(1))] = part
    return out


def _tree_texts():
    """(relative path, text with wrapped comment lines joined) of every
    text file of the source tree."""
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames
                       if not d.startswith(".") and not d.startswith(SKIP_DIRS)]
        for name in filenames:
            path = pathlib.Path(dirpath) / name
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            yield path.relative_to(ROOT), LEADER.sub(" ", text)


def _citations():
    """(file, section number, quoted title or None) per citation."""
    for rel, text in _tree_texts():
        for m in CHAIN.finditer(text):
            yield rel, int(m.group(1)), None
            for n in re.findall(r"§(\d+)", m.group(2)):
                yield rel, int(n), None
        for m in QUOTED.finditer(text):
            yield rel, int(m.group(1)), m.group(2)


def test_sections_numbered_in_order():
    assert sorted(_sections()) == list(range(1, 11))


def test_every_citation_resolves():
    sections = _sections()
    cites = list(_citations())
    # The scan itself must work: the code cites the design everywhere.
    assert len(cites) > 50, cites
    bad = []
    for rel, n, title in cites:
        if n not in sections:
            bad.append(f"{rel}: §{n}: no '## {n}.' in docs/design.md")
        elif title and not re.search(rf"(?m)^### {re.escape(title)}$", sections[n]):
            bad.append(f"{rel}: §{n} \"{title}\": no such heading in that section")
    assert not bad, "\n".join(bad)


def test_bare_section_signs_resolve():
    sections = _sections()
    bad = [f"{rel}: §{n}" for rel, text in _tree_texts()
           for n in map(int, re.findall(r"§(\d+)", text)) if n not in sections]
    assert not bad, "\n".join(bad)


def _where_table():
    text = DESIGN.read_text()
    m = re.search(r"(?ms)^## Where to find what\n(.*?)(?=^## |\Z)", text)
    assert m, "docs/design.md has no '## Where to find what'"
    rows = [line for line in m.group(1).splitlines()
            if line.startswith("|") and not line.startswith("|---")]
    assert len(rows) > 20, rows
    return rows[1:]    # the header


def _defines(path, func):
    text = path.read_text()
    if path.suffix in (".c", ".h"):
        # The tree's style: a definition's name starts its line.
        return re.search(rf"(?m)^{func}\(", text) is not None
    return re.search(rf"\b(?:def )?{func}\(", text) is not None


def test_where_to_find_what_names_real_files_and_functions():
    bad = []
    for row in _where_table():
        behaviour, where = [c.strip() for c in row.strip("|").split("|", 1)]
        current = None
        for span in CODE.findall(where):
            func = FUNC.fullmatch(span)
            if func:
                if current is None:
                    bad.append(f"{behaviour}: {span} names no file before it")
                elif current.is_file() and not _defines(current, func.group(1)):
                    bad.append(f"{behaviour}: {span} is not defined in "
                               f"{current.relative_to(ROOT)}")
                continue
            current = ROOT / span
            if not current.exists():
                bad.append(f"{behaviour}: {span} does not exist")
    assert not bad, "\n".join(bad)


def test_each_process_touches_only_its_own_state():
    """design.md §1: agent/parent/ runs only in the root parent and
    agent/net/ only in the network process; each side's state is its own
    struct (a->par, a->net, agent/agent.h), and no file of one side reaches
    into the other's."""
    bad = []
    for side, other in (("parent", "net"), ("net", "par")):
        for f in sorted((ROOT / "agent" / side).glob("*.c")):
            for n, line in enumerate(f.read_text().splitlines(), 1):
                if re.search(rf"\ba->{other}\.", line):
                    bad.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)


def _calls_between_files(folder):
    """File -> the other files of folder whose functions it calls (a
    definition's name starts its line, the tree's style; a name defined
    static in both files is each file's own)."""
    files = sorted(folder.glob("*.c"))
    texts = {f: f.read_text() for f in files}
    defs = {f: set(re.findall(r"(?m)^([a-z_][a-z0-9_]*)\(", t)) for f, t in texts.items()}
    edges = {f: set() for f in files}
    for f in files:
        for g in files:
            if g == f:
                continue
            for fn in defs[g] - defs[f]:
                if re.search(rf"\b{fn}\(", texts[f]):
                    edges[f].add(g)
                    break
    return edges


def _cycle(edges):
    state = {}

    def visit(v, path):
        state[v] = 1
        for w in edges[v]:
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state:
                found = visit(w, path + [w])
                if found:
                    return found
        state[v] = 2
        return None

    for v in edges:
        if v not in state:
            found = visit(v, [v])
            if found:
                return found
    return None


def test_no_call_circle_within_a_process():
    """design.md §1: within agent/parent/ and within agent/net/ calls go
    one way (the frame dispatch in agent/common/ is the only way back)."""
    for side in ("parent", "net"):
        cycle = _cycle(_calls_between_files(ROOT / "agent" / side))
        assert cycle is None, f"agent/{side}: " + " -> ".join(p.name for p in cycle)
