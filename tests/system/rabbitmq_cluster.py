# SPDX-License-Identifier: Apache-2.0
"""rabbitmq_cluster - a real RabbitMQ cluster for muster's system tests.

Debian 12's rabbitmq-server (3.10) with the MQTT plugin, started by the
tests on this machine, nothing of the system's RabbitMQ touched: every node
runs as the user running the tests (root in CI, anyone else works too)
from a temporary folder with its own node name (rabbit-a@localhost, ...),
config file, enabled-plugins file, database (RABBITMQ_MNESIA_BASE) and logs
(RABBITMQ_LOG_BASE).  HOME points into that folder, so the nodes and
rabbitmqctl share one Erlang cookie; ERL_EPMD_PORT is a random port, so the
nodes register with an epmd of their own (killed at stop()).

TLS as in production (docs/brokers.md): the MQTT listener (TLS only, on
127.0.0.1) wants a client certificate from scripts/gen-pki's CA
(verify_peer, fail_if_no_peer_cert) and takes the CN as the user name
(mqtt.ssl_cert_login, ssl_cert_login_from = common_name).  RabbitMQ needs
every CN to exist as a user: definitions() writes one per certificate of the
PKI, without a password (no password login possible), with vhost
permissions for its own MQTT session queues and topic permissions that
follow broker-config/acl (rabbitmq_acl()); import_definitions() loads them.

The cluster: all nodes list each other (classic config peer discovery), so
they form one cluster on their first boot; start() checks that every node
runs in it.  RabbitMQ's MQTT plugin keeps its client-id registry in Raft:
a majority of the nodes must be up for any node to accept MQTT connections
(a two-node cluster cannot lose a node), hence three nodes by default.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterable, Optional

import paho.mqtt.client as mqtt

from muster_fixtures import (Client, Pki, free_port, terminate, tls_probe,
                             TOPIC_ROOT)

RABBIT_BIN = Path(os.environ.get("MUSTER_RABBITMQ_BIN",
                                 "/usr/lib/rabbitmq/bin"))
RABBITMQ_SERVER = RABBIT_BIN / "rabbitmq-server"
RABBITMQCTL = RABBIT_BIN / "rabbitmqctl"


def rabbitmq_missing() -> Optional[str]:
    """Why the cluster suite cannot run here, or None."""
    if not os.access(RABBITMQ_SERVER, os.X_OK) or \
            not os.access(RABBITMQCTL, os.X_OK):
        return ("rabbitmq-server is not installed (scripts/setup --cluster "
                "installs Debian's rabbitmq-server)")
    plugins = list(Path("/usr/lib/rabbitmq/lib").glob(
        "rabbitmq_server-*/plugins/rabbitmq_mqtt-*"))
    if not plugins:
        return "rabbitmq-server has no rabbitmq_mqtt plugin"
    return None


def rabbitmq_version() -> str:
    for d in sorted(Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*")):
        return d.name.split("-", 1)[1]
    return "?"


# ---- topic permissions from the ACL ------------------------------------------
#
# RabbitMQ's MQTT plugin maps an MQTT topic to an AMQP routing key on the
# amq.topic exchange: '/' becomes '.', '+' becomes '*' ('#' stays).  Topic
# permissions are two regular expressions per user (write: checked against
# the routing key of every PUBLISH; read: against the binding key of every
# SUBSCRIBE, so filters with '*' and '#' must match too).  They are an
# approximation of broker-config/acl that is exact for muster names without
# '.' (a '.' in a topic level becomes a level separator on the way through
# RabbitMQ: docs/brokers.md).

SEG = r"[^.#]+"	# one level: a name, or '*' (MQTT '+') in a filter


def _esc(name: str) -> str:
    return re.escape(name)


def host_permissions(host: str, groups: Iterable[str],
                     root: str = TOPIC_ROOT) -> tuple[str, str]:
    """(write, read) regexes for a host certificate (CN = host name)."""
    r = _esc(root) + r"\.v1\."
    h = _esc(host)
    gs = list(groups)
    if "*" in gs:
        group_re = SEG
    else:
        group_re = "(" + "|".join(_esc(g) for g in gs) + ")" if gs else None
    write = (f"^{r}(hosts\\.{h}\\.status|hosts\\.{h}\\.facts|results\\.{SEG}\\.{h}"
             f"|results\\.{SEG}\\.{h}\\.events|hosts\\.{h}\\.selftest\\.request)$")
    reads = [f"hosts\\.{h}\\.jobs", "all\\.jobs", "modules\\..+",
             "releases\\..+", "artifacts\\..+", f"hosts\\.{h}\\.status",
             f"hosts\\.{h}\\.selftest\\.jobs",
             f"hosts\\.{h}\\.selftest\\.verdict"]
    if group_re:
        reads.append(f"groups\\.{group_re}\\.jobs")
    return write, f"^{r}(" + "|".join(reads) + ")$"


def role_permissions(role: str, root: str = TOPIC_ROOT) -> tuple[str, str]:
    """(write, read) regexes for op:, pub: and srv: certificates."""
    r = _esc(root) + r"\.v1\."
    if role == "op":
        # jobs.<id>: the announce before each job (design.md §3).
        # releases.<channel>.halt: muster release halt (design.md §5).
        return (f"^{r}(hosts\\.{SEG}\\.jobs|groups\\.{SEG}\\.jobs|all\\.jobs"
                f"|jobs\\.{SEG}|releases\\.{SEG}\\.halt)$",
                f"^{r}(results\\..+|hosts\\.{SEG}\\.(status|facts)|modules\\.{SEG}"
                f"|releases\\.{SEG}|releases\\.{SEG}\\.halt)$")
    if role == "pub":
        return (f"^{r}(modules|releases|artifacts)\\..+$",
                f"^{r}(modules|releases|artifacts)\\..+$")
    if role == "srv":
        return (f"^{r}(hosts\\.{SEG}\\.selftest\\.(jobs|verdict)|releases\\.{SEG}\\.halt)$",
                f"^{r}(hosts\\.{SEG}\\.selftest\\.request|results\\..+"
                f"|hosts\\.{SEG}\\.(status|facts)|modules\\.{SEG}|releases\\.{SEG}"
                f"|releases\\.{SEG}\\.halt|jobs\\.{SEG})$")
    raise ValueError(f"unknown role {role!r}")


def pki_users(pki: Pki) -> list[tuple[str, str, str]]:
    """(CN, write, read) for every certificate of the PKI's inventory."""
    out = []
    groups = pki.host_groups()
    root = TOPIC_ROOT
    if pki.inventory.exists():
        for line in pki.inventory.read_text().splitlines():
            f = line.split()
            if len(f) >= 2 and f[0] == "root":
                root = f[1]
    for host, gs in groups.items():
        out.append((host, *host_permissions(host, gs, root)))
    for role in ("op", "pub", "srv"):
        d = pki.dir / role
        if d.is_dir():
            for crt in sorted(d.glob("*.crt")):
                out.append((f"{role}:{crt.stem}", *role_permissions(role, root)))
    return out


