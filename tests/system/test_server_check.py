# SPDX-License-Identifier: Apache-2.0
"""muster-server --check-config checks what the service will need, as the
user it will run as (issue 19): the TLS files readable by that user and
well-formed (certificate from the CA, CN srv:NAME, the key its own), the
archive's folder writable, the broker URI well-formed.  Each case fails
with a message naming the file and the reason.

The unit runs the check as its User= (ExecStartPre); run by hand as root
the check becomes [server] user first.  The cross-user cases need root to
switch users and skip without it; CI runs as root.  No broker needed: the
check does not connect."""
import getpass
import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from muster_fixtures import gen_pki
from server_fixtures import SERVER_BIN

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="switching to another user "
                                "needs root (CI runs as root)")
# A user every Debian system has, that owns nothing here.
OTHER = "nobody"


@pytest.fixture
def d():
    """A folder every user may enter (pytest's own tmp is 0700), with
    copies of the server's TLS files and a writable archive folder."""
    p = Path(tempfile.mkdtemp(prefix="muster-check-"))
    os.chmod(p, 0o755)
    yield p
    shutil.rmtree(p, ignore_errors=True)


class Setup:
    def __init__(self, d: Path, pki, user: str):
        self.d = d
        for name, src in (("ca.crt", pki.ca), ("server.crt", pki.cert("srv:main")),
                          ("server.key", pki.key("srv:main"))):
            shutil.copy(src, d / name)
            os.chmod(d / name, 0o644 if name.endswith(".crt") else 0o600)
        (d / "state").mkdir()
        self.conf = {
            "server": {"name": "main", "user": user},
            "broker": {"uri": "ssl://localhost:8883", "ca": str(d / "ca.crt"),
                       "cert": str(d / "server.crt"), "key": str(d / "server.key")},
            "archive": {"url": str(d / "state" / "archive.db")},
        }
        self.path = d / "server.conf"

    def write(self) -> Path:
        self.path.write_text("".join(
            f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items())
            for s, kv in self.conf.items()))
        return self.path

    def check(self, as_user=None, **kw) -> subprocess.CompletedProcess:
        """as_user: run it as that user (uid, gid and groups), as the
        unit's ExecStartPre runs."""
        self.write()
        if as_user is not None:
            pw = pwd.getpwnam(as_user)
            kw.update(user=pw.pw_uid, group=pw.pw_gid,
                      extra_groups=os.getgrouplist(as_user, pw.pw_gid))
        return subprocess.run([str(SERVER_BIN), "--check-config", "-c", str(self.path)],
                              capture_output=True, text=True, timeout=30, **kw)


def me():
    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def s(d, pki):
    """Checked as whoever runs the tests: plain access checks."""
    return Setup(d, pki, me())


@pytest.fixture
def other(d, pki):
    """Checked as OTHER, with the files as the package and the docs have
    them: TLS key and configuration 0640 root:<OTHER's group>."""
    if not ROOT:
        pytest.skip("switching to another user needs root (CI runs as root)")
    s = Setup(d, pki, OTHER)
    pw = pwd.getpwnam(OTHER)
    s.group = grp.getgrgid(pw.pw_gid).gr_name
    s.write()
    for f in (d / "server.key", s.path):
        os.chown(f, 0, pw.pw_gid)
        os.chmod(f, 0o640)
    os.chown(d / "state", pw.pw_uid, pw.pw_gid)
    os.chmod(d / "state", 0o750)
    return s


def failed(r, *words):
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    for w in words:
        assert w in out, f"want {w!r} in:\n{out}"
    return out


def test_good_config_is_ok(s):
    r = s.check()
    assert r.returncode == 0, r.stderr
    assert f"ok as user {me()}" in r.stdout, r.stdout


def test_missing_key_names_the_file(s):
    s.conf["broker"]["key"] = str(s.d / "nope.key")
    failed(s.check(), f"[broker] key {s.d}/nope.key: No such file or directory")


def test_key_of_another_certificate(s, pki):
    shutil.copy(pki.key("h1"), s.d / "server.key")
    failed(s.check(), f"[broker] key {s.d}/server.key: does not belong to "
           f"[broker] cert {s.d}/server.crt")


