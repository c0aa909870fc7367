# SPDX-License-Identifier: Apache-2.0
"""musterd's configuration (design.md §7): --check-config, --version, a bad
file at start, and SIGHUP, which reloads the operator keys and the log level
without touching the MQTT session."""
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from muster_fixtures import (
    MUSTERD, SOURCE_DIR, OperatorKey, assert_no_sanitizer_reports, log_count,
    new_job, run_job, start_fresh, wait_until,
)


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


def musterd(*args):
    return subprocess.run([str(MUSTERD), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=10)


def project_version() -> str:
    text = (SOURCE_DIR / "CMakeLists.txt").read_text()
    m = re.search(r"project\s*\(\s*muster\b[^)]*?VERSION\s+([0-9][^\s)]*)",
                  text, re.S | re.I)
    assert m, "no project(... VERSION x) in CMakeLists.txt"
    return m.group(1)


def test_version():
    p = musterd("--version")
    assert p.returncode == 0
    assert p.stdout == f"musterd {project_version()}\n"
    assert musterd("-V").stdout == p.stdout


def test_usage_errors():
    p = musterd("--no-such-option")
    assert p.returncode == 2 and "usage: musterd" in p.stderr
    p = musterd("stray-argument")
    assert p.returncode == 2 and "usage: musterd" in p.stderr


def test_check_config_ok(agents):
    a = agents("h1")
    p = a.check_config()
    assert p.returncode == 0, p.stdout
    assert p.stdout == f"musterd: {a.conf_path}: ok (host h1)\n"
    # Every key of the shipped example is commented out: defaults only,
    # checked against what this machine has (the runner of the build, the
    # operators' folder of the test).
    example = a.dir / "example.conf"
    example.write_text((SOURCE_DIR / "agent" / "agent.conf.example").read_text() +
                       f"\n[agent]\nrunner = {a.conf['agent']['runner']}\n"
                       f"[trust]\noperators = {a.conf['trust']['operators']}\n")
    p = musterd("--check-config", "-c", str(example))
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(r"musterd: \S+: ok \(host [a-z0-9][a-z0-9._-]*\)\n",
                        p.stdout), p.stdout


# (file text, line, what the message says after "FILE:LINE: ")
BAD = {
    "bad-duration": ("[agent]\nhost = h1\n\n[limits]\ntimeout = ten\n", 5,
                     "[limits] timeout: bad duration 'ten'"),
    "unknown-key": ("[agent]\nhost = h1\n[broker]\nport = 1883\n", 4,
                    "[broker] port: unknown key"),
    "unknown-section": ("[agent]\nhost = h1\n[agnet]\nchannel = beta\n", 3,
                        "unknown section [agnet]"),
    "bad-group": ("[agent]\ngroups = web, DB\n", 2,
                  "[agent] groups: bad name 'DB'"),
    "port-range": ("[wake]\nport = 70000\n", 2,
                   "[wake] port: '70000' is out of range 0..65535"),
    "zero-max-ttl": ("# comment\n\n[limits]\nmax_ttl = 0\n", 4,
                     "[limits] max_ttl: '0' is below the minimum of 1"),
    "bad-log-level": ("[agent]\nlog_level = loud\n", 2,
                      "[agent] log_level: bad log level 'loud'"),
    "bad-fingerprint": ("[trust]\npublishers = 1234\n", 2,
                        "[trust] publishers: bad fingerprint '1234'"),
    "keepalive-ms": ("[broker]\nkeepalive = 1500ms\n", 2,
                     "[broker] keepalive: '1500ms' must be whole seconds"),
    "syntax": ("[agent]\nhost h1\n", 2, "syntax error"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_check_config_reports_first_error(name, tmp_path):
    text, line, what = BAD[name]
    # A second error further down: only the first is reported.
    conf = tmp_path / "agent.conf"
    conf.write_text(text + "\n[limits]\ncpu = forever\n")
    p = musterd("--check-config", "-c", str(conf))
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert p.stdout == ""
    assert p.stderr.startswith(f"musterd: {conf}:{line}: {what}"), p.stderr
    assert "forever" not in p.stderr
    assert p.stderr.count("\n") == 1, p.stderr


def test_check_config_missing_file(tmp_path):
    p = musterd("--check-config", "-c", str(tmp_path / "nope.conf"))
    assert p.returncode == 1
    assert str(tmp_path / "nope.conf") in p.stderr


def test_bad_config_at_start(agents):
    a = agents("h1")
    a.conf["limits"]["timeout"] = "ten"
    a.write_conf()
    a.start(wait_online=False)
    assert a.wait_exit(10) == 1
    assert re.search(rf"{re.escape(str(a.conf_path))}:\d+: \[limits\] timeout: "
                     r"bad duration 'ten'", a.log()), a.log()


# ---- SIGHUP ----------------------------------------------------------------


def new_operator(path: Path, name: str) -> OperatorKey:
    """A fresh Ed25519 operator key: NAME.key in path; returns the signer."""
    k = Ed25519PrivateKey.generate()
    key = path / f"{name}.key"
    key.write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    key.chmod(0o600)
    return OperatorKey(key, name)


def write_pub(op: OperatorKey, folder: Path) -> Path:
    pub = folder / f"{op.name}.pub"
    pub.write_bytes(op.private.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))
    return pub


def broker_connections(broker, cn):
    return len(re.findall(rf"New client connected from \S+ as {cn} ",
                          broker.log()))


def sighup(a, reloads_before, timeout=10):
    a.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: log_count(a, "reloaded:") + log_count(a, "reload:")
               > reloads_before, timeout, what="the reload in the log")


def result(op, operator, body):
    return run_job(op, operator, body, ["h1"], timeout=10)["h1"]


def refusal(op, key, body):
    """The refusal of a job whose key is not trusted: unverified, so it is
    answered under invalid-<hash of the envelope> (design.md §3), never under
    the id its body claims.  Returns (result, that id): the agent logs the
    refusal (a notice) under it before it sends the answer."""
    import hashlib
    from muster_fixtures import target_topic, topic, watch_results
    env = key.envelope(body)
    jid = "invalid-" + hashlib.sha256(env).hexdigest()[:16]
    watch_results(op, jid)
    op.publish(target_topic(body["target"]), env)
    return op.expect(topic("results", jid, "h1"), timeout=10).decode(), jid


@pytest.fixture
def hup_agent(agents, keys, tmp_path):
    """h1 with its own operators folder (alice only), log level notice."""
    ops = tmp_path / "operators"
    ops.mkdir()
    shutil.copy(keys.operator_pub("alice"), ops)
    a = agents("h1", log_level="notice",
               extra={"trust": {"operators": str(ops)},
                      "broker": {"retry_min": "100ms", "retry_max": "1s"}})
    start_fresh(a)
    a.operators = ops
    return a


def test_sighup_reloads_operator_keys_and_log_level(hup_agent, broker,
                                                    op_client, operator,
                                                    tmp_path):
    a = hup_agent
    bob = new_operator(tmp_path, "bob")

    # Before: bob is unknown; info lines ("accepted job") are not logged.
    b1 = new_job("ping", "host/h1", operator="bob")
    r, rid = refusal(op_client, bob, b1)
    assert (r["status"], r["reason"]) == (
        "rejected", f"unknown operator key {bob.key_id}"), r
    # At notice, the refusal is logged (before its answer is sent).
    assert log_count(a, f"rejected job {rid}: unknown operator key") == 1, a.log()
    p1 = new_job("ping", "host/h1")
    assert result(op_client, operator, p1)["status"] == "pass"
    assert p1["id"] not in a.log()

    # Add bob, raise the log level, SIGHUP.
    write_pub(bob, a.operators)
    a.conf["agent"]["log_level"] = "info"
    a.write_conf()
    sighup(a, 0)
    assert "reloaded: 2 operator keys" in a.log(), a.log()

    b2 = new_job("ping", "host/h1", operator="bob")
    r = result(op_client, bob, b2)
    assert r["status"] == "pass", r
    assert log_count(a, f"accepted job {b2['id']} (ping) from key {bob.key_id}") == 1

    # Take alice out, quieten the log: alice is refused, and the refusal
    # (a notice) is no longer logged.
    (a.operators / "alice.pub").unlink()
    a.conf["agent"]["log_level"] = "warning"
    a.write_conf()
    sighup(a, 1)
    assert "reloaded: 1 operator keys" in a.log(), a.log()
    p2 = new_job("ping", "host/h1")
    r, rid = refusal(op_client, operator, p2)
    assert (r["status"], r["reason"]) == (
        "rejected", f"unknown operator key {operator.key_id}"), r
    # The same kind of line as b1's above, which was logged at notice.
    assert rid not in a.log(), a.log()
    b3 = new_job("ping", "host/h1", operator="bob")
    assert result(op_client, bob, b3)["status"] == "pass"

    # One session all along: no reconnect on either side.
    assert log_count(a, "connected to the broker") == 1, a.log()
    assert broker_connections(broker, "h1") == 1, broker.log()[-3000:]


def test_sighup_with_a_bad_file_keeps_the_running_config(hup_agent, broker,
                                                         op_client, operator,
                                                         tmp_path):
    a = hup_agent
    good = a.conf_path.read_text()
    a.conf_path.write_text(good + "\n[limits]\ntimeout = ten\n")
    sighup(a, 0)
    assert re.search(r"reload: \S+:\d+: \[limits\] timeout: bad duration 'ten' "
                     r"\(.*\) \(keeping the running configuration\)", a.log()), \
        a.log()
    p = new_job("ping", "host/h1")
    assert result(op_client, operator, p)["status"] == "pass"

    # A broken key file fails closed (design.md §8): it is reported and left
    # out, the good keys load (alice still works, bob comes in).
    a.conf_path.write_text(good)
    bob = new_operator(tmp_path, "bob")
    write_pub(bob, a.operators)
    (a.operators / "junk.pub").write_text("not a key\n")
    sighup(a, 1)
    assert re.search(r"operator keys: \S*junk\.pub: .*key left out", a.log()), a.log()
    assert "reloaded: 2 operator keys" in a.log(), a.log()
    p = new_job("ping", "host/h1")
    assert result(op_client, operator, p)["status"] == "pass"
    b = new_job("ping", "host/h1", operator="bob")
    assert result(op_client, bob, b)["status"] == "pass"
    # Alice's file breaks: her key is not kept alive from the old ring.
    (a.operators / f"{operator.name}.pub").write_text("broken\n")
    sighup(a, 2)
    c = new_job("ping", "host/h1")
    r, _ = refusal(op_client, operator, c)
    assert (r["status"], r["reason"]) == (
        "rejected", f"unknown operator key {operator.key_id}"), r
    assert broker_connections(broker, "h1") == 1


# ---- identity and what the service needs (issue 19) ----------------------


def test_host_defaults_to_the_certificate_cn(agents, op_client, operator):
    a = agents("h1")
    del a.conf["agent"]["host"]
    a.write_conf()
    p = a.check_config()
    assert p.returncode == 0 and p.stdout.endswith("ok (host h1)\n"), p.stdout
    a.start()			# waits for h1's online status
    assert result(op_client, operator, new_job("ping", "host/h1"))["status"] == "pass"


def test_host_that_differs_from_the_cn_is_a_start_error(agents):
    a = agents("h1")
    a.conf["agent"]["host"] = "vm"
    a.write_conf()
    p = a.check_config()
    assert p.returncode == 1
    assert ("[agent] host is 'vm' but the certificate " in p.stdout and
            "is for 'h1' (its CN)" in p.stdout), p.stdout
    a.start(wait_online=False)
    assert a.wait_exit(10) == 1
    assert "[agent] host is 'vm' but the certificate" in a.log()


def test_check_config_checks_what_the_service_needs(agents, tmp_path):
    a = agents("h1")
    good = dict((s, dict(kv)) for s, kv in a.conf.items())
    other = agents("h2")		# another host's key: not this certificate's

    def check(section, key, value):
        a.conf = dict((s, dict(kv)) for s, kv in good.items())
        a.conf[section][key] = value
        a.write_conf()
        return a.check_config()

    missing = str(tmp_path / "missing")
    loose = tmp_path / "loose.sign.key"	# this host's key, group-readable
    loose.write_bytes(a.pki.sign_key("h1").read_bytes())
    loose.chmod(0o640)
    cases = [
        ("broker", "ca", missing, f"[broker] ca {missing}: No such file"),
        ("broker", "key", missing, "[broker] key/cert:"),
        ("broker", "key", other.conf["broker"]["key"], "[broker] key/cert:"),
        ("agent", "runner", missing, f"[agent] runner {missing}: No such file"),
        ("agent", "state_dir", str(tmp_path / "no" / "such" / "state"),
         "cannot be made"),
        ("trust", "operators", missing, f"[trust] operators {missing}"),
        # The host signing pair (issue 22): found, the parent's alone, a
        # signing certificate, and the key its own.
        ("agent", "sign_key", missing, f"[agent] sign_key {missing}: No such file"),
        ("agent", "sign_key", str(loose), "lets others read the host signing key"),
        ("agent", "sign_cert", good["broker"]["cert"],
         "a TLS certificate, not a host signing certificate"),
        ("agent", "sign_key", str(other.pki.sign_key("h2")), "[agent] sign_key/sign_cert:"),
    ]
    if os.geteuid() == 0:
        cases += [("agent", "user", "no-such-user-19", "no such user"),
                  ("agent", "user", "root", "is root"),
                  ("limits", "run_as", "no-such-user-19", "no such user")]
    for section, key, value, what in cases:
        p = check(section, key, value)
        assert p.returncode == 1, (key, value, p.stdout)
        assert what in p.stdout, (key, value, p.stdout)
    a.conf = good
    a.write_conf()
    assert a.check_config().returncode == 0


def test_signing_pair_defaults_next_to_the_tls_pair_and_is_checked_at_start(agents,
                                                                            tmp_path):
    """[agent] sign_cert/sign_key default to the [broker] pair's names with
    ".sign" before the extension, where scripts/gen-pki writes them (the
    fixture's config names neither); a signing key others may read stops
    the start with the reason (issue 22)."""
    a = agents("h1")
    assert "sign_key" not in a.conf["agent"] and "sign_cert" not in a.conf["agent"]
    assert a.check_config().returncode == 0
    # The default is derived, not merely unchecked: a TLS pair with no
    # signing pair next to it names the derived path.
    alone = tmp_path / "alone"
    alone.mkdir()
    for ext in ("crt", "key"):
        src = Path(a.conf["broker"][ext.replace("crt", "cert")])
        (alone / f"h1.{ext}").write_bytes(src.read_bytes())
        (alone / f"h1.{ext}").chmod(0o600)
    good = dict(a.conf["broker"])
    a.conf["broker"]["cert"], a.conf["broker"]["key"] = (str(alone / "h1.crt"),
                                                          str(alone / "h1.key"))
    a.write_conf()
    p = a.check_config()
    assert p.returncode == 1 and f"[agent] sign_key {alone}/h1.sign.key: No such file" \
        in p.stdout, p.stdout
    a.conf["broker"] = good
    loose = tmp_path / "h1.sign.key"
    loose.write_bytes(a.pki.sign_key("h1").read_bytes())
    loose.chmod(0o644)
    a.conf["agent"]["sign_key"] = str(loose)
    a.write_conf()
    a.start(wait_online=False)
    assert a.wait_exit(10) == 1
    assert "mode 644 lets others read the host signing key; chmod 600 it" in a.log()
