# SPDX-License-Identifier: Apache-2.0
"""Releases that roll themselves out and stop themselves (issue 25): signed
schedules, the update states in status, the fleet-wide halt (an
operator's, and muster-server's from the hosts' self-test verdicts), and
the progress the CLI and the server show.  Real broker, muster-server and
agents updating to a second build (update_fixtures), as test_update.py;
apart from it so that ctest runs the two side by side."""
import hashlib
import json
import os
import random
import re
import time

import pytest

from muster_fixtures import (
    cert_der, host_sign, log_count, now_ms, pack, run_cli, topic,
    unpack, wait_until,
)
from server_fixtures import Server
from update_fixtures import V1, V2, publish_release, release_payloads, version_of
# The fixtures and helpers of the self-update suite (pytest takes the
# fixtures from this module's namespace).
from test_update import (  # noqa: F401
    CHANNEL, bucket, cli_conf, no_sanitizer_reports, op, ping, pub, server, update_state,
    upd_agents, v2, wait_update, wait_version,
)

@pytest.mark.parametrize("schedule, words", [
    ([[1000, 10], [1000, 50]], ["schedule step 2", "not after step 1"]),
    ([[1000, 50], [2000, 10]], ["schedule step 2", "below step 1"]),
    ([[1000, 101]], ["schedule step 1"]),
    ([[i * 1000, 100] for i in range(1, 34)], ["more than 32 steps", "1 to 32"]),
    ("soon", ["schedule"]),
])
def test_bad_schedule_refused(upd_agents, server, op, operator, pub, keys, v2, schedule,
                              words):
    """A validly signed release whose schedule breaks the rules is refused
    with the reason, and the host stays where it is."""
    a = upd_agents("h1").start()
    publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes(),
                    extra={"schedule": schedule})
    st = wait_update(a, "refused", 30)
    reason = st["update"].get("reason", "")
    assert any(w in reason for w in words), reason
    assert st["version"] == V1
    ping(op, operator, a)


