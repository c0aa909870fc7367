# SPDX-License-Identifier: Apache-2.0
"""Issue 10 against the real musterd: fleet binding (`aud`), refusals of
unverifiable envelopes under `invalid-<hash>` ids only, `max_job` before any
decoding, and the authorization policy of design.md §8 (rule forms, first match,
default deny, reasons naming file:line, run_as, timeout<=, reload)."""
import os
import re
import subprocess
import time

import pytest

from muster_fixtures import (
    TEST_MODULES_DIR, assert_no_sanitizer_reports, install_any_modules,
    install_modules, log_count, musterd_pids, new_job, pack, run_job, send_job, start_fresh,
    target_topic, topic, watch_results,
)
from test_agent_intake import (
    MODULE, control, expect_refusal, fast, invalid_id, results_for, run_body,
    start_h1,
)


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---- aud ---------------------------------------------------------------------


@pytest.mark.parametrize("aud,reason", [
    (None, r"job has no aud \(this host is in fleet muster/v1; an older sender\?\)"),
    ("staging/v1", r"job is for fleet staging/v1, this host is in fleet muster/v1"),
])
def test_job_for_another_fleet_is_refused(agents, op_client, operator, aud, reason):
    a = start_h1(agents)
    body = run_body(aud=aud)
    watch_results(op_client, body["id"])
    send_job(op_client, operator, body)
    expect_refusal(op_client, operator, a, body["id"], reason, "run")


def test_cli_sends_its_fleet(agents, broker, keys, tmp_path, op_client):
    """The CLI's jobs carry aud = <its topic root>/v1: accepted by an agent
    of that root (here the default one)."""
    from muster_fixtures import run_cli, write_cli_conf
    start_h1(agents)
    conf = write_cli_conf(tmp_path / "muster.conf", broker, keys=keys)
    out = run_cli("ping", "-H", "h1", "--json", conf=conf)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert '"pass"' in out.stdout


# ---- invalid-<hash> ----------------------------------------------------------


def test_invalid_refusal_cannot_collide_with_a_real_job(agents, op_client,
                                                        operator):
    """A garbage envelope G is refused under invalid-<hash G>.  A signed job
    that names itself invalid-<hash G> (no muster encoder makes one: the
    prefix is reserved) is not accepted and not answered under that id:
    its refusal goes to invalid-<hash of its own envelope>.  So whatever
    arrives under an invalid- id is the refusal of one exact envelope."""
    a = start_h1(agents)
    garbage = b"\xc1 not an envelope"
    gid = invalid_id(garbage)
    squatter = pack(run_body(id=gid))	# bypasses new_job's checks: raw
    env = operator.envelope(squatter)
    sid = invalid_id(env)
    watch_results(op_client, gid)
    watch_results(op_client, sid)
    op_client.publish(target_topic("host/h1"), garbage)
    op_client.publish(target_topic("host/h1"), env)
    r = op_client.expect(topic("results", gid, "h1"), timeout=10).decode()
    assert r["status"] == "rejected" and r["reason"].startswith(
        "malformed job envelope"), r
    r = op_client.expect(topic("results", sid, "h1"), timeout=10).decode()
    assert (r["status"], r["kind"]) == ("rejected", "unknown"), r
    assert "reserved prefix 'invalid-'" in r["reason"], r
    control(op_client, operator)
    assert results_for(op_client, gid) == []
    assert results_for(op_client, sid) == []
    assert "running module" not in a.log()


# ---- max_job -----------------------------------------------------------------


