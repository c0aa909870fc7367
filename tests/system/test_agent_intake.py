# SPDX-License-Identifier: Apache-2.0
"""The acceptance rules of design.md §3 / docs/protocol.md against the real
musterd: every refusal is answered with exactly one `rejected` result whose
reason names the rule (texts from agent/parent/intake.c), and nothing runs.

"Nothing ran" is shown three ways: the refused jobs are `run` jobs of a module
that is installed (so an accepted one would have run it), the log has neither
"accepted job <id>" nor "running module", and a control job sent after the
refused one is answered - the agent handles its messages in order, so by then
any result of the refused job would have been published too.

Also: rate limiting of rejected results, replays across restarts, jobs queued
by the broker while the agent was down, and the journal after a crash.
"""
import hashlib
import re
import time
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

from muster_fixtures import (
    TEST_MODULES_DIR, assert_no_sanitizer_reports, install_modules, journaled_runs,
    log_count, new_job, now_ms, pack, run_job, runner_pid, send_job, start_fresh,
    target_topic, topic, wait_until, watch_results,
)

REJECT_BURST = 20		# agent/agent.h
MODULE = "os.release"		# installed on every agent here


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


def fast(**extra):
    """Agent config overrides: quick reconnects."""
    conf = {"broker": {"retry_min": "100ms", "retry_max": "1s", "reconnect_splay": "0"}}
    for sec, kv in extra.items():
        conf.setdefault(sec, {}).update(kv)
    return conf


def start_h1(agents, **kw):
    a = agents("h1", extra=fast(**kw.pop("extra", {})), **kw)
    install_modules(a, MODULE)
    return start_fresh(a)


def run_body(target="host/h1", **kw):
    """A run job that passes if it runs: os.release with no condition."""
    return new_job("run", target, module=MODULE, **kw)


def invalid_id(payload: bytes) -> str:
    """Where a refusal goes when not even an id can be read."""
    return "invalid-" + hashlib.sha256(payload).hexdigest()[:16]


def control(op, operator, host="h1"):
    """A ping after the messages under test; returns once it is answered."""
    body = new_job("ping", f"host/{host}", ttl_s=10)	# under any max_ttl here
    res = run_job(op, operator, body, [host], timeout=10)
    assert res.get(host, {}).get("status") == "pass", res
    return body["id"]


def results_for(op, job_id, host="h1"):
    filt = topic("results", job_id, host)
    out = []
    while True:
        m = op.get(0, topic=filt)
        if m is None:
            return out
        out.append(m.decode())


def expect_refusal(op, operator, agent, job_id, reason, kind=None,
                   timeout=10):
    """Exactly one rejected result for job_id, with reason matching the
    regular expression `reason`, and nothing run."""
    filt = topic("results", job_id, agent.name)
    m = op.expect(filt, timeout=timeout)
    r = m.decode()
    assert r["status"] == "rejected", r
    assert r["job"] == job_id and r["host"] == agent.name, r
    assert re.fullmatch(reason, r.get("reason", "")), r
    if kind is not None:
        assert r["kind"] == kind, r
    for k in ("summary", "output", "data", "exit_code", "signal",
              "module_version", "module_sha256"):
        assert k not in r, (k, r)
    control(op, operator, agent.name)
    assert results_for(op, job_id, agent.name) == []
    log = agent.log()
    assert f"accepted job {job_id} " not in log
    assert "running module" not in log
    assert re.search(rf"rejected job \S+: {reason}$", log, re.M), log[-2000:]
    return r


