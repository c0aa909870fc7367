# SPDX-License-Identifier: Apache-2.0
"""qc.install: profiles of checks, each run by its module's own code."""
import json

import pytest

from conftest import FIXTURES, SOURCE

SEEDS = SOURCE / "seeds" / "qc"
FIXTURE_PROFILE = FIXTURES / "profiles" / "fixture.json"


def statuses(r):
    return {label: c["status"] for label, c in r.data["checks"].items()}


def test_fixture_profile_passes(run, profile, tools):
    p = profile(FIXTURE_PROFILE)
    r = run("qc.install", profile=p, _tools=tools)
    assert r.status == "pass", r
    labels = [c["name"] for c in p["checks"]]
    assert statuses(r) == {label: "pass" for label in labels}
    assert r.data["profile"] == "fixture"
    assert r.data["counts"] == {"pass": len(labels), "fail": 0, "error": 0}
    assert r["summary"] == (f"QC fixture: {len(labels)} checks, "
                            f"{len(labels)} pass, 0 fail, 0 error")
    # One line per check, in order, and nothing from the checks themselves.
    assert [line.split(":")[0] for line in r["output"]] == \
        [f"PASS {label}" for label in labels]


def test_checks_report_like_their_modules(run, profile, tools):
    """The data under checks/<label>/ is what the module alone reports."""
    p = profile(FIXTURE_PROFILE)
    r = run("qc.install", profile=p, _tools=tools)
    for spec in p["checks"]:
        args = {k: v for k, v in spec.items() if k not in ("kind", "name")}
        if spec["kind"] == "pkg.version":
            args["package"] = spec["name"]
        alone = run(spec["kind"], **args, _tools=tools)
        mine = dict(r.data["checks"][spec["name"]])
        assert mine.pop("kind") == spec["kind"]
        assert mine.pop("status") == alone.status
        assert mine.pop("summary") == alone["summary"]
        if spec["kind"] in ("sys.info", "net.interfaces", "disk.usage"):
            continue  # live numbers may move between the two runs
        assert mine == alone.data, spec["name"]


def test_one_failure_fails(run, profile, tools):
    p = profile(FIXTURE_PROFILE)
    p["checks"][0]["version_id"] = "11"
    r = run("qc.install", profile=p, _tools=tools)
    assert r.status == "fail", r
    c = r.data["checks"]["debian 12"]
    assert c["status"] == "fail"
    assert c["reason"] == 'VERSION_ID is "12", expected "11"'
    assert r["reason"] == "failed: debian 12"
    assert r["output"][0] == 'FAIL debian 12: VERSION_ID is "12", expected "11"'


def test_error_beats_fail(run, profile, tools):
    p = profile(FIXTURE_PROFILE)
    p["checks"][0]["version_id"] = "11"
    p["checks"].append({"kind": "no.such", "name": "mystery"})
    p["checks"].append({"kind": "file.check", "name": "no path"})
    r = run("qc.install", profile=p, _tools=tools)
    assert r.status == "error", r
    assert statuses(r)["mystery"] == "error"
    assert r.data["checks"]["mystery"]["reason"] == 'unknown kind "no.such"'
    assert r.data["checks"]["no path"]["reason"] == \
        'argument "path" is required'
    assert r.data["counts"] == {"pass": 6, "fail": 1, "error": 2}
    assert r["reason"] == "failed: debian 12; could not check: mystery, no path"


def test_checks_at_top_level(run, bindir, tools):
    checks = [{"kind": "file.check", "path": str(FIXTURES / "files")},
              {"kind": "file.check", "path": "/nonexistent/muster",
               "exists": False},
              {"kind": "pkg.version", "name": "bash installed",
               "package": "bash"}]
    r = run("qc.install", checks=checks, name="adhoc", _tools=tools)
    assert r.status == "pass", r
    # Unnamed checks are named by kind, made unique by position.
    assert statuses(r) == {"file.check": "pass", "file.check#2": "pass",
                           "bash installed": "pass"}
    assert r.data["profile"] == "adhoc"
    assert r.data["checks"]["bash installed"]["version"] == "5.2.15-2+b8"


def test_labels_made_keys(run):
    r = run("qc.install", checks=[
        {"kind": "file.check", "name": "a/b[]", "path": "/"}])
    assert statuses(r) == {"a_b__": "pass"}, r


def test_nested_data(run, profile, tools):
    r = run("qc.install", profile=profile(FIXTURE_PROFILE), _tools=tools)
    disks = r.data["checks"]["disks"]
    assert disks["filesystems"]["-"]["mount"] == "/"
    assert "127.0.0.1/8" in \
        r.data["checks"]["loopback"]["interfaces"]["lo"]["addrs"]


@pytest.mark.parametrize("args,reason", [
    ({}, "no list of checks"),
    ({"profile": "base"}, 'argument "profile" must be a map'),
    ({"profile": {"name": "x"}}, "no list of checks"),
    ({"profile": {"name": "x", "checks": []}}, "the profile has no checks"),
    ({"checks": {"kind": "os.release"}}, "no list of checks"),
    ({"checks": [{}] * 257}, "more than 256 checks"),
])
def test_bad_profiles(run, args, reason):
    r = run("qc.install", **args)
    assert r.status == "error", r
    assert r["reason"].startswith(reason), r["reason"]


def test_check_not_a_map(run):
    r = run("qc.install", checks=["os.release", {"kind": "os.release"}])
    assert r.status == "error", r
    assert r.data["checks"]["check"]["reason"] == "a check must be a map"
    assert r.data["checks"]["os.release"]["status"] == "pass"


def test_seed_profiles_are_well_formed():
    kinds = {"os.release", "sys.info", "net.interfaces", "disk.usage",
             "file.check", "pkg.version", "service.status"}
    for path in sorted(SEEDS.glob("*.json")):
        p = json.loads(path.read_text())
        assert p["name"] == path.stem
        names = [c["name"] for c in p["checks"]]
        assert len(names) == len(set(names)), path
        assert {c["kind"] for c in p["checks"]} <= kinds, path


def test_seed_base_passes_here(run):
    """base.json describes this kind of machine (Debian 12)."""
    r = run("qc.install", profile=json.loads((SEEDS / "base.json").read_text()))
    assert r.status == "pass", r
    assert r.data["counts"]["pass"] == 10


def test_seed_webhost_fails_on_a_base_host(run, bindir, tmp_path, tools):
    p = json.loads((SEEDS / "webhost.json").read_text())
    r = run("qc.install", profile=p, _tools=tools)
    assert r.status in ("fail", "error"), r  # error: no systemd here
    assert statuses(r)["nginx 1.22 or newer"] == "fail"
    assert statuses(r)["nginx config"] == "fail"
    # The same on a host with systemd (a fake one) but no nginx: a fail.
    for c in p["checks"]:
        if c["kind"] == "service.status":
            c["systemd_dir"] = str(tmp_path)
            c["unit"] = "ghost.service"
    r = run("qc.install", profile=p, _tools=tools)
    assert r.status == "fail", r
    assert statuses(r)["nginx running"] == "fail"
