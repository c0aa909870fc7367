# SPDX-License-Identifier: Apache-2.0
"""muster_fixtures - helpers for muster's system tests.

Everything is real: certificates and keys from scripts/gen-pki and
scripts/gen-keys, a mosquitto started from broker-config/dev.conf.in with
the generated ACL, paho clients over mutual TLS (MQTT 5), job envelopes
signed with Ed25519 exactly as design.md §3 says, and a driver for the real
musterd.  Run with /usr/bin/python3 (design.md §9).

Paths: $MUSTER_SOURCE_DIR (default /work/main) and $MUSTER_BUILD_DIR
(default /work/main/build, binaries in agent/, runner/, modules/).

Certificate CNs (broker-config/acl): a host's CN is its name ("h1");
operators "op:<name>", publishers "pub:<name>", servers "srv:<name>".
"""
from __future__ import annotations

import getpass
import hashlib
import os
import pwd
import resource
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import msgpack
import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)
from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SOURCE_DIR = Path(os.environ.get("MUSTER_SOURCE_DIR") or "/work/main")
BUILD_DIR = Path(os.environ.get("MUSTER_BUILD_DIR") or "/work/main/build")
GEN_PKI = SOURCE_DIR / "scripts" / "gen-pki"
GEN_KEYS = SOURCE_DIR / "scripts" / "gen-keys"
DEV_CONF = SOURCE_DIR / "broker-config" / "dev.conf.in"
MUSTERD = BUILD_DIR / "agent" / "musterd"
RUNNER = BUILD_DIR / "runner" / "muster-runner"
MODULES_DIR = BUILD_DIR / "modules"

TOPIC_ROOT = "muster"
UNIT = SOURCE_DIR / "agent" / "musterd.service"


def unit_settings(unit: os.PathLike = UNIT) -> dict[str, str]:
    """The [Service] keys of a unit file (the last value of a repeated key)."""
    out, section = {}, None
    for line in Path(unit).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def unit_wrap(unit: os.PathLike = UNIT) -> tuple[list[str], int]:
    """The command prefix and umask that give a process what the unit gives
    musterd: its capability bounding set, NoNewPrivileges and UMask.  As
    root only (setpriv cannot raise a bounding set)."""
    s = unit_settings(unit)
    caps = ["+" + c.lower().removeprefix("cap_")
            for c in s.get("CapabilityBoundingSet", "").split()]
    wrap = ["setpriv", "--bounding-set", ",".join(["-all"] + caps)]
    if s.get("NoNewPrivileges") == "yes":
        wrap.append("--no-new-privs")
    return wrap + ["--"], int(s.get("UMask", "0022"), 8)


