# SPDX-License-Identifier: Apache-2.0
"""The live page of muster-server in a real headless chromium (issues 13
and 24), against a real server and broker:

- it loads, a job sent to the fleet appears and its pass/fail counts reach
  the right numbers without a reload, a host going offline changes colour,
  and a screenshot is saved as a test artefact;
- drill-down: fleet -> a job's page (failures first, output and data on
  click) -> a host's page (facts, presence, last results), and the back
  button walks the same way back;
- the fleet's filters: group and facts (answered by the server,
  /api/hosts?target=&filter=), status and module (on the page), each
  narrowing the grid to exactly the hosts that match, and a bad filter
  shown with the server's reason;
- a job page open while signed results arrive: rows and counts fill in
  without a reload and without fetching the job again per result.
"""
from __future__ import annotations

import json
import time
import urllib.error

import pytest

from muster_fixtures import (collect_results, install_modules, new_job, now_ms, send_job,
                             topic, wait_until, watch_results)
from server_fixtures import (ARTIFACTS, SERVER_BIN, Server, announce, browser_available,
                             chromium, result_topic, signed_result, signed_status)

why = browser_available() or (None if SERVER_BIN.exists() else f"{SERVER_BIN} is not built")
pytestmark = pytest.mark.skipif(why is not None, reason=why or "")


@pytest.fixture
def browser(tmp_path):
    d = chromium(tmp_path / "chromium-profile")
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def js(d, expr, *args):
    return d.execute_script("return " + expr, *args)


def job_cells(d, job):
    """{'total': '3', 'pass': '3', ...} of the job's row, or None."""
    return js(d, """(function(id){
        const tr = [...document.querySelectorAll('#jobs tbody tr')]
            .find((r) => r.dataset.job === id);
        if (!tr) return null;
        const o = {};
        for (const k of ['total', 'pass', 'fail', 'other'])
            o[k] = tr.querySelector('td.' + k).textContent;
        return o;
    })(%r)""" % job)


def host_class(d, host):
    return js(d, "(function(h){const e=[...document.querySelectorAll('#hosts .host')]"
                 ".find((x)=>x.dataset.host===h); return e ? e.className : null;})(%r)" % host)


def host_colour(d, host):
    return js(d, "(function(h){const e=[...document.querySelectorAll('#hosts .host')]"
                 ".find((x)=>x.dataset.host===h); return getComputedStyle(e).backgroundColor;})"
                 "(%r)" % host)


def shown_hosts(d):
    """The grid's hosts that are drawn (not hidden by a filter), sorted."""
    return js(d, "[...document.querySelectorAll('#hosts .host')]"
                 ".filter((e) => !e.hidden && e.offsetParent !== null)"
                 ".map((e) => e.dataset.host).sort()")


def view(d):
    return js(d, "['fleet','job','host'].find((v) => "
                 "!document.getElementById('view-' + v).hidden)")


def result_rows(d):
    """[(host, status, summary), ...] of the job page's results, in order."""
    return [tuple(r) for r in js(d, """[...document.querySelectorAll(
        '#job-results tbody tr:not(.detail)')].map((tr) => [tr.dataset.host,
        tr.querySelector('td.status').textContent,
        tr.querySelector('td.summary').textContent])""")]


def counts(d):
    """{'answered': 3, 'pass': 2, ...} of the job page's count boxes."""
    return {k: int(v) for k, v in js(d, """Object.fromEntries([...document.querySelectorAll(
        '#job-counts .count')].map((s) => [s.dataset.k, s.querySelector('b').textContent]))""")
            .items()}


def requests(d, part):
    """How many requests the page made to URLs containing part."""
    return js(d, "performance.getEntriesByType('resource')"
                 ".filter((e) => e.name.includes(arguments[0])).length", part)


def shoot(d, name):
    """A screenshot as a test artefact."""
    time.sleep(0.3)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / name
    assert d.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000


def no_errors(d):
    """No script errors.  (Answers 404 and 400 are the page's to handle:
    a job not known yet, a bad filter; chromium logs them as errors.)"""
    logs = [e for e in d.get_log("browser") if e.get("level") == "SEVERE" and not (
        e.get("source") == "network" and ("status of 404" in e["message"] or
                                          "status of 400" in e["message"]))]
    assert logs == [], logs


