# SPDX-License-Identifier: Apache-2.0
"""Independent Python side of the protocol v1 interop tests.

Messages are built here with msgpack and signed with cryptography's Ed25519,
without any help from the C code, and fed to tests/tools/muster-proto.
"""
import hashlib
import json
import subprocess

import msgpack
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

NOW = 1_700_000_000_000  # unix ms
SHA_A = "a" * 64
SHA_B = "0123456789abcdef" * 4
NONCE = "00112233445566778899aabbccddeeff"
KIB = 1024


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data):
    """Strict Python decode: str stays str, bin becomes bytes, no trailing data."""
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


class Raw(bytes):
    """Already-encoded msgpack, spliced as is by raw_map()."""


def raw_map(pairs):
    """A map from (key, value) pairs, keeping duplicates and order."""
    n = len(pairs)
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + n.to_bytes(2, "big")
    return head + b"".join(
        (k if isinstance(k, Raw) else pack(k)) + (v if isinstance(v, Raw) else pack(v))
        for k, v in pairs)


def raw_with(d, key, raw_value):
    """d packed as a map, with key's value replaced (or added) as raw bytes."""
    pairs = [(k, Raw(raw_value) if k == key else v) for k, v in d.items()]
    if key not in d:
        pairs.append((key, Raw(raw_value)))
    return raw_map(pairs)


def nest(levels, leaf=0, array=False):
    """args of the given depth: the outer map counts as level 1."""
    inner = leaf
    for _ in range(levels - 1):
        inner = [inner] if array else {"k": inner}
    return {"k": inner}


