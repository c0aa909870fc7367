# SPDX-License-Identifier: Apache-2.0
"""docs/protocol.md's worked example is a job a real agent accepts
(issue 20): the body shown in the example's hex, byte for byte but for its
validity window, signed by the test operator's key and sent to a real
musterd named as the example's target, gets exactly one answer, and it is
the module's.

The documented window (2026-11-27 09:00 to 09:10 UTC) is fixed, so an agent
would refuse the body as expired (or not yet valid) on any other day: the
test moves the same ten-minute window to now - issued_at = now, not_after =
now + (documented not_after - issued_at) - and changes nothing else (the
id, target, operator, aud, module and args are the documented ones, in the
documented order; re-packing with the documented window gives the
documented bytes).  interop/test_docs.py checks the example's signature
under the example key."""
import pathlib
import re

import msgpack
import pytest

from muster_fixtures import (
    SOURCE_DIR, assert_no_sanitizer_reports, install_modules, new_job, now_ms, pack,
    run_job, send_job, start_fresh, target_topic, topic, watch_results,
)

DOC = SOURCE_DIR / "docs" / "protocol.md"


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


def documented_envelope() -> bytes:
    """The bytes of the worked example's hex block ("N-byte envelope")."""
    text = DOC.read_text()
    m = re.search(r"(\d+)-byte envelope.*?```\n(.*?)```", text, re.S)
    assert m, f"{DOC}: no worked example"
    data = bytearray()
    for line in m.group(2).splitlines():
        for tok in line.split():
            if not re.fullmatch(r"[0-9a-f]{2}", tok):
                break
            data.append(int(tok, 16))
    assert len(data) == int(m.group(1)), (len(data), m.group(1))
    return bytes(data)


def os_release_id() -> str:
    for p in (pathlib.Path("/etc/os-release"), pathlib.Path("/usr/lib/os-release")):
        if p.exists():
            m = re.search(r"^ID=\"?([^\"\n]*)", p.read_text(), re.M)
            return m.group(1) if m else ""
    return ""


def test_documented_job_is_accepted_and_answered_once(agents, mqtt, operator):
    doc_body = msgpack.unpackb(documented_envelope(), raw=False)["body"]
    body = msgpack.unpackb(doc_body, raw=False)
    assert pack(body) == doc_body		# re-packing keeps the bytes
    host = body["target"].removeprefix("host/")
    assert body["target"] == f"host/{host}" and body["kind"] == "run", body
    ttl = body["not_after"] - body["issued_at"]
    issued = now_ms()
    body["issued_at"], body["not_after"] = issued, issued + ttl

    # An agent named as the target, in the default fleet (aud muster/v1),
    # with the example's module and no policy (so any trusted operator).
    a = agents(host, groups=[])
    install_modules(a, body["module"])
    start_fresh(a)
    op = mqtt("op:alice")
    watch_results(op, body["id"])
    send_job(op, operator, pack(body), topic_=target_topic(body["target"]))

    r = op.expect(topic("results", body["id"], host), timeout=20).decode()
    want = "pass" if os_release_id() == body["args"]["id"] else "fail"
    assert (r["job"], r["host"], r["kind"], r["status"]) == \
        (body["id"], host, "run", want), f"{r['status']}: {r.get('reason')} ({r})"
    assert r["module"] == body["module"], f"{r}"
    assert f"accepted job {body['id']} " in a.log()
    # Exactly one answer: the agent handles its messages in order, so once a
    # ping sent afterwards is answered, any second result of the example
    # would have been published before it.
    ping = new_job("ping", body["target"], ttl_s=10)
    assert run_job(op, operator, ping, [host], timeout=20)[host]["status"] == "pass"
    assert op.get(0, topic=topic("results", body["id"], "+")) is None