def terminate(proc: subprocess.Popen, timeout: float) -> bool:
    """SIGTERM and wait; SIGKILL after timeout.  False if it took the KILL."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def mosquitto_binary() -> str:
    for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto"):
        if os.access(p, os.X_OK):
            return p
    return shutil.which("mosquitto") or "mosquitto"


def now_ms() -> int:
    return int(time.time() * 1000)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (bind to 0 and let go)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll pred until it returns something true; raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def topic(*parts: str, root: str = TOPIC_ROOT) -> str:
    """topic("hosts", "h1", "jobs") -> "muster/v1/hosts/h1/jobs"."""
    return "/".join((root, "v1") + parts)


# ---- certificates and keys -------------------------------------------------


class Pki:
    """The output folder of scripts/gen-pki."""

    def __init__(self, path: os.PathLike):
        self.dir = Path(path)

    ca = property(lambda self: self.dir / "ca.crt")
    ca_key = property(lambda self: self.dir / "ca.key")
    broker_cert = property(lambda self: self.dir / "broker.crt")
    broker_key = property(lambda self: self.dir / "broker.key")
    acl = property(lambda self: self.dir / "acl")
    inventory = property(lambda self: self.dir / "inventory")

    def _base(self, cn: str) -> Path:
        if ":" in cn:
            role, name = cn.split(":", 1)
            return self.dir / role / name
        return self.dir / "hosts" / cn

    def cert(self, cn: str) -> Path:
        return self._base(cn).with_suffix(".crt")

    def key(self, cn: str) -> Path:
        return self._base(cn).with_suffix(".key")

    # A host's signing pair, hosts/NAME.sign.{key,crt}: what musterd signs
    # agent messages with (design.md §3); its TLS pair is for TLS only.
    def sign_cert(self, host: str) -> Path:
        return self.dir / "hosts" / f"{host}.sign.crt"

    def sign_key(self, host: str) -> Path:
        return self.dir / "hosts" / f"{host}.sign.key"

    def has(self, cn: str) -> bool:
        return self.cert(cn).exists() and self.key(cn).exists()

    def any_client(self) -> Optional[str]:
        """Some client CN this PKI has a (TLS) certificate for."""
        for sub, prefix in (("hosts", ""), ("op", "op:"), ("srv", "srv:"),
                            ("pub", "pub:")):
            d = self.dir / sub
            if d.is_dir():
                for crt in sorted(d.glob("*.crt")):
                    if not crt.name.endswith(".sign.crt"):
                        return prefix + crt.stem
        return None

    def host_groups(self) -> dict[str, list[str]]:
        out = {}
        if self.inventory.exists():
            for line in self.inventory.read_text().splitlines():
                f = line.split()
                if len(f) >= 2 and f[0] == "host":
                    g = f[2] if len(f) > 2 else "-"
                    out[f[1]] = [] if g == "-" else g.split(",")
        return out

    def run(self, *args: str) -> None:
        """Run gen-pki on this folder with more arguments."""
        subprocess.run([str(GEN_PKI), str(self.dir), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def set_host(self, name: str, groups: Iterable[str]) -> bool:
        """Make sure host `name` exists with exactly these groups; True if the
        ACL changed (then reload the broker)."""
        groups = list(groups)
        if self.has(name) and self.host_groups().get(name) == groups:
            return False
        self.run("--host", f"{name}:{','.join(groups)}")
        return True


def gen_pki(path: os.PathLike, hosts: Iterable[str] = (),
            operators: Iterable[str] = (), publishers: Iterable[str] = (),
            servers: Iterable[str] = (), extra: Iterable[str] = ()) -> Pki:
    """hosts: "h1" or "h1:web,db" (see scripts/gen-pki)."""
    args: list[str] = []
    for opt, names in (("--host", hosts), ("--operator", operators),
                       ("--publisher", publishers), ("--server", servers)):
        for n in names:
            args += [opt, n]
    pki = Pki(path)
    pki.run(*args, *extra)
    return pki


class OperatorKey:
    """An operator's Ed25519 key: signs job envelopes (design.md §3)."""

    def __init__(self, path: os.PathLike, name: str = ""):
        self.path = Path(path)
        self.name = name or self.path.stem
        self.private = serialization.load_pem_private_key(
            self.path.read_bytes(), password=None)
        if not isinstance(self.private, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 key")
        self.raw_public = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        # key id: lowercase hex of the first 8 bytes of SHA-256(raw pubkey)
        self.key_id = hashlib.sha256(self.raw_public).digest()[:8].hex()

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def envelope(self, body: dict | bytes) -> bytes:
        """{"v":1, "key", "sig": Ed25519(body bytes), "body": bin}."""
        if isinstance(body, dict):
            body = pack(body)
        return pack({"v": 1, "key": self.key_id, "sig": self.sign(body),
                     "body": body})


class Keys:
    """The output folder of scripts/gen-keys."""

    def __init__(self, path: os.PathLike):
        self.dir = Path(path)

    operators_dir = property(lambda self: self.dir / "operators")
    gnupg_home = property(lambda self: self.dir / "gnupg")
    agent_gnupg = property(lambda self: self.dir / "agent-gnupg")
    publisher_asc = property(lambda self: self.dir / "publisher.asc")

    @property
    def publisher_fpr(self) -> str:
        return (self.dir / "publisher.fpr").read_text().strip()

    def operator_key(self, name: str) -> Path:
        return self.operators_dir / f"{name}.key"

    def operator_pub(self, name: str) -> Path:
        return self.operators_dir / f"{name}.pub"

    def operator(self, name: str) -> OperatorKey:
        return OperatorKey(self.operator_key(name), name)

    def pgp_sign(self, data: bytes) -> bytes:
        """A binary detached OpenPGP signature by the publisher key."""
        r = subprocess.run(
            ["gpg", "--homedir", str(self.gnupg_home), "--batch", "--no-tty",
             "--pinentry-mode", "loopback", "--passphrase", "",
             "--local-user", self.publisher_fpr, "--detach-sign",
             "--output", "-"],
            input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            check=True)
        return r.stdout

    def kill_gpg_agents(self) -> None:
        for home in (self.gnupg_home, self.agent_gnupg):
            if home.is_dir():
                subprocess.run(["gpgconf", "--homedir", str(home), "--kill",
                                "all"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)


def gen_keys(path: os.PathLike, operators: Iterable[str] = (),
             publisher: Optional[str] = None) -> Keys:
    args = [str(GEN_KEYS), str(path)]
    for n in operators:
        args += ["--operator", n]
    if publisher:
        args += ["--publisher", publisher]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return Keys(path)


# ---- wire helpers ------------------------------------------------------------


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


def target_topic(target: str, root: str = TOPIC_ROOT) -> str:
    """The job topic of a target: host/<h>, group/<g> or all."""
    if target == "all":
        return topic("all", "jobs", root=root)
    kind, _, name = target.partition("/")
    if kind == "host":
        return topic("hosts", name, "jobs", root=root)
    if kind == "group":
        return topic("groups", name, "jobs", root=root)
    raise ValueError(f"bad target {target!r}")


def new_job(kind: str = "ping", target: str = "all", *, id: Optional[str] = None,
            ttl_s: float = 300, issued_at: Optional[int] = None,
            not_after: Optional[int] = None, operator: Optional[str] = "alice",
            aud: Optional[str] = f"{TOPIC_ROOT}/v1", **fields: Any) -> dict:
    """A job body (design.md §3).  Extra fields (module, args, timeout_ms,
    stream, cancel, module_sha256, or anything odd a test wants) are added
    as given; a field set to None is left out.  `aud` is the fleet: the
    default topic root's, as every agent of these tests has it."""
    issued = now_ms() if issued_at is None else issued_at
    body = {
        "v": 1,
        "id": id or f"j-{secrets.token_hex(6)}",
        "kind": kind,
        "target": target,
        "issued_at": issued,
        "not_after": issued + int(ttl_s * 1000) if not_after is None else not_after,
        "operator": operator,
        "aud": aud,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def send_job(client: "Client", key: OperatorKey, body: dict | bytes,
             topic_: Optional[str] = None, root: str = TOPIC_ROOT) -> None:
    """Sign and publish a job, QoS 1, on its target's topic (or topic_)."""
    if topic_ is None:
        if not isinstance(body, dict):
            raise ValueError("give topic_ for a pre-packed body")
        topic_ = target_topic(body["target"], root)
    client.publish(topic_, key.envelope(body), qos=1)


def watch_results(client: "Client", job_id: str, events: bool = False,
                  root: str = TOPIC_ROOT) -> None:
    """Subscribe to a job's results (and events) - before sending it."""
    topics = [topic("results", job_id, "+", root=root)]
    if events:
        topics.append(topic("results", job_id, "+", "events", root=root))
    client.subscribe(*topics, qos=1)


def collect_results(client: "Client", job_id: str, hosts: Iterable[str],
                    timeout: float = 20, root: str = TOPIC_ROOT,
                    settle: float = 0.0) -> dict[str, dict]:
    """Decoded results of job_id by host, until every host in `hosts`
    answered or the timeout passed (the caller checks what is missing).
    With settle > 0, keep listening that long afterwards for extra
    (duplicate) results, which are kept under "<host>#2", "<host>#3"..."""
    want = set(hosts)
    got: dict[str, dict] = {}
    filt = topic("results", job_id, "+", root=root)
    deadline = time.monotonic() + timeout
    while not want <= {k.split("#")[0] for k in got}:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        m = client.get(timeout=left, topic=filt)
        if m is not None:
            _add_result(got, m)
    if settle > 0:
        for m in client.collect(settle, topic=filt):
            _add_result(got, m)
    return got


def _add_result(got: dict, m: "Msg") -> None:
    host = m.topic.rsplit("/", 1)[1]
    k, n = host, 1
    while k in got:
        n += 1
        k = f"{host}#{n}"
    got[k] = m.decode()


def run_job(client: "Client", key: OperatorKey, body: dict,
            hosts: Iterable[str], timeout: float = 20, events: bool = False,
            root: str = TOPIC_ROOT) -> dict[str, dict]:
    """Watch, send, collect: the results of one job by host."""
    watch_results(client, body["id"], events=events, root=root)
    send_job(client, key, body, root=root)
    return collect_results(client, body["id"], hosts, timeout, root=root)


def module_payloads(keys: Keys, so: bytes, name: str, version: str, abi: int,
                    published_at: Optional[int] = None) -> tuple[bytes, bytes, str]:
    """(pointer, artifact, sha256) for a module, signed by the publisher:
    publish the artifact retained on R/modules/<name>/<sha256>, then the
    pointer retained on R/modules/<name>."""
    sha = hashlib.sha256(so).hexdigest()
    manifest = pack({"v": 1, "kind": "module", "name": name,
                     "version": version, "abi": abi, "sha256": sha,
                     "size": len(so),
                     "published_at": published_at or now_ms()})
    sig = keys.pgp_sign(manifest)
    pointer = pack({"v": 1, "manifest": manifest, "sig": sig})
    artifact = pack({"v": 1, "manifest": manifest, "sig": sig, "so": so})
    return pointer, artifact, sha


# ---- MQTT clients --------------------------------------------------------------


# ---- signed agent messages (design.md §3) ---------------------------------------


class ForgedMessage(AssertionError):
    """An agent message that does not pass the check the CLI makes."""


def is_agent_envelope(d: Any) -> bool:
    return isinstance(d, dict) and d.get("v") == 1 and \
        isinstance(d.get("cert"), str) and isinstance(d.get("sig"), bytes) and \
        isinstance(d.get("body"), bytes)


def topic_names(topic_: str, root: str = TOPIC_ROOT) -> tuple[str, str]:
    """(job, host) of a result/event topic, ("", host) of a status or facts
    topic."""
    parts = topic_.split("/")
    if parts[:2] != [root, "v1"]:
        raise ForgedMessage(f"not a muster topic: {topic_}")
    rest = parts[2:]
    if rest[:1] == ["results"] and len(rest) in (3, 4) and \
            (len(rest) == 3 or rest[3] == "events"):
        return rest[1], rest[2]
    if rest[:1] == ["hosts"] and len(rest) == 3 and rest[2] in ("status", "facts"):
        return "", rest[1]
    raise ForgedMessage(f"not an agent topic: {topic_}")


def host_sign(key_path: os.PathLike, cert_path: os.PathLike, body: dict | bytes) -> bytes:
    """An agent envelope over body, signed with a host key (EC or Ed25519)
    and naming its certificate, as musterd writes it.  musterd signs with
    the host's signing pair (Pki.sign_key/sign_cert); any other pair makes
    a message verifiers call forged."""
    raw = body if isinstance(body, bytes) else pack(body)
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), None)
    der = x509.load_pem_x509_certificate(Path(cert_path).read_bytes()).public_bytes(
        serialization.Encoding.DER)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        sig = key.sign(raw, ec.ECDSA(hashes.SHA256()))
    else:
        sig = key.sign(raw)
    return pack({"v": 1, "cert": hashlib.sha256(der).hexdigest(), "sig": sig,
                 "body": raw})


def cert_der(cert_path: os.PathLike) -> bytes:
    return x509.load_pem_x509_certificate(Path(cert_path).read_bytes()).public_bytes(
        serialization.Encoding.DER)


# id-kp-documentSigning (RFC 9336, lib/hostsig.h HOSTSIG_EKU_OID) and the
# usages that make a certificate a TLS one (refused: design.md §3).
HOSTSIG_EKU_OID = "1.3.6.1.5.5.7.3.36"
_TLS_EKUS = {"1.3.6.1.5.5.7.3.1": "serverAuth", "1.3.6.1.5.5.7.3.2": "clientAuth",
             "2.5.29.37.0": "anyExtendedKeyUsage"}


def cert_ekus(cert: x509.Certificate) -> Optional[list[str]]:
    """The extendedKeyUsage OIDs of cert (dotted), None without one."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return None
    return [o.dotted_string for o in ext.value]


def signing_cert_problem(cert: x509.Certificate) -> Optional[str]:
    """Why cert is not a host signing certificate (lib/hostsig.c
    cert_usage()), or None: its extendedKeyUsage must hold HOSTSIG_EKU_OID
    and none of the TLS usages."""
    ekus = cert_ekus(cert)
    if ekus is None:
        return "no extendedKeyUsage: not a host signing certificate (design.md section 3)"
    if set(ekus) & _TLS_EKUS.keys():
        return "a TLS certificate, not a host signing certificate (design.md section 3)"
    if HOSTSIG_EKU_OID not in ekus:
        return ("not a host signing certificate: its extendedKeyUsage lacks "
                f"{HOSTSIG_EKU_OID} (design.md section 3)")
    return None


class HostSigs:
    """Checks agent envelopes the way the CLI does, for one PKI: the
    certificate (from a status's cert_der, or the PKI's hosts/ folder) is
    issued by the CA and a host signing certificate (not a TLS one), its CN
    is the topic's host and the body's, and the topic's job is the body's."""

    def __init__(self, pki: "Pki"):
        self.pki = pki
        self.certs: dict[str, x509.Certificate] = {}

    def _ca(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.pki.ca.read_bytes())

    def learn(self, der: bytes) -> x509.Certificate:
        cert = x509.load_der_x509_certificate(der)
        ca = self._ca()
        try:	# Debian 12's cryptography 38 has no verify_directly_issued_by()
            if cert.issuer != ca.subject:
                raise ValueError("issuer is not the CA")
            ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                   ec.ECDSA(cert.signature_hash_algorithm))
        except Exception as e:
            raise ForgedMessage(f"certificate not issued by the test CA: {e!r}")
        why = signing_cert_problem(cert)
        if why is not None:
            raise ForgedMessage(why)
        self.certs[hashlib.sha256(der).hexdigest()] = cert
        return cert

    def cert(self, fpr: str) -> x509.Certificate:
        if fpr not in self.certs:
            # Every certificate there, TLS ones too: one of those named is
            # refused with its reason, not as unknown.
            for crt in sorted((self.pki.dir / "hosts").glob("*.crt")):
                der = cert_der(crt)
                if hashlib.sha256(der).hexdigest() == fpr:
                    self.learn(der)
        if fpr not in self.certs:
            raise ForgedMessage(f"unknown certificate {fpr[:16]}")
        return self.certs[fpr]

    @staticmethod
    def _check_sig(cert: x509.Certificate, sig: bytes, body: bytes) -> None:
        pub = cert.public_key()
        try:
            if isinstance(pub, ec.EllipticCurvePublicKey):
                pub.verify(sig, body, ec.ECDSA(hashes.SHA256()))
            elif isinstance(pub, Ed25519PublicKey):
                pub.verify(sig, body)
            else:
                raise ForgedMessage("host key neither EC nor Ed25519")
        except ForgedMessage:
            raise
        except Exception:
            raise ForgedMessage("bad signature")

    def open(self, topic_: str, env: dict) -> dict:
        job, host = topic_names(topic_)
        body = unpack(env["body"])
        if not isinstance(body, dict):
            raise ForgedMessage("body is not a map")
        if job == "" and isinstance(body.get("cert_der"), bytes):
            der = body["cert_der"]
            if hashlib.sha256(der).hexdigest() != env["cert"]:
                raise ForgedMessage("cert_der is not the certificate the envelope names")
            cert = self.learn(der)
        else:
            cert = self.cert(env["cert"])
        self._check_sig(cert, env["sig"], env["body"])
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(cns) != 1 or cns[0].value != host:
            raise ForgedMessage(f"signed by {cns[0].value if cns else '?'}, not {host}")
        if body.get("host") != host:
            raise ForgedMessage(f"body names host {body.get('host')!r}, topic {host}")
        if job and body.get("job") != job:
            raise ForgedMessage(f"body names job {body.get('job')!r}, topic {job}")
        return body


_HOST_SIGS: dict[Path, HostSigs] = {}


def host_sigs(pki: "Pki") -> HostSigs:
    """The one checker of a PKI folder (it caches certificates)."""
    key = pki.dir.resolve()
    if key not in _HOST_SIGS:
        _HOST_SIGS[key] = HostSigs(pki)
    return _HOST_SIGS[key]


def open_agent_message(pki: "Pki", topic_: str, payload: bytes) -> Any:
    """The body of a signed agent message after the CLI's checks
    (ForgedMessage if it fails them); anything else decoded as it is."""
    d = unpack(payload)
    if is_agent_envelope(d):
        return host_sigs(pki).open(topic_, d)
    return d


class ConnectError(Exception):
    pass


@dataclass
class Msg:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Any = None
    at: float = field(default_factory=time.monotonic)
    pki: Optional["Pki"] = None	# the CA agent messages are checked against

    def decode(self) -> Any:
        """The payload decoded; an agent envelope is checked (signature,
        certificate, CN, job) and its body returned (ForgedMessage if not)."""
        if self.pki is None:
            return unpack(self.payload)
        return open_agent_message(self.pki, self.topic, self.payload)

    def raw(self) -> Any:
        """The payload decoded as it is, envelope and all."""
        return unpack(self.payload)


class Client:
    """A paho MQTT 5 client over mutual TLS with the certificate of `cn`,
    verifying the broker against the CA and its host name.  Messages that
    arrive are kept in order until a get()/expect()/collect() takes them."""

    def __init__(self, broker: "Broker", cn: Optional[str], *,
                 client_id: Optional[str] = None, host: Optional[str] = None,
                 port: Optional[int] = None, ca: Optional[os.PathLike] = None,
                 cert: Optional[os.PathLike] = None,
                 key: Optional[os.PathLike] = None, clean_start: bool = True,
                 session_expiry: Optional[int] = None,
                 will: Optional[tuple] = None, keepalive: int = 30,
                 connect: bool = True, timeout: float = 10,
                 protocol: int = mqtt.MQTTv5):
        self.broker = broker
        self.cn = cn
        self.host = host or broker.host
        self.port = port or broker.port
        safe = (cn or "anon").replace(":", "-")
        self.client_id = client_id or f"{safe}-t{secrets.token_hex(4)}"
        self.clean_start = clean_start
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self._cond = threading.Condition()
        self._msgs: list[Msg] = []
        self._acks: dict[int, Any] = {}
        self._connack: Optional[Any] = None
        self._disconnected: Optional[Any] = None
        self.connected = False
        self.error: Optional[Exception] = None
        self._thread: Optional[threading.Thread] = None

        # protocol: mqtt.MQTTv5, or mqtt.MQTTv311 for brokers without MQTT 5
        # (RabbitMQ 3.10); then clean_start is the 3.1.1 clean session flag.
        self.protocol = protocol
        if protocol == mqtt.MQTTv5:
            c = mqtt.Client(client_id=self.client_id, protocol=protocol,
                            reconnect_on_failure=False)
        else:
            c = mqtt.Client(client_id=self.client_id, protocol=protocol,
                            clean_session=clean_start,
                            reconnect_on_failure=False)
        ca = ca or broker.pki.ca
        if cn is not None and cert is None:
            cert, key = broker.pki.cert(cn), broker.pki.key(cn)
        c.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None,
                  keyfile=str(key) if key else None,
                  cert_reqs=ssl.CERT_REQUIRED,
                  tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.tls_insecure_set(False)	# check the broker's host name
        if will is not None:
            wt, wp, wq, wr = (tuple(will) + (1, True))[:4]
            c.will_set(wt, wp, qos=wq, retain=wr)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_ack
        c.on_unsubscribe = self._on_unsuback
        self.paho = c
        if connect:
            self.connect(timeout)

    # paho callbacks (its thread)
    def _on_connect(self, c, ud, flags, rc, props=None):
        with self._cond:
            self._connack = rc
            self.connected = rc == 0
            self._cond.notify_all()

    def _on_disconnect(self, c, ud, rc, props=None):
        with self._cond:
            self._disconnected = rc
            self.connected = False
            self._cond.notify_all()

    def _on_message(self, c, ud, m):
        with self._cond:
            self._msgs.append(Msg(m.topic, bytes(m.payload), m.qos,
                                  bool(m.retain),
                                  getattr(m, "properties", None),
                                  pki=self.broker.pki))
            self._cond.notify_all()

    def _on_ack(self, c, ud, mid, codes, props=None):
        with self._cond:
            self._acks[mid] = codes
            self._cond.notify_all()

    def _on_unsuback(self, c, ud, mid, props=None, codes=None):
        self._on_ack(c, ud, mid, codes)

    def _wait(self, pred, timeout, what):
        with self._cond:
            if not self._cond.wait_for(pred, timeout):
                raise TimeoutError(f"{self.client_id}: no {what} in {timeout}s")

    def connect(self, timeout: float = 10) -> None:
        props = None
        if self.protocol != mqtt.MQTTv5:
            try:
                self.paho.connect(self.host, self.port, keepalive=self.keepalive)
            except (ssl.SSLError, OSError) as e:
                raise ConnectError(f"{self.cn}: {e}") from e
            return self._connected_wait(timeout)
        if self.session_expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry
        try:
            self.paho.connect(self.host, self.port, keepalive=self.keepalive,
                              clean_start=self.clean_start, properties=props)
        except (ssl.SSLError, OSError) as e:
            raise ConnectError(f"{self.cn}: {e}") from e
        self._connected_wait(timeout)

    def _connected_wait(self, timeout: float) -> None:
        sock = self.paho.socket()
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        # paho's own loop thread (publish() from this thread must not write
        # to the TLS socket itself), with its body wrapped: a TLS error (a
        # refused certificate arrives as an alert after the handshake) would
        # otherwise kill the thread with an unhandled exception.
        self.paho._thread_main = self._run_wrapped(self.paho._thread_main)
        self.paho.loop_start()
        self._thread = self.paho._thread
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._connack is not None or
                self._disconnected is not None, timeout)
            rc, gone = self._connack, self._disconnected
        if not ok or rc != 0 or gone is not None:
            self.close()
            raise ConnectError(f"{self.cn}: connack={rc} disconnect={gone}"
                               + ("" if ok else " (timeout)"))

    def _run_wrapped(self, main: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                main()
            except Exception as e:	# noqa: BLE001 - reported as a disconnect
                with self._cond:
                    self.error = e
                    if self._disconnected is None:
                        self._disconnected = f"{type(e).__name__}: {e}"
                    self.connected = False
                    self._cond.notify_all()
        return run

    def subscribe(self, *topics: str, qos: int = 1, timeout: float = 10) -> list:
        rc, mid = self.paho.subscribe([(t, qos) for t in topics])
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectError(f"subscribe: {mqtt.error_string(rc)}")
        self._wait(lambda: mid in self._acks, timeout, "SUBACK")
        return self._acks.pop(mid)

    def unsubscribe(self, *topics: str, timeout: float = 10) -> None:
        rc, mid = self.paho.unsubscribe(list(topics))
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectError(f"unsubscribe: {mqtt.error_string(rc)}")
        self._wait(lambda: mid in self._acks, timeout, "UNSUBACK")
        self._acks.pop(mid, None)

    def publish(self, topic_: str, payload: bytes | str, qos: int = 1,
                retain: bool = False, timeout: float = 10) -> None:
        """Publish; for QoS > 0 wait for the broker's acknowledgement.  (A
        PUBACK does not mean the ACL allowed it: Mosquitto acknowledges
        denied publishes too and drops them.)"""
        info = self.paho.publish(topic_, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectError(f"publish: {mqtt.error_string(info.rc)}")
        if qos > 0:
            deadline = time.monotonic() + timeout
            while not info.is_published():
                if self._disconnected is not None:
                    raise ConnectError(f"{self.client_id}: disconnected "
                                       f"({self._disconnected}) before the "
                                       f"PUBACK for {topic_}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.client_id}: no PUBACK for "
                                       f"{topic_}")
                info.wait_for_publish(min(left, 0.1))

    def _take(self, pred) -> Optional[Msg]:
        for i, m in enumerate(self._msgs):
            if pred(m):
                return self._msgs.pop(i)
        return None

    @staticmethod
    def _pred(topic_: Optional[str], match: Optional[Callable[[Msg], bool]]):
        def p(m: Msg) -> bool:
            if topic_ is not None and not mqtt.topic_matches_sub(topic_, m.topic):
                return False
            return match is None or bool(match(m))
        return p

    def get(self, timeout: float = 5, topic: Optional[str] = None,
            match: Optional[Callable[[Msg], bool]] = None) -> Optional[Msg]:
        """The oldest message on `topic` (a filter) that satisfies match, or
        None after timeout.  Other messages stay queued."""
        p = self._pred(topic, match)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = self._take(p)
                if m is not None:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def expect(self, topic: Optional[str] = None, timeout: float = 5,
               match: Optional[Callable[[Msg], bool]] = None) -> Msg:
        m = self.get(timeout, topic, match)
        if m is None:
            raise AssertionError(f"{self.client_id} ({self.cn}): nothing on "
                                 f"{topic or '#'} within {timeout}s")
        return m

    def collect(self, duration: float, topic: Optional[str] = None,
                match: Optional[Callable[[Msg], bool]] = None) -> list[Msg]:
        """Wait `duration`, then take every queued message that matches."""
        time.sleep(duration)
        p = self._pred(topic, match)
        with self._cond:
            out = [m for m in self._msgs if p(m)]
            self._msgs = [m for m in self._msgs if not p(m)]
        return out

    def pending(self) -> list[Msg]:
        with self._cond:
            return list(self._msgs)

    def close(self, timeout: float = 5) -> None:
        try:
            self.paho.disconnect()
        except Exception:	# noqa: BLE001 - already gone
            pass
        if self._thread is not None:
            self.paho.loop_stop()
            self._thread = None
        self.connected = False

    def drop(self, timeout: float = 5) -> None:
        """Vanish without DISCONNECT (the broker then sends the will)."""
        sock = self.paho.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self.paho.loop_stop()
            self._thread = None
        self.connected = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def mqtt_connect_packet(client_id: str, protocol: int = 5) -> bytes:
    """A minimal MQTT 5 CONNECT (clean start, keepalive 60 s); protocol=4:
    the same in MQTT 3.1.1 (no properties)."""
    cid = client_id.encode()
    var = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" if protocol == 5 else \
        b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = struct.pack("!H", len(cid)) + cid
    body = var + payload
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def tls_probe(host: str, port: int, ca: Optional[os.PathLike],
              cert: Optional[os.PathLike] = None,
              key: Optional[os.PathLike] = None,
              server_hostname: Optional[str] = None,
              timeout: float = 5, protocol: int = 5) -> str:
    """Connect over TLS and send an MQTT CONNECT, with no client library in
    the way.  Returns "connack:<reason code>", or "tls:<error>" when the TLS
    handshake or the first read fails, or "closed" when the broker hangs up."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is not None:
        ctx.load_verify_locations(str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        return f"connect:{e}"
    try:
        with ctx.wrap_socket(raw, server_hostname=server_hostname or host) as s:
            s.sendall(mqtt_connect_packet(f"probe-{secrets.token_hex(4)}",
                                          protocol))
            data = b""
            while len(data) < 4:
                chunk = s.recv(16)
                if not chunk:
                    return "closed"
                data += chunk
            if data[0] != 0x20:
                return f"other:{data[:4].hex()}"
            if data[3] == 0:
                s.sendall(b"\xe0\x00")	# DISCONNECT, to keep logs quiet
            return f"connack:{data[3]}"
    except ssl.SSLError as e:
        return f"tls:{e.reason or e}"
    except (ConnectionError, socket.timeout, OSError) as e:
        return f"tls:{type(e).__name__}:{e}"
    finally:
        raw.close()


# ---- the broker ------------------------------------------------------------------


BROKER_USER = "mosquitto"	# what Debian's mosquitto drops to as root


def install_broker_files(pki: Pki, etc: os.PathLike,
                         user: str = BROKER_USER) -> Path:
    """Install the broker's files from a gen-pki folder into etc/muster the
    way docs/operations.md "Production configuration" does (as root):
    the folder 0750 root:<user>, broker.key 0640 root:<user>, ca.crt,
    broker.crt, acl and crl.pem 0644 root:root.  Each file is replaced
    atomically (a reload never sees half a file).  Returns etc/muster."""
    gid = pwd.getpwnam(user).pw_gid
    d = Path(etc) / "muster"
    d.mkdir(parents=True, exist_ok=True)
    os.chown(d, 0, gid)
    os.chmod(d, 0o750)
    for name, mode, group in (("ca.crt", 0o644, 0), ("broker.crt", 0o644, 0),
                              ("acl", 0o644, 0), ("crl.pem", 0o644, 0),
                              ("broker.key", 0o640, gid)):
        tmp = d / f".{name}.new"
        shutil.copyfile(pki.dir / name, tmp)
        os.chown(tmp, 0, group)
        os.chmod(tmp, mode)
        os.replace(tmp, d / name)
    return d


class Broker:
    """A real mosquitto from broker-config/dev.conf.in on 127.0.0.1:port with
    the PKI's certificates and ACL.  start()/stop()/kill()/restart() keep the
    port; reload() sends SIGHUP (re-reads the ACL).

    As root it runs as a production broker does (docs/operations.md):
    started as root, it becomes the user mosquitto before it reads its keys,
    which are installed with exactly the documented owners and modes into
    a folder of its own outside pytest's (0700) tmp folders (etc_dir/muster,
    re-installed from the PKI at every start() and reload()); its database
    and log are in data_dir, owned by mosquitto.  As anyone else it runs as
    that user, from the PKI folder and workdir directly."""

    host = "localhost"

    def __init__(self, pki: Pki, workdir: os.PathLike,
                 port: Optional[int] = None,
                 template: os.PathLike = DEV_CONF, nofile: Optional[int] = None):
        self.pki = pki
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.stderr_path = self.dir / "mosquitto.stderr"
        self.proc: Optional[subprocess.Popen] = None
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.nofile = nofile or (hard if hard != resource.RLIM_INFINITY
                                 else 1 << 20)
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam(BROKER_USER)
            except KeyError:
                raise RuntimeError(f"no user {BROKER_USER}: install Debian's "
                                   f"mosquitto (scripts/setup)") from None
            self.user = BROKER_USER
            # Like /etc/mosquitto (0755 root) and /var/lib/mosquitto.
            self.etc_dir = Path(tempfile.mkdtemp(prefix="muster-broker-"))
            os.chmod(self.etc_dir, 0o755)
            weakref.finalize(self, shutil.rmtree, str(self.etc_dir), True)
            self.data_dir = self.etc_dir / "data"
            self.data_dir.mkdir(mode=0o700)
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
            self.key_dir = install_broker_files(pki, self.etc_dir)
            # mosquitto re-reads its configuration on SIGHUP, as itself.
            self.conf = self.etc_dir / "mosquitto.conf"
        else:
            self.user = getpass.getuser()
            self.etc_dir = None
            self.data_dir = self.dir
            self.key_dir = pki.dir
            self.conf = self.dir / "mosquitto.conf"
        self.log_path = self.data_dir / "mosquitto.log"
        text = Path(template).read_text()
        for k, v in (("@PORT@", str(self.port)), ("@DIR@", str(self.data_dir)),
                     ("@PKI@", str(self.key_dir)), ("@USER@", self.user)):
            text = text.replace(k, v)
        self.conf.write_text(text)
        os.chmod(self.conf, 0o644)

    def install_keys(self) -> None:
        """As root: install the PKI's broker files again (the ACL and CRL
        change with gen-pki --host / --revoke)."""
        if self.etc_dir is not None:
            install_broker_files(self.pki, self.etc_dir)

    @property
    def uri(self) -> str:
        return f"ssl://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10) -> "Broker":
        if self.running:
            return self
        self.install_keys()
        err = open(self.stderr_path, "ab")
        # Raise the open files limit for many agents (design.md §9).  Through
        # the shell, not preexec_fn: this process has paho threads, and
        # preexec_fn is not safe with threads.
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", 'ulimit -n "$1" 2>/dev/null; exec "$2" -c "$3"',
             "sh", str(self.nofile), mosquitto_binary(), str(self.conf)],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            start_new_session=True)
        err.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        cn = self.pki.any_client()
        cert = self.pki.cert(cn) if cn else None
        key = self.pki.key(cn) if cn else None
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}:\n"
                                   + self.diagnostics())
            last = tls_probe("127.0.0.1", self.port, self.pki.ca, cert, key,
                             server_hostname="localhost", timeout=2)
            if last == "connack:0" or (cn is None and last.startswith("tls:")):
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mosquitto not ready on {self.port} ({last}):\n"
                           + self.diagnostics())

    def stop(self, timeout: float = 10) -> Optional[int]:
        """SIGTERM (mosquitto saves its database) and wait."""
        if self.proc is None:
            return None
        terminate(self.proc, timeout)
        self._keep_log()
        return self.proc.returncode

    def _keep_log(self) -> None:
        """A copy of the log in workdir for post-mortems (data_dir goes
        when this object does)."""
        if self.data_dir != self.dir and self.log_path.exists():
            shutil.copyfile(self.log_path, self.dir / "mosquitto.log")

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved since the last autosave."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self._keep_log()

    def restart(self, down: float = 0.0, timeout: float = 10) -> "Broker":
        """Stop, stay down `down` seconds, start again on the same port."""
        self.stop()
        if down:
            time.sleep(down)
        return self.start(timeout)

    def reload(self, settle: float = 0.3) -> None:
        """SIGHUP: re-read the ACL (and reloadable options)."""
        if self.running:
            self.install_keys()
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(settle)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self) -> str:
        out = []
        for p in (self.stderr_path, self.log_path):
            if p.exists():
                out.append(f"--- {p} ---\n" + p.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def client(self, cn: Optional[str], **kw) -> Client:
        return Client(self, cn, **kw)


# ---- the agent -------------------------------------------------------------------


class Agent:
    """Drives the real musterd: writes its agent.conf (design.md §7) into its
    own folder and runs `musterd -c CONF --foreground`, output to agent.log.

    groups: what agent.conf says; with sync_acl (default) the PKI inventory
    is updated to match and the broker reloaded when that changes the ACL.
    limits / extra: override [limits] keys / add or override any key,
    extra={"agent": {"max_jobs": "1"}}."""

    def __init__(self, name: str, broker: Broker, keys: Keys, workdir: os.PathLike,
                 *, groups: Iterable[str] = (), channel: str = "stable",
                 max_jobs: int = 4, log_level: str = "debug",
                 keepalive: str = "5s", wake_port: Optional[int] = None,
                 limits: Optional[dict] = None,
                 extra: Optional[dict[str, dict]] = None,
                 observer: str = "op:alice", sync_acl: bool = True,
                 own_gnupg: bool = True, binary: os.PathLike = MUSTERD,
                 runner: os.PathLike = RUNNER):
        self.name = name
        self.broker = broker
        self.pki = broker.pki
        self.keys = keys
        self.groups = list(groups)
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.dir / "state"
        self.modules_dir = self.state_dir / "modules"
        self.conf_path = self.dir / "agent.conf"
        self.log_path = self.dir / "agent.log"
        self.binary = Path(binary)
        self.runner = Path(runner)
        self.wake_port = free_port() if wake_port is None else wake_port
        self._wake_picked = wake_port is None
        self.observer = observer
        self.proc: Optional[subprocess.Popen] = None
        self.env: dict[str, str] = {}	# added to this process's environment
        # A terminal's slave fd: musterd's stdin and controlling terminal,
        # as an operator's `musterd --foreground` in a shell (issue 22).
        self.tty: Optional[int] = None
        self.started_ms = 0
        self._tmp: Optional[str] = None

        self._restore_groups: Optional[list[str]] = None
        if sync_acl:
            before = self.pki.host_groups().get(name)
            if self.pki.set_host(name, self.groups):
                broker.reload()
                self._restore_groups = before
        # A private copy of the verifier keyring: agents never share a gnupg
        # home (locks), and its path stays short (gpg-agent's socket).
        gnupg = keys.agent_gnupg
        if own_gnupg:
            self._tmp = tempfile.mkdtemp(prefix="mug-")
            gnupg = Path(self._tmp) / "g"
            shutil.copytree(keys.agent_gnupg, gnupg,
                            ignore=shutil.ignore_patterns("S.*", "*.lock",
                                                          ".#*"))
            os.chmod(gnupg, 0o700)

        self.conf: dict[str, dict[str, str]] = {
            "agent": {
                "host": name,
                "state_dir": str(self.state_dir),
                "runner": str(self.runner),
                "modules_dir": str(self.modules_dir),
                "channel": channel,
                "groups": ", ".join(self.groups),
                "max_jobs": str(max_jobs),
                "log_level": log_level,
            },
            "broker": {
                "uri": broker.uri,
                "ca": str(self.pki.ca),
                "cert": str(self.pki.cert(name)),
                "key": str(self.pki.key(name)),
                "protocol": "5",
                "keepalive": keepalive,
                "topic_root": TOPIC_ROOT,
            },
            "wake": {
                "port": str(self.wake_port),
                "bind": "127.0.0.1",
                "trusted": "127.0.0.0/8, ::1/128",
            },
            "trust": {
                "operators": str(keys.operators_dir),
                "gnupg_home": str(gnupg),
                "publishers": keys.publisher_fpr,
            },
            "limits": {
                "timeout": "30s",
                "max_ttl": "1d",
                "memory": "512M",
                "output": "64K",
                "cpu": "60s",
            },
        }
        if not self.groups:
            del self.conf["agent"]["groups"]
        for k, v in (limits or {}).items():
            self.conf["limits"][k] = str(v)
        for sec, kv in (extra or {}).items():
            s = self.conf.setdefault(sec, {})
            for k, v in kv.items():
                if v is None:
                    s.pop(k, None)
                else:
                    s[k] = str(v)
        self.write_conf()

    def write_conf(self) -> Path:
        lines = [f"# written by tests/system/muster_fixtures.py for {self.name}"]
        for sec, kv in self.conf.items():
            lines.append(f"\n[{sec}]")
            lines += [f"{k} = {v}" for k, v in kv.items()]
        self.conf_path.write_text("\n".join(lines) + "\n")
        return self.conf_path

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    def start(self, wait_online: bool = True, timeout: float = 20) -> "Agent":
        for attempt in range(3):
            mark = len(self.log())
            self._start_once()
            if not wait_online:
                return self
            try:
                self.wait_status("online", timeout=timeout)
                return self
            except AssertionError:
                # free_port() is a guess: a parallel test may bind the
                # wake port first.  Only then, try another one.
                if not (self._wake_picked and attempt < 2 and
                        self.conf.get("wake", {}).get("port") == str(self.wake_port) and
                        "Address already in use" in self.log()[mark:] and
                        self.proc.poll() is not None):
                    raise
                self.wake_port = free_port()
                self.conf["wake"]["port"] = str(self.wake_port)
                self.write_conf()
        return self

    def _start_once(self) -> None:
        if not self.binary.exists():
            raise FileNotFoundError(f"{self.binary} is not built")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # As the shipped unit makes it (StateDirectoryMode=0700, root): the
        # network process must not need to search it (issue 19).
        os.chmod(self.state_dir, 0o700)
        log = open(self.log_path, "ab")
        log.write(f"---- start {time.strftime('%H:%M:%S')} ----\n".encode())
        log.flush()
        self.started_ms = now_ms()
        # As root, with what the shipped unit leaves the service: its
        # capability bounding set (no CAP_DAC_OVERRIDE), no new privileges,
        # its umask (issue 19).
        wrap, umask = unit_wrap() if os.geteuid() == 0 else ([], -1)
        tty = {}
        if self.tty is not None:
            import fcntl
            import termios
            tty = {"preexec_fn": lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0)}
        self.proc = subprocess.Popen(
            wrap + [str(self.binary), "-c", str(self.conf_path), "--foreground"],
            stdin=subprocess.DEVNULL if self.tty is None else self.tty,
            stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, umask=umask,
            env={**os.environ, **self.userdb_env(), **self.env}, **tty)
        log.close()

    def userdb_env(self) -> dict[str, str]:
        """As root musterd names its job uids in /run/userdb (agent/parent/
        userdb.c); a test's agent writes them into its own folder instead
        (the test hook MUSTER_TEST_USERDB_DIR), so that the machine's user
        database stays as it was.  A test that wants the real folder sets
        self.env["MUSTER_TEST_USERDB_DIR"]."""
        return {"MUSTER_TEST_USERDB_DIR": str(self.dir / "userdb")}

    def stop(self, timeout: float = 15) -> Optional[int]:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        if self.proc is None:
            return None
        if not terminate(self.proc, timeout):
            raise AssertionError(f"musterd {self.name} ignored SIGTERM "
                                 f"for {timeout}s")
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, wait_online: bool = True, timeout: float = 20) -> "Agent":
        self.stop()
        return self.start(wait_online=wait_online, timeout=timeout)

    def wait_exit(self, timeout: float = 15) -> int:
        return self.proc.wait(timeout)

    def status(self, timeout: float = 2) -> Optional[dict]:
        """The retained status as the broker has it now, or None."""
        with self.broker.client(self.observer) as c:
            c.subscribe(topic("hosts", self.name, "status"))
            m = c.get(timeout)
            return m.decode() if m else None

    def wait_status(self, state: str = "online", timeout: float = 20,
                    fresh: bool = True,
                    match: Optional[Callable[[dict], bool]] = None) -> dict:
        """Wait for the retained status to say `state`.  With fresh, an
        "online" must come from the current process (started_at not before
        its start), not from a retained message of an earlier run."""
        def ok(m: Msg) -> bool:
            try:
                s = m.decode()
            except Exception:
                return False
            if not isinstance(s, dict) or s.get("state") != state:
                return False
            if fresh and state == "online" and \
                    s.get("started_at", 0) < self.started_ms - 2000:
                return False
            return match is None or match(s)

        with self.broker.client(self.observer) as c:
            c.subscribe(topic("hosts", self.name, "status"))
            deadline = time.monotonic() + timeout
            while True:
                if self.proc is not None and self.proc.poll() is not None \
                        and state == "online":
                    raise AssertionError(
                        f"musterd {self.name} exited {self.proc.returncode}:\n"
                        + self.log()[-4000:])
                m = c.get(min(0.5, max(0.0, deadline - time.monotonic())),
                          match=ok)
                if m is not None:
                    return m.decode()
                if time.monotonic() >= deadline:
                    raise AssertionError(
                        f"{self.name}: no '{state}' status in {timeout}s; "
                        f"log:\n{self.log()[-4000:]}")

    def poke(self) -> None:
        """Connect to the wake port and close."""
        with socket.create_connection(("127.0.0.1", self.wake_port), timeout=2):
            pass

    def check_config(self) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.binary), "--check-config", "-c",
                               str(self.conf_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self) -> None:
        try:
            self.stop(timeout=10)
        except AssertionError:
            pass
        finally:
            # Leave the session's inventory as it was for the next test.
            if self._restore_groups is not None:
                self.pki.set_host(self.name, self._restore_groups)
                self._restore_groups = None
            if self._tmp:
                subprocess.run(["gpgconf", "--homedir",
                                str(Path(self._tmp) / "g"), "--kill", "all"],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None


# ---- appended: modules for agents, log checks, sanitizer reports -------------

TEST_MODULES_DIR = BUILD_DIR / "tests" / "modules"


def install_modules(agent: "Agent", *names: str,
                    src: os.PathLike = MODULES_DIR) -> None:
    """Copy built modules (NAME.so from src: the shipped ones by default,
    TEST_MODULES_DIR for the hostile test modules) into the agent's
    modules_dir, mode 0644, as modsrc.c wants them."""
    agent.modules_dir.mkdir(parents=True, exist_ok=True)
    for n in names:
        dst = agent.modules_dir / f"{n}.so"
        shutil.copyfile(Path(src) / f"{n}.so", dst)
        os.chmod(dst, 0o644)


def log_count(agent: "Agent", text: str) -> int:
    """How many lines of the agent's log contain text."""
    return sum(1 for line in agent.log().splitlines() if text in line)


# A report from ASan, LSan, UBSan (or TSan/MSan) in a log.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
    "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer",
    "runtime error:", "WARNING: ThreadSanitizer", "WARNING: MemorySanitizer",
    "Sanitizer has encountered a fatal error",
)

