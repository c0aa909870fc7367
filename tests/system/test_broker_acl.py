# SPDX-License-Identifier: Apache-2.0
"""The broker security model (design.md §8) against a real Mosquitto with the
shipped configuration and the generated ACL, using python clients with real
certificates.  No agent needed.

"Nothing arrives" is never a bare sleep: after the publishes that must be
dropped have been acknowledged, an allowed control message goes the same way.
Mosquitto routes a message before it acknowledges it, so once the control
has arrived anything earlier would have arrived too.
"""
import getpass
import hashlib
import os
import pwd
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from muster_fixtures import (
    Broker, ConnectError, SOURCE_DIR, free_port, gen_keys, gen_pki,
    mosquitto_binary, new_job, tls_probe, topic, wait_until,
)

HOST_JOBS = topic("hosts", "h1", "jobs")


def test_host_receives_its_own_group_and_broadcast_jobs(mqtt, operator):
    h1 = mqtt("h1")
    h1.subscribe(HOST_JOBS, topic("groups", "web", "jobs"),
                 topic("all", "jobs"))
    op = mqtt("op:alice")
    sent = {}
    for target in ("host/h1", "group/web", "all"):
        body = new_job("ping", target)
        env = operator.envelope(body)
        t = {"host/h1": HOST_JOBS, "group/web": topic("groups", "web", "jobs"),
             "all": topic("all", "jobs")}[target]
        op.publish(t, env)
        sent[t] = env
    for t, env in sent.items():
        m = h1.expect(t)
        assert m.payload == env and m.qos == 1


def test_host_never_receives_other_hosts_jobs(mqtt, operator):
    # h1 asks for everything it should not have; Mosquitto 2.0.11 accepts
    # the subscriptions and filters on delivery (design.md §9).
    h1 = mqtt("h1")
    h1.subscribe("muster/v1/#", topic("hosts", "h2", "jobs"),
                 topic("hosts", "+", "jobs"), topic("groups", "+", "jobs"),
                 topic("hosts", "h2", "selftest", "#"))
    h2 = mqtt("h2")
    h2.subscribe(topic("hosts", "h2", "jobs"), topic("groups", "db", "jobs"),
                 topic("hosts", "h2", "selftest", "#"))
    op, srv = mqtt("op:alice"), mqtt("srv:main")

    env = operator.envelope(new_job("ping", "host/h2"))
    op.publish(topic("hosts", "h2", "jobs"), env)
    op.publish(topic("groups", "db", "jobs"), env)
    srv.publish(topic("hosts", "h2", "selftest", "jobs"), env)
    srv.publish(topic("hosts", "h2", "selftest", "verdict"), b"verdict")
    # They were delivered - to h2.
    for t in ("hosts/h2/jobs", "groups/db/jobs", "hosts/h2/selftest/jobs",
              "hosts/h2/selftest/verdict"):
        h2.expect("muster/v1/" + t)

    op.publish(HOST_JOBS, b"control")
    assert h1.expect(HOST_JOBS).payload == b"control"
    leaked = [m.topic for m in h1.collect(0.1)]
    assert all(t == HOST_JOBS for t in leaked), leaked


