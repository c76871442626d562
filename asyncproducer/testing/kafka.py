"""Real Apache Kafka (KRaft) for tests, without Docker: 1 or 3 nodes on loopback.

    with KafkaCluster(brokers=3) as cluster:
        cluster.create_topic("orders", partitions=3, replication_factor=3,
                             configs={"min.insync.replicas": "2"})
        producer = Producer(bootstrap_servers=cluster.bootstrap_servers, acks="all")
        cluster.nodes[0].kill()      # SIGKILL; .stop() is graceful; .start() brings it back

    async with KafkaCluster() as cluster: ...   # the same, from asyncio or trio

    with KafkaCluster(listener="SASL_SSL", users={"alice": "alice-secret"}) as cluster:
        cluster.tls.ca               # the CA of the certificates made for this cluster

The client listener speaks PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512 and unsecured-JWS OAUTHBEARER); replication, the KRaft quorum and this
module's own admin requests stay on PLAINTEXT listeners of their own.

The broker is assembled from Maven Central with ``mvn`` (``org.apache.kafka:kafka_2.13``, its
runtime dependencies and a log4j2 binding) into ``~/.cache/asyncproducer/kafka/<version>``
(``$ASYNCPRODUCER_KAFKA_CACHE`` overrides the root) on first use. It needs Java 17+ and
Maven (``apt-get install openjdk-17-jre-headless maven``).

Everything here is synchronous (subprocesses and blocking sockets); the async context
manager runs it in a worker thread, so one cluster can serve tests on any backend.
"""

from __future__ import annotations

import atexit
import base64
import dataclasses
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import anyio.to_thread

from asyncproducer.testing import _kafka_wire as wire
from asyncproducer.testing._kafka_dist import (
    DEFAULT_KAFKA_VERSION,
    KafkaToolMissingError,
    ensure_kafka_libs,
    find_tool,
)
from asyncproducer.testing._kafka_node import (
    DEFAULT_JVM_OPTIONS,
    KafkaNode,
    Watchdog,
    _Launcher,
)
from asyncproducer.testing._kafka_security import (
    DEFAULT_USERS,
    SASL_MECHANISMS,
    ClientAuth,
    ClientListener,
    redact,
)

if TYPE_CHECKING:
    # Imported when a TLS listener starts: cryptography comes with the test extra, and
    # a PLAINTEXT cluster should not need it.
    from asyncproducer.testing.certs import ServerCertificate, TlsFiles
    from asyncproducer.testing.kerberos import KerberosRealm

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "SASL_MECHANISMS",
    "KafkaCluster",
    "KafkaClusterError",
    "KafkaNode",
    "KafkaToolMissingError",
    "ensure_kafka_libs",
]

_HOST = "127.0.0.1"
_KERBEROS_HOST = "kafka/localhost"
"""The broker's Kerberos principal (without the realm)."""
_FORMAT_TIMEOUT_S = 120.0
_TOPIC_ALREADY_EXISTS = 36


