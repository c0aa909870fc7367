# SPDX-License-Identifier: Apache-2.0
"""Helpers for the self-update tests (issue 11, design.md §5).

The agent is built a second time with another version string (CMake
-DMUSTER_VERSION, a build-time define only) into a temporary build folder,
once per test session.  Every agent runs from a copy of the binaries in
its own folder (self-update replaces them), and under a small supervisor
that restarts it the way systemd's Restart=on-failure would.
"""
import hashlib
import os
import signal
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from muster_fixtures import (
    BUILD_DIR, MODULES_DIR, MUSTERD, RUNNER, SOURCE_DIR, Agent, now_ms, pack,
    topic,
)

V1 = "0.1.0"	# what CMakeLists.txt says (the build under test)
V2 = "0.1.1-test"


def cmake_cache(name: str) -> Optional[str]:
    try:
        for line in (BUILD_DIR / "CMakeCache.txt").read_text().splitlines():
            if line.startswith(name + ":"):
                return line.split("=", 1)[1]
    except FileNotFoundError:
        pass
    return None


def build_version(dest: Path, version: str) -> tuple[Path, Path]:
    """musterd and muster-runner built with another version string, with
    the options of the build under test (sanitizers alike)."""
    opts = [f"-DMUSTER_VERSION={version}",
            f"-DCMAKE_BUILD_TYPE={cmake_cache('CMAKE_BUILD_TYPE') or 'RelWithDebInfo'}"]
    if (cmake_cache("MUSTER_SANITIZE") or "OFF").upper() in ("ON", "1", "TRUE"):
        opts.append("-DMUSTER_SANITIZE=ON")
    subprocess.run(["cmake", "-S", str(SOURCE_DIR), "-B", str(dest)] + opts,
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(dest), "-j2", "--target", "musterd",
                    "muster-runner"], check=True, stdout=subprocess.DEVNULL)
    return dest / "agent" / "musterd", dest / "runner" / "muster-runner"


def version_of(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    return out.stdout.split()[-1]


# ---- publishing a release (as `muster release publish` does) ------------------


def release_payloads(keys, channel: str, version: str, agent: bytes, runner: bytes,
                     rollout: int = 100, published_at: Optional[int] = None,
                     agent_sha: Optional[str] = None, agent_size: Optional[int] = None,
                     extra: Optional[dict] = None):
    """(pointer, {sha: artifact}) signed by the publisher; extra: more
    manifest keys (schedule, halt)."""
    a_sha = hashlib.sha256(agent).hexdigest()
    r_sha = hashlib.sha256(runner).hexdigest()
    manifest = pack({"v": 1, "kind": "release", "channel": channel, "version": version,
                     "agent_sha256": agent_sha or a_sha,
                     "agent_size": len(agent) if agent_size is None else agent_size,
                     "runner_sha256": r_sha, "runner_size": len(runner),
                     "published_at": published_at or now_ms(), "rollout": rollout,
                     **(extra or {})})
    sig = keys.pgp_sign(manifest)
    pointer = pack({"v": 1, "manifest": manifest, "sig": sig})
    arts = {agent_sha or a_sha: pack({"v": 1, "data": agent}),
            r_sha: pack({"v": 1, "data": runner})}
    return pointer, arts


def publish_release(pub, keys, channel, version, agent: bytes, runner: bytes, **kw):
    pointer, arts = release_payloads(keys, channel, version, agent, runner, **kw)
    for sha, art in arts.items():
        pub.publish(topic("artifacts", sha), art, retain=True)
    pub.publish(topic("releases", channel), pointer, retain=True)
    return pointer


# ---- an agent under a supervisor -----------------------------------------------


class UpdAgent(Agent):
    """An Agent running from its own copy of musterd and muster-runner,
    restarted like systemd's Restart=on-failure (after 200 ms) while
    `supervise` is on.  restarts counts the restarts."""

    def __init__(self, name, broker, keys, workdir, *, musterd=MUSTERD, runner=RUNNER,
                 update: Optional[dict] = None, **kw):
        workdir = Path(workdir)
        # Runners are exec'd as another user: the binaries' folder must be
        # reachable by it, which pytest's 0700 folders are not; and not
        # in /tmp, where a runner sees a /tmp of its own (a runner that is
        # a script is exec'd by path).
        self._bindir = Path(tempfile.mkdtemp(prefix=f"muster-upd-{name}-",
                                             dir="/run" if os.geteuid() == 0 else None))
        os.chmod(self._bindir, 0o755)
        bindir = self._bindir
        shutil.copy2(musterd, bindir / "musterd")
        shutil.copy2(runner, bindir / "muster-runner")
        extra = kw.pop("extra", {}) or {}
        upd = {"jitter": "0", "healthy": "2s", "selftest_timeout": "30s",
               "agent": str(bindir / "musterd")}
        upd.update(update or {})
        extra["update"] = {k: v for k, v in upd.items() if v is not None}
        super().__init__(name, broker, keys, workdir, binary=bindir / "musterd",
                         runner=bindir / "muster-runner", extra=extra, **kw)
        self.supervise = True
        self.restarts = 0
        self.exits: list[int] = []
        self._watch: Optional[threading.Thread] = None

    def start(self, wait_online: bool = True, timeout: float = 20) -> "UpdAgent":
        super().start(wait_online=False)
        if self._watch is None:
            self._watch = threading.Thread(target=self._supervise, daemon=True)
            self._watch.start()
        if wait_online:
            self.wait_status("online", timeout=timeout)
        return self

    def _supervise(self) -> None:
        while True:
            proc = self.proc
            if proc is None:
                time.sleep(0.05)
                continue
            rc = proc.wait()
            if not self.supervise or self.proc is not proc:
                if not self.supervise:
                    return
                continue
            self.exits.append(rc)
            if rc == 0:
                return		# Restart=on-failure: a clean exit stays down
            time.sleep(0.2)
            if not self.supervise:
                return
            self.restarts += 1
            Agent.start(self, wait_online=False)

    def stop(self, timeout: float = 15):
        self.supervise = False
        pgid = self.proc.pid if self.proc is not None else None
        rc = super().stop(timeout)
        # A crashing_wrapper() agent is a shell whose child is the real
        # musterd, and the rollback leaves that child running: end what
        # is left of the session (each start is a session of its own).
        if pgid is not None:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        return rc

    def cleanup(self) -> None:
        self.supervise = False
        super().cleanup()
        shutil.rmtree(self._bindir, ignore_errors=True)


def selftest_module(agent: Agent) -> None:
    """selftest.echo in the agent's modules_dir (the self-test finds it there)."""
    agent.modules_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(MODULES_DIR / "selftest.echo.so", agent.modules_dir / "selftest.echo.so")
    os.chmod(agent.modules_dir / "selftest.echo.so", 0o644)
