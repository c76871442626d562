"""Client quotas (KIP-13) and throttling (KIP-219) against FakeCluster: the producer waits
out each throttle time a broker gives, and the fake's records of it can catch a client
that does not."""

from __future__ import annotations

import datetime
from typing import Any

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.protocol.messages import api_versions_request, produce_request
from asyncproducer.protocol.records import RecordBatchBuilder
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster
from tests.raw_client import RawClient

pytestmark = pytest.mark.anyio

RECORD = 1000
RECORDS = 120
QUOTA = 64_000  # bytes per second, about a third of what the producer would send in 1 s
WINDOWS = 11
WINDOW_S = 0.05
FIRST_BURST = QUOTA * (WINDOWS - 1) * WINDOW_S
"""What a client may send at once before its first throttle: Kafka measures a new
client's rate as if the windows before its first were empty."""


def payload(i: int) -> bytes:
    return b"%06d" % i + b"x" * (RECORD - 6)


async def test_a_producer_over_its_quota_waits_out_every_throttle() -> None:
    with anyio.fail_after(20):
        async with FakeCluster(
            brokers=1, quota_window_num=WINDOWS, quota_window_size_seconds=WINDOW_S
        ) as cluster:
            cluster.create_topic("t", 1)
            cluster.set_quota("throttled", producer_byte_rate=QUOTA)
            async with Producer(
                cluster.bootstrap_servers, client_id="throttled", batch_size=8192, linger_ms=5
            ) as producer:
                started = anyio.current_time()
                futures = [await producer.send("t", payload(i)) for i in range(RECORDS)]
                await producer.flush()
                elapsed = anyio.current_time() - started
                metrics = producer.metrics()
            assert all(f.done() and f.exception() is None for f in futures)

            # (a) the broker throttled it, and told it (Produce v6+, acks=all)
            throttles = cluster.throttles
            assert len(throttles) >= 3
            assert {t.client_id for t in throttles} == {"throttled"}
            assert all(t.throttle_ms > 0 and t.told for t in throttles)
            # (b) nothing was written to the broker while a throttle held the connection
            assert cluster.throttle_violations() == []
            # (c) every record was delivered, in order
            assert [r.value for r in cluster.records("t", 0)] == [
                payload(i) for i in range(RECORDS)
            ]
            # (d) the producer's metrics report what the broker gave: one throttle time per
            # Produce response (0 for the ones within the quota), as Java records them
            answered = cluster.request_count(ApiKey.PRODUCE)
            given = [t.throttle_ms for t in throttles]
            assert metrics["produce-throttle-time-max"] == max(given)
            assert metrics["produce-throttle-time-avg"] == pytest.approx(sum(given) / answered)
            # (e) what was sent beyond the first burst went at about the quota's rate: a
            # producer that ignored the throttles would take ~0.1 s
            beyond_first_burst = RECORDS * RECORD - FIRST_BURST
            assert beyond_first_burst / elapsed <= 2 * QUOTA
            assert RECORDS * RECORD / elapsed >= QUOTA / 3  # and it did not wait for nothing


async def test_the_quota_is_per_client_id_with_a_default() -> None:
    with anyio.fail_after(10):
        async with FakeCluster(
            brokers=1, quota_window_num=WINDOWS, quota_window_size_seconds=WINDOW_S
        ) as cluster:
            cluster.create_topic("t", 1)
            cluster.set_quota(producer_byte_rate=1_000)  # the default: every client id...
            cluster.set_quota("free", producer_byte_rate=10**9)  # ...but this one
            assert cluster.quotas == {None: 1_000.0, "free": 10**9}
            async with Producer(cluster.bootstrap_servers, client_id="free") as producer:
                for i in range(20):
                    await producer.send_and_wait("t", payload(i))
                assert producer.metrics()["produce-throttle-time-max"] == 0
            assert cluster.throttles == []
            cluster.set_quota("free", producer_byte_rate=None)
            cluster.set_quota(None, producer_byte_rate=None)
            assert cluster.quotas == {}


