# SPDX-License-Identifier: Apache-2.0
"""Runner confinement (issue 9, design.md §8), with the real files.

As root, musterd starts every runner as a uid of its own from [limits]
job_uids (or as the run_as user, muster-job, with job_uids = none), with no
capabilities, NO_NEW_PRIVS and a seccomp filter, in a mount and IPC
namespace of its own (a private /tmp), its children in a PID namespace of
their own.  A hostile test module (tests/modules/
escape.c) tries what a module must not do; each attempt is reported in the
result's data.  The agent of those tests lives in a folder anyone may walk
through (not pytest's 0700 tmp folder), so a refusal comes from the file's
own owner and mode, not from a folder on the way; and outside /tmp, which
a runner sees a private one of.
"""
import errno
import grp
import json
import os
import pty
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from muster_fixtures import (
    Agent, RUNNER, TEST_MODULES_DIR, assert_no_sanitizer_reports, install_modules, is_sanitized,
    collect_results, module_payloads, new_job, run_job, send_job, topic, wait_until,
    watch_results,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="runner confinement needs root (run_as users, PID namespaces); "
           "CI runs the suite as root")

RUN_AS = "muster-job"
JOB_UIDS = range(60928, 61184)		# the default [limits] job_uids
# Folders the tests and the runners share: not /tmp, /var/tmp nor
# /dev/shm (a runner has its own), and reachable by any uid.
OPEN_BASE = "/run"


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


@pytest.fixture
def op(mqtt):
    return mqtt("op:alice")


@pytest.fixture
def open_dir():
    """A folder anyone may write (the module's pid files, the control)."""
    d = Path(tempfile.mkdtemp(prefix="muster-open-", dir=OPEN_BASE))
    os.chmod(d, 0o1777)
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


@pytest.fixture
def open_agent(broker, keys, pki):
    """h1 with its folder, state and TLS files where any user can walk (o+x
    only): what a runner meets is then decided by each file's own mode."""
    made = []

    def make(writable=None):
        d = Path(tempfile.mkdtemp(prefix="muster-open-agent-", dir=OPEN_BASE))
        os.chmod(d, 0o711)
        tls = d / "tls"
        tls.mkdir(mode=0o711)
        # The TLS pair and, where musterd looks by default (.sign before
        # the extension), the host signing pair.
        for name in ("h1", "h1.sign"):
            src = pki.cert("h1").with_name(f"{name}.crt")
            shutil.copy(src.with_suffix(".key"), tls / f"{name}.key")
            os.chmod(tls / f"{name}.key", 0o600)
            shutil.copy(src, tls / f"{name}.crt")
            os.chmod(tls / f"{name}.crt", 0o644)
        extra = {"broker": {"key": str(tls / "h1.key"), "cert": str(tls / "h1.crt")}}
        if writable:
            extra["limits"] = {"writable": str(writable)}
        a = Agent("h1", broker, keys, d / "agent", wake_port=0, groups=["web"],
                  extra=extra)
        os.chmod(d / "agent", 0o711)
        made.append((a, d))
        install_modules(a, "escape", src=TEST_MODULES_DIR)
        return a.start()

    yield make
    for a, d in made:
        a.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def start(agents, name="h1", writable=None, **kw):
    """writable: a folder jobs may write ([limits] writable): everything
    else but their private tmpfs is read-only for a job's own uid."""
    if writable is not None:
        kw["limits"] = dict(kw.get("limits") or {}, writable=str(writable))
    a = agents(name, wake_port=0, **kw)
    install_modules(a, "escape", "hostile", src=TEST_MODULES_DIR)
    return a.start()


def escape(op, operator, args, host="h1", timeout=20, **fields):
    body = new_job("run", f"host/{host}", module="escape", args=args, **fields)
    got = run_job(op, operator, body, [host], timeout=timeout)
    assert host in got, f"no result for {body['id']}"
    return got[host]