def test_host_cannot_publish_as_another_host(mqtt):
    op = mqtt("op:alice")
    op.subscribe(topic("results", "#"), topic("hosts", "+", "status"))
    srv = mqtt("srv:main")
    srv.subscribe(topic("hosts", "+", "selftest", "request"))
    h1 = mqtt("h1")
    h1.publish(topic("results", "j1", "h2"), b"forged result")
    h1.publish(topic("results", "j1", "h2", "events"), b"forged event")
    h1.publish(topic("hosts", "h2", "status"), b"forged status", retain=True)
    h1.publish(topic("hosts", "h2", "selftest", "request"), b"forged request")

    ok = topic("results", "j1", "h1")
    h1.publish(ok, b"own result")
    assert op.expect(ok).payload == b"own result"
    assert op.collect(0.1) == []
    ok = topic("hosts", "h1", "selftest", "request")
    h1.publish(ok, b"own request")
    assert srv.expect(ok).payload == b"own request"
    assert srv.collect(0.1) == []

    # The forged retained status was not stored either.
    fresh = mqtt("op:alice")
    fresh.subscribe(topic("hosts", "h2", "status"))
    h2 = mqtt("h2")
    h2.publish(topic("hosts", "h2", "status"), b"real status", retain=True)
    assert fresh.expect(topic("hosts", "h2", "status")).payload == b"real status"
    assert fresh.collect(0.1) == []

    # And h2 may write what h1 could not.
    h2.publish(topic("results", "j1", "h2"), b"real result")
    assert op.expect(topic("results", "j1", "h2")).payload == b"real result"


def test_host_cannot_publish_jobs_or_verdicts(mqtt, operator):
    h2 = mqtt("h2")
    h2.subscribe(topic("hosts", "h2", "jobs"), topic("groups", "web", "jobs"),
                 topic("all", "jobs"), topic("hosts", "h2", "selftest", "#"))
    h1 = mqtt("h1")
    h1.subscribe(HOST_JOBS, topic("hosts", "h1", "selftest", "#"))
    env = operator.envelope(new_job("ping", "all"))
    for t in (topic("hosts", "h2", "jobs"), topic("groups", "web", "jobs"),
              topic("all", "jobs"), HOST_JOBS,
              topic("hosts", "h2", "selftest", "jobs"),
              topic("hosts", "h1", "selftest", "jobs"),
              topic("hosts", "h1", "selftest", "verdict")):
        h1.publish(t, env)

    control = topic("all", "jobs")
    mqtt("op:alice").publish(control, b"control")
    assert h2.expect(control).payload == b"control"
    assert h2.collect(0.1) == []
    # h1 hears nothing back on its own topics either: not even its own
    # publishes, which it could read if it could write them.
    mqtt("op:alice").publish(HOST_JOBS, b"control")
    assert h1.expect(HOST_JOBS).payload == b"control"
    assert h1.collect(0.1) == []


def test_operator_sends_jobs_and_reads_results_status_events(mqtt, operator):
    h1 = mqtt("h1")
    h1.subscribe(HOST_JOBS)
    op = mqtt("op:alice")
    body = new_job("ping", "host/h1")
    jid = body["id"]
    op.subscribe(topic("results", jid, "+"), topic("results", jid, "+", "events"),
                 topic("hosts", "h1", "status"))
    env = operator.envelope(body)
    op.publish(HOST_JOBS, env)
    assert h1.expect(HOST_JOBS).payload == env

    h1.publish(topic("results", jid, "h1", "events"), b"event", qos=0)
    h1.publish(topic("results", jid, "h1"), b"result")
    h1.publish(topic("hosts", "h1", "status"), b"online", retain=True)
    assert op.expect(topic("results", jid, "h1", "events")).payload == b"event"
    assert op.expect(topic("results", jid, "h1")).payload == b"result"
    assert op.expect(topic("hosts", "h1", "status")).payload == b"online"


def test_operator_cannot_forge_results_modules_or_selftests(mqtt):
    watcher = mqtt("srv:main")
    watcher.subscribe(topic("results", "#"), topic("hosts", "+", "status"))
    h1 = mqtt("h1")
    h1.subscribe(topic("modules", "#"), topic("releases", "#"),
                 topic("hosts", "h1", "selftest", "#"))
    op = mqtt("op:alice")
    op.publish(topic("results", "j1", "h1"), b"forged")
    op.publish(topic("hosts", "h1", "status"), b"forged", retain=True)
    op.publish(topic("modules", "evil"), b"forged", retain=True)
    op.publish(topic("releases", "stable"), b"forged", retain=True)
    op.publish(topic("hosts", "h1", "selftest", "verdict"), b"forged")

    ok = topic("results", "j1", "h1")
    h1.publish(ok, b"real")
    assert watcher.expect(ok).payload == b"real"
    assert watcher.collect(0.1) == []
    mqtt("pub:release").publish(topic("modules", "good"), b"real", retain=True)
    assert h1.expect(topic("modules", "good")).payload == b"real"
    assert h1.collect(0.1) == []


