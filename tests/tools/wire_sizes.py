#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""wire_sizes - measure what muster puts on the wire, for the scale model
in docs/brokers.md.

Starts the test fixtures' real pieces in a temp folder (gen-pki, gen-keys,
a Mosquitto from broker-config/dev.conf.in, one real musterd, MQTT 5, TLS),
sends real signed jobs and records the exact payload bytes of each message
and the MQTT packet each makes (fixed header + topic + packet id +
properties).  Prints a table (markdown) and, with --json, the raw numbers.

    MUSTER_SOURCE_DIR=. MUSTER_BUILD_DIR=build /usr/bin/python3 tests/tools/wire_sizes.py
"""
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))

from muster_fixtures import (  # noqa: E402
    Agent, Broker, gen_keys, gen_pki, install_modules, new_job, topic,
    watch_results,
)


def varint_len(n: int) -> int:
    return 1 if n < 128 else 2 if n < 16384 else 3 if n < 2097152 else 4


def publish_packet(topic_: str, payload: int, qos: int = 1,
                   props: int = 0, v5: bool = True) -> int:
    """Bytes of an MQTT PUBLISH: fixed header, topic, packet id (QoS>0),
    properties length (+ properties) in MQTT 5, payload."""
    rest = 2 + len(topic_.encode()) + (2 if qos else 0) + payload
    if v5:
        rest += varint_len(props) + props
    return 1 + varint_len(rest) + rest


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="muster-wire-"))
    pki = gen_pki(tmp / "pki", hosts=["h1:web"], operators=["alice"])
    keys = gen_keys(tmp / "keys", operators=["alice"], publisher="release")
    broker = Broker(pki, tmp / "broker").start()
    out = {}
    try:
        op = broker.client("op:alice")
        op.subscribe(topic("hosts", "+", "status"))
        a = Agent("h1", broker, keys, tmp / "agent", groups=["web"],
                  sync_acl=False)
        install_modules(a, "os.release", "sys.info")
        a.start()
        st = op.get(5, match=lambda m: m.decode().get("state") == "online")
        out["status online (retained)"] = (st.topic, len(st.payload))
        key = keys.operator("alice")
        for label, job in [
                ("job ping (broadcast)", new_job("ping", "all")),
                ("job run os.release", new_job("run", "all",
                                               module="os.release")),
                ("job run sys.info", new_job("run", "all",
                                             module="sys.info")),
        ]:
            env = key.envelope(job)
            out[label] = (topic("all", "jobs"), len(env))
            watch_results(op, job["id"])
            op.publish(topic("all", "jobs"), env, qos=1)
            r = op.get(15, topic=topic("results", job["id"], "+"))
            rl = label.replace("job", "result")
            out[rl] = (r.topic, len(r.payload))
        a.kill9()
        will = op.get(40, match=lambda m: m.decode().get("reason") == "lost")
        out["status offline: the will (retained)"] = (will.topic,
                                                      len(will.payload))
        a.start()
        a.stop()
        bye = op.get(10, match=lambda m: m.decode().get("reason") ==
                     "shutdown")
        out["status offline: shutdown (retained)"] = (bye.topic,
                                                      len(bye.payload))
        op.close()
    finally:
        broker.stop()
        keys.kill_gpg_agents()

    rows = []
    for label, (t, n) in out.items():
        # A job as the broker forwards it to an agent: QoS 1, no
        # properties; an agent's publish: QoS 1 (the retained status too).
        rows.append({"message": label, "topic": t, "payload": n,
                     "mqtt5_publish": publish_packet(t, n),
                     "mqtt311_publish": publish_packet(t, n, v5=False)})
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=1))
    else:
        print("| message | payload bytes | PUBLISH bytes (MQTT 5 / 3.1.1) |")
        print("|---|---|---|")
        for r in rows:
            print(f"| {r['message']} | {r['payload']} | "
                  f"{r['mqtt5_publish']} / {r['mqtt311_publish']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