@pytest.mark.parametrize("size_mib", [64, 2])
def test_oversize_envelope_dropped_before_decoding(agents, op_client, operator,
                                                   size_mib):
    """Over max_job (default 1M): never decoded, never answered, and the
    next job is answered at once.

    MQTT 5 (the default): the agent's session announces a Maximum Packet
    Size of max_job plus room for the topic, so the broker does not send it
    a bigger message at all: its memory does not grow (< 2 MiB).  Module
    artifacts, which may be 64 MiB, come over a separate connection."""
    a = start_h1(agents)
    control(op_client, operator)		# warm: first job's allocations
    size = size_mib << 20
    payload = pack({"v": 1, "key": operator.key_id, "sig": b"\0" * 64,
                    "body": b"\x90" * size})
    op_client.subscribe(topic("results", "+", "h1"))
    rss = [sum(rss_kib(p) for p in musterd_pids(a.pid))]
    for n in (1, 2):
        op_client.publish(target_topic("all"), payload)	# broker has it (PUBACK)
        t0 = time.monotonic()
        control(op_client, operator)	# answered after the big one was routed
        took = time.monotonic() - t0
        rss.append(sum(rss_kib(p) for p in musterd_pids(a.pid)))
        print(f"\n{size_mib} MiB envelope #{n}: RSS {rss[-2]} -> {rss[-1]} KiB "
              f"(+{rss[-1] - rss[-2]}), next job answered in {took * 1000:.0f} ms")
        assert took < 2.0, took
        assert rss[-1] - rss[-2] < 2048, rss
    got = [m.decode() for m in op_client.collect(0.2, topic("results", "+", "h1"))]
    assert all(r["kind"] == "ping" for r in got), got	# no refusal was sent
    assert "rejected job" not in a.log()


def test_oversize_envelope_mqtt311_dropped_by_the_agent(agents, op_client, operator):
    """MQTT 3.1.1 has no Maximum Packet Size: the agent drops an envelope
    over max_job itself, before decoding, with a log line and no answer.
    (Paho 1.3.12's receive buffer grows to the largest packet once.)"""
    a = agents("h1", extra={**fast(), "broker": {"protocol": "3.1.1"}})
    install_modules(a, MODULE)
    a.start()
    control(op_client, operator)
    payload = pack({"v": 1, "key": operator.key_id, "sig": b"\0" * 64,
                    "body": b"\x90" * (2 << 20)})
    op_client.subscribe(topic("results", "+", "h1"))
    op_client.publish(target_topic("all"), payload)
    deadline = time.monotonic() + 30
    while log_count(a, "over max_job") < 1:
        assert time.monotonic() < deadline, a.log()[-2000:]
        time.sleep(0.05)
    assert re.search(rf"dropped a {len(payload)}-byte job envelope: over max_job "
                     r"\(1048576 bytes\)", a.log()), a.log()[-2000:]
    control(op_client, operator)
    got = [m.decode() for m in op_client.collect(0.2, topic("results", "+", "h1"))]
    assert all(r["kind"] == "ping" for r in got), got
    assert "rejected job" not in a.log()


def test_retained_job_message_is_ignored(agents, op_client, operator):
    """A retained job (planted, or stale) reaches a host that subscribes
    after it was published with the retain flag: ignored, nothing runs."""
    a = agents("h2", extra=fast())
    install_modules(a, MODULE)
    body = run_body("host/h2")
    watch_results(op_client, body["id"])
    op_client.publish(target_topic("host/h2"), operator.envelope(body), retain=True)
    try:
        start_fresh(a)
        control(op_client, operator, "h2")
        assert results_for(op_client, body["id"], "h2") == []
        assert "ignored a retained message on a job topic" in a.log(), a.log()
        assert "running module" not in a.log()
    finally:
        op_client.publish(target_topic("host/h2"), b"", retain=True)	# clear it


# ---- the policy ----------------------------------------------------------------


def policy_agent(agents, tmp_path, text, **kw):
    pol = tmp_path / "policy"
    pol.write_text(text)
    extra = fast(trust={"policy": str(pol)}, **kw.pop("extra", {}))
    a = agents("h1", extra=extra, **kw)
    install_modules(a, MODULE)
    a.policy = pol
    return a


