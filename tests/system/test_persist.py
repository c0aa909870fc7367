# SPDX-License-Identifier: Apache-2.0
"""[cli] persist (design.md §10, issue 26): the first call leaves a per-user
relay holding the broker session on a Unix socket; later calls borrow it.

A real broker, a real agent h1 and a scripted h2 (test_host_signing's, with
its own real certificate) that answers with forged results when told to.
Every test has its own XDG_RUNTIME_DIR, so its own relay.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from muster_fixtures import (
    MUSTER_CLI, Agent, Broker, install_modules, run_cli, write_cli_conf)
from test_host_signing import ScriptedHost, ndjson, res_topic

pytestmark = pytest.mark.skipif(not MUSTER_CLI.exists(),
                                reason=f"{MUSTER_CLI} is not built")


@pytest.fixture(scope="module")
def world(pki, keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("persist")
    broker = Broker(pki, base / "broker").start()
    a = Agent("h1", broker, keys, base / "agent-h1", groups=["web"])
    install_modules(a, "sys.info")
    a.start()
    h2 = ScriptedHost(broker, "h2", pki.sign_key("h2"), pki.sign_cert("h2"))
    h2.publish_status()
    conf = write_cli_conf(base / "muster.conf", broker, keys=keys,
                          extra="\n[cli]\npersist = 30s\n")
    direct = write_cli_conf(base / "direct.conf", broker, keys=keys)
    try:
        yield type("World", (), dict(broker=broker, pki=pki, keys=keys, h1=a, h2=h2,
                                     conf=conf, direct=direct, base=base))
    finally:
        h2.close()
        a.cleanup()
        broker.stop()


class Runtime:
    """A private XDG_RUNTIME_DIR (short: a socket path has 107 bytes) and
    the relay that calls with it start; stopped at the end."""

    def __init__(self, world):
        self.world = world
        self.dir = Path(tempfile.mkdtemp(prefix="mp", dir="/tmp"))
        os.chmod(self.dir, 0o700)

    def cli(self, *args, conf=None, **kw):
        return run_cli(*args, conf=conf or self.world.conf,
                       env={"XDG_RUNTIME_DIR": self.dir}, **kw)

    def socket(self) -> Path | None:
        socks = list((self.dir / "muster").glob("persist-*.sock")) \
            if (self.dir / "muster").exists() else []
        assert len(socks) <= 1, socks
        return socks[0] if socks else None

    def wait_socket(self, timeout: float = 10) -> Path:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.socket()
            if s is not None and relay_pid(s) is not None:
                return s
            time.sleep(0.05)
        raise AssertionError("no relay socket")

    def pid(self) -> int | None:
        s = self.socket()
        return relay_pid(s) if s else None

    def close(self):
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            wait_gone(pid)
        subprocess.run(["rm", "-rf", str(self.dir)], check=False)


@pytest.fixture
def rt(world):
    r = Runtime(world)
    yield r
    r.close()


def relay_pid(path: Path) -> int | None:
    """The pid behind the socket (SO_PEERCRED), or None if nobody listens."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", cred)[0]
    except OSError:
        return None
    finally:
        s.close()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def normalized(out: str) -> str:
    """A run's table without its timings and job ids."""
    out = re.sub(r"\d+\.\d+s", "T", out)
    out = re.sub(r"\b\d{8}T\d{6}-[0-9a-f]{8}\b", "ID", out)
    return re.sub(r" +", " ", out)


def strace_cli(rt, *args, out: Path, cwd=None):
    """The CLI under strace: every write and send with its bytes in hex."""
    e = dict(os.environ, MUSTER_CONFIG=str(rt.world.conf), XDG_RUNTIME_DIR=str(rt.dir))
    # LeakSanitizer cannot run under ptrace (the sanitizer build); the
    # untraced calls of the other tests still check for leaks.
    e["ASAN_OPTIONS"] = ":".join(filter(None, [e.get("ASAN_OPTIONS"), "detect_leaks=0"]))
    r = subprocess.run(["strace", "-f", "-qq", "-xx", "-s", "10000000", "-yy",
                        "-e", "trace=write,writev,sendto,sendmsg,connect",
                        "-o", str(out), str(MUSTER_CLI), *args],
                       env=e, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60, cwd=cwd)
    return r, out.read_text()


def via_relay(trace: str) -> bool:
    """The call connected to the relay's socket and to nothing else."""
    return b"/muster/persist-" in hexbytes(trace) and "AF_INET" not in trace


def hexbytes(trace: str) -> bytes:
    """Every \\xNN string strace printed, as bytes."""
    return b"".join(bytes.fromhex(m.replace("\\x", ""))
                    for m in re.findall(r'"((?:\\x[0-9a-f]{2})+)"', trace))


# ---- the socket -------------------------------------------------------------


