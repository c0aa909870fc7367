# SPDX-License-Identifier: Apache-2.0
"""The installed packages under a real systemd as PID 1.

test_install.py runs the daemons as their units say through units.py,
which does not emulate SystemCallFilter=, RestrictNamespaces=,
PrivateDevices=, Restart= or the watchdog.  Here systemd itself does: the
same Debian 12 root (test_install.py's cached minbase, its helpers) gets
`systemd systemd-sysv dbus`, the .debs, Debian's mosquitto from the docs'
block, the README's files and settings; then it boots with systemd-nspawn
and the docs' systemctl commands run in it for real (`systemctl restart
mosquitto`, `musterd --check-config && systemctl enable --now musterd`,
the same for muster-server).  The installed CLI, inside, runs `muster
ping`, `muster run os.release` (a job through the unit's seccomp filter:
runners need mount, mount_setattr and Landlock) and `service.status`
(systemctl from a runner, through the real bus: as a job uid, which
nss-systemd names from musterd's /run/userdb records, then after
`systemctl reload musterd` with a policy run_as=); the journal must show no
"Permission denied", "Operation not permitted" or "... not supported",
no restart, the Landlock line, and the watchdog fed; `systemctl stop
musterd` ends it cleanly within TimeoutStopSec=.

The recipe (systemd 252 on the machine, any cgroup layout):
  SYSTEMD_SECCOMP=0 systemd-nspawn -b -D ROOT --private-network
      --register=no --keep-unit -M NAME
  --register=no --keep-unit: the machine may have no systemd, no
    machined, no D-Bus (nspawn would ask them for a scope and a name);
  SYSTEMD_SECCOMP=0: nspawn's own syscall filter stays off, so the
    container's PID 1 runs unfiltered as on a real host and only the
    unit's filter applies (nspawn 252's list has no landlock_*: with it
    every runner would miss its Landlock domain whatever the unit says);
  --private-network: only loopback, so the documented ports are used;
  a cgroup v1 machine without a name=systemd hierarchy gets one mounted,
    in this test's own mount namespace, as nspawn needs.
Commands run inside with nsenter into the container's PID 1 (no machined
for `machinectl shell` or `systemd-run -M`).

Environment: as test_install.py (MUSTER_INSTALL_DEBS, MUSTER_INSTALL_CACHE,
MUSTER_INSTALL_MIRROR, MUSTER_INSTALL_KEEP).  Skips, with the reason, when
not root, without systemd-nspawn (scripts/setup installs systemd-container)
or debootstrap, or when the mirror is not reachable."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_install as ti  # noqa: E402
from test_install import HOST, MACHINE, SOURCE_DIR, run, set_ini, step  # noqa: E402

NAME = f"muster-sd-{os.getpid()}"
UNITS = ("mosquitto.service", "musterd.service", "muster-server.service")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BAD = ("Permission denied", "Operation not permitted", "Operation not supported",
       "a new one in")


class Machine(ti.Box):
    """test_install.py's Box (chroot before the boot), plus the booted
    container."""

    def __init__(self, root, work):
        super().__init__(root, work)
        self.nspawn = None
        self.pid1 = None
        self.docs_systemctl = []
        self.started = {}

    def inside(self, script, timeout=120, cwd="/root/admin"):
        """bash -ec SCRIPT in the booted container, as root, from cwd."""
        assert self.pid1, "the container is not running"
        env = {"PATH": PATH, "HOME": "/root", "LC_ALL": "C.UTF-8", "TERM": "dumb",
               "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
        return run("nsenter", "-t", self.pid1, "-a", "/usr/bin/env", "-i",
                   *[f"{k}={v}" for k, v in env.items()],
                   "/bin/bash", "-ec", f"cd {cwd}\n{script}", timeout=timeout)

    def show(self, unit, prop):
        return self.inside(f"systemctl show -P {prop} {unit}").stdout.strip()

    def journal(self, *units):
        args = " ".join(f"-u {u}" for u in units)
        return self.inside(f"journalctl -b --no-pager -o short-monotonic {args}").stdout


def _cgroup_for_nspawn():
    """nspawn needs cgroup2 at /sys/fs/cgroup, or a v1 layout with a
    name=systemd hierarchy: mount that one (in this test's mount
    namespace) when the machine has only the controllers' hierarchies."""
    top = run("stat", "-f", "-c", "%T", "/sys/fs/cgroup").stdout.strip()
    if top == "cgroup2fs":
        return "unified"
    mounts = Path("/proc/self/mountinfo").read_text()
    if "name=systemd" not in mounts:
        os.makedirs("/sys/fs/cgroup/systemd", exist_ok=True)
        run("mount", "-t", "cgroup", "-o", "none,name=systemd", "cgroup",
            "/sys/fs/cgroup/systemd", check=True)
        return "v1, name=systemd mounted by the test"
    return "v1/hybrid"


