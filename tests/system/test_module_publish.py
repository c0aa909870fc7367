# SPDX-License-Identifier: Apache-2.0
"""muster module publish | list | show | retire (issue 8, the publisher side)
against a real TLS broker with the generated ACL and real gpg keys.

The CLI connects with the publisher's certificate (CN pub:release) and signs
with the session's publisher key (conftest: keys.gnupg_home, made by
scripts/gen-keys).  What it leaves on the broker is read back by a host's
MQTT client, as an agent would, and checked byte for byte; signatures are
checked with the gpg command line against the agents' keyring
(keys.agent_gnupg, public key only), not through our own code.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from muster_fixtures import (
    BUILD_DIR, MUSTER_CLI, TEST_MODULES_DIR, module_file, module_payloads,
    now_ms, pack, run_cli, topic, unpack,
)

pytestmark = pytest.mark.skipif(not MUSTER_CLI.exists(),
                                reason=f"{MUSTER_CLI} is not built")

SUBCOMMANDS = ["publish", "list", "show", "retire", "withdraw"]


def pub_conf(path: Path, broker, keys, cn: str = "pub:release",
             gnupg_home=None, fingerprint=None) -> Path:
    """A muster.conf for a publisher: TLS identity cn, [publisher] key."""
    pki = broker.pki
    text = (f"[broker]\nuri = {broker.uri}\nca = {pki.ca}\n"
            f"cert = {pki.cert(cn)}\nkey = {pki.key(cn)}\n")
    fpr = keys.publisher_fpr if fingerprint is None else fingerprint
    text += "\n[publisher]\n"
    text += f"gnupg_home = {gnupg_home or keys.gnupg_home}\n"
    if fpr:
        text += f"fingerprint = {fpr}\n"
    path.write_text(text)
    return path


class Pub:
    def __init__(self, conf: Path, home: Path):
        self.conf, self.home = conf, home

    def __call__(self, *args, **kw) -> subprocess.CompletedProcess:
        env = {"HOME": self.home, "MUSTER_RUNNER": None}
        env.update(kw.pop("env", {}))
        return run_cli(*args, conf=self.conf, env=env, **kw)

    def publish(self, so, *args) -> dict:
        r = self("module", "publish", str(so), "--json", *args)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def list(self) -> dict[str, dict]:
        r = self("module", "list", "--json")
        assert r.returncode == 0, r.stderr
        return {o["name"]: o for o in
                (json.loads(line) for line in r.stdout.splitlines())}


@pytest.fixture
def pub(broker, keys, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return Pub(pub_conf(tmp_path / "pub.conf", broker, keys), home)


def retained(mqtt, filt: str, cn: str = "h1", wait: float = 1.0) -> dict:
    """topic -> payload of every retained message under filt, read with a
    host's certificate (what an agent would get)."""
    c = mqtt(cn)
    c.subscribe(filt)
    return {m.topic: m.payload for m in c.collect(wait) if m.retain}


