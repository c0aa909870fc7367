# SPDX-License-Identifier: Apache-2.0
"""Fixtures for muster's system tests; the helpers are in muster_fixtures.py.

Session: one PKI and one set of signing keys for every test.
  hosts      h1 (groups web), h2 (web, db), h3 (db)    CN = host name
  operator   alice: TLS cert CN "op:alice", Ed25519 job key keys/operators/alice
  publisher  release: TLS cert CN "pub:release", OpenPGP key keys/gnupg
  server     main: TLS cert CN "srv:main"
Per test: a fresh broker (its own port, database and log), MQTT clients,
agents; all stopped at teardown.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from muster_fixtures import (  # noqa: E402
    Agent, Broker, gen_keys, gen_pki,
)

HOSTS = {"h1": ["web"], "h2": ["web", "db"], "h3": ["db"]}
OPERATOR = "alice"
PUBLISHER = "release"
SERVER = "main"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """gen-pki output (muster_fixtures.Pki): pki.cert("h1"), pki.ca, ..."""
    return gen_pki(tmp_path_factory.mktemp("pki"),
                   hosts=[f"{h}:{','.join(g)}" for h, g in HOSTS.items()],
                   operators=[OPERATOR], publishers=[PUBLISHER],
                   servers=[SERVER])


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """gen-keys output (muster_fixtures.Keys): the trusted operator alice
    and the pinned publisher."""
    k = gen_keys(tmp_path_factory.mktemp("keys"), operators=[OPERATOR],
                 publisher=PUBLISHER)
    yield k
    k.kill_gpg_agents()


@pytest.fixture(scope="session")
def untrusted_keys(tmp_path_factory):
    """An operator key (mallory) and a publisher key (rogue) no agent trusts."""
    k = gen_keys(tmp_path_factory.mktemp("untrusted"), operators=["mallory"],
                 publisher="rogue")
    yield k
    k.kill_gpg_agents()


@pytest.fixture
def operator(keys):
    """alice's job signing key (muster_fixtures.OperatorKey)."""
    return keys.operator(OPERATOR)


@pytest.fixture
def broker(pki, tmp_path):
    """A running mosquitto (muster_fixtures.Broker) for this test."""
    b = Broker(pki, tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def mqtt(broker):
    """mqtt(cn, **kw) -> a connected muster_fixtures.Client; all closed at
    teardown.  cn: "h1", "op:alice", "pub:release", "srv:main", or None."""
    clients = []

    def make(cn, **kw):
        c = broker.client(cn, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        try:
            c.close()
        except Exception:
            pass


@pytest.fixture
def op_client(mqtt):
    """An operator's MQTT client (CN op:alice)."""
    return mqtt(f"op:{OPERATOR}")


@pytest.fixture
def pub_client(mqtt):
    """The publisher's connection (pub:release): module and release topics."""
    return mqtt("pub:release")


@pytest.fixture
def agents(broker, keys, tmp_path):
    """agents(name, groups=..., **kw) -> a muster_fixtures.Agent (not yet
    started); every agent is stopped at teardown."""
    made = []

    def make(name, **kw):
        kw.setdefault("groups", HOSTS.get(name, []))
        a = Agent(name, broker, keys, tmp_path / f"agent-{name}", **kw)
        made.append(a)
        return a

    yield make
    for a in made:
        a.cleanup()
