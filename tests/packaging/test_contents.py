# SPDX-License-Identifier: Apache-2.0
"""What each .deb holds and declares: files at their FHS paths, the
conffile, Depends from dpkg-shlibdeps, and nothing that dpkg would fight
over (state folders are made by postinst, not shipped)."""
import re
import subprocess

from conftest import BUILD_DIR, PACKAGES, SOURCE_DIR, control_file


def contents(deb):
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True,
                         text=True, check=True).stdout
    files = {}
    for line in out.splitlines():
        f = line.split()
        path = f[5].removeprefix(".")
        files[path.rstrip("/") or "/"] = f[0]
    return files


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True,
                          text=True, check=True).stdout.strip()


def shipped_modules():
    text = (SOURCE_DIR / "modules" / "CMakeLists.txt").read_text()
    names = re.findall(r"^\s+([a-z0-9.]+):[a-z_]+\)?$", text, re.M)
    names += re.findall(r"muster_add_module\(([a-z0-9.]+) ", text)
    return sorted(set(names) - {"${name}"})


def test_the_packages_are_built(debs):
    assert set(PACKAGES) <= set(debs), debs
    server = (SOURCE_DIR / "server" / "CMakeLists.txt").exists()
    assert ("muster-server" in debs) == server


def test_agent_files(debs):
    files = contents(debs["muster-agent"])
    want = ["/usr/sbin/musterd", "/usr/libexec/muster/muster-runner",
            "/lib/systemd/system/musterd.service", "/etc/muster/agent.conf",
            "/usr/share/doc/muster/examples/agent.conf",
            "/usr/share/doc/muster/examples/policy",
            # operations.md links these three (issue 21.1)
            "/usr/share/doc/muster/operations.md", "/usr/share/doc/muster/design.md",
            "/usr/share/doc/muster/protocol.md", "/usr/share/doc/muster/security.md",
            "/usr/share/doc/muster-agent/copyright",
            "/usr/share/doc/muster-agent/changelog.gz",
            "/usr/share/man/man8/musterd.8.gz", "/usr/share/man/man8/muster-runner.8.gz",
            "/usr/share/man/man5/agent.conf.5.gz", "/usr/share/man/man5/muster-policy.5.gz"]
    mods = shipped_modules()
    assert len(mods) >= 9 and "selftest.echo" in mods, mods
    want += [f"/usr/lib/muster/modules/{m}.so" for m in mods]
    missing = [w for w in want if w not in files]
    assert not missing, missing
    assert files["/usr/sbin/musterd"].startswith("-rwxr-xr-x")
    assert files["/usr/libexec/muster/muster-runner"].startswith("-rwxr-xr-x")
    for m in mods:   # the agent refuses group/other-writable local modules
        assert files[f"/usr/lib/muster/modules/{m}.so"] == "-rw-r--r--"
    # Made by postinst: a shipped /var/lib/muster would make dpkg complain
    # on purge about a folder it cannot remove.
    assert not [f for f in files if f.startswith(("/var", "/usr/local", "/etc/muster/operators"))]


def test_cli_and_dev_files(debs):
    cli = contents(debs["muster-cli"])
    for w in ["/usr/bin/muster", "/usr/share/bash-completion/completions/muster",
              "/usr/share/man/man1/muster.1.gz", "/usr/share/man/man5/muster.conf.5.gz",
              "/usr/share/doc/muster/examples/muster.conf",
              "/usr/share/doc/muster-cli/copyright"]:
        assert w in cli, w
    dev = contents(debs["muster-dev"])
    for w in ["/usr/include/muster/module.h", "/usr/share/cmake/muster/muster-config.cmake",
              "/usr/share/cmake/muster/muster-config-version.cmake",
              "/usr/share/cmake/muster/MusterModule.cmake",
              "/usr/share/pkgconfig/muster-module.pc",
              "/usr/share/muster/module-template/CMakeLists.txt",
              "/usr/share/muster/module-template/hello.c",
              "/usr/share/muster/module-template/tests/tools/uname",
              "/usr/bin/muster-runner", "/usr/share/lintian/overrides/muster-dev",
              "/usr/share/man/man7/muster-module.7.gz",
              "/usr/share/doc/muster-dev/copyright"]:
        assert w in dev, w
    assert field(debs["muster-dev"], "Architecture") == "all"
    # The docs' first command needs the runner on PATH: a link to the
    # agent's (issue 23), and the template's fake tool stays executable.
    assert dev["/usr/bin/muster-runner"].startswith("l")
    assert dev["/usr/share/muster/module-template/tests/tools/uname"].startswith("-rwxr-xr-x")
    # No file in two packages (dpkg would refuse the second).
    seen = {}
    for name, deb in debs.items():
        for f, mode in contents(deb).items():
            if not mode.startswith("d"):
                assert f not in seen, f"{f} in {seen.get(f)} and {name}"
                seen[f] = name


def test_conffile_listed_and_all_commented(debs, tmp_path):
    conffiles = control_file(debs["muster-agent"], "conffiles", tmp_path)
    assert conffiles is not None
    assert conffiles.read_text().split() == ["/etc/muster/agent.conf"]
    for name in ("muster-cli", "muster-dev"):
        assert control_file(debs[name], "conffiles", tmp_path) is None
    text = (SOURCE_DIR / "agent" / "agent.conf.example").read_text()
    live = [l for l in text.splitlines()
            if l.strip() and not l.lstrip().startswith(("#", ";", "["))]
    assert not live, f"the conffile must set nothing: {live}"


def test_depends_from_shlibdeps(debs):
    agent = field(debs["muster-agent"], "Depends")
    for lib in ("libc6", "libpaho-mqtt1.3", "libssl3", "libmsgpackc2", "libinih1",
                "libgpgme11", "libsystemd0", "adduser"):
        assert lib in agent, agent
    cli = field(debs["muster-cli"], "Depends")
    for lib in ("libc6", "libpaho-mqtt1.3", "libjansson4"):
        assert lib in cli, cli
    assert "muster-agent" in field(debs["muster-dev"], "Depends")


def test_agent_recommends_nss_systemd(debs):
    """The job uids' names in /run/userdb are read by nss-systemd
    (agent/parent/userdb.c): recommended, since it depends on systemd."""
    assert "libnss-systemd" in field(debs["muster-agent"], "Recommends")
    assert "libnss-systemd" not in field(debs["muster-agent"], "Depends")


def test_changelog_signed_by_the_maintainer(debs, tmp_path):
    """The changelog's sign-off is a real maintainer (issue 19), the one
    packaging/maintainer.cmake finds, as the Maintainer field is."""
    import gzip
    for name, deb in debs.items():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path / name)], check=True)
        text = gzip.decompress((tmp_path / name / "usr/share/doc" / name /
                                "changelog.gz").read_bytes()).decode()
        m = re.search(r"^ -- (.+?)  \w{3}, ", text, re.M)
        assert m, text
        assert "example.org" not in m.group(1) and "@MUSTER" not in m.group(1)
        assert re.fullmatch(r"[^<>]+ <[^ <>@]+@[^ <>@]+>", m.group(1)), m.group(1)
        found = subprocess.run(["cmake", f"-DMUSTER_SOURCE_DIR={SOURCE_DIR}", "-P",
                                str(SOURCE_DIR / "packaging" / "maintainer.cmake")],
                               capture_output=True, text=True)
        if found.returncode == 0:
            assert m.group(1) == field(deb, "Maintainer") == found.stdout.strip()