def test_cli_release_schedule(upd_agents, server, broker, keys, tmp_path, v2):
    """`muster release publish --schedule`: the steps signed once, shown with
    the step in force; bad schedules refused by the CLI before anything is
    published; `release rollout N` replaces the schedule."""
    home = tmp_path / "home"
    home.mkdir()
    pubc = cli_conf(tmp_path / "pub.conf", broker, keys, "pub:release")

    def cli(*args, timeout=60):
        return run_cli(*args, conf=pubc, env={"HOME": home}, timeout=timeout)

    base = ["release", "publish", "--channel", CHANNEL, "--version", V2,
            "--agent", v2[0], "--runner", v2[1]]
    for bad, words in [("10%,5%@+1h", "lowers the percent"),
                       ("10%,50%@-1h", "bad time"),
                       ("10%,50%", "when?"),
                       ("10%@+2h,50%@+1h", "is not after step 1"),
                       ("101%", "0%..100%"),
                       (",".join(f"{i}%@+{i}h" for i in range(1, 34)), "more than 32"),
                       ]:
        r = cli(*base, "--schedule", bad)
        assert r.returncode == 2 and words in r.stderr, (bad, r.stderr)
    r = cli(*base, "--schedule", "1%", "--rollout", "5")
    assert r.returncode == 2 and "not both" in r.stderr, r.stderr
    r = cli(*base, "--halt", "failed=20%")
    assert r.returncode == 2 and "--halt wants" in r.stderr, r.stderr
    r = cli("release", "show", "--channel", CHANNEL, "--json")
    assert r.returncode == 1, r.stdout	# nothing was published

    t = now_ms()
    r = cli(*base, "--schedule", "0%,10%@+1h,100%@2099-01-01T00:00Z",
            "--halt", "failed=20%,min=5", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    steps = out["schedule"]
    assert [p for _, p in steps] == [0, 10, 100] and out["rollout"] == 0
    assert t <= steps[0][0] <= now_ms()
    assert abs(steps[1][0] - steps[0][0] - 3600_000) < 5000
    assert steps[2][0] == 4070908800000
    assert out["halt"] == {"failed_pct": 20, "min_hosts": 5}
    r = cli("release", "show", "--channel", CHANNEL)
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^{CHANNEL}: {re.escape(V2)}, rollout 0%", r.stdout, re.M), r.stdout
    assert "schedule: step 1 of 3 (0%), next 10% at " in r.stdout, r.stdout
    r = cli("release", "rollout", "--channel", CHANNEL, "30", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rollout"] == 30 and "schedule" not in out
    assert out["halt"] == {"failed_pct": 20, "min_hosts": 5}


# ---- halting a release (issue 25) --------------------------------------------------

HALT_CHANNEL = "halting"


def halt_body(version, at=None, channel=HALT_CHANNEL, reason="too many hosts failed it",
              **kw):
    return {"v": 1, "kind": "halt", "channel": channel, "version": version,
            "reason": reason, "at": at or now_ms(), **kw}


def server_halt(pki, body, key=None, cert=None, der_of=None):
    """A halt signed as muster-server signs it: its signing pair, its
    certificate in the body (cert_der)."""
    key = key or pki.dir / "srv" / "main.sign.key"
    cert = cert or pki.dir / "srv" / "main.sign.crt"
    return host_sign(key, cert, dict(body, cert_der=cert_der(der_of or cert)))


@pytest.fixture
def halt_topic(pub):
    t = topic("releases", HALT_CHANNEL, "halt")
    yield t
    pub.publish(t, b"", retain=True)	# the broker outlives the test


def test_operator_halt_stops_release_until_a_newer_one(upd_agents, server, broker, keys,
                                                       op, operator, pub, tmp_path, v2,
                                                       halt_topic):
    """`muster release halt`: the host does not take the halted version (its
    status says why), and a release published after the halt lifts it."""
    a = upd_agents("h1", channel=HALT_CHANNEL).start()
    opc = cli_conf(tmp_path / "op.conf", broker, keys, "op:alice")
    r = run_cli("release", "halt", "--channel", HALT_CHANNEL, "--version", V2,
                "--reason", "canary broke", "--json", conf=opc, env={"HOME": tmp_path})
    assert r.returncode == 0, r.stderr
    halted_at = json.loads(r.stdout)["at"]
    st = wait_update(a, "halted")
    assert st["update"]["version"] == V2 and "canary broke" in st["update"]["reason"], st
    assert log_count(a, "is halted (by operator key") == 1
    agent_b, runner_b = v2[0].read_bytes(), v2[1].read_bytes()
    publish_release(pub, keys, HALT_CHANNEL, V2, agent_b, runner_b,
                    published_at=halted_at - 1000)
    wait_until(lambda: log_count(a, f"release {V2} is halted on channel") >= 1, 20,
               what="the network process skips the halted release")
    ping(op, operator, a)
    assert a.status()["version"] == V1
    assert log_count(a, "both binaries fetched") == 0

    def progress():
        r = run_cli("release", "show", "--channel", HALT_CHANNEL, "--json", conf=opc,
                    env={"HOME": tmp_path})
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["progress"]
    assert progress() == {"attempted": 0, "healthy": 0, "testing": 0, "failed": 0,
                          "halted": 1, "pending": 0}
    # Published after the halt: lifted.
    publish_release(pub, keys, HALT_CHANNEL, V2, agent_b, runner_b, published_at=now_ms())
    wait_version(a, V2, timeout=90)
    wait_update(a, "healthy")
    assert progress() == {"attempted": 1, "healthy": 1, "testing": 0, "failed": 0,
                          "halted": 0, "pending": 0}


def test_server_halt_is_honoured(upd_agents, server, broker, op, operator, pub, v2,
                                 halt_topic):
    a = upd_agents("h1", channel=HALT_CHANNEL).start()
    pki = broker.pki
    at = now_ms()
    pub.publish(halt_topic, server_halt(pki, halt_body(V2, at, failed=3, attempted=5)),
                retain=True)
    st = wait_update(a, "halted")
    assert st["update"]["version"] == V2, st
    assert log_count(a, "is halted (by srv:main)") == 1
    ping(op, operator, a)


def test_forged_halts_ignored(upd_agents, server, broker, keys, untrusted_keys, op,
                              operator, pub, v2, halt_topic):
    """Each forgery is ignored and counted; the release then goes ahead."""
    a = upd_agents("h1", channel=HALT_CHANNEL).start()
    pki = broker.pki
    at = now_ms()
    good = server_halt(pki, halt_body(V2, at))
    d = unpack(good)
    body = bytearray(d["body"])
    body[body.index(b"too many")] ^= 0x20
    tampered = pack(dict(d, body=bytes(body)))
    forged = {
        "untrusted operator": untrusted_keys.operator("mallory").envelope(halt_body(V2, at)),
        "TLS certificate": server_halt(pki, halt_body(V2, at), key=pki.key("srv:main"),
                                       cert=pki.cert("srv:main")),
        "host signing certificate": server_halt(pki, halt_body(V2, at),
                                                key=pki.sign_key("h1"),
                                                cert=pki.sign_cert("h1")),
        "another channel": server_halt(pki, halt_body(V2, at, channel=CHANNEL)),
        "tampered body": tampered,
        "certificate swapped": server_halt(pki, halt_body(V2, at),
                                           der_of=pki.sign_cert("h1")),
        "not a halt": operator.envelope(dict(halt_body(V2, at), kind="release")),
    }
    for n, (what, payload) in enumerate(forged.items(), 1):
        pub.publish(halt_topic, payload, retain=True)
        wait_until(lambda: log_count(a, f"release halt ignored ({n} so far)") == 1, 20,
                   what=f"{what}: ignored and counted")
    assert log_count(a, "is halted") == 0
    publish_release(pub, keys, HALT_CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes(),
                    published_at=at - 1000)
    wait_version(a, V2, timeout=90)


def open_server_halt(pki, payload):
    """The body of a halt muster-server signed, checked as an agent checks it:
    the certificate in the body is the envelope's, chains to the CA, is a
    signing certificate (not TLS) with CN srv:<name>, and signed the body."""
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes as chashes
    from cryptography.hazmat.primitives.asymmetric import ec as cec
    env = unpack(payload)
    body = unpack(env["body"])
    der = body["cert_der"]
    assert hashlib.sha256(der).hexdigest() == env["cert"]
    cert = cx509.load_der_x509_certificate(der)
    ca = cx509.load_pem_x509_certificate(pki.ca.read_bytes())
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                           cec.ECDSA(cert.signature_hash_algorithm))
    cn = cert.subject.get_attributes_for_oid(cx509.oid.NameOID.COMMON_NAME)[0].value
    assert cn.startswith("srv:"), cn
    ekus = [o.dotted_string for o in
            cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value]
    assert ekus == ["1.3.6.1.5.5.7.3.36"], ekus
    cert.public_key().verify(env["sig"], env["body"], cec.ECDSA(chashes.SHA256()))
    return body


def test_server_halts_a_failing_release_once(broker, keys, mqtt, pub, tmp_path):
    """muster-server counts the channel's hosts by their update state: below
    min_hosts nothing happens; once enough tried and more than failed_pct of
    them failed it publishes one retained halt signed with its signing pair;
    a restart does not publish it again."""
    from server_fixtures import announce, metric_value
    pki = broker.pki
    chan = "halting-srv"
    labels = {"channel": chan, "version": V2}
    watcher = mqtt("op:alice")
    watcher.subscribe(topic("releases", chan, "halt"))
    hosts = {h: mqtt(h) for h in ("h1", "h2", "h3")}
    s = Server(broker, tmp_path / "srv").start()
    try:
        pointer, _ = release_payloads(keys, chan, V2, b"agent", b"runner",
                                      extra={"halt": {"failed_pct": 20, "min_hosts": 3}})
        pub.publish(topic("releases", chan), pointer, retain=True)
        announce(hosts["h1"], pki, "h1", channel=chan, version=V2)
        announce(hosts["h2"], pki, "h2", channel=chan, version=V1,
                 update={"state": "failed", "version": V2, "reason": "self-test failed"})
        # Two tried, one failed (50 %), but min_hosts is 3: counted, not halted.
        wait_until(lambda: metric_value(s.metrics(), "muster_release_attempted",
                                        labels) == 2, 20, what="two hosts counted")
        time.sleep(2.5)		# more ticks than the settle time
        assert metric_value(s.metrics(), "muster_release_halts_published_total") == 0
        assert s.api("/api/releases")["releases"][0]["halted"] is None
        announce(hosts["h3"], pki, "h3", channel=chan, version=V1,
                 update={"state": "testing", "version": V2})
        m = watcher.expect(topic("releases", chan, "halt"), timeout=20)
        body = open_server_halt(pki, m.payload)
        assert (body["channel"], body["version"]) == (chan, V2)
        assert (body["failed"], body["attempted"]) == (1, 3), body
        rel = [r for r in s.api("/api/releases")["releases"] if r["channel"] == chan][0]
        assert rel["halted"]["version"] == V2 and rel["attempted"] == 3, rel
        assert (rel["healthy"], rel["testing"], rel["failed"], rel["pending"]) == (1, 1, 1, 0)
        assert rel["halt_rule"] == {"failed_pct": 20, "min_hosts": 3}
        assert metric_value(s.metrics(), "muster_release_halted", labels) == 1
        assert metric_value(s.metrics(), "muster_release_halts_published_total") == 1
        # A restart reads the retained halt before it decides: no second one.
        s.stop()
        s.start()
        wait_until(lambda: metric_value(s.metrics(), "muster_release_halted", labels) == 1,
                   20, what="the restarted server sees the halt")
        time.sleep(3)
        assert metric_value(s.metrics(), "muster_release_halts_published_total") == 0
        assert watcher.collect(0.5, topic("releases", chan, "halt")) == []
    finally:
        s.stop()
        pub.publish(topic("releases", chan, "halt"), b"", retain=True)
        pub.publish(topic("releases", chan), b"", retain=True)
        for h, c in hosts.items():
            c.publish(topic("hosts", h, "status"), b"", retain=True)


def test_scheduled_rollout_halted_before_the_rest_try_it(upd_agents, server, broker, mqtt, op,
                                                        operator, pub, keys, v2):
    """Issue 25 with 20 agents: one signature, two steps.  The five hosts of
    the first step (20 %) fail their self-test (no selftest.echo here);
    muster-server halts the release once three tried it and more than 30 %
    failed (one of three is enough: the halt may come before the other low
    hosts have failed); the other fifteen never fetch it, though the 100 %
    step has come."""
    watcher = mqtt("op:alice")
    watcher.subscribe(topic("releases", CHANNEL, "halt"))
    names = [f"q{i}" for i in range(1, 200)]
    low = [n for n in names if bucket(n) < 20][:5]
    high = [n for n in names if bucket(n) >= 20][:15]
    agents = {}
    for n in low + high:
        a = upd_agents(n, wake_port=0, update={"jitter": "1s"})
        if n in low:
            (a.modules_dir / "selftest.echo.so").unlink()	# its self-test fails
        agents[n] = a.start()
    t0 = now_ms()
    step100 = t0 + 25000
    publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes(),
                    rollout=20, published_at=t0,
                    extra={"schedule": [[t0, 20], [step100, 100]],
                           "halt": {"failed_pct": 30, "min_hosts": 3}})
    for n in high:
        wait_until(lambda: (update_state(agents[n])[1] or {}).get("state") == "halted", 90,
                   what=f"{n} told of the halt")
    assert now_ms() < step100, "the halt came after the 100 % step: too slow to tell"
    body = open_server_halt(broker.pki, watcher.expect(topic("releases", CHANNEL, "halt"),
                                                       timeout=10).payload)
    assert body["version"] == V2, body
    assert body["attempted"] >= 3 and body["failed"] * 100 > 30 * body["attempted"], body
    # Only the low hosts tried it; each one counted as failed stays failed.
    failed = [n for n in low if (update_state(agents[n])[1] or {}).get("state") == "failed"]
    assert len(failed) >= body["failed"], ({n: update_state(agents[n]) for n in low}, body)
    assert body["attempted"] <= len(low), body
    assert "halted" in server.log()
    # Past the 100 % step (without the halt each would log "fetching in"
    # within its 1 s jitter of it): none fetched, every host runs V1.
    wait_until(lambda: now_ms() > step100 + 4000, 40, what="the 100 % step")
    for n in high:
        assert log_count(agents[n], f"release {V2} is halted on channel") >= 1, n
        assert log_count(agents[n], "fetching in") == 0, n
    for a in agents.values():
        assert a.status()["version"] == V1
    ping(op, operator, agents[high[0]])


