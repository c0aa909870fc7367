# SPDX-License-Identifier: Apache-2.0
"""packaging/man-lint.sh (ctest man.lint) fails a page whose rendered text
still shows scdoc markup, as muster-runner(8) showed `128+_N_` (issue 19),
and passes what only looks alike: globs, underscores inside names."""
import shutil
import subprocess

import pytest

from conftest import SOURCE_DIR

LINT = SOURCE_DIR / "packaging" / "man-lint.sh"


def lint(tmp_path, body):
    for tool in ("scdoc", "mandoc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/setup installs it)")
    src = f"t(8)\n\n# NAME\n\nt - a test page\n\n# DESCRIPTION\n\n{body}\n"
    roff = subprocess.run(["scdoc"], input=src, capture_output=True, text=True,
                          check=True).stdout
    # As packaging/CMakeLists.txt builds the pages: scdoc, then man-tidy.awk.
    (tmp_path / "t.8").write_text(subprocess.run(
        ["awk", "-f", str(SOURCE_DIR / "packaging" / "man-tidy.awk")], input=roff,
        capture_output=True, text=True, check=True).stdout)
    return subprocess.run(["sh", str(LINT), str(tmp_path), "t.8"],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("body", [
    "*128*+_N_ killed by signal _N_.",	# scdoc leaves _N_ after a '+'
    "a literal \\*bold\\* word",
    "two _words_ left",
])
def test_stray_markup_fails(tmp_path, body):
    r = lint(tmp_path, body.replace("two _words_", "two \\_words\\_"))
    assert r.returncode == 1, r.stdout
    assert "scdoc markup left in the text" in r.stdout and "t.8: FAILED" in r.stdout


@pytest.mark.parametrize("body", [
    "*128* + _N_ killed by signal _N_.",
    "kinds run:qc.\\*, run:\\* and a lone \\* glob",
    "*state_dir*, _run_as_ and file\\_name\\_x",
])
def test_look_alikes_pass(tmp_path, body):
    r = lint(tmp_path, body)
    assert r.returncode == 0, r.stdout
    assert "t.8: ok" in r.stdout