class KafkaClusterError(RuntimeError):
    """The cluster could not be started, formatted or administered; the message says why."""


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding (Kafka's Uuid form).

    Kafka refuses ids that start with ``-`` (they read as a command-line flag).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _free_ports(count: int) -> list[int]:
    # All sockets stay open until every port is chosen, so the list has no duplicates.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((_HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class KafkaCluster:
    """``brokers`` combined broker+controller Kafka nodes; a sync and async context manager.

    ``advertised_ports`` maps node ids to the port that metadata names for the node's
    client listener (on 127.0.0.1) instead of its own: a ``FaultProxy`` listening there and
    forwarding to ``node.port`` then stands between every client and that node. The nodes
    replicate over a listener of their own, which no proxy touches.

    ``listener`` is the client listener's security protocol:

    * ``"SSL"`` / ``"SASL_SSL"``: TLS with certificates made at start in
      ``data_dir/tls`` (see :mod:`asyncproducer.testing.certs`; :attr:`tls` names the
      files), or the ``tls`` given. ``client_auth="required"`` asks clients for a
      certificate signed by the same CA (``"requested"``: asks, does not insist);
      ``server_certificate="wrong-name"`` or ``"expired"`` serves a certificate a client
      must refuse.
    * ``"SASL_PLAINTEXT"`` / ``"SASL_SSL"``: ``sasl_mechanisms`` (default all of PLAIN,
      SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER) for ``users`` (name -> password, default
      ``{"alice": "alice-secret"}``); SCRAM users are made when the nodes are formatted.
      OAUTHBEARER accepts any unsecured JWS (``alg: none``) with a ``sub`` and an ``exp``.
      ``sasl_mechanisms=["GSSAPI"]`` needs ``kerberos``, a started
      :class:`~asyncproducer.testing.kerberos.KerberosRealm`: the cluster makes the
      principal ``kafka/localhost`` there and advertises its client listener as
      ``localhost`` (a Kerberos client asks for a ticket to the host it connects to).

    Anything else about a listener (``connections.max.reauth.ms``, say) goes in
    ``broker_config``. No password appears in the cluster's ``repr`` or its exceptions;
    the nodes' ``server.properties`` (mode 0600) and logs are not redacted.
    """

    def __init__(
        self,
        brokers: int = 1,
        *,
        version: str = DEFAULT_KAFKA_VERSION,
        listener: str = "PLAINTEXT",
        broker_config: Mapping[str, str] | None = None,
        jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
        startup_timeout: float = 120.0,
        data_dir: Path | None = None,
        advertised_ports: Mapping[int, int] | None = None,
        client_auth: ClientAuth = "none",
        server_certificate: ServerCertificate = "valid",
        tls: TlsFiles | None = None,
        users: Mapping[str, str] | None = None,
        sasl_mechanisms: Sequence[str] = SASL_MECHANISMS,
        kerberos: KerberosRealm | None = None,
    ) -> None:
        if brokers not in (1, 3):
            # A KRaft quorum of 2 cannot lose a node, so it tests nothing 1 or 3 do not.
            raise ValueError(f"KafkaCluster(brokers={brokers!r}): use 1 or 3")
        self._client_listener = ClientListener(
            listener,
            client_auth,
            server_certificate,
            tuple(sasl_mechanisms),
            DEFAULT_USERS if users is None else users,
            kerberos_principal=None if kerberos is None else kerberos.principal(_KERBEROS_HOST),
        )
        self._kerberos = kerberos
        # Kerberos service principals name a host: clients must connect to that name.
        self._client_host = _HOST if kerberos is None else _KERBEROS_HOST.split("/")[1]
        if not self._client_listener.sasl and (
            users is not None or tuple(sasl_mechanisms) != SASL_MECHANISMS
        ):
            raise ValueError(
                f"users and sasl_mechanisms need a SASL listener (SASL_PLAINTEXT or SASL_SSL), "
                f"not {listener}"
            )
        if tls is not None and not self._client_listener.tls:
            raise ValueError(f"tls= needs a TLS listener (SSL or SASL_SSL), not {listener}")
        self._given_tls = tls
        self._tls = tls  # made at start when not given
        self.brokers = brokers
        self.version = version
        self.listener = listener
        self.cluster_id: str = new_cluster_id()
        self._broker_config = dict(broker_config or {})
        self._jvm_options = tuple(jvm_options)
        self._startup_timeout = startup_timeout
        self._given_data_dir = data_dir
        self._advertised_ports = dict(advertised_ports or {})
        unknown = sorted(set(self._advertised_ports) - set(range(1, brokers + 1)))
        if unknown:
            raise ValueError(f"advertised_ports names nodes {unknown}; the nodes are 1..{brokers}")
        self.data_dir: Path | None = None
        self.nodes: tuple[KafkaNode, ...] = ()
        self._watchdog: Watchdog | None = None

    def __repr__(self) -> str:
        return f"<KafkaCluster {self.version} {self.listener} {list(self.nodes)}>"

    # ------------------------------------------------------------------ properties

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client listener, comma-separated (clients need only one to answer)."""
        if not self.nodes:
            raise KafkaClusterError("the KafkaCluster is not started")
        return ",".join(node.bootstrap_server for node in self.nodes)

    @property
    def tls(self) -> TlsFiles:
        """The TLS files of an SSL or SASL_SSL cluster (made at start unless given): point
        clients at ``tls.ca``, and at ``tls.client_chain``/``tls.client_key`` for mTLS."""
        if not self._client_listener.tls:
            raise KafkaClusterError(f"a {self.listener} listener has no TLS files")
        if self._tls is None:
            raise KafkaClusterError("the KafkaCluster is not started (its TLS files are made then)")
        return self._tls

    @property
    def users(self) -> Mapping[str, str]:
        """The SASL users (name -> password); empty unless the listener is SASL_*."""
        return self._client_listener.users if self._client_listener.sasl else {}

    def node(self, node_id: int) -> KafkaNode:
        """The node whose ``node.id`` (1-based, as in metadata responses) is ``node_id``."""
        for candidate in self.nodes:
            if candidate.node_id == node_id:
                return candidate
        raise KeyError(f"no node {node_id} in {self!r}")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> KafkaCluster:
        """Fetch Kafka if needed, format every node, start them together, wait for metadata."""
        if self.nodes:
            raise KafkaClusterError("the KafkaCluster is already started")
        java = find_tool("java")
        libs = ensure_kafka_libs(self.version)
        owned = self._given_data_dir is None
        data_dir = (
            Path(tempfile.mkdtemp(prefix="asyncproducer-kafka-"))
            if self._given_data_dir is None
            else self._given_data_dir
        )
        self.data_dir = data_dir
        try:
            self._watchdog = Watchdog(data_dir if owned else None)
            _live_clusters.add(self)
            launcher = _Launcher(java, libs, self._jvm_options_for_start(), self._watchdog)
            if self._client_listener.tls and self._tls is None:
                from asyncproducer.testing.certs import make_tls_files

                self._tls = make_tls_files(data_dir / "tls")
            self.nodes = self._make_nodes(launcher)
            self._format()
            for node in self.nodes:
                node.launch()
            self._wait_ready(self.nodes, time.monotonic() + self._startup_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _jvm_options_for_start(self) -> tuple[str, ...]:
        """The JVM options; with Kerberos, the broker's keytab is made now and the JVM
        pointed at the realm's krb5.conf."""
        if self._kerberos is None:
            return self._jvm_options
        keytab = self._kerberos.add_principal(_KERBEROS_HOST)
        self._client_listener = dataclasses.replace(self._client_listener, kerberos_keytab=keytab)
        return (*self._jvm_options, f"-Djava.security.krb5.conf={self._kerberos.krb5_conf}")

    def close(self) -> None:
        """SIGKILL every node and remove the data (unless it was given); idempotent.

        No graceful shutdown: the data is thrown away, and the last member of a 3-node
        quorum would wait out timeouts to shut down cleanly.
        """
        for node in self.nodes:
            node.kill()
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None
        if self._given_data_dir is None and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self.nodes = ()
        self._tls = self._given_tls  # files made at start went with the data directory
        _live_clusters.discard(self)

    def start_node(self, node: KafkaNode, timeout: float | None = None) -> None:
        """Start a stopped or killed ``node`` again; wait until every running node lists it."""
        node.launch()
        limit = self._startup_timeout if timeout is None else timeout
        self._wait_ready((node,), time.monotonic() + limit)

    def _make_nodes(self, launcher: _Launcher) -> tuple[KafkaNode, ...]:
        if self.data_dir is None:
            raise KafkaClusterError("no data directory")  # unreachable: start() sets it
        ports = iter(_free_ports(3 * self.brokers))
        nodes = tuple(
            KafkaNode(
                node_id=i + 1,
                directory=self.data_dir / f"node-{i + 1}",
                host=_HOST,
                port=next(ports),
                internal_port=next(ports),
                controller_port=next(ports),
                advertised_port=self._advertised_ports.get(i + 1),
                client_host=self._client_host,
                launcher=launcher,
                cluster=self,
            )
            for i in range(self.brokers)
        )
        voters = ",".join(f"{n.node_id}@{_HOST}:{n.controller_port}" for n in nodes)
        for node in nodes:
            node.write_config(self._properties(node, voters))
        return nodes

    def _properties(self, node: KafkaNode, voters: str) -> dict[str, str]:
        replicas = str(min(3, self.brokers))
        min_isr = str(min(2, self.brokers))
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            # Clients use CLIENT (the caller's security protocol, perhaps advertised at a
            # proxy's port); replication and the quorum have listeners of their own, so a
            # proxy's faults or a client's TLS settings never touch them.
            "listeners": (
                f"CLIENT://{_HOST}:{node.port},INTERNAL://{_HOST}:{node.internal_port},"
                f"CONTROLLER://{_HOST}:{node.controller_port}"
            ),
            "advertised.listeners": (
                f"CLIENT://{self._client_host}:{node.advertised_port},"
                f"INTERNAL://{_HOST}:{node.internal_port}"
            ),
            "listener.security.protocol.map": (
                f"CLIENT:{self.listener},INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "log.dirs": str(node.directory / "data"),
            # Internal topics with one partition and as many replicas as the cluster has:
            # creating 50 offsets partitions is most of a cold broker's first-use time.
            "offsets.topic.num.partitions": "1",
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.num.partitions": "1",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "default.replication.factor": "1",
            "num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Small segments and cleaner buffer: the 128 MiB dedupe default lives on the heap.
            "log.segment.bytes": "1048576",
            # No time retention: tests send fixed, old timestamps, and with Kafka's 7 days
            # the retention check (every 5 minutes) deletes the rolled segments holding
            # them, so records vanish under a test that has produced them.
            "log.retention.ms": "-1",
            "log.cleaner.dedupe.buffer.size": "8388608",
            "log.cleaner.threads": "1",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.replica.fetchers": "1",
            "num.recovery.threads.per.data.dir": "1",
            # A killed node is fenced (and leaves the ISRs) after the session timeout: 6 s
            # instead of 9 keeps failover tests short without flapping under a busy CPU.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "6000",
        }
        properties.update(self._client_listener.properties(self._tls))
        properties.update(self._broker_config)
        return properties

    def _format(self) -> None:
        """``StorageTool format`` on every node at once (each is a JVM start: ~2 s)."""
        running = [
            (
                node,
                subprocess.Popen(
                    node.java_command("kafka.tools.StorageTool", *self._format_arguments(node)),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                ),
            )
            for node in self.nodes
        ]
        for node, process in running:
            try:
                output, _ = process.communicate(timeout=_FORMAT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate(timeout=10)
            if process.returncode != 0:
                for _, other in running:
                    other.kill()
                    other.wait(timeout=10)
                text = self._redact(output.decode(errors="replace")[-3000:])
                raise KafkaClusterError(
                    f"formatting node {node.node_id} failed (exit {process.returncode}):\n{text}"
                )

    def _format_arguments(self, node: KafkaNode) -> list[str]:
        # SCRAM users are metadata records: --add-scram 'SCRAM-SHA-256=[name=alice,...]'
        # writes them into every node's bootstrap checkpoint, one flag per user.
        return [
            "format",
            "-t",
            self.cluster_id,
            "-c",
            str(node.config_path),
            *self._client_listener.format_arguments(),
        ]

    def _redact(self, text: str) -> str:
        """``text`` (a log tail, a tool's output) without the passwords it may echo."""
        secrets = self._client_listener.passwords()
        if self._tls is not None and self._tls.key_password is not None:
            secrets.append(self._tls.key_password)
        return redact(text, secrets)

    def _wait_ready(self, starting: Sequence[KafkaNode], deadline: float) -> None:
        """Until every running node's Metadata lists every running node (``starting`` too),
        and every running node's client listener accepts connections.

        The Metadata probe goes to the PLAINTEXT INTERNAL listener (it speaks neither TLS
        nor SASL); Kafka opens all its data-plane listeners at once, and the TCP connect
        to the client listener checks that one too.
        """
        while True:
            for node in starting:
                if not node.running:
                    raise KafkaClusterError(
                        f"Kafka node {node.node_id} exited while starting; its log ends:\n"
                        f"{self._redact(node.log_tail())}"
                    )
            expected = {n.node_id for n in self.nodes if n.running}
            lagging = [
                n
                for n in self.nodes
                if n.running
                and (
                    wire.live_broker_ids(n.host, n.internal_port) != expected
                    or not wire.accepts(n.host, n.port)
                )
            ]
            if not lagging:
                return
            if time.monotonic() > deadline:
                node = lagging[0]
                raise KafkaClusterError(
                    f"Kafka node {node.node_id} ({node.bootstrap_server}) did not list brokers "
                    f"{sorted(expected)} within {self._startup_timeout:g} s; its log ends:\n"
                    f"{self._redact(node.log_tail())}"
                )
            time.sleep(0.2)

    # ------------------------------------------------------------------ topics

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        configs: Mapping[str, str] | None = None,
        *,
        exist_ok: bool = False,
        timeout: float = 30.0,
    ) -> None:
        """Create ``name`` and wait until every partition's leader serves it.

        Kafka names a new partition's leader in metadata a moment before that node acts
        as the leader (answering NOT_LEADER_OR_FOLLOWER meanwhile), so "ready" is: every
        running node knows a leader for every partition, and each leader answers a Fetch
        for its partitions without an error.
        """
        node = self._any_running_node()
        code, message = wire.create_topic(
            node.host,
            node.internal_port,
            name,
            partitions=partitions,
            replication_factor=replication_factor,
            configs=dict(configs or {}),
            timeout=timeout,
        )
        if code != 0 and not (exist_ok and code == _TOPIC_ALREADY_EXISTS):
            raise KafkaClusterError(
                f"creating topic {name!r} ({partitions} partitions, replication factor "
                f"{replication_factor}) failed with error code {code}: {message}"
            )
        deadline = time.monotonic() + timeout
        while not self._topic_ready(name, partitions):
            if time.monotonic() > deadline:
                raise KafkaClusterError(
                    f"topic {name!r}: not every partition had a leader that serves it "
                    f"within {timeout:g} s"
                )
            time.sleep(0.1)

    def _topic_ready(self, name: str, partitions: int) -> bool:
        leaders: dict[int, int] = {}  # partition -> leader, as every running node agrees
        for node in self.nodes:
            if not node.running:
                continue
            layout = wire.describe_topic(node.host, node.internal_port, name)
            if layout is None or len(layout) < partitions:
                return False
            for partition, (leader, _) in layout.items():
                if leader < 0 or leaders.setdefault(partition, leader) != leader:
                    return False
        led_by: dict[int, list[int]] = {}
        for partition, leader in leaders.items():
            led_by.setdefault(leader, []).append(partition)
        for leader, led in led_by.items():
            node = self.node(leader)
            if not node.running or not wire.serves(node.host, node.internal_port, name, led):
                return False
        return bool(leaders)

    def describe_topic(self, topic: str) -> dict[int, tuple[int, tuple[int, ...]]]:
        """``{partition: (leader id, ISR ids)}`` as a running node reports it now (leader
        -1 while there is none); empty when the topic is unknown."""
        node = self._any_running_node()
        return wire.describe_topic(node.host, node.internal_port, topic) or {}

    def leader_of(self, topic: str, partition: int = 0) -> KafkaNode:
        """The node leading ``topic``/``partition`` now, as a running node reports it."""
        leader, _ = self.describe_topic(topic).get(partition, (-1, ()))
        if leader < 0:
            raise KafkaClusterError(f"{topic!r}/{partition} has no leader known to the cluster")
        return self.node(leader)

    def _any_running_node(self) -> KafkaNode:
        for node in self.nodes:
            if node.running:
                return node
        raise KafkaClusterError(f"no node of {self!r} is running")

    # ------------------------------------------------------------------ context managers

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> KafkaCluster:
        try:
            return await anyio.to_thread.run_sync(self.start)
        except BaseException:
            # A cancel arriving while start() ran in its thread is raised only after the
            # cluster is up, and __aexit__ will not run: close it here.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.close)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Shielded: a cancelled test must still not leave JVMs running.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.close)


# Clusters still running when the interpreter exits normally (a test that forgot the
# context manager, an exception escaping a fixture): atexit ends them. The watchdog covers
# the exits atexit cannot see (SIGKILL, os._exit).
_live_clusters: set[KafkaCluster] = set()


@atexit.register
def _close_live_clusters() -> None:
    for cluster in list(_live_clusters):
        cluster.close()
