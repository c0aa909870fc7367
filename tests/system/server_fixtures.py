# SPDX-License-Identifier: Apache-2.0
"""server_fixtures - helpers for muster-server's system tests.

A real muster-server (build/server/muster-server) with its own server.conf
against the test broker, with the PKI's server certificate (CN srv:main);
HTTP on a free loopback port; an SQLite archive in its folder unless the
test gives a URL.  Plus: signed results forged or genuine for the burst
tests, a small HTTP client, PostgreSQL in a temp dir, and the headless
browser.  Run with /usr/bin/python3 (design.md §9).
"""
from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

from muster_fixtures import (BUILD_DIR, Broker, free_port, host_sign, now_ms, pack,
                             terminate, topic, wait_until, sanitizer_report)

SERVER_BIN = BUILD_DIR / "server" / "muster-server"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("MUSTER_ARTIFACTS") or (BUILD_DIR / "test-artifacts"))


class Server:
    """Drives muster-server: writes server.conf, runs it in the foreground
    with output to server.log."""

    def __init__(self, broker: Broker, workdir: os.PathLike, *, name: str = "main",
                 cn: str = "srv:main", archive: Optional[str] = None,
                 extra: Optional[dict[str, dict]] = None, port: Optional[int] = None):
        self.broker = broker
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = port or free_port()
        self.archive = archive or str(self.dir / "archive.db")
        self.db = Path(self.archive)	# meaningful for SQLite only
        self.conf_path = self.dir / "server.conf"
        self.log_path = self.dir / "server.log"
        self.proc: Optional[subprocess.Popen] = None
        pki = broker.pki
        self.conf: dict[str, dict[str, str]] = {
            # user: --check-config as root checks access as [server] user
            # (default muster-server, which the package makes): the tests'.
            "server": {"name": name, "listen": "127.0.0.1", "port": str(self.port),
                       "log_level": "debug",
                       "user": pwd.getpwuid(os.geteuid()).pw_name},
            "broker": {"uri": broker.uri, "ca": str(pki.ca), "cert": str(pki.cert(cn)),
                       "key": str(pki.key(cn)), "keepalive": "5s", "retry_max": "2s"},
            "archive": {"url": self.archive, "batch": "20ms"},
        }
        for sec, kv in (extra or {}).items():
            self.conf.setdefault(sec, {}).update(kv)
        self.write_conf()

    def write_conf(self) -> Path:
        text = ""
        for sec, kv in self.conf.items():
            text += f"[{sec}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items()) + "\n"
        self.conf_path.write_text(text)
        return self.conf_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15) -> "Server":
        # Only this start's lines count: the log keeps the earlier ones.
        self._mark = len(self.log())
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(SERVER_BIN), "-c", str(self.conf_path)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 15) -> None:
        """HTTP answers and the broker session is up (its log says so)."""
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"muster-server exited {self.proc.returncode}:\n"
                                     + self.log()[-4000:])
            return ("connected to the broker" in self.log()[getattr(self, "_mark", 0):]
                    and self.http_ok())
        wait_until(ready, timeout, what="muster-server ready")

    def http_ok(self) -> bool:
        try:
            self.get("/metrics", timeout=1)
            return True
        except urllib.error.HTTPError:
            return True		# it answers (401 with auth on)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = 15) -> Optional[int]:
        if self.proc is None:
            return None
        clean = terminate(self.proc, timeout)
        assert clean, "muster-server needed SIGKILL:\n" + self.log()[-3000:]
        rep = sanitizer_report(self.log())
        assert rep is None, f"sanitizer report from muster-server:\n{rep}"
        return self.proc.returncode

    def kill9(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ---- HTTP ----
    def get(self, path: str, auth: Optional[tuple[str, str]] = None,
            timeout: float = 10) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(self.url + path)
        if auth is not None:
            tok = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            req.add_header("Authorization", "Basic " + tok)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()

    def api(self, path: str, **kw) -> Any:
        status, _, body = self.get(path, **kw)
        assert status == 200
        return json.loads(body)

    def metrics(self) -> str:
        return self.get("/metrics")[2].decode()

    # ---- the archive (SQLite) ----
    def sql(self, query: str, *args) -> list[tuple]:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(query, args).fetchall()
        finally:
            con.close()


def metric_value(text: str, name: str, labels: Optional[dict[str, str]] = None) -> float:
    """The value of one sample of the text format (0 when absent)."""
    want = labels or {}
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, val = line.rpartition(" ")
        base, _, lab = key.partition("{")
        if base != name:
            continue
        got = {}
        for part in lab.rstrip("}").split(","):
            if "=" in part:
                k, _, v = part.partition("=")
                got[k] = v.strip('"')
        if all(got.get(k) == v for k, v in want.items()):
            total += float(val)
            found = True
    return total if found else 0.0


def signed_result(pki, host: str, job: str, status: str = "pass",
                  module: Optional[str] = "os.release", signer: Optional[str] = None,
                  **fields) -> bytes:
    """A result envelope for host, signed with signer's key (default: the
    host's own) - as musterd writes it."""
    t = now_ms()
    body = {"v": 1, "job": job, "host": host, "kind": "run" if module else "ping",
            "status": status, "started_at": t - 5, "finished_at": t,
            "agent_version": "0.1.0"}
    if module:
        body["module"] = module
    body.update(fields)
    s = signer or host
    return host_sign(pki.sign_key(s), pki.sign_cert(s), body)


def result_topic(job: str, host: str) -> str:
    return topic("results", job, host)


# ---- PostgreSQL in a temporary folder -------------------------------------------


def pg_available() -> Optional[str]:
    """None when a throw-away PostgreSQL can be started here, else why not."""
    if not (PG_BIN / "initdb").exists():
        return f"{PG_BIN}/initdb not installed (Debian package postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser"
    return None


class Postgres:
    """initdb + pg_ctl in a temp dir, listening on a free loopback port;
    as user postgres when run as root (initdb refuses root)."""

    def __init__(self, workdir: os.PathLike):
        self.dir = Path(workdir)
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=120)

    def start(self) -> "Postgres":
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(self.dir, self.user, self.user)
            os.chmod(self.dir, 0o755)	# its parents: the caller's (open) folder
        r = self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                      "-U", "muster", "--no-sync")
        assert r.returncode == 0, r.stdout
        r = self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                      str(self.dir / "pg.log"), "-o",
                      f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                      "start")
        assert r.returncode == 0, r.stdout + self.log()
        r = self._run(str(PG_BIN.parent / "bin" / "psql") if (PG_BIN / "psql").exists()
                      else "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "muster",
                      "-d", "postgres", "-c", "CREATE DATABASE muster")
        assert r.returncode == 0, r.stdout
        return self

    @property
    def url(self) -> str:
        return f"postgresql://muster@127.0.0.1:{self.port}/muster"

    def query(self, sql: str) -> list[list[str]]:
        r = self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "muster",
                      "-d", "muster", "-At", "-F", "\t", "-c", sql)
        assert r.returncode == 0, r.stdout
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def log(self) -> str:
        p = self.dir / "pg.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


