# SPDX-License-Identifier: Apache-2.0
"""Facts messages (design.md §3) built in Python and decoded by the C
decoder, and written by the C encoder and read in Python: each value type
kept as it is (a bool is not an integer, a digit string is not a number),
and every bound and refusal with its reason.  A job's filter both ways:
the decoder takes any array (the agent reads it, and refuses a malformed
one under the job's id), the encoder writes only a well-formed one.  The generic checks of every
type (missing keys, duplicates, ext, trailing bytes) are in test_decode.py
and test_encode.py."""
import pytest

from wirekit import Raw, facts, job, job_view, pack, raw_map, typed, unpack


def with_facts(f):
    return dict(facts(), facts=f)


def test_values_keep_their_types_both_ways(proto):
    d = facts()
    shown = proto.decode("facts", pack(d)).ok()
    assert typed(shown["facts"]) == typed(d["facts"])
    data = proto.encode("facts", {k: v for k, v in d.items() if k != "v"}).ok()
    assert typed(unpack(data)) == typed(d)


def test_encoding_is_sorted_and_stable(proto):
    """The agent compares facts by their bytes: the same set in another
    order encodes the same."""
    f = facts()["facts"]
    a = proto.encode("facts", {"host": "h", "at": 1, "facts": f}).ok()
    b = proto.encode("facts", {"host": "h", "at": 1,
                               "facts": dict(reversed(list(f.items())))}).ok()
    assert a == b
    assert list(unpack(a)["facts"]) == sorted(f)


def test_bounds_taken(proto):
    f = {f"f{i}": "x" * 1024 for i in range(50)}
    f["l"] = ["y" * 1024] * 64
    f["n" * 63] = 2**63 - 1
    f["m"] = -2**63
    assert proto.decode("facts", pack(with_facts(f))).ok()["facts"] == f
    # ... but not all of them at once past the message's 128 KiB.
    f.update({f"g{i}": "x" * 1024 for i in range(20)})
    proto.decode("facts", pack(with_facts(f))).refused(
        "facts message is over 131072 bytes")


@pytest.mark.parametrize("f,why", [
    ({f"f{i}": i for i in range(257)}, "key 'facts' has more than 256 facts"),
    ({"a": "x" * 1025}, "fact a: a string over 1024 bytes or with a NUL"),
    ({"a": "x\0y"}, "fact a: a string over 1024 bytes or with a NUL"),
    ({"a": ["x"] * 65}, "fact a: a list of more than 64 items"),
    ({"a": ["x", 1]}, "fact a: a list item that is not a string"),
    ({"a": 1.5}, "fact a: not a string, integer, bool or list of strings"),
    ({"a": None}, "fact a: not a string, integer, bool or list of strings"),
    ({"a": {"b": 1}}, "fact a: not a string, integer, bool or list of strings"),
    ({"a": b"bin"}, "fact a: not a string, integer, bool or list of strings"),
    ({"a": 2**63}, "fact a: an integer over 2^63-1"),
    ({"n" * 64: 1}, "key 'facts' has a name that is not a fact name"),
    ({"OS.id": 1}, "key 'facts' has a name that is not a fact name"),
    ({"a..b": 1}, "key 'facts' has a name that is not a fact name"),
    ({"a.": 1}, "key 'facts' has a name that is not a fact name"),
])
def test_refused(proto, f, why):
    proto.decode("facts", pack(with_facts(f))).refused(why)


def test_duplicate_fact_refused(proto):
    """Python's dicts cannot repeat a key: the facts map is spliced raw."""
    inner = Raw(raw_map([("a", 1), ("a", 2)]))
    msg = raw_map([("v", 1), ("host", "h"), ("at", 1), ("facts", inner)])
    proto.decode("facts", msg).refused("key 'facts' has a twice")


@pytest.mark.parametrize("f", [
    {"a": 1.5}, {"a": None}, {"a": {"b": 1}}, {"A": 1}, {"a": ["x", 2]},
    {f"f{i}": i for i in range(257)},
])
def test_encoder_refuses_what_decoder_refuses(proto, f):
    proto.encode("facts", {"host": "h", "at": 1, "facts": f}).refused()


FILTER = [["os.id", "==", "debian"], ["mem_mb", "<", 4096], ["custom.db", "!=", False],
          ["kernel", "~", "6.*"], ["groups", "has", "web"], ["temp", ">=", -10],
          ["os.version_id", "<=", "12"], ["cpus", ">", 0]]


def test_job_filter_python_to_c(proto):
    d = job("ping", filter=FILTER)
    assert proto.decode("job", pack(d)).ok() == job_view(d)
    # Malformed, but an array: the body decodes, the agent refuses the job.
    d = job("ping", filter=[["os.id", "=", "debian"]])
    assert proto.decode("job", pack(d)).ok()["filter"] == d["filter"]
    proto.decode("job", pack(job("ping", filter={"os.id": "debian"}))).refused(
        "key 'filter' must be an array")


def test_job_filter_c_to_python(proto):
    given = {k: v for k, v in job("run", filter=FILTER, args={"a": 1}).items()
             if k != "v"}
    data = proto.encode("job", given).ok()
    assert typed(unpack(data)["filter"]) == typed(FILTER)


@pytest.mark.parametrize("flt,why", [
    ([["os.id", "=", "debian"]], "filter predicate 1: unknown operator '='"),
    ([["OS", "==", "x"]], "filter predicate 1: the fact is not a fact name"),
    ([["a", "~", 1]], "filter predicate 1: '~' wants a string"),
    ([["a", "==", 1.5]], "filter predicate 1: the value is not a string"),
    ([["a", "=="]], "filter predicate 1 is not [fact, op, value]"),
    ([["a", "==", "b"]] * 33, "filter has more than 32 predicates"),
])
def test_job_encoder_refuses_malformed_filter(proto, flt, why):
    given = {k: v for k, v in job("ping", filter=flt).items() if k != "v"}
    proto.encode("job", given).refused(why)