def test_role_certificates_get_no_host_jobs(mqtt, operator):
    # Patterns apply to every CN, but no host is called "op:alice": it gets
    # the broadcast (harmless) and nothing addressed to a host or group.
    op = mqtt("op:alice")
    op.subscribe(topic("hosts", "+", "jobs"), topic("groups", "+", "jobs"),
                 topic("hosts", "+", "selftest", "#"), topic("all", "jobs"))
    env = operator.envelope(new_job("ping", "host/h1"))
    sender = mqtt("op:alice")
    sender.publish(HOST_JOBS, env)
    sender.publish(topic("groups", "web", "jobs"), env)
    mqtt("srv:main").publish(topic("hosts", "h1", "selftest", "jobs"), env)
    sender.publish(topic("all", "jobs"), b"control")
    assert op.expect(topic("all", "jobs")).payload == b"control"
    assert op.collect(0.1) == []


def test_publisher_and_server_rights(mqtt):
    h1 = mqtt("h1")
    h1.subscribe(topic("hosts", "h1", "selftest", "#"))
    h2 = mqtt("h2")
    h2.subscribe(topic("hosts", "h1", "selftest", "#"),
                 topic("hosts", "h2", "selftest", "#"))
    pub = mqtt("pub:release")
    pub.publish(topic("modules", "m1"), b"pointer", retain=True)
    pub.publish(topic("releases", "stable"), b"release", retain=True)
    pub.publish(topic("artifacts", "ab" * 32), b"binary", retain=True)
    reader = mqtt("h1")
    reader.subscribe(topic("modules", "#"), topic("releases", "#"),
                     topic("artifacts", "#"))
    got = {reader.expect().topic for _ in range(3)}
    assert got == {topic("modules", "m1"), topic("releases", "stable"),
                   topic("artifacts", "ab" * 32)}

    srv = mqtt("srv:main")
    srv.subscribe(topic("hosts", "+", "selftest", "request"))
    h1.publish(topic("hosts", "h1", "selftest", "request"), b"nonce")
    assert srv.expect().payload == b"nonce"
    srv.publish(topic("hosts", "h1", "selftest", "jobs"), b"test job")
    srv.publish(topic("hosts", "h1", "selftest", "verdict"), b"ok")
    assert h1.expect(topic("hosts", "h1", "selftest", "jobs")).payload == b"test job"
    assert h1.expect(topic("hosts", "h1", "selftest", "verdict")).payload == b"ok"
    srv.publish(topic("hosts", "h2", "selftest", "verdict"), b"control")
    assert h2.expect().payload == b"control"      # not h1's verdict first
    assert h2.collect(0.1) == []


def test_client_without_certificate_is_refused(broker, pki):
    assert tls_probe("127.0.0.1", broker.port, pki.ca, pki.cert("h1"),
                     pki.key("h1"), server_hostname="localhost") == "connack:0"
    r = tls_probe("127.0.0.1", broker.port, pki.ca,
                  server_hostname="localhost")
    assert r.startswith(("tls:", "closed")), r
    with pytest.raises(ConnectError):
        broker.client(None, timeout=5)