def flip(data: bytes, index: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[index] ^= 1 << bit
    return bytes(b)


# ---- one case per rule ---------------------------------------------------


@dataclass
class Case:
    # make(operator, mallory) -> (topic, payload, job id or None, kind)
    make: Callable
    reason: str			# a regular expression for the whole reason
    extra: Optional[dict] = None	# agent config overrides
    # The signature did not verify, or the verified body has no readable
    # id: the refusal goes to invalid-<hash of the envelope>, never to an
    # id read from the body (design.md §3).
    unverified: bool = False


def _signed(body, key, topic_=None):
    return (topic_ or target_topic(body["target"]), key.envelope(body),
            body["id"], body["kind"])


def _no_sig(op_key, _m):
    body = pack(run_body())
    env = pack({"v": 1, "key": op_key.key_id, "body": body})
    return target_topic("host/h1"), env, None, "unknown"


def _garbage(_o, _m):
    return target_topic("host/h1"), b"\xc1 this is not msgpack", None, "unknown"


def _not_a_map(_o, _m):
    return target_topic("host/h1"), pack([1, "key", b"sig", b"body"]), None, \
        "unknown"


def _truncated(op_key, _m):
    env = op_key.envelope(run_body())
    return target_topic("host/h1"), env[:-5], None, "unknown"


def _body_not_msgpack(op_key, _m):
    body = b"\xc1\xc1\xc1 signed, but not a job"
    env = pack({"v": 1, "key": op_key.key_id, "sig": op_key.sign(body),
                "body": body})
    return target_topic("host/h1"), env, None, "unknown"


def _flipped_body(op_key, _m):
    body = run_body(note="abc")		# unknown keys are ignored
    raw = pack(body)
    assert raw.endswith(b"abc")
    env = pack({"v": 1, "key": op_key.key_id, "sig": op_key.sign(raw),
                "body": flip(raw, len(raw) - 1)})	# "abb"
    return target_topic("host/h1"), env, body["id"], "run"


def _flipped_sig(op_key, _m):
    body = run_body()
    raw = pack(body)
    env = pack({"v": 1, "key": op_key.key_id,
                "sig": flip(op_key.sign(raw), 17, 3), "body": raw})
    return target_topic("host/h1"), env, body["id"], "run"


def _sig_from_other_body(op_key, _m):
    body, other = run_body(), run_body()
    env = pack({"v": 1, "key": op_key.key_id, "sig": op_key.sign(pack(other)),
                "body": pack(body)})
    return target_topic("host/h1"), env, body["id"], "run"


def _oversize(op_key, _m):
    # 5 strings of 60 KiB: a valid-looking body over the 256 KiB bound.
    body = run_body(**{f"pad{i}": "x" * (60 * 1024) for i in range(5)})
    raw = pack(body)
    assert len(raw) > 256 * 1024
    env = pack({"v": 1, "key": op_key.key_id, "sig": op_key.sign(raw),
                "body": raw})
    return target_topic("host/h1"), env, None, "unknown"


def _fixstr(b: bytes) -> bytes:
    assert len(b) < 32
    return bytes([0xa0 | len(b)]) + b


FORGED = b"x\n<0>musterd: forged\xff"	# a log line, and not UTF-8


def _kind_with_newline(op_key, _m):
    """A signed body whose kind (echoed in the reason) holds a newline, a
    syslog prefix and invalid UTF-8."""
    body = new_job("KINDPLACEHOLDER", "host/h1")
    raw = pack(body).replace(_fixstr(b"KINDPLACEHOLDER"), _fixstr(FORGED[:15]))
    env = pack({"v": 1, "key": op_key.key_id, "sig": op_key.sign(raw),
                "body": raw})
    return target_topic("host/h1"), env, body["id"], "unknown"


def _duplicate_key_with_newline(op_key, _m):
    """An unsigned envelope (anyone who may publish a job can send it) with
    a key given twice; the decoder quotes the key."""
    env = (b"\x85" + _fixstr(b"v") + b"\x01" + _fixstr(b"key") +
           _fixstr(op_key.key_id.encode()) + _fixstr(FORGED) + b"\x01" +
           _fixstr(FORGED) + b"\x02" + _fixstr(b"body") + b"\xc4\x01\x00")
    return target_topic("host/h1"), env, None, "unknown"


CASES = {
    # the envelope
    "no-signature": Case(_no_sig, r"malformed job envelope: .*'sig'.*"),
    "garbage": Case(_garbage, r"malformed job envelope: .+"),
    "not-a-map": Case(_not_a_map, r"malformed job envelope: .*not a map.*"),
    "truncated": Case(_truncated, r"malformed job envelope: .+"),
    "body-over-256k": Case(_oversize, r"malformed job envelope: .*'body'.*"),
    # the key and the signature
    "unknown-key": Case(lambda o, m: _signed(run_body(), m),
                        r"unknown operator key [0-9a-f]{16}", unverified=True),
    "flipped-body-bit": Case(_flipped_body, r"bad signature", unverified=True),
    "flipped-sig-bit": Case(_flipped_sig, r"bad signature", unverified=True),
    "sig-of-other-body": Case(_sig_from_other_body, r"bad signature", unverified=True),
    # the body
    "body-not-msgpack": Case(_body_not_msgpack, r"malformed job body: .+", unverified=True),
    "unknown-kind": Case(
        lambda o, m: _signed(new_job("reboot", "host/h1"), o)[:3] + ("unknown",),
        r"malformed job body: key 'kind' has an unknown value 'reboot'", unverified=True),
    "run-without-module": Case(
        lambda o, m: _signed(new_job("run", "host/h1"), o),
        r"malformed job body: .*'module'.*", unverified=True),
    # quoted input is made harmless
    "control-chars-in-kind": Case(
        _kind_with_newline,
        r"malformed job body: key 'kind' has an unknown value 'x\?<0>[ -~]*'", unverified=True),
    "control-chars-in-envelope-key": Case(
        _duplicate_key_with_newline,
        r"malformed job envelope: message has the key 'x\?<0>musterd: forged\?' "
        r"twice"),
    # (update jobs are accepted since issue 11: tests/system/test_update.py)
    # the target
    "host-target-on-own-topic": Case(
        lambda o, m: _signed(run_body("host/h2"), o, target_topic("host/h1")),
        r"job target does not match the topic it came on"),
    "group-target-on-other-group": Case(
        lambda o, m: _signed(run_body("group/db"), o, target_topic("group/web")),
        r"job target does not match the topic it came on"),
    "all-target-on-host-topic": Case(
        lambda o, m: _signed(run_body("all"), o, target_topic("host/h1")),
        r"job target does not match the topic it came on"),
    "host-target-on-all-topic": Case(
        lambda o, m: _signed(run_body("host/h1"), o, target_topic("all")),
        r"job target does not match the topic it came on"),
    # the time window
    "expired": Case(
        lambda o, m: _signed(run_body(issued_at=now_ms() - 7200_000,
                                      ttl_s=3600), o),
        r"job has expired"),
    "issued-in-the-future": Case(
        lambda o, m: _signed(run_body(issued_at=now_ms() + 600_000,
                                      ttl_s=60), o),
        r"job is issued in the future \(check the clocks\)"),
    "not-after-before-issued-at": Case(
        lambda o, m: _signed(run_body(not_after=now_ms() + 1000,
                                      issued_at=now_ms() + 30_000), o),
        r"job lifetime is longer than this host's max_ttl"),
    "ttl-over-max-ttl": Case(
        lambda o, m: _signed(run_body(ttl_s=60), o),
        r"job lifetime is longer than this host's max_ttl",
        extra={"limits": {"max_ttl": "30s"}}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_refusal(name, agents, op_client, operator, untrusted_keys):
    case = CASES[name]
    a = start_h1(agents, extra=case.extra or {})
    mallory = untrusted_keys.operator("mallory")
    topic_, payload, body_id, kind = case.make(operator, mallory)
    job_id = body_id or invalid_id(payload)
    if case.unverified:
        job_id, kind = invalid_id(payload), "unknown"
        if body_id:
            watch_results(op_client, body_id)
    watch_results(op_client, job_id)
    op_client.publish(topic_, payload)
    r = expect_refusal(op_client, operator, a, job_id, case.reason, kind)
    if case.unverified and body_id:
        # Nothing under the id the unverified body claims.
        assert results_for(op_client, body_id) == []
    if name == "unknown-key":
        assert mallory.key_id in r["reason"]
    assert re.fullmatch(r"[ -~]*", r["reason"]), r
    assert not re.search(r"^<0>", a.log(), re.M), a.log()


def test_max_ttl_boundary_is_inclusive(agents, op_client, operator):
    """The ttl rule compares with the configured max_ttl: exactly max_ttl
    passes (and runs), a millisecond more is refused."""
    a = start_h1(agents, extra={"limits": {"max_ttl": "30s"}})
    t = now_ms()
    ok = run_body(issued_at=t, not_after=t + 30_000)
    res = run_job(op_client, operator, ok, ["h1"], timeout=10)
    assert res["h1"]["status"] == "pass", res
    bad = run_body(issued_at=t, not_after=t + 30_001)
    watch_results(op_client, bad["id"])
    send_job(op_client, operator, bad)
    expect_refusal_after_run(op_client, operator, a, bad["id"],
                             "job lifetime is longer than this host's max_ttl")
    assert log_count(a, "running module") == 1


def test_clock_skew_allowance(agents, op_client, operator):
    """issued_at up to 60 s ahead and not_after up to 60 s behind are
    accepted (design.md §3: clocks differ)."""
    start_h1(agents)
    ahead = lambda t: new_job("ping", "host/h1", issued_at=t + 50_000,  # noqa
                              ttl_s=60)
    behind = lambda t: new_job("ping", "host/h1", issued_at=t - 100_000,  # noqa
                               not_after=t - 50_000)
    for make in (ahead, behind):
        body = make(now_ms())
        res = run_job(op_client, operator, body, ["h1"], timeout=10)
        assert res["h1"]["status"] == "pass", (body, res)


def test_stale_group_subscription_is_refused(agents, op_client, operator):
    """An agent taken out of a group keeps the old subscription in its
    persistent broker session (clean start off).  The ACL still lets it read
    the group here (the inventory was not changed), so the job arrives on a
    topic that equals its target - and the host check refuses it.  (Should
    the session learn to drop subscriptions it no longer wants, the job
    would not arrive at all: also fine, as long as nothing runs.)"""
    a = agents("h1", groups=["web", "db"], extra=fast())
    install_modules(a, MODULE)
    start_fresh(a).stop()
    a.conf["agent"]["groups"] = "web"
    a.write_conf()
    start_fresh(a)
    assert "session resumed" in a.log()
    body = run_body("group/db")
    watch_results(op_client, body["id"])
    send_job(op_client, operator, body)
    control(op_client, operator)
    got = results_for(op_client, body["id"])
    if got or body["id"] in a.log():
        assert [(r["status"], r["reason"]) for r in got] == [
            ("rejected", "job target does not match this host")], got
        assert re.search(rf"rejected job {body['id']}: job target does not "
                         "match this host$", a.log(), re.M)
    assert "running module" not in a.log()


# ---- replays ---------------------------------------------------------------


DUP = "duplicate delivery of an accepted id"


def test_duplicate_delivery_gets_no_new_answer(agents, op_client, operator):
    """design.md §3 (contract changed from "rejected: replayed job id"): an id
    already in the seen-set is a duplicate delivery or a replay; it is
    logged and counted, and the job keeps its one answer."""
    a = start_h1(agents)
    body = run_body()
    env = operator.envelope(body)
    watch_results(op_client, body["id"])
    op_client.publish(target_topic("host/h1"), env)
    first = op_client.expect(topic("results", body["id"], "h1"),
                             timeout=10).decode()
    assert first["status"] == "pass", first
    assert log_count(a, "running module") == 1
    # The same envelope again, then a new job with a used id.
    op_client.publish(target_topic("host/h1"), env)
    send_job(op_client, operator, run_body(id=body["id"]))
    control(op_client, operator)
    assert results_for(op_client, body["id"]) == []
    assert log_count(a, "running module") == 1
    assert log_count(a, f"accepted job {body['id']} ") == 1
    assert log_count(a, f"job {body['id']}: {DUP}") == 2
    assert "(2 duplicates so far)" in a.log()


def test_duplicate_of_a_running_job_gets_no_answer(agents, op_client, operator):
    """The case chaos found (issue 10): a copy arriving while the job still
    runs must not be answered before (or besides) the job's real result."""
    a = agents("h1", extra=fast())
    install_modules(a, "hang", src=TEST_MODULES_DIR)
    start_fresh(a)
    body = new_job("run", "host/h1", module="hang", timeout_ms=2000)
    env = operator.envelope(body)
    watch_results(op_client, body["id"])
    op_client.publish(target_topic("host/h1"), env)
    wait_until_logged(a, f"job {body['id']}: running module")
    op_client.publish(target_topic("host/h1"), env)
    wait_until_logged(a, f"job {body['id']}: {DUP}")
    r = op_client.expect(topic("results", body["id"], "h1"), timeout=15).decode()
    assert r["status"] == "timeout", r
    control(op_client, operator)
    assert results_for(op_client, body["id"]) == []


def wait_until_logged(agent, text, timeout=10):
    deadline = time.monotonic() + timeout
    while log_count(agent, text) == 0:
        assert time.monotonic() < deadline, agent.log()[-2000:]
        time.sleep(0.05)


def test_duplicate_after_restart_gets_no_answer(agents, op_client, operator):
    a = start_h1(agents)
    ping = new_job("ping", "host/h1")
    run = run_body()
    envs = [operator.envelope(ping), operator.envelope(run)]
    first = {}
    for b, env in zip((ping, run), envs):
        watch_results(op_client, b["id"])
        op_client.publish(target_topic("host/h1"), env)
        r = op_client.expect(topic("results", b["id"], "h1"), timeout=10)
        first[b["id"]] = r.decode()
        assert first[b["id"]]["status"] == "pass"
    start_fresh(a)
    for b, env in zip((ping, run), envs):
        op_client.publish(target_topic("host/h1"), env)
    control(op_client, operator)
    for b in (ping, run):
        # No new answer.  (The stored result itself may come again, if its
        # PUBACK had not reached the agent before it stopped: design.md §3.)
        assert all(r == first[b["id"]] for r in results_for(op_client, b["id"]))
        assert log_count(a, f"job {b['id']}: {DUP}") == 1
    assert log_count(a, "running module") == 1


def test_kill9_restart_keeps_seen_set(agents, op_client, operator):
    """The seen-set is on disk before the job runs: a crash right after
    does not open the id again."""
    a = start_h1(agents)
    body = new_job("ping", "host/h1")
    env = operator.envelope(body)
    watch_results(op_client, body["id"])
    op_client.publish(target_topic("host/h1"), env)
    first = op_client.expect(topic("results", body["id"], "h1"), timeout=10)
    assert first.decode()["status"] == "pass"
    a.kill9()
    start_fresh(a)
    op_client.publish(target_topic("host/h1"), env)
    control(op_client, operator)
    # A kill -9 between the broker's PUBACK and the spool clean-up sends the
    # spooled result again after the restart: the same bytes (QoS 1 allows
    # a copy).  Nothing else may come.
    for m in op_client.collect(0.5, topic("results", body["id"], "h1")):
        assert m.payload == first.payload, m.decode()
    assert log_count(a, f"job {body['id']}: {DUP}") == 1


# ---- rate limit ------------------------------------------------------------


def test_rejections_are_rate_limited(agents, op_client, operator,
                                     untrusted_keys):
    a = start_h1(agents)
    mallory = untrusted_keys.operator("mallory")
    op_client.subscribe(topic("results", "+", "h1"))
    ids = []
    t0 = time.monotonic()
    for _ in range(50):
        env = mallory.envelope(run_body())
        ids.append(invalid_id(env))	# unverified: not the body's id
        op_client.publish(target_topic("host/h1"), env)
    sent_in = time.monotonic() - t0
    ping = new_job("ping", "host/h1")
    send_job(op_client, operator, ping)
    op_client.expect(topic("results", ping["id"], "h1"), timeout=10)
    got = [m.decode() for m in op_client.collect(0, topic("results", "+", "h1"))]
    assert all(r["status"] == "rejected" and r["job"] in ids for r in got), got
    assert len(got) <= REJECT_BURST, len(got)
    if sent_in < 5:			# all inside one 10 s window
        assert len(got) == REJECT_BURST, len(got)
        assert [r["job"] for r in got] == ids[:REJECT_BURST]
    # The log has every refusal; nothing ran.
    assert log_count(a, "rejected job ") == 50
    assert "running module" not in a.log()


# ---- jobs queued by the broker while the agent was down --------------------


def test_job_sent_while_down_runs_on_start(agents, op_client, operator):
    """Clean start off + session expiry: the broker keeps the agent's
    subscriptions and queues QoS 1 jobs while it is away.  One that is still
    valid runs when the agent comes back; one that expired meanwhile (valid
    when it was sent) is refused when it arrives."""
    a = start_h1(agents)
    a.stop()
    ok = run_body()
    # Valid for 1.5 s more when sent (not_after + 60 s skew > now).
    late = run_body(issued_at=now_ms() - 120_000,
                    not_after=now_ms() - 60_000 + 1500)
    for b in (ok, late):
        watch_results(op_client, b["id"])
        send_job(op_client, operator, b)
    time.sleep(max(0.0, (late["not_after"] + 60_000 - now_ms()) / 1000) + 0.2)
    start_fresh(a)
    r = op_client.expect(topic("results", ok["id"], "h1"), timeout=15).decode()
    assert r["status"] == "pass", r
    expect_refusal_after_run(op_client, operator, a, late["id"],
                             "job has expired")
    assert log_count(a, "running module") == 1


def expect_refusal_after_run(op, operator, agent, job_id, reason):
    r = op.expect(topic("results", job_id, agent.name), timeout=10).decode()
    assert (r["status"], r.get("reason")) == ("rejected", reason), r
    control(op, operator, agent.name)
    assert results_for(op, job_id, agent.name) == []
    assert f"accepted job {job_id} " not in agent.log()


def test_job_running_at_a_crash_is_reported_interrupted(agents, op_client,
                                                        operator):
    """kill -9 while a job runs: the journal makes the next start answer it
    once, `interrupted`; the broker's copy (if redelivered) is a replay."""
    a = agents("h1", extra=fast())
    install_modules(a, "hang", src=TEST_MODULES_DIR)
    start_fresh(a)
    body = new_job("run", "host/h1", module="hang", timeout_ms=60_000)
    watch_results(op_client, body["id"])
    send_job(op_client, operator, body)
    runner_pid(a, body["id"], timeout=10)
    a.kill9()
    start_fresh(a)
    r = op_client.expect(topic("results", body["id"], "h1"), timeout=15).decode()
    assert r["status"] == "interrupted", r
    assert r["reason"] == "the agent restarted while the job ran"
    control(op_client, operator)
    assert results_for(op_client, body["id"]) == []
    wait_until(lambda: journaled_runs(a) == {}, 5, what="the run's done mark")


def test_journal_of_an_older_version_is_answered(agents, op_client, operator):
    """A run left in state_dir/running/job-<id> by an older build (the
    journal before it moved into the seen-set) is answered `interrupted`
    once, and the file goes."""
    a = start_h1(agents)
    a.stop()
    body = new_job("run", "host/h1", module="hang", timeout_ms=60_000)
    running = a.state_dir / "running"
    running.mkdir(mode=0o700, exist_ok=True)
    (running / f"job-{body['id']}").write_bytes(pack(body))
    watch_results(op_client, body["id"])
    start_fresh(a)
    r = op_client.expect(topic("results", body["id"], "h1"), timeout=15).decode()
    assert (r["status"], r["module"]) == ("interrupted", "hang"), r
    wait_until(lambda: journaled_runs(a) == {}, 5, what="the run's done mark")
    assert not list(running.glob("job-*"))
    control(op_client, operator)
    assert results_for(op_client, body["id"]) == []
    # It was accepted, so the same job sent now is a replay.
    assert body["id"] in (a.state_dir / "seen").read_text()
