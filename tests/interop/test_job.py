# SPDX-License-Identifier: Apache-2.0
"""Signed jobs built and signed in Python: the C side (envelope_decode,
envelope_verify, job_decode via `muster-proto verify-job`) must accept
exactly the valid ones (design.md §3)."""
import time

import pytest

from wirekit import (KIB, NOW, SHA_A, Raw, jsonify, job, job_view, nest, pack,
                     raw_map, raw_with)

# ---- valid jobs ----------------------------------------------------------------

VALID = {
    "run-minimal": job("run"),
    "run-full": job("run", operator="alice@ops", module_sha256=SHA_A,
                    args={"path": "/etc", "depth": 2, "neg": -5, "f": 0.25,
                          "on": True, "none": None, "list": ["a", 1, [2]],
                          "blob": b"\x00\x01\xfe", "sub": {"x": {"y": "z"}}},
                    timeout_ms=30_000, stream=True),
    "run-empty-args": job("run", args={}, stream=False),
    "ping": job("ping"),
    "ping-operator": job("ping", operator=""),
    "version-group": job("version", target="group/web.eu_1-a"),
    "cancel-all": job("cancel", target="all", cancel="Job.Old_1-x"),
    "update": job("update", target="group/canary"),
    "zero-times": job("ping", issued_at=0, not_after=0),
    "max-times": job("ping", issued_at=2**63 - 1, not_after=2**63 - 1),
}


@pytest.mark.parametrize("name", VALID)
def test_valid_job_accepted(verify, name):
    d = VALID[name]
    assert verify(pack(d)).ok() == job_view(d)


def test_valid_job_fields_are_not_defaults(verify):
    """Guard against a job_view that would match anything."""
    got = verify(pack(VALID["run-full"])).ok()
    assert got["args"]["blob"] == "0001fe"
    assert got["stream"] is True and got["timeout_ms"] == 30_000
    assert got["module_sha256"] == SHA_A and got["operator"] == "alice@ops"


def test_job_decoder_alone_agrees(proto):
    """`decode job` on the bare body sees the same job as verify-job."""
    d = VALID["run-full"]
    assert proto.decode("job", pack(d)).ok() == job_view(d)


@pytest.mark.parametrize("raw", [
    b"\xcf" + (5).to_bytes(8, "big"),   # uint64 holding a small value
    b"\xd3" + (5).to_bytes(8, "big"),   # int64 holding a positive value
    b"\xcd\x00\x05",                    # uint16
], ids=["uint64", "int64", "uint16"])
def test_non_minimal_integer_encodings_accepted(verify, raw):
    got = verify(raw_with(job(), "issued_at", raw)).ok()
    assert got["issued_at"] == 5


def test_non_minimal_string_encoding_accepted(verify):
    got = verify(raw_with(job(), "kind", b"\xd9\x04ping")).ok()
    assert got["kind"] == "ping"


def test_unknown_keys_ignored(verify):
    d = job("run", zzz={"anything": [1, 2, {"deep": True}]}, extra=b"\x01",
            version_hint="2.0")
    got = verify(pack(d)).ok()
    assert got == job_view(job("run"))


def test_unknown_envelope_keys_ignored(verify):
    assert verify(pack(job()), note="hello", n=3).ok() == job_view(job())


# ---- refused: version, missing and mistyped keys --------------------------------

@pytest.mark.parametrize("v", [0, 2, 255, -1, "1", 1.0, True, None, b"\x01"])
def test_wrong_version_refused(verify, v):
    err = verify(pack(job(v=v))).refused("job:")
    assert "'v'" in err or "protocol version" in err, err


@pytest.mark.parametrize("v", [0, 2, "1"])
def test_wrong_envelope_version_refused(verify, v):
    err = verify(pack(job()), v=v).refused("envelope:")
    assert "'v'" in err or "protocol version" in err, err


REQUIRED = [("ping", k) for k in ("v", "id", "kind", "target", "issued_at",
                                  "not_after")]
REQUIRED += [("run", "module"), ("cancel", "cancel")]