def pid_alive(pid):
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return st.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_runner_user_no_capabilities_seccomp(agents, op, operator):
    a = start(agents)
    r = escape(op, operator, {})
    assert r["status"] == "pass", r
    d = r["data"]
    assert d["id"]["uid"] in JOB_UIDS and d["id"]["euid"] == d["id"]["uid"], d
    assert d["status"]["Seccomp"] == "2", d		# filter mode
    assert d["status"]["NoNewPrivs"] == "1", d
    assert int(d["status"]["CapEff"], 16) == 0, d
    assert "seccomp filter" in a.log() and "PID namespace" in a.log()


def test_runner_cannot_read_the_host_key(open_agent, op, operator):
    a = open_agent()
    key, cert = Path(a.conf["broker"]["key"]), Path(a.conf["broker"]["cert"])
    sign_key = key.with_name("h1.sign.key")
    assert sign_key.exists()
    for k in (key, sign_key):
        r = escape(op, operator, {"read": str(k)})
        assert r["data"]["read"] == {"ok": False, "errno": errno.EACCES}, (k, r)
    # Control: the certificate next to it (0644) is readable.
    r = escape(op, operator, {"read": str(cert)})
    assert r["data"]["read"] == {"ok": True, "errno": 0}, r


def test_runner_cannot_write_cache_seen_spool_journal(open_agent, op, operator, mqtt,
                                                      keys, open_dir):
    a = open_agent(writable=open_dir)
    # A real cache entry: publish a module and run it once.
    so = (TEST_MODULES_DIR / "escape.so").read_bytes()
    ptr, art, sha = module_payloads(keys, so, "escape", "1.0.0", 1)
    pub = mqtt("pub:release")
    pub.publish(topic("modules", "escape", sha), art, retain=True)
    pub.publish(topic("modules", "escape"), ptr, retain=True)
    wait_until(lambda: escape(op, operator, {})["module_sha256"] == sha, 15,
               what="the signed build to be fetched")
    st = a.state_dir
    os.chmod(st, 0o711)		# the agent's own modes inside it decide
    targets = {
        "module cache": st / "net" / "modcache" / f"{sha}.so",
        "cache folder": st / "net" / "modcache" / "new.so",
        "seen-set": st / "seen",		# the journal of runs too
        "spool": st / "net" / "spool" / "new.res",
    }
    for what, path in targets.items():
        r = escape(op, operator, {"write": str(path)})
        assert r["data"]["write"]["ok"] is False, (what, r)
        assert r["data"]["write"]["errno"] == errno.EACCES, (what, r)
        assert r["status"] == "pass", (what, r)
    assert not (st / "net" / "modcache" / "new.so").exists()
    # Control: a folder anyone may write.
    r = escape(op, operator, {"write": str(open_dir / "ok")})
    assert r["data"]["write"]["ok"] is True, r


def test_ptrace_mount_unshare_are_denied(agents, op, operator):
    start(agents)
    r = escape(op, operator, {"ptrace": True, "mount": True, "unshare": True})
    d = r["data"]
    assert r["status"] == "pass", r
    for what in ("ptrace", "mount", "unshare"):
        assert d[what]["ok"] is False, (what, d)
    assert d["mount"]["errno"] == errno.EPERM, d		# seccomp, not a lack of rights
    assert d["unshare"]["errno"] == errno.EPERM, d
    if not is_sanitized():				# LeakSanitizer needs ptrace
        assert d["ptrace"]["errno"] == errno.EPERM, d