def test_kill9_during_a_scheduled_rollout(upd_agents, server, op, operator, pub, keys, v2):
    """Agents killed -9 at random moments while a schedule moves them (each
    restarted as systemd would): afterwards every host runs one of the two
    versions, online and answering, and none is left half-installed."""
    rnd = random.Random(25)
    names = [f"k{i}" for i in range(1, 7)]
    agents = {n: upd_agents(n, wake_port=0, update={"jitter": "2s"}).start() for n in names}
    t0 = now_ms()
    publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes(),
                    rollout=0, published_at=t0,
                    extra={"schedule": [[t0, 0], [t0 + 3000, 50], [t0 + 8000, 100]]})
    deadline = time.monotonic() + 25
    kills = 0
    while time.monotonic() < deadline:
        time.sleep(rnd.uniform(0.5, 2.0))
        a = agents[rnd.choice(names)]
        if a.running:
            os.kill(a.pid, 9)
            kills += 1
    assert kills >= 8
    moving = {"fetching", "staging", "testing", "installing", "verifying"}

    def settled(a):
        st = a.status(timeout=1) or {}
        return (st.get("state") == "online" and st.get("version") in (V1, V2)
                and (st.get("update") or {}).get("state") not in moving)
    for n, a in agents.items():
        wait_until(lambda: settled(a), 180, what=f"{n} settled on one of the two versions")
        v = a.status()["version"]
        assert version_of(a.binary) == v, (n, v)
        assert not list(a.binary.parent.glob("*.staged")), n
        ping(op, operator, a, timeout=30)


