# SPDX-License-Identifier: Apache-2.0
"""Envelopes signed by the C side (`muster-proto sign-job`, envelope_sign)
must verify with Python's cryptography under the key id the spec defines."""
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature

from wirekit import NOW, Operator, job, job_view, pack, typed, unpack

JOBS = {
    "run": job("run", operator="carol", args={"n": 1, "l": ["x"]}, timeout_ms=9,
               stream=True),
    "ping": job("ping", target="all"),
    "version": job("version", target="group/db"),
    "cancel": job("cancel", cancel="job-0"),
    "update": job("update", not_after=NOW + 1),
}


def _given(d):
    return {k: v for k, v in d.items() if k != "v"}


def _open(operator, data):
    """Check an envelope the Python way; return its decoded body."""
    env = unpack(data)
    assert set(env) == {"v", "key", "sig", "body"}
    assert typed(env["v"]) == typed(1)
    assert env["key"] == hashlib.sha256(operator.raw_pub).digest()[:8].hex()
    assert isinstance(env["sig"], bytes) and len(env["sig"]) == 64
    assert isinstance(env["body"], bytes)
    operator.key.public_key().verify(env["sig"], env["body"])  # raises if bad
    return env


@pytest.mark.parametrize("kind", JOBS)
def test_c_signature_verifies_in_python(proto, keyfile, operator, kind):
    env = _open(operator, proto.sign_job(keyfile, _given(JOBS[kind])).ok())
    assert typed(unpack(env["body"])) == typed(JOBS[kind])


@pytest.mark.parametrize("kind", JOBS)
def test_c_signature_is_the_ed25519_signature(proto, keyfile, operator, kind):
    """Ed25519 is deterministic: both sides must produce the same bytes."""
    env = unpack(proto.sign_job(keyfile, _given(JOBS[kind])).ok())
    assert env["sig"] == operator.sign(env["body"])


@pytest.mark.parametrize("kind", JOBS)
def test_c_signed_job_verifies_in_c(proto, keyfile, keydir, kind):
    data = proto.sign_job(keyfile, _given(JOBS[kind])).ok()
    assert proto.verify_job(keydir, data).ok() == job_view(JOBS[kind])


def test_python_detects_tampering_of_c_envelope(proto, keyfile, operator):
    env = unpack(proto.sign_job(keyfile, _given(JOBS["run"])).ok())
    body = bytearray(env["body"])
    body[-1] ^= 1
    with pytest.raises(InvalidSignature):
        operator.key.public_key().verify(env["sig"], bytes(body))


def test_other_key_does_not_verify_c_signature(proto, keyfile):
    other = Operator("bob")
    env = unpack(proto.sign_job(keyfile, _given(JOBS["ping"])).ok())
    assert env["key"] != other.keyid
    with pytest.raises(InvalidSignature):
        other.key.public_key().verify(env["sig"], env["body"])


def test_c_envelope_decodes_in_c(proto, keyfile, operator):
    data = proto.sign_job(keyfile, _given(JOBS["ping"])).ok()
    env = unpack(data)
    assert proto.decode("envelope", data).ok() == {
        "key": operator.keyid, "sig": env["sig"].hex(), "body": env["body"].hex()}


def test_sign_job_refuses_invalid_job(proto, keyfile):
    proto.sign_job(keyfile, _given(job("run", module="Bad"))).refused("job:",
                                                                       "cannot encode")


def test_sign_job_needs_a_private_key(proto, tmp_path, operator):
    pub = operator.write_pub(tmp_path)
    p = proto.run(["sign-job", str(pub)], b"{}", tool_errors_fail=False)
    assert p.returncode == 2 and b"private" in p.stdout


def test_two_signings_sign_the_same_body(proto, keyfile):
    a = proto.sign_job(keyfile, _given(JOBS["run"])).ok()
    b = proto.sign_job(keyfile, _given(JOBS["run"])).ok()
    assert a == b


def test_python_signed_c_encoded_body_verifies_in_c(proto, keydir, operator):
    """Mixed: C encodes the body, Python signs and wraps it."""
    body = proto.encode("job", _given(JOBS["cancel"])).ok()
    env = pack({"v": 1, "key": operator.keyid, "sig": operator.sign(body), "body": body})
    assert proto.verify_job(keydir, env).ok() == job_view(JOBS["cancel"])
