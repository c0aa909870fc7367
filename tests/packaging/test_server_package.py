# SPDX-License-Identifier: Apache-2.0
"""muster-server packaged like the agent (issue 19): its own user, state
folder, conffile and unit, Depends, and maintainer scripts - run as dpkg
would run them, against a scratch root ($DPKG_ROOT) with adduser, getent,
chown, dpkg-statoverride and the systemd helpers replaced by stubs that
record their calls.  With both packages' files and scripts in one root,
purging either package leaves the other's data."""
import os
import pwd
import re
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import SOURCE_DIR, control_file

SERVER = "muster-server"

STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE/calls"
"""
GETENT = """#!/bin/sh
[ "$1" = passwd ] && grep -q "^$2:" "$FAKE/passwd" 2>/dev/null
"""
ADDUSER = STUB + """for u; do :; done
echo "$u:x:999:999::/nonexistent:/usr/sbin/nologin" >> "$FAKE/passwd"
"""
# An admin's override exists when $FAKE/statoverride does.
STATOVERRIDE = STUB + """[ -e "$FAKE/statoverride" ]
"""


def contents(deb):
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True,
                         text=True, check=True).stdout
    return {l.split()[5].removeprefix(".").rstrip("/") or "/": l.split()[0]
            for l in out.splitlines()}


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.fixture
def server_deb(debs):
    if SERVER not in debs:
        pytest.skip("server/ is not part of this tree")
    return debs[SERVER]


def unit(root_or_deb_dir):
    """The installed unit's [Service] as {key: [values]}."""
    text = (root_or_deb_dir / "lib/systemd/system/muster-server.service").read_text()
    out = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_server_files_and_fields(server_deb):
    files = contents(server_deb)
    for w in ["/usr/sbin/muster-server", "/lib/systemd/system/muster-server.service",
              "/etc/muster/server.conf", "/usr/share/doc/muster-server/examples/server.conf",
              "/usr/share/doc/muster-server/copyright",
              "/usr/share/doc/muster-server/changelog.gz",
              "/usr/share/man/man8/muster-server.8.gz"]:
        assert w in files, w
    # Made by postinst and systemd: a shipped state folder would be
    # dpkg's to remove, and the agent's must not be touched at all.
    assert not [f for f in files if f.startswith("/var")], files
    depends = field(server_deb, "Depends")
    for lib in ("adduser", "libc6", "libpq5", "libsqlite3-0", "libmicrohttpd12",
                "libssl3", "libpaho-mqtt1.3", "libsystemd0"):
        assert lib in depends, depends
    desc = field(server_deb, "Description")
    for w in ("archive", "metrics", "page", "muster-server", "/var/lib/muster-server"):
        assert w in desc, desc


def test_conffile_listed_commented_and_complete(server_deb, tmp_path):
    conffiles = control_file(server_deb, "conffiles", tmp_path)
    assert conffiles is not None and conffiles.read_text().split() == \
        ["/etc/muster/server.conf"]
    text = (SOURCE_DIR / "server" / "server.conf.example").read_text()
    live = [l for l in text.splitlines()
            if l.strip() and not l.lstrip().startswith(("#", ";", "["))]
    assert not live, f"the conffile must set nothing: {live}"
    missing = []
    for sec, names in server_keys().items():
        body = re.split(rf"^\[{sec}\]$", text, maxsplit=1, flags=re.M)
        assert len(body) == 2, f"server.conf.example has no [{sec}]"
        body = body[1].split("\n[", 1)[0]
        missing += [f"[{sec}] {k}" for k in names
                    if not re.search(rf"^# {k} = ", body, re.M)]
    assert not missing, missing
    assert "/var/lib/muster-server/archive.db" in text
    assert "/var/lib/muster/" not in text, "the agent's folder is not the server's"


def server_keys():
    """{section: [keys]} of lib/config.c's server_sections; [broker] has
    two tables there (the agent's keys and session_expiry)."""
    src = (SOURCE_DIR / "lib" / "config.c").read_text()
    m = re.search(r"conf_section server_sections\[\] = \{(.*?)\n\};", src, re.S)
    out = {}
    for sec, table in re.findall(r'\{ "(\w+)", (\w+),', m.group(1)):
        t = re.search(rf"conf_key {table}\[\] = \{{(.*?)\n\}};", src, re.S)
        out.setdefault(sec, []).extend(re.findall(r'KEY\w*\("(\w+)"', t.group(1)))
    assert {"uri", "key", "session_expiry"} <= set(out["broker"]), out
    assert "user" in out["server"], out
    return out