# Reports found in agents' logs when they stopped: (agent name, excerpt).
SANITIZER_FINDINGS: list[tuple[str, str]] = []


def sanitizer_report(text: str) -> Optional[str]:
    """The first sanitizer report in text (an excerpt), or None."""
    for marker in SANITIZER_MARKERS:
        i = text.find(marker)
        if i >= 0:
            start = text.rfind("\n", 0, max(0, i - 200)) + 1
            return text[start:start + 6000]
    return None


def _check_sanitizer(agent: "Agent") -> None:
    """Record a sanitizer report in the part of the log not checked yet."""
    text = agent.log()
    done = getattr(agent, "_sanitizer_checked", 0)
    rep = sanitizer_report(text[done:])
    agent._sanitizer_checked = len(text)
    if rep:
        SANITIZER_FINDINGS.append((agent.name, rep))


def _with_sanitizer_check(fn: Callable) -> Callable:
    def wrapped(self, *args, **kw):
        try:
            return fn(self, *args, **kw)
        finally:
            if self.proc is not None and self.proc.poll() is not None:
                _check_sanitizer(self)
    wrapped.__doc__ = fn.__doc__
    wrapped.__name__ = fn.__name__
    return wrapped


# Every way an agent process ends (cleanup() goes through stop()) checks
# its log: LeakSanitizer reports only at exit.
Agent.stop = _with_sanitizer_check(Agent.stop)
Agent.kill9 = _with_sanitizer_check(Agent.kill9)
Agent.wait_exit = _with_sanitizer_check(Agent.wait_exit)


