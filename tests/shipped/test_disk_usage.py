# SPDX-License-Identifier: Apache-2.0
"""disk.usage: statvfs every real filesystem of a mounts file, or one path."""
import os

from conftest import FIXTURES

MOUNTS = str(FIXTURES / "mounts")


def pct(path):
    st = os.statvfs(path)
    used = st.f_blocks - st.f_bfree
    whole = used + st.f_bavail
    return -(-used * 100 // whole) if whole else 0


def test_fixture_mounts(run):
    r = run("disk.usage", mounts=MOUNTS, max_pct=100)
    assert r.status == "pass", r
    fs = r.data["filesystems"]
    # Pseudo and image filesystems are left out; "/" is "-" as a key.
    assert set(fs) == {"-", "nonexistent-muster\\x20fixture"}, fs
    root = fs["-"]
    assert root["mount"] == "/" and root["fstype"] == "ext4"
    assert root["device"] == "/dev/sda1"
    assert root["use_pct"] == pct("/")
    assert root["total_bytes"] >= root["used_bytes"] > 0
    # A mount that cannot be measured is told, not fatal.
    gone = fs["nonexistent-muster\\x20fixture"]
    assert gone["mount"] == "/nonexistent/muster fixture"
    assert gone["error"] == "No such file or directory"
    assert r.data["max_pct"] == 100


def test_over_the_limit_fails(run):
    r = run("disk.usage", mounts=MOUNTS, max_pct=0)
    assert r.status == "fail", r
    assert r["reason"] == f"/ is {pct('/')}% full (max 0%)"
    assert r["summary"] == "1 of 1 filesystems over the limit"


def test_all_includes_pseudo(run):
    r = run("disk.usage", mounts=MOUNTS, max_pct=100, all=True)
    assert r.status == "pass", r
    assert "run" in r.data["filesystems"]
    assert "proc" in r.data["filesystems"]


def test_hidden_mounts_counted_once(run, tmp_path):
    (tmp_path / "a").mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/x {tmp_path}/a xfs rw 0 0\n"
                      f"/dev/y {tmp_path}/a ext4 rw 0 0\n")
    r = run("disk.usage", mounts=str(mounts), max_pct=100)
    assert r.status == "pass", r
    (only,) = r.data["filesystems"].values()
    assert only["device"] == "/dev/y"


def test_escapes_and_key(run, tmp_path):
    odd = tmp_path / "with space" / "and-dash"
    odd.mkdir(parents=True)
    esc = str(odd).replace(" ", "\\040")
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/z {esc} ext4 rw 0 0\n")
    r = run("disk.usage", mounts=str(mounts), max_pct=100)
    assert r.status == "pass", r
    (key, fs), = r.data["filesystems"].items()
    assert fs["mount"] == str(odd)
    assert "/" not in key and key.endswith("with\\x20space-and\\x2ddash")


def test_one_path(run, tmp_path):
    r = run("disk.usage", path=str(tmp_path), max_pct=100)
    assert r.status == "pass", r
    assert r.data["path"] == str(tmp_path)
    assert r["summary"].startswith(f"{tmp_path} (")
    (fs,) = r.data["filesystems"].values()
    # The mount point holding the path, from /proc/self/mounts.
    assert str(tmp_path).startswith(fs["mount"]), fs
    assert fs["fstype"] != "?"
    r = run("disk.usage", path="/", max_pct=0)
    assert r.status == "fail", r


def test_path_missing_is_error(run):
    r = run("disk.usage", path="/nonexistent/muster")
    assert r.status == "error"
    assert r["reason"] == "/nonexistent/muster: No such file or directory"


def test_missing_mounts_is_error(run, tmp_path):
    r = run("disk.usage", mounts=str(tmp_path / "none"))
    assert r.status == "error"
    assert "No such file" in r["reason"]


def test_only_pseudo_is_error(run, tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")
    r = run("disk.usage", mounts=str(mounts))
    assert r.status == "error"
    assert r["reason"].startswith("no filesystem to check")


def test_bad_limits_are_errors(run):
    assert run("disk.usage", max_pct=101).status == "error"
    assert run("disk.usage", max_pct="ninety").status == "error"
    assert run("disk.usage", max_inodes_pct=200).status == "error"


def test_inodes_limit(run):
    r = run("disk.usage", path="/", max_pct=100, max_inodes_pct=0)
    st = os.statvfs("/")
    if st.f_files and st.f_files > st.f_ffree:
        assert r.status == "fail", r
        assert "of its inodes" in r["reason"]
    else:
        assert r.status == "pass", r


def test_this_host(run):
    r = run("disk.usage", max_pct=100)
    assert r.status == "pass", r
    assert r.data["filesystems"]
