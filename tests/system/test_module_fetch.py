# SPDX-License-Identifier: Apache-2.0
"""Signed modules fetched over the broker (issue 8, design.md §3 "Modules and
releases on the broker", §8).

Everything real: a TLS mosquitto with the generated ACL, musterd and
muster-runner, OpenPGP signatures made with the publisher's gpg key from
scripts/gen-keys (and a second key no agent trusts).  The publisher side
here is a paho client with the publisher's certificate (pub:release)
publishing the retained artifact and pointer exactly as design.md §3 says;
`muster module publish` has its own tests.  The agents' modules_dir is
empty unless a test says otherwise: every module comes from the broker.
"""
import hashlib
import os
import re
import stat
import subprocess
import time

import pytest

from muster_fixtures import (
    MODULES_DIR, TEST_MODULES_DIR, assert_no_sanitizer_reports, collect_results, log_count,
    module_payloads, new_job, now_ms, pack, run_job, send_job, topic,
    unpack, wait_until, watch_results,
)

MODULE = "os.release"


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


@pytest.fixture
def op(mqtt):
    return mqtt("op:alice")


@pytest.fixture
def pub(mqtt):
    return mqtt("pub:release")


def so_bytes(name=MODULE, pad=0):
    """A shipped module; pad > 0 appends zero bytes: the loader ignores
    them, so it is another build (another sha256) of the same module."""
    return (MODULES_DIR / f"{name}.so").read_bytes() + b"\0" * pad


def publish(pub, keys, so, name=MODULE, version="1.0.0", abi=1,
            published_at=None, artifact=True, pointer=True):
    ptr, art, sha = module_payloads(keys, so, name, version, abi,
                                    published_at=published_at)
    if artifact:
        pub.publish(topic("modules", name, sha), art, retain=True)
    if pointer:
        pub.publish(topic("modules", name), ptr, retain=True)
    return sha


def start(agents, name, **extra):
    conf = {"fetch_timeout": "3s", "prefetch_delay": "0"}
    conf.update(extra)
    return agents(name, wake_port=0, extra={"modules": conf}).start()


def run(op, operator, host, timeout=20, **fields):
    fields.setdefault("module", MODULE)
    body = new_job("run", f"host/{host}", **fields)
    got = run_job(op, operator, body, [host], timeout=timeout)
    assert host in got, f"no result for {body['id']} from {host}"
    return got[host]


def fetches(agent, name=MODULE):
    return log_count(agent, f"module {name}: fetching build")


def cached(agent, sha):
    return agent.state_dir / "net" / "modcache" / f"{sha}.so"


def assert_nothing_stored(agent, sha):
    d = agent.state_dir / "net" / "modcache"
    assert not list(d.glob(f"{sha}*")), list(d.iterdir())


def assert_serves(op, operator, agent):
    body = new_job("ping", f"host/{agent.name}")
    got = run_job(op, operator, body, [agent.name], timeout=5)
    assert got[agent.name]["status"] == "pass"


# ---- the happy path ------------------------------------------------------------


def test_publish_then_run_on_two_hosts_then_cache_hit(agents, op, operator,
                                                      pub, keys):
    so = so_bytes()
    sha = publish(pub, keys, so)
    h1, h2 = start(agents, "h1"), start(agents, "h2")
    assert not (h1.modules_dir / f"{MODULE}.so").exists()
    for a in (h1, h2):
        r = run(op, operator, a.name)
        assert r["status"] == "pass", r
        assert r["module_sha256"] == sha
        assert fetches(a) == 1
        f = cached(a, sha)
        assert f.read_bytes() == so
        mode = stat.S_IMODE(f.stat().st_mode)
        assert mode & 0o222 == 0o200, oct(mode)	# only the owner writes
        assert stat.S_IMODE(f.parent.stat().st_mode) & 0o022 == 0
    # Second run on h1: from the cache, no broker fetch.
    r = run(op, operator, "h1")
    assert r["status"] == "pass" and r["module_sha256"] == sha
    assert fetches(h1) == 1
    # And after a restart the cache is still trusted (re-verified).
    h1.restart()
    r = run(op, operator, "h1")
    assert r["status"] == "pass" and fetches(h1) == 1