def assert_no_sanitizer_reports() -> None:
    """Fail if an agent stopped since the last call left a sanitizer report
    in its log (use from a fixture's teardown, after the agents stopped)."""
    found = list(SANITIZER_FINDINGS)
    SANITIZER_FINDINGS.clear()
    if found:
        raise AssertionError("sanitizer report in the log of musterd " +
                             "\n".join(f"{n}:\n{r}" for n, r in found))


# ---- helpers for the agent run, durability and wake tests ---------------------


def module_file(name: str) -> Path:
    """The built NAME.so: a shipped module or a hostile test module."""
    for d in (MODULES_DIR, TEST_MODULES_DIR):
        p = d / f"{name}.so"
        if p.exists():
            return p
    raise FileNotFoundError(f"module {name}.so is not built in {BUILD_DIR}")


def install_any_modules(agent: "Agent", *names: str) -> dict[str, str]:
    """Like install_modules(), taking each NAME.so from the shipped or the
    test modules, whichever has it.  Returns name -> sha256."""
    d = agent.modules_dir
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for n in names:
        data = module_file(n).read_bytes()
        p = d / f"{n}.so"
        p.write_bytes(data)
        os.chmod(p, 0o644)
        out[n] = hashlib.sha256(data).hexdigest()
    return out


def is_sanitized(binary: os.PathLike = RUNNER) -> bool:
    """True if the binary was built with AddressSanitizer."""
    try:
        return b"__asan_init" in Path(binary).read_bytes()
    except OSError:
        return False


