# SPDX-License-Identifier: Apache-2.0
"""muster-server over HTTP (issue 13): /metrics through Prometheus' own
parser (promtool) with numbers checked against a real fleet, basic auth,
the API's bounds on query values."""
from __future__ import annotations

import base64
import http.client
import json
import shutil
import subprocess
import time
import urllib.error

import pytest

from muster_fixtures import (collect_results, install_modules, new_job, send_job,
                             wait_until, watch_results)
from server_fixtures import SERVER_BIN, Server, metric_value

pytestmark = pytest.mark.skipif(not SERVER_BIN.exists(), reason=f"{SERVER_BIN} is not built")
PROMTOOL = shutil.which("promtool")


@pytest.fixture
def server(broker, tmp_path):
    s = Server(broker, tmp_path / "server")
    yield s
    if s.running:
        s.stop()


def promtool_check(text: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_metrics_parse_and_match_the_fleet(server, agents, op_client, operator):
    server.start()
    fleet = {h: agents(h) for h in ("h1", "h2", "h3")}
    for a in fleet.values():
        install_modules(a, "os.release")
        a.start()
    ping = new_job("ping", "all")
    run = new_job("run", "group/web", module="os.release")
    for j, hosts in ((ping, ["h1", "h2", "h3"]), (run, ["h1", "h2"])):
        watch_results(op_client, j["id"])
        send_job(op_client, operator, j)
        got = collect_results(op_client, j["id"], hosts)
        assert set(got) == set(hosts)
    wait_until(lambda: metric_value(server.metrics(), "muster_archive_results_total") == 5,
               15, what="5 results archived")
    text = server.metrics()
    r = promtool_check(text)
    assert r.returncode == 0, r.stdout + "\n" + text
    assert metric_value(text, "muster_hosts", {"state": "online"}) == 3
    assert metric_value(text, "muster_hosts", {"state": "offline"}) == 0
    assert metric_value(text, "muster_hosts", {"channel": "stable"}) == 3
    assert metric_value(text, "muster_results_total", {"module": ""}) == 3	# the pings
    assert metric_value(text, "muster_results_total", {"module": "os.release"}) == 2
    passed = metric_value(text, "muster_results_total", {"status": "pass"})
    assert passed == 5
    assert metric_value(text, "muster_job_duration_seconds_count") == 5
    assert metric_value(text, "muster_job_duration_seconds_bucket", {"le": "+Inf"}) == 5
    assert metric_value(text, "muster_messages_forged_total") == 0
    assert metric_value(text, "muster_archive_size_bytes") > 0
    # A host going away is seen at once.
    fleet["h3"].stop()
    wait_until(lambda: metric_value(server.metrics(), "muster_hosts", {"state": "offline"}) == 1,
               15, what="h3 offline in the metrics")
    text = server.metrics()
    assert metric_value(text, "muster_hosts", {"state": "online"}) == 2
    assert promtool_check(text).returncode == 0
    # And the API agrees.
    hosts = {h["host"]: h["state"] for h in server.api("/api/hosts")["hosts"]}
    assert hosts == {"h1": "online", "h2": "online", "h3": "offline"}
    jobs = {j["job"]: j for j in server.api("/api/jobs")["jobs"]}
    assert jobs[ping["id"]]["total"] == 3 and jobs[ping["id"]]["pass"] == 3
    assert jobs[run["id"]]["total"] == 2 and jobs[run["id"]]["module"] == "os.release"


def status_of(server, path, auth=None) -> int:
    try:
        return server.get(path, auth=auth)[0]
    except urllib.error.HTTPError as e:
        return e.code


def test_basic_auth(server, tmp_path):
    """With an auth file nothing is served without the password."""
    h = subprocess.run(["openssl", "passwd", "-6", "s3cret pass"], stdout=subprocess.PIPE,
                       text=True, check=True).stdout.strip()
    f = tmp_path / "users"
    f.write_text(f"# muster-server users\nalice:{h}\n")
    server.conf["server"]["auth_file"] = str(f)
    server.write_conf()
    server.start()
    paths = ["/", "/index.html", "/app.js", "/metrics", "/api/hosts", "/api/jobs",
             "/api/results?host=h1", "/api/events", "/api/jobs/x/results", "/nope"]
    for p in paths:
        assert status_of(server, p) == 401, p
        assert status_of(server, p, auth=("alice", "wrong")) == 401, p
        assert status_of(server, p, auth=("bob", "s3cret pass")) == 401, p
    try:
        server.get("/api/hosts")
    except urllib.error.HTTPError as e:
        assert 'Basic realm="muster-server"' in e.headers.get("WWW-Authenticate", "")
    ok = ("alice", "s3cret pass")
    for p in ["/", "/app.js", "/metrics", "/api/hosts", "/api/jobs"]:
        assert status_of(server, p, auth=ok) == 200, p


def test_api_bounds(server):
    server.start()
    for p in ["/api/results?limit=0", "/api/results?limit=1001", "/api/results?limit=-1",
              "/api/results?limit=1x", "/api/results?offset=99999999999",
              "/api/results?since=yesterday", "/api/results?host=Bad/Host",
              "/api/results?job=" + "j" * 65, "/api/results?host=" + "h" * 200]:
        assert status_of(server, p) == 400, p
    for p in ["/api/nothing", "/api/jobs/x", "/api/jobs/x/other", "/api/hosts/BAD/history",
              "/../etc/passwd", "/server.conf"]:
        assert status_of(server, p) == 404, p
    assert status_of(server, "/api/results?limit=1000&since=1h&host=h1&job=j-1") == 200
    body = json.loads(server.get("/api/results?host=h1")[2])
    assert body == {"results": []}
    # Read-only.
    import urllib.request
    req = urllib.request.Request(server.url + "/api/hosts", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code in (405, 413)


def test_check_config(tmp_path, broker):
    s = Server(broker, tmp_path / "cc")
    r = subprocess.run([str(SERVER_BIN), "--check-config", "-c", str(s.conf_path)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0 and ": ok" in r.stdout, r.stdout
    s.conf["archive"]["max_size"] = "lots"
    s.write_conf()
    r = subprocess.run([str(SERVER_BIN), "--check-config", "-c", str(s.conf_path)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 1
    assert "[archive] max_size: bad size 'lots'" in r.stdout, r.stdout
    assert f"{s.conf_path}:" in r.stdout


def raw_get(server, path, host, auth=None, body=True):
    """GET with exactly this Host header (None: none at all)."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        c.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            c.putheader("Host", host)
        if auth is not None:
            tok = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            c.putheader("Authorization", "Basic " + tok)
        c.endheaders()
        r = c.getresponse()
        return r.status, r.headers, (r.read() if body else b"")
    finally:
        c.close()


def test_foreign_host_is_refused_without_auth(server):
    """DNS rebinding (issue 22, item 8): a page at a name of the attacker's,
    pointed at 127.0.0.1, sends that name as Host; without auth only our
    own address (and localhost forms of a loopback one) is served."""
    server.start()
    port = server.port
    paths = ["/", "/app.js", "/metrics", "/api/hosts", "/api/jobs", "/api/events"]
    for host in ["evil.example", f"evil.example:{port}", f"localhost.evil.example:{port}",
                 f"127.0.0.1.evil.example:{port}", f"127.0.0.1:{port + 1}", "10.0.0.1",
                 f"[::1]:{port}x", "", None]:
        for p in paths:
            st, _, _ = raw_get(server, p, host, body=p != "/api/events")
            assert st in ((421,) if host is not None else (400, 421)), (host, p, st)
    # Control: the same requests with our own address are served.
    for host in ["127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LocalHost:{port}",
                 f"[::1]:{port}"]:
        for p in paths:
            st, _, _ = raw_get(server, p, host, body=p != "/api/events")
            assert st == 200, (host, p, st)


def test_foreign_host_is_served_with_auth(server, tmp_path):
    h = subprocess.run(["openssl", "passwd", "-6", "pw"], stdout=subprocess.PIPE,
                       text=True, check=True).stdout.strip()
    (tmp_path / "users").write_text(f"alice:{h}\n")
    server.conf["server"]["auth_file"] = str(tmp_path / "users")
    server.write_conf()
    server.start()
    host = f"ctl1.example.net:{server.port}"
    assert raw_get(server, "/api/hosts", host)[0] == 401
    assert raw_get(server, "/api/hosts", host, auth=("alice", "pw"))[0] == 200


def test_security_headers_on_every_response(server):
    server.start()
    host = f"127.0.0.1:{server.port}"
    cases = {"/": 200, "/app.js": 200, "/style.css": 200, "/metrics": 200,
             "/api/hosts": 200, "/api/events": 200, "/nope": 404,
             "/api/results?limit=0": 400}
    got = {p: raw_get(server, p, host, body=p != "/api/events") for p in cases}
    got["foreign Host"] = raw_get(server, "/", "evil.example")
    cases["foreign Host"] = 421
    for p, (st, hdr, _) in got.items():
        assert st == cases[p], (p, st)
        assert hdr.get("X-Content-Type-Options") == "nosniff", (p, dict(hdr))
        csp = hdr.get("Content-Security-Policy", "")
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, (p, csp)
        assert "frame-ancestors 'none'" in csp, (p, csp)


def test_basic_auth_takes_as_long_for_unknown_users(server, tmp_path):
    """crypt() runs for a name not in the file too, so the time taken does
    not tell which names exist.  A costly hash (many SHA-512 rounds) makes
    the difference one of a crypt() against none."""
    h = subprocess.run(["openssl", "passwd", "-6", "-salt", "saltsalt", "pw"],
                       stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    # More rounds in the setting (crypt(3) reads rounds= from it): the
    # digest no longer matches, which is fine, only wrong passwords are
    # tried here.
    slow = h.replace("$6$", "$6$rounds=2000000$", 1)
    (tmp_path / "users").write_text(f"alice:{slow}\n")
    server.conf["server"]["auth_file"] = str(tmp_path / "users")
    server.write_conf()
    server.start()

    def took(user):
        t = time.monotonic()
        assert status_of(server, "/api/hosts", auth=(user, "wrong")) == 401
        return time.monotonic() - t

    known = min(took("alice") for _ in range(2))
    unknown = min(took("mallory") for _ in range(2))
    assert known > 0.1, f"the slow hash is not slow ({known:.3f}s): the test shows nothing"
    assert unknown > known / 2, (known, unknown)