@pytest.mark.parametrize("how", ["returns", "times out", "is cancelled"])
def test_nothing_a_module_started_survives_its_job(agents, op, operator, open_dir,
                                                   how):
    start(agents, writable=open_dir)
    pidfile = open_dir / "escaped.pid"
    args = {"escape": str(pidfile)}
    fields = {}
    if how != "returns":
        args["sleep"] = 30000
        fields["timeout_ms"] = 1500 if how == "times out" else 30000
    body = new_job("run", "host/h1", module="escape", args=args, **fields)
    if how == "is cancelled":
        from muster_fixtures import send_job, watch_results, collect_results
        watch_results(op, body["id"])
        send_job(op, operator, body)
        wait_until(pidfile.exists, 10, what="the grandchild to start")
        cancel = new_job("cancel", "host/h1", cancel=body["id"])
        assert run_job(op, operator, cancel, ["h1"], 10)["h1"]["status"] == "pass"
        r = collect_results(op, body["id"], ["h1"], 10)["h1"]
        assert r["status"] == "cancelled", r
    else:
        r = run_job(op, operator, body, ["h1"], 20)["h1"]
        assert r["status"] == ("pass" if how == "returns" else "timeout"), r
    pid = int(pidfile.read_text())
    # It did leave our process group and session...
    # ...and is gone with its job all the same.
    wait_until(lambda: not pid_alive(pid), 5,
               what=f"the escaped grandchild {pid} to be killed")


def test_runner_behind_a_closed_folder_still_runs(agents, op, operator, tmp_path):
    # The runner's user cannot walk to a runner kept in a root-only folder;
    # the parent opens the file and the child executes that descriptor.
    from muster_fixtures import RUNNER
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    runner = private / "muster-runner"
    runner.write_bytes(Path(RUNNER).read_bytes())
    os.chmod(runner, 0o755)
    a = agents("h1", wake_port=0, runner=runner)
    install_modules(a, "escape", src=TEST_MODULES_DIR)
    a.start()
    r = escape(op, operator, {})
    assert r["status"] == "pass", r
    assert r["data"]["id"]["uid"] in JOB_UIDS, r


def test_a_module_cannot_type_into_musterds_terminal(agents, op, operator, open_dir):
    """musterd --foreground in a shell: its terminal is the shell's.  A
    runner has a session of its own, so no controlling terminal to open,
    and nothing to type into (issue 22, item 5)."""
    master, slave = pty.openpty()
    try:
        a = agents("h1", wake_port=0, limits={"writable": str(open_dir)})
        a.tty = slave
        install_modules(a, "escape", src=TEST_MODULES_DIR)
        a.start()
        # Control: the terminal is musterd's (its session's foreground).
        assert os.tcgetpgrp(master) == a.pid
        pidfile = open_dir / "tty.pid"
        r = escape(op, operator, {"tty": True, "pidfile": str(pidfile)})
        d = r["data"]
        assert pidfile.exists(), r
        runner = int(pidfile.read_text())
        assert d["id"]["sid"] == runner != a.pid, (runner, a.pid, d)
        assert d["tty"] == {"ok": False, "errno": errno.ENXIO}, d
        assert d["tiocsti"]["ok"] is False, d
        assert r["status"] == "pass", r
        assert os.tcgetpgrp(master) == a.pid		# still musterd's
    finally:
        os.close(master)
        os.close(slave)


def test_tiocsti_is_denied_by_the_filter(agents, op, operator):
    # A pty of the module's own, its child's controlling terminal: the
    # kernel would let it type there; the filter says EPERM.
    start(agents)
    r = escape(op, operator, {"ownpty": True})
    d = r["data"]
    assert "setup" not in d.get("ownpty", {}), d
    assert d["ownpty"] == {"ok": False, "errno": errno.EPERM}, d