def _children(pid):
    out = []
    for t in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in t.read_text().split()]
        except OSError:
            pass
    return out


def _container_pid1(nspawn_pid):
    """The descendant of nspawn that is PID 1 in its own PID namespace."""
    todo = [nspawn_pid]
    while todo:
        p = todo.pop()
        try:
            for ln in Path(f"/proc/{p}/status").read_text().splitlines():
                if ln.startswith("NSpid:") and p != nspawn_pid and ln.split()[-1] == "1":
                    return p
        except OSError:
            continue
        todo += _children(p)
    return None


@pytest.fixture(scope="module")
def box():
    if os.geteuid() != 0:
        pytest.skip("the systemd test needs root (chroot, mounts, systemd-nspawn)")
    for tool in ("systemd-nspawn", "nsenter", "debootstrap", "chroot", "dpkg-deb", "tar"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/setup installs systemd-container "
                        "and debootstrap)")
    why = ti._mirror_reachable()
    if why:
        pytest.skip(f"the Debian mirror {ti.MIRROR} is not reachable ({why})")
    # All mounts of this test (the chroot's, nspawn's state in a tmpfs)
    # live in a mount namespace of its own, gone with it.
    ti._unshare(ti.CLONE_NEWNS)
    run("mount", "--make-rprivate", "/", check=True)
    os.makedirs("/run/systemd/nspawn", exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run/systemd/nspawn", check=True)
    work = Path(tempfile.mkdtemp(prefix="muster-systemd-", dir="/var/tmp"))
    os.chmod(work, 0o755)
    root = work / "root"
    root.mkdir()
    b = Machine(root, work)
    print(f"\nsystemd test: root {root}, logs {b.logs}")
    yield b
    _poweroff(b)
    ti._kill_root_processes(root)
    for mp in sorted(ti._mounts_under(root), key=len, reverse=True):
        run("umount", "-l", mp)
    print("\nsystemd test timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in b.timings.items()))
    if os.environ.get("MUSTER_INSTALL_KEEP"):
        print(f"systemd test: kept {work}")
        return
    if ti._mounts_under(root):
        print(f"systemd test: {root} still has mounts, not removed")
        return
    shutil.rmtree(work, ignore_errors=True)


def _poweroff(b):
    """SIGTERM to nspawn: it asks the container's systemd to power off
    (SIGRTMIN+3); SIGKILL after 60 s."""
    if b.nspawn is None or b.nspawn.poll() is not None:
        return
    b.nspawn.send_signal(signal.SIGTERM)
    try:
        b.nspawn.wait(timeout=60)
    except subprocess.TimeoutExpired:
        b.nspawn.kill()
        b.nspawn.wait(timeout=30)


# ---- before the boot (chroot) -----------------------------------------------

@step("packages")
def test_01_packages(box):
    ti.build_packages(box)


@step("root")
def test_02_root_with_systemd(box):
    """test_install.py's root, plus systemd, systemd-sysv (systemd as
    /sbin/init) and dbus, as on any Debian 12 host."""
    ti.prepare_root(box)
    t0 = time.monotonic()
    r = box.chroot("apt-get update -q\napt-get install systemd systemd-sysv dbus")
    box.timings["apt-get install systemd"] = time.monotonic() - t0
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@step("install")
def test_03_install(box):
    """apt-get install ./muster-*.deb, dependencies from Debian."""
    box.need("packages", "root")
    ti.test_04_apt_install_packages(box)


@step("pki")
def test_04_pki(box):
    box.need("root")
    ti.test_06_pki_and_keys(box)


@step("broker")
def test_05_broker_block(box):
    """docs/operations.md "Production configuration", run as written in
    the root; its systemctl commands are recorded and run after the
    boot."""
    box.need("install", "pki")
    block = ti._docs_block(SOURCE_DIR / "docs/operations.md", "### Production configuration")
    r = box.chroot(block)
    assert r.returncode == 0, f"the docs' broker block failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    box.docs_systemctl = box.systemctl_requests()


@step("agent-config")
def test_06_agent_and_server_config(box):
    """README steps 4 and 5: the files, agent.conf and server.conf as the
    README says, the operator's muster.conf.  Plus one policy line the
    admin adds ("edit it to taste"): alice may run service.* (step 11)."""
    box.need("install", "pki")
    ti.test_08_agent_files_and_config(box)
    ti.test_10_server_files_and_config(box)
    ti._operator_config(box)
    pol = box.file("/etc/muster/policy")
    text = pol.read_text()
    line = "allow alice run:service.*  *  timeout<=5m\n"
    m = re.search(r"^deny\s", text, re.M)   # before the final deny
    i = m.start() if m else len(text)
    pol.write_text(text[:i] + line + text[i:])
    r = box.chroot("musterd --check-config")
    assert r.returncode == 0, f"musterd --check-config:\n{r.stdout}{r.stderr}"


# ---- the boot ---------------------------------------------------------------

@step("boot")
def test_07_boot(box):
    """systemd-nspawn -b: systemd as PID 1 reaches "running" with no
    failed unit."""
    box.need("root")
    if box.file("/usr/sbin/policy-rc.d").exists():
        box.file("/usr/sbin/policy-rc.d").unlink()   # a real host has none
    ti._kill_root_processes(box.root)   # left by the chroot (gpg-agent, ...)
    for mp in sorted(ti._mounts_under(box.root), key=len, reverse=True):
        run("umount", mp, check=True)
    layout = _cgroup_for_nspawn()
    print(f"cgroups: {layout}")
    t0 = time.monotonic()
    with open(box.logs / "console.log", "w") as console:
        box.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-b", "-D", str(box.root), "--private-network",
             "--register=no", "--keep-unit", "-M", NAME],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            env=dict(os.environ, SYSTEMD_SECCOMP="0"), start_new_session=True)
    deadline = time.monotonic() + 60
    while box.pid1 is None and time.monotonic() < deadline:
        assert box.nspawn.poll() is None, \
            f"systemd-nspawn exited {box.nspawn.returncode}:\n{_console(box)}"
        box.pid1 = _container_pid1(box.nspawn.pid)
        time.sleep(0.2)
    assert box.pid1, f"no PID 1 in the container after 60 s:\n{_console(box)}"
    state = ""
    while time.monotonic() < deadline:
        r = box.inside("systemctl is-system-running --wait", timeout=90, cwd="/")
        state = r.stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(0.5)   # PID 1 not answering on its socket yet
    box.timings["boot"] = time.monotonic() - t0
    failed = box.inside("systemctl --failed --no-legend", cwd="/").stdout
    assert state == "running", f"system is {state!r}; failed units:\n{failed}\n{_console(box)}"
    assert box.inside("hostname", cwd="/").stdout.strip() == MACHINE