def proc_stat(pid: int) -> Optional[dict]:
    """pid, comm, state, ppid, pgid from /proc/PID/stat, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    l, r = raw.index("("), raw.rindex(")")
    rest = raw[r + 2:].split()
    return {"pid": pid, "comm": raw[l + 1:r], "state": rest[0],
            "ppid": int(rest[1]), "pgid": int(rest[2])}


def all_procs() -> list[dict]:
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            s = proc_stat(int(e))
            if s is not None:
                out.append(s)
    return out


def live_procs_in_group(pgid: int) -> list[dict]:
    """Processes (not zombies) whose process group is pgid."""
    return [p for p in all_procs() if p["pgid"] == pgid and p["state"] != "Z"]


def proc_alive(pid: int) -> bool:
    s = proc_stat(pid)
    return s is not None and s["state"] != "Z"


def proc_io(pid: int) -> dict[str, int]:
    """/proc/PID/io (the whole process, every thread)."""
    out = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k.strip()] = int(v)
    return out


def runner_pid(agent: "Agent", job_id: str, timeout: float = 10) -> int:
    """The runner pid of a job, from the agent's log line
    "job ID: running module M (pid N)"."""
    import re
    pat = re.compile(r"job " + re.escape(job_id) +
                     r": running module \S+ \(pid (\d+)\)")

    def find():
        m = pat.search(agent.log())
        return int(m.group(1)) if m else None
    return wait_until(find, timeout, what=f"runner of job {job_id}")


def spool_files(agent: "Agent") -> list[Path]:
    """Results the agent still holds (not yet acknowledged by the broker)."""
    d = agent.state_dir / "net" / "spool"
    return sorted(d.glob("*.res")) if d.is_dir() else []


def journaled_runs(agent: "Agent") -> dict[str, str]:
    """Run jobs the agent has accepted and not yet answered (their result
    not spooled), job id -> module: the journal lines of state_dir/seen
    ("id not_after run MODULE", ended by "id not_after done")."""
    runs: dict[str, str] = {}
    path = agent.state_dir / "seen"
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines(keepends=True):
        f = line.split()
        if not line.endswith("\n") or len(f) < 3:
            continue
        if f[2] == "run" and len(f) == 4:
            runs[f[0]] = f[3]
        elif f[2] == "done":
            runs.pop(f[0], None)
    return runs


def broker_received(broker: "Broker", topic_: str, client_id: str) -> int:
    """How many PUBLISH packets the broker log shows client_id sent to
    topic_ (log_type all), across restarts (the log is appended)."""
    needle = f"Received PUBLISH from {client_id} "
    return sum(1 for line in broker.log().splitlines()
               if needle in line and f"'{topic_}'" in line)


# ---- the operator CLI (build/ctl/muster) -------------------------------------

MUSTER_CLI = BUILD_DIR / "ctl" / "muster"


def write_cli_conf(path: os.PathLike, broker: "Broker", operator: str = "alice",
                   keys: Optional[Keys] = None, uri: Optional[str] = None,
                   ca: Optional[os.PathLike] = None,
                   extra: str = "") -> Path:
    """A muster.conf (design.md §7) for operator `operator`: TLS identity
    op:<operator> from the broker's PKI, job key from keys (if given)."""
    pki = broker.pki
    text = (f"[broker]\nuri = {uri or broker.uri}\nca = {ca or pki.ca}\n"
            f"cert = {pki.cert('op:' + operator)}\n"
            f"key = {pki.key('op:' + operator)}\n")
    if keys is not None:
        text += f"\n[operator]\nkey = {keys.operator_key(operator)}\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + extra)
    return path