def fleet_up(browser, server, hosts):
    browser.get(server.url + "/")
    assert browser.title == "muster fleet"
    wait_until(lambda: js(browser, "document.getElementById('conn').textContent") == "live",
               15, what="the event stream")
    wait_until(lambda: all(host_class(browser, h) == "host online" for h in hosts), 15,
               what="the hosts online on the page")


def test_live_page(broker, agents, op_client, operator, tmp_path, browser):
    server = Server(broker, tmp_path / "server").start()
    try:
        fleet = {h: agents(h) for h in ("h1", "h2", "h3")}
        for a in fleet.values():
            a.start()
        fleet_up(browser, server, fleet)
        green = host_colour(browser, "h3")
        # A marker that a reload would wipe.
        browser.execute_script("window.notReloaded = 42;")

        ping = new_job("ping", "all")
        fail = new_job("run", "group/web", module="no.such.module")
        for j, hosts in ((ping, ["h1", "h2", "h3"]), (fail, ["h1", "h2"])):
            watch_results(op_client, j["id"])
            send_job(op_client, operator, j)
            assert set(collect_results(op_client, j["id"], hosts)) == set(hosts)
        wait_until(lambda: job_cells(browser, ping["id"]) ==
                   {"total": "3", "pass": "3", "fail": "0", "other": "0"}, 15,
                   what="the ping's counts on the page")
        # The missing module is an error on both web hosts: not pass, not fail.
        wait_until(lambda: job_cells(browser, fail["id"]) ==
                   {"total": "2", "pass": "0", "fail": "0", "other": "2"}, 15,
                   what="the failed job's counts")
        assert js(browser, "window.notReloaded") == 42
        # The versions per channel: all three on one agent version.
        rows = js(browser, "[...document.querySelectorAll('#versions tbody tr')]"
                           ".map((tr) => [...tr.cells].map((c) => c.textContent))")
        assert len(rows) == 1 and rows[0][2:] == ["3", "3"], rows

        fleet["h3"].stop()
        wait_until(lambda: host_class(browser, "h3") == "host offline", 15,
                   what="h3 offline on the page")
        assert host_colour(browser, "h3") != green
        assert host_class(browser, "h1") == "host online"
        assert js(browser, "window.notReloaded") == 42
        wait_until(lambda: js(browser, "[...document.querySelectorAll('#versions tbody td')]"
                                       ".map((c) => c.textContent).slice(2)") == ["3", "2"],
                   10, what="the versions table counting h3 offline")
        shoot(browser, "server-page.png")
        no_errors(browser)
    finally:
        server.stop()