def gpg_verify(keys, data: bytes, sig: bytes, tmp: Path) -> str:
    """gpg's VALIDSIG fingerprint for a detached signature, checked in the
    agents' keyring; "" when gpg does not call it valid."""
    (tmp / "m").write_bytes(data)
    (tmp / "m.sig").write_bytes(sig)
    r = subprocess.run(["gpg", "--homedir", str(keys.agent_gnupg), "--batch",
                        "--status-fd", "1", "--verify", str(tmp / "m.sig"),
                        str(tmp / "m")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 3 and f[1] == "VALIDSIG" and r.returncode == 0:
            return f[-1] if len(f) >= 12 else f[2]
    return ""


# ---- help ----------------------------------------------------------------------


def test_help(tmp_path):
    env = {"HOME": tmp_path, "MUSTER_CONFIG": None}
    r = run_cli("--help", env=env)
    assert r.returncode == 0
    for sub in SUBCOMMANDS:
        assert f"module {sub}" in r.stdout
    r = run_cli("module", "--help", env=env)
    assert r.returncode == 0 and "usage: muster module" in r.stdout
    for sub in SUBCOMMANDS:
        r = run_cli("module", sub, "--help", env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"usage: muster module {sub}")
    r = run_cli("module", "frobnicate", env=env)
    assert r.returncode == 2 and "unknown module command" in r.stderr
    r = run_cli("module", env=env)
    assert r.returncode == 2


# ---- publish, list, show -------------------------------------------------------


def test_publish_list_show(pub, keys, mqtt, tmp_path):
    so = module_file("sys.info")
    data = so.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    before = now_ms()
    out = pub.publish(so)
    assert out["name"] == "sys.info" and out["version"] == "1.0.0"
    assert out["abi"] == 1 and out["sha256"] == sha and out["size"] == len(data)
    assert out["signer"] == keys.publisher_fpr
    assert before <= out["published_at"] <= now_ms()
    assert out["pointer"] == topic("modules", "sys.info")
    assert out["artifact"] == topic("modules", "sys.info", sha)

    # list: JSON and the table
    mods = pub.list()
    assert list(mods) == ["sys.info"]
    m = mods["sys.info"]
    assert (m["version"], m["sha256"], m["size"], m["abi"]) == \
        ("1.0.0", sha, len(data), 1)
    assert m["published_at"] == out["published_at"]
    assert m["signature"] == "good" and m["signer"] == keys.publisher_fpr
    r = pub("module", "list")
    assert r.returncode == 0, r.stderr
    row = [line for line in r.stdout.splitlines() if line.startswith("sys.info ")]
    assert len(row) == 1 and sha[:16] in row[0] and keys.publisher_fpr in row[0]
    assert str(len(data)) in row[0] and "1.0.0" in row[0]

    # show: every manifest field and the artifact's presence
    r = pub("module", "show", "sys.info", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["kind"] == "module" and s["sha256"] == sha and s["size"] == len(data)
    assert s["version"] == "1.0.0" and s["abi"] == 1
    assert s["published_at"] == out["published_at"]
    assert s["signer"] == keys.publisher_fpr
    assert s["artifact_present"] is True
    assert s["artifact_state"] == "present (sha256 and size match)"
    r = pub("module", "show", "sys.info")
    assert r.returncode == 0, r.stderr
    assert f"sha256        {sha}" in r.stdout
    assert "present (sha256 and size match)" in r.stdout

    # What a host gets from the broker: the artifact carries the .so bytes
    # and a manifest gpg verifies; the pointer carries the same manifest.
    got = retained(mqtt, topic("modules", "#"))
    assert set(got) == {topic("modules", "sys.info"),
                        topic("modules", "sys.info", sha)}
    art = unpack(got[topic("modules", "sys.info", sha)])
    ptr = unpack(got[topic("modules", "sys.info")])
    assert art["v"] == 1 and ptr["v"] == 1
    assert art["so"] == data
    assert ptr["manifest"] == art["manifest"] and ptr["sig"] == art["sig"]
    man = unpack(art["manifest"])
    assert man == {"v": 1, "kind": "module", "name": "sys.info", "version": "1.0.0",
                   "abi": 1, "sha256": sha, "size": len(data),
                   "published_at": out["published_at"]}
    assert gpg_verify(keys, art["manifest"], art["sig"], tmp_path) == \
        keys.publisher_fpr
    # and the check is real: a changed manifest does not verify
    assert gpg_verify(keys, art["manifest"] + b"\x00", art["sig"], tmp_path) == ""


def test_republish_is_newer(pub, keys, mqtt):
    so = module_file("os.release")
    first = pub.publish(so)
    second = pub.publish(so)
    assert second["published_at"] > first["published_at"]
    assert pub.list()["os.release"]["published_at"] == second["published_at"]
    # A pointer from a clock ahead of ours: the next publish goes past it,
    # so agents never refuse it as a rollback.
    data = so.read_bytes()
    ahead = now_ms() + 3_600_000
    pointer, _, _ = module_payloads(keys, data, "os.release", "1.0.0", 1,
                                    published_at=ahead)
    mqtt("pub:release").publish(topic("modules", "os.release"), pointer,
                                qos=1, retain=True)
    assert pub.list()["os.release"]["published_at"] == ahead
    third = pub.publish(so)
    assert third["published_at"] == ahead + 1



# ---- published_at: one rule for module and release pointers (ctl/pointer.c) ----

TOP = 2**64 - 1		# the largest published_at a manifest can carry


def release_pointer(keys, channel: str, published_at: int, rollout: int = 10) -> bytes:
    """A release pointer signed by the publisher, naming two small binaries."""
    sha = hashlib.sha256(b"binary").hexdigest()
    manifest = pack({"v": 1, "kind": "release", "channel": channel, "version": "9.0.0",
                     "agent_sha256": sha, "agent_size": 6, "runner_sha256": sha,
                     "runner_size": 6, "published_at": published_at,
                     "rollout": rollout})
    return pack({"v": 1, "manifest": manifest, "sig": keys.pgp_sign(manifest)})


def test_release_goes_past_a_pointer_ahead(pub, keys, mqtt):
    ahead = now_ms() + 3_600_000
    mqtt("pub:release").publish(topic("releases", "canary"),
                                release_pointer(keys, "canary", ahead), retain=True)
    r = pub("release", "rollout", "--channel", "canary", "--json", "50")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["published_at"] == ahead + 1


def test_largest_published_at_is_not_wrapped(pub, keys, mqtt, tmp_path):
    """A pointer at the largest published_at has no successor: +1 would
    wrap to 0, which every host refuses as a rollback.  Module publish and
    release publish | rollout all refuse, and leave the broker as it was
    (release publish|rollout once published that 0)."""
    so = module_file("os.release")
    pointer, _, _ = module_payloads(keys, so.read_bytes(), "os.release", "1.0.0", 1,
                                    published_at=TOP)
    mqtt("pub:release").publish(topic("modules", "os.release"), pointer, retain=True)
    r = pub("module", "publish", str(so), "--json")
    assert r.returncode == 2, r.stdout
    assert "largest published_at" in r.stderr, r.stderr
    assert retained(mqtt, topic("modules", "#")) == {topic("modules", "os.release"): pointer}

    rel = release_pointer(keys, "canary", TOP)
    mqtt("pub:release").publish(topic("releases", "canary"), rel, retain=True)
    r = pub("release", "rollout", "--channel", "canary", "50")
    assert r.returncode == 2, r.stdout
    assert "largest published_at" in r.stderr, r.stderr
    binary = tmp_path / "binary"
    binary.write_bytes(b"other binary")
    r = pub("release", "publish", "--channel", "canary", "--version", "9.0.1",
            "--agent", str(binary), "--runner", str(binary))
    assert r.returncode == 2, r.stdout
    assert "largest published_at" in r.stderr, r.stderr
    # Nothing published: no pointer, and no artifact a pointer would name.
    assert retained(mqtt, topic("releases", "#")) == {topic("releases", "canary"): rel}
    assert retained(mqtt, topic("artifacts", "#")) == {}

def test_version_flag(pub, mqtt):
    so = module_file("disk.usage")
    r = pub("module", "publish", str(so), "--version", "9.9.9")
    assert r.returncode == 2
    assert "--version 9.9.9" in r.stderr and "1.0.0" in r.stderr
    assert retained(mqtt, topic("modules", "#")) == {}
    assert pub.publish(so, "--version", "1.0.0")["version"] == "1.0.0"


@pytest.mark.parametrize("bad,why", [("badmagic", "bad magic"),
                                     ("badabi", "ABI 999"),
                                     ("nosym", "no muster_module symbol")])
def test_broken_descriptor_refused(pub, mqtt, bad, why):
    so = TEST_MODULES_DIR / f"{bad}.so"
    r = pub("module", "publish", str(so))
    assert r.returncode == 2, r.stdout
    assert "broken module descriptor" in r.stderr and why in r.stderr
    assert r.stdout == ""
    assert retained(mqtt, topic("modules", "#")) == {}


def test_not_a_module_file(pub, mqtt, tmp_path):
    r = pub("module", "publish", str(tmp_path / "missing.so"))
    assert r.returncode == 2 and "missing.so" in r.stderr
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not an ELF file")
    r = pub("module", "publish", str(junk))
    assert r.returncode == 2 and "broken module descriptor" in r.stderr
    r = pub("module", "publish", str(module_file("sys.info")), "--runner",
            str(tmp_path / "no-runner"))
    assert r.returncode == 2 and "not an executable muster-runner" in r.stderr
    assert retained(mqtt, topic("modules", "#")) == {}


def test_runner_found_by_flag_and_env(pub, tmp_path):
    runner = BUILD_DIR / "runner" / "muster-runner"
    so = module_file("sys.info")
    assert pub.publish(so, "--runner", str(runner))["name"] == "sys.info"
    r = pub("module", "publish", str(so), "--json",
            env={"MUSTER_RUNNER": str(runner)})
    assert r.returncode == 0, r.stderr
    r = pub("module", "publish", str(so),
            env={"MUSTER_RUNNER": str(tmp_path / "nope")})
    assert r.returncode == 2 and "nope" in r.stderr


def test_publisher_key_problems(broker, keys, mqtt, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    so = module_file("sys.info")
    # The agents' keyring has the public key only: no secret key to sign.
    public_only = Pub(pub_conf(tmp_path / "a.conf", broker, keys,
                               gnupg_home=keys.agent_gnupg), home)
    r = public_only("module", "publish", str(so))
    assert r.returncode == 2
    assert "cannot sign" in r.stderr and "no secret key" in r.stderr
    assert keys.publisher_fpr in r.stderr
    # No fingerprint configured at all.
    nofpr = Pub(pub_conf(tmp_path / "b.conf", broker, keys, fingerprint=""),
                home)
    r = nofpr("module", "publish", str(so))
    assert r.returncode == 2 and "no publisher key" in r.stderr
    # The global flags fill it in.
    r = nofpr("--fingerprint", keys.publisher_fpr, "module", "publish", str(so))
    assert r.returncode == 0, r.stderr
    assert topic("modules", "sys.info") in retained(mqtt, topic("modules", "+"))


def test_key_failure_publishes_nothing(broker, keys, mqtt, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    bad = Pub(pub_conf(tmp_path / "a.conf", broker, keys,
                       gnupg_home=keys.agent_gnupg), home)
    assert bad("module", "publish", str(module_file("sys.info"))).returncode == 2
    assert retained(mqtt, topic("modules", "#")) == {}


# ---- signatures as list sees them --------------------------------------------


def test_list_signer_states(pub, keys, untrusted_keys, mqtt):
    data = module_file("sys.info").read_bytes()
    writer = mqtt("pub:release")
    # Good: by our publisher key.
    good, _, _ = module_payloads(keys, data, "good.mod", "1", 1)
    # Signed by a key our keyring does not know.
    rogue, _, _ = module_payloads(untrusted_keys, data, "rogue.mod", "1", 1)
    # A signature over other bytes.
    forged = unpack(module_payloads(keys, data, "forged.mod", "1", 1)[0])
    other = unpack(module_payloads(keys, data, "forged.mod", "2", 1)[0])
    forged["sig"] = other["sig"]
    for name, payload in (("good.mod", good), ("rogue.mod", rogue),
                          ("forged.mod", pack(forged))):
        writer.publish(topic("modules", name), payload, qos=1, retain=True)
    # Not a pointer at all.
    writer.publish(topic("modules", "junk.mod"), b"\x01\x02", qos=1, retain=True)

    mods = pub.list()
    assert set(mods) == {"good.mod", "rogue.mod", "forged.mod", "junk.mod"}
    assert mods["good.mod"]["signature"] == "good"
    assert mods["good.mod"]["signer"] == keys.publisher_fpr
    assert mods["rogue.mod"]["signature"] == "unknown signer"
    assert mods["rogue.mod"]["signer"] is None
    assert mods["forged.mod"]["signature"] == "bad"
    assert mods["forged.mod"]["signer"] is None
    assert "problem" in mods["junk.mod"] and "version" not in mods["junk.mod"]
    r = pub("module", "list")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    assert keys.publisher_fpr in rows["good.mod"]
    assert rows["rogue.mod"].endswith("unknown signer")
    assert rows["forged.mod"].endswith("BAD SIGNATURE")
    assert "bad pointer" in rows["junk.mod"]


# ---- retire --------------------------------------------------------------------


def test_retire(pub, mqtt):
    so = module_file("sys.info")
    out = pub.publish(so)
    art = topic("modules", "sys.info", out["sha256"])
    r = pub("module", "retire", "sys.info")
    assert r.returncode == 0, r.stderr
    assert "keep running their cached build" in r.stdout
    assert "error: module sys.info is not published" in r.stdout
    got = retained(mqtt, topic("modules", "#"))
    assert topic("modules", "sys.info") not in got
    assert art in got			# without --purge the build stays fetchable
    assert pub.list() == {}
    r = pub("module", "show", "sys.info")
    assert r.returncode == 1 and "not published" in r.stderr
    r = pub("module", "retire", "sys.info")
    assert r.returncode == 1 and "nothing to retire" in r.stderr
    # --purge clears the artifacts too
    r = pub("module", "retire", "sys.info", "--purge")
    assert r.returncode == 0, r.stderr
    assert "cleared 1 artifact" in r.stdout
    assert retained(mqtt, topic("modules", "#")) == {}


def test_retire_purge_after_publish(pub, mqtt):
    a = pub.publish(module_file("sys.info"))
    pub.publish(module_file("os.release"))
    r = pub("module", "retire", "sys.info", "--purge")
    assert r.returncode == 0, r.stderr
    assert "retired sys.info" in r.stdout and "cleared 1 artifact" in r.stdout
    got = retained(mqtt, topic("modules", "#"))
    assert not any("/sys.info" in t for t in got)
    assert topic("modules", "os.release") in got	# others untouched
    assert topic("modules", "sys.info", a["sha256"]) not in got


# ---- the ACL ---------------------------------------------------------------------


def test_host_cannot_publish_modules(broker, keys, mqtt, tmp_path):
    data = module_file("sys.info").read_bytes()
    pointer, artifact, sha = module_payloads(keys, data, "evil", "1.0.0", 1)
    watch = mqtt("h2")
    watch.subscribe(topic("modules", "#"))
    # Mosquitto answers a denied QoS 1 publish with an MQTT 5 PUBACK saying
    # "not authorized"; paho-python reports it published all the same, so
    # what counts is that nothing arrives.  An operator may not either.
    for cn in ("h1", "op:alice"):
        c = mqtt(cn)
        c.publish(topic("modules", "evil", sha), artifact, qos=1, retain=True)
        c.publish(topic("modules", "evil"), pointer, qos=1, retain=True)
    host = mqtt("h1")
    assert [m.topic for m in watch.collect(1.0)] == []
    # nor is anything retained for a later subscriber
    assert retained(mqtt, topic("modules", "#"), cn="h3") == {}
    # The CLI with a host certificate: the broker refuses (MQTT 5 PUBACK
    # "not authorized") and the CLI says so.
    home = tmp_path / "home"
    home.mkdir()
    as_host = Pub(pub_conf(tmp_path / "h.conf", broker, keys, cn="h1"), home)
    r = as_host("module", "publish", str(module_file("sys.info")))
    assert r.returncode == 2
    assert "the broker did not accept the module artifact" in r.stderr
    # ... and names the role it takes, and what this certificate is.
    assert "publisher role (CN pub:NAME)" in r.stderr and "is CN h1" in r.stderr, \
        r.stderr
    assert retained(mqtt, topic("modules", "#"), cn="h3") == {}
    # The control: the same payloads from the publisher's certificate arrive.
    pubc = mqtt("pub:release")
    pubc.publish(topic("modules", "evil", sha), artifact, qos=1, retain=True)
    pubc.publish(topic("modules", "evil"), pointer, qos=1, retain=True)
    got = retained(mqtt, topic("modules", "#"), cn="h3")
    assert set(got) == {topic("modules", "evil"), topic("modules", "evil", sha)}
    # and a host cannot clear them either
    host.publish(topic("modules", "evil"), b"", qos=1, retain=True)
    assert topic("modules", "evil") in retained(mqtt, topic("modules", "#"),
                                                cn="h3")


def test_operator_cannot_publish_or_retire(broker, keys, pub, mqtt, tmp_path):
    """The operator's certificate (what the demo's muster.conf has) is
    refused by the broker; the CLI says the publisher role is needed."""
    home = tmp_path / "ophome"
    home.mkdir()
    as_op = Pub(pub_conf(tmp_path / "op.conf", broker, keys, cn="op:alice"), home)
    r = as_op("module", "publish", str(module_file("sys.info")))
    assert r.returncode == 2
    assert "publisher role (CN pub:NAME)" in r.stderr and "CN op:alice" in r.stderr, \
        r.stderr
    pub.publish(module_file("sys.info"))
    r = as_op("module", "retire", "sys.info")
    assert r.returncode == 2
    assert "clearing of the pointer" in r.stderr and "CN op:alice" in r.stderr, r.stderr
    assert "sys.info" in pub.list()


def test_republish_other_bytes_needs_force(pub, mqtt, tmp_path):
    """Issue 23: a second build under a version already published is refused
    (hosts know a build by its version) unless --force; the same bytes
    again are fine."""
    so = module_file("sys.info")
    first = pub.publish(so)
    other = tmp_path / "sys.info.so"
    # Bytes after the ELF file's end: another sha256, the same module.
    other.write_bytes(so.read_bytes() + b"\0" * 64)
    sha = hashlib.sha256(other.read_bytes()).hexdigest()
    r = pub("module", "publish", str(other))
    assert r.returncode == 2, r.stdout
    assert "sys.info 1.0.0 is already published as another build" in r.stderr
    assert first["sha256"] in r.stderr and "--force" in r.stderr, r.stderr
    assert pub.list()["sys.info"]["sha256"] == first["sha256"]
    assert topic("modules", "sys.info", sha) not in retained(mqtt, topic("modules", "#"))
    forced = pub.publish(other, "--force")
    assert forced["sha256"] == sha
    assert pub.list()["sys.info"]["sha256"] == sha
    assert pub.publish(other)["sha256"] == sha


def test_publish_copies_the_network_declaration(pub, mqtt):
    """MUSTER_NEEDS_NET in the descriptor becomes "net" in the signed
    manifest (issue 22); a module that needs nothing gets no key at all."""
    out = pub.publish(TEST_MODULES_DIR / "netneed.so")
    assert out["net"] is True, out
    m = retained(mqtt, topic("modules", "netneed"))
    manifest = unpack(unpack(m[topic("modules", "netneed")])["manifest"])
    assert manifest["net"] is True, manifest
    assert pub.list()["netneed"]["net"] is True
    r = pub("module", "show", "netneed")
    assert r.returncode == 0, r.stderr
    assert "network       yes (MUSTER_NEEDS_NET)" in r.stdout, r.stdout
    out = pub.publish(TEST_MODULES_DIR / "netprobe.so")
    assert out["net"] is False, out
    m = retained(mqtt, topic("modules", "netprobe"))
    assert "net" not in unpack(unpack(m[topic("modules", "netprobe")])["manifest"])


# ---- withdraw --------------------------------------------------------------------


def _run_vers(op, operator, sha=None):
    from muster_fixtures import new_job, run_job
    body = new_job("run", "host/h1", module="vers",
                   **({"module_sha256": sha} if sha else {}))
    got = run_job(op, operator, body, ["h1"], timeout=20)
    assert "h1" in got, body["id"]
    return got["h1"]


def test_withdraw_reaches_hosts_that_cached_the_build(pub, agents, mqtt, operator,
                                                      tmp_path):
    """Issue 23: `module withdraw NAME VERSION` makes a host that cached the
    build drop it and refuse it, pinned or not; unpinned jobs run the next
    lower version (in version order: 1.9.0 < 1.10.0), signed again."""
    op = mqtt("op:alice")
    v1 = pub.publish(TEST_MODULES_DIR / "vers1.so")
    v10 = pub.publish(TEST_MODULES_DIR / "vers10.so")
    a = agents("h1", wake_port=0, extra={"modules": {"fetch_timeout": "3s",
                                                     "prefetch_delay": "0"}}).start()
    r = _run_vers(op, operator)
    assert r["status"] == "pass" and r["module_version"] == "1.10.0", r
    cached = a.state_dir / "net" / "modcache" / f"{v10['sha256']}.so"
    assert cached.exists()
    # 1.9.0 comes after 1.10.0 and is a lower version.
    v9 = pub.publish(TEST_MODULES_DIR / "vers2.so")
    assert _run_vers(op, operator)["module_version"] == "1.9.0"
    v10 = pub.publish(TEST_MODULES_DIR / "vers10.so")
    assert _run_vers(op, operator)["module_version"] == "1.10.0"

    # An older version: the pointer keeps its build, signed anew.
    w = pub("module", "withdraw", "vers", "1.0.0")
    assert w.returncode == 0, w.stderr
    assert f"the pointer now names 1.10.0 (sha256 {v10['sha256']})" in w.stdout, w.stdout
    r = _run_vers(op, operator, sha=v1["sha256"])
    assert r["status"] == "error" and "withdrawn by its publisher" in r["reason"], r
    assert _run_vers(op, operator)["module_version"] == "1.10.0"

    w = pub("module", "withdraw", "vers", "1.10.0")
    assert w.returncode == 0, w.stderr
    assert f"the pointer now names 1.9.0 (sha256 {v9['sha256']})" in w.stdout, w.stdout
    arts = retained(mqtt, topic("modules", "vers", "+"))
    assert topic("modules", "vers", v10["sha256"]) not in arts
    assert pub.list()["vers"]["sha256"] == v9["sha256"]

    r = _run_vers(op, operator)
    assert r["status"] == "pass" and r["module_version"] == "1.9.0", r
    assert not cached.exists(), "the withdrawn build is still cached"
    # The parent keeps its own record (floors/, which only it writes).
    assert (a.state_dir / "floors" / "withdrawn" / v10["sha256"]).exists()
    r = _run_vers(op, operator, sha=v10["sha256"])
    assert r["status"] == "error" and "withdrawn by its publisher" in r["reason"], r

    # Withdrawals add up (1.0.0's is still listed): 1.9.0 has nothing
    # left below it to fall back to, and nothing changes.
    for old in (v1, v10):
        r = _run_vers(op, operator, sha=old["sha256"])
        assert r["status"] == "error" and "withdrawn" in r["reason"], r
    w = pub("module", "withdraw", "vers", "1.9.0")
    assert w.returncode == 1 and "no lower version of vers" in w.stderr, w.stderr
    assert pub.list()["vers"]["sha256"] == v9["sha256"]
    assert _run_vers(op, operator)["module_version"] == "1.9.0"
    w = pub("module", "withdraw", "vers", "7.0.0")
    assert w.returncode == 1 and "no build of vers 7.0.0" in w.stderr, w.stderr
    a.stop()


def test_parent_refuses_a_withdrawn_local_file(pub, agents, mqtt, operator):
    """The network process offers modules_dir's file first under prefer =
    local; the parent still refuses a build it knows was withdrawn."""
    op = mqtt("op:alice")
    pub.publish(TEST_MODULES_DIR / "vers1.so")
    v10 = pub.publish(TEST_MODULES_DIR / "vers10.so")
    assert pub("module", "withdraw", "vers", "1.10.0").returncode == 0
    a = agents("h1", wake_port=0, extra={"modules": {"prefetch_delay": "0"}}).start()
    assert _run_vers(op, operator)["module_version"] == "1.0.0"
    a.stop()
    # The same host (its folder and state), now preferring its own file.
    a2 = agents("h1", wake_port=0, extra={"modules": {"prefer": "local"}})
    assert a2.state_dir == a.state_dir
    a2.modules_dir.mkdir(parents=True, exist_ok=True)
    p = a2.modules_dir / "vers.so"
    p.write_bytes((TEST_MODULES_DIR / "vers10.so").read_bytes())
    p.chmod(0o644)
    a2.start()
    r = _run_vers(op, operator)
    assert r["status"] == "error", r
    assert f"build {v10['sha256'][:12]}... was withdrawn" in r["reason"], r
    a2.stop()


def test_withdraw_one_build_by_sha256(pub, agents, mqtt, operator, tmp_path):
    """NAME@SHA256 withdraws that build only: a version re-published with
    --force falls back to its other build; NAME@VERSION is NAME VERSION."""
    op = mqtt("op:alice")
    pub.publish(TEST_MODULES_DIR / "vers1.so")
    first = pub.publish(TEST_MODULES_DIR / "vers10.so")
    other = tmp_path / "vers10-other.so"
    other.write_bytes((TEST_MODULES_DIR / "vers10.so").read_bytes() + b"\0" * 64)
    second = pub.publish(other, "--force")
    assert second["sha256"] != first["sha256"] and second["version"] == "1.10.0"
    a = agents("h1", wake_port=0, extra={"modules": {"fetch_timeout": "3s",
                                                     "prefetch_delay": "0"}}).start()
    assert _run_vers(op, operator)["module_sha256"] == second["sha256"]
    w = pub("module", "withdraw", f"vers@{second['sha256']}")
    assert w.returncode == 0, w.stderr
    assert f"withdrew vers build {second['sha256']} (1 build withdrawn in all)" in w.stdout
    assert f"names 1.10.0 (sha256 {first['sha256']})" in w.stdout, w.stdout
    r = _run_vers(op, operator)
    assert r["status"] == "pass" and r["module_sha256"] == first["sha256"], r
    r = _run_vers(op, operator, sha=second["sha256"])
    assert r["status"] == "error" and "withdrawn" in r["reason"], r
    # NAME@VERSION: every build of 1.10.0 goes, back to 1.0.0.
    w = pub("module", "withdraw", "vers@1.10.0")
    assert w.returncode == 0, w.stderr
    assert _run_vers(op, operator)["module_version"] == "1.0.0"
    bad = pub("module", "withdraw", "vers@1.0 beta")
    assert bad.returncode == 2 and "bad version" in bad.stderr, bad.stderr
    a.stop()