def test_first_call_leaves_a_private_relay(rt):
    r = rt.cli("ping", "-H", "h1")
    assert r.returncode == 0, r.stderr
    sock = rt.wait_socket()
    folder = sock.parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert folder.stat().st_uid == os.getuid() == sock.stat().st_uid
    # a detached process of its own: own session, not a child of the call
    pid = rt.pid()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().split(")")[-1].split()
    assert int(fields[1]) != os.getpid()			# ppid
    assert int(fields[3]) != os.getsid(0)			# setsid()
    # its stdio is /dev/null: `muster ... | cat` does not hang on it
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"


def test_pipe_does_not_wait_for_the_relay(rt):
    t0 = time.monotonic()
    r = subprocess.run(f"'{MUSTER_CLI}' ping -H h1 | cat", shell=True,
                       env=dict(os.environ, MUSTER_CONFIG=str(rt.world.conf),
                                XDG_RUNTIME_DIR=str(rt.dir)),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and "h1 " in r.stdout, r.stderr
    assert time.monotonic() - t0 < 10
    rt.wait_socket()


def test_same_output_through_the_relay(rt, world):
    direct = run_cli("ping", "-H", "h1", conf=world.direct)
    assert direct.returncode == 0, direct.stderr
    rt.cli("ping", "-H", "h1")
    rt.wait_socket()
    for args in (["ping", "-H", "h1"], ["run", "-H", "h1", "sys.info"],
                 ["version", "-H", "h1"]):
        a = run_cli(*args, conf=world.direct)
        b, trace = strace_cli(rt, *args, out=rt.dir / "trace")
        assert b.returncode == a.returncode, (a.stdout, b.stdout, b.stderr)
        assert normalized(b.stdout) == normalized(a.stdout)
        assert b.stderr == a.stderr
        # through the socket, and no TLS connection of its own
        assert via_relay(trace), trace[-3000:]


def test_second_user_refused(rt, world):
    if os.getuid() != 0:
        pytest.skip("needs root to run a client as another user (nobody)")
    rt.cli("ping", "-H", "h1")
    sock = rt.wait_socket()
    probe = ("import socket,struct,sys\n"
             "s=socket.socket(socket.AF_UNIX)\n"
             "try:\n s.connect(sys.argv[1])\n"
             "except PermissionError:\n print('EACCES'); sys.exit(0)\n"
             # a valid hello: {"v":1,"t":"hello","version":1}
             "b=b'\\x83\\xa1v\\x01\\xa1t\\xa5hello\\xa7version\\x01'\n"
             "try:\n"
             " s.sendall(struct.pack('>I',len(b))+b)\n"
             " s.settimeout(5)\n"
             " print('EOF' if s.recv(100)==b'' else 'DATA')\n"
             "except (ConnectionResetError, BrokenPipeError):\n print('EOF')\n")
    run = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
           "/usr/bin/python3", "-c", probe, str(sock)]
    # the probe's hello is answered for this user ...
    r = subprocess.run(run[4:], capture_output=True, text=True, timeout=20)
    assert r.stdout.strip() == "DATA", r.stdout + r.stderr
    # ... the 0700 folder keeps nobody out ...
    r = subprocess.run(run, capture_output=True, text=True, timeout=20)
    assert r.stdout.strip() == "EACCES", r.stdout + r.stderr
    # ... and with the folder and the socket opened up, SO_PEERCRED does
    os.chmod(rt.dir, 0o755)
    os.chmod(sock.parent, 0o755)
    os.chmod(sock, 0o666)
    try:
        r = subprocess.run(run, capture_output=True, text=True, timeout=20)
        assert r.stdout.strip() == "EOF", r.stdout + r.stderr
    finally:
        os.chmod(rt.dir, 0o700)
        os.chmod(sock.parent, 0o700)
        os.chmod(sock, 0o600)
    # and the relay still serves its own user
    assert rt.cli("ping", "-H", "h1").returncode == 0


