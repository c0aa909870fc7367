# SPDX-License-Identifier: Apache-2.0
"""Every message type built in Python and decoded by the C decoders
(`muster-proto decode TYPE`): valid ones accepted with the same fields,
invalid ones refused (design.md §3)."""
import pytest

from wirekit import (KIB, NONCE, NOW, SHA_A, TYPES, event, module_manifest, nest,
                     pack, raw_map, raw_with, release_manifest, result, selftest_request,
                     selftest_verdict, status, view)

ALL = sorted(TYPES)


@pytest.mark.parametrize("type_", ALL)
def test_valid_message_accepted(proto, type_):
    build, _, _, show = TYPES[type_]
    d = build()
    assert proto.decode(type_, pack(d)).ok() == show(d)


@pytest.mark.parametrize("type_,key", [(t, k) for t in ALL for k in TYPES[t][2]])
def test_missing_required_key_refused(proto, type_, key):
    d = TYPES[type_][0]()
    del d[key]
    proto.decode(type_, pack(d)).refused(f"missing key '{key}'")


@pytest.mark.parametrize("type_", ALL)
@pytest.mark.parametrize("v", [0, 2, "1"])
def test_wrong_version_refused(proto, type_, v):
    d = TYPES[type_][0]()
    d["v"] = v
    err = proto.decode(type_, pack(d)).refused()
    assert "'v'" in err or "protocol version" in err, err


@pytest.mark.parametrize("type_", ALL)
def test_unknown_keys_ignored(proto, type_):
    build, _, _, show = TYPES[type_]
    d = build()
    extra = dict(d, zz_future={"x": [1, 2]}, another=b"\x00", v2_field="x")
    assert proto.decode(type_, pack(extra)).ok() == show(d)


@pytest.mark.parametrize("type_", ALL)
def test_duplicate_key_refused(proto, type_):
    d = TYPES[type_][0]()
    key = TYPES[type_][2][-1]
    proto.decode(type_, raw_map(list(d.items()) + [(key, d[key])])).refused("twice")


@pytest.mark.parametrize("type_", ALL)
def test_trailing_byte_refused(proto, type_):
    proto.decode(type_, pack(TYPES[type_][0]()) + b"\xc0").refused("trailing")


