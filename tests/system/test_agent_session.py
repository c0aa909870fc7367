# SPDX-License-Identifier: Apache-2.0
"""The agent's session and service integration: MQTT 3.1.1 as well as 5,
fail-over between broker URIs, the local module folder's file checks, and
systemd's notify protocol (READY, WATCHDOG, STOPPING) over a real
NOTIFY_SOCKET."""
import os
import re
import socket
import time

import pytest

from muster_fixtures import (
    assert_no_sanitizer_reports, free_port, install_modules, new_job, run_job,
    start_fresh, wait_until,
)


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


def ping(op, operator, host):
    return run_job(op, operator, new_job("ping", f"host/{host}", ttl_s=30), [host],
                   timeout=10)[host]


def test_mqtt_311(agents, mqtt, operator):
    a = agents("h1", extra={"broker": {"protocol": "3.1.1"}})
    start_fresh(a)
    op = mqtt("op:alice")
    assert ping(op, operator, "h1")["status"] == "pass"
    # The will and the goodbye work the same way under 3.1.1.
    a.stop()
    assert a.wait_status("offline", timeout=10)["reason"] == "shutdown"


def test_failover_to_the_second_uri(agents, broker, mqtt, operator):
    dead = free_port()
    a = agents("h1", extra={"broker": {
        "uri": f"ssl://localhost:{dead}, {broker.uri}",
        "retry_min": "100ms", "retry_max": "500ms"}})
    start_fresh(a)
    assert ping(mqtt("op:alice"), operator, "h1")["status"] == "pass"


@pytest.mark.parametrize("spoil, reason", [
    (lambda p: os.chmod(p, 0o666), "writable by others"),
    (lambda p: os.chmod(p, 0o664), "writable by others"),
])
def test_module_file_must_be_ours_alone(agents, mqtt, operator, spoil, reason):
    a = agents("h1")
    install_modules(a, "os.release")
    spoil(a.modules_dir / "os.release.so")
    start_fresh(a)
    r = run_job(mqtt("op:alice"), operator,
                new_job("run", "host/h1", module="os.release"), ["h1"], timeout=10)["h1"]
    assert r["status"] == "error"
    assert reason in r["reason"], r


def test_module_symlink_refused(agents, mqtt, operator, tmp_path):
    a = agents("h1")
    install_modules(a, "os.release")
    real = a.modules_dir / "os.release.so"
    other = tmp_path / "elsewhere.so"
    real.rename(other)
    real.symlink_to(other)
    start_fresh(a)
    op = mqtt("op:alice")
    r = run_job(op, operator, new_job("run", "host/h1", module="os.release"),
                ["h1"], timeout=10)["h1"]
    assert r["status"] == "error"
    assert "symlink" in r["reason"], r
    # The same file, not through a link, runs.
    real.unlink()
    other.rename(real)
    r = run_job(op, operator, new_job("run", "host/h1", module="os.release"),
                ["h1"], timeout=10)["h1"]
    assert r["status"] in ("pass", "fail"), r


def test_sd_notify(agents, monkeypatch, tmp_path):
    """READY once set up, WATCHDOG at half the interval systemd
    asks for, STOPPING on SIGTERM: what Type=notify and WatchdogSec= need."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    a = agents("h1")
    a.start(wait_online=False)
    got = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and got.count(b"WATCHDOG=1") < 3:
        try:
            got.append(sock.recv(4096))
        except socket.timeout:
            pass
    # READY once the network process is set up (issue 19); before it,
    # only STATUS lines.
    ready = [i for i, m in enumerate(got) if m.split(b"\n")[0] == b"READY=1"]
    assert len(ready) == 1, got
    assert all(m.startswith(b"STATUS=") for m in got[:ready[0]]), got
    assert got.count(b"WATCHDOG=1") >= 3, got
    a.stop()
    rest = []
    try:
        while True:
            rest.append(sock.recv(4096))
    except socket.timeout:
        pass
    assert b"STOPPING=1" in rest, rest
    sock.close()


def first_waits_after_loss(agents, broker, splay: str, losses: int) -> list[float]:
    """The first "reconnecting in" of each lost session (broker restarts)."""
    a = agents("h1", extra={"broker": {
        "retry_min": "100ms", "retry_max": "500ms", "reconnect_splay": splay}})
    start_fresh(a)
    waits = []
    for _ in range(losses):
        mark = len(a.log())
        broker.restart()
        m = wait_until(lambda: re.search(r"connection lost.*\n(?:.*\n)*?.*"
                                         r"reconnecting in ([\d.]+) s",
                                         a.log()[mark:]), 10,
                       what="the agent to notice the restart")
        waits.append(float(m.group(1)))
        wait_until(lambda: "connected to the broker" in a.log()[mark:], 15,
                   what="the agent back")
    a.stop()
    return waits


def test_reconnect_splay_spreads_the_first_wait(agents, broker):
    """After a lost session the first wait is the back-off step (50-150 % of
    retry_min: 0.05-0.15 s) plus a random 0..reconnect_splay, so a fleet
    that lost its broker together does not come back in the same second;
    with 0 it is the back-off alone."""
    spread = first_waits_after_loss(agents, broker, "2s", 4)
    plain = first_waits_after_loss(agents, broker, "0", 3)
    print(f"\nfirst waits, splay 2 s: {spread}; splay 0: {plain}")
    # (The log rounds to 0.1 s.)
    assert all(0.0 <= w <= 2.2 for w in spread), spread
    # Four draws all below 0.3 s: odds about (0.15 / 2)^4, 3e-5.
    assert max(spread) > 0.3, spread
    assert all(0.0 <= w <= 0.2 for w in plain), plain