def test_every_server_key_in_muster_server_8():
    page = (SOURCE_DIR / "docs" / "man" / "muster-server.8.scd").read_text()
    missing = []
    for sec, names in server_keys().items():
        body = re.split(rf"^\*\[{sec}\]\*", page, maxsplit=1, flags=re.M)
        assert len(body) == 2, f"muster-server(8) has no *[{sec}]*"
        body = body[1].split("\n\n", 1)[0]
        missing += [f"[{sec}] {k}" for k in names if f"*{k}*" not in body]
    assert not missing, missing


def uncommented(text):
    """The example with every key set as shown (EXAMPLE values included)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^# ([a-z_]+ = .*?)(\s+;.*)?$", line)
        if m:
            line = m.group(1).replace("<hostname>", "ctl1")
        out.append(line)
    return "\n".join(out) + "\n"


def test_every_value_shown_in_the_conffile_parses(root, tmp_path):
    """The values the conffile shows, uncommented, are accepted by the
    installed muster-server's parser: what follows a clean parse are the
    access checks (files of this machine), never a file:line error."""
    conf = tmp_path / "server.conf"
    conf.write_text(uncommented((root / "etc/muster/server.conf").read_text()))
    assert "uri = ssl://" in conf.read_text()
    r = subprocess.run([str(root / "usr/sbin/muster-server"), "--check-config", "-c",
                        str(conf)], capture_output=True, text=True, timeout=30)
    assert not re.search(rf"{re.escape(str(conf))}:\d+:", r.stderr), r.stderr
    assert "[broker]" in r.stderr or "[server] user" in r.stderr, r.stderr


def test_default_archive_is_in_the_servers_own_folder(root, tmp_path):
    """The installed binary's default, as its check reports it (ok on a
    host with the folder, "no such folder" here)."""
    conf = tmp_path / "server.conf"
    conf.write_text(f"[server]\nuser = {pwd.getpwuid(os.geteuid()).pw_name}\n")
    r = subprocess.run([str(root / "usr/sbin/muster-server"), "--check-config", "-c",
                        str(conf)], capture_output=True, text=True, timeout=30)
    assert "[archive] url /var/lib/muster-server/archive.db" in r.stdout + r.stderr, r


def test_unit_runs_as_its_own_user_in_its_own_folder(root):
    u = unit(root)
    assert u["User"] == ["muster-server"] and u["Group"] == ["muster-server"], u
    assert u["StateDirectory"] == ["muster-server"], u
    assert u["StateDirectoryMode"] == ["0750"], u
    assert u["ExecStartPre"] == [
        "/usr/sbin/muster-server --check-config -c /etc/muster/server.conf"], u
    assert u["ExecStart"] == ["/usr/sbin/muster-server -c /etc/muster/server.conf"], u
    assert u["Type"] == ["notify"] and "WatchdogSec" in u
    assert u.get("ProtectSystem") == ["strict"], "writes its state folder only"
    assert "ReadWritePaths" not in u or not any("/var/lib/muster " in f"{v} "
                                                for v in u["ReadWritePaths"])


# ---- maintainer scripts ----------------------------------------------------


@pytest.fixture
def dpkg(debs, tmp_path):
    """run(package, script, *args) in one scratch root that holds both
    packages' files (dpkg-deb -x), as after `apt install` of both."""
    if SERVER not in debs:
        pytest.skip("server/ is not part of this tree")
    fake, bin_, root = tmp_path / "fake", tmp_path / "bin", tmp_path / "root"
    for d in (fake, bin_, root):
        d.mkdir()
    for pkg in ("muster-agent", SERVER):
        subprocess.run(["dpkg-deb", "-x", str(debs[pkg]), str(root)], check=True)
    scripts = {(pkg, n): control_file(debs[pkg], n, tmp_path)
               for pkg in ("muster-agent", SERVER) for n in ("postinst", "prerm", "postrm")}
    for name, text in (("adduser", ADDUSER), ("getent", GETENT), ("chown", STUB),
                       ("dpkg-statoverride", STATOVERRIDE),
                       ("deb-systemd-helper", STUB), ("deb-systemd-invoke", STUB),
                       ("systemctl", STUB)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)

    def run(pkg, script, *args):
        (fake / "calls").write_text("")
        path = scripts[(pkg, script)]
        assert path is not None, f"{pkg} has no {script}"
        env = {"PATH": f"{bin_}:/usr/sbin:/usr/bin:/sbin:/bin", "FAKE": str(fake),
               "DPKG_ROOT": str(root), "DPKG_MAINTSCRIPT_PACKAGE": pkg}
        return subprocess.run([str(path), *args], env=env, capture_output=True,
                              text=True, timeout=30)

    run.scripts, run.root, run.fake = scripts, root, fake
    run.calls = lambda: (fake / "calls").read_text().splitlines()
    return run