def run_cli(*args: str, conf: Optional[os.PathLike] = None,
            env: Optional[dict] = None, timeout: float = 30,
            check_sanitizer: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run build/ctl/muster (text output).  conf: passed as MUSTER_CONFIG.
    env: replaces the variables it names (None removes one).  Fails on any
    sanitizer report in stderr (sanitizer_report() above)."""
    e = dict(os.environ)
    if conf is not None:
        e["MUSTER_CONFIG"] = str(conf)
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = str(v)
    r = subprocess.run([str(MUSTER_CLI), *map(str, args)], env=e,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    if check_sanitizer:
        bad = sanitizer_report(r.stderr)
        assert bad is None, f"sanitizer report from muster {args}:\n{r.stderr}"
    return r


def start_fresh(agent: "Agent", timeout: float = 20) -> "Agent":
    """Start (or restart) an agent and wait for an "online" status from this
    very process.  Agent.start()'s own check allows 2 s of slack, so right
    after a stop it can take the previous run's retained "online"."""
    if agent.running:
        agent.stop()
    agent.start(wait_online=False)
    agent.wait_status("online", timeout=timeout,
                      match=lambda s: s.get("started_at", 0) >= agent.started_ms)
    return agent


TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1",
              5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT",
              9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}


def musterd_pids(pid: int) -> list[int]:
    """pid and, as root, its network process (a child musterd, design.md §8)."""
    return [pid] + [p["pid"] for p in all_procs()
                    if p["ppid"] == pid and p["comm"] == "musterd"]