def definitions(pki: Pki, vhost: str = "/") -> dict:
    """RabbitMQ definitions (import_definitions) for the PKI's certificates:
    users without a password, vhost permissions limited to the user's own
    MQTT session queues (mqtt-subscription-<client id>qos0/1, client ids
    <CN>, <CN>.fetch, <CN>.selftest, <CN>-anything for tools) and the
    amq.topic exchange, and topic permissions from the ACL."""
    users, perms, tperms = [], [], []
    for cn, write, read in pki_users(pki):
        users.append({"name": cn, "password_hash": "",
                      "hashing_algorithm": "rabbit_password_hashing_sha256",
                      "tags": []})
        q = f"mqtt-subscription-{re.escape(cn).replace(':', '.')}[.-].*|" \
            f"mqtt-subscription-{re.escape(cn)}qos[01]"
        # The CLI's and muster-server's own client ids (muster-cli-<8 hex>,
        # muster-server-<name>): an operator's and a server's session queue.
        if cn.startswith("op:"):
            q += "|mqtt-subscription-muster-cli-[0-9a-f]{8}qos[01]"
        elif cn.startswith("srv:"):
            # ... and its self-test and release-halt connections.
            q += (f"|mqtt-subscription-muster-server-{re.escape(cn[4:])}"
                  f"(\\.selftest|\\.halt)?qos[01]")
        # The MQTT plugin declares and binds the session queue (configure,
        # write on the queue, read on amq.topic), publishes to amq.topic
        # (write) and consumes the queue (read).
        perms.append({"user": cn, "vhost": vhost,
                      "configure": f"^({q})$",
                      "write": f"^({q}|amq\\.topic)$",
                      "read": f"^({q}|amq\\.topic)$"})
        tperms.append({"user": cn, "vhost": vhost, "exchange": "amq.topic",
                       "write": write, "read": read})
    return {"users": users, "vhosts": [{"name": vhost}],
            "permissions": perms, "topic_permissions": tperms}


# ---- the cluster ---------------------------------------------------------------