def test_client_of_another_ca_is_refused(broker, pki, tmp_path):
    other = gen_pki(tmp_path / "other", hosts=["h1"], operators=["alice"])
    for cn in ("h1", "op:alice"):
        r = tls_probe("127.0.0.1", broker.port, pki.ca, other.cert(cn),
                      other.key(cn), server_hostname="localhost")
        assert r.startswith(("tls:", "closed")), (cn, r)
        with pytest.raises(ConnectError):
            broker.client(cn, cert=other.cert(cn), key=other.key(cn), timeout=5)
        broker.client(cn, timeout=5).close()    # ours still work
    # The other way round: a client that trusts only the other CA refuses
    # our broker.
    r = tls_probe("127.0.0.1", broker.port, other.ca, pki.cert("h1"),
                  pki.key("h1"), server_hostname="localhost")
    assert "CERTIFICATE_VERIFY_FAILED" in r, r


def test_broker_name_is_verified_for_localhost_and_127_0_0_1(broker, pki):
    for host in ("localhost", "127.0.0.1"):
        c = broker.client("h1", host=host, timeout=5)
        assert c.connected
        c.close()
    # The check is real: a name not in the certificate fails.
    r = tls_probe("127.0.0.1", broker.port, pki.ca, pki.cert("h1"),
                  pki.key("h1"), server_hostname="broker.invalid")
    assert "CERTIFICATE_VERIFY_FAILED" in r, r


def test_retained_and_queued_messages_survive_a_restart(broker, mqtt, operator):
    pub = mqtt("pub:release")
    pub.publish(topic("modules", "m1"), b"pointer", retain=True)
    mqtt("h1").publish(topic("hosts", "h1", "status"), b"online", retain=True)
    # h1's persistent session (as the agent keeps it), then h1 goes away.
    h1 = broker.client("h1", client_id="h1", clean_start=False,
                       session_expiry=3600)
    h1.subscribe(HOST_JOBS)
    h1.close()

    broker.restart()
    env = operator.envelope(new_job("ping", "host/h1"))
    mqtt("op:alice").publish(HOST_JOBS, env)    # queued for offline h1
    broker.restart()

    h1 = mqtt("h1", client_id="h1", clean_start=False, session_expiry=3600)
    assert h1.expect(HOST_JOBS).payload == env
    h1.subscribe(topic("modules", "#"))
    assert h1.expect(topic("modules", "m1")).payload == b"pointer"
    op = mqtt("op:alice")
    op.subscribe(topic("hosts", "h1", "status"))
    m = op.expect(topic("hosts", "h1", "status"))
    assert m.payload == b"online" and m.retain


def test_64_mib_module_artifact_passes_and_oversize_is_refused(mqtt):
    h1 = mqtt("h1")
    t = topic("modules", "big", "0" * 64)
    h1.subscribe(t)
    so = os.urandom(64 * 1024 * 1024) + b"manifest and signature room" * 1000
    pub = mqtt("pub:release")
    pub.publish(t, so, retain=True, timeout=60)
    m = h1.expect(t, timeout=60)
    assert hashlib.sha256(m.payload).digest() == hashlib.sha256(so).digest()

    # Over max_packet_size (80 MiB): the broker drops the publisher.
    big = mqtt("pub:release")
    with pytest.raises(ConnectError, match="disconnected"):
        big.publish(topic("artifacts", "1" * 64), b"\0" * (81 * 1024 * 1024),
                    timeout=30)


def test_group_rights_follow_the_inventory_and_reload(tmp_path, operator):
    pki = gen_pki(tmp_path / "pki", hosts=["h1:web", "h4:*"],
                  operators=["alice"])
    b = Broker(pki, tmp_path / "broker").start()
    clients = []
    try:
        def client(cn):
            c = b.client(cn)
            clients.append(c)
            return c

        h1, h4, op = client("h1"), client("h4"), client("op:alice")
        h1.subscribe(topic("groups", "+", "jobs"))
        h4.subscribe(topic("groups", "+", "jobs"))
        for g in ("web", "db", "other"):
            op.publish(topic("groups", g, "jobs"), g.encode())
        assert sorted(h4.expect().payload for _ in range(3)) == \
            [b"db", b"other", b"web"]
        assert h1.expect().payload == b"web"

        # Move h1 from web to db: regenerate, SIGHUP, no restart.
        pki.run("--host", "h1:db")
        assert "h1 db" in pki.inventory.read_text()
        b.reload()
        op.publish(topic("groups", "web", "jobs"), b"web2")
        op.publish(topic("groups", "db", "jobs"), b"db2")
        assert h1.expect(topic("groups", "db", "jobs")).payload == b"db2"
        assert h1.collect(0.1) == []
    finally:
        for c in clients:
            c.close()
        b.stop()


