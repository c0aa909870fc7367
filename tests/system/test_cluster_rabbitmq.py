# SPDX-License-Identifier: Apache-2.0
"""muster on a real RabbitMQ cluster (issue 15, docs/brokers.md).

Three nodes of Debian's rabbitmq-server (3.10) with the MQTT plugin, started
once for this module (tests/system/rabbitmq_cluster.py), TLS with client
certificates from scripts/gen-pki and the CN as the user name, topic
permissions from broker-config/acl.  Agents and clients speak MQTT 3.1.1
(RabbitMQ 3.10 has no MQTT 5) and are spread over the nodes; every agent is
given every node's URI, its own node first.

Three nodes, not two: the 3.10 MQTT plugin tracks client ids in Raft and
accepts connections only while a majority of nodes is up, so a two-node
cluster cannot lose a node (test_majority_lost_refuses_connections shows
what then happens).

What RabbitMQ 3.10 does differently from Mosquitto, each tested here:
retained messages are kept per node and delivered only to subscriptions of
the exact topic; a '.' inside a topic level comes out as '/'; a publish or
subscribe outside the user's permissions closes the connection.

Skips (with the reason) when rabbitmq-server is not installed:
`scripts/setup --cluster` installs it.
"""
import time

import pytest

from muster_fixtures import (
    Agent, ConnectError, TEST_MODULES_DIR, assert_no_sanitizer_reports,
    install_modules, module_payloads, new_job, send_job, spool_files, topic,
    tcp_conns, tls_probe, wait_until, watch_results,
)
from rabbitmq_cluster import RabbitCluster, rabbitmq_missing, rabbitmq_version

MISSING = rabbitmq_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

HOSTS = {"h1": ["web"], "h2": ["web", "db"], "h3": ["db"]}
# Each agent's own node first (index into cluster.nodes).
HOME_NODE = {"h1": 0, "h2": 1, "h3": 2}
FAST_RETRY = {"retry_min": "200ms", "retry_max": "2s"}


@pytest.fixture(scope="module")
def cluster(pki, tmp_path_factory):
    t = time.monotonic()
    try:
        c = RabbitCluster(pki, tmp_path_factory.mktemp("rabbitmq"), nodes=3).start()
    except RuntimeError as e:
        # RabbitMQ 3.10's MQTT plugin now and then forms its client-id Raft
        # group badly when three nodes start at once on a loaded machine
        # ("client ID registration timed out" on one node, for good): a
        # fresh cluster once, with the first failure's reason shown.
        print(f"\nRabbitMQ cluster start failed, starting a fresh one: "
              f"{str(e).splitlines()[0]}")
        c = RabbitCluster(pki, tmp_path_factory.mktemp("rabbitmq"), nodes=3).start()
    print(f"\nRabbitMQ {rabbitmq_version()}: {len(c.nodes)} nodes up in "
          f"{time.monotonic() - t:.1f}s")
    yield c
    c.stop()


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    assert_no_sanitizer_reports()


@pytest.fixture
def full_cluster(cluster):
    """The cluster with every node up (a test before may have stopped one)."""
    for n in cluster.nodes:
        if not n.running:
            n.start()
    for n in cluster.nodes:
        n.wait_ready()
    cluster.check_cluster()
    return cluster