@pytest.mark.parametrize("kind,key", REQUIRED)
def test_missing_required_key_refused(verify, kind, key):
    d = job(kind)
    del d[key]
    verify(pack(d)).refused("job:", f"missing key '{key}'")


@pytest.mark.parametrize("key", ["v", "key", "sig", "body"])
def test_missing_envelope_key_refused(proto, keydir, operator, key):
    body = pack(job())
    env = {"v": 1, "key": operator.keyid, "sig": operator.sign(body), "body": body}
    del env[key]
    proto.verify_job(keydir, pack(env)).refused("envelope:", f"'{key}'")


MISTYPED = [
    ("id", 12), ("id", b"job-1"), ("kind", 1), ("kind", b"ping"),
    ("target", b"all"), ("target", ["all"]), ("issued_at", "1700000000000"),
    ("issued_at", -1), ("issued_at", 1.5), ("not_after", True),
    ("not_after", None), ("operator", 7), ("operator", b"alice"),
    ("module", b"kernel"), ("module_sha256", 0), ("module_sha256", bytes(32)),
    ("args", ["a"]), ("args", "a=1"), ("args", None), ("timeout_ms", "5"),
    ("timeout_ms", -5), ("timeout_ms", 2**32), ("stream", 1), ("stream", "yes"),
]


@pytest.mark.parametrize("key,value", MISTYPED, ids=[f"{k}-{v!r}" for k, v in MISTYPED])
def test_mistyped_key_refused(verify, key, value):
    d = job("run")
    d[key] = value
    verify(pack(d)).refused("job:", f"'{key}'")


@pytest.mark.parametrize("value", [7, b"job-0", ""])
def test_mistyped_cancel_refused(verify, value):
    verify(pack(job("cancel", cancel=value))).refused("job:", "'cancel'")


@pytest.mark.parametrize("kind", ["", "Run", "RUN", "unknown", "exec", "ping\x00"])
def test_unknown_kind_refused(verify, kind):
    verify(pack(job(kind=kind))).refused("job:", "'kind'")


# ---- refused: ids, names, targets -------------------------------------------------

@pytest.mark.parametrize("jid", ["", "a b", "a/b", "a+b", "a#b", "x" * 65, "j\u00fcb",
                                 "a\x00b", "a:b", "job\n"])
def test_bad_job_id_refused(verify, jid):
    verify(pack(job(id=jid))).refused("job:", "'id'")


@pytest.mark.parametrize("jid", ["x" * 64, "A", "0", "a.b_c-D", "-", "."])
def test_good_job_ids_accepted(verify, jid):
    assert verify(pack(job(id=jid))).ok()["id"] == jid


@pytest.mark.parametrize("jid", ["", "x" * 65, "a/b"])
def test_bad_cancel_id_refused(verify, jid):
    verify(pack(job("cancel", cancel=jid))).refused("job:", "'cancel'")


@pytest.mark.parametrize("name", ["", "Kernel", "-kernel", ".kernel", "_kernel",
                                  "ker nel", "ker/nel", "ker+nel", "a" * 64,
                                  "k\u00e9rnel", "ker\x00nel"])
def test_bad_module_name_refused(verify, name):
    verify(pack(job("run", module=name))).refused("job:", "'module'")


@pytest.mark.parametrize("name", ["a" * 63, "0", "a.b_c-d", "9lives"])
def test_good_module_names_accepted(verify, name):
    assert verify(pack(job("run", module=name))).ok()["module"] == name


@pytest.mark.parametrize("sha", ["A" * 64, "a" * 63, "a" * 65, "g" * 64, ""])
def test_bad_module_sha256_refused(verify, sha):
    verify(pack(job("run", module_sha256=sha))).refused("job:", "'module_sha256'")


@pytest.mark.parametrize("target", ["", "ALL", "all/", "host", "host/", "hosts/web-1",
                                    "host/Web-1", "host/-web", "host/a/b", "host/+",
                                    "host/#", "group/", "group/a b", "grp/web",
                                    "host/" + "a" * 64, "/all", "all\x00"])
def test_bad_target_refused(verify, target):
    verify(pack(job(target=target))).refused("job:", "'target'")