def _ids(pid):
    """Uid, Gid (real, effective, saved, fs) and Groups of a process."""
    st = dict(line.split(":", 1) for line in
              Path(f"/proc/{pid}/status").read_text().splitlines())
    return st["Uid"].split(), st["Gid"].split(), st["Groups"].split()


def _owners_and_modes(d):
    out = {".": (stat.S_IMODE(d.stat().st_mode), d.stat().st_uid, d.stat().st_gid)}
    for f in sorted(d.iterdir()):
        st = f.stat()
        out[f.name] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def _docs_install(pki, etc):
    """Run the `install` lines of docs/operations.md "Production
    configuration" with /etc/mosquitto/muster moved to etc/muster and PKI
    to the gen-pki folder (apt-get and systemctl left out)."""
    text = (SOURCE_DIR / "docs" / "operations.md").read_text()
    block = re.search(r"### Production configuration\n.*?```\n(.*?)```", text,
                      re.S).group(1)
    lines = [ln for ln in block.splitlines()
             if ln.startswith("install ") and "/etc/mosquitto/muster" in ln]
    assert len(lines) == 3, block
    for ln in lines:
        ln = ln.replace("/etc/mosquitto/muster", f"{etc}/muster")
        ln = ln.replace("PKI/", f"{pki.dir}/")
        subprocess.run(ln, shell=True, check=True)
    return Path(etc) / "muster"


@pytest.mark.skipif(os.geteuid() != 0, reason="mosquitto switches to its user "
                    "only when started as root (CI runs the suite as root)")
