"""Every FakeCluster fault: what the real Producer observes, and that the fake did it."""

from __future__ import annotations

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.errors import KafkaError
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster

pytestmark = pytest.mark.anyio

NOT_LEADER_OR_FOLLOWER = 6
FAST = {"retry_backoff_ms": 20, "retry_backoff_max_ms": 100, "linger_ms": 0}


def produce_log(cluster: FakeCluster) -> list[int]:
    """The broker of each Produce request, in arrival order."""
    return [e.broker for e in cluster.request_log if e.api_key == ApiKey.PRODUCE]


async def test_fail_next_produce_retries_after_a_metadata_refresh() -> None:
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1, leaders=[1])
            async with Producer(cluster.bootstrap_servers, **FAST) as producer:
                await producer.partitions_for("t")
                metadata_before = cluster.request_count(ApiKey.METADATA)
                cluster.fail_next(ApiKey.PRODUCE, NOT_LEADER_OR_FOLLOWER)
                metadata = await producer.send_and_wait("t", b"v")
                assert producer.metrics()["record-retry-total"] == 1
                # The refresh is requested with the retry; it may land just after it.
                while cluster.request_count(ApiKey.METADATA) == metadata_before:
                    await anyio.sleep(0.01)
            assert metadata.offset == 0
            assert produce_log(cluster) == [1, 1]
            assert [r.value for r in cluster.records("t", 0)] == [b"v"]


async def test_fail_next_only_hits_the_named_broker() -> None:
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 2, leaders=[0, 1])
            cluster.fail_next(ApiKey.PRODUCE, NOT_LEADER_OR_FOLLOWER, count=2, broker=1)
            async with Producer(cluster.bootstrap_servers, **FAST) as producer:
                await producer.send_and_wait("t", b"a", partition=0)
                await producer.send_and_wait("t", b"b", partition=1)
            assert produce_log(cluster) == [0, 1, 1, 1]


async def test_fail_next_non_retriable_code_reaches_the_caller() -> None:
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1)
            cluster.fail_next(ApiKey.PRODUCE, 87)  # INVALID_RECORD
            async with Producer(cluster.bootstrap_servers, **FAST) as producer:
                with pytest.raises(KafkaError, match="INVALID_RECORD"):
                    await producer.send_and_wait("t", b"v")
            assert cluster.records("t", 0) == []


async def test_delay_responses_holds_the_answer() -> None:
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, **FAST) as producer:
                await producer.partitions_for("t")
                cluster.delay_responses(ApiKey.PRODUCE, 0.5, count=1)
                started = anyio.current_time()
                await producer.send_and_wait("t", b"slow")
                assert anyio.current_time() - started >= 0.45
                started = anyio.current_time()
                await producer.send_and_wait("t", b"fast")
                assert anyio.current_time() - started < 0.4
            assert cluster.request_count(ApiKey.PRODUCE) == 2


async def test_per_request_delays() -> None:
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, **FAST) as producer:
                await producer.partitions_for("t")
                cluster.delay_responses(ApiKey.PRODUCE, lambda n: (0.0, 0.4, 0.0)[n], count=3)
                took = []
                for value in (b"a", b"b", b"c"):
                    started = anyio.current_time()
                    await producer.send_and_wait("t", value)
                    took.append(anyio.current_time() - started)
            assert took[1] >= 0.35
            assert took[0] < 0.3
            assert took[2] < 0.3
            assert [r.value for r in cluster.records("t", 0)] == [b"a", b"b", b"c"]


async def test_delay_longer_than_request_timeout_makes_the_producer_retry() -> None:
    with anyio.fail_after(15):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1, leaders=[0])
            async with Producer(
                cluster.bootstrap_servers, request_timeout_ms=300, delivery_timeout_ms=5000, **FAST
            ) as producer:
                await producer.partitions_for("t")
                cluster.delay_responses(ApiKey.PRODUCE, 1.0, count=1)
                metadata = await producer.send_and_wait("t", b"v")
        # The delayed request was applied (its answer came too late), the retry is a
        # duplicate the broker recognises: one record.
        assert metadata.offset == 0
        assert [r.value for r in cluster.records("t", 0)] == [b"v"]
        assert cluster.request_count(ApiKey.PRODUCE) >= 2


async def test_drop_connection_before_apply_then_retry_succeeds() -> None:
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1, leaders=[0])
            async with Producer(
                cluster.bootstrap_servers, enable_idempotence=False, **FAST
            ) as producer:
                await producer.partitions_for("t")
                cluster.drop_connection(ApiKey.PRODUCE)
                metadata = await producer.send_and_wait("t", b"v")
            assert metadata.offset == 0
            assert cluster.request_count(ApiKey.PRODUCE) == 2
            assert [r.value for r in cluster.records("t", 0)] == [b"v"]


async def test_drop_after_apply_with_idempotence_stores_once() -> None:
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1, leaders=[0])
            async with Producer(cluster.bootstrap_servers, **FAST) as producer:
                await producer.partitions_for("t")
                cluster.drop_connection(ApiKey.PRODUCE, after_apply=True)
                metadata = await producer.send_and_wait("t", b"v")
            assert metadata.offset == 0
            assert cluster.request_count(ApiKey.PRODUCE) == 2
            assert [r.value for r in cluster.records("t", 0)] == [b"v"]


