"""Property: one broker answering with mutated frames never ends the producer.

Two fake brokers; broker 1 is reached through a ``FaultProxy`` (the cluster advertises
the proxy's address for it) that replaces its first answers of one API (ApiVersions,
Metadata, Produce or InitProducerId) with mutated frames from ``tests.response_frames``:
fields perturbed, counts negated or null, unknown tags, truncated, padded, random bytes.

Whatever the frames, every outcome is a record acknowledged or a typed ``KafkaError``
(from ``send()`` or its future), never another exception and never a hang; records for
broker 0 are acknowledged; and once broker 1 answers truthfully again, a record for
broker 0 is acknowledged (the producer is alive). The one typed way out is a documented
fatal error (a mutated InitProducerId or Produce error code can be one: Java stops too).
"""

from __future__ import annotations

import anyio
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from asyncproducer import Producer, RecordMetadata
from asyncproducer.errors import (
    ClusterAuthorizationFailedError,
    InvalidProducerEpochError,
    KafkaError,
    ProducerFencedError,
    ProducerStateError,
    TransactionalIdAuthorizationFailedError,
)
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster
from asyncproducer.testing.proxy import FaultProxy, ResponseRewriter
from tests.response_frames import RESPONSE_APIS, mutated_frames

pytestmark = pytest.mark.anyio

# The versions the producer and the fake agree on (the producer asks ApiVersions at v4).
NEGOTIATED = {
    ApiKey.API_VERSIONS: 4,
    ApiKey.METADATA: 12,
    ApiKey.PRODUCE: 11,
    ApiKey.INIT_PRODUCER_ID: 5,
}
SETTINGS = {
    "linger_ms": 0,
    "retry_backoff_ms": 20,
    "retry_backoff_max_ms": 100,
    "reconnect_backoff_ms": 20,
    "reconnect_backoff_max_ms": 100,
    "request_timeout_ms": 1_000,
    "socket_connection_setup_timeout_ms": 1_000,
    "delivery_timeout_ms": 3_000,
    "max_block_ms": 2_000,
}
EXAMPLE_BOUND_S = 15  # no example may take longer: a hang fails it
# Java's fatal errors: the producer stops, typed (docs/producer.md, "Fatal errors").
FATAL = (
    ClusterAuthorizationFailedError,
    ProducerFencedError,
    InvalidProducerEpochError,
    TransactionalIdAuthorizationFailedError,
)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[ApiKey, list[bytes]]:
    """An API, and the frames that replace broker 1's first one to three answers to it."""
    # The APIs a FakeCluster without SASL answers (SaslHandshake/Authenticate are never sent).
    api = draw(st.sampled_from([api for api in RESPONSE_APIS if api in NEGOTIATED]))
    count = draw(st.integers(1, 3))
    return api, [draw(mutated_frames(api, NEGOTIATED[api])) for _ in range(count)]


def replace_with(frames: list[bytes]) -> ResponseRewriter:
    """Answer with ``frames`` in turn, then truthfully. Each keeps the real correlation
    id, so that the client reads the mutated content rather than only a mismatch."""

    def rewrite(api_key: int, version: int, frame: bytes) -> bytes:
        if not frames:
            return frame
        mutated = frames.pop(0)
        return frame[:4] + mutated[4:] if len(mutated) >= 4 else mutated

    return rewrite


def check_outcome(outcome: object) -> None:
    """A record's outcome: its metadata, or a typed error; anything else fails the test."""
    if not isinstance(outcome, RecordMetadata | KafkaError):
        raise AssertionError(f"not a typed outcome: {outcome!r}") from (
            outcome if isinstance(outcome, BaseException) else None
        )


async def send_and_settle(producer: Producer, partition: int) -> object:
    """Send one record and wait for its outcome: RecordMetadata, or the error (any)."""
    try:
        future = await producer.send("t", b"x", partition=partition)
        return await future
    except Exception as exc:  # checked by the caller: only KafkaError is allowed
        return exc


async def run_example(api: ApiKey, frames: list[bytes]) -> None:
    async with FakeCluster(brokers=2) as cluster:
        cluster.create_topic("t", 2, leaders=[0, 1])
        broker_1 = cluster.bootstrap_servers.split(",")[1]
        async with FaultProxy(broker_1) as proxy:
            cluster.advertise(1, *proxy.address)
            proxy.rewrite_responses(replace_with(frames), api_key=api)
            # Bootstrap through broker 1 only, so its mutated answers are read first.
            async with Producer(proxy.bootstrap_servers, **SETTINGS) as producer:
                outcomes = [await send_and_settle(producer, p) for p in (1, 0, 1, 0)]
                for outcome in outcomes:
                    check_outcome(outcome)
                fatal = next((o for o in outcomes if isinstance(o, FATAL)), None)
                if fatal is None:
                    # Records for the healthy broker are acknowledged.
                    assert isinstance(outcomes[1], RecordMetadata), outcomes[1]
                    assert isinstance(outcomes[3], RecordMetadata), outcomes[3]
                proxy.rewrite_responses(None)
                after = await send_and_settle(producer, 0)
                check_outcome(after)
                if isinstance(after, RecordMetadata):
                    event("producer alive after the mutations")
                else:
                    # Only a documented fatal error may have stopped it.
                    assert isinstance(after, (*FATAL, ProducerStateError)), after
                    event(f"stopped by a fatal error: {type(after).__name__}")
    event(f"mutated {api.name}")


@settings(
    # x 3 loops; CI time is counted (test_response_decoding.py mutates frames 150 times)
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(mutation=mutations())
async def test_a_broker_answering_mutated_frames_never_ends_the_producer(
    mutation: tuple[ApiKey, list[bytes]],
) -> None:
    api, frames = mutation
    with anyio.fail_after(EXAMPLE_BOUND_S):
        await run_example(api, list(frames))


UNKNOWN_SERVER_ERROR = -1


async def test_an_unexpected_init_producer_id_error_is_retried_not_fatal() -> None:
    """Any broker may answer InitProducerId: one answering an unexpected (non-retriable)
    code must not stop the producer; only the documented fatal errors do."""
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            cluster.fail_next(ApiKey.INIT_PRODUCER_ID, UNKNOWN_SERVER_ERROR, count=2)
            async with Producer(cluster.bootstrap_servers, **SETTINGS) as producer:  # type: ignore[arg-type]
                metadata = await producer.send_and_wait("t", b"v")
            assert metadata.offset == 0
            assert cluster.request_count(ApiKey.INIT_PRODUCER_ID) == 3