@pytest.mark.parametrize("target", ["all", "host/" + "a" * 63, "group/0", "host/a.b-c_d"])
def test_good_targets_accepted(verify, target):
    assert verify(pack(job(target=target))).ok()["target"] == target


# ---- refused: bounds ------------------------------------------------------------------

def test_string_of_64_kib_accepted(verify):
    d = job("run", args={"s": "x" * (64 * KIB)})
    assert verify(pack(d)).ok()["args"]["s"] == "x" * (64 * KIB)


@pytest.mark.parametrize("key", ["operator", "id", "kind", "target", "module",
                                 "args", "unknown"])
def test_string_over_64_kib_refused(verify, key):
    long = "x" * (64 * KIB + 1)
    d = job("run")
    d[key] = {"s": long} if key == "args" else long
    verify(pack(d)).refused("job:", "over the 65536 byte limit")


def test_envelope_key_over_64_kib_refused(verify):
    verify(pack(job()), key="a" * (64 * KIB + 1)).refused("envelope:")


def test_body_over_256_kib_refused(proto, keydir, operator):
    body = pack(job("run", args={f"k{i}": "x" * (60 * KIB) for i in range(5)}))
    assert len(body) > 256 * KIB
    proto.verify_job(keydir, operator.envelope(body)).refused("envelope:", "'body'")


@pytest.mark.parametrize("array", [False, True], ids=["maps", "arrays"])
def test_args_depth_8_accepted(verify, array):
    d = job("run", args=nest(8, array=array))
    assert verify(pack(d)).ok()["args"] == nest(8, array=array)


@pytest.mark.parametrize("array", [False, True], ids=["maps", "arrays"])
@pytest.mark.parametrize("depth", [9, 10, 30])
def test_args_deeper_than_8_refused(verify, depth, array):
    verify(pack(job("run", args=nest(depth, array=array)))).refused("job:")


def test_args_depth_9_refused_for_depth(verify):
    """Eight nested maps around an empty ninth: refused by the args check,
    not by the message-wide nesting bound."""
    verify(pack(job("run", args=nest(8, leaf={})))).refused("job:", "'args'", "deeper")


def test_args_non_string_key_refused(verify):
    verify(pack(job("run", args={1: "a"}))).refused("job:", "'args'")


def test_top_level_non_string_key_refused(verify):
    body = raw_map(list(job().items()) + [(1, "x")])
    verify(body).refused("job:", "not a string")


@pytest.mark.parametrize("body", [pack([1, 2]), pack("job"), pack(None), pack(7)],
                         ids=["array", "str", "nil", "int"])
def test_body_not_a_map_refused(verify, body):
    verify(body).refused("job:")


# ---- refused: duplicate keys, trailing bytes, truncation, ext ----------------------

@pytest.mark.parametrize("key,second", [("id", "job-1"), ("id", "job-2"), ("v", 1),
                                        ("kind", "run"), ("target", "all"),
                                        ("module", "evil")])
def test_duplicate_keys_refused(verify, key, second):
    d = job("run")
    body = raw_map(list(d.items()) + [(key, second)])
    verify(body).refused("job:", "twice")


@pytest.mark.parametrize("key", ["key", "sig", "body"])
def test_duplicate_envelope_keys_refused(proto, keydir, operator, key):
    body = pack(job())
    env = {"v": 1, "key": operator.keyid, "sig": operator.sign(body), "body": body}
    raw = raw_map(list(env.items()) + [(key, env[key])])
    proto.verify_job(keydir, raw).refused("envelope:", "twice")


def test_duplicate_keys_in_args_refused(proto, keydir, operator):
    args = b"\x82" + pack("cmd") + pack("ls") + pack("cmd") + pack("rm -rf /")
    body = raw_with(job("run"), "args", args)
    reply = proto.run(["verify-job", str(keydir), "-"], operator.envelope(body),
                      tool_errors_fail=False)
    assert reply.returncode == 1, f"C accepted the body (exit {reply.returncode}: {reply.stdout!r})"


@pytest.mark.parametrize("tail", [b"\xc0", b"\x00", pack(job())])
def test_trailing_bytes_in_body_refused(verify, tail):
    verify(pack(job()) + tail).refused("job:", "trailing")


