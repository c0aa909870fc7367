# SPDX-License-Identifier: Apache-2.0
"""`muster history` (issue 13): archived results through muster-server's
API, filtered by host, job and age, as text or JSON; the server from
[server] url or --server, with basic auth in the URL."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from muster_fixtures import MUSTER_CLI, SOURCE_DIR, run_cli, wait_until, write_cli_conf
from server_fixtures import (SERVER_BIN, Server, announce, publish_many, result_topic,
                             signed_result)

pytestmark = pytest.mark.skipif(not (SERVER_BIN.exists() and MUSTER_CLI.exists()),
                                reason="muster-server or muster is not built")


@pytest.fixture
def archived(broker, mqtt, tmp_path):
    """A server with results of h1 and h2 for jobs a, b (h1 fails b)."""
    pki = broker.pki
    s = Server(broker, tmp_path / "server").start()
    items = []
    for h in ("h1", "h2"):
        c = mqtt(h)
        announce(c, pki, h)
        items = [(result_topic(j, h), signed_result(pki, h, j, status=st,
                                                    summary=f"{j} on {h}\x1b[31m"))
                 for j, st in (("job-a", "pass"), ("job-b", "fail" if h == "h1" else "pass"))]
        publish_many(c, items)
    wait_until(lambda: s.sql("SELECT count(*) FROM results")[0][0] == 4, 10)
    yield s
    s.stop()


def lines(out: str) -> list[dict]:
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_history_filters_and_formats(archived, tmp_path):
    env = {"HOME": tmp_path}
    r = run_cli("history", "--server", archived.url, "--json", env=env)
    assert r.returncode == 0, r.stderr
    got = lines(r.stdout)
    assert sorted((x["job"], x["host"], x["status"]) for x in got) == [
        ("job-a", "h1", "pass"), ("job-a", "h2", "pass"),
        ("job-b", "h1", "fail"), ("job-b", "h2", "pass")]
    r = run_cli("history", "--server", archived.url, "--json", "--host", "h1",
                "--job", "job-b", env=env)
    assert [(x["job"], x["host"]) for x in lines(r.stdout)] == [("job-b", "h1")]
    r = run_cli("history", "--server", archived.url, "--json", "--since", "1h",
                "--limit", "3", env=env)
    assert len(lines(r.stdout)) == 3
    # Text: one line per result, host text made safe for the terminal.
    r = run_cli("history", "--server", archived.url, "--host", "h1", env=env)
    assert r.returncode == 0
    rows = r.stdout.splitlines()
    assert len(rows) == 2 and all(" h1  job-" in x for x in rows), r.stdout
    assert "\x1b" not in r.stdout and "\\x1b[31m" in r.stdout
    # From the config file.
    conf = tmp_path / "muster.conf"
    write_cli_conf(conf, archived.broker, extra=f"\n[server]\nurl = {archived.url}\n")
    r = run_cli("history", "--json", conf=conf, env=env)
    assert r.returncode == 0 and len(lines(r.stdout)) == 4, r.stderr


def test_history_errors(archived, tmp_path):
    env = {"HOME": tmp_path}
    for args in (["--host", "Bad/Host"], ["--since", "soon"], ["--limit", "0"],
                 ["--limit", "5000"], ["extra"]):
        r = run_cli("history", "--server", archived.url, *args, env=env)
        assert r.returncode == 2, args
    r = run_cli("history", env=env)
    assert r.returncode == 2 and "no server URL" in r.stderr
    r = run_cli("history", "--server", "https://x", env=env)
    assert r.returncode == 2 and "bad server URL" in r.stderr
    from muster_fixtures import free_port
    r = run_cli("history", "--server", f"http://127.0.0.1:{free_port()}", env=env)
    assert r.returncode == 2 and "no answer" in r.stderr


def test_history_basic_auth(broker, tmp_path):
    h = subprocess.run(["openssl", "passwd", "-6", "pw"], stdout=subprocess.PIPE,
                       text=True, check=True).stdout.strip()
    (tmp_path / "users").write_text(f"ops:{h}\n")
    s = Server(broker, tmp_path / "server",
               extra={"server": {"auth_file": str(tmp_path / "users")}}).start()
    try:
        env = {"HOME": tmp_path}
        r = run_cli("history", "--server", s.url, env=env)
        assert r.returncode == 2 and "401" in r.stderr
        r = run_cli("history", "--server", s.url.replace("http://", "http://ops:pw@"),
                    env=env)
        assert r.returncode == 0 and "no results archived" in r.stdout, r.stderr
    finally:
        s.stop()


def test_history_from_the_shipped_example(archived, tmp_path):
    """packaging/muster.conf.example (installed as the CLI's example) names
    the server in an active [server] url, so `muster history` works from it
    without --server (issue 19: it had none).  Only the address is changed,
    to this test's server."""
    example = (SOURCE_DIR / "packaging" / "muster.conf.example").read_text()
    m = re.search(r"^\[server\][^\[]*?^url = (http://\S+)", example, re.M)
    assert m, "the example muster.conf has no active [server] url"
    conf = tmp_path / "muster.conf"
    conf.write_text(example[:m.start(1)] + archived.url + example[m.end(1):])
    r = run_cli("history", "--json", conf=conf, env={"HOME": tmp_path})
    assert r.returncode == 0, r.stderr
    assert len(lines(r.stdout)) == 4, r.stdout