# ----------------------------------------------------------------- raw protocol checks
# A client of protocol-layer requests and no producer logic, so it can break the rules.


RAW_QUOTA = 10_000  # a 3 kB request measures 30 kB/s: about 0.2 s of throttle


def records(count: int = 3) -> bytes:
    builder = RecordBatchBuilder(batch_size=1 << 20)
    for i in range(count):
        assert builder.try_append(1_700_000_000_000, None, payload(i)) is not None
    return builder.build(producer_id=-1, producer_epoch=-1, base_sequence=-1)


def produce(version: int = 11, acks: int = -1) -> Any:
    return produce_request(version, acks=acks, timeout_ms=1000, topic_data={"t": {0: records()}})


def raw_cluster() -> FakeCluster:
    # Windows of 10 ms: a first request is measured over 0.1 s.
    return FakeCluster(brokers=1, quota_window_num=11, quota_window_size_seconds=0.01)


async def raw_cluster_port(cluster: FakeCluster) -> int:
    cluster.create_topic("t", 1)
    cluster.set_quota("raw", producer_byte_rate=RAW_QUOTA)
    return int(cluster.bootstrap_servers.rsplit(":", 1)[1])


async def test_a_request_sent_during_the_throttle_is_a_violation_and_waits() -> None:
    with anyio.fail_after(10):
        async with raw_cluster() as cluster:
            port = await raw_cluster_port(cluster)
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                client = RawClient(stream)
                first = await client.call(produce(), ApiKey.PRODUCE, 11)
                answered = anyio.current_time()
                assert first.throttle_time > datetime.timedelta(milliseconds=100)
                await client.send(produce())  # at once: what KIP-219 forbids
                second = await client.frame()
                waited = anyio.current_time() - answered
            assert second  # served, but only once the throttle was over (muted until then)
            assert waited >= first.throttle_time.total_seconds() - 0.02
            [throttle, *_] = cluster.throttles
            assert throttle.told
            assert throttle.correlation_id == 1
            assert timedelta_ms(first.throttle_time) == throttle.throttle_ms
            violations = cluster.throttle_violations(ApiKey.PRODUCE)
            assert [(v.client_id, v.correlation_id) for v in violations] == [("raw", 2)]
            assert throttle.started < violations[0].at < throttle.ends


async def test_acks_zero_is_muted_without_being_told() -> None:
    with anyio.fail_after(10):
        async with raw_cluster() as cluster:
            port = await raw_cluster_port(cluster)
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                client = RawClient(stream)
                sent = anyio.current_time()
                await client.send(produce(acks=0))  # no response, so no throttle time
                await client.call(api_versions_request(3, "x"), ApiKey.API_VERSIONS, 3)
                waited = anyio.current_time() - sent
            [throttle] = cluster.throttles
            assert not throttle.told
            assert throttle.throttle_ms > 100
            assert waited >= throttle.throttle_ms / 1000 - 0.02  # the connection was muted
            assert cluster.throttle_violations() == []  # the client could not know
            assert len(cluster.records("t", 0)) == 3


async def test_before_produce_v6_the_broker_holds_the_response() -> None:
    with anyio.fail_after(10):
        async with raw_cluster() as cluster:
            port = await raw_cluster_port(cluster)
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                client = RawClient(stream)
                sent = anyio.current_time()
                response = await client.call(produce(version=5), ApiKey.PRODUCE, 5)
                waited = anyio.current_time() - sent
            [throttle] = cluster.throttles
            assert not throttle.told
            assert timedelta_ms(response.throttle_time) == throttle.throttle_ms > 100
            assert waited >= throttle.throttle_ms / 1000 - 0.02


def timedelta_ms(value: datetime.timedelta) -> int:
    return round(value.total_seconds() * 1000)
