# SPDX-License-Identifier: Apache-2.0
"""The live page of muster-server in a real headless chromium (issue 13):
it loads, a job sent to the fleet appears and its pass/fail counts reach
the right numbers without a reload, a host going offline changes colour,
and a screenshot is saved as a test artefact."""
from __future__ import annotations

import time

import pytest

from muster_fixtures import (collect_results, new_job, send_job, wait_until,
                             watch_results)
from server_fixtures import (ARTIFACTS, SERVER_BIN, Server, browser_available, chromium)

why = browser_available() or (None if SERVER_BIN.exists() else f"{SERVER_BIN} is not built")
pytestmark = pytest.mark.skipif(why is not None, reason=why or "")


@pytest.fixture
def browser(tmp_path):
    d = chromium(tmp_path / "chromium-profile")
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def js(d, expr):
    return d.execute_script("return " + expr)


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


def test_live_page(broker, agents, op_client, operator, tmp_path, browser):
    server = Server(broker, tmp_path / "server").start()
    try:
        fleet = {h: agents(h) for h in ("h1", "h2", "h3")}
        for a in fleet.values():
            a.start()
        browser.get(server.url + "/")
        assert browser.title == "muster fleet"
        wait_until(lambda: js(browser, "document.getElementById('conn').textContent") == "live",
                   15, what="the event stream")
        wait_until(lambda: all(host_class(browser, h) == "host online" for h in fleet), 15,
                   what="three hosts online on the page")
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

        # A job's results, failures first, on click.
        browser.execute_script(
            "[...document.querySelectorAll('#jobs tbody tr')].find((r) => r.dataset.job === "
            "arguments[0]).click()", fail["id"])
        wait_until(lambda: js(browser, "document.querySelectorAll('#detail-table tbody tr')"
                              ".length") == 2, 10, what="the job's results table")

        fleet["h3"].stop()
        wait_until(lambda: host_class(browser, "h3") == "host offline", 15,
                   what="h3 offline on the page")
        assert host_colour(browser, "h3") != green
        assert host_class(browser, "h1") == "host online"
        assert js(browser, "window.notReloaded") == 42
        time.sleep(0.3)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "server-page.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 1000
        logs = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        assert logs == [], logs
    finally:
        server.stop()