async def test_drop_after_apply_without_idempotence_duplicates() -> None:
    # The fault is real: without idempotence the retry writes the record a second time.
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1, leaders=[0])
            async with Producer(
                cluster.bootstrap_servers, enable_idempotence=False, **FAST
            ) as producer:
                await producer.partitions_for("t")
                cluster.drop_connection(ApiKey.PRODUCE, after_apply=True)
                metadata = await producer.send_and_wait("t", b"v")
            assert metadata.offset == 1
            assert [r.value for r in cluster.records("t", 0)] == [b"v", b"v"]


async def test_black_hole_times_out_the_request_then_the_retry_succeeds() -> None:
    with anyio.fail_after(15):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1, leaders=[2])
            async with Producer(
                cluster.bootstrap_servers, request_timeout_ms=300, delivery_timeout_ms=8000, **FAST
            ) as producer:
                await producer.send_and_wait("t", b"warm-up")  # connected to broker 2
                cluster.black_hole(2)

                async def heal() -> None:
                    await anyio.sleep(0.8)
                    cluster.black_hole(2, enabled=False)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(heal)
                    started = anyio.current_time()
                    metadata = await producer.send_and_wait("t", b"v")
                    assert anyio.current_time() - started >= 0.3
            assert metadata.offset == 1
            # the warm-up, the swallowed request and the answered retry
            assert cluster.request_count(ApiKey.PRODUCE, broker=2) >= 3
            assert [r.value for r in cluster.records("t", 0)] == [b"warm-up", b"v"]


async def test_move_leader_the_producer_follows() -> None:
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1, leaders=[0])
            async with Producer(cluster.bootstrap_servers, **FAST) as producer:
                await producer.send_and_wait("t", b"a")
                cluster.move_leader("t", 0, 2)
                assert cluster.leader_of("t", 0) == 2
                metadata = await producer.send_and_wait("t", b"b")
            assert metadata.offset == 1
            # broker 0 refused with NOT_LEADER_OR_FOLLOWER (once, or again when the retry
            # beat the metadata refresh), then broker 2 took it
            log = produce_log(cluster)
            assert (log[0], log[-1]) == (0, 2), log
            assert set(log[1:-1]) == {0}, log
            assert [r.value for r in cluster.records("t", 0)] == [b"a", b"b"]


async def test_stop_broker_fails_its_records_within_delivery_timeout() -> None:
    with anyio.fail_after(15):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 2, leaders=[0, 1])
            async with Producer(
                cluster.bootstrap_servers, request_timeout_ms=300, delivery_timeout_ms=1500, **FAST
            ) as producer:
                await producer.partitions_for("t")
                await cluster.stop_broker(1)
                started = anyio.current_time()
                with pytest.raises(KafkaError):
                    await producer.send_and_wait("t", b"lost", partition=1)
                assert anyio.current_time() - started < 4
                # the other broker's partition is unaffected
                assert (await producer.send_and_wait("t", b"ok", partition=0)).offset == 0
            assert cluster.records("t", 1) == []


async def test_stop_then_start_broker_the_records_arrive() -> None:
    with anyio.fail_after(15):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1, leaders=[1])
            port = cluster.bootstrap_servers.split(",")[1]
            async with Producer(
                cluster.bootstrap_servers,
                request_timeout_ms=2000,
                delivery_timeout_ms=10_000,
                **FAST,
            ) as producer:
                await producer.partitions_for("t")
                await cluster.stop_broker(1)

                async def restart() -> None:
                    await anyio.sleep(0.5)
                    await cluster.start_broker(1)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(restart)
                    metadata = await producer.send_and_wait("t", b"v")
            assert metadata.offset == 0
            assert cluster.bootstrap_servers.split(",")[1] == port
            assert [r.value for r in cluster.records("t", 0)] == [b"v"]


async def test_set_partition_count_the_producer_sees_new_partitions() -> None:
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 2)
            async with Producer(
                cluster.bootstrap_servers, metadata_max_age_ms=100, **FAST
            ) as producer:
                assert [p.partition for p in await producer.partitions_for("t")] == [0, 1]
                cluster.set_partition_count("t", 4)
                while len(await producer.partitions_for("t")) != 4:
                    await anyio.sleep(0.05)
                assert (await producer.send_and_wait("t", b"v", partition=3)).offset == 0
            with pytest.raises(ValueError, match="grow"):
                cluster.set_partition_count("t", 3)


async def test_close_does_not_hang_after_a_dropped_connection() -> None:
    """Regression: after a drop, the sender and the metadata refresh both reconnected to
    the leader once the backoff ended; the pool kept one connection and orphaned the other,
    whose receive loop then kept close() waiting forever."""
    with anyio.fail_after(30):
        for _ in range(10):
            async with FakeCluster(brokers=1) as cluster:
                cluster.create_topic("t", 1)
                async with Producer(
                    cluster.bootstrap_servers, enable_idempotence=False, retry_backoff_ms=20
                ) as producer:
                    await producer.partitions_for("t")
                    cluster.drop_connection(ApiKey.PRODUCE)
                    await producer.send_and_wait("t", b"v")
