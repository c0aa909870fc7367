# SPDX-License-Identifier: Apache-2.0
"""The other direction: messages encoded by the C encoders
(`muster-proto encode TYPE`) must decode in Python's msgpack to exactly the
expected map, and the encoders must refuse what the decoders would refuse."""
import pytest

from wirekit import (KIB, NONCE, SHA_A, TYPES, binify, job, nest, result, typed,
                     unpack, view)


def _result_for_encode():
    d = result()
    d["data"] = {"disks": [{"name": "sda", "free": 12.5}], "ok": False, "n": -3,
                 "none": None, "big": 2**40}
    return d


def _case(type_, d=None):
    build, bins, _, _ = TYPES[type_]
    d = build() if d is None else d
    return binify({k: v for k, v in d.items() if k != "v"}, bins), d


CASES = {t: _case(t) for t in TYPES}
CASES["result"] = _case("result", _result_for_encode())
CASES["result-minimal"] = _case("result", {
    "v": 1, "job": "j", "host": "h", "kind": "unknown", "status": "rejected",
    "started_at": 0, "finished_at": 0, "agent_version": "0"})
CASES["job-run-minimal"] = _case("job", job("run"))
for kind in ("ping", "version", "cancel", "update"):
    CASES[f"job-{kind}"] = _case("job", job(kind, target="group/web"))
CASES["job-operator-all"] = _case("job", job("update", target="all", operator="bob"))
CASES["job-args-depth-8"] = _case("job", job("run", args=nest(8)))
CASES["event-minimal"] = _case("event", {"v": 1, "job": "j", "host": "h", "seq": 0,
                                         "at": 0, "event": "accepted"})
CASES["status-online"] = _case("status", {
    "v": 1, "host": "h", "state": "online", "version": "1", "channel": "c",
    "groups": [], "started_at": 1, "at": 2, "cert_der": b"\x30\x03\x02\x01\x01"})
CASES["agent-envelope-ed25519"] = _case("agent-envelope", {
    "v": 1, "cert": SHA_A, "sig": bytes(64), "body": b"\x81\xa1v\x01"})
CASES["verdict-ok"] = _case("selftest-verdict", {"v": 1, "host": "h", "nonce": NONCE,
                                                 "ok": True})
CASES["binary-artifact-empty"] = _case("binary-artifact", {"v": 1, "data": b""})


def _type_of(case):
    for t in sorted(TYPES, key=len, reverse=True):
        if case.startswith(t):
            return t
    return {"verdict-ok": "selftest-verdict"}[case]


@pytest.mark.parametrize("case", sorted(CASES))
def test_c_encoding_decodes_in_python(proto, case):
    given, expected = CASES[case]
    data = proto.encode(_type_of(case), given).ok()
    assert typed(unpack(data)) == typed(expected)


@pytest.mark.parametrize("case", sorted(CASES))
def test_c_encoding_decodes_in_c(proto, case):
    """What the encoder writes, the decoder takes back unchanged."""
    type_ = _type_of(case)
    given, expected = CASES[case]
    data = proto.encode(type_, given).ok()
    shown = TYPES[type_][3](expected) if type_ != "result" else \
        dict(view(expected), truncated=expected.get("truncated", False))
    assert proto.decode(type_, data).ok() == shown


def test_typed_comparison_can_fail():
    assert typed({"ok": True}) != typed({"ok": 1})
    assert typed({"f": 1.0}) != typed({"f": 1})
    assert typed({"s": b"x"}) != typed({"s": "x"})


def test_strings_are_str_and_blobs_are_bin(proto):
    given, _ = CASES["module-artifact"]
    data = proto.encode("module-artifact", given).ok()
    raw = unpack(data)
    assert all(isinstance(raw[k], bytes) for k in ("manifest", "sig", "so"))
    given, _ = CASES["job"]
    raw = unpack(proto.encode("job", given).ok())
    assert all(isinstance(raw[k], str) for k in ("id", "kind", "target", "module"))


def test_job_defaults_are_left_out(proto):
    """timeout_ms 0 and stream false mean "absent": the encoder omits them."""
    given = dict(CASES["job-run-minimal"][0], timeout_ms=0, stream=False)
    assert set(unpack(proto.encode("job", given).ok())) == {
        "v", "id", "kind", "target", "issued_at", "not_after", "aud", "module"}


def test_non_run_job_drops_run_fields(proto):
    given = dict(CASES["job-ping"][0], module="kernel", args={"a": 1}, stream=True)
    assert typed(unpack(proto.encode("job", given).ok())) == typed(CASES["job-ping"][1])


