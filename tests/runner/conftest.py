# SPDX-License-Identifier: Apache-2.0
"""Helpers for the muster-runner tests: the test plays musterd.

It builds a job body with msgpack, copies a module into a sealed memfd,
starts muster-runner with the job on stdin, a pipe on fd 3 and the memfd on
fd 4, in a process group of its own, and decodes the event frames (4-byte
big-endian length + msgpack map).

Paths come from MUSTER_BUILD_DIR (default /work/main/build).  Run with
/usr/bin/python3 (Debian's msgpack and pytest).
"""
import fcntl
import os
import select
import signal
import struct
import subprocess
import tempfile
import time

import msgpack
import pytest

BUILD = os.environ.get("MUSTER_BUILD_DIR", "/work/main/build")
RUNNER = os.path.join(BUILD, "runner", "muster-runner")
MODULES = os.path.join(BUILD, "tests", "modules")
HIGH_FD = 100

# Exit codes, as runner/runner.h defines them.
EXIT = {
    "pass": 0, "fail": 1, "error": 2, "usage": 64, "badjob": 65, "load": 66,
    "nosym": 67, "magic": 68, "abi": 69, "name": 70, "pipe": 71, "desc": 72,
    "badret": 73, "internal": 74, "timeout": 75, "needs": 76,
}

# Keep fds 3 and 4 taken in this process, so that no pipe subprocess makes
# for itself lands on them before the child's dup2() onto 3 and 4.
for _fd in (3, 4):
    try:
        os.fstat(_fd)
    except OSError:
        _null = os.open(os.devnull, os.O_RDONLY)
        if _null != _fd:
            os.dup2(_null, _fd, inheritable=False)
            os.close(_null)


def sanitized():
    """True when BUILD is an ASan/UBSan tree (MUSTER_SANITIZE=ON)."""
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return any(l.strip() in ("MUSTER_SANITIZE:BOOL=ON", "MUSTER_SANITIZE:BOOL=TRUE")
                       for l in f)
    except OSError:
        return False


def asan_env(extra):
    """The environment with extra ASAN_OPTIONS appended."""
    env = dict(os.environ)
    opts = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + extra
    return env


def module_path(name):
    return os.path.join(MODULES, name + ".so")


def job_body(module="echoargs", args=None, **over):
    now = int(time.time() * 1000)
    body = {"v": 1, "id": "test-1", "kind": "run", "target": "all",
            "issued_at": now, "not_after": now + 60000, "module": module}
    if args is not None:
        body["args"] = args
    body.update(over)
    body = {k: v for k, v in body.items() if v is not None}
    return msgpack.packb(body, use_bin_type=True)


def sealed_memfd(data):
    fd = os.memfd_create("module", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK |
                fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    return fd


def high(fd):
    """Move fd above 4 (and close-on-exec), out of the way of the dup2s."""
    nfd = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD)
    os.close(fd)
    return nfd


def parse_frames(buf):
    frames, off = [], 0
    while len(buf) - off >= 4:
        (n,) = struct.unpack(">I", buf[off:off + 4])
        if len(buf) - off - 4 < n:
            break
        frames.append(msgpack.unpackb(buf[off + 4:off + 4 + n], raw=False))
        off += 4 + n
    assert off == len(buf), "a partial frame at the end of the stream"
    return frames