@pytest.mark.parametrize("uids", ["own", "shared"])
def test_a_job_cannot_read_another_jobs_memory_or_environment(agents, op, operator,
                                                              open_dir, uids):
    """Two concurrent jobs, with a uid each (the default) or as the same
    user (job_uids = none): the other job's runner is not even in the job's
    /proc (a procfs of its own with hidepid=invisible, which hides what
    the reader may not ptrace: another uid's processes, and a runner, which
    is not dumpable, from its own uid too) (issue 22, item 6)."""
    start(agents, writable=open_dir,
          **({"limits": {"job_uids": "none"}} if uids == "shared" else {}))
    pidfile = open_dir / "first.pid"
    first = new_job("run", "host/h1", module="escape",
                    args={"pidfile": str(pidfile), "sleep": 30000}, timeout_ms=30000)
    watch_results(op, first["id"])
    send_job(op, operator, first)
    wait_until(pidfile.exists, 10, what="the first job to start")
    pid = int(pidfile.read_text())
    r = escape(op, operator, {"peek": pid})
    d = r["data"]
    # Control: the first job is there and alive (the host's /proc).
    assert pid_alive(pid)
    assert d["peek"]["status"] == {"ok": False}, d
    assert d["peek"]["environ"] == {"ok": False, "errno": errno.ENOENT}, d
    assert d["peek"]["mem"] == {"ok": False, "errno": errno.ENOENT}, d
    assert d["id"]["dumpable"] == 0, d
    cancel = new_job("cancel", "host/h1", cancel=first["id"])
    assert run_job(op, operator, cancel, ["h1"], 10)["h1"]["status"] == "pass"
    r1 = collect_results(op, first["id"], ["h1"], 10)["h1"]
    assert r1["status"] == "cancelled", r1


# ---- one job against another (issue 22, item 6) ----------------------------

def hostile(op, operator, args, host="h1", timeout=20, **fields):
    body = new_job("run", f"host/{host}", module="hostile", args=args, **fields)
    got = run_job(op, operator, body, [host], timeout=timeout)
    assert host in got, f"no result for {body['id']}"
    return got[host]


def test_run_as_muster_job_when_job_uids_is_none(agents, op, operator):
    # The shared user is still there for whoever turns per-job uids off.
    a = start(agents, limits={"job_uids": "none"})
    r = escape(op, operator, {})
    assert r["status"] == "pass", r
    assert r["data"]["id"]["uid"] == pwd.getpwnam(RUN_AS).pw_uid, r
    assert "user muster-job unless" in a.log()


def test_a_job_uid_range_with_a_user_in_it_is_refused(agents):
    # A uid the user database knows would be shared with that user.
    uid = pwd.getpwnam(RUN_AS).pw_uid
    a = agents("h1", wake_port=0, limits={"job_uids": f"{uid}-{uid + 300}"})
    a.start(wait_online=False)
    assert a.wait_exit(10) != 0
    assert f"uid {uid} is user '{RUN_AS}'" in a.log(), a.log()[-2000:]


# A range of its own for the one test that writes the machine's real
# /run/userdb: other tests' agents (default range) never see its records.
# Below the default, above login.defs' UID_MAX, and outside systemd's
# DynamicUser= range (61184-65519).
NAMED_UIDS = range(60900, 60908)
USERDB = Path("/run/userdb")


def nss_systemd():
    """Why the user database would not read /run/userdb, or None."""
    lines = Path("/etc/nsswitch.conf").read_text().splitlines()
    for db in ("passwd", "group"):
        words = next((ln.split("#")[0].split()[1:] for ln in lines
                      if ln.startswith(db + ":")), [])
        if "systemd" not in words:
            return f"no \"systemd\" on the {db} line of /etc/nsswitch.conf"
    if not any(Path(d, "libnss_systemd.so.2").exists()
               for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64",
                         "/usr/lib", "/lib")):
        return "libnss-systemd is not installed"
    return None


@pytest.fixture
def real_userdb():
    """The machine's /run/userdb, left as it was: the records of NAMED_UIDS
    removed after the test, the folder too if the test made it."""
    why = nss_systemd()
    if why:
        pytest.skip(why)
    for u in NAMED_UIDS:
        for look in (pwd.getpwuid, grp.getgrgid):
            try:
                look(u)
                pytest.skip(f"id {u} is taken on this machine")
            except KeyError:
                pass
    made = not USERDB.exists()
    yield USERDB
    for u in NAMED_UIDS:
        for kind in ("user", "group"):
            for name in (f"muster-job-{u}.{kind}", f"{u}.{kind}"):
                (USERDB / name).unlink(missing_ok=True)
    if made and USERDB.exists() and not any(USERDB.iterdir()):
        USERDB.rmdir()