@pytest.mark.parametrize("type_", ALL)
def test_truncated_refused(proto, type_):
    data = pack(TYPES[type_][0]())
    for n in (0, 1, len(data) // 2, len(data) - 1):
        proto.decode(type_, data[:n]).refused()


@pytest.mark.parametrize("type_", ALL)
def test_ext_refused(proto, type_):
    d = TYPES[type_][0]()
    proto.decode(type_, raw_with(d, "x", b"\xd4\x01\x00")).refused("ext")


@pytest.mark.parametrize("type_", ALL)
def test_array_instead_of_map_refused(proto, type_):
    proto.decode(type_, pack(list(TYPES[type_][0]().values()))).refused("not a map")


# ---- result --------------------------------------------------------------------

def test_minimal_result_accepted(proto):
    d = {k: result()[k] for k in TYPES["result"][2]}
    got = proto.decode("result", pack(d)).ok()
    assert got == dict(view(d), truncated=False)


@pytest.mark.parametrize("status_", ["pass", "fail", "error", "timeout", "crashed",
                                     "cancelled", "rejected", "interrupted"])
def test_result_statuses_accepted(proto, status_):
    d = dict(result(), status=status_)
    assert proto.decode("result", pack(d)).ok()["status"] == status_


@pytest.mark.parametrize("kind", ["run", "ping", "version", "cancel", "update"])
def test_result_kinds_accepted(proto, kind):
    assert proto.decode("result", pack(dict(result(), kind=kind))).ok()["kind"] == kind


def test_result_for_unreadable_job_is_rejected_kind_unknown(proto):
    d = dict(result(), kind="unknown", status="rejected")
    assert proto.decode("result", pack(d)).ok()["kind"] == "unknown"
    proto.decode("result", pack(dict(d, status="pass"))).refused("unknown")


@pytest.mark.parametrize("key,value", [
    ("status", "ok"), ("status", "PASS"), ("kind", "exec"), ("job", "a/b"),
    ("host", "Web-1"), ("host", "web_1/x"), ("agent_version", "1 0"),
    ("agent_version", "v" * 65), ("module_version", ""), ("module", "-x"),
    ("module_sha256", "A" * 64), ("exit_code", 2**31), ("exit_code", -2**31 - 1),
    ("signal", "9"), ("signal", 1.0), ("truncated", 1), ("data", [1]),
    ("data", nest(9)),
    ("data", {1: 2}), ("reason", b"why"), ("output", 3), ("started_at", -1),
    ("finished_at", "now"),
])
def test_bad_result_field_refused(proto, key, value):
    proto.decode("result", pack(dict(result(), **{key: value}))).refused(f"'{key}'")


@pytest.mark.parametrize("key", ["reason", "summary", "output"])
def test_result_text_limits(proto, key):
    ok = dict(result(), **{key: "y" * (64 * KIB)})
    assert proto.decode("result", pack(ok)).ok()[key] == "y" * (64 * KIB)
    proto.decode("result", pack(dict(ok, **{key: "y" * (64 * KIB + 1)}))).refused()


def test_result_int32_extremes_accepted(proto):
    d = dict(result(), exit_code=2**31 - 1, signal=-2**31)
    got = proto.decode("result", pack(d)).ok()
    assert (got["exit_code"], got["signal"]) == (2**31 - 1, -2**31)


def test_result_version_data_accepted(proto):
    data = {"version": "0.1.0", "runner_version": "0.1.0", "abi": 1, "channel": "stable"}
    d = dict(result(), kind="version", status="pass", data=data)
    assert proto.decode("result", pack(d)).ok()["data"] == data


# ---- event ----------------------------------------------------------------------

@pytest.mark.parametrize("ev", ["accepted", "started", "output", "progress"])
def test_event_kinds_accepted(proto, ev):
    assert proto.decode("event", pack(dict(event(), event=ev))).ok()["event"] == ev


@pytest.mark.parametrize("pct", [0, 100])
def test_event_pct_bounds_accepted(proto, pct):
    assert proto.decode("event", pack(dict(event(), pct=pct))).ok()["pct"] == pct


def test_event_without_optionals_accepted(proto):
    d = event()
    del d["text"], d["pct"]
    assert proto.decode("event", pack(d)).ok() == view(d)


@pytest.mark.parametrize("key,value", [("pct", 101), ("pct", -1), ("pct", 50.0),
                                       ("event", "done"), ("seq", -1), ("at", "x"),
                                       ("text", b"t"), ("job", ""), ("host", "")])
def test_bad_event_field_refused(proto, key, value):
    proto.decode("event", pack(dict(event(), **{key: value}))).refused(f"'{key}'")


# ---- status ---------------------------------------------------------------------

def test_online_status_without_reason_accepted(proto):
    d = dict(status(), state="online", groups=[])
    del d["reason"]
    assert proto.decode("status", pack(d)).ok() == view(d)


def test_status_32_groups_accepted(proto):
    groups = [f"g{i}" for i in range(32)]
    got = proto.decode("status", pack(dict(status(), groups=groups))).ok()
    assert got["groups"] == groups


@pytest.mark.parametrize("key,value", [
    ("state", "away"), ("state", True), ("groups", [f"g{i}" for i in range(33)]),
    ("groups", ["Web"]), ("groups", ["ok", ""]), ("groups", [1]), ("groups", "web"),
    ("groups", ["a" * 64]), ("groups", ["a\x00b"]), ("cert_der", b""),
    ("cert_der", "not bin"), ("cert_der", bytes(16 * KIB + 1)), ("version", ""),
    ("channel", "Stable"), ("host", "a" * 64),
])
def test_bad_status_field_refused(proto, key, value):
    proto.decode("status", pack(dict(status(), **{key: value}))).refused(f"'{key}'")


# ---- manifests ------------------------------------------------------------------

@pytest.mark.parametrize("key,value", [
    ("kind", "release"), ("kind", "Module"), ("name", "Kernel"),
    ("version", "1.0 beta"), ("version", "v" * 65), ("abi", -1), ("abi", 2**32),
    ("sha256", "a" * 63), ("sha256", "A" * 64), ("size", 64 * KIB * KIB + 1),
    ("published_at", "2024"),
])
def test_bad_module_manifest_field_refused(proto, key, value):
    d = dict(module_manifest(), **{key: value})
    proto.decode("module-manifest", pack(d)).refused(f"'{key}'")


def test_module_manifest_bounds_accepted(proto):
    d = dict(module_manifest(), size=64 * KIB * KIB, abi=2**32 - 1,
             version="1.0+git~1_x-y.Z")
    assert proto.decode("module-manifest", pack(d)).ok() == view(d)


@pytest.mark.parametrize("rollout", [0, 100])
def test_release_rollout_bounds_accepted(proto, rollout):
    d = dict(release_manifest(), rollout=rollout)
    assert proto.decode("release-manifest", pack(d)).ok()["rollout"] == rollout


@pytest.mark.parametrize("key,value", [
    ("kind", "module"), ("rollout", 101), ("rollout", -1), ("channel", "a/b"),
    ("agent_sha256", SHA_A.upper()), ("runner_sha256", ""),
    ("agent_size", 64 * KIB * KIB + 1), ("runner_size", "1"), ("version", ""),
])
def test_bad_release_manifest_field_refused(proto, key, value):
    d = dict(release_manifest(), **{key: value})
    proto.decode("release-manifest", pack(d)).refused(f"'{key}'")


def test_module_manifest_is_not_a_release_manifest(proto):
    proto.decode("release-manifest", pack(module_manifest())).refused("'kind'")
    proto.decode("module-manifest", pack(release_manifest())).refused("'kind'")


# ---- pointers and artifacts -------------------------------------------------------

@pytest.mark.parametrize("type_", ["pointer", "module-artifact"])
@pytest.mark.parametrize("key,value", [("manifest", b""), ("sig", b""),
                                       ("manifest", b"x" * (16 * KIB + 1)),
                                       ("sig", b"x" * (16 * KIB + 1)),
                                       ("manifest", "text"), ("sig", None)])
def test_bad_signed_fields_refused(proto, type_, key, value):
    d = dict(TYPES[type_][0](), **{key: value})
    proto.decode(type_, pack(d)).refused()


@pytest.mark.parametrize("type_", ["pointer", "module-artifact"])
def test_signed_fields_at_16_kib_accepted(proto, type_):
    d = dict(TYPES[type_][0](), manifest=b"m" * (16 * KIB), sig=b"s" * (16 * KIB))
    got = proto.decode(type_, pack(d)).ok()
    assert got["manifest"] == (b"m" * (16 * KIB)).hex()


def test_module_artifact_so_must_be_bin(proto):
    proto.decode("module-artifact", pack(dict(TYPES["module-artifact"][0](),
                                              so="elf"))).refused("'so'")


def test_binary_artifact_over_64_mib_refused(proto):
    d = {"v": 1, "data": bytes(64 * KIB * KIB + 1)}
    proto.decode("binary-artifact", pack(d)).refused("'data'")


def test_empty_binary_artifact_accepted(proto):
    assert proto.decode("binary-artifact", pack({"v": 1, "data": b""})).ok() == {"data": ""}


def test_binary_artifact_data_as_str_refused(proto):
    proto.decode("binary-artifact", pack({"v": 1, "data": "abc"})).refused("'data'")


# ---- self-test handshake ----------------------------------------------------------

@pytest.mark.parametrize("nonce", ["0" * 16, "f" * 128, NONCE])
def test_nonce_bounds_accepted(proto, nonce):
    for type_, build in (("selftest-request", selftest_request),
                         ("selftest-verdict", selftest_verdict)):
        assert proto.decode(type_, pack(dict(build(), nonce=nonce))).ok()["nonce"] == nonce


@pytest.mark.parametrize("nonce", ["0" * 15, "f" * 129, "A" * 16, "g" * 16, "", 12345,
                                   bytes(16)])
def test_bad_nonce_refused(proto, nonce):
    for type_, build in (("selftest-request", selftest_request),
                         ("selftest-verdict", selftest_verdict)):
        proto.decode(type_, pack(dict(build(), nonce=nonce))).refused("'nonce'")


@pytest.mark.parametrize("key,value", [("ok", 1), ("ok", "true"), ("reason", 0),
                                       ("host", "Web")])
def test_bad_verdict_field_refused(proto, key, value):
    d = dict(selftest_verdict(), **{key: value})
    proto.decode("selftest-verdict", pack(d)).refused(f"'{key}'")


def test_good_verdict_without_reason_accepted(proto):
    d = dict(selftest_verdict(), ok=True)
    del d["reason"]
    assert proto.decode("selftest-verdict", pack(d)).ok() == view(d)


@pytest.mark.parametrize("key,value", [("version", "1.0/x"), ("host", ""),
                                       ("version", 1)])
def test_bad_selftest_request_field_refused(proto, key, value):
    d = dict(selftest_request(), **{key: value})
    proto.decode("selftest-request", pack(d)).refused(f"'{key}'")


# ---- the envelope on its own --------------------------------------------------------

def test_envelope_fields_shown_exactly(proto):
    body = b"\x81\xa1v\x01"
    d = {"v": 1, "key": "fedcba9876543210", "sig": bytes(range(64, 128)), "body": body}
    got = proto.decode("envelope", pack(d)).ok()
    assert got == {"key": "fedcba9876543210", "sig": bytes(range(64, 128)).hex(),
                   "body": "81a17601"}


def test_times_are_not_swapped(proto):
    got = proto.decode("status", pack(dict(status(), started_at=NOW, at=NOW + 9))).ok()
    assert (got["started_at"], got["at"]) == (NOW, NOW + 9)


# ---- agent envelope ----------------------------------------------------------

@pytest.mark.parametrize("key,value", [
    ("cert", SHA_A.upper()), ("cert", SHA_A[:63]), ("cert", SHA_A + "0"), ("cert", 1),
    ("sig", b""), ("sig", bytes(513)), ("sig", "x"), ("body", b""), ("body", "x"),
])
def test_bad_agent_envelope_field_refused(proto, key, value):
    d = dict(TYPES["agent-envelope"][0](), **{key: value})
    proto.decode("agent-envelope", pack(d)).refused(f"'{key}'")


@pytest.mark.parametrize("n", [1, 64, 72, 512])
def test_agent_envelope_sig_sizes_accepted(proto, n):
    d = dict(TYPES["agent-envelope"][0](), sig=bytes(n))
    assert proto.decode("agent-envelope", pack(d)).ok()["sig"] == "00" * n


def test_agent_envelope_body_over_4_mib_refused(proto):
    d = dict(TYPES["agent-envelope"][0](), body=bytes(4 * 1024 * KIB + 1))
    proto.decode("agent-envelope", pack(d)).refused("'body'")
