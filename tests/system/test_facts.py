# SPDX-License-Identifier: Apache-2.0
"""Facts and fact filters (design.md §3) with a real broker and real
musterd: the retained, host-signed facts on R/hosts/<host>/facts (built-in
and custom from facts_dir, a bad file left out and reported, SIGHUP
republishing), a forged facts message refused by the ACL or by the
signature check, and filtered jobs: a matching host answers, a
non-matching one is silent and does not run a re-delivery after its facts
changed, a malformed filter is rejected with its reason.
"""
import json
import os
import platform
import signal
import time
from pathlib import Path

import pytest

from muster_fixtures import (
    ForgedMessage, host_sign, new_job, now_ms, open_agent_message, run_job,
    send_job, topic, collect_results,
)


def facts_topic(host: str) -> str:
    return topic("hosts", host, "facts")


def write_facts(d: Path, name: str, text: str) -> None:
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, d / name)


def start_with_facts(agents, name: str, files: dict[str, str], fifo: str = ""):
    a = agents(name)
    d = a.dir / "facts.d"
    for fn, text in files.items():
        write_facts(d, fn, text)
    if fifo:	# read by root: it must not hang the agent
        os.mkfifo(d / fifo)
    a.conf["agent"]["facts_dir"] = str(d)
    a.write_conf()
    return a.start(), d


