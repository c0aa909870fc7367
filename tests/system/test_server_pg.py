# SPDX-License-Identifier: Apache-2.0
"""muster-server on PostgreSQL (issue 13): the same schema and queries as
SQLite, against a real PostgreSQL server this test starts in a temporary
folder (initdb + pg_ctl, as user postgres when run as root)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
import pytest

from muster_fixtures import wait_until
from server_fixtures import (SERVER_BIN, Postgres, Server, announce, metric_value,
                             pg_available, publish_many, result_topic, signed_result)

why = pg_available() or (None if SERVER_BIN.exists() else f"{SERVER_BIN} is not built")
pytestmark = pytest.mark.skipif(why is not None, reason=why or "")


@pytest.fixture
def pg():
    # Not under pytest's tmp folder: user postgres must reach it, and every
    # pytest run (ctest starts several at once) makes that folder 0700 again.
    d = tempfile.mkdtemp(prefix="muster-pg-")
    os.chmod(d, 0o755)
    p = Postgres(Path(d) / "pg").start()
    yield p
    p.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_postgresql_archive(broker, mqtt, pg, tmp_path):
    pki = broker.pki
    s = Server(broker, tmp_path / "server", archive=pg.url,
               extra={"archive": {"max_age": "1d"}}).start()
    try:
        h1 = mqtt("h1")
        announce(h1, pki, "h1")
        n = 300
        items = [(result_topic(f"pg-{i}", "h1"),
                  signed_result(pki, "h1", f"pg-{i}", status="fail" if i % 3 == 0 else "pass",
                                data={"k": i}))
                 for i in range(n)]
        publish_many(h1, items)
        # The same results again (a re-delivery): stored once.
        publish_many(h1, items[:50])
        wait_until(lambda: pg.query("SELECT count(*) FROM results") == [[str(n)]], 20,
                   what=f"{n} results in PostgreSQL")
        wait_until(lambda: metric_value(s.metrics(), "muster_archive_duplicates_total") == 50,
                   10, what="the re-deliveries seen as duplicates")
        assert pg.query("SELECT count(*) FROM presence WHERE host = 'h1'") == [["1"]]
        assert metric_value(s.metrics(), "muster_archive_results_total") == n
        # The API reads PostgreSQL with the same queries.
        jobs = s.api("/api/jobs?limit=1000")["jobs"]
        assert len(jobs) == n
        j0 = [j for j in jobs if j["job"] == "pg-0"][0]
        assert (j0["total"], j0["pass"], j0["fail"]) == (1, 0, 1)
        res = s.api("/api/results?host=h1&limit=10")["results"]
        assert len(res) == 10 and all(r["host"] == "h1" for r in res)
        one = s.api("/api/jobs/pg-7/results")["results"]
        assert one[0]["data"] == {"k": 7} and one[0]["status"] == "pass", one
        hist = s.api("/api/hosts/h1/history?limit=5")
        assert len(hist["results"]) == 5 and hist["presence"][0]["state"] == "online"
        # A value is bound, never pasted into SQL (and a quote is not a job id).
        assert s.api("/api/results?host=h1&since=1d&limit=1000")["results"][0]["host"] == "h1"
        s.stop()
        # A restart reads the certificates back from PostgreSQL.
        s.start()
        assert "1 host certificates from the archive" in s.log()
    finally:
        if s.running:
            s.stop()