def _console(box):
    p = box.logs / "console.log"
    return p.read_text()[-3000:] if p.exists() else ""


@step("enable")
def test_08_docs_systemctl(box):
    """The docs' commands, by systemd: the broker block's `systemctl
    restart mosquitto`, then README's `musterd --check-config &&
    systemctl enable --now musterd` and the same for muster-server; all
    three units active."""
    box.need("boot", "broker", "agent-config")
    assert any(q.split()[:2] == ["restart", "mosquitto"] for q in box.docs_systemctl), \
        box.docs_systemctl
    script = "\n".join(f"systemctl {q}" for q in box.docs_systemctl)
    script += ("\nmusterd --check-config && systemctl enable --now musterd"
               "\nmuster-server --check-config && systemctl enable --now muster-server")
    r = box.inside(script)
    box.started = {u: time.monotonic() for u in UNITS}
    assert r.returncode == 0, f"{script}\nexit {r.returncode}:\n{r.stdout}{r.stderr}\n" \
        f"{box.journal(*UNITS)[-3000:]}"
    bad = {u: box.show(u, "ActiveState") for u in UNITS}
    bad = {u: s for u, s in bad.items() if s != "active"}
    assert not bad, f"{bad}\n{box.journal(*UNITS)[-4000:]}"


@step("connected")
def test_09_status_connected(box):
    """README: `systemctl status musterd` says "connected to the broker as
    web1" (the unit's StatusText, from sd_notify)."""
    box.need("enable")
    want = f"connected to the broker as {HOST}"
    deadline = time.monotonic() + 40
    while True:
        text = box.show("musterd.service", "StatusText")
        if want in text or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert want in text, f"StatusText={text!r}\n{box.journal('musterd.service')[-4000:]}"
    r = box.inside("systemctl status --no-pager musterd")
    assert want in r.stdout, r.stdout


