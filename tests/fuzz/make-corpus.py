#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerate the seed corpus under tests/fuzz/corpus/<target>/.

A few valid messages and a few invalid ones per fuzz target, all
deterministic, in today's protocol (design.md §3: every job has an aud).  Run
with Debian's python (it has the msgpack module):
    /usr/bin/python3 tests/fuzz/make-corpus.py [--out DIR]
--out writes the corpus into DIR instead (tests/fuzz/test_corpus.py does,
and compares it with the committed one byte for byte).

A seed's name says what the target must do with it, and the replay test
(tests/fuzz/replay.c, ctest fuzz-replay.<target>) checks it:
  ok-<what>    taken: decoded and, where the target has an encoder, round-
               tripped to the same fields and the same bytes;
  bad-<what>   refused, with exactly the reason given here: a bad seed is
               bad("<seed bytes>", "<reason>"), and the reasons of a
               target's bad seeds go to corpus/<target>.expect, one
               "<name> <reason>" a line (the target's err.msg);
  regress-*    inputs fuzzing found (copied in by hand, never made here):
               replayed for crashes only, kept as they are when the corpus
               is made again.
A new bad seed's reason: add it with any reason, run the replay
(ctest -R fuzz-replay.<target> --output-on-failure), which prints the
reason it got; check that the reason is the one the seed was made for, and
put it here.
"""
import argparse
import os
import struct

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
SHA = "0123456789abcdef" * 4
SHA2 = "fedcba9876543210" * 4
NONCE = "00112233445566778899aabbccddeeff"
T0 = 1764230400000
AUD = "muster/v1"		# the default fleet: topic root "muster", protocol v1


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


class bad(bytes):
    """A seed the target must refuse, with this reason (its err.msg)."""

    def __new__(cls, data, reason):
        b = super().__new__(cls, data)
        b.reason = reason
        return b


def nested(depth):
    o = {"leaf": 1}
    for i in range(depth - 1):
        o = {"k%d" % i: o}
    return o


JOB_RUN = m(id="job-0001", kind="run", target="host/web-01", issued_at=T0,
            not_after=T0 + 300000, operator="alice@example.org", aud=AUD, module="disk",
            module_sha256=SHA, args={"path": "/var", "min_free_pct": 10,
                                     "opts": {"deep": [1, -2, 3.5, None, True]}},
            timeout_ms=30000, stream=True)
JOB_PING = m(id="p.1", kind="ping", target="all", issued_at=T0, not_after=T0 + 1,
             aud=AUD)
JOB_CANCEL = m(id="c_2", kind="cancel", target="group/db", issued_at=T0,
               not_after=T0 + 60000, aud=AUD, cancel="job-0001")

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
HALT = m(kind="halt", channel="stable", version="0.2.0~rc1",
         reason="3 of 5 hosts failed it", at=T0, failed=3, attempted=5,
         cert_der=b"\x30\x82\x01\x0a" + bytes(i % 253 for i in range(266)))
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
        "bad-sig-63": bad(pack(dict(ENV, sig=bytes(63))),
                          "key 'sig' must be 64 bytes"),
        "bad-key-upper": bad(pack(dict(ENV, key="0123456789ABCDEF")),
                             "key 'key' is not a key id (16 lowercase hex digits)"),
        "bad-v2": bad(pack(dict(ENV, v=2)),
                      "protocol version 2 is not supported (this side speaks 1)"),
        "bad-body-str": bad(pack(dict(ENV, body="not bin")),
                            "key 'body' must be binary"),
        "bad-trailing": bad(pack(ENV) + b"\xc0",
                            "1 trailing bytes after the message"),
        "bad-truncated": bad(pack(ENV)[:40],
                             "message is truncated"),
    },
    "fuzz_agent_envelope": {
        "ok-result": pack(AENV),
        "ok-ed25519": pack(m(cert=SHA2, sig=bytes(64), body=pack(EVENT))),
        "ok-status": pack(dict(AENV, body=pack(STATUS))),
        "ok-extra-key": pack(dict(AENV, note="ignored")),
        "bad-no-sig": bad(pack(without(AENV, "sig")),
                          "missing key 'sig'"),
        "bad-sig-empty": bad(pack(dict(AENV, sig=b"")),
                             "key 'sig' is empty"),
        "bad-sig-513": bad(pack(dict(AENV, sig=bytes(513))),
                           "key 'sig' is larger than 512 bytes"),
        "bad-cert-upper": bad(pack(dict(AENV, cert=SHA.upper())),
                              "key 'cert' is not a certificate fingerprint "
                              "(64 lowercase hex digits)"),
        "bad-cert-short": bad(pack(dict(AENV, cert=SHA[:63])),
                              "key 'cert' is not a certificate fingerprint "
                              "(64 lowercase hex digits)"),
        "bad-body-empty": bad(pack(dict(AENV, body=b"")),
                              "key 'body' is empty"),
        "bad-body-str": bad(pack(dict(AENV, body="not bin")),
                            "key 'body' must be binary"),
        "bad-dup-key": bad(pairs(("v", 1), ("cert", SHA), ("sig", b"x"), ("body", b"y"),
                             ("cert", SHA2)),
                           "message has the key 'cert' twice"),
        "bad-v2": bad(pack(dict(AENV, v=2)),
                      "protocol version 2 is not supported (this side speaks 1)"),
        "bad-trailing": bad(pack(AENV) + b"\xc0",
                            "1 trailing bytes after the message"),
        "bad-truncated": bad(pack(AENV)[:50],
                             "message is truncated"),
    },
    "fuzz_job": {
        "ok-run": pack(JOB_RUN),
        "ok-ping": pack(JOB_PING),
        "ok-cancel": pack(JOB_CANCEL),
        "ok-version": pack(m(id="v", kind="version", target="group/eu-1",
                             issued_at=0, not_after=2**64 - 1, aud=AUD)),
        "ok-update": pack(m(id="u", kind="update", target="host/a", issued_at=T0,
                            not_after=T0, aud=AUD, unknown={"x": 1})),
        "ok-run-aud": pack(m(id="j-aud", kind="run", target="group/web",
                             issued_at=1, not_after=2, aud=AUD,
                             module="os.release", args={"a": 1})),
        "bad-kind": bad(pack(dict(JOB_PING, kind="reboot")),
                        "key 'kind' has an unknown value 'reboot'"),
        "bad-target": bad(pack(dict(JOB_PING, target="host/Web")),
                          "key 'target' is not host/<name>, group/<name> or all"),
        "bad-args-depth": bad(pack(dict(JOB_RUN, args=nested(9))),
                              "key 'args' nested deeper than 8 levels"),
        "bad-args-intkey": bad(pack(dict(JOB_RUN, args={1: "x"})),
                               "key 'args' has a key that is not a string"),
        "bad-timeout": bad(pack(dict(JOB_RUN, timeout_ms=2**32)),
                           "key 'timeout_ms' is over 4294967295"),
        "bad-negative": bad(pack(dict(JOB_PING, issued_at=-1)),
                            "key 'issued_at' must not be negative"),
        "bad-missing": bad(pack(without(JOB_PING, "not_after")),
                           "missing key 'not_after'"),
        "bad-dupkey": bad(pairs(("v", 1), ("id", "a"), ("kind", "ping"), ("kind", "run"),
                            ("target", "all"), ("issued_at", 1), ("not_after", 2)),
                          "message has the key 'kind' twice"),
        "bad-cancel-noid": bad(pack(without(JOB_CANCEL, "cancel")),
                               "missing key 'cancel'"),
        "bad-reserved-id": bad(pack(m(id="invalid-0123456789abcdef", kind="ping",
                                  target="all", issued_at=1, not_after=2, aud=AUD)),
                               "key 'id' starts with the reserved prefix 'invalid-'"),
        "bad-aud": bad(pack(dict(JOB_PING, aud="muster")),
                       "key 'aud' is not a fleet (<topic_root>/v1)"),
        # job_decode takes it (the agent refuses it with its own reason);
        # fuzz_job refuses it because job_encode cannot write it.
        "bad-no-aud": bad(pack(without(JOB_PING, "aud")),
                          "no aud (job_decode takes it, the agent and job_encode do not)"),
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
        "bad-seq-str": bad(pack(dict(RESULT, seq="7")),
                           "key 'seq' must be an unsigned integer"),
        "bad-seq-negative": bad(pack(dict(RESULT, seq=-1)),
                                "key 'seq' must not be negative"),
        "bad-unknown-pass": bad(pack(dict(RESULT, kind="unknown")),
                                "kind 'unknown' is only valid when rejected"),
        "bad-status": bad(pack(dict(RESULT, status="ok")),
                          "key 'status' has an unknown value 'ok'"),
        "bad-exit-code": bad(pack(dict(RESULT, exit_code=2**31)),
                             "key 'exit_code' must be a 32-bit integer"),
        "bad-data-list": bad(pack(dict(RESULT, data=[1, 2])),
                             "key 'data' must be a map"),
        "bad-version": bad(pack(dict(RESULT, agent_version="0.1 beta")),
                           "key 'agent_version' is not a version"),
    },
    "fuzz_event": {
        "ok-progress": pack(EVENT),
        "ok-accepted": pack(m(job="j", host="h", seq=0, at=0, event="accepted")),
        "ok-output": pack(m(job="j", host="h", seq=2**64 - 1, at=1, event="output",
                            text="line\n" * 20)),
        "bad-pct": bad(pack(dict(EVENT, pct=101)),
                       "key 'pct' is over 100"),
        "bad-event": bad(pack(dict(EVENT, event="finished")),
                         "key 'event' has an unknown value 'finished'"),
        "bad-host": bad(pack(dict(EVENT, host="-web")),
                        "key 'host' is not a host name"),
        "bad-seq-str": bad(pack(dict(EVENT, seq="3")),
                           "key 'seq' must be an unsigned integer"),
    },
    "fuzz_status": {
        "ok-online": pack(STATUS),
        "ok-offline-lost": pack(dict(STATUS, state="offline", reason="lost",
                                     groups=[])),
        "ok-many-groups": pack(dict(STATUS, groups=["g%d" % i for i in range(32)])),
        "bad-33-groups": bad(pack(dict(STATUS, groups=["g%d" % i for i in range(33)])),
                             "key 'groups' has more than 32 items"),
        "bad-group-name": bad(pack(dict(STATUS, groups=["ok", "Not-Ok"])),
                              "key 'groups' has an invalid name"),
        "bad-state": bad(pack(dict(STATUS, state="busy")),
                         "key 'state' has an unknown value 'busy'"),
        "bad-no-cert": bad(pack(without(STATUS, "cert_der")),
                           "missing key 'cert_der'"),
        "bad-cert-empty": bad(pack(dict(STATUS, cert_der=b"")),
                              "key 'cert_der' is empty"),
        "bad-cert-str": bad(pack(dict(STATUS, cert_der="not bin")),
                            "key 'cert_der' must be binary"),
        "bad-cert-16k1": bad(pack(dict(STATUS, cert_der=bytes(16 * 1024 + 1))),
                             "key 'cert_der' is larger than 16384 bytes"),
        "bad-groups-map": bad(pack(dict(STATUS, groups={"a": 1})),
                              "key 'groups' must be an array"),
    },
    "fuzz_module_manifest": {
        "ok-typical": pack(MODMAN),
        "ok-zero": pack(dict(MODMAN, abi=0, size=0, published_at=0)),
        "bad-kind": bad(pack(dict(MODMAN, kind="release")),
                        "key 'kind' has an unknown value 'release'"),
        "bad-size": bad(pack(dict(MODMAN, size=64 * 1024 * 1024 + 1)),
                        "key 'size' is over 67108864"),
        "bad-sha-upper": bad(pack(dict(MODMAN, sha256=SHA.upper())),
                             "key 'sha256' is not a sha256"),
        "bad-no-v": bad(pack(without(MODMAN, "v")),
                        "missing key 'v'"),
    },
    "fuzz_release_manifest": {
        "ok-typical": pack(RELMAN),
        "ok-full-rollout": pack(dict(RELMAN, rollout=100, version="1.0.0")),
        "ok-schedule-halt": pack(dict(RELMAN, rollout=1,
                                      schedule=[[T0, 1], [T0 + 3600000, 10],
                                                [T0 + 86400000, 100]],
                                      halt=m(failed_pct=20, min_hosts=5))),
        "bad-schedule-order": bad(pack(dict(RELMAN, schedule=[[T0, 50], [T0 + 1, 10]])),
                                  "schedule step 2: its percent is below step 1's"),
        "bad-rollout": bad(pack(dict(RELMAN, rollout=101)),
                           "key 'rollout' is over 100"),
        "bad-runner-sha": bad(pack(dict(RELMAN, runner_sha256=SHA[:63])),
                              "key 'runner_sha256' is not a sha256"),
        "bad-kind": bad(pack(dict(RELMAN, kind="module")),
                        "key 'kind' has an unknown value 'module'"),
        "bad-missing": bad(pack(without(RELMAN, "agent_size")),
                           "missing key 'agent_size'"),
    },
    "fuzz_pointer": {
        "ok-module": pack(POINTER),
        "ok-release": pack(m(manifest=pack(RELMAN), sig=PGPSIG)),
        "bad-empty-sig": bad(pack(dict(POINTER, sig=b"")),
                             "manifest or signature is empty"),
        "bad-manifest-str": bad(pack(dict(POINTER, manifest="text")),
                                "key 'manifest' must be binary"),
        "bad-no-v": bad(pack(without(POINTER, "v")),
                        "missing key 'v'"),
        "bad-top-array": bad(pack([1, POINTER]),
                             "message is not a map"),
    },
    "fuzz_module_artifact": {
        "ok-typical": pack(MODART),
        "ok-tiny-so": pack(dict(MODART, so=b"\x7fELF")),
        "bad-no-so": bad(pack(without(MODART, "so")),
                         "missing key 'so'"),
        "bad-so-str": bad(pack(dict(MODART, so="elf")),
                          "key 'so' must be binary"),
        "bad-empty-manifest": bad(pack(dict(MODART, manifest=b"")),
                                  "manifest or signature is empty"),
    },
    "fuzz_binary_artifact": {
        "ok-typical": pack(BINART),
        "ok-small": pack(m(data=b"\x00\x01")),
        "bad-data-str": bad(pack(m(data="abc")),
                            "key 'data' must be binary"),
        "bad-missing": bad(pack(m(date=b"abc")),
                           "missing key 'data'"),
        "bad-bin32-short": bad(b"\x82\xa1v\x01\xa4data\xc6\x00\x01\x00\x00abc",
                               "message is truncated"),
    },
    "fuzz_selftest_request": {
        "ok-typical": pack(STREQ),
        "ok-long-nonce": pack(dict(STREQ, nonce="ab" * 64)),
        "bad-short-nonce": bad(pack(dict(STREQ, nonce="abc123")),
                               "key 'nonce' is not a nonce ([0-9a-f]{16,128})"),
        "bad-nonce-upper": bad(pack(dict(STREQ, nonce=NONCE.upper())),
                               "key 'nonce' is not a nonce ([0-9a-f]{16,128})"),
        "bad-version-empty": bad(pack(dict(STREQ, version="")),
                                 "key 'version' is not a version"),
        "bad-host-nul": bad(pack(dict(STREQ, host="web\x0001")),
                            "key 'host' contains a NUL byte"),
    },
    "fuzz_release_halt": {
        "ok-server": pack(HALT),
        "ok-operator": pack(dict(without(without(without(HALT, "cert_der"), "failed"),
                                         "attempted"), operator="alice")),
        "bad-counts-alone": bad(pack(without(HALT, "attempted")),
                                "keys 'failed' and 'attempted' go together"),
        "bad-counts": bad(pack(dict(HALT, failed=9, attempted=3)),
                          "more hosts failed than attempted"),
        "bad-kind": bad(pack(dict(HALT, kind="release")),
                        "key 'kind' has an unknown value 'release'"),
        "bad-no-reason": bad(pack(without(HALT, "reason")), "missing key 'reason'"),
    },
    "fuzz_relay_frame": {
        "ok-hello": pack(m(t="hello", version=1)),
        "ok-sub": pack(m(t="sub", topic="muster/v1/hosts/+/status", qos=1)),
        "ok-pub": pack(m(t="pub", token=7, topic="muster/v1/jobs/host/web-01",
                         payload=b"\x84signed", qos=1, retain=False, expiry=60)),
        "ok-msg": pack(m(t="msg", topic="muster/v1/results/j1/web-01", payload=b"r",
                         retain=True)),
        "ok-puback": pack(m(t="puback", token=7, ok=False, reason="not authorised")),
        "ok-stop": pack(m(t="stop")),
        "bad-type": bad(pack(m(t="shell")), "key 't' has an unknown value 'shell'"),
        "bad-pub-token": bad(pack(m(t="pub", topic="a", payload=b"", qos=0, retain=False,
                                    expiry=0)), "publish without a token"),
        "bad-qos": bad(pack(m(t="sub", topic="a/#", qos=3)), "key 'qos' is over 2"),
        "bad-topic-nul": bad(pack(m(t="unsub", topic="a\x00b")),
                             "bad topic in a relay frame"),
        "bad-topic-long": bad(pack(m(t="unsub", topic="a" * 1025)),
                              "key 'topic' is longer than 1024 bytes"),
    },
    "fuzz_selftest_verdict": {
        "ok-fail": pack(STVERD),
        "ok-pass": pack(without(dict(STVERD, ok=True), "reason")),
        "bad-ok-int": bad(pack(dict(STVERD, ok=1)),
                          "key 'ok' must be a boolean"),
        "bad-nonce-long": bad(pack(dict(STVERD, nonce="a" * 129)),
                              "key 'nonce' is longer than 128 bytes"),
        "bad-reason-bin": bad(pack(dict(STVERD, reason=b"x")),
                              "key 'reason' must be a string"),
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
    "bad-nest-11": bad(pack([[[[[[[[[[[1]]]]]]]]]]]),
                       "nesting deeper than 10 levels"),
    "bad-huge-array": bad(b"\xdd\xff\xff\xff\xff\xc0",
                          "message is truncated"),
    "bad-huge-map": bad(b"\xdf\x10\x00\x00\x00\xa1a\xc0",
                        "message is truncated"),
    "bad-str32-len": bad(b"\xdb\x7f\xff\xff\xff",
                         "string of 2147483647 bytes is over the 65536 byte limit"),
    "bad-long-str": bad(pack("x" * (64 * 1024 + 1))[:8],
                        "string of 65537 bytes is over the 65536 byte limit"),
    "bad-ext": bad(b"\xd4\x01\x00",
                   "msgpack ext types are not allowed"),
    "bad-c1": bad(b"\xc1",
                  "invalid msgpack byte 0xc1"),
    "bad-trailing": bad(b"\xc0\xc0",
                        "1 trailing bytes after the message"),
    "bad-empty-map-trunc": bad(b"\x81\xa1v",
                               "message is truncated"),
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
}
CORPUS["fuzz_ipc_event"] = dict({k: pack(v) for k, v in IPC.items()}, **{
    "bad-status": bad(pack(m(t="verdict", status="crashed")),
                      "verdict has no valid status"),
    "bad-pct": bad(pack(m(t="progress", pct=101)),
                   "key 'pct' is over 100"),
    "bad-type": bad(pack(m(t="nope")),
                    "key 't' has an unknown value 'nope'"),
})
CORPUS["fuzz_ipc_stream"] = {
    "ok-three-frames": chunked(b"".join(
        frame(pack(IPC[k])) for k in ("ok-out", "ok-progress", "ok-verdict"))),
    "bad-oversize-header": bad(chunked(b"\x00\x04\x00\x01" + b"x" * 8),
                               "frame of 262145 bytes is over 262144"),
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
    "ok-ready": pack(m(t="ready")),
    "ok-failed": pack(m(t="failed", reason="modcache: Permission denied")),
    "ok-durable": pack(m(t="durable", n=3)),
    "ok-answered": pack(m(t="answered", job="job-0001")),
    "bad-type": bad(pack(m(t="hello")),
                    "key 't' has an unknown value 'hello'"),
    "bad-no-v": bad(pack(without(PRIV_MOD, "v")),
                    "missing key 'v'"),
    "bad-module-none-sha": bad(pack(dict(PRIV_MOD, source="none")),
                               "a module answer names a build exactly when it has one"),
    "bad-module-cache-nosha": bad(pack(without(PRIV_MOD, "sha256")),
                                  "a module answer names a build exactly when it has one"),
    "bad-source": bad(pack(dict(PRIV_MOD, source="broker")),
                      "key 'source' has an unknown value 'broker'"),
    "bad-job-missing": bad(pack(m(t="spooled")),
                           "missing key 'job'"),
    "bad-topic-wildcard": bad(pack(dict(PRIV_JOB, topic="muster/v1/hosts/#")),
                              "key 'topic' is not a topic"),
    "bad-payload-str": bad(pack(dict(PRIV_JOB, payload="text")),
                           "key 'payload' must be binary"),
    "bad-want-local-upper": bad(pack(dict(PRIV_WANT, local=SHA2.upper())),
                                "key 'local' is not a sha256"),
    "bad-dup-key": bad(pairs(("v", 1), ("t", "spooled"), ("job", "a"), ("job", "b")),
                       "message has the key 'job' twice"),
    "bad-failed-noreason": bad(pack(m(t="failed")),
                               "missing key 'reason'"),
    "bad-durable-no-n": bad(pack(m(t="durable")),
                            "missing key 'n'"),
    "bad-answered-no-job": bad(pack(m(t="answered")),
                               "missing key 'job'"),
    "bad-trailing": bad(pack(PRIV_MOD) + b"\xc0",
                        "1 trailing bytes after the message"),
}

CORPUS["fuzz_priv_msg"]["ok-facts"] = pack(m(t="facts", payload=pack(m(
    host="web-01", at=T0, facts={"os.id": "debian"}))))
CORPUS["fuzz_priv_msg"]["bad-facts-no-payload"] = bad(pack(m(t="facts")),
                                                      "missing key 'payload'")
# The parent signs presence and the self-test request; the network
# process reports its release check's state (issue 22).
CORPUS["fuzz_priv_msg"].update({
    "ok-status-will": pack(m(t="status", n=1, payload=pack(AENV))),
    "ok-selftest": pack(m(t="selftest", payload=pack(AENV))),
    "ok-relstate": pack(m(t="relstate", name="refused", version="1.2.3",
                          reason="not signed by a trusted publisher")),
    "ok-relstate-bare": pack(m(t="relstate", name="fetching", version="1.2.3")),
    "ok-halt": pack(m(t="halt", payload=pack(HALT))),
    "ok-halted": pack(m(t="halted", version="1.2.3", n=T0)),
    "bad-status-n": bad(pack(m(t="status", n=3, payload=pack(AENV))),
                        "key 'n' is over 2"),
    "bad-relstate-version": bad(pack(m(t="relstate", name="staging", version="1 2")),
                                "key 'version' is not a version"),
})

# A host's facts (lib/facts.c, design.md §3).
FACTS = m(host="web-01", at=T0, facts={
    "os.id": "debian", "os.version_id": "12", "mem_mb": 3900, "cpus": 2,
    "temp": -5, "custom.db": True, "groups": ["web", "b7"], "custom.empty": []})
CORPUS["fuzz_facts"] = {
    "ok-facts": pack(FACTS),
    "ok-none": pack(m(host="h", at=0, facts={})),
    "ok-256": pack(m(host="h", at=1, facts={"f%d" % i: i for i in range(256)})),
    "bad-257": bad(pack(m(host="h", at=1, facts={"f%d" % i: i for i in range(257)})),
                   "key 'facts' has more than 256 facts"),
    "bad-float": bad(pack(dict(FACTS, facts={"load": 1.5})),
                     "fact load: not a string, integer, bool or list of strings"),
    "bad-nested": bad(pack(dict(FACTS, facts={"a": {"b": 1}})),
                      "fact a: not a string, integer, bool or list of strings"),
    "bad-name": bad(pack(dict(FACTS, facts={"OS": "x"})),
                    "key 'facts' has a name that is not a fact name"),
    "bad-dup": bad(b"\x84" + pack("v") + pack(1) + pack("host") + pack("h") + pack("at") +
                   pack(1) + pack("facts") + b"\x82" + pack("a") + pack(1) + pack("a") +
                   pack(2),
                   "key 'facts' has a twice"),
    "bad-long-str": bad(pack(dict(FACTS, facts={"a": "x" * 1025})),
                        "fact a: a string over 1024 bytes or with a NUL"),
    "bad-list-int": bad(pack(dict(FACTS, facts={"a": ["x", 1]})),
                        "fact a: a list item that is not a string of at most 1024 bytes"),
    "bad-list-65": bad(pack(dict(FACTS, facts={"a": ["x"] * 65})),
                       "fact a: a list of more than 64 items"),
    "bad-big-int": bad(pack(dict(FACTS, facts={"a": 2**63})),
                       "fact a: an integer over 2^63-1"),
    "bad-host": bad(pack(dict(FACTS, host="Web")),
                    "key 'host' is not a host name"),
    "bad-no-facts": bad(pack(without(FACTS, "facts")),
                        "missing key 'facts'"),
}

# A job's fact filter (lib/facts.c, design.md §3): job_decode, then
# filter_decode, then facts_match on fixed facts.
FJOB = m(id="f1", kind="ping", target="all", issued_at=T0, not_after=T0 + 60000,
         aud=AUD, filter=[["os.id", "==", "debian"], ["mem_mb", "<", 4096],
                          ["os.version_id", ">=", 12], ["kernel", "~", "6.*"],
                          ["groups", "has", "b7"], ["custom.db", "!=", False],
                          ["mem_mb", "<=", "4096"], ["cpus", ">", -1]])
CORPUS["fuzz_filter"] = {
    "ok-all-ops": pack(FJOB),
    "ok-empty": pack(dict(FJOB, filter=[])),
    "ok-32": pack(dict(FJOB, filter=[["os.id", "==", "debian"]] * 32)),
    "bad-33": bad(pack(dict(FJOB, filter=[["os.id", "==", "debian"]] * 33)),
                  "filter has more than 32 predicates"),
    "bad-op": bad(pack(dict(FJOB, filter=[["os.id", "=", "debian"]])),
                  "filter predicate 1: unknown operator '=' (want == != < <= > >= ~ has)"),
    "bad-pair": bad(pack(dict(FJOB, filter=[["os.id", "=="]])),
                    "filter predicate 1 is not [fact, op, value]"),
    "bad-name": bad(pack(dict(FJOB, filter=[["os.id", "==", "x"], ["Os", "==", "x"]])),
                    "filter predicate 2: the fact is not a fact name"),
    "bad-glob-int": bad(pack(dict(FJOB, filter=[["kernel", "~", 6]])),
                        "filter predicate 1: '~' wants a string"),
    "bad-lt-bool": bad(pack(dict(FJOB, filter=[["mem_mb", "<", True]])),
                       "filter predicate 1: '<' does not take a bool"),
    "bad-value-list": bad(pack(dict(FJOB, filter=[["groups", "==", ["a"]]])),
                          "filter predicate 1: the value is not a string, integer or bool"),
    "bad-not-array": bad(pack(dict(FJOB, filter={"os.id": "debian"})),
                         "key 'filter' must be an array"),
    "bad-no-filter": bad(pack(without(FJOB, "filter")),
                         "no filter"),
}
CORPUS["fuzz_job"]["ok-filter"] = pack(FJOB)
CORPUS["fuzz_job"]["bad-filter-op"] = bad(pack(dict(FJOB, filter=[["a", "like", "b"]])),
                                          "filter predicate 1: unknown operator 'like' "
                                          "(want == != < <= > >= ~ has)")


# The text form of one filter predicate (muster -F, lib/facts.c
# filter_text_pack): packed, then filter_decode and facts_match.
CORPUS["fuzz_filter_text"] = {
    "ok-eq": b"os.id=debian",
    "ok-spaced": b"  os.id  ==  debian  ",
    "ok-int": b"mem_mb<4096",
    "ok-ge-neg": b"cpus>=-1",
    "ok-glob": b"custom.rack~b7*",
    "ok-has": b"groups has web",
    "ok-bool": b"custom.db!=false",
    "ok-quoted": b'os.version_id="12"',
    "bad-empty": bad(b"", "no fact name before the operator"),
    "bad-name": bad(b"OS.id=debian",
                    "'OS.id' is not a fact name (dotted, lower case: a-z, 0-9, '_', '-')"),
    "bad-no-op": bad(b"os.id debian",
                     "no operator after 'os.id' (want = == != < <= > >= ~ or has)"),
    "bad-no-value": bad(b"os.id=", 'no value ("" is the empty string)'),
    "bad-quote": bad(b'os.id="debian', "the value's quote is not closed"),
    "bad-op-typo": bad(b"os.id=~deb",
                       "the value starts with '~' (not an operator: want == != < <= > >= "
                       "~ has; quote a value that starts so)"),
    "bad-lt-text": bad(b"mem_mb<4k", "'<' compares integers, and '4k' is not one"),
    "bad-long": bad(b"a=" + b"x" * 1025, "the value is over 1024 bytes"),
    "bad-nul": bad(b"os.id=deb\0ian", "a NUL in the text"),
}


# lib/policy.c's parser: a policy file (design.md §8).
CORPUS["fuzz_policy"] = {
    "ok-rules": b"# helpdesk\nallow helpdesk ping,version,run:os.release,run:disk.* "
                b"group/web*,host/* timeout<=30s\ndeny * update *\n",
    "ok-run-as": b"allow alice run:* host/[a-c]* run_as=nobody\n",
    "ok-net": b"allow alice run:os.* host/* net=no\nallow * run:http.* all net=yes\n",
    "ok-wildcards": b"allow * * all\n",
    "bad-kind": bad(b"allow * reboot all\n",
                    "fuzz:1: unknown kind 'reboot' (want ping, version, cancel, "
                    "update, run:<module glob> or *)"),
    "bad-dup-option": bad(b"allow bob ping all timeout<=1m timeout<=2m\n",
                          "fuzz:1: timeout<= given twice"),
    "bad-short": bad(b"deny\n",
                     "fuzz:1: want deny OPERATOR KINDS TARGETS [run_as=USER] "
                     "[timeout<=DUR] [net=no|yes]"),
    "bad-second-line": bad(b"allow * ping,run:x* all\nfrobnicate\n",
                           "fuzz:2: rule must start with allow or deny, not 'frobnicate'"),
}


# The job announce (lib/wire_announce.c, design.md §3): what muster-server
# is told before each job.
ANN = m(kind="announce", id="job-0001", aud=AUD, issued_at=T0, not_after=T0 + 300000,
        operator="alice@example.org", target="group/web", job_kind="run",
        module="disk", args={"path": "/var"}, timeout_ms=30000, stream=True,
        filter=[["os.id", "==", "debian"], ["mem_mb", "<", 4096]],
        expected=["web-01", "web-02", "web-10"])
CORPUS["fuzz_announce"] = {
    "ok-run": pack(ANN),
    "ok-ping-none": pack(m(kind="announce", id="p.1", aud=AUD, issued_at=T0,
                           not_after=T0 + 1, target="all", job_kind="ping",
                           expected=[])),
    "ok-1000": pack(dict(without(ANN, "filter"),
                         expected=["h%04d" % i for i in range(1000)])),
    "bad-unsorted": bad(pack(dict(ANN, expected=["web-02", "web-01"])),
                        "key 'expected' is not sorted and unique at item 1"),
    "bad-twice": bad(pack(dict(ANN, expected=["web-01", "web-01"])),
                     "key 'expected' is not sorted and unique at item 1"),
    "bad-host": bad(pack(dict(ANN, expected=["Web-01"])),
                    "key 'expected' item 0 is not a host name"),
    "bad-cancel": bad(pack(dict(ANN, job_kind="cancel")),
                      "key 'job_kind' has an unknown value 'cancel'"),
    "bad-kind": bad(pack(dict(ANN, kind="job")),
                    "key 'kind' has an unknown value 'job'"),
    "bad-no-aud": bad(pack(without(ANN, "aud")), "missing key 'aud'"),
    "bad-no-expected": bad(pack(without(ANN, "expected")), "missing key 'expected'"),
    "bad-filter-op": bad(pack(dict(ANN, filter=[["os.id", "=~", "x"]])),
                         "filter predicate 1: unknown operator '=~' (want == != < <= > >= ~ "
                         "has)"),
}


def expect_file(target, files):
    """corpus/<target>.expect: the reason of each bad seed (replay.c)."""
    lines = ["# %s: the reason each bad- seed is refused with (replay.c)." % target,
             "# Written by tests/fuzz/make-corpus.py: change it there."]
    for name, data in sorted(files.items()):
        if name.startswith("bad-") != isinstance(data, bad):
            raise SystemExit("%s/%s: a bad- seed is bad(data, reason), and only "
                             "a bad- seed" % (target, name))
        if not name.startswith(("ok-", "bad-")):
            raise SystemExit("%s/%s: name it ok- or bad-" % (target, name))
        if isinstance(data, bad):
            if "\n" in data.reason or not data.reason.isprintable():
                raise SystemExit("%s/%s: the reason is not one printable line"
                                 % (target, name))
            lines.append("%s %s" % (name, data.reason))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"),
                    help="where to write the corpus (default: %(default)s)")
    root = ap.parse_args().out
    for target, files in CORPUS.items():
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        expect = expect_file(target, files)
        # Regression inputs (regress-*) are kept: they were found, not made.
        for old in os.listdir(d):
            if not old.startswith("regress-"):
                os.remove(os.path.join(d, old))
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(bytes(data))
        with open(d + ".expect", "w") as f:
            f.write(expect)
        print("%-24s %2d files %6d bytes" % (target, len(files),
                                             sum(len(v) for v in files.values())))


if __name__ == "__main__":
    main()