def test_job_uids_have_names_in_the_user_database(agents, op, operator, real_userdb):
    """As root musterd names each job uid through nss-systemd, as systemd
    names a DynamicUser=: a JSON user and group record per uid of the range
    in /run/userdb.  The user database answers for the whole range, a job
    sees its own uid by name (dbus-daemon drops a connection whose uid it
    cannot look up: tests/install/test_systemd.py), and a restart takes the
    range's own names for no one else's."""
    first, last = NAMED_UIDS[0], NAMED_UIDS[-1]
    a = agents("h1", wake_port=0, limits={"job_uids": f"{first}-{last}"})
    a.env["MUSTER_TEST_USERDB_DIR"] = str(real_userdb)
    install_modules(a, "probe", src=TEST_MODULES_DIR)
    a.start()
    assert (f"job uids: {len(NAMED_UIDS)} user and group records muster-job-{first}..{last} "
            f"in {real_userdb}") in a.log(), a.log()[-2000:]
    assert "has no name" not in a.log()
    assert os.stat(real_userdb).st_mode & 0o777 == 0o755
    for u in NAMED_UIDS:
        pw, gr = pwd.getpwuid(u), grp.getgrgid(u)
        assert (pw.pw_name, pw.pw_gid, pw.pw_dir, pw.pw_shell) == \
            (f"muster-job-{u}", u, "/nonexistent", "/usr/sbin/nologin"), pw
        assert gr.gr_name == f"muster-job-{u}", gr
        assert pwd.getpwnam(f"muster-job-{u}").pw_uid == u
        assert os.stat(real_userdb / f"muster-job-{u}.user").st_mode & 0o777 == 0o644

    # The job itself, as its own uid: `id` names it.
    body = new_job("run", "host/h1", module="probe", args={"cmd": ["id"]})
    r = run_job(op, operator, body, ["h1"], timeout=20)["h1"]
    assert r["status"] == "pass", r
    out = r["data"]["cmd"]["out"]
    m = re.match(r"uid=(\d+)\(muster-job-(\d+)\) gid=(\d+)\(muster-job-(\d+)\)", out)
    assert m, out
    assert int(m.group(1)) in NAMED_UIDS and len(set(m.groups())) == 1, out

    # Its own records from the first start: no user of the range.
    a.restart()
    assert "is user 'muster-job-" not in a.log(), a.log()[-2000:]