def jsonify(obj):
    """What muster-proto prints for a decoded value: bin as lowercase hex."""
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, dict):
        return {k: jsonify(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonify(v) for v in obj]
    return obj


def binify(obj, fields):
    """JSON input for muster-proto encode: the named bin fields as hex."""
    return {k: (v.hex() if k in fields else v) for k, v in obj.items()}


# ---- operator keys -----------------------------------------------------------

class Operator:
    def __init__(self, name="alice"):
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        self.raw_pub = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.keyid = hashlib.sha256(self.raw_pub).digest()[:8].hex()

    def write_pub(self, folder):
        path = folder / f"{self.name}.pub"
        path.write_bytes(self.key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo))
        return path

    def write_priv(self, folder):
        path = folder / f"{self.name}.key"
        path.write_bytes(self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        path.chmod(0o600)
        return path

    def sign(self, body):
        return self.key.sign(body)

    def envelope(self, body, **over):
        env = {"v": 1, "key": self.keyid, "sig": self.sign(body), "body": body}
        env.update(over)
        return pack(env)


# ---- the C side ----------------------------------------------------------------

class Reply:
    """What muster-proto answered: rc 0 with a value, or rc 1 with an error."""

    def __init__(self, rc, value, raw):
        self.rc, self.value, self.raw = rc, value, raw

    def ok(self):
        assert self.rc == 0, f"C refused: {self.value}"
        return self.value

    def refused(self, *needles):
        assert self.rc == 1, f"C accepted: {self.raw[:300]!r}"
        err = self.value["error"]
        for n in needles:
            assert n in err, f"refused for another reason: {err!r} (wanted {n!r})"
        return err


class Proto:
    def __init__(self, path):
        self.path = path

    def run(self, args, data, tool_errors_fail=True):
        p = subprocess.run([self.path, *args], input=data, capture_output=True,
                           timeout=120)
        bad = p.returncode not in (0, 1) or p.stderr
        if bad and tool_errors_fail:
            pytest.fail(f"muster-proto {' '.join(args)} exited {p.returncode}\n"
                        f"stderr: {p.stderr.decode(errors='replace')[:4000]}\n"
                        f"stdout: {p.stdout[:500]!r}")
        return p

    @staticmethod
    def _json_reply(p):
        value = json.loads(p.stdout) if p.stdout.strip() else None
        return Reply(p.returncode, value, p.stdout)

    def decode(self, type_, data, **kw):
        return self._json_reply(self.run(["decode", type_, "-"], data, **kw))

    def verify_job(self, keydir, data, **kw):
        return self._json_reply(self.run(["verify-job", str(keydir), "-"], data, **kw))

    def _bin_reply(self, p):
        if p.returncode == 0:
            return Reply(0, p.stdout, p.stdout)
        return self._json_reply(p)

    def encode(self, type_, obj):
        return self._bin_reply(self.run(["encode", type_], json.dumps(obj).encode()))

    def sign_job(self, keyfile, obj):
        return self._bin_reply(self.run(["sign-job", str(keyfile)],
                                        json.dumps(obj).encode()))


# ---- valid messages, as Python builds them -----------------------------------

def job(kind="ping", **kw):
    d = {"v": 1, "id": "job-1", "kind": kind, "target": "host/web-1",
         "issued_at": NOW, "not_after": NOW + 60_000, "aud": "muster/v1"}
    if kind == "run":
        d["module"] = "kernel"
    if kind == "cancel":
        d["cancel"] = "job-0"
    d.update(kw)
    return d


def job_view(d):
    """The fields muster-proto shows for a decoded job dict d."""
    e = {k: d[k] for k in ("id", "kind", "target", "issued_at", "not_after")}
    if "operator" in d:
        e["operator"] = d["operator"]
    if "aud" in d:
        e["aud"] = d["aud"]
    if d["kind"] == "run":
        e["module"] = d["module"]
        if "module_sha256" in d:
            e["module_sha256"] = d["module_sha256"]
        if "args" in d:
            e["args"] = jsonify(d["args"])
        e["timeout_ms"] = d.get("timeout_ms", 0)
        e["stream"] = d.get("stream", False)
    if d["kind"] == "cancel":
        e["cancel"] = d["cancel"]
    if "filter" in d:
        e["filter"] = jsonify(d["filter"])
    return e


def result():
    return {"v": 1, "job": "job-1", "host": "web-1", "kind": "run", "status": "fail",
            "reason": "disk check failed", "summary": "1 of 3 failed",
            "output": "line 1\nline 2\n", "truncated": True,
            "data": {"disks": [{"name": "sda", "free": 12.5}], "ok": False,
                     "raw": b"\x00\xff", "n": -3, "none": None},
            "exit_code": -1, "signal": 9, "module": "disk",
            "module_version": "1.2.3", "module_sha256": SHA_B,
            "started_at": NOW, "finished_at": NOW + 1500, "agent_version": "0.1.0",
            "seq": 4242}


def event():
    return {"v": 1, "job": "job-1", "host": "web-1", "seq": 7, "at": NOW,
            "event": "progress", "text": "half way", "pct": 50}


def status():
    return {"v": 1, "host": "web-1", "state": "offline", "reason": "lost",
            "version": "0.1.0", "channel": "stable", "groups": ["web", "eu-1"],
            "started_at": NOW, "at": NOW + 5,
            "cert_der": b"\x30\x82\x01\x00" + bytes(range(200))}


def module_manifest():
    return {"v": 1, "kind": "module", "name": "kernel", "version": "1.0.0",
            "abi": 1, "sha256": SHA_A, "size": 12345, "published_at": NOW}


def release_manifest():
    return {"v": 1, "kind": "release", "channel": "canary", "version": "0.2.0",
            "agent_sha256": SHA_A, "agent_size": 1_000_000,
            "runner_sha256": SHA_B, "runner_size": 200_000,
            "published_at": NOW, "rollout": 25}


def pointer():
    return {"v": 1, "manifest": pack(module_manifest()), "sig": b"\x89\x01pgp"}


def module_artifact():
    return {"v": 1, "manifest": pack(module_manifest()), "sig": b"\x89\x01pgp",
            "so": b"\x7fELF" + bytes(range(256))}


def binary_artifact():
    return {"v": 1, "data": b"\x7fELF\x00\x01binary"}


def selftest_request():
    return {"v": 1, "host": "web-1", "nonce": NONCE, "version": "0.2.0"}


def selftest_verdict():
    return {"v": 1, "host": "web-1", "nonce": NONCE, "ok": False,
            "reason": "nonce mismatch"}


def envelope_msg():
    body = pack(job())
    return {"v": 1, "key": "0123456789abcdef", "sig": bytes(range(64)), "body": body}


def agent_envelope_msg():
    return {"v": 1, "cert": SHA_A, "sig": b"\x30\x44" + bytes(range(70)),
            "body": pack(result())}


def facts():
    """A host's facts (design.md §3): every value type, a negative integer
    and an empty list."""
    return {"v": 1, "host": "web-1", "at": NOW, "facts": {
        "os.id": "debian", "os.version_id": "12", "mem_mb": 3900, "temp": -5,
        "custom.db": True, "custom.off": False, "groups": ["web", "eu-1"],
        "custom.empty": []}}


def announce():
    """A job announce (design.md §3, R/jobs/<job>) with every field."""
    return {"v": 1, "kind": "announce", "id": "job-1", "aud": "muster/v1",
            "issued_at": NOW, "not_after": NOW + 60_000, "operator": "alice",
            "target": "group/web", "filter": [["os.id", "==", "debian"]],
            "job_kind": "run", "module": "kernel", "args": {"a": 1},
            "timeout_ms": 5000, "stream": True, "expected": ["web-1", "web-2"]}


def view(d):
    """What muster-proto shows for a valid non-job message d: d minus v."""
    return jsonify({k: v for k, v in d.items() if k != "v"})


# type name -> (builder, bin fields, required keys, JSON view of a decode)
TYPES = {
    "envelope": (envelope_msg, {"sig", "body"}, ["v", "key", "sig", "body"], view),
    "agent-envelope": (agent_envelope_msg, {"sig", "body"},
                       ["v", "cert", "sig", "body"], view),
    "job": (lambda: job("run", operator="alice", module_sha256=SHA_A,
                        args={"a": 1}, timeout_ms=5000, stream=True),
            set(), ["v", "id", "kind", "target", "issued_at", "not_after", "module"],
            job_view),
    "result": (result, set(), ["v", "job", "host", "kind", "status", "started_at",
                                "finished_at", "agent_version"], view),
    "event": (event, set(), ["v", "job", "host", "seq", "at", "event"], view),
    "status": (status, {"cert_der"}, ["v", "host", "state", "version", "channel",
                                      "groups", "started_at", "at", "cert_der"], view),
    "module-manifest": (module_manifest, set(),
                        ["v", "kind", "name", "version", "abi", "sha256", "size",
                         "published_at"], view),
    "release-manifest": (release_manifest, set(),
                         ["v", "kind", "channel", "version", "agent_sha256",
                          "agent_size", "runner_sha256", "runner_size",
                          "published_at", "rollout"], view),
    "pointer": (pointer, {"manifest", "sig"}, ["v", "manifest", "sig"], view),
    "module-artifact": (module_artifact, {"manifest", "sig", "so"},
                        ["v", "manifest", "sig", "so"], view),
    "binary-artifact": (binary_artifact, {"data"}, ["v", "data"], view),
    "selftest-request": (selftest_request, set(), ["v", "host", "nonce", "version"],
                         view),
    "selftest-verdict": (selftest_verdict, set(), ["v", "host", "nonce", "ok"], view),
    "facts": (facts, set(), ["v", "host", "at", "facts"], view),
    "announce": (announce, set(), ["v", "kind", "id", "aud", "issued_at", "not_after",
                                   "target", "job_kind", "module", "expected"], view),
}


def typed(obj):
    """obj with the type of every value made explicit, so that comparisons do
    not take True for 1, 1.0 for 1 or b"x" for "x"."""
    if isinstance(obj, dict):
        return ("map", {k: typed(v) for k, v in obj.items()},
                sorted(type(k).__name__ for k in obj))
    if isinstance(obj, (list, tuple)):
        return ("array", [typed(v) for v in obj])
    return (type(obj).__name__, obj)
