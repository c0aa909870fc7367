#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The Python binding's per-job cost against the CLI's (issue 26's measure:
1,000 sequential one-host jobs from one Python process).

  bench-python-client.py HOST [JOBS [CLI_RUNS]]

With MUSTER_CONFIG set (and, for a build tree, PYTHONPATH=<src>/python and
MUSTER_CLIENT_LIB=<build>/client/libmuster-client.so.0; MUSTER_CLI the
muster binary, default `muster` on PATH).  Prints one line per measure,
"name p50_ms p90_ms total_s": JOBS pings through one Session (the
connection kept), CLI_RUNS `muster ping -H HOST` processes, and CLI_RUNS
one-shot muster.ping() calls (a session each: connect, job, close).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import muster


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]


def report(name: str, lat: list[float], total: float) -> None:
    print(f"{name} {1000 * pct(lat, 50):.2f} {1000 * pct(lat, 90):.2f} {total:.2f}")


def timed(fn: object, n: int) -> tuple[list[float], float]:
    lat = []
    t0 = time.monotonic()
    for _ in range(n):
        a = time.monotonic()
        fn()  # type: ignore[operator]
        lat.append(time.monotonic() - a)
    return lat, time.monotonic() - t0


def main() -> int:
    host = sys.argv[1]
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    cli = os.environ.get("MUSTER_CLI", "muster")

    with muster.Session() as s:
        def one() -> None:
            (r,) = list(s.ping(hosts=[host]))
            assert r.status == "pass", r
        report(f"session-ping-x{jobs}", *timed(one, jobs))

    def proc() -> None:
        subprocess.run([cli, "ping", "-H", host], check=True, stdout=subprocess.DEVNULL)
    report(f"cli-ping-x{runs}", *timed(proc, runs))

    def oneshot() -> None:
        (r,) = list(muster.ping(hosts=[host]))
        assert r.status == "pass", r
    report(f"oneshot-ping-x{runs}", *timed(oneshot, runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
