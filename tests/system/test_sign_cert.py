# SPDX-License-Identifier: Apache-2.0
"""The host signing certificate (issue 22, design.md §3), without musterd:
scripts/gen-pki issues hosts/NAME.sign.{key,crt} next to the TLS pair; the
broker (the repo's mosquitto config and ACL) refuses the signing pair for
TLS, and `muster` (lib/hostsig.c) and the tests' own checker refuse agent
messages signed with the TLS pair - what code running in musterd's network
process could make - and take those signed with the signing pair.  A
scripted h1 publishes hand-signed statuses and results, as in
test_host_signing.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from muster_fixtures import (
    HOSTSIG_EKU_OID, MUSTER_CLI, ForgedMessage, cert_der, gen_pki, host_sign, now_ms,
    open_agent_message, run_cli, tls_probe, topic, write_cli_conf,
)

pytestmark = pytest.mark.skipif(not MUSTER_CLI.exists(),
                                reason=f"{MUSTER_CLI} is not built")

TLS_REASON = "a TLS certificate, not a host signing certificate"


def ext_text(crt) -> str:
    return subprocess.run(["openssl", "x509", "-in", str(crt), "-noout", "-ext",
                           "keyUsage,extendedKeyUsage,basicConstraints"],
                          capture_output=True, text=True, check=True).stdout


def status(pki, host: str, signer: str = "sign", state: str = "online") -> bytes:
    """host's status signed with its signing pair ("sign") or its TLS pair
    ("tls"), carrying that certificate, as musterd would publish it."""
    key, crt = ((pki.sign_key(host), pki.sign_cert(host)) if signer == "sign"
                else (pki.key(host), pki.cert(host)))
    t = now_ms()
    return host_sign(key, crt, {"v": 1, "host": host, "state": state,
                                "version": "0.1.0", "channel": "stable",
                                "groups": ["web"], "started_at": t, "at": t,
                                "cert_der": cert_der(crt)})


def result(pki, host: str, job: str, signer: str = "sign") -> bytes:
    key, crt = ((pki.sign_key(host), pki.sign_cert(host)) if signer == "sign"
                else (pki.key(host), pki.cert(host)))
    t = now_ms()
    return host_sign(key, crt, {"v": 1, "job": job, "host": host, "kind": "ping",
                                "status": "pass", "summary": "pong", "started_at": t,
                                "finished_at": t, "agent_version": "0.1.0"})


def ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_gen_pki_issues_a_signing_pair(tmp_path):
    """Next to each host's TLS pair: a key of its own (0600) and a
    certificate with the OID as its only extendedKeyUsage.  A pair without
    the OID (the TLS one copied there, say) is re-issued; --revoke takes
    both pairs."""
    pki = gen_pki(tmp_path / "pki", hosts=["a1"])
    t = ext_text(pki.sign_cert("a1"))
    assert HOSTSIG_EKU_OID in t and "Digital Signature" in t and "CA:FALSE" in t
    assert "TLS Web" not in t and "Any Extended Key Usage" not in t
    assert "TLS Web Client Authentication" in ext_text(pki.cert("a1"))
    assert oct(pki.sign_key("a1").stat().st_mode & 0o777) == "0o600"
    assert pki.sign_key("a1").read_bytes() != pki.key("a1").read_bytes()
    subj = subprocess.run(["openssl", "x509", "-in", str(pki.sign_cert("a1")), "-noout",
                           "-subject", "-nameopt", "RFC2253"],
                          capture_output=True, text=True, check=True).stdout
    assert subj.strip() == "subject=CN=a1"
    before = pki.sign_cert("a1").read_bytes()
    pki.run()
    assert pki.sign_cert("a1").read_bytes() == before
    pki.sign_cert("a1").write_bytes(pki.cert("a1").read_bytes())
    pki.sign_key("a1").write_bytes(pki.key("a1").read_bytes())
    pki.run()
    assert HOSTSIG_EKU_OID in ext_text(pki.sign_cert("a1"))
    pki.run("--revoke", "a1")
    assert not pki.sign_cert("a1").exists() and not pki.sign_key("a1").exists()
    assert len((pki.dir / "crl-index").read_text().splitlines()) == 2
    assert any(p.name.startswith("hosts_a1.sign-") for p in (pki.dir / "revoked").iterdir())


def test_broker_refuses_the_signing_pair_for_tls(broker, pki):
    """The broker verifies clients for TLS client use: the signing
    certificate has no clientAuth, so it cannot connect as h1."""
    def probe(cert, key):
        return tls_probe("127.0.0.1", broker.port, pki.ca, cert, key,
                         server_hostname="localhost")
    assert probe(pki.cert("h1"), pki.key("h1")) == "connack:0"
    got = probe(pki.sign_cert("h1"), pki.sign_key("h1"))
    assert got.startswith("tls:") or got == "closed", got


def test_python_checker_refuses_the_tls_pair(pki):
    """muster_fixtures' checker (what the system tests read agent messages
    with) makes the CLI's check: same CA, same CN, good signature, but a TLS
    certificate is forged."""
    t = topic("hosts", "h1", "status")
    with pytest.raises(ForgedMessage, match=TLS_REASON):
        open_agent_message(pki, t, status(pki, "h1", signer="tls"))
    with pytest.raises(ForgedMessage, match=TLS_REASON):
        open_agent_message(pki, topic("results", "j1", "h1"),
                           result(pki, "h1", "j1", signer="tls"))
    assert open_agent_message(pki, t, status(pki, "h1"))["host"] == "h1"
    assert open_agent_message(pki, topic("results", "j1", "h1"),
                              result(pki, "h1", "j1"))["job"] == "j1"


def test_cli_refuses_what_the_tls_pair_signs(broker, pki, keys, mqtt, tmp_path):
    """h1 connects with its TLS pair.  Signed with that same pair, its
    status and results are forged, with the reason; signed with its
    signing pair they are h1's."""
    conf = write_cli_conf(tmp_path / "muster.conf", broker, keys=keys)
    h1 = mqtt("h1")
    st = topic("hosts", "h1", "status")
    h1.publish(st, status(pki, "h1", signer="tls"), retain=True)

    r = run_cli("hosts", "--json", conf=conf)
    lines = ndjson(r.stdout)
    forged = [x for x in lines if x.get("type") == "forged"]
    assert len(forged) == 1 and TLS_REASON in forged[0]["reason"], r.stdout
    assert not any(x.get("host") == "h1" and x.get("type") != "forged" for x in lines), \
        r.stdout
    r = run_cli("hosts", conf=conf)
    assert "forged: 1 message (not counted)" in r.stdout, r.stdout
    assert not any(line.startswith("h1 ") for line in r.stdout.splitlines()), r.stdout

    env = dict(os.environ, MUSTER_CONFIG=str(conf))
    p = subprocess.Popen([str(MUSTER_CLI), "watch", "-H", "h1", "--json"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        h1.publish(topic("results", "j-tls", "h1"), result(pki, "h1", "j-tls", "tls"))
        h1.publish(st, status(pki, "h1"), retain=True)
        time.sleep(0.5)
        h1.publish(topic("results", "j-sign", "h1"), result(pki, "h1", "j-sign"))
        time.sleep(1.0)
    finally:
        p.terminate()
        out, err = p.communicate(10)
    lines = ndjson(out)
    got = [(x["type"], x.get("job") or x.get("topic")) for x in lines
           if x["type"] in ("result", "forged")]
    assert ("result", "j-sign") in got, out + err
    assert not any(x["type"] == "result" and x.get("job") == "j-tls" for x in lines), out
    tls = [x for x in lines if x["type"] == "forged" and x["topic"].endswith("/j-tls/h1")]
    assert len(tls) == 1 and TLS_REASON in tls[0]["reason"], out

    r = run_cli("hosts", "--json", conf=conf)
    lines = ndjson(r.stdout)
    assert not [x for x in lines if x.get("type") == "forged"], r.stdout
    h = [x for x in lines if x.get("host") == "h1"]
    assert h and h[0].get("state", "online") == "online", r.stdout
