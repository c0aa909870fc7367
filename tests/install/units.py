# SPDX-License-Identifier: Apache-2.0
"""Start a service inside a chroot exactly as its installed systemd unit
says, without systemd: the install test (test_install.py) has no systemd
running in its Debian root, and the point is to run the daemons under the
unit's own settings rather than under the test's idea of them.

Applied, read from the unit file inside the root:
  User=, Group= (numeric ids from the root's passwd and group, the user's
    supplementary groups as initgroups() would give them)
  StateDirectory=, StateDirectoryMode= (created under /var/lib as systemd
    does at every start: owned by User/Group if set, else root; the mode
    re-applied; ownership fixed recursively when the top is not the user's)
  UMask=, Environment=, EnvironmentFile=, WorkingDirectory=
  ExecStartPre= (each must succeed; '-' prefix: failure ignored; '+'
    prefix: runs without User= and sandbox), ExecStart=
  Type=notify: NOTIFY_SOCKET is a datagram socket this module reads;
    READY=1, STATUS=, WATCHDOG=1 are recorded with their times
  WatchdogSec= (WATCHDOG_USEC, WATCHDOG_PID), STATE_DIRECTORY, INVOCATION_ID
  NoNewPrivileges=, CapabilityBoundingSet= (setpriv)
  ProtectSystem= (yes/full/strict) with ReadWritePaths= and the state
    folders, PrivateTmp=, ProtectHome=: a private mount namespace per
    service with read-only bind mounts, as systemd builds it.
Not emulated (said so here rather than pretended): the seccomp filter
(SystemCallFilter=), RestrictAddressFamilies=, RestrictNamespaces=,
PrivateDevices= (the root's /dev is already a minimal tmpfs), Restart=
(a main process that exits is reported, not restarted), cgroups."""
import os
import secrets
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CAP_ALL = ("chown dac_override dac_read_search fowner fsetid kill setgid setuid "
           "setpcap linux_immutable net_bind_service net_broadcast net_admin "
           "net_raw ipc_lock ipc_owner sys_module sys_rawio sys_chroot sys_ptrace "
           "sys_pacct sys_admin sys_boot sys_nice sys_resource sys_time "
           "sys_tty_config mknod lease audit_write audit_control setfcap "
           "mac_override mac_admin syslog wake_alarm block_suspend audit_read "
           "perfmon bpf checkpoint_restore").split()


def parse_unit(text):
    """{section: [(key, value), ...]} in file order; continuation lines
    (trailing backslash) joined, comments (# ;) dropped."""
    out, section, pending = {}, None, ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, [])
            continue
        key, _, value = line.partition("=")
        out.setdefault(section, []).append((key.strip(), value.strip()))
    return out


class UnitFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.sections = parse_unit(self.path.read_text())

    def values(self, key, section="Service"):
        """Every value of a list setting; an empty assignment resets."""
        vals = []
        for k, v in self.sections.get(section, []):
            if k == key:
                vals = [] if v == "" else vals + [v]
        return vals

    def get(self, key, default=None, section="Service"):
        vals = self.values(key, section)
        return vals[-1] if vals else default

    def words(self, key, section="Service"):
        return [w for v in self.values(key, section) for w in shlex.split(v)]

    def yes(self, key):
        return (self.get(key, "no") or "no").lower() in ("yes", "true", "1", "on")


