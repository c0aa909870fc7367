# SPDX-License-Identifier: Apache-2.0
"""net.interfaces: getifaddrs and SIOCGIFMTU on this host."""
import fcntl
import socket
import struct

import pytest

SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1


def flags(name):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh14x", name.encode(), 0)
        return struct.unpack("16sh14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]


def test_loopback(run):
    r = run("net.interfaces")
    assert r.status == "pass", r
    lo = r.data["interfaces"]["lo"]
    assert lo["up"] is True
    assert "loopback" in lo["flags"] and "up" in lo["flags"]
    assert "127.0.0.1/8" in lo["addrs"]
    assert lo["mtu"] > 0
    assert lo["index"] == socket.if_nametoindex("lo")
    assert r.data["count"] == len(r.data["interfaces"])
    assert any(line.startswith("lo up 127.0.0.1/8") for line in r["output"])


def test_every_interface_listed(run):
    r = run("net.interfaces")
    names = {name for _, name in socket.if_nameindex()}
    assert names <= set(r.data["interfaces"]), r


def test_require_up(run):
    r = run("net.interfaces", require="lo")
    assert r.status == "pass", r


def test_require_missing_fails(run):
    r = run("net.interfaces", require="nosuch0")
    assert r.status == "fail", r
    assert r["reason"] == "interface nosuch0 does not exist"


def test_require_down_fails(run):
    down = [n for _, n in socket.if_nameindex() if not flags(n) & IFF_UP]
    if not down:
        pytest.skip("no interface is down here")
    r = run("net.interfaces", require=down[0])
    assert r.status == "fail", r
    assert r["reason"] == f"interface {down[0]} is down"
    assert r.data["interfaces"][down[0]]["up"] is False


def test_bad_argument_is_error(run):
    assert run("net.interfaces", require=["lo"]).status == "error"