def muster(box, *args, timeout=90):
    return box.inside("muster " + " ".join(args), timeout=timeout, cwd="/root")


@step("ping")
def test_10_ping(box):
    box.need("connected")
    r = muster(box, "ping", "-H", HOST)
    assert r.returncode == 0, f"muster ping -H {HOST} (exit {r.returncode}):\n{r.stdout}{r.stderr}"


@step("run")
def test_11_run_os_release(box):
    """A job through the unit's sandbox: the runner's namespaces, its
    private /tmp (mount), read-only remounts (mount_setattr), Landlock."""
    box.need("connected")
    r = muster(box, "run", "-H", HOST, "os.release")
    assert r.returncode == 0, f"muster run -H {HOST} os.release (exit {r.returncode}):\n" \
        f"{r.stdout}{r.stderr}\n{box.journal('musterd.service')[-3000:]}"
    assert "bookworm" in r.stdout.lower() or "debian" in r.stdout.lower(), r.stdout


@step("service-status-job-uid")
def test_12_service_status_as_a_job_uid(box):
    """service.status of musterd itself, as the example policy runs it (a
    uid of the job's own): the module's systemctl asks the real systemd
    over the system bus.  dbus-daemon drops a connection whose uid it
    cannot look up: it passes because musterd names its job uids in
    /run/userdb, which nss-systemd (libnss-systemd, the agent package's
    Recommends) reads, so `getent passwd` answers for one of them too."""
    box.need("connected")
    r = box.inside("grep -E '^passwd:.*\\bsystemd\\b' /etc/nsswitch.conf\n"
                   "grep -E '^group:.*\\bsystemd\\b' /etc/nsswitch.conf\n"
                   "getent passwd 60928\n"
                   "getent group 61183")
    assert r.returncode == 0, f"exit {r.returncode}:\n{r.stdout}{r.stderr}\n" \
        f"{box.journal('musterd.service')[-3000:]}"
    assert "muster-job-60928:x:60928:60928:" in r.stdout, r.stdout
    assert "muster-job-61183:x:61183:" in r.stdout, r.stdout
    assert "job uids: 256 user and group records muster-job-60928..61183 in /run/userdb" \
        in box.journal("musterd.service")
    r = muster(box, "run", "-H", HOST, "service.status", "unit=musterd.service",
               "enabled=true")
    assert r.returncode == 0, f"muster run service.status (exit {r.returncode}):\n" \
        f"{r.stdout}{r.stderr}\n{box.journal('musterd.service')[-3000:]}"
    assert "active (running), enabled" in r.stdout, r.stdout