def group_members(pgid):
    """Live (not zombie) processes whose process group is pgid."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(d))
    return pids


def procs_with_cmdline(*argv):
    """Live processes whose argv starts with argv."""
    want = b"\0".join(a.encode() for a in argv) + b"\0"
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if cmd.startswith(want) and stat[stat.rindex(")") + 2] != "Z":
            found.append(int(d))
    return found


def wait_until(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def assert_no_sanitizer_report(stderr):
    """In a sanitizer tree, a report (a leak, say) must fail the test even
    when the exit code it causes happens to be the expected one."""
    for mark in SANITIZER_MARKS:
        assert mark not in stderr, stderr[-4000:]


class Run:
    """What one runner process did."""

    def __init__(self, proc, raw, stdout, stderr, elapsed):
        self.proc = proc
        self.pid = proc.pid
        self.rc = proc.returncode
        self.raw = raw
        self.frames = parse_frames(raw)
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        assert_no_sanitizer_report(stderr)
        for f in self.frames:
            assert f["v"] == 1 and f["t"] in ("out", "progress", "verdict", "state"), f
        verdicts = [f for f in self.frames if f["t"] == "verdict"]
        assert len(verdicts) <= 1
        if verdicts:
            assert self.frames[-1]["t"] == "verdict", "the verdict is the last frame"
        self.verdict = verdicts[0] if verdicts else None
        self.out = [f["text"] for f in self.frames if f["t"] == "out"]
        self.progress = [f["pct"] for f in self.frames if f["t"] == "progress"]

    def __repr__(self):
        return (f"Run(rc={self.rc}, verdict={self.verdict!r}, out={self.out[:5]!r}, "
                f"stderr={self.stderr[-2000:]!r})")


def run_contract(module="echoargs", body=None, args=None, so=None, so_bytes=None,
                 runner_args=(), rlimit_as=None, env=None, kill_after=None,
                 event_fd="pipe", module_fd=True, keep_group=False, timeout=60):
    """Start muster-runner as musterd would, and collect what it sends.

    event_fd: "pipe" (normal), "closed" (the reader is gone) or "none".
    kill_after: seconds after which the test kills the runner's group.
    keep_group: leave the group alone afterwards (the caller checks it).
    """
    if body is None:
        body = job_body(module, args)
    if so_bytes is None and module_fd:
        with open(so or module_path(module), "rb") as f:
            so_bytes = f.read()
    memfd = high(sealed_memfd(so_bytes)) if module_fd else None
    evr, evw = os.pipe()
    evr, evw = high(evr), high(evw)
    if event_fd == "closed":
        os.close(evr)
        evr = None

    def child():
        if event_fd == "none":
            os.close(3)
        else:
            os.dup2(evw, 3)
        if memfd is not None:
            os.dup2(memfd, 4)
        else:
            os.close(4)
        if rlimit_as is not None:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as))

    outf = tempfile.TemporaryFile()
    errf = tempfile.TemporaryFile()
    start = time.monotonic()
    proc = subprocess.Popen([RUNNER, *runner_args], stdin=subprocess.PIPE, stdout=outf,
                            stderr=errf, preexec_fn=child, close_fds=False,
                            process_group=0, env=env)
    os.close(evw)
    if memfd is not None:
        os.close(memfd)
    try:
        proc.stdin.write(body)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    raw = collect(proc, evr, start, kill_after, timeout)
    elapsed = time.monotonic() - start
    if not keep_group:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    outf.seek(0)
    errf.seek(0)
    run = Run(proc, raw, outf.read().decode(errors="replace"),
              errf.read().decode(errors="replace"), elapsed)
    outf.close()
    errf.close()
    return run


def collect(proc, evr, start, kill_after, timeout):
    """Frames until the runner exits: not until EOF, which a child the
    module forked may hold off for ever."""
    raw = bytearray()
    pidfd = os.pidfd_open(proc.pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if evr is not None:
        poller.register(evr, select.POLLIN)
    killed = False
    try:
        while True:
            now = time.monotonic() - start
            if kill_after is not None and not killed and now >= kill_after:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            if now >= timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                pytest.fail(f"runner did not finish in {timeout}s")
            ready = dict(poller.poll(100))
            if evr is not None and evr in ready:
                chunk = os.read(evr, 65536)
                if chunk:
                    raw += chunk
                    continue
                poller.unregister(evr)
                os.close(evr)
                evr = None
            if pidfd in ready:
                break
        proc.wait()
        if evr is not None:
            os.set_blocking(evr, False)
            while True:
                try:
                    chunk = os.read(evr, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                raw += chunk
    finally:
        os.close(pidfd)
        if evr is not None:
            os.close(evr)
    return bytes(raw)


def run_cli(*args, timeout=60, env=None, cwd=None):
    """muster-runner with a command line (--describe, --run, ...)."""
    r = subprocess.run([RUNNER, *args], capture_output=True, timeout=timeout,
                       env=env, cwd=cwd, text=True)
    assert_no_sanitizer_report(r.stderr)
    return r


@pytest.fixture(scope="session", autouse=True)
def built():
    missing = [p for p in (RUNNER, module_path("echoargs")) if not os.path.exists(p)]
    if missing:
        pytest.fail(f"not built: {missing}; build muster-runner and runner-test-modules")
