#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerate the seed corpus under tests/fuzz/corpus/<target>/.

A few valid messages and a few invalid ones per fuzz target, all
deterministic.  Run with Debian's python (it has the msgpack module):
    /usr/bin/python3 tests/fuzz/make-corpus.py
"""
import os
import shutil
import struct

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
SHA = "0123456789abcdef" * 4
SHA2 = "fedcba9876543210" * 4
NONCE = "00112233445566778899aabbccddeeff"
T0 = 1764230400000


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def pairs(*kv):
    """A map from (key, value) pairs, so keys may repeat or be non-strings."""
    n = len(kv)
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
    return head + b"".join(pack(k) + pack(v) for k, v in kv)


def m(**kw):
    return dict({"v": 1}, **kw)


def without(d, key):
    return {k: v for k, v in d.items() if k != key}


def nested(depth):
    o = {"leaf": 1}
    for i in range(depth - 1):
        o = {"k%d" % i: o}
    return o


JOB_RUN = m(id="job-0001", kind="run", target="host/web-01", issued_at=T0,
            not_after=T0 + 300000, operator="alice@example.org", module="disk",
            module_sha256=SHA, args={"path": "/var", "min_free_pct": 10,
                                     "opts": {"deep": [1, -2, 3.5, None, True]}},
            timeout_ms=30000, stream=True)
JOB_PING = m(id="p.1", kind="ping", target="all", issued_at=T0, not_after=T0 + 1)
JOB_CANCEL = m(id="c_2", kind="cancel", target="group/db", issued_at=T0,
               not_after=T0 + 60000, cancel="job-0001")

ENV = m(key="0123456789abcdef", sig=bytes(range(64)), body=pack(JOB_RUN))
RESULT = m(job="job-0001", host="web-01", kind="run", status="pass",
           summary="3 of 3 mounts ok", output="ok\n", data={"free": {"/": 51}},
           exit_code=0, module="disk", module_version="1.2.0", module_sha256=SHA,
           started_at=T0, finished_at=T0 + 1234, agent_version="0.1.0")
EVENT = m(job="job-0001", host="web-01", seq=3, at=T0 + 5, event="progress",
          text="scanning /var", pct=40)
STATUS = m(host="web-01", state="online", version="0.1.0", channel="stable",
           groups=["web", "eu-1"], started_at=T0, at=T0 + 9000,
           cert_der=b"\x30\x82\x01\x0a" + bytes(i % 253 for i in range(266)))
AENV = m(cert=SHA, sig=b"\x30\x45" + bytes(range(69)), body=pack(RESULT))
MODMAN = m(kind="module", name="disk", version="1.2.0", abi=1, sha256=SHA,
           size=4096, published_at=T0)
RELMAN = m(kind="release", channel="stable", version="0.2.0~rc1",
           agent_sha256=SHA, agent_size=1 << 20, runner_sha256=SHA2,
           runner_size=65536, published_at=T0, rollout=25)
PGPSIG = b"\x89\x01\x33\x04\x00\x01\x0a\x00\x1d" + bytes(range(40))
POINTER = m(manifest=pack(MODMAN), sig=PGPSIG)
SO = b"\x7fELF\x02\x01\x01" + bytes(57) + bytes(i % 251 for i in range(512))
MODART = m(manifest=pack(MODMAN), sig=PGPSIG, so=SO)
BINART = m(data=bytes(i * 7 % 256 for i in range(1024)))
STREQ = m(host="web-01", nonce=NONCE, version="0.2.0~rc1")
STVERD = m(host="web-01", nonce=NONCE, ok=False, reason="module disk failed")

CORPUS = {
    "fuzz_envelope": {
        "ok-run": pack(ENV),
        "ok-ping": pack(m(key="ffffffffffffffff", sig=bytes(64), body=pack(JOB_PING))),
        "ok-extra-key": pack(dict(ENV, note="ignored")),
        "bad-sig-63": pack(dict(ENV, sig=bytes(63))),
        "bad-key-upper": pack(dict(ENV, key="0123456789ABCDEF")),
        "bad-v2": pack(dict(ENV, v=2)),
        "bad-body-str": pack(dict(ENV, body="not bin")),
        "bad-trailing": pack(ENV) + b"\xc0",
        "bad-truncated": pack(ENV)[:40],
    },
    "fuzz_agent_envelope": {
        "ok-result": pack(AENV),
        "ok-ed25519": pack(m(cert=SHA2, sig=bytes(64), body=pack(EVENT))),
        "ok-status": pack(dict(AENV, body=pack(STATUS))),
        "ok-extra-key": pack(dict(AENV, note="ignored")),
        "bad-no-sig": pack(without(AENV, "sig")),
        "bad-sig-empty": pack(dict(AENV, sig=b"")),
        "bad-sig-513": pack(dict(AENV, sig=bytes(513))),
        "bad-cert-upper": pack(dict(AENV, cert=SHA.upper())),
        "bad-cert-short": pack(dict(AENV, cert=SHA[:63])),
        "bad-body-empty": pack(dict(AENV, body=b"")),
        "bad-body-str": pack(dict(AENV, body="not bin")),
        "bad-dup-key": pairs(("v", 1), ("cert", SHA), ("sig", b"x"), ("body", b"y"),
                             ("cert", SHA2)),
        "bad-v2": pack(dict(AENV, v=2)),
        "bad-trailing": pack(AENV) + b"\xc0",
        "bad-truncated": pack(AENV)[:50],
    },
    "fuzz_job": {
        "ok-run": pack(JOB_RUN),
        "ok-ping": pack(JOB_PING),
        "ok-cancel": pack(JOB_CANCEL),
        "ok-version": pack(m(id="v", kind="version", target="group/eu-1",
                             issued_at=0, not_after=2**64 - 1)),
        "ok-update": pack(m(id="u", kind="update", target="host/a", issued_at=T0,
                            not_after=T0, unknown={"x": 1})),
        "bad-kind": pack(dict(JOB_PING, kind="reboot")),
        "bad-target": pack(dict(JOB_PING, target="host/Web")),
        "bad-args-depth": pack(dict(JOB_RUN, args=nested(9))),
        "bad-args-intkey": pack(dict(JOB_RUN, args={1: "x"})),
        "bad-timeout": pack(dict(JOB_RUN, timeout_ms=2**32)),
        "bad-negative": pack(dict(JOB_PING, issued_at=-1)),
        "bad-missing": pack(without(JOB_PING, "not_after")),
        "bad-dupkey": pairs(("v", 1), ("id", "a"), ("kind", "ping"), ("kind", "run"),
                            ("target", "all"), ("issued_at", 1), ("not_after", 2)),
        "bad-cancel-noid": pack(without(JOB_CANCEL, "cancel")),
    },
    "fuzz_result": {
        "ok-pass": pack(RESULT),
        "ok-crashed": pack(m(job="j", host="h", kind="run", status="crashed",
                             signal=11, exit_code=-1, truncated=True,
                             started_at=1, finished_at=2, agent_version="0.1.0")),
        "ok-rejected-unknown": pack(m(job="j", host="h", kind="unknown",
                                      status="rejected", reason="bad signature",
                                      started_at=0, finished_at=0,
                                      agent_version="0.1.0")),
        "ok-seq": pack(dict(RESULT, seq=2**64 - 1)),
        "bad-seq-str": pack(dict(RESULT, seq="7")),
        "bad-seq-negative": pack(dict(RESULT, seq=-1)),
        "bad-unknown-pass": pack(dict(RESULT, kind="unknown")),
        "bad-status": pack(dict(RESULT, status="ok")),
        "bad-exit-code": pack(dict(RESULT, exit_code=2**31)),
        "bad-data-list": pack(dict(RESULT, data=[1, 2])),
        "bad-version": pack(dict(RESULT, agent_version="0.1 beta")),
    },
    "fuzz_event": {
        "ok-progress": pack(EVENT),
        "ok-accepted": pack(m(job="j", host="h", seq=0, at=0, event="accepted")),
        "ok-output": pack(m(job="j", host="h", seq=2**64 - 1, at=1, event="output",
                            text="line\n" * 20)),
        "bad-pct": pack(dict(EVENT, pct=101)),
        "bad-event": pack(dict(EVENT, event="finished")),
        "bad-host": pack(dict(EVENT, host="-web")),
        "bad-seq-str": pack(dict(EVENT, seq="3")),
    },
    "fuzz_status": {
        "ok-online": pack(STATUS),
        "ok-offline-lost": pack(dict(STATUS, state="offline", reason="lost",
                                     groups=[])),
        "ok-many-groups": pack(dict(STATUS, groups=["g%d" % i for i in range(32)])),
        "bad-33-groups": pack(dict(STATUS, groups=["g%d" % i for i in range(33)])),
        "bad-group-name": pack(dict(STATUS, groups=["ok", "Not-Ok"])),
        "bad-state": pack(dict(STATUS, state="busy")),
        "bad-no-cert": pack(without(STATUS, "cert_der")),
        "bad-cert-empty": pack(dict(STATUS, cert_der=b"")),
        "bad-cert-str": pack(dict(STATUS, cert_der="not bin")),
        "bad-cert-16k1": pack(dict(STATUS, cert_der=bytes(16 * 1024 + 1))),
        "bad-groups-map": pack(dict(STATUS, groups={"a": 1})),
    },
    "fuzz_module_manifest": {
        "ok": pack(MODMAN),
        "ok-zero": pack(dict(MODMAN, abi=0, size=0, published_at=0)),
        "bad-kind": pack(dict(MODMAN, kind="release")),
        "bad-size": pack(dict(MODMAN, size=64 * 1024 * 1024 + 1)),
        "bad-sha-upper": pack(dict(MODMAN, sha256=SHA.upper())),
        "bad-no-v": pack(without(MODMAN, "v")),
    },
    "fuzz_release_manifest": {
        "ok": pack(RELMAN),
        "ok-full-rollout": pack(dict(RELMAN, rollout=100, version="1.0.0")),
        "bad-rollout": pack(dict(RELMAN, rollout=101)),
        "bad-runner-sha": pack(dict(RELMAN, runner_sha256=SHA[:63])),
        "bad-kind": pack(dict(RELMAN, kind="module")),
        "bad-missing": pack(without(RELMAN, "agent_size")),
    },
    "fuzz_pointer": {
        "ok-module": pack(POINTER),
        "ok-release": pack(m(manifest=pack(RELMAN), sig=PGPSIG)),
        "bad-empty-sig": pack(dict(POINTER, sig=b"")),
        "bad-manifest-str": pack(dict(POINTER, manifest="text")),
        "bad-no-v": pack(without(POINTER, "v")),
        "bad-top-array": pack([1, POINTER]),
    },
    "fuzz_module_artifact": {
        "ok": pack(MODART),
        "ok-tiny-so": pack(dict(MODART, so=b"\x7fELF")),
        "bad-no-so": pack(without(MODART, "so")),
        "bad-so-str": pack(dict(MODART, so="elf")),
        "bad-empty-manifest": pack(dict(MODART, manifest=b"")),
    },
    "fuzz_binary_artifact": {
        "ok": pack(BINART),
        "ok-small": pack(m(data=b"\x00\x01")),
        "bad-data-str": pack(m(data="abc")),
        "bad-missing": pack(m(date=b"abc")),
        "bad-bin32-short": b"\x82\xa1v\x01\xa4data\xc6\x00\x01\x00\x00abc",
    },
    "fuzz_selftest_request": {
        "ok": pack(STREQ),
        "ok-long-nonce": pack(dict(STREQ, nonce="ab" * 64)),
        "bad-short-nonce": pack(dict(STREQ, nonce="abc123")),
        "bad-nonce-upper": pack(dict(STREQ, nonce=NONCE.upper())),
        "bad-version-empty": pack(dict(STREQ, version="")),
        "bad-host-nul": pack(dict(STREQ, host="web\x0001")),
    },
    "fuzz_selftest_verdict": {
        "ok-fail": pack(STVERD),
        "ok-pass": pack(without(dict(STVERD, ok=True), "reason")),
        "bad-ok-int": pack(dict(STVERD, ok=1)),
        "bad-nonce-long": pack(dict(STVERD, nonce="a" * 129)),
        "bad-reason-bin": pack(dict(STVERD, reason=b"x")),
    },
}

CORPUS["fuzz_wire_check"] = {
    "ok-job": pack(JOB_RUN),
    "ok-status": pack(STATUS),
    "ok-result": pack(RESULT),
    "ok-scalars": pack([None, True, False, 0, -1, 127, -33, 255, 65536, 2**63,
                        -2**63, 1.5, "s", b"b"]) ,
    "ok-float32": b"\x92\xca\x3f\xc0\x00\x00\xc0",
    "ok-nest-10": pack([[[[[[[[[[1]]]]]]]]]]),
    "bad-nest-11": pack([[[[[[[[[[[1]]]]]]]]]]]),
    "bad-huge-array": b"\xdd\xff\xff\xff\xff\xc0",
    "bad-huge-map": b"\xdf\x10\x00\x00\x00\xa1a\xc0",
    "bad-str32-len": b"\xdb\x7f\xff\xff\xff",
    "bad-long-str": pack("x" * (64 * 1024 + 1))[:8],
    "bad-ext": b"\xd4\x01\x00",
    "bad-c1": b"\xc1",
    "bad-trailing": b"\xc0\xc0",
    "bad-empty-map-trunc": b"\x81\xa1v",
}


def frame(b):
    return struct.pack(">I", len(b)) + b


def chunked(raw, step=7):
    """fuzz_ipc_stream input: a size byte (1 + b % 64) before each chunk."""
    out = bytearray()
    for i in range(0, len(raw), step):
        part = raw[i:i + step]
        out.append(len(part) - 1)
        out += part
    return bytes(out)


IPC = {
    "ok-out": m(t="out", text="hello"),
    "ok-progress": m(t="progress", pct=40),
    "ok-verdict": m(t="verdict", status="fail", reason="disk full",
                    summary="/ at 97%", data={"mounts": {"-": {"pct": 97}}},
                    truncated=True, module="disk.usage", module_version="1.0.0"),
    "bad-status": m(t="verdict", status="crashed"),
    "bad-pct": m(t="progress", pct=101),
    "bad-type": m(t="nope"),
}
CORPUS["fuzz_ipc_event"] = {k: pack(v) for k, v in IPC.items()}
CORPUS["fuzz_ipc_stream"] = {
    "ok-three-frames": chunked(b"".join(
        frame(pack(IPC[k])) for k in ("ok-out", "ok-progress", "ok-verdict"))),
    "bad-oversize-header": chunked(b"\x00\x04\x00\x01" + b"x" * 8),
    "ok-empty-frame": chunked(frame(b"")),
}

# musterd's parent <-> network process frames (lib/wire.h struct priv_msg).
PRIV_JOB = m(t="job", topic="muster/v1/hosts/web-01/jobs", payload=pack(ENV))
PRIV_MOD = m(t="module", job="job-0001", source="cache", sha256=SHA)
PRIV_WANT = m(t="want", job="job-0001", name="disk", sha256=SHA, local=SHA2)
CORPUS["fuzz_priv_msg"] = {
    "ok-job": pack(PRIV_JOB),
    "ok-module-cache": pack(PRIV_MOD),
    "ok-module-local": pack(dict(PRIV_MOD, source="local", sha256=SHA2)),
    "ok-module-none": pack(m(t="module", job="job-0001", source="none",
                             reason="no build of disk is published")),
    "ok-spooled": pack(m(t="spooled", job="job-0001")),
    "ok-result": pack(m(t="result", job="job-0001", payload=pack(RESULT))),
    "ok-event": pack(m(t="event", job="job-0001", payload=pack(EVENT))),
    "ok-want": pack(PRIV_WANT),
    "ok-want-bare": pack(m(t="want", job="j", name="disk")),
    "ok-poke": pack(m(t="poke")),
    "ok-stop": pack(m(t="stop")),
    "bad-type": pack(m(t="hello")),
    "bad-no-v": pack(without(PRIV_MOD, "v")),
    "bad-module-none-sha": pack(dict(PRIV_MOD, source="none")),
    "bad-module-cache-nosha": pack(without(PRIV_MOD, "sha256")),
    "bad-source": pack(dict(PRIV_MOD, source="broker")),
    "bad-job-missing": pack(m(t="spooled")),
    "bad-topic-wildcard": pack(dict(PRIV_JOB, topic="muster/v1/hosts/#")),
    "bad-payload-str": pack(dict(PRIV_JOB, payload="text")),
    "bad-want-local-upper": pack(dict(PRIV_WANT, local=SHA2.upper())),
    "bad-dup-key": pairs(("v", 1), ("t", "spooled"), ("job", "a"), ("job", "b")),
    "bad-trailing": pack(PRIV_MOD) + b"\xc0",
}


def main():
    root = os.path.join(HERE, "corpus")
    for target, files in CORPUS.items():
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        # Regression inputs (regress-*) are kept: they were found, not made.
        for old in os.listdir(d):
            if not old.startswith("regress-"):
                os.remove(os.path.join(d, old))
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print("%-24s %2d files %6d bytes" % (target, len(files),
                                             sum(len(v) for v in files.values())))


if __name__ == "__main__":
    main()