def test_trailing_bytes_after_envelope_refused(proto, keydir, operator):
    env = operator.envelope(pack(job()))
    proto.verify_job(keydir, env + b"\xc0").refused("envelope:", "trailing")


def test_every_truncated_body_refused(proto):
    body = pack(VALID["run-full"])
    for n in range(len(body)):
        reply = proto.decode("job", body[:n])
        assert reply.rc == 1, f"prefix of {n}/{len(body)} bytes accepted"


def test_every_truncated_envelope_refused(proto, keydir, operator):
    env = operator.envelope(pack(job()))
    for n in range(0, len(env), 3):
        reply = proto.verify_job(keydir, env[:n])
        assert reply.rc == 1 and reply.value["error"].startswith("envelope:"), n


def test_truncated_body_inside_signed_envelope_refused(verify):
    body = pack(job("run"))
    verify(body[:-1]).refused("job:", "truncated")


EXT = {
    "fixext1": b"\xd4\x01\x00",
    "fixext16": b"\xd8\x01" + bytes(16),
    "ext8": b"\xc7\x03\x01abc",
    "ext16": b"\xc8\x00\x03\x01abc",
    "ext32": b"\xc9\x00\x00\x00\x03\x01abc",
    "timestamp": b"\xd6\xff" + (1_700_000_000).to_bytes(4, "big"),
}


@pytest.mark.parametrize("ext", EXT)
def test_ext_in_args_refused(verify, ext):
    body = raw_with(job("run"), "args", raw_map([("when", Raw(EXT[ext]))]))
    verify(body).refused("job:", "ext")


@pytest.mark.parametrize("key", ["issued_at", "id", "unknown"])
def test_ext_as_top_level_value_refused(verify, key):
    verify(raw_with(job(), key, EXT["timestamp"])).refused("job:", "ext")


def test_ext_in_envelope_refused(proto, keydir, operator):
    body = pack(job())
    env = raw_with({"v": 1, "key": operator.keyid, "sig": operator.sign(body),
                    "body": body}, "note", EXT["fixext1"])
    proto.verify_job(keydir, env).refused("envelope:", "ext")


def test_invalid_msgpack_byte_refused(verify):
    verify(raw_with(job(), "issued_at", b"\xc1")).refused("job:", "0xc1")


# ---- declared sizes that the input does not back ------------------------------------

HUGE = {
    "map32": b"\xdf\xff\xff\xff\xff\x01",
    "array32": b"\xdd\xff\xff\xff\xff\x01",
    "map16": b"\xde\xff\xff\x01",
    "bin32": b"\xc6\xff\xff\xff\xff\x01",
    "str32": b"\xdb\xff\xff\xff\xff\x01",
}


@pytest.mark.parametrize("what", HUGE)
def test_huge_declared_size_refused_fast(proto, keydir, operator, what):
    cases = {
        "message": HUGE[what],
        "body": HUGE[what],
        "args": raw_with(job("run"), "args", raw_map([("x", Raw(HUGE[what]))])),
    }
    for where, data in cases.items():
        t0 = time.monotonic()
        if where == "message":
            reply = proto.decode("envelope", data)
        else:
            reply = proto.verify_job(keydir, operator.envelope(data))
        assert time.monotonic() - t0 < 5, where
        err = reply.refused()
        assert "truncated" in err or "over the" in err, (where, err)


def test_map_of_2_pow_32_minus_1_entries_is_6_bytes(proto):
    data = b"\xdf\xff\xff\xff\xff\x00"
    assert len(data) == 6
    for type_ in ("envelope", "job", "result", "status", "binary-artifact"):
        proto.decode(type_, data).refused("truncated")


# ---- signatures and key ids -----------------------------------------------------------