def ask(op, operator, body, host="h1"):
    return run_job(op, operator, body, [host], timeout=15)[host]


def test_policy_rule_forms_and_first_match(agents, op_client, operator,
                                           tmp_path):
    a = policy_agent(agents, tmp_path,
                     "# helpdesk-style: read-only checks\n"
                     "deny  alice version all\n"
                     "allow alice ping,version host/h1\n"
                     f"allow *     run:os.* host/h?\n"
                     "deny  *     run:* all\n")
    start_fresh(a)
    pol = str(a.policy)
    assert ask(op_client, operator, new_job("ping", "host/h1"))["status"] == "pass"
    r = ask(op_client, operator, new_job("version", "all"))
    assert (r["status"], r["reason"]) == (
        "rejected", f"not allowed for operator alice: denied by {pol}:2"), r
    assert ask(op_client, operator, new_job("version", "host/h1"))["status"] == "pass"
    assert ask(op_client, operator, run_body())["status"] == "pass"
    r = ask(op_client, operator, run_body("all"))
    assert r["reason"] == f"not allowed for operator alice: denied by {pol}:5", r
    # Default deny: a file with no matching rule.
    r = ask(op_client, operator, new_job("ping", "all"))
    assert r["reason"] == ("not allowed for operator alice: no rule matched in "
                           f"{pol}"), r
    assert log_count(a, "running module") == 1


def test_policy_timeout_cap_and_run_as(agents, op_client, operator, tmp_path):
    a = policy_agent(agents, tmp_path,
                     "allow alice run:hang host/h1 timeout<=1s\n"
                     "allow alice run:probe host/h1 run_as=nobody\n"
                     "allow alice run:os.release host/h1 run_as=no-such-user\n"
                     "allow alice ping host/h1\n")
    install_modules(a, "hang", src=TEST_MODULES_DIR)
    install_any_modules(a, "probe")
    start_fresh(a)
    t0 = time.monotonic()
    r = ask(op_client, operator, new_job("run", "host/h1", module="hang",
                                         timeout_ms=60_000))
    assert r["status"] == "timeout" and time.monotonic() - t0 < 10, r
    r = ask(op_client, operator, run_body())
    assert (r["status"], r["reason"]) == (
        "error", "run_as user 'no-such-user' does not exist on this host"), r
    if os.geteuid() != 0:
        assert "run_as (default muster-job) is ignored" in a.log()
        pytest.skip("run_as needs root: not running as root")
    r = ask(op_client, operator, new_job("run", "host/h1", module="probe",
                                         args={"cmd": ["id", "-un"]}))
    assert r["data"]["cmd"]["out"].strip() == "nobody", r


def test_default_run_as_user(agents, op_client, operator):
    """Without a rule naming one, and with job_uids = none, runners run as
    [limits] run_as (else each job has a uid of its own: test_confinement)."""
    if os.geteuid() != 0:
        pytest.skip("run_as needs root: not running as root")
    a = agents("h1", extra=fast(limits={"run_as": "nobody", "job_uids": "none"}))
    install_any_modules(a, "probe")
    start_fresh(a)
    r = ask(op_client, operator, new_job("run", "host/h1", module="probe",
                                         args={"cmd": ["id", "-u"]}))
    assert r["data"]["cmd"]["out"].strip() == str(
        int(subprocess.check_output(["id", "-u", "nobody"]))), r


