# SPDX-License-Identifier: Apache-2.0
"""selftest.echo: the self-update handshake's module."""


def test_echo(run):
    r = run("selftest.echo", nonce="0123456789abcdef0123")
    assert r.status == "pass", r
    assert r.data == {"nonce": "0123456789abcdef0123"}
    assert r["summary"] == "nonce 0123456789abcdef0123"


def test_missing_nonce_is_error(run):
    r = run("selftest.echo")
    assert r.status == "error"
    assert "nonce" in r["reason"]


def test_nonce_not_a_string_is_error(run):
    assert run("selftest.echo", nonce=12345).status == "error"


def test_too_long_is_error(run):
    assert run("selftest.echo", nonce="a" * 257).status == "error"