@step("service-status")
def test_13_service_status_as_a_named_user(box):
    """The same with a policy rule's run_as= (a system user the admin
    makes), taken in by `systemctl reload musterd` (the unit's
    ExecReload=): passes, so the runner's sandbox (seccomp, namespaces,
    Landlock scope) lets systemctl reach systemd over D-Bus."""
    box.need("connected")
    r = box.inside(
        "useradd --system --no-create-home --shell /usr/sbin/nologin muster-status\n"
        "sed -i 's/^allow alice run:service[.][*] .*/"
        "allow alice run:service.*  *  run_as=muster-status timeout<=5m/' /etc/muster/policy\n"
        "grep -q run_as=muster-status /etc/muster/policy\n"
        "systemctl reload musterd")
    assert r.returncode == 0, r.stdout + r.stderr
    deadline = time.monotonic() + 20
    while "reloaded policy" not in box.journal("musterd.service"):
        assert time.monotonic() < deadline, box.journal("musterd.service")[-3000:]
        time.sleep(0.5)
    r = muster(box, "run", "-H", HOST, "service.status", "unit=musterd.service",
               "enabled=true")
    assert r.returncode == 0, f"muster run service.status (exit {r.returncode}):\n" \
        f"{r.stdout}{r.stderr}\n{box.journal('musterd.service')[-3000:]}"
    assert "active (running), enabled" in r.stdout, r.stdout


@step("journal")
def test_14_journal_clean(box):
    """journalctl: no "Permission denied", "Operation not permitted",
    "Operation not supported" (a call the unit's filter denies) or
    network-process restart for any of the three units; no unit
    restarted (NRestarts=0); musterd says its runners get a Landlock
    domain each; its watchdog is fed (WATCHDOG=1 seen after the first
    WatchdogSec/2)."""
    box.need("enable")
    # The first WATCHDOG=1 comes WatchdogSec/2 (30 s) after the start.
    wait = box.started["musterd.service"] + 35 - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    problems = []
    for u in UNITS:
        for ln in box.journal(u).splitlines():
            if any(b in ln for b in BAD):
                problems.append(f"{u}: {ln}")
        n = box.show(u, "NRestarts")
        if n != "0":
            problems.append(f"{u}: NRestarts={n}")
        if box.show(u, "ActiveState") != "active":
            problems.append(f"{u}: {box.show(u, 'ActiveState')}")
    log = box.journal("musterd.service")
    if "runners: a Landlock domain each" not in log:
        problems.append("musterd: no \"runners: a Landlock domain each\" line")
    if "no Landlock scopes" in log:
        problems.append("musterd: \"no Landlock scopes\"")
    start = int(box.show("musterd.service", "ExecMainStartTimestampMonotonic") or 0)
    fed = int(box.show("musterd.service", "WatchdogTimestampMonotonic") or 0)
    if fed - start < 25_000_000:
        problems.append(f"musterd: watchdog not fed since the start "
                        f"(start {start}, last WATCHDOG=1 {fed}, monotonic µs)")
    assert not problems, "\n".join(problems[:40]) + "\n\n" + log[-3000:]


@step("stop")
def test_15_stop(box):
    """`systemctl stop musterd`: done within TimeoutStopSec= (no SIGKILL),
    the unit inactive with Result=success."""
    box.need("enable")
    t0 = time.monotonic()
    r = box.inside("systemctl stop musterd", timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    state = (box.show("musterd.service", "ActiveState"), box.show("musterd.service", "Result"))
    log = box.journal("musterd.service")
    assert state == ("inactive", "success"), f"{state}\n{log[-3000:]}"
    assert "SIGKILL" not in log and "timed out" not in log, log[-3000:]
    assert took < 15, f"stop took {took:.1f} s"