class RabbitNode:
    def __init__(self, cluster: "RabbitCluster", letter: str):
        self.cluster = cluster
        self.letter = letter
        self.name = f"rabbit-{letter}@localhost"
        self.dir = cluster.dir / letter
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()	# MQTT over TLS
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.conf = self.dir / "rabbitmq.conf"
        self.stdout = self.dir / "stdout"
        self.proc: Optional[subprocess.Popen] = None

    @property
    def uri(self) -> str:
        return f"ssl://localhost:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.dir / "log" / f"{self.name}.log"

    def env(self) -> dict:
        e = self.cluster.env()
        e.update({
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.conf),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.cluster.advanced),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
        })
        return e

    def write_conf(self, pki: Pki, nodes: list["RabbitNode"]) -> None:
        lines = [
            "# written by tests/system/rabbitmq_cluster.py",
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
            "loopback_users = none",
            "cluster_formation.peer_discovery_backend = classic_config",
        ]
        for i, n in enumerate(nodes, 1):
            lines.append(f"cluster_formation.classic_config.nodes.{i} = {n.name}")
        lines += [
            "cluster_partition_handling = pause_minority",
            # MQTT over TLS only, client certificates from the muster CA,
            # the certificate's CN is the user name.
            "mqtt.listeners.tcp = none",
            f"mqtt.listeners.ssl.default = 127.0.0.1:{self.port}",
            f"ssl_options.cacertfile = {pki.ca}",
            f"ssl_options.certfile = {pki.broker_cert}",
            f"ssl_options.keyfile = {pki.broker_key}",
            "ssl_options.verify = verify_peer",
            "ssl_options.fail_if_no_peer_cert = true",
            "ssl_options.versions.1 = tlsv1.3",
            "ssl_options.versions.2 = tlsv1.2",
            "ssl_cert_login_from = common_name",
            "mqtt.ssl_cert_login = true",
            "mqtt.allow_anonymous = false",
            "mqtt.vhost = /",
            "mqtt.exchange = amq.topic",
            # Persistent sessions (clean session 0) as quorum queues:
            # replicated, so a session survives the loss of its node.
            "mqtt.durable_queue_type = quorum",
            # 3.1.1 has no session expiry: this is it (ms), like
            # Mosquitto's persistent_client_expiration.
            f"mqtt.subscription_ttl = {self.cluster.subscription_ttl_ms}",
            "mqtt.prefetch = 100",
            "mqtt.tcp_listen_options.nodelay = true",
            "log.console = false",
            "log.file.level = info",
        ]
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> "RabbitNode":
        if self.running:
            return self
        out = open(self.stdout, "ab")
        self.proc = subprocess.Popen(
            [str(RABBITMQ_SERVER)], env=self.env(), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=str(self.dir))
        out.close()
        return self

    def kill(self) -> None:
        """SIGKILL the whole node (the script and the Erlang VM): a crash."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self, timeout: float = 30) -> None:
        """A clean shutdown (rabbitmqctl shutdown), SIGKILL if it hangs."""
        if not self.running:
            return
        try:
            self.cluster.ctl("shutdown", node=self, timeout=timeout)
        except Exception:	# noqa: BLE001 - fall back to signals
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not terminate(self.proc, 10):
                self.kill()

    def await_startup(self, timeout: float = 120) -> None:
        """Until the node's rabbit application runs.  await_startup fails
        at once while the VM has not registered with epmd yet: retry."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise RuntimeError(f"{self.name} exited "
                                   f"{self.proc.returncode if self.proc else '?'}")
            left = deadline - time.monotonic()
            try:
                self.cluster.ctl("await_startup", "--timeout",
                                 str(max(1, int(left))), node=self,
                                 timeout=left + 10)
                return
            except RuntimeError as e:
                if time.monotonic() + 1 >= deadline or \
                        "not running at all" not in str(e) and \
                        "nodedown" not in str(e):
                    raise
                time.sleep(1)

    def wait_ready(self, timeout: float = 120) -> None:
        self.await_startup(timeout)
        self.wait_mqtt(timeout=30)

    def wait_mqtt(self, timeout: float = 30) -> str:
        """Until the MQTT listener answers a certificate's CONNECT (the
        plugin accepts connections only with a Raft majority)."""
        pki = self.cluster.pki
        cn = next((u for u, _, _ in pki_users(pki) if u.startswith("op:")),
                  None) or pki.any_client()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            last = tls_probe("127.0.0.1", self.port, pki.ca, pki.cert(cn),
                             pki.key(cn), server_hostname="localhost",
                             timeout=5, protocol=4)
            if last == "connack:0":
                return last
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: MQTT not accepting ({last})")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class RabbitCluster:
    """N RabbitMQ nodes in one cluster, looking like muster_fixtures.Broker
    where the tests need it: .pki, .uri (every node, comma-separated, for
    the agents' fail-over), .host/.port (the first running node),
    .client(cn, node=..) (an MQTT 3.1.1 client), .reload() (re-apply users
    and permissions after the PKI inventory changed)."""

    host = "localhost"

    def __init__(self, pki: Pki, workdir: os.PathLike, nodes: int = 3,
                 subscription_ttl_ms: int = 86400000):
        self.pki = pki
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.home = self.dir / "home"
        self.home.mkdir(exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20).upper())
        os.chmod(cookie, 0o400)
        self.epmd_port = free_port()
        self.plugins_file = self.dir / "enabled_plugins"
        self.plugins_file.write_text("[rabbitmq_mqtt].\n")
        self.subscription_ttl_ms = subscription_ttl_ms
        # The MQTT plugin reads "a:b" as user b in vhost a, so a role CN
        # like "op:alice" would log in as "alice" to a vhost "op".  This
        # setting (advanced.config only in 3.10) keeps the CN whole.
        self.advanced = self.dir / "advanced.config"
        self.advanced.write_text(
            "[{rabbitmq_mqtt, [{ignore_colons_in_username, true}]}].\n")
        self.nodes = [RabbitNode(self, chr(ord("a") + i)) for i in range(nodes)]
        for n in self.nodes:
            n.write_conf(pki, self.nodes)

    def env(self) -> dict:
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("RABBITMQ_", "ERL_"))
             and k != "NOTIFY_SOCKET"}
        e.update({
            "HOME": str(self.home),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.plugins_file),
            # Sleep instead of spinning when idle: three VMs share two cores
            # with the agents and the tests.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                "+sbwt none +sbwtdcpu none +sbwtdio none",
            "LC_ALL": "C.UTF-8",
        })
        return e

    def ctl(self, *args: str, node: Optional[RabbitNode] = None,
            timeout: float = 60, check: bool = True) -> str:
        node = node or self.live_node()
        r = subprocess.run([str(RABBITMQCTL), "-q", "-n", node.name, *args],
                           env=self.env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {node.name} "
                               f"exited {r.returncode}:\n{r.stdout}")
        return r.stdout

    # -- life cycle
    def start(self, timeout: float = 120) -> "RabbitCluster":
        for n in self.nodes:
            n.start()
        try:
            for n in self.nodes:
                n.await_startup(timeout)
            self.check_cluster()
            self.reload()
            for n in self.nodes:
                n.wait_mqtt()
        except Exception:
            diag = self.diagnostics()
            self.stop()
            raise RuntimeError("RabbitMQ cluster did not start:\n" + diag)
        return self

    def running_nodes(self) -> list[str]:
        out = self.ctl("eval", "rabbit_nodes:all_running().")
        return sorted(re.findall(r"'?(rabbit-[a-z]@localhost)'?", out))

    def check_cluster(self, timeout: float = 60) -> None:
        want = sorted(n.name for n in self.nodes if n.running)
        deadline = time.monotonic() + timeout
        while True:
            got = self.running_nodes()
            if got == want:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster has {got}, want {want}")
            time.sleep(1)

    def reload(self, settle: float = 0.0) -> None:
        """(Re-)import users and permissions from the PKI inventory."""
        path = self.dir / "definitions.json"
        path.write_text(json.dumps(definitions(self.pki), indent=1))
        self.ctl("import_definitions", str(path))

    def stop(self) -> None:
        for n in self.nodes:
            try:
                n.stop()
            except Exception:	# noqa: BLE001
                n.kill()
        # The epmd the nodes started on our own port, and only it.
        subprocess.run([shutil.which("epmd") or "epmd", "-kill"],
                       env=self.env(), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def live_node(self) -> RabbitNode:
        for n in self.nodes:
            if n.running:
                return n
        raise RuntimeError("no RabbitMQ node is running")

    # -- what the fixtures expect of a broker
    @property
    def uri(self) -> str:
        return ",".join(n.uri for n in self.nodes)

    def uris(self, first: int = 0) -> str:
        """Every node's URI, starting with node `first` (spreads agents)."""
        order = self.nodes[first:] + self.nodes[:first]
        return ",".join(n.uri for n in order)

    @property
    def port(self) -> int:
        return self.live_node().port

    def client(self, cn: Optional[str], node: Optional[int] = None,
               **kw) -> Client:
        """An MQTT 3.1.1 client on node `node` (index; default: the first
        running one)."""
        n = self.nodes[node] if node is not None else self.live_node()
        kw.setdefault("port", n.port)
        kw.setdefault("protocol", mqtt.MQTTv311)
        return Client(self, cn, **kw)

    def log(self) -> str:
        return "\n".join(n.log() for n in self.nodes)

    def diagnostics(self) -> str:
        out = []
        for n in self.nodes:
            for p in (n.stdout, n.log_path):
                if p.exists():
                    out.append(f"--- {p} ---\n" +
                               p.read_text(errors="replace")[-3000:])
        return "\n".join(out)