def test_broker_runs_as_mosquitto_with_the_documented_key_files(broker, pki,
                                                                tmp_path):
    """docs/operations.md: Mosquitto starts as root, becomes mosquitto and
    then reads its keys, so broker.key is 0640 root:mosquitto in a folder
    0750 root:mosquitto.  The fixture broker runs exactly so."""
    mq = pwd.getpwnam("mosquitto")
    uid, gid, groups = _ids(broker.proc.pid)
    assert uid == [str(mq.pw_uid)] * 4, uid
    assert gid == [str(mq.pw_gid)] * 4, gid
    assert "0" not in groups, groups

    # Its files are what the documented commands install, and those are
    # the documented modes.
    files = _owners_and_modes(broker.key_dir)
    assert files == _owners_and_modes(_docs_install(pki, tmp_path / "etc"))
    g = mq.pw_gid
    assert files == {".": (0o750, 0, g), "acl": (0o644, 0, 0),
                     "broker.crt": (0o644, 0, 0), "broker.key": (0o640, 0, g),
                     "ca.crt": (0o644, 0, 0), "crl.pem": (0o644, 0, 0)}, files

    def probe():
        return tls_probe("127.0.0.1", broker.port, pki.ca, pki.cert("h1"),
                         pki.key("h1"), server_hostname="localhost")
    assert probe() == "connack:0"
    # A reload re-reads the certificates and the ACL as mosquitto.
    mark = len(broker.log())
    broker.reload()
    wait_until(lambda: "Reloading config" in broker.log()[mark:], 10,
               what="the broker's reload")
    assert broker.running and probe() == "connack:0"

    # The proof that it reads the key as mosquitto: with the key as
    # gen-pki writes it (0600 root:root) the same broker does not start...
    broker.stop()
    key = broker.key_dir / "broker.key"
    os.chown(key, 0, 0)
    os.chmod(key, 0o600)
    mark = len(broker.log())
    r = subprocess.run([mosquitto_binary(), "-c", str(broker.conf)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    assert r.returncode != 0, r.stdout
    assert f'Unable to load server key file "{key}"' in broker.log()[mark:], \
        broker.log()[mark:]
    # ... and with the documented modes (start() installs them) it does.
    broker.start()
    assert probe() == "connack:0"


def test_acl_has_no_topic_lines_for_anonymous_only(pki):
    # design.md §9: `topic` before the first `user` applies to anonymous only.
    seen_user = False
    for line in pki.acl.read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            seen_user = True
            assert ":" in words[1] or re.fullmatch(r"[a-z0-9][a-z0-9._-]*",
                                                   words[1]), line
        elif words[0] == "topic":
            assert seen_user, f"'{line}' applies to anonymous clients only"
        else:
            assert words[0] == "pattern", line


def test_gen_pki_is_idempotent_and_issues_what_it_says(tmp_path):
    d = tmp_path / "pki"
    pki = gen_pki(d, hosts=["a1:g1"], operators=["bob"], servers=["s"])
    files = sorted(p for p in d.rglob("*") if p.suffix in (".crt", ".key"))
    before = {p: p.read_bytes() for p in files}
    acl = pki.acl.read_text()
    gen_pki(d)
    assert {p: p.read_bytes() for p in files} == before
    assert pki.acl.read_text() == acl
    # Adding a host keeps the others; a lost key is replaced.
    pki.key("a1").unlink()
    gen_pki(d, hosts=["a2"])
    assert pki.cert("a1").read_bytes() != before[pki.cert("a1")]
    assert pki.cert("op:bob").read_bytes() == before[pki.cert("op:bob")]
    assert "host a1 g1" in pki.inventory.read_text()
    assert "host a2 -" in pki.inventory.read_text()

    def text(crt):
        return subprocess.run(["openssl", "x509", "-in", str(crt), "-noout",
                               "-text"], capture_output=True, text=True,
                              check=True).stdout

    t = text(pki.cert("op:bob"))
    assert "Subject: CN = op:bob" in t and "TLS Web Client Authentication" in t
    assert "prime256v1" in t
    t = text(pki.broker_cert)
    assert "TLS Web Server Authentication" in t
    assert "DNS:localhost" in t and "IP Address:127.0.0.1" in t
    assert "IP Address:0:0:0:0:0:0:0:1" in t
    assert oct(pki.key("op:bob").stat().st_mode & 0o777) == "0o600"
    assert oct(pki.ca_key.stat().st_mode & 0o777) == "0o600"
    for bad in (["--host", "Bad"], ["--host", "a1:no/slash"],
                ["--operator", "x:y"]):
        with pytest.raises(subprocess.CalledProcessError):
            pki.run(*bad)


def test_gen_keys_is_idempotent_and_usable(tmp_path):
    d = tmp_path / "k"
    keys = gen_keys(d, operators=["ann"], publisher="pub1")
    key = keys.operator("ann")
    pub_pem = keys.operator_pub("ann").read_bytes()
    fpr = keys.publisher_fpr
    assert re.fullmatch(r"[0-9A-F]{40}", fpr)
    assert oct(keys.operator_key("ann").stat().st_mode & 0o777) == "0o600"
    gen_keys(d, operators=["ann"], publisher="pub1")
    assert keys.operator_pub("ann").read_bytes() == pub_pem
    assert keys.publisher_fpr == fpr
    assert keys.operator("ann").key_id == key.key_id

    # .pub is the SubjectPublicKeyInfo of .key, and the key id is what
    # design.md §3 says (first 8 bytes of SHA-256 of the raw key).
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in",
                          str(keys.operator_pub("ann")), "-outform", "DER"],
                         capture_output=True, check=True).stdout
    assert der[-32:] == key.raw_public
    assert key.key_id == hashlib.sha256(der[-32:]).hexdigest()[:16]

    # The agent keyring has the public key only, and it verifies.
    gpg = ["gpg", "--homedir", str(keys.agent_gnupg), "--batch", "--no-tty"]
    secret = subprocess.run(gpg + ["--list-secret-keys", "--with-colons"],
                            capture_output=True, text=True).stdout
    assert "sec:" not in secret
    data = tmp_path / "data"
    data.write_bytes(b"manifest bytes")
    (tmp_path / "data.sig").write_bytes(keys.pgp_sign(b"manifest bytes"))
    r = subprocess.run(gpg + ["--status-fd", "1", "--verify",
                              str(tmp_path / "data.sig"), str(data)],
                       capture_output=True, text=True)
    keys.kill_gpg_agents()
    assert f"VALIDSIG {fpr}" in r.stdout, r.stdout + r.stderr