def test_drill_down_fleet_job_host(broker, agents, op_client, operator, tmp_path, browser):
    server = Server(broker, tmp_path / "server").start()
    try:
        fleet = {h: agents(h) for h in ("h1", "h2", "h3")}
        for a in fleet.values():
            install_modules(a, "os.release")
            a.start()
        fleet_up(browser, server, fleet)
        browser.execute_script("window.notReloaded = 42;")
        # One job where h1 fails (a module that is not there) and h2, h3
        # pass: a run of os.release to all, and a second one to h1 only.
        ok = new_job("run", "all", module="os.release")
        bad = new_job("run", "host/h1", module="no.such.module")
        for j, hosts in ((ok, ["h1", "h2", "h3"]), (bad, ["h1"])):
            watch_results(op_client, j["id"])
            send_job(op_client, operator, j)
            assert set(collect_results(op_client, j["id"], hosts)) == set(hosts)
        wait_until(lambda: job_cells(browser, ok["id"]) is not None and
                   job_cells(browser, ok["id"])["total"] == "3", 15, what="the job's row")

        # fleet -> job: a click on the job's row.
        browser.execute_script(
            "[...document.querySelectorAll('#jobs tbody tr')].find((r) => r.dataset.job === "
            "arguments[0]).click()", ok["id"])
        wait_until(lambda: view(browser) == "job" and len(result_rows(browser)) == 3, 10,
                   what="the job page with three results")
        assert js(browser, "location.hash") == "#/jobs/" + ok["id"]
        rows = result_rows(browser)
        assert [r[0] for r in rows] == ["h1", "h2", "h3"]
        assert all(r[1] == "pass" for r in rows), rows
        assert counts(browser)["answered"] == 3 and counts(browser)["pass"] == 3
        # Output and data on click: what the archive holds for h2.
        arch = server.api(f"/api/results?job={ok['id']}&host=h2&limit=1")["results"][0]
        browser.execute_script("document.querySelector('#job-results tr[data-host=h2] td.summary')"
                               ".click()")
        wait_until(lambda: js(browser, "(document.querySelector('#job-results tr.detail pre.data')"
                                       " || {}).textContent") not in (None, ""), 10,
                   what="h2's output and data")
        shown = json.loads(js(browser, "document.querySelector('#job-results tr.detail pre.data')"
                                       ".textContent"))
        assert shown == arch["data"]
        assert js(browser, "document.querySelector('#job-results tr.detail').dataset.host") == "h2"
        shoot(browser, "server-page-job.png")

        # The failing job: the failure is shown first, with its reason.
        browser.get(server.url + "/#/jobs/" + bad["id"])
        wait_until(lambda: len(result_rows(browser)) == 1, 10, what="the failed job's page")
        assert result_rows(browser)[0][1] == "error"
        assert result_rows(browser)[0][2] != ""

        # job -> host: the host's link in the results.
        browser.execute_script("document.querySelector('#job-results tr[data-host=h1] a').click()")
        wait_until(lambda: view(browser) == "host" and
                   js(browser, "document.querySelectorAll('#host-results tbody tr').length") >= 2,
                   10, what="h1's page with its results")
        assert js(browser, "location.hash") == "#/hosts/h1"
        jobs = js(browser, "[...document.querySelectorAll('#host-results tbody tr')]"
                           ".map((tr) => tr.dataset.job)")
        assert set(jobs) == {ok["id"], bad["id"]}
        assert js(browser, "document.getElementById('host-info').dataset.state") == "online"
        shoot(browser, "server-page-host.png")
        facts = js(browser, "Object.fromEntries([...document.querySelectorAll("
                            "'#host-facts tbody tr')].map((tr) => [tr.dataset.k, "
                            "tr.querySelector('td').textContent]))")
        stored = server.api("/api/hosts/h1")
        assert stored["facts"] is not None
        assert facts["os.id"] == stored["facts"]["os.id"]
        assert facts["groups"] == "web"
        assert js(browser, "document.querySelectorAll('#host-presence tbody tr').length") >= 1

        # host -> a job, by its link; then back, back, back.
        browser.execute_script("[...document.querySelectorAll('#host-results tbody tr')]"
                               ".find((tr) => tr.dataset.job === arguments[0])"
                               ".querySelector('a').click()", ok["id"])
        wait_until(lambda: view(browser) == "job" and len(result_rows(browser)) == 3, 10,
                   what="the job page again")
        browser.back()
        wait_until(lambda: view(browser) == "host", 10, what="back to the host")
        browser.back()
        wait_until(lambda: view(browser) == "job" and
                   js(browser, "location.hash") == "#/jobs/" + bad["id"], 10,
                   what="back to the failed job")
        browser.back()
        wait_until(lambda: view(browser) == "job" and
                   js(browser, "location.hash") == "#/jobs/" + ok["id"], 10,
                   what="back to the first job")
        browser.back()
        wait_until(lambda: view(browser) == "fleet", 10, what="back to the fleet")
        assert shown_hosts(browser) == ["h1", "h2", "h3"]
        no_errors(browser)
    finally:
        server.stop()


def set_filters(d, **f):
    """Fill the filter form and apply it (as a user would)."""
    d.execute_script("""const f = arguments[0];
        for (const k of ['group', 'fact', 'status', 'module'])
            document.getElementById('f-' + k).value = f[k] || '';
        document.querySelector('#filters button[type=submit]').click();""", f)