def read_passwd(root):
    users = {}
    for line in (Path(root) / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if len(f) >= 7:
            users[f[0]] = dict(uid=int(f[2]), gid=int(f[3]), home=f[5], shell=f[6])
    groups = {}
    for line in (Path(root) / "etc/group").read_text().splitlines():
        f = line.split(":")
        if len(f) >= 4:
            groups[f[0]] = dict(gid=int(f[2]), members=[m for m in f[3].split(",") if m])
    return users, groups


def parse_seconds(text):
    text = text.strip()
    for suffix, mul in (("ms", 0.001), ("min", 60), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * mul
    return float(text)


class NotifySocket:
    """The NOTIFY_SOCKET of one service: a datagram socket at a path
    inside the root; every message is recorded as (time, line)."""

    def __init__(self, host_path: Path):
        self.path = Path(host_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o755)
        if self.path.exists():
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        # The service may run as another user: like /run/systemd/notify.
        os.chmod(self.path, 0o777)
        self.sock.settimeout(0.2)
        self.messages = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self.lock:
                for line in data.decode(errors="replace").split("\n"):
                    if line:
                        self.messages.append((now, line))

    def lines(self, prefix=""):
        with self.lock:
            return [(t, m) for t, m in self.messages if m.startswith(prefix)]

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


class Service:
    """One unit of the root, started as systemd would start it."""

    def __init__(self, root: Path, unit: str, log_dir: Path):
        self.root = Path(root)
        self.name = unit
        self.unit = UnitFile(self.root / "lib/systemd/system" / unit)
        self.log_path = Path(log_dir) / f"{unit}.log"
        self.proc = None
        self.notify = None
        self.started_at = None
        self.pre_results = []   # (argv, returncode)

    # ---- what the unit says -------------------------------------------
    def credentials(self):
        users, groups = read_passwd(self.root)
        user = self.unit.get("User")
        group = self.unit.get("Group")
        if user is None and group is None:
            return None
        if user is not None and user not in users:
            raise RuntimeError(f"{self.name}: User={user} does not exist in the root")
        uid = users[user]["uid"] if user else 0
        if group is not None:
            if group not in groups:
                raise RuntimeError(f"{self.name}: Group={group} does not exist in the root")
            gid = groups[group]["gid"]
        else:
            gid = users[user]["gid"]
        supp = sorted({g["gid"] for n, g in groups.items() if user in g["members"]} | {gid})
        for extra in self.unit.words("SupplementaryGroups"):
            supp.append(groups[extra]["gid"])
        home = users[user]["home"] if user else "/root"
        shell = users[user]["shell"] if user else "/bin/sh"
        return dict(user=user or "root", uid=uid, gid=gid, groups=supp, home=home, shell=shell)

    def state_dirs(self):
        return ["/var/lib/" + d for d in self.unit.words("StateDirectory")]

    def make_state_dirs(self):
        """systemd (exec-invoke, setup_exec_directory): create, chown to the
        service's user (recursively when the top is not already theirs), and
        chmod to StateDirectoryMode (default 0755) at every start."""
        mode = int(self.unit.get("StateDirectoryMode", "0755"), 8)
        cred = self.credentials()
        uid, gid = (cred["uid"], cred["gid"]) if cred else (0, 0)
        for d in self.state_dirs():
            p = self.root / d.lstrip("/")
            p.mkdir(parents=True, exist_ok=True)
            st = p.stat()
            if (st.st_uid, st.st_gid) != (uid, gid):
                for dirpath, dirnames, filenames in os.walk(p):
                    for n in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
                        os.lchown(n, uid, gid)
            os.chmod(p, mode)

    def environment(self, cred):
        env = {"PATH": SYSTEMD_PATH, "INVOCATION_ID": secrets.token_hex(16)}
        if cred and self.unit.get("User"):
            env.update(USER=cred["user"], LOGNAME=cred["user"], HOME=cred["home"],
                       SHELL=cred["shell"])
        if self.state_dirs():
            env["STATE_DIRECTORY"] = ":".join(self.state_dirs())
        for f in self.unit.values("EnvironmentFile"):
            optional = f.startswith("-")
            p = self.root / f.lstrip("-").lstrip("/")
            if not p.exists():
                if optional:
                    continue
                raise RuntimeError(f"{self.name}: EnvironmentFile {f} is missing")
            for line in p.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, _, v = line.partition("=")
                    env[k.strip()] = v.strip().strip('"')
        for v in self.unit.values("Environment"):
            for kv in shlex.split(v):
                k, _, val = kv.partition("=")
                env[k] = val
        return env

    def mount_script(self):
        """Shell commands (run in the service's own mount namespace) that
        build what ProtectSystem=, ReadWritePaths=, PrivateTmp= and
        ProtectHome= make systemd build."""
        r = shlex.quote(str(self.root))
        cmds = [f"mount --rbind {r} {r}", f"mount --make-rprivate {r}"]
        ps = (self.unit.get("ProtectSystem", "no") or "no").lower()
        ro = []
        if ps == "strict":
            ro = ["/"]
        elif ps == "full":
            ro = ["/usr", "/boot", "/efi", "/etc"]
        elif ps in ("yes", "true"):
            ro = ["/usr", "/boot", "/efi"]
        for p in ro:
            hp = self.root / p.lstrip("/")
            if hp.is_dir():
                q = shlex.quote(str(hp))
                if p != "/":
                    cmds.append(f"mount --bind {q} {q}")
                cmds.append(f"mount -o remount,bind,ro {q}")
        rw = self.state_dirs() + [w for w in self.unit.words("ReadWritePaths")]
        for p in rw:
            optional = p.startswith("-")
            p = p.lstrip("-+")
            hp = self.root / p.lstrip("/")
            if not hp.exists():
                if optional:
                    continue
                raise RuntimeError(f"{self.name}: ReadWritePaths={p} does not exist "
                                   f"(systemd fails the start with 226/NAMESPACE)")
            q = shlex.quote(str(hp))
            cmds += [f"mount --bind {q} {q}", f"mount -o remount,bind,rw {q}"]
        if self.unit.yes("PrivateTmp"):
            for p in ("tmp", "var/tmp"):
                cmds.append(f"mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "
                            f"{shlex.quote(str(self.root / p))}")
        ph = (self.unit.get("ProtectHome", "no") or "no").lower()
        if ph in ("yes", "true", "tmpfs", "read-only"):
            for p in ("home", "root"):
                q = shlex.quote(str(self.root / p))
                if ph == "read-only":
                    cmds += [f"mount --bind {q} {q}", f"mount -o remount,bind,ro {q}"]
                else:
                    cmds.append(f"mount -t tmpfs -o mode=0755,ro tmpfs {q}")
        return cmds

    def command(self, argv, sandbox=True, extra_env=None):
        """The host command line that runs argv in the root like systemd."""
        cred = self.credentials() if sandbox else None
        env = self.environment(cred)
        env.update(extra_env or {})
        umask = self.unit.get("UMask", "0022")
        inner = ["/usr/bin/env", "-i"] + [f"{k}={v}" for k, v in env.items()]
        wd = self.unit.get("WorkingDirectory", "/")
        inner += ["/bin/sh", "-c",
                  f'cd {shlex.quote(wd.lstrip("-"))} || exit 200; umask {umask}; '
                  'if [ -n "$WATCHDOG_USEC" ]; then WATCHDOG_PID=$$; export WATCHDOG_PID; fi; '
                  'exec "$@"', "sh"] + list(argv)
        priv = ["/usr/bin/setpriv"]
        if sandbox and cred:
            priv += [f"--reuid={cred['uid']}", f"--regid={cred['gid']}",
                     "--groups=" + ",".join(str(g) for g in cred["groups"])]
        if sandbox and self.unit.yes("NoNewPrivileges"):
            priv.append("--no-new-privs")
        caps = self.unit.words("CapabilityBoundingSet")
        if sandbox and caps:
            keep = [c.lower().removeprefix("cap_") for c in caps if not c.startswith("~")]
            drop = [c.lower().removeprefix("cap_") for c in caps if c.startswith("~")]
            if keep:
                spec = "-all," + ",".join("+" + c for c in keep)
            else:
                spec = ",".join("-" + c.lstrip("~") for c in drop)
            priv.append(f"--bounding-set={spec}")
        priv.append("--")
        chroot = ["chroot", str(self.root)] + priv + inner
        script = "set -e\n" + ("\n".join(self.mount_script()) + "\n" if sandbox else "") \
            + 'exec "$@"\n'
        return ["unshare", "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", script, "sh"] + chroot

    def exec_argv(self, value):
        """ExecStart= syntax: prefixes, then a command line."""
        prefixes = ""
        while value and value[0] in "-@:+!":
            prefixes += value[0]
            value = value[1:]
        argv = shlex.split(value)
        if "@" in prefixes:
            argv = [argv[0]] + argv[2:]
        return prefixes, argv

    # ---- starting and stopping ----------------------------------------
    def start(self, ready_timeout=60):
        """Create the state folders, run ExecStartPre=, start ExecStart=
        and (Type=notify) wait for READY=1.  Raises RuntimeError saying
        what failed; the log keeps the output."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        log.write(f"---- start {self.name} at {time.strftime('%T')}\n".encode())
        log.flush()
        self.make_state_dirs()
        for v in self.unit.values("ExecStartPre"):
            prefixes, argv = self.exec_argv(v)
            r = subprocess.run(self.command(argv, sandbox="+" not in prefixes),
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=90)
            self.pre_results.append((argv, r.returncode))
            if r.returncode != 0 and "-" not in prefixes:
                log.close()
                raise RuntimeError(f"{self.name}: ExecStartPre={v} exited {r.returncode}:\n"
                                   + self.log_tail())
        kind = self.unit.get("Type", "simple")
        extra = {}
        if kind == "notify":
            sock = self.root / "run/muster-test" / f"{self.name}.notify"
            self.notify = NotifySocket(sock)
            extra["NOTIFY_SOCKET"] = "/run/muster-test/" + sock.name
        wd = self.unit.get("WatchdogSec")
        if wd:
            extra["WATCHDOG_USEC"] = str(int(parse_seconds(wd) * 1e6))
        starts = self.unit.values("ExecStart")
        if len(starts) != 1:
            raise RuntimeError(f"{self.name}: {len(starts)} ExecStart= lines")
        _, argv = self.exec_argv(starts[0])
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.command(argv, extra_env=extra),
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        if kind == "notify":
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline:
                if self.notify.lines("READY=1"):
                    return self
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name}: exited {self.proc.returncode} "
                                       f"before READY=1:\n" + self.log_tail())
                time.sleep(0.1)
            raise RuntimeError(f"{self.name}: no READY=1 in {ready_timeout} s:\n"
                               + self.log_tail())
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name}: exited {self.proc.returncode}:\n"
                               + self.log_tail())
        return self

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=None):
        """SIGTERM to the main process (KillMode=mixed/control-group both
        start so), then SIGKILL after TimeoutStopSec."""
        if self.proc is None:
            return None
        timeout = timeout or parse_seconds(self.unit.get("TimeoutStopSec", "90s"))
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        if self.notify:
            self.notify.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])