# ---- the headless browser ------------------------------------------------------------


def browser_available() -> Optional[str]:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "python3-selenium not installed"
    if not CHROMEDRIVER.exists():
        return f"{CHROMEDRIVER} not installed (Debian package chromium-driver)"
    return None


def chromium(profile: os.PathLike):
    """A headless chromium (selenium) with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for a in ("--headless", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update",
              "--no-first-run", "--window-size=1280,900",
              f"--user-data-dir={profile}"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


def signed_status(pki, host: str, state: str = "online", **fields) -> bytes:
    """A retained status envelope for host, signed by host, carrying its
    certificate - as musterd publishes it."""
    from muster_fixtures import cert_der
    t = now_ms()
    body = {"v": 1, "host": host, "state": state, "version": "0.1.0",
            "channel": "stable", "groups": [], "started_at": t, "at": t,
            "cert_der": cert_der(pki.sign_cert(host))}
    body.update(fields)
    return host_sign(pki.sign_key(host), pki.sign_cert(host), body)


def announce(client, pki, host: str, state: str = "online", **fields) -> None:
    """Publish host's retained status with the host's own client."""
    client.publish(topic("hosts", host, "status"), signed_status(pki, host, state, **fields),
                   qos=1, retain=True)


def publish_many(client, items: list[tuple[str, bytes]], window: int = 200) -> float:
    """Publish (topic, payload) pairs at QoS 1 as fast as the broker acks,
    with at most `window` in flight; returns the seconds it took."""
    t0 = time.monotonic()
    pending = []
    for t, p in items:
        info = client.paho.publish(t, p, qos=1)
        pending.append(info)
        if len(pending) >= window:
            for i in pending:
                i.wait_for_publish(10)
            pending = []
    for i in pending:
        i.wait_for_publish(10)
    return time.monotonic() - t0