@pytest.fixture
def clients(full_cluster):
    made = []

    def make(cn, node, **kw):
        c = full_cluster.client(cn, node=node, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def agents(full_cluster, keys, tmp_path):
    """agents(name, node=None, **kw): a musterd in 3.1.1 mode with every
    node's URI, node `node` (default: its HOME_NODE) first."""
    made = []

    def make(name, node=None, broker=None, **kw):
        kw.setdefault("groups", HOSTS.get(name, []))
        first = HOME_NODE.get(name, 0) if node is None else node
        extra = kw.pop("extra", {})
        b = {"protocol": "3.1.1", "uri": full_cluster.uris(first)}
        b.update(FAST_RETRY)
        b.update(extra.pop("broker", {}))
        extra["broker"] = b
        a = Agent(name, full_cluster, keys, tmp_path / f"agent-{name}",
                  extra=extra, **kw)
        made.append(a)
        return a

    yield make
    for a in made:
        a.cleanup()


def status_watch(clients, node):
    """An operator subscribed (live) to every host's status on `node`."""
    w = clients("op:alice", node)
    w.subscribe(topic("hosts", "+", "status"))
    return w


def wait_presence(watch, host, state, timeout=20, since_ms=0, reason=None):
    def ok(m):
        if m.topic != topic("hosts", host, "status"):
            return False
        s = m.decode()
        return s.get("state") == state and s.get("at", 0) >= since_ms and \
            (reason is None or s.get("reason") == reason)
    m = watch.get(timeout, match=ok)
    assert m is not None, f"{host}: no live '{state}' status in {timeout}s"
    return m.decode()


def start_agents(agents, watch, *names, **kw):
    out = []
    for n in names:
        a = agents(n, **kw)
        a.start(wait_online=False)
        out.append(a)
    for a in out:
        wait_presence(watch, a.name, "online", since_ms=a.started_ms - 1000)
    return out


def results(op, job_id, hosts, timeout=20, settle=1.0):
    """{host: [decoded result, ...]} for job_id: every result that arrived,
    so doubles show.  Decoding checks each host's signature (as the CLI)."""
    want = set(hosts)
    got = {}
    filt = topic("results", job_id, "+")
    deadline = time.monotonic() + timeout
    while not want <= set(got):
        m = op.get(max(0.0, deadline - time.monotonic()), topic=filt)
        if m is None:
            break
        r = m.decode()
        got.setdefault(r["host"], []).append(r)
    for m in op.collect(settle, topic=filt):
        r = m.decode()
        got.setdefault(r["host"], []).append(r)
    return got


def connected_node(cluster, agent, timeout=20):
    """Index of the node the agent's session is connected to (its
    established TCP connection to a node's MQTT port, from /proc)."""
    def find():
        for i, n in enumerate(cluster.nodes):
            if "ESTABLISHED" in tcp_conns(agent.pid, n.port):
                return (i,)
        return None
    return wait_until(find, timeout, what=f"{agent.name}'s connection")[0]


# ---- the cluster itself ------------------------------------------------------


def test_cluster_runs_every_node_with_tls_client_certificates(full_cluster, pki):
    c = full_cluster
    assert c.running_nodes() == sorted(n.name for n in c.nodes)
    for n in c.nodes:
        # A certificate from our CA: in (CN = user name).
        assert tls_probe("127.0.0.1", n.port, pki.ca, pki.cert("h1"),
                         pki.key("h1"), server_hostname="localhost",
                         protocol=4) == "connack:0"
        # No client certificate: refused in the TLS handshake.
        r = tls_probe("127.0.0.1", n.port, pki.ca, server_hostname="localhost",
                      protocol=4)
        assert r.startswith("tls:") or r == "closed", r


def test_cn_without_user_is_refused(full_cluster, pki, tmp_path):
    """A valid certificate whose CN is no RabbitMQ user cannot log in: the
    user list is the fleet's inventory, as the ACL is on Mosquitto."""
    pki.run("--host", "stranger")	# certificate only; no user made
    try:
        r = tls_probe("127.0.0.1", full_cluster.nodes[1].port, pki.ca,
                      pki.cert("stranger"), pki.key("stranger"),
                      server_hostname="localhost", protocol=4)
        assert r in ("connack:4", "connack:5", "closed"), r
    finally:
        pki.run("--revoke", "stranger")


# ---- jobs and results across nodes --------------------------------------------


def test_jobs_to_a_host_a_group_and_all(agents, clients, operator):
    """Agents on three different nodes, the operator on a fourth position
    (node b): each job gets exactly one signed result per target host."""
    watch = status_watch(clients, 0)
    start_agents(agents, watch, "h1", "h2", "h3")
    op = clients("op:alice", 1)
    cases = [("host/h1", {"h1"}), ("group/web", {"h1", "h2"}),
             ("group/db", {"h2", "h3"}), ("all", {"h1", "h2", "h3"})]
    for target, hosts in cases:
        job = new_job("ping", target, ttl_s=60)
        watch_results(op, job["id"])
        send_job(op, operator, job)
        got = results(op, job["id"], hosts)
        assert set(got) == hosts, (target, got)
        for h, rs in got.items():
            assert len(rs) == 1, (target, h, rs)
            assert rs[0]["status"] == "pass", rs[0]
            assert rs[0]["job"] == job["id"]


def test_run_job_result_crosses_nodes(agents, clients, operator):
    """A module run (local module folder) on h3 (node c), watched on node a."""
    watch = status_watch(clients, 0)
    a = agents("h3")
    install_modules(a, "os.release")
    a.start(wait_online=False)
    wait_presence(watch, "h3", "online", since_ms=a.started_ms - 1000)
    op = clients("op:alice", 0)
    job = new_job("run", "host/h3", module="os.release", ttl_s=60)
    watch_results(op, job["id"])
    send_job(op, operator, job)
    got = results(op, job["id"], {"h3"})
    assert [r["status"] for r in got["h3"]] == ["pass"], got
    assert got["h3"][0]["module"] == "os.release"


# ---- presence -------------------------------------------------------------------


def test_presence_and_the_will_across_nodes(agents, clients, full_cluster):
    """online, a clean stop ("shutdown") and a crash (the will, "lost"),
    all seen live by an operator on another node than the agent's."""
    watch = status_watch(clients, 0)
    a, = start_agents(agents, watch, "h2")	# home node b
    assert connected_node(full_cluster, a) == 1
    t = int(time.time() * 1000)
    a.stop()
    s = wait_presence(watch, "h2", "offline", since_ms=t - 1000)
    assert s["reason"] == "shutdown", s
    a.start(wait_online=False)
    wait_presence(watch, "h2", "online", since_ms=a.started_ms - 1000)
    a.kill9()	# the broker publishes the will once the TLS session dies
    s = wait_presence(watch, "h2", "offline", timeout=30, reason="lost")
    assert s["host"] == "h2"


def test_retained_status_is_per_node_and_exact_topic_only(
        agents, clients, full_cluster):
    """RabbitMQ 3.10 keeps retained messages in a store of the node that
    received them and looks them up by the exact topic of a SUBSCRIBE: an
    operator on another node, or any wildcard subscription (`muster hosts`
    subscribes to R/hosts/+/status), gets no retained status.  Documented in
    docs/brokers.md; if this fails, RabbitMQ changed and the doc must too."""
    watch = status_watch(clients, 0)
    a, = start_agents(agents, watch, "h3")	# home node c
    assert connected_node(full_cluster, a) == 2
    exact = topic("hosts", "h3", "status")

    def retained(node, filt):
        c = clients("op:alice", node)
        c.subscribe(filt)
        m = c.get(2, match=lambda m: m.retain)
        c.close()
        return m.decode() if m else None

    on_own = retained(2, exact)
    assert on_own is not None and on_own["state"] == "online", on_own
    assert retained(0, exact) is None
    assert retained(1, exact) is None
    assert retained(2, topic("hosts", "+", "status")) is None


# ---- modules over the cluster -----------------------------------------------------


def test_module_fetch_needs_the_artifact_on_the_agents_node(
        agents, clients, keys, operator):
    """Retained pointers and artifacts are per node: published through node
    a only, an agent on node b cannot fetch the module; published through
    every node (what a publisher must do on RabbitMQ 3.10), it can."""
    so = (TEST_MODULES_DIR / "echoargs.so").read_bytes()
    ptr, art, sha = module_payloads(keys, so, "echoargs", "1.0.0", 1)
    pub_a = clients("pub:release", 0)
    pub_a.publish(topic("modules", "echoargs", sha), art, retain=True)
    pub_a.publish(topic("modules", "echoargs"), ptr, retain=True)

    watch = status_watch(clients, 0)
    a, = start_agents(agents, watch, "h2", extra={
        "modules": {"fetch_timeout": "3s", "prefetch_delay": "0"}})
    op = clients("op:alice", 0)

    def run():
        job = new_job("run", "host/h2", module="echoargs", args={"x": 1},
                      ttl_s=60)
        watch_results(op, job["id"])
        send_job(op, operator, job)
        return results(op, job["id"], {"h2"}, timeout=15)["h2"]

    r = run()
    assert [x["status"] for x in r] == ["error"], r
    for node in (1, 2):
        p = clients("pub:release", node)
        p.publish(topic("modules", "echoargs", sha), art, retain=True)
        p.publish(topic("modules", "echoargs"), ptr, retain=True)
    r = run()
    assert [x["status"] for x in r] == ["pass"], r
    assert r[0]["module_sha256"] == sha


def test_dot_in_a_topic_level_comes_back_as_a_slash(clients, keys):
    """RabbitMQ maps MQTT '/' to AMQP '.' and back, so a '.' inside a level
    is a level separator: R/modules/os.release is delivered as
    R/modules/os/release.  Module names with a '.' cannot be fetched over
    RabbitMQ (docs/brokers.md); job ids made by the CLI have no '.'."""
    sub = clients("h1", 1)
    sub.subscribe(topic("modules", "os.release"))
    pub = clients("pub:release", 1)
    pub.publish(topic("modules", "os.release"), b"x", retain=False)
    m = sub.get(5)
    assert m is not None
    assert m.topic == topic("modules", "os", "release")


def test_publish_outside_permissions_closes_the_connection(clients):
    """Mosquitto drops a denied PUBLISH and keeps the client; RabbitMQ
    closes its connection.  Here h1 tries to write h2's result."""
    h1 = clients("h1", 0)
    with pytest.raises(ConnectError):
        h1.publish(topic("results", "j1", "h2"), b"forged")
    assert not h1.connected
    op = clients("op:alice", 0)
    with pytest.raises(TimeoutError):
        op.subscribe(topic("hosts", "h1", "jobs"), timeout=3)


def test_announce_operator_writes_server_reads(clients):
    """The job announce (R/jobs/<job>) across nodes: an operator may write
    it (RabbitMQ would close its connection otherwise, and the job after
    it would not go out) and muster-server may read it."""
    srv = clients("srv:main", 2)
    srv.subscribe(topic("jobs", "+"))
    op = clients("op:alice", 0)
    op.publish(topic("jobs", "j-1"), b"announce")
    m = srv.get(10)
    assert m is not None and m.topic == topic("jobs", "j-1") and m.payload == b"announce"
    assert op.connected


# ---- sessions and fail-over -------------------------------------------------------


def test_persistent_session_moves_to_another_node(agents, clients, operator,
                                                  full_cluster):
    """The agent's session (clean session 0; a quorum queue with
    mqtt.durable_queue_type = quorum) keeps a job sent while the agent was
    away, and hands it over on another node than the one it was made on."""
    watch = status_watch(clients, 0)
    a, = start_agents(agents, watch, "h1", node=0)
    assert connected_node(full_cluster, a) == 0
    a.stop()
    op = clients("op:alice", 2)
    job = new_job("ping", "host/h1", ttl_s=120)
    watch_results(op, job["id"])
    send_job(op, operator, job)	# queued in h1's session
    a.conf["broker"]["uri"] = full_cluster.uris(1)	# node b first now
    a.write_conf()
    a.start(wait_online=False)
    got = results(op, job["id"], {"h1"}, timeout=20)
    assert connected_node(full_cluster, a) == 1
    assert [r["status"] for r in got.get("h1", [])] == ["pass"], got


def test_node_lost_mid_stream_no_result_lost_or_doubled(
        agents, clients, operator, full_cluster):
    """Node a dies (SIGKILL) while broadcast jobs stream in: h1, whose
    session is on node a, reconnects to a live node within its back-off;
    every job gets exactly one result from every host."""
    c = full_cluster
    watch = status_watch(clients, 2)
    agents_ = start_agents(agents, watch, "h1", "h2", "h3")
    h1 = agents_[0]
    assert connected_node(c, h1) == 0
    op = clients("op:alice", 2)
    op.subscribe(topic("results", "+", "+"))
    jobs = []
    for i in range(12):
        job = new_job("ping", "all", ttl_s=120)
        jobs.append(job["id"])
        send_job(op, operator, job)
        if i == 4:
            killed_ms = int(time.time() * 1000)
            c.nodes[0].kill()
        time.sleep(0.3)
    want = {(j, h) for j in jobs for h in HOSTS}
    got = {}
    deadline = time.monotonic() + 60
    while not want <= set(got) and time.monotonic() < deadline:
        m = op.get(1, topic=topic("results", "+", "+"))
        if m is None:
            continue
        r = m.decode()
        got.setdefault((r["job"], r["host"]), []).append(r)
    for m in op.collect(2, topic=topic("results", "+", "+")):
        r = m.decode()
        got.setdefault((r["job"], r["host"]), []).append(r)
    missing = sorted(want - set(got))
    assert not missing, f"lost results {missing}\n" + h1.log()[-3000:]
    doubled = {k: v for k, v in got.items() if len(v) > 1}
    assert not doubled, f"doubled results {doubled}"
    assert all(v[0]["status"] == "pass" for v in got.values())
    # h1 lost node a, came back on a live node within its back-off
    # (retry_min 200 ms .. retry_max 2 s, plus up to 5 s of reconnect
    # splay; the kill resets the TCP connection at once) and found its
    # session there (a quorum queue).
    log = h1.log()
    assert "connection lost" in log, log[-3000:]
    assert "connected to the broker (session resumed)" in \
        log[log.index("connection lost"):], log[-3000:]
    assert connected_node(c, h1) in (1, 2)
    back = wait_presence(watch, "h1", "online", timeout=5,
                         since_ms=killed_ms - 1000)
    took = (back["at"] - killed_ms) / 1000
    print(f"\nh1 back online {took:.2f}s after node a was killed")
    assert took < 10, took
    wait_until(lambda: not spool_files(h1), 10, what="h1's spool to drain")


def test_majority_lost_refuses_connections(full_cluster, pki):
    """The documented limit behind the three nodes: with two of three nodes
    down the survivor accepts no MQTT connection - so a two-node cluster
    cannot lose a node.  (Under pause_minority the survivor stops its
    listeners, "Cluster minority/secondary status detected"; the MQTT
    plugin's client-id registry in Raft would have no majority either.)
    It is the lost majority that refuses: the survivor took connections
    before, its node lives on, and it takes them again once a second node
    is back."""
    c = full_cluster
    a = c.nodes[0]

    def probe():
        return tls_probe("127.0.0.1", a.port, pki.ca, pki.cert("h1"),
                         pki.key("h1"), server_hostname="localhost",
                         timeout=15, protocol=4)

    assert probe() == "connack:0"
    mark = len(a.log())
    c.nodes[1].kill()
    c.nodes[2].kill()
    wait_until(lambda: "Cluster minority/secondary status detected" in a.log()[mark:],
               60, what="node a to see it is a minority")
    r = wait_until(lambda: (lambda r: r if r != "connack:0" else None)(probe()),
                   30, interval=0.5, what="node a to refuse connections")
    assert a.running, r
    # A majority again: node a takes connections by itself.
    c.nodes[1].start()
    c.nodes[1].wait_ready()
    assert a.running
    assert a.wait_mqtt(timeout=60) == "connack:0"


# ---- the CLI's expected hosts from muster-server (issue 24) --------------------


def cli_conf(path, cluster, node, keys, server_url=None):
    pki = cluster.pki
    text = (f"[broker]\nuri = {cluster.nodes[node].uri}\nca = {pki.ca}\n"
            f"cert = {pki.cert('op:alice')}\nkey = {pki.key('op:alice')}\n"
            "protocol = 3.1.1\n"
            f"\n[operator]\nkey = {keys.operator_key('alice')}\n")
    if server_url:
        text += f"\n[server]\nurl = {server_url}\n"
    path.write_text(text)
    return path


def test_cli_expects_hosts_named_by_the_server(agents, clients, full_cluster, keys,
                                               tmp_path):
    """Retained statuses and facts never reach a wildcard subscription on
    RabbitMQ 3.10, so a CLI alone expects nobody for -g or -F and has no
    certificate to check an answer with (docs/brokers.md).  muster-server
    (node a, one per fleet: no shared subscription in 3.1.1) hears the
    statuses and facts live as the agents connect; with [server] url the
    CLI (node b) takes the expected hosts and their certificates from it
    and every answer is verified."""
    from muster_fixtures import run_cli
    from server_fixtures import Server
    server = Server(full_cluster, tmp_path / "server",
                    extra={"broker": {"protocol": "3.1.1", "uri": full_cluster.uris(0),
                                      **FAST_RETRY}}).start(timeout=60)
    try:
        watch = status_watch(clients, 0)
        start_agents(agents, watch, "h1", "h2", "h3")
        wait_until(lambda: sorted(h["host"] for h in server.api("/api/hosts")["hosts"]
                                  if h["facts_at"]) == ["h1", "h2", "h3"], 30,
                   what="the fleet's statuses and facts at the server")
        home = tmp_path / "home"
        home.mkdir()
        conf = cli_conf(tmp_path / "srv.conf", full_cluster, 1, keys, server.url)
        alone = cli_conf(tmp_path / "alone.conf", full_cluster, 1, keys)

        def ping(c, *args):
            r = run_cli("ping", *args, "--json", "--wait", "6s", conf=c,
                        env={"HOME": home}, timeout=60)
            s = [l for l in r.stdout.splitlines() if '"summary"' in l]
            assert s, r.stdout + r.stderr
            import json
            return r, json.loads(s[-1])

        r, s = ping(conf, "-g", "web")
        assert r.returncode == 0, r.stdout + r.stderr
        assert (s["expected"], s["answered"], s["missing"], s["forged"]) == (2, 2, [], 0)
        r, s = ping(conf, "-F", "groups has db")
        assert r.returncode == 0, r.stdout + r.stderr
        assert (s["expected"], s["answered"], s["forged"]) == (2, 2, 0)
        assert s["facts"] == {"match": 2, "no_match": 1, "no_facts": 0}
        assert "muster-server" not in r.stderr
        # The CLI alone: nobody expected from the (undelivered) retained
        # statuses.
        r, s = ping(alone, "-g", "web")
        assert s["expected"] == 0, s
    finally:
        server.stop()