def test_production_config_runs_as_a_debian_drop_in(pki, tmp_path):
    # Debian's main file + ours in conf.d, paths moved to the test folder.
    port = free_port()
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    prod = (SOURCE_DIR / "broker-config" / "mosquitto.conf").read_text()
    prod = prod.replace("/etc/mosquitto/muster/", f"{pki.dir}/")
    prod = prod.replace("listener 8883", f"listener {port} 127.0.0.1")
    (conf_d / "muster.conf").write_text(prod)
    main = tmp_path / "mosquitto.conf"
    main.write_text(f"user {getpass.getuser()}\n"
                    f"persistence true\npersistence_location {tmp_path}/\n"
                    f"log_dest file {tmp_path}/mosquitto.log\n"
                    f"include_dir {conf_d}\n")
    with open(tmp_path / "stderr", "wb") as log:
        p = subprocess.Popen([mosquitto_binary(), "-c", str(main)],
                             stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        r = ""
        while time.monotonic() < deadline and p.poll() is None:
            r = tls_probe("127.0.0.1", port, pki.ca, pki.cert("h1"),
                          pki.key("h1"), server_hostname="localhost")
            if r == "connack:0":
                break
            time.sleep(0.05)
        text = (tmp_path / "mosquitto.log").read_text() \
            if (tmp_path / "mosquitto.log").exists() else ""
        assert r == "connack:0", (r, text, (tmp_path / "stderr").read_text())
        bad = [ln for ln in text.splitlines()
               if ("Error" in ln and "OpenSSL Error" not in ln)
               or "deprecated" in ln.lower()]
        assert bad == [], text
        assert tls_probe("127.0.0.1", port, pki.ca,
                         server_hostname="localhost").startswith(("tls:", "closed"))
    finally:
        p.terminate()
        p.wait(10)


def test_announces_operator_writes_server_reads_hosts_neither(mqtt):
    # R/jobs/<job> (design.md §3): an operator writes the announce and
    # muster-server reads it; a host may neither write one (it would tell
    # the server whom to expect) nor read them (they list the fleet).
    ann = topic("jobs", "j1")
    srv = mqtt("srv:main")
    srv.subscribe(topic("jobs", "+"))
    h1 = mqtt("h1")
    h1.subscribe(topic("jobs", "+"))
    mqtt("h2").publish(ann, b"forged by a host")
    mqtt("pub:release").publish(ann, b"forged by a publisher")
    op = mqtt("op:alice")
    op.publish(ann, b"announce")
    # The operator's publish comes after the refused ones: once it has
    # arrived, they would have too.
    assert srv.expect(ann).payload == b"announce"
    assert srv.collect(0.1) == []
    control = topic("all", "jobs")
    h1.subscribe(control)
    op.publish(control, b"control")
    assert h1.expect(control).payload == b"control"
    assert h1.collect(0.1) == []
