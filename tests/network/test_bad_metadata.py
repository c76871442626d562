"""A broker whose Metadata answer is impossible: refused, and the next broker is asked.

The bad broker here is a small scripted server that speaks Metadata v4 (hand-encoded,
so that it can send what kio would not write: null arrays, partition ids -3 or listed
twice); the good one is a FakeCluster. Nothing the bad broker says may leak a raw
exception from ``send()``, end the producer, or reach the snapshot.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.errors import NoBrokersAvailableError
from asyncproducer.protocol.versions import CLIENT_VERSIONS, ApiKey
from asyncproducer.testing.fake import FakeCluster
from tests.network.servers import ServerConnection, serve

pytestmark = pytest.mark.anyio

Broker = tuple[int, str, int]
Partition = tuple[int, int]  # (id, leader)


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _array(items: Sequence[bytes] | None) -> bytes:
    """A v4 (non-flexible) array: int32 count, -1 for null."""
    if items is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(items)) + b"".join(items)


def metadata_v4(
    brokers: Sequence[Broker] | None, topic: str, partitions: Sequence[Partition] | None
) -> bytes:
    """A MetadataResponse v4 body: brokers, cluster id, controller, one topic."""
    broker_entries = (
        None
        if brokers is None
        else [
            struct.pack(">i", n) + _string(h) + struct.pack(">i", p) + _string(None)
            for n, h, p in brokers
        ]
    )
    partition_entries = (
        None
        if partitions is None
        else [
            struct.pack(">hii", 0, index, leader) + _array([struct.pack(">i", leader)]) * 2
            for index, leader in partitions
        ]
    )
    topic_entry = struct.pack(">h", 0) + _string(topic) + b"\0" + _array(partition_entries)
    return (
        struct.pack(">i", 0)
        + _array(broker_entries)
        + _string("bad")
        + struct.pack(">i", 0)
        + _array([topic_entry])
    )


def bad_broker(body: bytes, asked: list[int]) -> object:
    """A handler: ApiVersions offering Metadata v4 only, then ``body`` for every Metadata
    (any other request closes the connection)."""
    ranges = {int(k): v for k, v in CLIENT_VERSIONS.items()}
    ranges[ApiKey.METADATA] = (4, 4)

    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions(ranges)
        while True:
            api_key, _, correlation_id = await conn.read_request()
            if api_key != ApiKey.METADATA:
                return  # InitProducerId, Produce: closes the connection, as if down
            asked.append(correlation_id)
            await conn.stream.send(struct.pack(">ii", 4 + len(body), correlation_id) + body)

    return handler


def _cases(good_port: int) -> dict[str, tuple[bytes, str]]:
    """Each case: the bad answer, and a word the error about it must contain."""
    good = [(0, "127.0.0.1", good_port)]
    return {
        "null-brokers": (metadata_v4(None, "t", [(0, 0)]), "null"),
        "null-partitions": (metadata_v4(good, "t", None), "null"),
        "partitions-0-0-7-minus-3": (
            metadata_v4(good, "t", [(0, 0), (0, 0), (7, 0), (-3, 0)]),
            "partition 0 twice",
        ),
        "partition-gap": (metadata_v4(good, "t", [(0, 0), (2, 0)]), "without partition 1"),
        "negative-broker": (
            metadata_v4([(-5, "127.0.0.1", good_port)], "t", [(0, -5)]),
            "broker id -5",
        ),
        "duplicate-broker": (metadata_v4(good * 2, "t", [(0, 0)]), "broker 0 twice"),
    }


CASES = list(_cases(0))


@pytest.fixture(autouse=True)
def _no_shuffle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bootstrap addresses in the order given: the bad broker is asked first."""
    monkeypatch.setattr("asyncproducer._metadata.random.shuffle", lambda items: None)


@pytest.mark.parametrize("case", CASES)
async def test_an_impossible_answer_sends_the_request_to_the_next_broker(case: str) -> None:
    asked: list[int] = []
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 3)
            good = cluster.bootstrap_servers
            body, _ = _cases(int(good.rpartition(":")[2]))[case]
            async with (
                serve(bad_broker(body, asked)) as (host, port, _),  # type: ignore[arg-type]
                Producer(f"{host}:{port},{good}", retry_backoff_ms=20) as producer,
            ):
                assert [p.partition for p in await producer.partitions_for("t")] == [0, 1, 2]
                metadata = await producer.send_and_wait("t", b"v", partition=2)
                assert metadata.partition == 2
        assert asked, "the bad broker was never asked"
        assert [r.value for r in cluster.records("t", 2)] == [b"v"]


@pytest.mark.parametrize("case", CASES)
async def test_with_only_that_broker_send_fails_typed_and_the_producer_lives(case: str) -> None:
    asked: list[int] = []
    body, problem = _cases(1)[case]
    with anyio.fail_after(10):
        async with (
            serve(bad_broker(body, asked)) as (host, port, _),  # type: ignore[arg-type]
            # Not idempotent: an InitProducerId would close the bad broker's connection,
            # and the metadata request on it would fail for that reason instead.
            Producer(
                f"{host}:{port}", max_block_ms=300, retry_backoff_ms=20, enable_idempotence=False
            ) as producer,
        ):
            for _ in range(2):  # the second send proves the producer is still there
                with pytest.raises(NoBrokersAvailableError) as info:
                    await producer.send("t", b"v")
                assert f"{host}:{port}" in str(info.value)
                assert problem in str(info.value)
    assert asked