@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("bit", [0, 7])
def test_flipped_bit_in_body_refused(proto, keydir, operator, where, bit):
    body = pack(job("run", args={"a": "b"}))
    sig = operator.sign(body)
    i = {"first": 0, "middle": len(body) // 2, "last": len(body) - 1}[where]
    bad = bytearray(body)
    bad[i] ^= 1 << bit
    env = pack({"v": 1, "key": operator.keyid, "sig": sig, "body": bytes(bad)})
    proto.verify_job(keydir, env).refused("signature:", operator.keyid)


@pytest.mark.parametrize("i", [0, 1, 31, 32, 62, 63])
def test_flipped_bit_in_sig_refused(proto, keydir, operator, i):
    body = pack(job())
    sig = bytearray(operator.sign(body))
    sig[i] ^= 0x80
    env = pack({"v": 1, "key": operator.keyid, "sig": bytes(sig), "body": body})
    proto.verify_job(keydir, env).refused("signature:")


def test_zero_sig_refused(verify):
    verify(pack(job()), sig=bytes(64)).refused("signature:")


def test_sig_from_another_key_refused(verify, stranger):
    body = pack(job())
    verify(body, sig=stranger.sign(body)).refused("signature:")


def test_unknown_key_id_refused(proto, keydir, stranger):
    reply = proto.verify_job(keydir, stranger.envelope(pack(job())))
    reply.refused("untrusted:", stranger.keyid, "not a trusted operator key")


def test_trusted_after_adding_key(proto, keydir, stranger):
    env = stranger.envelope(pack(job()))
    proto.verify_job(keydir, env).refused("untrusted:")
    stranger.write_pub(keydir)
    assert proto.verify_job(keydir, env).ok()["id"] == "job-1"


def test_empty_keyring_trusts_nobody(proto, tmp_path, operator):
    empty = tmp_path / "empty"
    empty.mkdir()
    proto.verify_job(empty, operator.envelope(pack(job()))).refused("untrusted:")


@pytest.mark.parametrize("key", ["", "0123456789abcde", "0123456789abcdef0",
                                 "0123456789ABCDEF", "0123456789abcdeg",
                                 "0123456789abcde\x00", " 123456789abcdef"])
def test_bad_key_id_format_refused(verify, key):
    verify(pack(job()), key=key).refused("envelope:", "'key'")


def test_uppercase_of_trusted_key_id_refused(verify, operator):
    verify(pack(job()), key=operator.keyid.upper()).refused("envelope:", "'key'")


@pytest.mark.parametrize("key", [12, None, b"0123456789abcdef"])
def test_mistyped_key_id_refused(verify, key):
    verify(pack(job()), key=key).refused("envelope:", "'key'")


@pytest.mark.parametrize("n", [0, 32, 63, 65, 128])
def test_wrong_sig_length_refused(verify, n):
    verify(pack(job()), sig=bytes(n)).refused("envelope:", "'sig'")


@pytest.mark.parametrize("sig", ["00" * 64, None, 0])
def test_mistyped_sig_refused(verify, sig):
    verify(pack(job()), sig=sig).refused("envelope:", "'sig'")


def test_body_as_str_refused(proto, keydir, operator):
    body = pack(job())
    env = pack({"v": 1, "key": operator.keyid, "sig": operator.sign(body),
                "body": body.decode("latin-1")})
    proto.verify_job(keydir, env).refused("envelope:", "'body'")


def test_empty_body_refused(verify):
    verify(b"").refused()


def test_key_id_is_sha256_prefix_of_raw_key(proto, keydir, operator):
    """The C side finds the key under the id Python computed from the spec."""
    import hashlib
    assert operator.keyid == hashlib.sha256(operator.raw_pub).hexdigest()[:16]
    assert proto.verify_job(keydir, operator.envelope(pack(job()))).ok()


def test_decoded_args_keep_types(verify):
    args = {"i": 2**40, "n": -2**40, "f": 1e-300, "t": True, "s": "\u00e9\u4e2d",
            "b": b"", "l": [], "m": {}}
    got = verify(pack(job("run", args=args))).ok()["args"]
    assert got == jsonify(args)
    assert type(got["f"]) is float and type(got["i"]) is int


def test_issued_at_is_not_mistaken_for_now(verify):
    got = verify(pack(job(issued_at=NOW + 1, not_after=NOW + 2))).ok()
    assert (got["issued_at"], got["not_after"]) == (NOW + 1, NOW + 2)
