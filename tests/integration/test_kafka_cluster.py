"""KafkaCluster: real Apache Kafka (KRaft) from Maven artifacts, 1 and 3 nodes.

Needs ``java`` and ``mvn`` (or a warm cache and ``java``). Without them these tests skip;
``ASYNCPRODUCER_REQUIRE_KAFKA=1`` makes that a failure instead (CI).
"""

from __future__ import annotations

import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from asyncproducer import RecordMetadata
from asyncproducer.producer import Producer
from asyncproducer.testing._kafka_dist import (
    ensure_kafka_libs,
)
from asyncproducer.testing.kafka import KafkaCluster, KafkaClusterError, KafkaToolMissingError
from asyncproducer.testing.proxy import FaultProxy
from tests.integration.brokers import require_kafka_tools
from tests.integration.independent import consume
from tests.network.servers import closed_port

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


def jvms_marked(marker: str) -> list[str]:
    """Command lines of live processes mentioning ``marker`` (a cluster's data dir)."""
    found = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True, check=False)
    return found.stdout.splitlines()


def wait_until_gone(marker: str, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := jvms_marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- no JVM needed


def test_unknown_listeners_and_sizes_are_refused_clearly() -> None:
    # SSL and SASL_* are tested in test_kafka_security_rig.py.
    with pytest.raises(ValueError, match="unknown Kafka listener 'HTTP'"):
        KafkaCluster(listener="HTTP")
    with pytest.raises(ValueError, match="use 1 or 3"):
        KafkaCluster(brokers=2)
    with pytest.raises(
        ValueError, match=r"advertised_ports names nodes \[0, 4\]; the nodes are 1..3"
    ):
        KafkaCluster(brokers=3, advertised_ports={0: 9000, 1: 9001, 4: 9004})


def test_missing_java_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("ASYNCPRODUCER_KAFKA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(KafkaToolMissingError, match="apt-get install openjdk-17-jre-headless"):
        KafkaCluster().start()


def test_a_failed_fetch_leaves_no_cache_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require_kafka_tools()
    if shutil.which("mvn") is None:
        pytest.skip("needs mvn (apt-get install maven)")
    monkeypatch.setenv("ASYNCPRODUCER_KAFKA_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"could not fetch Kafka 0\.0\.1-none"):
        ensure_kafka_libs("0.0.1-none")
    assert list(tmp_path.rglob("*")) == [tmp_path / "0.0.1-none"]  # no libs, no temp dir


# --------------------------------------------------------------------------- lifecycle

_KILLED_PARENT = textwrap.dedent(
    """
    import sys, time
    from asyncproducer.testing.kafka import KafkaCluster
    cluster = KafkaCluster(brokers=3).start()
    print(cluster.data_dir, flush=True)
    time.sleep(600)
    """
)


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    if process.stdout is None:
        raise RuntimeError("no stdout pipe")
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"the child printed nothing within {timeout} s")
    return process.stdout.readline().strip()


def test_no_jvm_is_left_behind_when_the_test_process_is_killed() -> None:
    """A 3-node cluster in a child process; SIGKILL the child (no atexit, no finally):
    the watchdog kills every JVM and removes the data directory."""
    require_kafka_tools()
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_PARENT], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            data_dir = _read_line(child, timeout=180)
            assert data_dir, "the child exited before the cluster started"
            assert len(jvms_marked(data_dir)) >= 3, "the three JVMs should be running"
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            assert wait_until_gone(data_dir) == []
            assert not Path(data_dir).exists()
        finally:
            child.kill()
            child.wait(timeout=10)


def test_stop_start_and_close_leave_nothing_behind() -> None:
    require_kafka_tools()
    with KafkaCluster() as cluster:
        data_dir = str(cluster.data_dir)
        node = cluster.nodes[0]
        node.stop(timeout=30)
        assert not node.running
        node.start()
        assert node.running
        cluster.create_topic("after-restart", partitions=2)
        assert cluster.leader_of("after-restart", 1) is node
    assert wait_until_gone(data_dir, timeout=5) == []
    assert not Path(data_dir).exists()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])  # the thread hop is backend-neutral
async def test_async_context_manager_starts_and_ends_the_cluster() -> None:
    require_kafka_tools()
    async with KafkaCluster() as cluster:
        data_dir = str(cluster.data_dir)
        cluster.create_topic("made-from-trio", partitions=1, configs={"cleanup.policy": "compact"})
        with pytest.raises(KafkaClusterError, match="error code 36"):
            cluster.create_topic("made-from-trio")
        cluster.create_topic("made-from-trio", exist_ok=True)
    assert wait_until_gone(data_dir, timeout=5) == []
    with pytest.raises(KafkaClusterError, match="not started"):
        _ = cluster.bootstrap_servers