def test_two_jobs_reach_nothing_of_each_other(agents, op, operator, open_dir):
    """A victim job keeps a dumpable child with a secret in its environment
    and a file in its /tmp; a second job, at the same time, tries to read
    them and to signal it."""
    start(agents, writable=open_dir)
    name = f"victim-{uuid.uuid4().hex}"
    pidfile = open_dir / "victim.pid"
    victim = new_job("run", "host/h1", module="hostile", timeout_ms=30000,
                     args={"tmpfile": name, "child_env": "hunter2",
                           "pidfile": str(pidfile), "sleep": 30000})
    watch_results(op, victim["id"])
    send_job(op, operator, victim)
    try:
        wait_until(pidfile.exists, 10, what="the victim's child to start")
        pid = int(pidfile.read_text())
        # Controls: the secret is there to take, and the file is written
        # (in the victim's /tmp, not the host's).
        assert b"MUSTER_SECRET=hunter2" in Path(f"/proc/{pid}/environ").read_bytes()
        victim_uid = os.stat(f"/proc/{pid}").st_uid
        assert not (Path("/tmp") / name).exists()
        r = hostile(op, operator, {"peek": pid, "signal": pid, "tmpread": name})
        d = r["data"]
        # Control: its own child's environ and mem it reads...
        assert d["own_environ"] == {"ok": True, "errno": 0}, d
        assert d["own_mem"] == {"ok": True, "errno": 0}, d
        # ...not the other job's.
        # Not even listed: the job's /proc hides other uids' processes.
        assert d["environ"] == {"ok": False, "errno": errno.ENOENT}, d
        assert d["mem"] == {"ok": False, "errno": errno.ENOENT}, d
        assert d["tmpread"] == {"ok": False, "errno": errno.ENOENT}, d
        # The uid (EPERM), or: /proc/PID is not there to open a pidfd of.
        assert d["kill"]["ok"] is False and d["kill"]["errno"] in (
            errno.EPERM, errno.ESRCH), d
        assert d["pidfd"]["ok"] is False and d["pidfd"]["errno"] in (
            errno.EPERM, errno.ESRCH, errno.EINVAL, errno.ENOENT), d
        assert r["status"] == "pass", r
        assert victim_uid in JOB_UIDS and d["id"]["uid"] in JOB_UIDS, (victim_uid, d)
        assert d["id"]["uid"] != victim_uid and d["id"]["gid"] != victim_uid, d
        assert pid_alive(pid)
    finally:
        (Path("/tmp") / name).unlink(missing_ok=True)	# if it did get out
        cancel = new_job("cancel", "host/h1", cancel=victim["id"])
        assert run_job(op, operator, cancel, ["h1"], 10)["h1"]["status"] == "pass"
    r1 = collect_results(op, victim["id"], ["h1"], 10)["h1"]
    assert r1["status"] == "cancelled", r1
    wait_until(lambda: not pid_alive(pid), 5, what="the victim's child to go")


def landlock_abi():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(444, None, 0, 1)	# landlock_create_ruleset(VERSION)


@pytest.mark.skipif(landlock_abi() < 6, reason="Landlock scopes need Linux 6.12 "
                    "(ABI 6); older kernels leave abstract sockets and signals "
                    "to the uids (docs/security.md)")
def test_jobs_as_one_user_reach_no_abstract_socket_or_signal(agents, op, operator,
                                                            open_dir):
    """Each runner gets a Landlock domain of its own, scoped (issue 22):
    with job_uids = none, two jobs share a uid, so only the scope keeps the
    second from signalling the first's processes or connecting to the
    abstract Unix socket it listens on; nor can a job reach an abstract
    socket of the host's.  Controls: the victim's socket and child are
    there; a job connects to its own socket.  On main before this change
    kill() and both connects succeeded (same uid, one network namespace)."""
    import socket as pysocket
    start(agents, writable=open_dir, limits={"job_uids": "none"})
    name = f"muster-victim-{uuid.uuid4().hex[:12]}"
    host_name = f"muster-host-{uuid.uuid4().hex[:12]}"
    host_sock = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    host_sock.bind("\0" + host_name)
    host_sock.listen(4)
    pidfile = open_dir / "victim.pid"
    victim = new_job("run", "host/h1", module="hostile", timeout_ms=30000,
                     args={"abstract": name, "child_env": "x", "pidfile": str(pidfile),
                           "sleep": 30000})
    watch_results(op, victim["id"])
    send_job(op, operator, victim)
    try:
        wait_until(pidfile.exists, 10, what="the victim's child to start")
        pid = int(pidfile.read_text())
        # Controls: the victim's socket is there (the host connects to it),
        # and its child runs as the same uid as the next job.
        def reachable():
            with pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM) as probe:
                return probe.connect_ex("\0" + name) == 0
        wait_until(reachable, 10, what="the victim's abstract socket")
        r = hostile(op, operator, {"signal": pid, "connect": name})
        d = r["data"]
        assert d["id"]["uid"] == os.stat(f"/proc/{pid}").st_uid, d
        assert d["own_connect"] == {"ok": True, "errno": 0}, d
        assert d["connect"] == {"ok": False, "errno": errno.EPERM}, d
        assert d["kill"]["ok"] is False and d["kill"]["errno"] in (
            errno.EPERM, errno.ESRCH), d
        assert d["pidfd"]["ok"] is False, d
        r = hostile(op, operator, {"connect": host_name})
        assert r["data"]["connect"] == {"ok": False, "errno": errno.EPERM}, r["data"]
        assert pid_alive(pid)
    finally:
        host_sock.close()
        cancel = new_job("cancel", "host/h1", cancel=victim["id"])
        assert run_job(op, operator, cancel, ["h1"], 10)["h1"]["status"] == "pass"
    r1 = collect_results(op, victim["id"], ["h1"], 10)["h1"]
    assert r1["status"] == "cancelled", r1