def test_server_never_halts_a_healthy_release(broker, keys, mqtt, pub, tmp_path):
    """Every host that tried it is healthy: even the strictest rule (more
    than 0 % failed, from one host) halts nothing."""
    from server_fixtures import announce, metric_value
    pki = broker.pki
    chan = "healthy-srv"
    labels = {"channel": chan, "version": V2}
    s = Server(broker, tmp_path / "srv").start()
    try:
        pointer, _ = release_payloads(keys, chan, V2, b"agent", b"runner",
                                      extra={"halt": {"failed_pct": 0, "min_hosts": 1}})
        pub.publish(topic("releases", chan), pointer, retain=True)
        for h in ("h1", "h2", "h3"):
            announce(mqtt(h), pki, h, channel=chan, version=V2,
                     update={"state": "healthy", "version": V2, "from": V1})
        wait_until(lambda: metric_value(s.metrics(), "muster_release_attempted",
                                        labels) == 3, 20, what="three hosts counted")
        time.sleep(3.5)		# past the settle time, several ticks
        assert metric_value(s.metrics(), "muster_release_failed", labels) == 0
        assert metric_value(s.metrics(), "muster_release_halted", labels) == 0
        assert metric_value(s.metrics(), "muster_release_halts_published_total") == 0
    finally:
        s.stop()


