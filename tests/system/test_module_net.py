# SPDX-License-Identifier: Apache-2.0
"""The module network declaration (issue 22, design.md §8, docs/security.md "Between jobs").

A module gets IPv4/IPv6 sockets only if it declares MUSTER_NEEDS_NET: for a
signed module the signed manifest must say "net" (musterd filters the runner
before exec, so not even an ELF constructor gets a socket), for a local one
(modules_dir, the host's own file) its descriptor decides; a policy rule's
net=no refuses the network whatever the module says.  The runner holds the
module to its descriptor as well: a module that does not declare the network
has none, whatever its manifest says.  The test modules tests/modules/
netprobe.c (no declaration) and netneed.c (MUSTER_NEEDS_NET) report what
they got in data; a listener on 127.0.0.1 stands for the broker and every
local TCP service.
"""
import errno
import socket
import threading

import pytest

from muster_fixtures import (
    TEST_MODULES_DIR, assert_no_sanitizer_reports, install_modules, module_payloads,
    new_job, pack, run_job, start_fresh, topic, unpack,
)

EPERM = errno.EPERM


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


@pytest.fixture
def listener():
    """A TCP port on 127.0.0.1 that accepts (and counts) connections."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    s.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = s.accept()
            except OSError:
                continue
            accepted.append(c)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield s.getsockname()[1], accepted
    stop.set()
    t.join()
    for c in accepted:
        c.close()
    s.close()


def publish(pub_client, keys, name, net):
    """Publish tests/modules/NAME.so signed, its manifest saying net or not
    (module_payloads() makes the manifest; "net" is added here, where
    `muster module publish` copies it from the descriptor)."""
    so = (TEST_MODULES_DIR / f"{name}.so").read_bytes()
    ptr, art, sha = module_payloads(keys, so, name, "1.0.0", 1)
    if net:
        manifest = unpack(unpack(ptr)["manifest"])
        manifest["net"] = True
        manifest = pack(manifest)
        sig = keys.pgp_sign(manifest)
        ptr = pack({"v": 1, "manifest": manifest, "sig": sig})
        art = pack({"v": 1, "manifest": manifest, "sig": sig, "so": so})
    pub_client.publish(topic("modules", name, sha), art, retain=True)
    pub_client.publish(topic("modules", name), ptr, retain=True)
    return sha


def agent(agents, tmp_path, policy=None, local=()):
    extra = {"modules": {"fetch_timeout": "5s", "prefetch_delay": "0"}}
    if policy is not None:
        pol = tmp_path / "policy"
        pol.write_text(policy)
        extra["trust"] = {"policy": str(pol)}
    a = agents("h1", wake_port=0, extra=extra)
    if local:
        install_modules(a, *local, src=TEST_MODULES_DIR)
    return start_fresh(a)


def probe(op_client, operator, module, port):
    body = new_job("run", "host/h1", module=module, args={"port": port})
    got = run_job(op_client, operator, body, ["h1"], timeout=30)
    assert "h1" in got, f"no result for {body['id']}"
    return got["h1"]


def assert_no_net(r, port_accepted, ctor):
    d = r["data"]
    assert r["status"] == "pass", r
    assert d["inet"]["errno"] == EPERM and d["inet6"]["errno"] == EPERM, d
    assert d["connect"] == {"ok": False, "errno": EPERM}, d
    assert d["unix"]["errno"] == 0, d		# Unix sockets stay
    assert d["ctor"]["errno"] == ctor, d
    assert port_accepted == [], "a module without the network reached 127.0.0.1"


def test_a_signed_module_without_the_declaration_has_no_network(
        agents, tmp_path, op_client, operator, pub_client, keys, listener):
    port, accepted = listener
    publish(pub_client, keys, "netprobe", net=False)
    agent(agents, tmp_path)
    r = probe(op_client, operator, "netprobe", port)
    # Filtered before exec: not even its constructor got a socket.
    assert_no_net(r, accepted, ctor=EPERM)


def test_a_manifest_saying_net_does_not_give_it_to_a_module_that_does_not_declare_it(
        agents, tmp_path, op_client, operator, pub_client, keys, listener):
    port, accepted = listener
    publish(pub_client, keys, "netprobe", net=True)
    agent(agents, tmp_path)
    r = probe(op_client, operator, "netprobe", port)
    # The runner holds it to its descriptor; the constructor ran before
    # the runner could read it (docs/modules.md says so).
    assert_no_net(r, accepted, ctor=0)


def test_a_declared_and_signed_module_reaches_the_network(
        agents, tmp_path, op_client, operator, pub_client, keys, listener):
    port, accepted = listener
    publish(pub_client, keys, "netneed", net=True)
    agent(agents, tmp_path)
    r = probe(op_client, operator, "netneed", port)
    d = r["data"]
    assert r["status"] == "pass", r
    assert d["connect"] == {"ok": True, "errno": 0}, d
    assert d["inet"]["errno"] == 0 and d["ctor"]["errno"] == 0, d
    assert len(accepted) >= 1


def test_a_declaration_missing_from_the_manifest_is_refused_with_the_reason(
        agents, tmp_path, op_client, operator, pub_client, keys, listener):
    port, accepted = listener
    publish(pub_client, keys, "netneed", net=False)
    agent(agents, tmp_path)
    r = probe(op_client, operator, "netneed", port)
    assert r["status"] == "error", r
    assert "needs the network" in r["reason"], r
    assert "signed manifest does not declare it" in r["reason"], r
    assert accepted == []


def test_policy_net_no_refuses_a_declared_module(
        agents, tmp_path, op_client, operator, pub_client, keys, listener):
    port, accepted = listener
    publish(pub_client, keys, "netneed", net=True)
    agent(agents, tmp_path, policy="allow * run:netneed host/h1 net=no\n"
                                   "allow * run:netprobe host/h1\n")
    r = probe(op_client, operator, "netneed", port)
    assert r["status"] == "error", r
    assert "policy says net=no" in r["reason"], r
    assert accepted == []


def test_a_local_module_follows_its_descriptor(
        agents, tmp_path, op_client, operator, listener):
    port, accepted = listener
    agent(agents, tmp_path, local=("netprobe", "netneed"))
    r = probe(op_client, operator, "netprobe", port)
    assert_no_net(r, accepted, ctor=0)
    r = probe(op_client, operator, "netneed", port)
    assert r["data"]["connect"] == {"ok": True, "errno": 0}, r
    assert len(accepted) >= 1


def test_policy_net_no_holds_for_a_local_module_too(
        agents, tmp_path, op_client, operator, listener):
    port, accepted = listener
    agent(agents, tmp_path, policy="allow * * host/* net=no\n", local=("netneed",))
    r = probe(op_client, operator, "netneed", port)
    assert r["status"] == "error" and "policy says net=no" in r["reason"], r
    assert accepted == []