def test_server_scripts_parse_and_are_executable(dpkg):
    for (pkg, name), path in dpkg.scripts.items():
        if pkg != SERVER:
            continue
        assert path is not None, name
        assert os.access(path, os.X_OK), name
        assert path.read_text().startswith("#!/bin/sh\n"), name
        r = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, f"{name}: {r.stderr}"


def test_postinst_makes_its_user_folder_and_conffile_group(dpkg):
    conf = dpkg.root / "etc/muster/server.conf"
    r = dpkg(SERVER, "postinst", "configure", "")
    assert r.returncode == 0, r.stderr
    calls = dpkg.calls()
    adds = [c.split() for c in calls if c.startswith("adduser")]
    assert len(adds) == 1 and adds[0][-1] == "muster-server", adds
    for opt in ("--system", "--group", "--no-create-home", "/nonexistent",
                "/usr/sbin/nologin"):
        assert opt in adds[0], adds
    state = dpkg.root / "var/lib/muster-server"
    assert stat.S_IMODE(state.stat().st_mode) == 0o750
    assert f"chown muster-server:muster-server {state}" in calls, calls
    # The configuration is read by the server's user, and by nobody else.
    assert f"chown root:muster-server {conf}" in calls, calls
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert "deb-systemd-helper update-state muster-server.service" in calls
    assert not [c for c in calls if " enable " in f" {c} "], "not enabled on install"

    # Upgrade: the archive is kept, the user not made again.
    (state / "archive.db").write_text("rows")
    r = dpkg(SERVER, "postinst", "configure", "0.1.0")
    assert r.returncode == 0, r.stderr
    assert not [c for c in dpkg.calls() if c.startswith("adduser")]
    assert (state / "archive.db").read_text() == "rows"


def test_postinst_leaves_an_admins_statoverride_alone(dpkg):
    conf = dpkg.root / "etc/muster/server.conf"
    conf.chmod(0o600)
    (dpkg.fake / "statoverride").write_text("root root 0600 /etc/muster/server.conf\n")
    assert dpkg(SERVER, "postinst", "configure", "").returncode == 0
    assert "dpkg-statoverride --list /etc/muster/server.conf" in dpkg.calls()
    assert not [c for c in dpkg.calls() if c.startswith("chown root:")]
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600


def install_both(dpkg):
    for pkg in ("muster-agent", SERVER):
        r = dpkg(pkg, "postinst", "configure", "")
        assert r.returncode == 0, f"{pkg}: {r.stderr}"
    agent = dpkg.root / "var/lib/muster"
    server = dpkg.root / "var/lib/muster-server"
    (agent / "seen").write_text("job-1\n")
    (server / "archive.db").write_text("the archive")
    return agent, server


def test_purge_agent_keeps_the_servers_archive(dpkg):
    """Issue 19: `apt-get purge muster-agent` deleted the server's archive,
    which lived in the agent's /var/lib/muster."""
    agent, server = install_both(dpkg)
    for script, arg in (("prerm", "remove"), ("postrm", "remove"), ("postrm", "purge")):
        r = dpkg("muster-agent", script, arg)
        assert r.returncode == 0, r.stderr
    assert not agent.exists()
    assert (server / "archive.db").read_text() == "the archive"
    assert (dpkg.root / "etc/muster/server.conf").exists()


def test_purge_server_keeps_the_agents_state(dpkg):
    agent, server = install_both(dpkg)
    assert dpkg(SERVER, "prerm", "remove").returncode == 0
    assert dpkg(SERVER, "postrm", "remove").returncode == 0
    assert (server / "archive.db").exists(), "remove keeps the archive; purge removes it"
    r = dpkg(SERVER, "postrm", "purge")
    assert r.returncode == 0, r.stderr
    assert not server.exists()
    assert "deb-systemd-helper purge muster-server.service" in dpkg.calls()
    assert (agent / "seen").read_text() == "job-1\n"
    assert (dpkg.root / "etc/muster/agent.conf").exists()
    assert dpkg(SERVER, "postrm", "purge").returncode == 0, "purge twice"


def test_server_unknown_action_fails(dpkg):
    assert dpkg(SERVER, "postinst", "frobnicate").returncode == 1
    assert dpkg(SERVER, "postrm", "frobnicate").returncode == 1