def test_new_version_is_prefetched_then_retire(agents, op, operator, pub, keys):
    sha1 = publish(pub, keys, so_bytes(), version="1.0.0")
    h1 = start(agents, "h1")
    assert run(op, operator, "h1")["module_sha256"] == sha1
    sha2 = publish(pub, keys, so_bytes(pad=64), version="1.0.1")
    # Prefetched without any job (prefetch_delay 0).
    wait_until(lambda: cached(h1, sha2).exists(), 10,
               what="the new version to be prefetched")
    assert fetches(h1) == 2
    r = run(op, operator, "h1")
    assert r["module_sha256"] == sha2 and r["status"] == "pass"
    assert fetches(h1) == 2		# the job used the prefetched build
    # A pinned job may still run the older signed build.
    r = run(op, operator, "h1", module_sha256=sha1)
    assert r["status"] == "pass" and r["module_sha256"] == sha1
    # Retire: a host with a cached build keeps running it; one without
    # answers that the module is not published.
    pub.publish(topic("modules", MODULE), b"", retain=True)
    wait_until(lambda: log_count(h1, f"module {MODULE}: retired") >= 1, 5,
               what="the agent to see the retirement")
    r = run(op, operator, "h1")
    assert r["status"] == "pass" and r["module_sha256"] == sha2
    h2 = start(agents, "h2")
    r = run(op, operator, "h2")
    assert r["status"] == "error", r
    assert "not published" in r["reason"], r
    assert fetches(h2) == 0


def test_twenty_concurrent_jobs_cause_one_fetch(agents, op, operator, pub, keys):
    sha = publish(pub, keys, so_bytes())
    h1 = agents("h1", wake_port=0, max_jobs=4,
                extra={"modules": {"fetch_timeout": "10s"}}).start()
    jobs = [new_job("run", "host/h1", module=MODULE) for _ in range(20)]
    for j in jobs:
        watch_results(op, j["id"])
    for j in jobs:
        send_job(op, operator, j)
    got = {}
    for j in jobs:
        got.update({j["id"]: r for r in
                    collect_results(op, j["id"], ["h1"], 20).values()})
    assert len(got) == 20
    assert all(r["status"] == "pass" and r["module_sha256"] == sha
               for r in got.values()), got
    assert fetches(h1) == 1


def test_local_module_and_preference(agents, op, operator, pub, keys):
    # A local file with no pointer still runs (trusted by owner and mode).
    h1 = start(agents, "h1")
    local = so_bytes(pad=8)
    h1.modules_dir.mkdir(parents=True, exist_ok=True)
    p = h1.modules_dir / f"{MODULE}.so"
    p.write_bytes(local)
    os.chmod(p, 0o644)
    local_sha = hashlib.sha256(local).hexdigest()
    assert run(op, operator, "h1")["module_sha256"] == local_sha
    # Once published, the signed build wins...
    sha = publish(pub, keys, so_bytes())
    wait_until(lambda: run(op, operator, "h1")["module_sha256"] == sha, 10,
               what="the signed build to win")
    h1.stop()
    # ...unless the host prefers its local folder.
    h1b = agents("h1", wake_port=0,
                 extra={"modules": {"prefer": "local"}}).start()
    assert run(op, operator, "h1")["module_sha256"] == local_sha
    assert h1b


# ---- refusals: each an error naming the cause, nothing stored -------------------


def refused(agents, op, operator, host="h1", **extra):
    a = start(agents, host, **extra)
    return a, run(op, operator, host)


def check_refusal(a, r, op, operator, sha, *words):
    assert r["status"] == "error", r
    for w in words:
        assert w in r["reason"], (w, r["reason"])
    if sha:
        assert_nothing_stored(a, sha)
    # Nothing was loaded: no runner ran for it.
    assert log_count(a, f"job {r['job']}: running module") == 0
    assert_serves(op, operator, a)


def test_unsigned_pointer_refused(agents, op, operator, pub, keys):
    so = so_bytes()
    _, art, sha = module_payloads(keys, so, MODULE, "1.0.0", 1)
    manifest = unpack(art)["manifest"]
    pub.publish(topic("modules", MODULE, sha), art, retain=True)
    pub.publish(topic("modules", MODULE),
                pack({"v": 1, "manifest": manifest, "sig": b"not a signature"}),
                retain=True)
    a, r = refused(agents, op, operator)
    check_refusal(a, r, op, operator, sha, "bad signature")


def test_unknown_signer_refused(agents, op, operator, pub, untrusted_keys):
    sha = publish(pub, untrusted_keys, so_bytes())
    a, r = refused(agents, op, operator)
    check_refusal(a, r, op, operator, sha, "not in keyring",
                  untrusted_keys.publisher_fpr)