def test_two_servers_halt_alike(broker, keys, mqtt, pub, tmp_path):
    """Two servers count the same statuses: each publishes the halt at most
    once, for the same channel and version, and the retained one is valid
    whichever came last (halts are idempotent, not coordinated)."""
    from server_fixtures import announce, metric_value
    pki = broker.pki
    chan = "two-srv"
    watcher = mqtt("op:alice")
    watcher.subscribe(topic("releases", chan, "halt"))
    servers = [Server(broker, tmp_path / f"srv{i}", name=f"s{i}").start() for i in (1, 2)]
    try:
        pointer, _ = release_payloads(keys, chan, V2, b"agent", b"runner",
                                      extra={"halt": {"failed_pct": 20, "min_hosts": 2}})
        pub.publish(topic("releases", chan), pointer, retain=True)
        time.sleep(2.5)		# both settled: they decide in the same second
        for h in ("h1", "h2"):
            announce(mqtt(h), pki, h, channel=chan, version=V1,
                     update={"state": "failed", "version": V2, "reason": "self-test"})
        watcher.expect(topic("releases", chan, "halt"), timeout=20)
        time.sleep(3)
        got = [open_server_halt(pki, m.payload) for m in
               watcher.collect(0.5, topic("releases", chan, "halt"))]
        published = [metric_value(s.metrics(), "muster_release_halts_published_total")
                     for s in servers]
        assert all(p <= 1 for p in published) and sum(published) >= 1, published
        assert len(got) <= 1 and all((b["channel"], b["version"]) == (chan, V2) for b in got)
        for s in servers:
            assert metric_value(s.metrics(), "muster_release_halted",
                                {"channel": chan, "version": V2}) == 1
    finally:
        for s in servers:
            s.stop()


