# SPDX-License-Identifier: Apache-2.0
"""make-corpus.py makes exactly the committed corpus: run into a scratch
folder, it writes every committed seed and corpus/<target>.expect byte for
byte, and nothing else; only the regress-* inputs (found by fuzzing, never
made) are in the committed corpus alone.  Run as ctest fuzz-corpus."""
import filecmp
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def entries(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Every file under root by its path relative to root (<target>.expect
    and <target>/<seed>), regress-* seeds left out."""
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("regress-")}


def differences(made: pathlib.Path, committed: pathlib.Path) -> list[str]:
    a, b = entries(made), entries(committed)
    out = [f"{n}: made, not committed" for n in sorted(a.keys() - b.keys())]
    out += [f"{n}: committed, not made (a found input? name it regress-)"
            for n in sorted(b.keys() - a.keys())]
    out += [f"{n}: differs" for n in sorted(a.keys() & b.keys())
            if not filecmp.cmp(a[n], b[n], shallow=False)]
    return out


def test_make_corpus_makes_the_committed_corpus(tmp_path):
    out = tmp_path / "corpus"
    r = subprocess.run([sys.executable, str(HERE / "make-corpus.py"), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    diff = differences(out, CORPUS)
    assert not diff, ("regenerating the corpus changes what is committed "
                      "(tests/fuzz/make-corpus.py):\n  " + "\n  ".join(diff))
    # Every fuzz target has made seeds of both kinds and their reasons.
    targets = sorted(p.stem for p in HERE.glob("fuzz_*.c"))
    made = entries(out)
    for t in targets:
        seeds = [n for n in made if n.startswith(t + "/")]
        assert any("/ok-" in n for n in seeds), f"{t}: no ok- seed is made"
        assert any("/bad-" in n for n in seeds), f"{t}: no bad- seed is made"
        assert f"{t}.expect" in made, f"{t}: no .expect file is made"
