# SPDX-License-Identifier: Apache-2.0
"""The job announce (design.md §3, R/jobs/<job>) between Python and the C
codec (`muster-proto decode|encode announce`): the bounds of its expected
hosts and the rules an announce adds to a job's fields."""
import pytest

from wirekit import announce, pack, unpack


def test_minimal_ping_round_trips(proto):
    d = {"v": 1, "kind": "announce", "id": "p-1", "aud": "muster/v1",
         "issued_at": 1, "not_after": 2, "target": "all", "job_kind": "ping",
         "expected": []}
    assert unpack(proto.encode("announce", {k: v for k, v in d.items() if k != "v"})
                  .ok()) == d
    assert proto.decode("announce", pack(d)).ok()["expected"] == []


def test_fifty_thousand_hosts_and_no_more(proto):
    names = sorted("host-%05d" % i for i in range(50_001))
    d = dict(announce(), expected=names[:50_000])
    got = proto.decode("announce", pack(d)).ok()
    assert len(got["expected"]) == 50_000
    proto.decode("announce", pack(dict(d, expected=names))).refused(
        "more than 50000 hosts")


@pytest.mark.parametrize("expected,why", [
    (["web-2", "web-1"], "not sorted and unique at item 1"),
    (["web-1", "web-1"], "not sorted and unique at item 1"),
    (["Web-1"], "item 0 is not a host name"),
    (["web/1"], "item 0 is not a host name"),
    ([""], "item 0 is not a host name"),
    (["x" * 64], "item 0 is not a host name"),
    ([1], "item 0 is not a host name"),
])
def test_bad_expected_refused_both_ways(proto, expected, why):
    d = dict(announce(), expected=expected)
    proto.decode("announce", pack(d)).refused(why)
    if all(isinstance(h, str) for h in expected):
        proto.encode("announce", {k: v for k, v in d.items() if k != "v"}).refused(
            "cannot encode")


@pytest.mark.parametrize("change,why", [
    ({"kind": "job"}, "key 'kind'"),
    ({"job_kind": "cancel"}, "key 'job_kind'"),
    ({"id": "invalid-0011223344556677"}, "reserved prefix"),
    ({"filter": [["os.id", "=~", "x"]]}, "unknown operator"),
    ({"args": [1]}, "key 'args'"),
])
def test_announce_rules(proto, change, why):
    proto.decode("announce", pack(dict(announce(), **change))).refused(why)


def test_args_only_with_run(proto):
    d = dict(announce(), job_kind="ping")
    del d["module"]
    got = proto.decode("announce", pack(d)).ok()
    assert "args" not in got	# a ping's args are not read
    proto.encode("announce", {k: v for k, v in d.items() if k != "v"}).refused(
        "run only")