def fetch_started_ms(agent, version):
    """Wall ms of the agent's first "fetching in" line for version (its log
    lines carry their UTC time), or None."""
    import datetime
    for line in agent.log().splitlines():
        if f"release {version} on channel" in line and "fetching in" in line:
            stamp = line.split()[0].split(">", 1)[1]
            t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
            return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
    return None


def test_schedule_moves_20_hosts_in_bucket_order(upd_agents, server, op, operator, pub,
                                                 keys, v2):
    """Issue 25 with 20 agents and three steps seconds apart: each host
    starts fetching within a few seconds after the first step that covers
    its bucket, never before it; at the end all run V2."""
    names = [f"b{i}" for i in range(1, 21)]
    agents = {n: upd_agents(n, wake_port=0).start() for n in names}
    t0 = now_ms() + 2000
    steps = [[t0, 10], [t0 + 20000, 50], [t0 + 40000, 100]]
    # The strictest halt rule: a healthy release is never halted by it.
    publish_release(pub, keys, CHANNEL, V2, v2[0].read_bytes(), v2[1].read_bytes(),
                    rollout=0, published_at=t0 - 2000,
                    extra={"schedule": steps, "halt": {"failed_pct": 0, "min_hosts": 1}})

    def step_of(n):
        return next(at for at, pct in steps if bucket(n) < pct)
    for n, a in agents.items():
        wait_version(a, V2, timeout=240)
    late = []
    for n, a in agents.items():
        started = fetch_started_ms(a, V2)
        assert started is not None, n
        assert started >= step_of(n), (n, bucket(n), started - step_of(n))
        if started - step_of(n) > 8000:
            late.append((n, started - step_of(n)))
    # A step's hosts start at once (jitter 0); a few seconds of slack for a
    # loaded machine.
    assert not late, late
    # Every step moved some hosts (the names' buckets: 1 below 10, 10 from
    # 10 to 49, 9 from 50).
    assert {step_of(n) for n in names} == {at for at, _ in steps}
    rel = [r for r in server.api("/api/releases")["releases"] if r["channel"] == CHANNEL][0]
    assert rel["halted"] is None and rel["attempted"] == 20 and rel["failed"] == 0, rel
    assert "halted:" not in server.log()
