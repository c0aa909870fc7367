# SPDX-License-Identifier: Apache-2.0
"""scripts/gen-pki and scripts/gen-keys refuse to write keys inside a git
work tree unless --in-tree says it is meant (issue 19: `gen-pki PKI` from
the top of a checkout left ca.key one `git add` away from a public
repository), and the project's .gitignore covers what README, docs/ and
the demo have them (and scripts/package) write.

Real git repositories and worktrees in a temporary folder; the scripts run
as README tells an admin to run them."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from muster_fixtures import GEN_KEYS, GEN_PKI, SOURCE_DIR

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True, env=dict(os.environ, **GIT_ENV)).stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    git(path, "commit", "-q", "--allow-empty", "-m", "start")
    return path


def gen(script: Path, dir_: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(script), dir_, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


# The smallest run of each that writes a private key.
SCRIPTS = {"gen-pki": (GEN_PKI, ["--host", "web1:web", "--operator", "alice"], "ca.key"),
           "gen-keys": (GEN_KEYS, ["--operator", "alice"], "operators/alice.key")}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_refuses_a_work_tree(tmp_path, name):
    script, args, key = SCRIPTS[name]
    repo = make_repo(tmp_path / "repo")
    (repo / "sub").mkdir()
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(worktree))	# .git is a file there
    for cwd, dir_ in ((repo, "PKI"), (repo / "sub", "a/b/PKI"), (tmp_path, str(repo / "PKI")),
                      (worktree, "PKI")):
        r = gen(script, dir_, *args, cwd=cwd)
        assert r.returncode == 2, (cwd, dir_, r.stdout, r.stderr)
        top = worktree if cwd == worktree else repo
        assert f"is inside the git work tree {top.resolve()}" in r.stderr, r.stderr
        assert "--in-tree" in r.stderr, r.stderr
        assert not (cwd / dir_).exists() and not (cwd / "a").exists(), (cwd, dir_)
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_in_tree_when_asked_and_outside_any(tmp_path, name):
    script, args, key = SCRIPTS[name]
    repo = make_repo(tmp_path / "repo")
    r = gen(script, "PKI", *args, "--in-tree", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert (repo / "PKI" / key).stat().st_size > 0
    plain = tmp_path / "plain"
    plain.mkdir()
    r = gen(script, "PKI", *args, cwd=plain)
    assert r.returncode == 0, r.stderr
    assert (plain / "PKI" / key).stat().st_size > 0


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_usage(tmp_path, name):
    """GNU conventions, as on the programs: --help on stdout, exit 0; an
    unknown option on stderr, exit 2."""
    script = SCRIPTS[name][0]
    r = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert f"scripts/{name} DIR" in r.stdout and "--in-tree" in r.stdout, r.stdout
    r = gen(script, "out", "--no-such-option", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "" and "unknown argument" in r.stderr
    assert not (tmp_path / "out").exists()


def test_gitignore_covers_what_the_docs_create(tmp_path):
    """A repository with the project's .gitignore, after README's PKI and
    keys steps (run from the top, so --in-tree), the demo's folder and
    scripts/package's dist/: nothing for `git add -A` to pick up."""
    repo = make_repo(tmp_path / "repo")
    shutil.copy(SOURCE_DIR / ".gitignore", repo / ".gitignore")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore")
    r = gen(GEN_PKI, "PKI", "--host", "web1:web", "--operator", "alice",
            "--san", "DNS:mq.example.com", "--in-tree", cwd=repo)
    assert r.returncode == 0, r.stderr
    r = gen(GEN_KEYS, "keys", "--operator", "alice", "--in-tree", cwd=repo)
    assert r.returncode == 0, r.stderr
    for made in ("demo/pki/ca.key", "dist/muster-agent_0.1.0_amd64.deb",
                 "build-pkg/CMakeCache.txt", "pki/ca.key", "elsewhere/host.key"):
        (repo / made).parent.mkdir(parents=True, exist_ok=True)
        (repo / made).write_text("x\n")
    assert (repo / "PKI" / "ca.key").exists() and (repo / "keys" / "operators").is_dir()
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