def tcp_conns(pid: int, remote_port: int) -> list[str]:
    """States of the TCP sockets musterd pid (and its network process)
    holds open to remote_port (any address), from /proc: e.g. ["SYN_SENT"]
    while it connects."""
    out = []
    for p in musterd_pids(pid):
        out += _tcp_conns(p, remote_port)
    return out


def _tcp_conns(pid: int, remote_port: int) -> list[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
    except FileNotFoundError:
        return []
    out = []
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split()
            port = int(f[2].rsplit(":", 1)[1], 16)
            if port == remote_port and f[9] in inodes:
                out.append(TCP_STATES.get(int(f[3], 16), f[3]))
    return out


def sanitized_build(build_dir: os.PathLike = BUILD_DIR) -> bool:
    """Whether build_dir was configured with -DMUSTER_SANITIZE=ON."""
    try:
        cache = (Path(build_dir) / "CMakeCache.txt").read_text()
    except OSError:
        return False
    return "MUSTER_SANITIZE:BOOL=ON" in cache


SANITIZED = sanitized_build()

# ASan reserves terabytes of address space for its shadow memory: under the
# default [limits] memory (RLIMIT_AS) a sanitized runner cannot even start.
# A test that sets `memory` itself keeps its value.
SANITIZED_MEMORY_LIMIT = "100000G"

if SANITIZED:
    def _lift_memory_limit(init: Callable) -> Callable:
        def wrapped(self, *args, **kw):
            init(self, *args, **kw)
            if "memory" not in (kw.get("limits") or {}) and \
                    "memory" not in (kw.get("extra") or {}).get("limits", {}):
                self.conf["limits"]["memory"] = SANITIZED_MEMORY_LIMIT
                self.write_conf()
        wrapped.__doc__ = init.__doc__
        return wrapped

    Agent.__init__ = _lift_memory_limit(Agent.__init__)