def test_fleet_filters(broker, agents, op_client, operator, tmp_path, browser):
    server = Server(broker, tmp_path / "server").start()
    try:
        racks = {"h1": "b7", "h2": "b7", "h3": "c1"}
        fleet = {}
        for h, rack in racks.items():
            a = agents(h)
            d = a.dir / "facts.d"
            d.mkdir(parents=True, exist_ok=True)
            (d / "rack.json").write_text(json.dumps({"rack": rack}))
            a.conf["agent"]["facts_dir"] = str(d)
            a.write_conf()
            install_modules(a, "os.release")
            fleet[h] = a.start()
        wait_until(lambda: all((server.api(f"/api/hosts/{h}").get("facts") or {})
                               .get("custom.rack") == racks[h] for h in racks), 15,
                   what="the racks in the server's facts")
        fleet_up(browser, server, fleet)
        run = new_job("run", "host/h2", module="os.release")
        watch_results(op_client, run["id"])
        send_job(op_client, operator, run)
        assert set(collect_results(op_client, run["id"], ["h2"])) == {"h2"}
        wait_until(lambda: job_cells(browser, run["id"]) is not None, 15, what="the run's row")
        assert shown_hosts(browser) == ["h1", "h2", "h3"]

        # Group (the server's target=group/db), then facts on top.
        set_filters(browser, group="db")
        wait_until(lambda: shown_hosts(browser) == ["h2", "h3"], 10, what="group db")
        set_filters(browser, group="db", fact="custom.rack~b*")
        wait_until(lambda: shown_hosts(browser) == ["h2"], 10, what="group db, rack b*")
        set_filters(browser, fact="custom.rack~b* ; groups has web")
        wait_until(lambda: shown_hosts(browser) == ["h1", "h2"], 10, what="rack b*, web")
        set_filters(browser, fact="custom.rack=c1")
        wait_until(lambda: shown_hosts(browser) == ["h3"], 10, what="rack c1")
        assert js(browser, "location.hash") == "#/?fact=custom.rack%3Dc1"
        # A bad filter: the server's reason, and nothing shown.
        set_filters(browser, fact="mem_mb<lots")
        wait_until(lambda: js(browser, "document.getElementById('f-error').textContent") != "",
                   10, what="the bad filter's reason")
        assert shown_hosts(browser) == []
        # Module: the hosts that ran os.release lately (h2 only).
        set_filters(browser, module="os.release")
        wait_until(lambda: shown_hosts(browser) == ["h2"], 10, what="module os.release")
        assert js(browser, "document.getElementById('f-error').textContent") == ""
        assert js(browser, "[...document.querySelectorAll('#jobs tbody tr')]"
                           ".map((r) => r.dataset.job)") == [run["id"]]
        # Status: h3 stops; offline shows it alone, online the others.
        set_filters(browser, status="offline")
        wait_until(lambda: shown_hosts(browser) == [], 10, what="nobody offline")
        fleet["h3"].stop()
        wait_until(lambda: shown_hosts(browser) == ["h3"], 15, what="h3 offline, live")
        set_filters(browser, status="online", fact="custom.rack~b*")
        wait_until(lambda: shown_hosts(browser) == ["h1", "h2"], 10, what="online in rack b*")
        # The versions table counts the shown hosts only.
        wait_until(lambda: js(browser, "[...document.querySelectorAll('#versions tbody td')]"
                                       ".map((c) => c.textContent).slice(2)") == ["2", "2"],
                   10, what="versions of the shown hosts")
        # Back: the filters before, in the form and in the grid.
        browser.back()
        wait_until(lambda: shown_hosts(browser) == ["h3"], 10, what="back to status=offline")
        assert js(browser, "document.getElementById('f-status').value") == "offline"
        assert js(browser, "document.getElementById('f-fact').value") == ""
        browser.back()
        wait_until(lambda: shown_hosts(browser) == ["h2"], 10, what="back to module")
        set_filters(browser)
        wait_until(lambda: shown_hosts(browser) == ["h1", "h2", "h3"], 10, what="no filter")
        no_errors(browser)
    finally:
        server.stop()


def test_job_page_live(broker, mqtt, tmp_path, browser):
    """A job page opened before its first result fills in from the event
    stream: each host's row and summary, failures first, the counts; the
    job itself is fetched once (a result does not refetch it), the
    summaries by one query per batch, never one per result."""
    pki = broker.pki
    server = Server(broker, tmp_path / "server").start()
    try:
        hosts = ("h1", "h2", "h3")
        clients = {h: mqtt(h) for h in hosts}
        for h, c in clients.items():
            announce(c, pki, h)
        job = "live-job-1"
        browser.get(server.url + "/#/jobs/" + job)
        wait_until(lambda: js(browser, "document.getElementById('conn').textContent") == "live",
                   15, what="the event stream")
        wait_until(lambda: "not known" in js(browser,
                                             "document.getElementById('job-info').textContent"),
                   10, what="the job not known yet")
        assert result_rows(browser) == []
        browser.execute_script("window.notReloaded = 42;")
        fetched = requests(browser, "api/jobs/" + job)

        clients["h1"].publish(result_topic(job, "h1"),
                              signed_result(pki, "h1", job, summary="all good on h1"))
        wait_until(lambda: result_rows(browser) == [("h1", "pass", "all good on h1")], 10,
                   what="h1's result and summary")
        clients["h3"].publish(result_topic(job, "h3"),
                              signed_result(pki, "h3", job, summary="fine"))
        clients["h2"].publish(result_topic(job, "h2"),
                              signed_result(pki, "h2", job, status="fail",
                                            summary="disk full"))
        wait_until(lambda: result_rows(browser) == [("h2", "fail", "disk full"),
                                                    ("h1", "pass", "all good on h1"),
                                                    ("h3", "pass", "fine")], 10,
                   what="three rows, the failure first")
        c = counts(browser)
        assert (c["answered"], c["pass"], c["fail"]) == (3, 2, 1), c
        assert js(browser, "window.notReloaded") == 42
        # No refetch of the job per result; summaries: at most one query per
        # result batch (3 results, at least two batches: 1 + 2 or 1 + 1 + 1).
        assert requests(browser, "api/jobs/" + job) == fetched
        assert 1 <= requests(browser, "api/results?job=" + job) <= 3
        # The fleet's row of the job agrees, and the job page matches the API.
        api = server.api(f"/api/jobs/{job}/results")["results"]
        assert [(r["host"], r["status"], r["summary"]) for r in api] == result_rows(browser)
        no_errors(browser)
    finally:
        server.stop()