@pytest.mark.anyio
async def test_a_node_advertised_at_a_proxy_is_reached_through_it() -> None:
    """advertised_ports: clients bootstrapping at the node itself are sent to the proxy
    by metadata, so the proxy's faults hold their records back until it heals."""
    require_kafka_tools()
    port = closed_port()  # free: the proxy will listen there
    async with (
        KafkaCluster(advertised_ports={1: port}) as cluster,
        FaultProxy(cluster.nodes[0].bootstrap_server, port=port) as proxy,
    ):
        topic = topic_name()
        cluster.create_topic(topic)
        async with Producer(cluster.bootstrap_servers, linger_ms=0) as producer:
            await producer.partitions_for(topic)  # metadata comes straight from the node
            proxy.black_hole(True)
            future = await producer.send(topic, b"held back")
            await anyio.sleep(1.0)
            assert not future.done()  # it can only go through the proxy
            await proxy.heal()
            with anyio.fail_after(30):
                metadata = await future
        assert metadata.offset == 0
        (record,) = await anyio.to_thread.run_sync(
            consume, cluster.bootstrap_servers, topic, [0], 1
        )
        assert record.value == b"held back"


# --------------------------------------------------------------------------- round trips


@pytest.fixture(scope="module")
def kafka1() -> Iterator[KafkaCluster]:
    require_kafka_tools()
    with KafkaCluster(brokers=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def kafka3() -> Iterator[KafkaCluster]:
    require_kafka_tools()
    with KafkaCluster(brokers=3) as cluster:
        yield cluster


@pytest.mark.anyio
async def test_single_node_round_trip_read_back_by_confluent_kafka(kafka1: KafkaCluster) -> None:
    topic = topic_name()
    kafka1.create_topic(topic, partitions=3)
    sent: list[tuple[int, bytes | None, bytes, list[tuple[str, bytes | None]]]] = [
        (
            i % 3,
            None if i % 4 == 0 else f"k{i}".encode(),
            bytes([i % 256]) * (i + 1),
            [("n", str(i).encode()), ("empty", None)],
        )
        for i in range(60)
    ]
    async with Producer(
        bootstrap_servers=kafka1.bootstrap_servers, acks="all", enable_idempotence=True
    ) as producer:
        futures = [
            await producer.send(topic, value, key=key, partition=partition, headers=headers)
            for partition, key, value, headers in sent
        ]
        acked: list[RecordMetadata] = [await future for future in futures]

    records = consume(kafka1.bootstrap_servers, topic, [0, 1, 2], expected=len(sent))
    by_place = {(r.partition, r.offset): r for r in records}
    assert len(by_place) == len(sent)
    for (partition, key, value, headers), metadata in zip(sent, acked, strict=True):
        assert (metadata.partition, metadata.offset >= 0) == (partition, True)
        record = by_place[(metadata.partition, metadata.offset)]
        assert (record.key, record.value) == (key, value)
        assert list(record.headers) == headers
    # Real offsets: 20 records per partition, numbered 0..19 in send order.
    for partition in range(3):
        offsets = [m.offset for m in acked if m.partition == partition]
        assert offsets == list(range(20))


@pytest.mark.anyio
# One loop, not three: each run is ~12 s of a real kill and failover, and the slow-marked
# failover matrix (test_kafka_failover.py) kills a leader on asyncio and takes nodes down
# on uvloop; trio is the loop it does not see recover from a kill.
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_three_nodes_keep_producing_with_one_node_killed(kafka3: KafkaCluster) -> None:
    topic = topic_name()
    kafka3.create_topic(topic, 1, 3, {"min.insync.replicas": "2"})
    async with Producer(
        bootstrap_servers=kafka3.bootstrap_servers, acks="all", enable_idempotence=True
    ) as producer:
        first = [await producer.send(topic, f"a{i}".encode()) for i in range(50)]
        await producer.flush()
        victim = kafka3.leader_of(topic, 0)
        victim.kill()
        assert not victim.running
        second = [await producer.send(topic, f"b{i}".encode()) for i in range(50)]
        acked = [await future for future in first + second]
        victim.start()
        assert victim.running
    assert [m.offset for m in acked] == list(range(100))
    records = consume(kafka3.bootstrap_servers, topic, [0], expected=100)
    assert [r.value for r in records] == [f"a{i}".encode() for i in range(50)] + [
        f"b{i}".encode() for i in range(50)
    ]