def test_signer_in_keyring_but_not_listed_refused(agents, op, operator, pub,
                                                  untrusted_keys):
    # The key is known to the agent's gpg, but [trust] publishers does not
    # list its fingerprint: a good signature is still refused.
    sha = publish(pub, untrusted_keys, so_bytes())
    a = agents("h1", wake_port=0, extra={"modules": {"fetch_timeout": "3s"}})
    subprocess.run(["gpg", "--homedir", a.conf["trust"]["gnupg_home"], "--batch",
                    "--quiet", "--import", str(untrusted_keys.publisher_asc)],
                   check=True, capture_output=True)
    a.start()
    r = run(op, operator, "h1")
    check_refusal(a, r, op, operator, sha, "not a trusted publisher",
                  untrusted_keys.publisher_fpr)


def test_manifest_and_module_disagree(agents, op, operator, pub, keys):
    so = so_bytes()
    ptr, art, sha = module_payloads(keys, so, MODULE, "1.0.0", 1)
    a_ = unpack(art)
    evil = bytearray(so)
    evil[len(evil) // 2] ^= 0xff		# same size, other bytes
    a_["so"] = bytes(evil)
    pub.publish(topic("modules", MODULE, sha), pack(a_), retain=True)
    pub.publish(topic("modules", MODULE), ptr, retain=True)
    a, r = refused(agents, op, operator)
    check_refusal(a, r, op, operator, sha, "sha256 mismatch")


def test_truncated_module_refused(agents, op, operator, pub, keys):
    so = so_bytes()
    ptr, art, sha = module_payloads(keys, so, MODULE, "1.0.0", 1)
    a_ = unpack(art)
    a_["so"] = so[: len(so) // 2]
    pub.publish(topic("modules", MODULE, sha), pack(a_), retain=True)
    pub.publish(topic("modules", MODULE), ptr, retain=True)
    a, r = refused(agents, op, operator)
    check_refusal(a, r, op, operator, sha, "truncated")


def test_wrong_abi_refused(agents, op, operator, pub, keys):
    sha = publish(pub, keys, so_bytes(), abi=2)
    a, r = refused(agents, op, operator)
    check_refusal(a, r, op, operator, sha, "ABI 2")


def test_older_pointer_refused_as_rollback(agents, op, operator, pub, keys):
    t = now_ms()
    sha2 = publish(pub, keys, so_bytes(pad=16), version="2.0", published_at=t)
    # Nothing here waits for a fetch to time out, so the longer
    # fetch_timeout: in one CI rehearsal the first run came back without
    # module_sha256 (a failed fetch; its result was not kept, now it is
    # shown), likely the 3 s timeout on a loaded machine.
    a = start(agents, "h1", fetch_timeout="10s")
    r = run(op, operator, "h1")
    assert r.get("module_sha256") == sha2, r
    sha1 = publish(pub, keys, so_bytes(), version="1.0", published_at=t - 60000)
    wait_until(lambda: log_count(a, "refused as a rollback") >= 1 or
               run(op, operator, "h1")["status"] == "error", 10,
               what="the old pointer to be refused")
    r = run(op, operator, "h1")
    check_refusal(a, r, op, operator, sha1, "rollback")
    # The floor survives a restart.
    a.restart()
    r = run(op, operator, "h1")
    check_refusal(a, r, op, operator, sha1, "rollback")
    # A job pinning the older signed build may still run it.
    r = run(op, operator, "h1", module_sha256=sha1)
    assert r["status"] == "pass" and r["module_sha256"] == sha1, r


def test_over_size_limit_refused(agents, op, operator, pub, keys):
    sha = publish(pub, keys, so_bytes())
    a, r = refused(agents, op, operator, max_size="4K")
    check_refusal(a, r, op, operator, sha, "over this host's limit")


def test_not_published_is_an_error(agents, op, operator):
    a = start(agents, "h1")
    r = run(op, operator, "h1", module="no.such.module")
    assert r["status"] == "error" and "not published" in r["reason"], r
    assert_serves(op, operator, a)


def test_artifact_missing_times_out_with_reason(agents, op, operator, pub, keys):
    sha = publish(pub, keys, so_bytes(), artifact=False)
    a, r = refused(agents, op, operator, fetch_timeout="1s")
    check_refusal(a, r, op, operator, sha, "not published", sha[:12])


def test_tampered_cache_entry_is_removed_and_fetched_again(agents, op, operator,
                                                          pub, keys):
    so = so_bytes()
    sha = publish(pub, keys, so)
    a = start(agents, "h1")
    assert run(op, operator, "h1")["status"] == "pass"
    f = cached(a, sha)
    data = bytearray(f.read_bytes())
    data[100] ^= 0xff
    f.write_bytes(bytes(data))
    r = run(op, operator, "h1")
    assert r["status"] == "pass" and r["module_sha256"] == sha, r
    assert log_count(a, "does not match its signed manifest") == 1
    assert fetches(a) == 2
    assert f.read_bytes() == so


def test_cache_is_bounded_least_recently_used_first(agents, op, operator, pub,
                                                    keys):
    small = so_bytes("os.release")
    big = so_bytes("sys.info")
    sha_a = publish(pub, keys, small, name="os.release")
    sha_b = publish(pub, keys, big, name="sys.info")
    limit = max(len(small), len(big)) + 1024	# room for one of them
    a = start(agents, "h1", cache=str(limit))
    assert run(op, operator, "h1", module="os.release")["status"] == "pass"
    assert cached(a, sha_a).exists()
    assert run(op, operator, "h1", module="sys.info")["status"] == "pass"
    assert cached(a, sha_b).exists()
    assert not cached(a, sha_a).exists()
    assert log_count(a, "evicted (cache over its size limit)") == 1
    # The evicted one comes back on demand.
    assert run(op, operator, "h1", module="os.release")["status"] == "pass"
    assert fetches(a, "os.release") == 2


def test_module_bigger_than_a_job_comes_over_the_fetch_connection(
        agents, op, operator, pub, keys):
    # The job session tells the broker it takes nothing over max_job (1M);
    # a 3 MiB module still arrives, over the "<host>.fetch" connection,
    # which closes again when idle.
    so = so_bytes(pad=3 << 20)
    sha = publish(pub, keys, so)
    a = start(agents, "h1")
    r = run(op, operator, "h1")
    assert r["status"] == "pass" and r["module_sha256"] == sha, r
    assert cached(a, sha).stat().st_size == len(so)
    assert "h1.fetch" in a.broker.log()
    wait_until(lambda: "Client h1.fetch disconnected" in a.broker.log(), 15,
               what="the idle fetch connection to close")


# ---- the job's timeout covers the fetch, and says so ---------------------------


def test_timeout_names_the_fetch_before_it(agents, op, operator, pub, keys):
    """The artifact comes a while after the job: the hang module then runs
    its whole 5 s, and the timeout's reason says where the rest of the
    operator's wait went.  (An artifact published during the wait is
    had some 1.5 s after it is published: the fetch connection's pace.)"""
    so = (TEST_MODULES_DIR / "hang.so").read_bytes()
    sha = publish(pub, keys, so, name="hang", artifact=False)
    a = start(agents, "h1", fetch_timeout="10s")
    body = new_job("run", "host/h1", module="hang", timeout_ms=5000)
    watch_results(op, body["id"])
    t0 = time.monotonic()
    send_job(op, operator, body)
    time.sleep(1.0)
    publish(pub, keys, so, name="hang", pointer=False)
    r = collect_results(op, body["id"], ["h1"], timeout=20)["h1"]
    dt = time.monotonic() - t0
    assert r["status"] == "timeout" and r["module_sha256"] == sha, r
    m = re.fullmatch(r"timed out after 5 s \(job timeout\); getting module hang took "
                     r"(\d+\.\d) s before the run", r["reason"])
    assert m and 1.0 <= float(m.group(1)) < 5.0, r["reason"]
    assert 4900 <= r["finished_at"] - r["started_at"] < 7500, r
    assert dt >= float(m.group(1)) + 5.0 - 0.2, dt
    assert "hanging" in r.get("output", ""), r
    assert_serves(op, operator, a)


def test_timeout_while_fetching_says_so(agents, op, operator, pub, keys):
    so = (TEST_MODULES_DIR / "hang.so").read_bytes()
    publish(pub, keys, so, name="hang", artifact=False)
    a = start(agents, "h1", fetch_timeout="10s")
    t0 = time.monotonic()
    r = run(op, operator, "h1", module="hang", timeout_ms=1000)
    assert time.monotonic() - t0 < 5
    assert r["status"] == "timeout", r
    assert r["reason"] == ("timed out after 1 s (job timeout) while module hang "
                           "was still being fetched"), r
    assert_serves(op, operator, a)