def missing_rows(d):
    """{host: 'offline' | 'silent'} of the job page's missing table."""
    return js(d, """Object.fromEntries([...document.querySelectorAll('#job-missing tbody tr')]
        .map((tr) => [tr.dataset.host, tr.className]))""")


def test_announced_job_page_live(broker, mqtt, keys, operator, tmp_path, browser):
    """A job page open before the job's announce: the announce arrives
    (SSE "announce") and the page shows who is expected; results, a host
    going offline and a late result move hosts from missing (silent or
    offline) to answered, live, failures first; at each step the page's
    counts are the server's (/api/jobs/<id>)."""
    pki = broker.pki
    server = Server(broker, tmp_path / "server",
                    extra={"trust": {"operators": str(keys.operators_dir)}}).start()
    try:
        clients = {h: mqtt(h) for h in ("h1", "h2", "h3")}
        for h, c in clients.items():
            announce(c, pki, h)
        job = "announced-1"
        browser.get(server.url + "/#/jobs/" + job)
        wait_until(lambda: js(browser, "document.getElementById('conn').textContent") == "live",
                   15, what="the event stream")
        wait_until(lambda: "not known" in js(browser,
                                             "document.getElementById('job-info').textContent"),
                   10, what="the job not known yet")
        browser.execute_script("window.notReloaded = 42;")

        def same_as_server(want=None):
            api = server.api(f"/api/jobs/{job}")["counts"]
            page = counts(browser)
            # The page leaves out zero counts of the rarer kinds.
            return all(page.get(k, 0) == v for k, v in api.items()) and \
                (want is None or all(api[k] == v for k, v in want.items()))

        t = now_ms()
        body = {"v": 1, "kind": "announce", "id": job, "aud": "muster/v1", "issued_at": t,
                "not_after": t + 300000, "operator": "alice", "target": "all",
                "job_kind": "run", "module": "os.release",
                "expected": ["h1", "h2", "h3", "h9"]}
        mqtt("op:alice").publish(topic("jobs", job), operator.envelope(body))
        wait_until(lambda: missing_rows(browser) == {"h1": "silent", "h2": "silent",
                                                     "h3": "silent", "h9": "offline"}, 10,
                   what="four expected, all missing, h9 offline")
        assert "os.release" in js(browser, "document.getElementById('job-info').textContent")
        wait_until(lambda: same_as_server({"expected": 4, "missing": 4, "silent": 3,
                                           "offline": 1}), 10, what="the server's counts")
        fetched = requests(browser, "api/jobs/" + job)

        clients["h1"].publish(result_topic(job, "h1"), signed_result(pki, "h1", job,
                                                                     summary="fine"))
        clients["h2"].publish(result_topic(job, "h2"),
                              signed_result(pki, "h2", job, status="fail", summary="broken"))
        wait_until(lambda: result_rows(browser) == [("h2", "fail", "broken"),
                                                    ("h1", "pass", "fine")], 10,
                   what="two results, the failure first")
        assert missing_rows(browser) == {"h3": "silent", "h9": "offline"}
        wait_until(lambda: same_as_server({"answered": 2, "missing": 2, "silent": 1,
                                           "offline": 1, "fail": 1, "pass": 1}), 10,
                   what="the server's counts after two results")
        # docs/server-page.png is this one.
        browser.set_window_size(1000, 600)
        shoot(browser, "server-page-announced.png")
        browser.set_window_size(1280, 900)

        # h3 goes offline: from silent to offline on the page, live.
        clients["h3"].publish(topic("hosts", "h3", "status"),
                              signed_status(pki, "h3", "offline"), retain=True)
        wait_until(lambda: missing_rows(browser) == {"h3": "offline", "h9": "offline"}, 10,
                   what="h3 offline among the missing")
        wait_until(lambda: same_as_server({"silent": 0, "offline": 2}), 10,
                   what="the server's counts with h3 offline")
        # A late result from h3: answered, not missing.
        clients["h3"].publish(result_topic(job, "h3"), signed_result(pki, "h3", job,
                                                                     summary="late"))
        wait_until(lambda: missing_rows(browser) == {"h9": "offline"}, 10,
                   what="only h9 missing")
        # The row comes from the stream at once; its summary from the one
        # request of a later frame ("…" until then).
        wait_until(lambda: result_rows(browser) == [("h2", "fail", "broken"),
                                                    ("h1", "pass", "fine"),
                                                    ("h3", "pass", "late")], 10,
                   what="h3's late result with its summary")
        wait_until(lambda: same_as_server({"answered": 3, "missing": 1}), 10,
                   what="the server's final counts")
        # Live throughout: no reload, the job not fetched again per result.
        assert js(browser, "window.notReloaded") == 42
        assert requests(browser, "api/jobs/" + job) == fetched
        # The fleet view's row of the job shows the expected count.
        browser.execute_script("location.hash = '#/'")
        wait_until(lambda: js(browser, "(document.querySelector('#jobs tr[data-job=\"%s\"] "
                                       "td.expected') || {}).textContent" % job) == "4", 10,
                   what="the expected count in the jobs table")
        # After a reload too: from /api/jobs, the announce's count.
        browser.refresh()
        wait_until(lambda: js(browser, "(document.querySelector('#jobs tr[data-job=\"%s\"] "
                                       "td.expected') || {}).textContent" % job) == "4", 10,
                   what="the expected count after a reload")
        assert server.api("/api/jobs")["jobs"][0]["expected"] == 4
        no_errors(browser)
    finally:
        server.stop()


