# SPDX-License-Identifier: Apache-2.0
"""file.check: facts about one path and the expectations asked for."""
import errno
import grp
import hashlib
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import FIXTURES, JOB_USER

HELLO = FIXTURES / "files" / "hello.txt"
HELLO_SHA256 = "4d1e42589b41bc093a390209395bd9cbb6b469069aa8f63ff0d70a88651e7d9e"
WRONG = "ab" * 32

# FIPS 180-4 / NIST example vectors, then lengths around the padding edges.
VECTORS = [
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abc",
     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    (b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
     b"hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    (b"a" * 1000000,
     "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]
EDGES = [55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 65535, 65536, 65537,
         200000]


def me():
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


@pytest.mark.parametrize("content,digest", VECTORS,
                         ids=["empty", "abc", "448bit", "896bit", "million"])
def test_sha256_vectors(run, tmp_path, content, digest):
    assert hashlib.sha256(content).hexdigest() == digest
    f = tmp_path / "v"
    f.write_bytes(content)
    r = run("file.check", path=str(f), sha256=digest)
    assert r.status == "pass", r
    assert r.data["sha256"] == digest
    assert r.data["ok"]["sha256"] is True


@pytest.mark.parametrize("size", EDGES)
def test_sha256_lengths(run, tmp_path, size):
    content = bytes((i * 7 + size) & 0xff for i in range(size))
    f = tmp_path / "e"
    f.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    r = run("file.check", path=str(f), sha256=digest.upper())
    assert r.status == "pass", r
    assert r.data["sha256"] == digest


def test_sha256_mismatch_fails(run):
    r = run("file.check", path=str(HELLO), sha256=WRONG)
    assert r.status == "fail", r
    assert r["reason"] == f"sha256 is {HELLO_SHA256}, expected {WRONG}"
    assert r.data["ok"] == {"exists": True, "sha256": False}


def test_facts(run, tmp_path):
    f = tmp_path / "facts"
    f.write_text("12345")
    os.chmod(f, 0o640)
    user, group = me()
    r = run("file.check", path=str(f))
    assert r.status == "pass", r
    d = r.data
    assert d["exists"] is True and d["type"] == "file"
    assert d["mode"] == "0640" and d["size"] == 5
    assert (d["owner"], d["group"]) == (user, group)
    assert (d["uid"], d["gid"]) == (os.getuid(), os.getgid())
    assert d["mtime"] == int(f.stat().st_mtime)
    assert r["summary"] == f"{f}: file 0640, 1 checks passed"


def test_all_expectations_pass(run, tmp_path):
    f = tmp_path / "all"
    f.write_text("listen 80;\nserver_name example;\n")
    os.chmod(f, 0o644)
    user, group = me()
    r = run("file.check", path=str(f), type="file", mode="0644", owner=user,
            group=os.getgid(), min_size=10, max_size=1000,
            contains="server_name", not_contains="autoindex on",
            sha256=hashlib.sha256(f.read_bytes()).hexdigest())
    assert r.status == "pass", r
    assert all(r.data["ok"].values()) and len(r.data["ok"]) == 10, r.data


def test_mode_as_a_number(run, tmp_path):
    """mode may arrive as the integer 644 (mode:=644) as well as a string."""
    f = tmp_path / "m"
    f.write_text("x")
    os.chmod(f, 0o644)
    assert run("file.check", "mode:=644", path=str(f)).status == "pass"
    assert run("file.check", "mode=0644", path=str(f)).status == "pass"
    assert run("file.check", "mode:=\"0644\"", path=str(f)).status == "pass"
    assert run("file.check", "mode:=640", path=str(f)).status == "fail"


def test_each_failure_reported(run, tmp_path):
    f = tmp_path / "bad"
    f.write_text("PermitRootLogin yes\n")
    os.chmod(f, 0o666)
    r = run("file.check", path=str(f), type="dir", mode="0644",
            owner="nosuchuser-muster", group="12345", min_size=100,
            max_size=1, contains="Port 22", not_contains="PermitRootLogin yes")
    assert r.status == "fail", r
    ok = r.data["ok"]
    assert ok.pop("exists") is True
    assert not any(ok.values()) and len(ok) == 8, ok
    reason = r["reason"]
    assert "type is file, expected dir" in reason
    assert "mode is 0666, expected 0644" in reason
    assert "expected nosuchuser-muster (unknown here)" in reason
    assert "expected 12345" in reason
    assert "size is 20, expected at least 100" in reason
    assert "does not contain \"Port 22\"" in reason
    assert "contains \"PermitRootLogin yes\"" in reason
    assert r["summary"] == f"{f}: 8 of 9 checks failed"
    assert sum(line.startswith("FAIL ") for line in r["output"]) == 8


def test_missing(run, tmp_path):
    r = run("file.check", path=str(tmp_path / "none"))
    assert r.status == "fail", r
    assert r["reason"] == f"{tmp_path / 'none'} does not exist"
    assert r.data["exists"] is False
    r = run("file.check", path=str(tmp_path / "none"), exists=False)
    assert r.status == "pass", r
    r = run("file.check", path=str(tmp_path / "none" / "deeper"),
            exists="false")
    assert r.status == "pass", r


def test_present_but_should_not_be(run):
    r = run("file.check", path=str(HELLO), exists=False, mode="0000")
    assert r.status == "fail", r
    assert r["reason"] == f"{HELLO} exists"
    assert "mode" not in r.data["ok"]


def test_dir_and_links(run, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("d")
    (tmp_path / "dangling").symlink_to("nowhere")
    assert run("file.check", path=str(tmp_path / "d"), type="dir").status \
        == "pass"
    # Links are followed, unless the link itself is asked about.
    r = run("file.check", path=str(tmp_path / "l"), type="dir")
    assert r.status == "pass", r
    assert r.data["link_target"] == "d"
    r = run("file.check", path=str(tmp_path / "l"), type="link")
    assert r.status == "pass", r
    assert r.data["type"] == "link"
    r = run("file.check", path=str(tmp_path / "dangling"))
    assert r.status == "fail", r
    r = run("file.check", path=str(tmp_path / "dangling"), type="link")
    assert r.status == "pass", r


def test_fifo_does_not_hang(run, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = run("file.check", path=str(fifo), type="fifo", sha256=WRONG,
            contains="x")
    assert r.status == "fail", r
    assert r.data["ok"] == {"exists": True, "type": True, "sha256": False,
                            "contains": False}
    assert "not a regular file" in r["reason"]


def test_contains_past_max_read(run, tmp_path):
    f = tmp_path / "big"
    f.write_bytes(b"head\n" + b"." * 5000 + b"tail\n")
    r = run("file.check", path=str(f), contains="head", max_read=100)
    assert r.status == "pass", r
    # Not found in the part read: undecided, so an error, not a fail.
    r = run("file.check", path=str(f), contains="tail", max_read=100)
    assert r.status == "error", r
    assert "larger than max_read" in r["reason"]
    r = run("file.check", path=str(f), not_contains="head", max_read=100)
    assert r.status == "fail", r
    assert run("file.check", path=str(f), contains="tail").status == "pass"


def test_unreadable_is_error(run):
    """A file the module may not read (EACCES) is an error, not a fail: it
    cannot tell whether the file matches.  Modules meet this as musterd
    runs them, as muster-job: as root the runner is started as that user
    (root would read anything).  The folder is outside pytest's 0700 ones,
    so only the file's own mode is in the way."""
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(JOB_USER)
        except KeyError:
            pytest.skip(f"no user {JOB_USER} (scripts/setup creates it)")
        user = JOB_USER
    d = Path(tempfile.mkdtemp(prefix="muster-file-check-"))
    try:
        os.chmod(d, 0o755)
        f = d / "secret"
        f.write_text("x")
        os.chmod(f, 0)
        r = run("file.check", path=str(f), sha256=WRONG, _user=user)
        assert r.status == "error", r
        assert r["reason"] == f"sha256: {os.strerror(errno.EACCES)}", r
        # The same file readable, the same user: a plain fail.
        os.chmod(f, 0o644)
        r = run("file.check", path=str(f), sha256=WRONG, _user=user)
        assert r.status == "fail", r
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("args,reason", [
    ({}, 'argument "path" is required'),
    ({"path": ""}, 'argument "path" is required'),
    ({"path": "/etc", "mode": "9999"}, 'mode must be octal, like "0644"'),
    ({"path": "/etc", "mode": True}, 'argument "mode" must be a string'),
    ({"path": "/etc", "mode": 9}, 'mode must be octal, like "0644"'),
    ({"path": "/etc", "type": "folder"}, "type must be one of file, dir, "
     "link, fifo, socket, block, char"),
    ({"path": "/etc", "sha256": "abc"}, "sha256 must be 64 hex digits"),
    ({"path": "/etc", "exists": "maybe"},
     'argument "exists" must be true or false'),
    ({"path": "/etc", "min_size": "1k"},
     'argument "min_size" must be an integer'),
])
def test_bad_arguments(run, args, reason):
    r = run("file.check", **args)
    assert r.status == "error", r
    assert r["reason"] == reason
