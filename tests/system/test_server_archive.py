# SPDX-License-Identifier: Apache-2.0
"""muster-server's archive (issue 13): exactly once with two servers sharing
the load, forged messages counted and not stored, retention by age and by
size, and a restart that loses nothing the broker holds for the session."""
from __future__ import annotations

import pytest

from muster_fixtures import (collect_results, install_modules, new_job, send_job,
                             topic, wait_until, watch_results)
from server_fixtures import (SERVER_BIN, Server, announce, metric_value, publish_many,
                             result_topic, signed_result)

pytestmark = pytest.mark.skipif(not SERVER_BIN.exists(), reason=f"{SERVER_BIN} is not built")


@pytest.fixture
def servers(broker, tmp_path):
    made = []

    def make(name="main", **kw):
        s = Server(broker, tmp_path / f"server-{name}", name=name, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        if s.running:
            s.stop()


def test_two_servers_archive_everything_once(broker, agents, servers, op_client,
                                             operator, tmp_path):
    """Results, events and presence of real agents, two servers on one
    archive: every result is written by exactly one of them (their write
    counters add up, both took a share), nothing is doubled."""
    db = str(tmp_path / "shared.db")
    a = servers("s1", archive=db).start()
    b = servers("s2", archive=db).start()
    fleet = [agents(h) for h in ("h1", "h2", "h3")]
    for ag in fleet:
        install_modules(ag, "os.release")
        ag.start()
    jobs = [new_job("ping", "all") for _ in range(10)]
    stream = new_job("run", "all", module="os.release", stream=True)
    for j in jobs + [stream]:
        watch_results(op_client, j["id"], events=True)
        send_job(op_client, operator, j)
    for j in jobs + [stream]:
        got = collect_results(op_client, j["id"], ["h1", "h2", "h3"])
        assert set(got) == {"h1", "h2", "h3"}, (j["id"], got)
    events = op_client.collect(1.0, topic=topic("results", stream["id"], "+", "events"))
    assert events, "the stream job sent no events"
    want = len(jobs) * 3 + 3

    def archived():
        return a.sql("SELECT count(*) FROM results")[0][0] == want and \
            a.sql("SELECT count(*) FROM events")[0][0] == len(events)
    wait_until(archived, 15, what=f"{want} results and {len(events)} events archived")
    ma, mb = a.metrics(), b.metrics()
    wa = metric_value(ma, "muster_archive_results_total")
    wb = metric_value(mb, "muster_archive_results_total")
    assert wa + wb == want, (wa, wb)
    assert wa > 0 and wb > 0, f"the shared subscription did not split the load: {wa}/{wb}"
    assert metric_value(ma, "muster_archive_duplicates_total") + \
        metric_value(mb, "muster_archive_duplicates_total") == 0
    # Presence: both servers see every status (their pages need it), the
    # archive keeps each change once.
    for m in (ma, mb):
        assert metric_value(m, "muster_hosts", {"state": "online"}) == 3
    rows = a.sql("SELECT host, state, count(*) FROM presence GROUP BY host, state, at "
                 "HAVING count(*) > 1")
    assert rows == []
    assert {r[0] for r in a.sql("SELECT host FROM presence WHERE state='online'")} == \
        {"h1", "h2", "h3"}
    # Each (job, host) once; and one job's results through the API.
    assert a.sql("SELECT count(DISTINCT job || '/' || host) FROM results")[0][0] == want
    res = b.api(f"/api/jobs/{stream['id']}/results")["results"]
    assert sorted(r["host"] for r in res) == ["h1", "h2", "h3"]


def test_forged_results_are_counted_not_stored(broker, mqtt, servers):
    """h1's own broker credentials publish on its own topics, but with
    bodies it could not have signed: another host's key, a broken
    signature, a body naming another host or job.  All counted, none
    stored; the genuine one is."""
    pki = broker.pki
    s = servers().start()
    h1 = mqtt("h1")
    announce(h1, pki, "h1")
    announce(mqtt("h2"), pki, "h2")
    wait_until(lambda: metric_value(s.metrics(), "muster_hosts") == 2, 10, what="statuses")
    good = signed_result(pki, "h1", "job-good")
    by_h2 = signed_result(pki, "h1", "job-h2key", signer="h2")
    broken = bytearray(signed_result(pki, "h1", "job-badsig"))
    broken[-3] ^= 0xff		# inside the signed body: the signature fails
    other_host = signed_result(pki, "h2", "job-names-h2", signer="h2")
    other_job = signed_result(pki, "h1", "job-other")
    h1.publish(result_topic("job-h2key", "h1"), by_h2)
    h1.publish(result_topic("job-badsig", "h1"), bytes(broken))
    h1.publish(result_topic("job-names-h2", "h1"), other_host)
    h1.publish(result_topic("job-topic", "h1"), other_job)
    h1.publish(result_topic("job-junk", "h1"), b"\x81\xa1v\x01")
    h1.publish(result_topic("job-good", "h1"), good)
    wait_until(lambda: s.sql("SELECT count(*) FROM results")[0][0] == 1, 10,
               what="the genuine result")
    wait_until(lambda: metric_value(s.metrics(), "muster_messages_forged_total",
                                    {"type": "result"}) >= 5, 10, what="forgeries counted")
    assert metric_value(s.metrics(), "muster_messages_forged_total",
                        {"type": "result"}) == 5
    assert s.sql("SELECT job, host FROM results") == [("job-good", "h1")]
    assert "forged message on" in s.log()
    # A status whose cert_der is not the certificate the envelope names.
    from server_fixtures import signed_status
    from muster_fixtures import cert_der
    h1.publish(topic("hosts", "h1", "status"),
               signed_status(pki, "h1", cert_der=cert_der(pki.sign_cert("h2"))), retain=True)
    wait_until(lambda: metric_value(s.metrics(), "muster_messages_forged_total",
                                    {"type": "status"}) == 1, 10, what="forged status")


def test_retained_results_are_ignored(broker, mqtt, servers):
    """A result is never retained (design.md §3): a retained one, even well
    signed, is stale or planted and not archived; the same sent live is."""
    pki = broker.pki
    s = servers().start()
    h1 = mqtt("h1")
    announce(h1, pki, "h1")
    wait_until(lambda: metric_value(s.metrics(), "muster_hosts") == 1, 10, what="status")
    h1.publish(result_topic("job-retained", "h1"), signed_result(pki, "h1", "job-retained"),
               retain=True)
    h1.publish(result_topic("job-live", "h1"), signed_result(pki, "h1", "job-live"))
    wait_until(lambda: s.sql("SELECT count(*) FROM results")[0][0] >= 1, 10,
               what="the live result")
    import time
    time.sleep(0.5)
    assert s.sql("SELECT job FROM results") == [("job-live",)]
    h1.publish(result_topic("job-retained", "h1"), b"", retain=True)	# clean up


def test_retention_by_age(broker, mqtt, servers):
    pki = broker.pki
    s = servers(extra={"archive": {"max_age": "4s", "prune_interval": "300ms"}}).start()
    h1 = mqtt("h1")
    announce(h1, pki, "h1")
    publish_many(h1, [(result_topic(f"old-{i}", "h1"), signed_result(pki, "h1", f"old-{i}"))
                      for i in range(20)])
    wait_until(lambda: s.sql("SELECT count(*) FROM results")[0][0] == 20, 10)
    import time
    time.sleep(2.5)
    publish_many(h1, [(result_topic(f"new-{i}", "h1"), signed_result(pki, "h1", f"new-{i}"))
                      for i in range(20)])
    wait_until(lambda: s.sql("SELECT count(*) FROM results WHERE job LIKE 'old-%'")[0][0] == 0,
               10, what="old results pruned")
    assert s.sql("SELECT count(*) FROM results WHERE job LIKE 'new-%'")[0][0] == 20
    # The counter moves once the prune round is over (just after the rows go).
    wait_until(lambda: metric_value(s.metrics(), "muster_archive_pruned_rows_total") >= 20,
               5, what="pruned rows counted")


def test_retention_by_size(broker, mqtt, servers):
    """Over max_size the oldest go first and the file shrinks back."""
    pki = broker.pki
    limit = 512 * 1024
    s = servers(extra={"archive": {"max_size": str(limit), "max_age": "0",
                                   "prune_interval": "300ms"}}).start()
    h1 = mqtt("h1")
    announce(h1, pki, "h1")
    out = "x" * 2000
    n = 1500		# ~3 MB of output
    publish_many(h1, [(result_topic(f"big-{i:05d}", "h1"),
                       signed_result(pki, "h1", f"big-{i:05d}", output=out))
                      for i in range(n)])
    wait_until(lambda: s.sql("SELECT count(*) FROM results WHERE job = 'big-%05d'" % (n - 1))
               [0][0] == 1, 20, what="the newest result")

    wait_until(lambda: metric_value(s.metrics(), "muster_archive_pruned_rows_total") > 0,
               20, what="pruning")
    import time
    time.sleep(1.0)	# a few more prune rounds, all after the last insert

    def small():
        return 0 < metric_value(s.metrics(), "muster_archive_size_bytes") <= limit
    wait_until(small, 20, what="archive under max_size")
    assert s.db.stat().st_size <= limit * 2, "the file did not shrink"
    kept = [r[0] for r in s.sql("SELECT job FROM results ORDER BY job")]
    assert 0 < len(kept) < n
    assert f"big-{n - 1:05d}" in kept and "big-00000" not in kept
    # The newest are kept: what is left is a contiguous tail.
    assert kept == [f"big-{i:05d}" for i in range(n - len(kept), n)]


def test_restart_loses_nothing(broker, mqtt, servers):
    """Stopped, the server's persistent session collects its share at the
    broker; started again, it archives all of it."""
    pki = broker.pki
    s = servers().start()
    h1 = mqtt("h1")
    announce(h1, pki, "h1")
    h1.publish(result_topic("before", "h1"), signed_result(pki, "h1", "before"))
    wait_until(lambda: s.sql("SELECT count(*) FROM results")[0][0] == 1, 10)
    s.stop()
    n = 200
    publish_many(h1, [(result_topic(f"down-{i}", "h1"), signed_result(pki, "h1", f"down-{i}"))
                      for i in range(n)])
    s.start()
    wait_until(lambda: s.sql("SELECT count(*) FROM results")[0][0] == n + 1, 20,
               what="results sent while the server was down")
    assert "session resumed" in s.log()
    # Redelivered or not, each once; nothing counted as forged (the
    # certificate came from the archive before any status).
    assert metric_value(s.metrics(), "muster_messages_forged_total") == 0