def test_host_page_update_and_presence_live(broker, mqtt, tmp_path, browser):
    """A host's page shows its update state and presence from the server
    (/api/hosts/<host>), and follows a new status without a reload: the
    state, the update map and one more presence row."""
    pki = broker.pki
    server = Server(broker, tmp_path / "server").start()
    try:
        h1 = mqtt("h1")
        h1.publish(topic("hosts", "h1", "status"),
                   signed_status(pki, "h1", update={"state": "staged", "version": "0.2.0"}),
                   retain=True)
        # The presence row is archived in the server's next batch.
        def archived():
            try:
                return len(server.api("/api/hosts/h1")["presence"]) == 1
            except urllib.error.HTTPError:	# 404: no status taken yet
                return False
        wait_until(archived, 10, what="h1's presence archived")
        browser.get(server.url + "/#/hosts/h1")

        def update():
            return js(browser, """Object.fromEntries([...document.querySelectorAll(
                '#host-update tbody tr')].map((tr) => [tr.dataset.k,
                tr.querySelector('td').textContent]))""")

        def presence():
            return js(browser, "[...document.querySelectorAll('#host-presence tbody tr')]"
                               ".map((tr) => tr.querySelector('td.state').textContent)")

        wait_until(lambda: update() == {"state": "staged", "version": "0.2.0"}, 10,
                   what="the update map")
        assert js(browser, "document.getElementById('host-info').dataset.state") == "online"
        assert presence() == ["online"]
        browser.execute_script("window.notReloaded = 42;")
        time.sleep(0.01)	# a later "at" than the first status
        h1.publish(topic("hosts", "h1", "status"),
                   signed_status(pki, "h1", "offline",
                                 update={"state": "failed", "version": "0.2.0",
                                         "reason": "self-test timed out"}), retain=True)
        wait_until(lambda: js(browser, "document.getElementById('host-info').dataset.state")
                   == "offline", 10, what="h1 offline on its page")
        wait_until(lambda: presence() == ["offline", "online"], 10,
                   what="two presence rows, newest first")
        assert update() == {"state": "failed", "version": "0.2.0",
                            "reason": "self-test timed out"}
        assert js(browser, "window.notReloaded") == 42
        no_errors(browser)
    finally:
        server.stop()


