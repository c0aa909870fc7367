# SPDX-License-Identifier: Apache-2.0
"""The packages' Maintainer field is a real person, found when the
packages are built (issue 19): DEBFULLNAME/DEBEMAIL as dch reads them,
else git config user.name/user.email; with neither, cpack stops and says
what to set.  packaging/maintainer.cmake holds the rule; scripts/package
asks it first, cpack applies it."""
import os
import subprocess

import pytest

from conftest import BUILD_DIR, SOURCE_DIR, need

SCRIPT = SOURCE_DIR / "packaging" / "maintainer.cmake"


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True,
                          text=True, check=True).stdout.strip()


def bare_env(tmp_path, **extra):
    """No DEB* variables, no global or system git configuration."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEBFULLNAME", "DEBEMAIL", "EMAIL", "NAME")}
    env.update(HOME=str(tmp_path), GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    env.update(extra)
    return env


def resolve(srcdir, env):
    need("cmake", "git")
    return subprocess.run(["cmake", f"-DMUSTER_SOURCE_DIR={srcdir}", "-P", str(SCRIPT)],
                          capture_output=True, text=True, env=env, timeout=30)


@pytest.fixture
def repo(tmp_path):
    """A git work tree with its own user.name/user.email."""
    need("git")
    r = tmp_path / "src"
    r.mkdir()
    subprocess.run(["git", "init", "-q", str(r)], check=True)
    subprocess.run(["git", "-C", str(r), "config", "user.name", "Ada Builder"], check=True)
    subprocess.run(["git", "-C", str(r), "config", "user.email", "ada@example.net"],
                   check=True)
    return r


def test_every_package_names_the_builder(debs):
    for name, deb in debs.items():
        m = field(deb, "Maintainer")
        assert "muster@example.org" not in m and "muster maintainers" not in m, (name, m)
        assert m.endswith(">") and "@" in m, (name, m)
    assert len({field(d, "Maintainer") for d in debs.values()}) == 1


def test_debfullname_and_debemail_come_first(repo, tmp_path):
    r = resolve(repo, bare_env(tmp_path, DEBFULLNAME="Jane Doe", DEBEMAIL="jane@example.org"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Jane Doe <jane@example.org>"


def test_debemail_may_carry_the_name(repo, tmp_path):
    r = resolve(repo, bare_env(tmp_path, DEBEMAIL="Jane Doe <jane@example.org>"))
    assert r.stdout.strip() == "Jane Doe <jane@example.org>", r.stderr


def test_git_config_next(repo, tmp_path):
    r = resolve(repo, bare_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Ada Builder <ada@example.net>"
    # Field by field: an address from DEBEMAIL, the name from git.
    r = resolve(repo, bare_env(tmp_path, DEBEMAIL="ada@debian.example"))
    assert r.stdout.strip() == "Ada Builder <ada@debian.example>", r.stderr


def test_none_is_an_error_that_says_what_to_set(tmp_path):
    (tmp_path / "src").mkdir()
    r = resolve(tmp_path / "src", bare_env(tmp_path))
    assert r.returncode != 0 and r.stdout == ""
    for w in ("no maintainer", "DEBFULLNAME", "DEBEMAIL", "git config user.name"):
        assert w in r.stderr, r.stderr


def cpack(tmp_path, env, *defs):
    need("cpack")
    out = tmp_path / "out"
    out.mkdir()
    return subprocess.run(["cpack", "--config", str(BUILD_DIR / "CPackConfig.cmake"),
                           "-B", str(out), *defs], cwd=out, capture_output=True,
                          text=True, env=env, timeout=120), out


def test_cpack_stops_without_a_maintainer(tmp_path):
    if not (BUILD_DIR / "CPackConfig.cmake").exists():
        pytest.skip(f"{BUILD_DIR} is not configured")
    (tmp_path / "src").mkdir()
    r, out = cpack(tmp_path, bare_env(tmp_path),
                   "-D", f"CPACK_MUSTER_SOURCE_DIR={tmp_path / 'src'}")
    assert r.returncode != 0
    assert "no maintainer for the packages' Maintainer field" in r.stdout + r.stderr
    assert not list(out.glob("*.deb"))


def test_cpack_refuses_a_malformed_maintainer(tmp_path):
    if not (BUILD_DIR / "CPackConfig.cmake").exists():
        pytest.skip(f"{BUILD_DIR} is not configured")
    r, out = cpack(tmp_path, bare_env(tmp_path),
                   "-D", "CPACK_MUSTER_MAINTAINER=somebody")
    assert r.returncode != 0
    assert "bad maintainer 'somebody'" in r.stdout + r.stderr
    assert not list(out.glob("*.deb"))