def test_not_a_key(s):
    (s.d / "server.key").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                    "-----END PRIVATE KEY-----\n")
    failed(s.check(), f"[broker] key {s.d}/server.key: not an unencrypted PEM private key")


def test_encrypted_key_is_refused_without_asking(s):
    enc = subprocess.run(["openssl", "pkey", "-in", str(s.d / "server.key"),
                          "-aes256", "-passout", "pass:secret"],
                         capture_output=True, check=True).stdout
    (s.d / "server.key").write_bytes(enc)
    r = s.check(stdin=subprocess.DEVNULL)
    failed(r, "not an unencrypted PEM private key")


def test_host_certificate_is_not_a_server_identity(s, pki):
    """A host's certificate connects, and then the ACL hands the server
    nothing: the CN must be srv:NAME."""
    shutil.copy(pki.cert("h1"), s.d / "server.crt")
    shutil.copy(pki.key("h1"), s.d / "server.key")
    failed(s.check(), f"[broker] cert {s.d}/server.crt: CN 'h1' is not a server's",
           "gen-pki --server NAME")


def test_certificate_from_another_ca(s, tmp_path):
    stranger = gen_pki(tmp_path / "other-pki", servers=["main"])
    shutil.copy(stranger.cert("srv:main"), s.d / "server.crt")
    shutil.copy(stranger.key("srv:main"), s.d / "server.key")
    failed(s.check(), f"[broker] cert {s.d}/server.crt: not issued by [broker] ca")


def test_no_ca(s):
    del s.conf["broker"]["ca"]
    failed(s.check(), "[broker] ca is not set")


def test_ca_not_a_certificate(s):
    (s.d / "ca.crt").write_text("hello\n")
    failed(s.check(), f"[broker] ca {s.d}/ca.crt: no PEM certificate in it")


def test_no_client_certificate_for_tls(s):
    del s.conf["broker"]["cert"], s.conf["broker"]["key"]
    failed(s.check(), "[broker] cert and key are not set")
    s.conf["broker"]["cert"] = str(s.d / "server.crt")
    failed(s.check(), "[broker] cert is set but key is not")


@pytest.mark.parametrize("uri", ["ssl://localhost:88830", "ssl://localhost:", "ssl://:8883",
                                 "ssl://mq;8883", "ssl://[::1:8883"])
def test_malformed_broker_uri(s, uri):
    s.conf["broker"]["uri"] = uri
    failed(s.check(), f"[broker] uri: bad uri '{uri}'", str(s.path))


def test_archive_folder_missing(s):
    s.conf["archive"]["url"] = str(s.d / "gone" / "archive.db")
    failed(s.check(), f"[archive] url {s.d}/gone/archive.db: folder {s.d}/gone: "
           "No such file or directory")


def test_archive_relative_path(s):
    s.conf["archive"]["url"] = "archive.db"
    failed(s.check(), "[archive] url archive.db: want an absolute path")


def test_archive_bad_postgresql_url(s):
    s.conf["archive"]["url"] = "postgresql://db.example/muster?sslmod=require"
    failed(s.check(), "[archive] url: bad PostgreSQL URL", "sslmod")
    s.conf["archive"]["url"] = "postgresql://muster@db.example/muster?sslmode=require"
    assert s.check().returncode == 0, "a well-formed URL passes: the database may be down"


def test_every_problem_is_reported_at_once(s):
    s.conf["broker"]["key"] = str(s.d / "nope.key")
    s.conf["archive"]["url"] = str(s.d / "gone" / "archive.db")
    out = failed(s.check(), "[broker] key", "[archive] url")
    assert out.count("muster-server: ") >= 2


# ---- as the service's user -----------------------------------------------


def test_other_user_files_as_documented_are_ok(other):
    r = other.check()
    assert r.returncode == 0, r.stderr
    assert f"ok as user {OTHER}" in r.stdout, r.stdout