def test_unexpected_answer_marked(broker, mqtt, keys, operator, tmp_path, browser):
    """A result from a host the announce did not name is marked
    unexpected and counted so, not as answered, as /api/jobs/<id> counts."""
    pki = broker.pki
    server = Server(broker, tmp_path / "server",
                    extra={"trust": {"operators": str(keys.operators_dir)}}).start()
    try:
        clients = {h: mqtt(h) for h in ("h1", "h2")}
        for h, c in clients.items():
            announce(c, pki, h)
        job = "unexpected-1"
        t = now_ms()
        mqtt("op:alice").publish(topic("jobs", job), operator.envelope(
            {"v": 1, "kind": "announce", "id": job, "aud": "muster/v1", "issued_at": t,
             "not_after": t + 300000, "target": "host/h1", "job_kind": "ping",
             "expected": ["h1"]}))
        wait_until(lambda: server.sql("SELECT count(*) FROM announces")[0][0] == 1, 10,
                   what="the announce stored")
        for h, c in clients.items():
            c.publish(result_topic(job, h), signed_result(pki, h, job, module=None))
        wait_until(lambda: server.sql("SELECT count(*) FROM results")[0][0] == 2, 10,
                   what="both results archived")
        browser.get(server.url + "/#/jobs/" + job)
        wait_until(lambda: len(result_rows(browser)) == 2, 10, what="the job page")
        tags = js(browser, "Object.fromEntries([...document.querySelectorAll("
                           "'#job-results tbody tr')].map((tr) => [tr.dataset.host, "
                           "!!tr.querySelector('.tag')]))")
        assert tags == {"h1": False, "h2": True}
        api = server.api(f"/api/jobs/{job}")["counts"]
        assert (api["answered"], api["unexpected"]) == (1, 1)
        c = counts(browser)
        assert (c["answered"], c["unexpected"], c["missing"]) == (1, 1, 0), c
        no_errors(browser)
    finally:
        server.stop()


def test_releases_on_the_page(broker, keys, mqtt, browser, tmp_path):
    """Issue 25: the fleet view lists each channel's offered release with
    the rollout in force, the schedule's next step, the hosts that
    attempted and failed it, and the halt muster-server published."""
    from update_fixtures import release_payloads
    pki = broker.pki
    chan = "page-rel"
    t = now_ms()
    pub = mqtt("pub:release")
    hosts = {h: mqtt(h) for h in ("h1", "h2", "h3")}
    s = Server(broker, tmp_path / "srv").start()
    try:
        pointer, _ = release_payloads(keys, chan, "9.9.9", b"agent", b"runner", rollout=10,
                                      extra={"schedule": [[t, 10], [t + 3600_000, 50]],
                                             "halt": {"failed_pct": 20, "min_hosts": 3}})
        pub.publish(topic("releases", chan), pointer, retain=True)
        browser.get(s.url)
        announce(hosts["h1"], pki, "h1", channel=chan, version="9.9.9")
        announce(hosts["h2"], pki, "h2", channel=chan, version="0.1.0",
                 update={"state": "rolled_back", "version": "9.9.9", "reason": "died"})
        announce(hosts["h3"], pki, "h3", channel=chan, version="0.1.0",
                 update={"state": "testing", "version": "9.9.9"})

        def row():
            return js(browser, """(function(c){
                const tr = [...document.querySelectorAll('#releases tbody tr')]
                    .find((r) => r.dataset.channel === c);
                return tr ? [...tr.querySelectorAll('td')].map((d) => d.textContent) : null;
            })(%r)""" % chan)
        wait_until(lambda: (row() or [""])[-1].startswith("halted: 1 of 3"), 30,
                   what="the page showing the halt")
        r = row()
        assert r[:3] == [chan, "9.9.9", "10%"], r
        assert r[3].startswith("50% at "), r
        assert r[4:9] == ["3", "1", "1", "1", "0"], r	# attempted: healthy, testing, failed
    finally:
        s.stop()
        pub.publish(topic("releases", chan, "halt"), b"", retain=True)
        pub.publish(topic("releases", chan), b"", retain=True)
        for h, c in hosts.items():
            c.publish(topic("hosts", h, "status"), b"", retain=True)