def test_a_finished_jobs_tmp_is_gone(agents, op, operator):
    start(agents)
    name = f"left-{uuid.uuid4().hex}"
    try:
        r = hostile(op, operator, {"tmpfile": name})
        assert r["data"]["tmpfile"] == {"ok": True, "errno": 0}, r
        assert not (Path("/tmp") / name).exists()
        r = hostile(op, operator, {"tmpread": name})
        assert r["data"]["tmpread"] == {"ok": False, "errno": errno.ENOENT}, r
        # Control: a job reads its own /tmp file.
        r = hostile(op, operator, {"tmpfile": name, "tmpread": name})
        assert r["data"]["tmpread"] == {"ok": True, "errno": 0}, r
    finally:
        (Path("/tmp") / name).unlink(missing_ok=True)


def test_a_fork_bomb_stops_at_the_jobs_own_limit(agents, op, operator):
    a = start(agents)
    r = hostile(op, operator, {"forkbomb": 400}, timeout=60)
    d = r["data"]
    # [limits] processes (128): the runner and its children count.
    assert d["forkbomb"]["errno"] == errno.EAGAIN, d
    assert 64 < d["forkbomb"]["children"] < 128, d
    # The limit was the job's own: the agent answers, and the next job
    # (another uid) forks as it likes.
    body = new_job("ping", "host/h1")
    t0 = time.monotonic()
    got = run_job(op, operator, body, ["h1"], timeout=5)
    assert got.get("h1", {}).get("summary") == "pong", a.log()[-3000:]
    assert time.monotonic() - t0 < 5
    r = hostile(op, operator, {"forkbomb": 20})
    assert r["data"]["forkbomb"] == {"children": 20, "errno": 0}, r


# ---- the same verdict under `muster-runner --run` as on a host (issue 23) ----

def laptop_local(args, *extra):
    """`muster-runner --run laptop.so --json` as root: confined by default."""
    argv = [str(RUNNER), "--run", str(TEST_MODULES_DIR / "laptop.so"), "--json", *extra]
    argv += [f"{k}:={json.dumps(v)}" for k, v in args.items()]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=30)
    out = json.loads(r.stdout)
    out["stderr"] = r.stderr
    return out


def laptop_host(op, operator, args, **fields):
    body = new_job("run", "host/h1", module="laptop", args=args, **fields)
    got = run_job(op, operator, body, ["h1"], timeout=20)
    assert "h1" in got, f"no result for {body['id']}"
    return got["h1"]


@pytest.fixture
def laptop_agent(agents):
    a = agents("h1", wake_port=0)
    install_modules(a, "laptop", src=TEST_MODULES_DIR)
    return a.start()


def test_a_blocked_call_is_named_locally_and_on_a_host(laptop_agent, op, operator):
    # adjtimex(2) only reads here, and root may make it: only the filter
    # refuses it.  glibc makes it as clock_adjtime.
    local = laptop_local({"adjtimex": True})
    host = laptop_host(op, operator, {"adjtimex": True})
    for r in (local, host):
        assert r["status"] == "error", (r, r.get("output"))
        assert re.match(r"blocked system call: (adjtimex|clock_adjtime) ", r["reason"]), r
        assert "Operation not permitted" in r["reason"], r
    assert local["reason"] == host["reason"]