REFUSE = [
    ("envelope", {"key": "ABCDEF0123456789"}), ("envelope", {"key": "abc"}),
    ("envelope", {"body": ""}), ("envelope", {"body": "00" * (256 * KIB + 1)}),
    ("job", {"id": ""}), ("job", {"id": "a b"}), ("job", {"id": "a/b"}),
    ("job", {"kind": "unknown"}), ("job", {"target": "host/Bad"}),
    ("job", {"target": ""}), ("job", {"target": "group/"}),
    ("job", {"module": ""}), ("job", {"module": "-x"}),
    ("job", {"module_sha256": "A" * 64}), ("job", {"args": nest(9)}),
    ("job", {"args": [1, 2]}), ("job", {"args": "a=1"}),
    ("job", {"timeout_ms": 2**32}),
    ("job", {"aud": ""}), ("job", {"aud": "muster"}), ("job", {"aud": "a/b/v1"}),
    ("job", {"id": "invalid-0123456789abcdef"}),
    ("job-cancel", {"cancel": ""}), ("job-cancel", {"cancel": "a/b"}),
    ("result", {"kind": "unknown"}), ("result", {"host": ""}),
    ("result", {"agent_version": ""}), ("result", {"data": nest(9)}),
    ("result", {"module": "-x"}), ("result", {"module_sha256": "abc"}),
    ("result", {"output": "o" * (64 * KIB + 1)}),
    ("event", {"pct": 101}), ("event", {"job": "a/b"}), ("event", {"host": ""}),
    ("event", {"text": "t" * (64 * KIB + 1)}),
    ("status", {"host": "Bad"}), ("status", {"groups": ["Bad"]}),
    ("status", {"version": ""}), ("status", {"channel": ""}),
    ("module-manifest", {"name": ""}), ("module-manifest", {"sha256": "x"}),
    ("module-manifest", {"size": 64 * KIB * KIB + 1}),
    ("module-manifest", {"version": "1 0"}),
    ("release-manifest", {"rollout": 101}), ("release-manifest", {"agent_sha256": ""}),
    ("release-manifest", {"runner_size": 64 * KIB * KIB + 1}),
    ("pointer", {"manifest": ""}), ("pointer", {"sig": "00" * (16 * KIB + 1)}),
    ("module-artifact", {"manifest": "00" * (16 * KIB + 1)}),
    ("selftest-request", {"nonce": "abc"}), ("selftest-request", {"host": ""}),
    ("selftest-request", {"version": ""}),
    ("selftest-verdict", {"nonce": ""}), ("selftest-verdict", {"host": "Web"}),
]


@pytest.mark.parametrize("case,over", REFUSE,
                         ids=[f"{c}-{sorted(o)[0]}-{i}" for i, (c, o) in enumerate(REFUSE)])
def test_encoder_refuses_what_decoder_refuses(proto, case, over):
    given = dict(CASES[case][0], **over)
    proto.encode(_type_of(case), given).refused("cannot encode")


@pytest.mark.parametrize("type_,key", [
    ("pointer", "manifest"), ("pointer", "sig"), ("module-artifact", "so"),
    ("binary-artifact", "data"), ("job", "id"), ("status", "host"),
    ("selftest-request", "nonce"),
])
def test_encoder_refuses_missing_field(proto, type_, key):
    given = dict(CASES[type_][0])
    del given[key]
    proto.encode(type_, given).refused("cannot encode")


BOUNDS = {
    "args-str": ("job", {"args": {"s": "x" * (64 * KIB + 1)}}),
    "args-key": ("job", {"args": {"k" * (64 * KIB + 1): 1}}),
    "data-str": ("result", {"data": {"s": "x" * (64 * KIB + 1)}}),
    "job-body": ("job", {"args": {f"k{i}": "x" * (60 * KIB) for i in range(5)}}),
}


@pytest.mark.parametrize("what", BOUNDS)
def test_encoder_bounds_what_is_inside_maps(proto, what):
    case, over = BOUNDS[what]
    given = dict(CASES[case][0], **over)
    reply = proto.encode(case, given)
    if reply.rc == 0:
        decoded = proto.decode(case, reply.value)
        assert decoded.rc == 0, f"C encoder wrote what C decoder refuses: {decoded.value}"
    reply.refused("cannot encode")


def test_encoder_takes_64_kib_strings(proto):
    given = dict(CASES["event"][0], text="t" * (64 * KIB))
    assert unpack(proto.encode("event", given).ok())["text"] == "t" * (64 * KIB)


def test_encoded_args_keep_types(proto):
    args = {"i": 2**40, "n": -7, "f": 0.5, "t": True, "z": None, "s": "\u00e9",
            "l": [1, "a", [False]], "m": {"x": {}}}
    given = dict(CASES["job-run-minimal"][0], args=args)
    assert typed(unpack(proto.encode("job", given).ok())["args"]) == typed(args)


def test_manifest_kind_is_written(proto):
    got = unpack(proto.encode("module-manifest", CASES["module-manifest"][0]).ok())
    assert got["kind"] == "module" and got["sha256"] == SHA_A
    got = unpack(proto.encode("release-manifest", CASES["release-manifest"][0]).ok())
    assert got["kind"] == "release"
