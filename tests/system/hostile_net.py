#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A scripted network process for musterd (issue 22, design.md §8).

Two halves:

- Run as a program (the parent execs it in place of `musterd --net` when
  the test build's hook MUSTER_TEST_NET_EXEC names it, agent/common/priv.c
  net_exec()): it hands the channel's fd, over SCM_RIGHTS, to the test
  listening on MUSTER_HOSTILE_SOCK, then stays alive (the parent watches
  its pid) until the test closes that connection or the parent kills it.

- Imported by a test: HostileNet listens, accept() gives a Peer holding
  the parent's end of nothing but the network process's end of the
  channel, speaking its frames: a 4-byte big-endian length, then a
  msgpack priv_msg (lib/wire_priv.c; the same maps as the fuzz corpus,
  tests/fuzz/make-corpus.py).  The test sends what a network process
  running someone else's code could send, and reads what the parent says.
"""
import os
import select
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve()
SOCK_ENV = "MUSTER_HOSTILE_SOCK"
EXEC_ENV = "MUSTER_TEST_NET_EXEC"


def priv(t: str, **fields: Any) -> dict:
    """A priv_msg map, as make-corpus.py's m(t=...) builds them."""
    return dict({"v": 1, "t": t}, **fields)


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


class Peer:
    """The network process's end of one channel, driven by a test."""

    def __init__(self, chan: socket.socket, ctl: socket.socket, pid: int):
        self.chan, self.ctl, self.pid = chan, ctl, pid
        self._buf = b""

    def send(self, msg: dict) -> None:
        import msgpack
        self.send_raw(frame(msgpack.packb(msg, use_bin_type=True)))

    def send_raw(self, data: bytes) -> None:
        self.chan.sendall(data)

    def recv(self, timeout: float = 10) -> Optional[dict]:
        """The parent's next frame, decoded; None on timeout or EOF."""
        import msgpack
        deadline = time.monotonic() + timeout
        while True:
            if len(self._buf) >= 4:
                n = struct.unpack(">I", self._buf[:4])[0]
                if len(self._buf) >= 4 + n:
                    body, self._buf = self._buf[4:4 + n], self._buf[4 + n:]
                    return msgpack.unpackb(body, raw=False)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.chan], [], [], left)[0]:
                return None
            data = self.chan.recv(1 << 20)
            if not data:
                return None
            self._buf += data

    def expect(self, pred: Callable[[dict], bool], timeout: float = 10,
               what: str = "a frame") -> dict:
        """Read frames until one matches pred (the others are dropped)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            m = self.recv(left)
            if m is None:
                break
            if pred(m):
                return m
        raise AssertionError(f"the parent sent no {what} in {timeout}s")

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # A zombie is dead too: its parent (musterd) reaps it.
        try:
            return Path(f"/proc/{self.pid}/stat").read_text().split()[2] != "Z"
        except FileNotFoundError:
            return False

    def close(self) -> None:
        """Let the scripted process exit (the parent sees it end)."""
        for s in (self.chan, self.ctl):
            try:
                s.close()
            except OSError:
                pass


class HostileNet:
    """Listens for the scripted network processes of one agent."""

    def __init__(self, path: os.PathLike):
        self.path = str(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(8)
        self.peers: list[Peer] = []

    def env(self) -> dict[str, str]:
        """What the agent's environment needs (Agent.env)."""
        return {EXEC_ENV: str(HERE), SOCK_ENV: self.path}

    def accept(self, timeout: float = 15) -> Peer:
        """The next network process the parent started."""
        self.srv.settimeout(timeout)
        ctl, _ = self.srv.accept()
        ctl.settimeout(timeout)
        msg, fds, _, _ = socket.recv_fds(ctl, 64, 1)
        assert fds, "the scripted network process sent no fd"
        chan = socket.socket(fileno=fds[0])
        chan.setblocking(True)
        p = Peer(chan, ctl, int(msg.decode()))
        self.peers.append(p)
        return p

    def live(self, timeout: float = 20) -> Peer:
        """The network process the parent runs now: the ones it has
        replaced meanwhile (killed) are skipped."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            p = self.accept(left)
            if p.alive():
                return p
            p.close()
        raise AssertionError(f"no live network process in {timeout}s")

    def close(self) -> None:
        for p in self.peers:
            p.close()
        self.srv.close()


def _exec_main(argv: list[str]) -> int:
    # argv: --net CHAN,CA,CERT,KEY -c CONF --foreground [...] (net_exec())
    fds = argv[argv.index("--net") + 1]
    chan = int(fds.split(",")[0])
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.connect(os.environ[SOCK_ENV])
    socket.send_fds(ctl, [str(os.getpid()).encode()], [chan])
    os.close(chan)	# the test holds it now
    # Alive until the test lets go (or the parent kills us).
    while ctl.recv(4096):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(_exec_main(sys.argv[1:]))