def get_facts(client, host: str, pred=lambda b: True, timeout: float = 20) -> dict:
    """The next facts body of host (checked: host-signed, CN = host) that
    satisfies pred."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no facts of {host} as wanted"
        m = client.get(timeout=left, topic=facts_topic(host))
        if m is None:
            continue
        body = m.decode()
        if pred(body):
            return body


def os_release() -> dict[str, str]:
    for p in ("/etc/os-release", "/usr/lib/os-release"):
        if Path(p).exists():
            out = {}
            for line in Path(p).read_text().splitlines():
                if "=" in line:
                    k, v = line.split("=", 1)
                    out[k] = v.strip().strip('"\'')
            return out
    return {}


def test_facts_are_retained_signed_and_gathered(agents, mqtt):
    a, _ = start_with_facts(agents, "h1", {
        "rack.json": json.dumps({"rack": "b7", "slots": 3, "db": True,
                                 "roles": ["web", "cache"]}),
        "broken.json": '{"rack": ',
        "nested.json": json.dumps({"ok": "x", "deep": {"a": 1}}),
        "float.json": json.dumps({"load": 1.5}),
        "notes.txt": json.dumps({"ignored": "yes"}),
    }, fifo="pipe.json")
    # A client connecting afterwards gets the retained copy.
    op = mqtt("op:alice")
    op.subscribe(facts_topic("h1"))
    m = op.get(timeout=20, topic=facts_topic("h1"))
    assert m is not None and m.retain, "facts are not retained"
    body = m.decode()		# host-signed by h1 (raises ForgedMessage if not)
    assert body["host"] == "h1" and body["v"] == 1
    assert abs(body["at"] - now_ms()) < 120_000
    f = body["facts"]
    osr = os_release()
    assert f.get("os.id") == osr.get("ID")
    assert f.get("os.version_id") == osr.get("VERSION_ID")
    assert f.get("os.pretty") == osr.get("PRETTY_NAME")
    assert f["kernel"] == platform.release()
    assert f["arch"] == platform.machine()
    assert f["cpus"] == os.cpu_count()
    assert isinstance(f["mem_mb"], int) and f["mem_mb"] > 0
    assert f["agent.channel"] == "stable"
    assert isinstance(f["agent.version"], str) and f["agent.version"]
    assert f["groups"] == ["web"]
    assert f["custom.rack"] == "b7" and f["custom.slots"] == 3
    assert f["custom.db"] is True and f["custom.roles"] == ["web", "cache"]
    # Bad files are left out whole (nested.json's good key too), each
    # reported with its path and reason; other files are not read.
    for k in f:
        assert k not in ("custom.ok", "custom.deep", "custom.load", "custom.ignored")
    log = a.log()
    assert "broken.json: line 1:" in log and "(left out)" in log
    assert "nested.json: custom.deep: not a string, integer, bool or list" in log
    assert "float.json: custom.load: not a string" in log
    assert "pipe.json: not a regular file of at most 65536 bytes (left out)" in log


def test_files_over_the_total_bound_are_left_out(agents, mqtt):
    """Each file is within its own bound, three together are over the
    message's 128 KiB: the one that does not fit is left out, the rest
    published."""
    files = {f"{p}.json": json.dumps({f"{p}{i}": "x" * 1000 for i in range(60)})
             for p in "abc"}
    assert all(len(t) < 64 * 1024 for t in files.values())
    a, _ = start_with_facts(agents, "h1", files)
    op = mqtt("op:alice")
    op.subscribe(facts_topic("h1"))
    f = get_facts(op, "h1")["facts"]
    assert "custom.a0" in f and "custom.b59" in f and f["os.id"]
    assert not any(k.startswith("custom.c") for k in f)
    assert "c.json: the facts would be over 131072 bytes in all (left out)" in a.log()


def test_sighup_republishes_changed_facts(agents, mqtt):
    op = mqtt("op:alice")
    op.subscribe(facts_topic("h1"))
    a, d = start_with_facts(agents, "h1", {"rack.json": '{"rack": "b7"}'})
    first = get_facts(op, "h1")
    assert first["facts"]["custom.rack"] == "b7"
    write_facts(d, "rack.json", '{"rack": "c1"}')
    os.kill(a.pid, signal.SIGHUP)
    again = get_facts(op, "h1", lambda b: b["at"] > first["at"])
    assert again["facts"]["custom.rack"] == "c1"
    # A SIGHUP without a change publishes them again (design.md §3).
    os.kill(a.pid, signal.SIGHUP)
    third = get_facts(op, "h1", lambda b: b["at"] > again["at"])
    assert third["facts"] == again["facts"]


def test_facts_are_published_again_at_each_connect(agents, mqtt, broker):
    a, _ = start_with_facts(agents, "h1", {"rack.json": '{"rack": "b7"}'})
    op = mqtt("op:alice")
    op.subscribe(facts_topic("h1"))
    first = get_facts(op, "h1")
    # The retained copy goes (as if the broker had lost it) ...
    mqtt("h1").publish(facts_topic("h1"), b"", retain=True)
    probe = mqtt("op:alice")
    probe.subscribe(facts_topic("h1"))
    assert probe.get(timeout=1, topic=facts_topic("h1")) is None
    # ... and the agent's next session brings it back, unasked.
    broker.restart(down=0.5)
    back = mqtt("op:alice")
    back.subscribe(facts_topic("h1"))
    again = get_facts(back, "h1", timeout=40)
    assert again["facts"] == first["facts"]


def test_forged_facts_are_refused(agents, mqtt, pki):
    op = mqtt("op:alice")
    op.subscribe(facts_topic("h1"), facts_topic("h2"))
    a, _ = start_with_facts(agents, "h1", {"rack.json": '{"rack": "b7"}'})
    real = get_facts(op, "h1")
    # h2 may not write h1's facts topic: the broker drops it (the retained
    # copy stays h1's own).  Its own topic is the control: once h2's
    # message there arrived, the other would have arrived before it.
    h2 = mqtt("h2")
    forged = {"v": 1, "host": "h1", "at": now_ms(), "facts": {"custom.rack": "x"}}
    h2.publish(facts_topic("h1"), host_sign(pki.sign_key("h2"), pki.sign_cert("h2"), forged),
               retain=True)
    h2.publish(facts_topic("h2"), host_sign(pki.sign_key("h2"), pki.sign_cert("h2"), forged),
               retain=True)
    ctl = op.get(timeout=10, topic=facts_topic("h2"))
    assert ctl is not None, "h2's control message did not arrive"
    assert op.get(timeout=0.5, topic=facts_topic("h1")) is None
    # On its own topic h2's message names h1: the check refuses it.
    with pytest.raises(ForgedMessage):
        ctl.decode()
    # Signed by h2 but put where h1's would be (as a broker could): refused.
    with pytest.raises(ForgedMessage):
        open_agent_message(pki, facts_topic("h1"),
                           host_sign(pki.sign_key("h2"), pki.sign_cert("h2"), forged))
    late = mqtt("op:alice")
    late.subscribe(facts_topic("h1"))
    assert get_facts(late, "h1")["facts"] == real["facts"]
    h2.publish(facts_topic("h2"), b"", retain=True)


def test_filtered_jobs(agents, mqtt, operator):
    op = mqtt("op:alice")
    op.subscribe(facts_topic("h1"), facts_topic("h2"))
    h1, _ = start_with_facts(agents, "h1", {"rack.json": '{"rack": "b7-04"}'})
    h2, d2 = start_with_facts(agents, "h2", {"rack.json": '{"rack": "c1-01"}'})
    get_facts(op, "h1")
    f2 = get_facts(op, "h2")
    flt = [["custom.rack", "~", "b7*"], ["cpus", ">=", 1], ["groups", "has", "web"]]

    # Only the matching host answers; the other publishes nothing.
    job = new_job("ping", "all", filter=flt)
    got = run_job(op, operator, job, ["h1", "h2"], timeout=10)
    assert set(got) == {"h1"} and got["h1"]["status"] == "pass"
    assert collect_results(op, job["id"], [], timeout=0, settle=1.5) == {}
    assert "its filter does not match this host's facts" in h2.log()

    # h2 becomes a b7 host; a re-delivery of the same id still does not
    # run there (its id is in the seen-set), nor again on h1.
    write_facts(d2, "rack.json", '{"rack": "b7-09"}')
    os.kill(h2.pid, signal.SIGHUP)
    get_facts(op, "h2", lambda b: b["at"] > f2["at"] and
              b["facts"].get("custom.rack") == "b7-09")
    send_job(op, operator, job)
    assert collect_results(op, job["id"], [], timeout=0, settle=2) == {}
    # A new id reaches both.
    job2 = new_job("ping", "all", filter=flt)
    got = run_job(op, operator, job2, ["h1", "h2"], timeout=10)
    assert {h: r["status"] for h, r in got.items()} == {"h1": "pass", "h2": "pass"}

    # A malformed filter: rejected by each host, with the reason.
    bad = new_job("ping", "all", filter=[["custom.rack", "=", "b7"]])
    got = run_job(op, operator, bad, ["h1", "h2"], timeout=10)
    assert set(got) == {"h1", "h2"}
    for r in got.values():
        assert r["status"] == "rejected"
        assert r["reason"] == ("malformed filter: filter predicate 1: unknown "
                               "operator '=' (want == != < <= > >= ~ has)")