def test_operator_key_never_crosses_the_socket(rt, world):
    from cryptography.hazmat.primitives import serialization

    rt.cli("ping", "-H", "h1")
    rt.wait_socket()
    r, trace = strace_cli(rt, "run", "-H", "h1", "sys.info", out=rt.dir / "trace")
    assert r.returncode == 0, r.stderr
    assert via_relay(trace)
    written = hexbytes(trace)
    # what crossed: a signed job envelope in a "pub" frame
    assert b"\xa3pub" in written and b"payload" in written
    pem = Path(world.keys.operator_key("alice")).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    raw = key.private_bytes(serialization.Encoding.Raw,
                            serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    der = key.private_bytes(serialization.Encoding.DER,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    assert len(raw) == 32
    for secret in (raw, der, pem, pem.strip().splitlines()[1]):
        assert secret not in written
    # and the relay process never had it: a fresh image, not a fork
    with open(f"/proc/{rt.pid()}/cmdline", "rb") as f:
        cmdline = f.read().split(b"\0")
    assert b"--persist-serve" in cmdline
    keypath = str(world.keys.operator_key("alice")).encode()
    assert not any(keypath in a or a == b"--operator-key" for a in cmdline)


# ---- its life ---------------------------------------------------------------------


def test_killed_relay_falls_back_and_restarts(rt):
    rt.cli("ping", "-H", "h1")
    sock = rt.wait_socket()
    pid = rt.pid()
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    assert sock.exists()			# stale: nobody listens
    r = rt.cli("ping", "-H", "h1")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    rt.wait_socket()
    assert rt.pid() not in (None, pid)


def test_exits_after_idle(rt, world):
    conf = write_cli_conf(world.base / "idle.conf", world.broker, keys=world.keys,
                          extra="\n[cli]\npersist = 2s\n")
    rt.cli("ping", "-H", "h1", conf=conf)
    sock = rt.wait_socket()
    pid = rt.pid()
    # used again within the idle time: it stays
    time.sleep(1)
    assert rt.cli("ping", "-H", "h1", conf=conf).returncode == 0
    time.sleep(1.2)
    assert alive(pid)
    assert wait_gone(pid, timeout=6)
    assert not sock.exists()


def test_persist_stop(rt):
    rt.cli("ping", "-H", "h1")
    sock = rt.wait_socket()
    pid = rt.pid()
    r = rt.cli("--persist=stop")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert not sock.exists()		# gone when the stop returns
    assert wait_gone(pid)
    # a call right after the stop leaves a new relay
    assert rt.cli("ping", "-H", "h1").returncode == 0
    rt.wait_socket()
    assert rt.pid() != pid
    assert rt.cli("--persist=stop").returncode == 0
    # nothing running: still fine
    assert rt.cli("--persist=stop").returncode == 0


def test_flag_turns_it_on(rt, world):
    r = rt.cli("--persist=5s", "ping", "-H", "h1", conf=world.direct)
    assert r.returncode == 0, r.stderr
    rt.wait_socket()
    assert rt.cli("--persist=stop", conf=world.direct).returncode == 0


def test_off_by_default(rt, world):
    assert rt.cli("ping", "-H", "h1", conf=world.direct).returncode == 0
    time.sleep(0.5)
    assert rt.socket() is None


# ---- results through it are still verified ---------------------------------------


def test_forged_result_through_the_relay(rt, world):
    h2 = world.h2
    rt.cli("ping", "-H", "h1")
    rt.wait_socket()

    def reply(j):
        return [(res_topic(j, "h2"), h2.signed(h2.result(j, host="h1")), False),
                (res_topic(j, "h2"), h2.signed(h2.result(j, status="pass")), False)]
    h2.reply = reply
    try:
        r, trace = strace_cli(rt, "ping", "-H", "h2", "-H", "h1", "--json",
                              out=rt.dir / "trace")
    finally:
        h2.reply = None
    assert via_relay(trace)
    lines = ndjson(r.stdout)
    forged = [x for x in lines if x["type"] == "forged"]
    assert len(forged) == 1 and "names host h1" in forged[0]["reason"], r.stdout
    assert lines[-1]["forged"] == 1
    assert {x["host"] for x in lines if x["type"] == "result"} == {"h1", "h2"}


def test_relative_certificate_path_finds_the_same_relay(rt, world):
    """The relay is given absolute paths; a call that names the same
    certificate relative to its folder must find it, not start another."""
    rt.cli("ping", "-H", "h1")
    rt.wait_socket()
    pid = rt.pid()
    cert = Path(world.pki.cert("op:alice"))
    r, trace = strace_cli(rt, "--cert", cert.name, "ping", "-H", "h1",
                          out=rt.dir / "trace", cwd=cert.parent)
    assert r.returncode == 0, r.stderr
    assert via_relay(trace)
    time.sleep(1)
    assert rt.socket() is not None and rt.pid() == pid	# one socket, the same relay


# ---- the library (libmuster-client) ----------------------------------------


def test_library_borrows_the_relay(rt, world):
    """settings.persist = 1: libmuster-client's session goes through the
    relay the CLI left (the same core, ctl_connect()); 0: it connects
    directly even with [cli] persist in the file.  Results verified either
    way."""
    from test_client import PROBE, lines, results
    if not PROBE.exists():
        pytest.skip(f"{PROBE} is not built")
    rt.cli("ping", "-H", "h1")
    rt.wait_socket()
    e = dict(os.environ, MUSTER_CONFIG=str(world.conf), XDG_RUNTIME_DIR=str(rt.dir),
             HOME="/nonexistent")
    e["ASAN_OPTIONS"] = ":".join(filter(None, [e.get("ASAN_OPTIONS"), "detect_leaks=0"]))
    for persist, relayed in (("1", True), ("0", False)):
        out = rt.dir / f"trace-{persist}"
        r = subprocess.run(["strace", "-f", "-qq", "-xx", "-s", "4096", "-yy",
                            "-e", "trace=connect", "-o", str(out), str(PROBE),
                            "--persist", persist, "ping", "-H", "h1"],
                           env=e, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, (r.stdout, r.stderr)
        got = results(lines(r.stdout))
        assert [(x["host"], x["status"]) for x in got] == [("h1", "pass")], r.stdout
        assert via_relay(out.read_text()) == relayed, out.read_text()[-2000:]