def test_an_unreadable_file_is_unreadable_locally_and_on_a_host(laptop_agent, op,
                                                                 operator, open_dir):
    secret = open_dir / "secret"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    # Root could read it; the job's uid cannot, here as on a host.
    local = laptop_local({"read": str(secret)})
    host = laptop_host(op, operator, {"read": str(secret)})
    for r in (local, host):
        assert r["status"] == "error", r
        assert r["reason"] == f"{secret}: Permission denied", r
    # --no-confine is the unconfined run, for debugging.
    assert laptop_local({"read": str(secret)}, "--no-confine")["status"] == "pass"


def test_abort_is_sigabrt_locally_and_on_a_host(laptop_agent, op, operator):
    # The runner is no PID namespace's init: abort() is SIGABRT, not the
    # SIGSEGV of glibc's fallback when an init ignores its own SIGABRT.
    local = laptop_local({"abort": True})
    host = laptop_host(op, operator, {"abort": True})
    for r in (local, host):
        assert r["status"] == "crashed", r
        assert r["signal"] == signal.SIGABRT, r
    assert "signal 6 (Aborted)" in local["reason"] and "signal 6 (Aborted)" in host["reason"]


def test_a_hang_times_out_locally_and_on_a_host(laptop_agent, op, operator):
    local = laptop_local({"hang": True}, "--timeout", "1500ms")
    host = laptop_host(op, operator, {"hang": True}, timeout_ms=1500)
    assert local["status"] == host["status"] == "timeout", (local, host)


def test_run_says_what_it_could_not_apply_when_not_root():
    # As another user: the filter and limits hold, the rest is named.
    nobody = pwd.getpwnam("nobody")
    r = subprocess.run([str(RUNNER), "--run", str(TEST_MODULES_DIR / "laptop.so"),
                        "adjtimex=true"], capture_output=True, text=True, timeout=30,
                       user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
    assert "not root" in r.stderr and "no PID namespace" in r.stderr, r.stderr
    assert "blocked system call: " in r.stdout, r.stdout


def test_a_job_uid_writes_only_its_tmp_and_the_writable_folders(agents, op, operator,
                                                                 open_dir):
    """A job with a uid of its own owns no file, so outside its tmpfs it
    could write only where anyone may (/run/lock, a 1777 folder), and what
    it left there would keep its uid for the next job given the same one.
    For it every mount is read-only but its tmpfs and [limits] writable."""
    other = Path(tempfile.mkdtemp(prefix="muster-open-", dir=OPEN_BASE))
    os.chmod(other, 0o1777)
    try:
        start(agents, writable=open_dir)
        r = escape(op, operator, {"write": str(other / "left-behind")})
        assert r["data"]["write"] == {"ok": False, "errno": errno.EROFS}, r
        assert not (other / "left-behind").exists()
        # Controls: the folder in [limits] writable, and its own /tmp.
        r = escape(op, operator, {"write": str(open_dir / "kept")})
        assert r["data"]["write"] == {"ok": True, "errno": 0}, r
        r = escape(op, operator, {"write": "/tmp/own"})
        assert r["data"]["write"] == {"ok": True, "errno": 0}, r
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_a_run_as_user_keeps_the_hosts_files_writable(agents, op, operator, open_dir):
    # A user named by the policy or job_uids = none may own files it must
    # write: no read-only root for it.
    start(agents, limits={"job_uids": "none"})
    r = escape(op, operator, {"write": str(open_dir / "as-muster-job")})
    assert r["data"]["write"] == {"ok": True, "errno": 0}, r


def test_a_writable_folder_that_is_not_there_stops_the_agent(agents):
    # Every job would fail to start: say so once, at start.
    a = agents("h1", wake_port=0, limits={"writable": "/nonexistent/muster"})
    a.start(wait_online=False)
    assert a.wait_exit(10) != 0
    assert "[limits] writable: /nonexistent/muster: No such file" in a.log(), \
        a.log()[-2000:]