def test_key_only_root_can_read(other):
    """The case of issue 19: ok before, then the daemon failed with
    `TCP/TLS connect failure (reason 0)`."""
    key = other.d / "server.key"
    os.chown(key, 0, 0)
    os.chmod(key, 0o600)
    failed(other.check(), f"[broker] key {key}: cannot be read by user {OTHER}: "
           f"Permission denied (install it 0640 root:{other.group})")


def test_archive_folder_not_writable(other):
    os.chown(other.d / "state", 0, 0)
    os.chmod(other.d / "state", 0o755)
    failed(other.check(), f"folder {other.d}/state is not writable by user {OTHER}: "
           "Permission denied")


def test_archive_left_by_another_user(other):
    """The ownership flips of issue 19: an archive (or its WAL) written
    by root or by the agent's user."""
    wal = other.d / "state" / "archive.db-wal"
    wal.write_bytes(b"")
    os.chmod(wal, 0o644)
    failed(other.check(), f"{wal} is not writable by user {OTHER}: Permission denied")


def test_configuration_only_root_can_read(other):
    other.write()
    os.chown(other.path, 0, 0)
    os.chmod(other.path, 0o600)
    r = subprocess.run([str(SERVER_BIN), "--check-config", "-c", str(other.path)],
                       capture_output=True, text=True, timeout=30)
    failed(r, f"{other.path}: cannot open: Permission denied",
           f"user {OTHER} must read it")


def test_unknown_user(s):
    if not ROOT:
        pytest.skip("only root switches users (CI runs as root)")
    s.conf["server"]["user"] = "muster-no-such-user"
    failed(s.check(), "[server] user muster-no-such-user: no such user")


def test_run_as_the_service_user_itself(other):
    """As the unit's ExecStartPre runs it: as the user, no switching."""
    key = other.d / "server.key"
    os.chown(key, 0, 0)
    os.chmod(key, 0o600)
    failed(other.check(as_user=OTHER), f"[broker] key {key}: cannot be read by user {OTHER}")
    os.chown(key, 0, pwd.getpwnam(OTHER).pw_gid)
    os.chmod(key, 0o640)
    r = other.check(as_user=OTHER)
    assert r.returncode == 0, r.stderr


def test_trust_operators(s, keys):
    """[trust] operators (job announces): a folder of good keys passes; a
    missing folder, an empty one and a .pub that is not a key each fail,
    naming the key and the file."""
    ops = s.d / "operators"
    shutil.copytree(keys.operators_dir, ops)
    for f in ops.glob("*.key"):
        f.unlink()
    s.conf["trust"] = {"operators": str(ops)}
    r = s.check()
    assert r.returncode == 0, r.stderr
    (ops / "broken.pub").write_text("not a key\n")
    failed(s.check(), "[trust] operators", "broken.pub")
    for f in ops.iterdir():
        f.unlink()
    failed(s.check(), f"[trust] operators {ops}: no NAME.pub key in it")
    s.conf["trust"] = {"operators": str(s.d / "nosuch")}
    failed(s.check(), f"[trust] operators {s.d}/nosuch")


def test_signing_pair_of_halts(s, pki):
    """Issue 25: the pair release halts are signed with.  Derived from
    [broker] and absent: a note, still ok.  Present next to the TLS pair:
    ok.  Named in the file: it must load, and a TLS pair is refused (no
    signing usage)."""
    r = s.check()
    assert r.returncode == 0 and "no signing pair" in r.stdout, r.stdout + r.stderr
    for name, src in (("server.sign.crt", pki.dir / "srv" / "main.sign.crt"),
                      ("server.sign.key", pki.dir / "srv" / "main.sign.key")):
        shutil.copy(src, s.d / name)
    r = s.check()
    assert r.returncode == 0 and "no signing pair" not in r.stdout, r.stdout + r.stderr
    s.conf["server"]["sign_cert"] = str(s.d / "server.crt")
    s.conf["server"]["sign_key"] = str(s.d / "server.key")
    failed(s.check(), "[server] sign_key/sign_cert")
    s.conf["server"]["sign_cert"] = str(s.d / "server.sign.crt")
    s.conf["server"]["sign_key"] = str(s.d / "nope.key")
    failed(s.check(), "[server] sign_key/sign_cert", "nope.key")