def test_policy_syntax_error_fatal_at_start_kept_out_at_reload(
        agents, op_client, operator, tmp_path):
    a = policy_agent(agents, tmp_path, "allow alice ping host/h1\nallow alice pong all\n")
    out = a.check_config()
    assert out.returncode != 0
    assert f"{a.policy}:2: unknown kind 'pong'" in out.stdout, out.stdout
    a.start(wait_online=False)
    assert a.wait_exit(15) != 0
    assert f"{a.policy}:2: unknown kind 'pong'" in a.log(), a.log()

    a.policy.write_text("allow alice ping host/h1\n")
    start_fresh(a)
    assert ask(op_client, operator, new_job("ping", "host/h1"))["status"] == "pass"
    # A broken edit at reload: logged, the old policy stays in force.
    a.policy.write_text("allow alice ping,version host/h1\nallow bob\n")
    a.proc.send_signal(1)
    deadline = time.monotonic() + 10
    while log_count(a, "keeping the policy in force") == 0:
        assert time.monotonic() < deadline, a.log()[-2000:]
        time.sleep(0.05)
    assert f"{a.policy}:2: want allow OPERATOR" in a.log()
    assert ask(op_client, operator, new_job("ping", "host/h1"))["status"] == "pass"
    r = ask(op_client, operator, new_job("version", "host/h1"))
    assert r["status"] == "rejected" and "no rule matched" in r["reason"], r
    # A good edit is taken.
    a.policy.write_text("allow alice ping,version host/h1\n")
    a.proc.send_signal(1)
    deadline = time.monotonic() + 10
    while log_count(a, "reloaded policy") == 0:
        assert time.monotonic() < deadline, a.log()[-2000:]
        time.sleep(0.05)
    assert ask(op_client, operator, new_job("version", "host/h1"))["status"] == "pass"


def test_policy_missing(agents, op_client, operator, tmp_path):
    """Configured explicitly and missing: an error.  (Missing at the
    default path means no policy; every other test here runs that way.)"""
    a = agents("h1", extra=fast(trust={"policy": str(tmp_path / "nope")}))
    out = a.check_config()
    assert out.returncode != 0 and "nope" in out.stdout, out.stdout


# ---- revocation --------------------------------------------------------------


def test_revoked_host_certificate_is_refused_by_the_broker(tmp_path):
    """scripts/gen-pki --revoke NAME puts the certificate in the CRL that
    the shipped broker config names (crlfile): the broker then refuses it
    in the TLS handshake, and still takes the others."""
    import shutil
    from muster_fixtures import Broker, gen_pki, tls_probe
    pki = gen_pki(tmp_path / "pki", hosts=["h1", "h2"])
    kept = tmp_path / "h2-copy"
    kept.mkdir()
    for ext in ("crt", "key"):
        shutil.copy(pki.cert("h2") if ext == "crt" else pki.key("h2"),
                    kept / f"h2.{ext}")
    b = Broker(pki, tmp_path / "broker").start()
    try:
        probe = lambda c, k: tls_probe("127.0.0.1", b.port, pki.ca, c, k,  # noqa
                                       server_hostname="localhost")
        assert probe(kept / "h2.crt", kept / "h2.key") == "connack:0"
        pki.run("--revoke", "h2")
        assert not pki.cert("h2").exists()
        assert "h2" not in pki.inventory.read_text().split()
        b.restart()
        got = probe(kept / "h2.crt", kept / "h2.key")
        assert got.startswith("tls:") or got == "closed", got
        assert probe(pki.cert("h1"), pki.key("h1")) == "connack:0"
        # Why: the broker's alert.  (tls_probe sends its CONNECT at once and
        # may lose the alert to the reset that provokes; the broker's log
        # says only "certificate verify failed".)
        assert tls_alert(b.port, pki.ca, kept / "h2.crt", kept / "h2.key") == \
            "SSLV3_ALERT_CERTIFICATE_REVOKED"
    finally:
        b.stop()


def tls_alert(port, ca, cert, key, timeout=5):
    """The TLS handshake with a client certificate, then a read with nothing
    sent: the broker's verdict on the certificate comes as an alert (in the
    handshake under TLS 1.2, right after it under 1.3).  The alert's
    reason, or what happened instead."""
    import socket
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return "data" if s.recv(1) else "closed"
    except ssl.SSLError as e:
        return e.reason or str(e)
    except OSError as e:
        return f"{type(e).__name__}: {e}"
