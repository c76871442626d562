"""Brokers whose answers are unusual but legal keep the producer working (issue 16).

A broker that adds tagged fields this client does not know (KIP-482), one that answers
with an error code newer than this client, and librdkafka's mock cluster's answer to
ApiVersions v3/v4, over real sockets, on asyncio and trio.
"""

from __future__ import annotations

import dataclasses
import datetime
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from kio.index import load_payload_module
from kio.schema.errors import ErrorCode
from kio.static.constants import EntityType

from asyncproducer import Producer
from asyncproducer._cluster import BrokerAddress
from asyncproducer._connection import BrokerConnection, ConnectionSettings
from asyncproducer.errors import UnknownBrokerError, UnsupportedVersionError
from asyncproducer.protocol.versions import ApiKey
from tests.network.scripted_broker import ScriptedBroker
from tests.network.servers import ServerConnection, api_versions_body, serve
from tests.response_frames import encode_frame, with_size_prefix

pytestmark = pytest.mark.anyio

_UNKNOWN_CODE = 12345


class _UnusualBroker(ScriptedBroker):
    """The scripted broker, answering through the test frame writer: with unknown tagged
    fields in every tagged-field section, and Produce errors kio does not know."""

    def __init__(self, produce_codes: list[int], *, unknown_tags: bool) -> None:
        super().__init__("t", 1, [])
        self.produce_codes = list(produce_codes)
        self.unknown_tags = unknown_tags

    async def handle(self, conn: ServerConnection) -> None:
        while True:
            api_key, version, correlation_id = await conn.read_request()
            self.requests[api_key] += 1
            frame = encode_frame(
                self._body(api_key, version),
                correlation_id=correlation_id,
                unknown_tags=self._tags if self.unknown_tags else None,
            )
            await conn.stream.send(with_size_prefix(frame))

    def _body(self, api_key: int, version: int) -> Any:
        if api_key == ApiKey.API_VERSIONS:
            return api_versions_body(version)
        if api_key == ApiKey.METADATA:
            return self._metadata(version)
        if api_key == ApiKey.PRODUCE:
            code = self.produce_codes.pop(0) if self.produce_codes else 0
            response = self._produce(version)
            if code == 0:
                return response
            (topic,) = response.responses
            (partition,) = topic.partition_responses
            partition = dataclasses.replace(partition, error_code=code, base_offset=-1)
            topic = dataclasses.replace(topic, partition_responses=(partition,))
            return dataclasses.replace(response, responses=(topic,))
        module = load_payload_module(api_key, version, EntityType.response)
        return module.InitProducerIdResponse(
            throttle_time=datetime.timedelta(0),
            error_code=ErrorCode.none,
            producer_id=1000,
            producer_epoch=0,
        )

    @staticmethod
    def _tags(path: str, known: frozenset[int]) -> list[tuple[int, bytes]]:
        # Sizes either side of the one-byte uvarint limit, numbered past the known tags.
        first = max(known, default=-1) + 1
        return [(first, b""), (first + 7, b"\x01" * 128), (first + 500, b"\x02" * 300)]


@asynccontextmanager
async def _unusual(
    produce_codes: list[int], *, unknown_tags: bool
) -> AsyncIterator[tuple[_UnusualBroker, list[ServerConnection]]]:
    broker = _UnusualBroker(produce_codes, unknown_tags=unknown_tags)
    async with serve(broker.handle) as (_, port, connections):
        broker.port = port
        yield broker, connections


@pytest.mark.parametrize("idempotence", [True, False])
async def test_unknown_tagged_fields_in_every_answer_are_skipped(idempotence: bool) -> None:
    # Was: "cannot decode ApiVersionsResponse v4: 'Unknown tagged field tag: ...'" for
    # every broker; the producer never sent.
    async with (
        _unusual([], unknown_tags=True) as (broker, connections),
        Producer(f"127.0.0.1:{broker.port}", enable_idempotence=idempotence) as producer,
    ):
        with anyio.fail_after(10):
            first = await producer.send_and_wait("t", b"a")
            second = await producer.send_and_wait("t", b"b")
    assert second.offset > first.offset >= 0
    assert broker.requests[ApiKey.API_VERSIONS] == 1  # v4 understood at once
    # ApiVersions and Metadata on a bootstrap connection, then the leader's
    assert len(connections) <= 2


async def test_an_unknown_produce_error_code_fails_the_batch_once_and_keeps_the_connection() -> (
    None
):
    # Was: ProtocolError, connection dropped, batch retried until delivery_timeout_ms.
    async with (
        _unusual([_UNKNOWN_CODE], unknown_tags=False) as (broker, connections),
        Producer(
            f"127.0.0.1:{broker.port}",
            linger_ms=0,
            request_timeout_ms=2_000,
            delivery_timeout_ms=4_000,
        ) as producer,
    ):
        with anyio.fail_after(10):
            failed = await producer.send("t", b"bad")
            with pytest.raises(UnknownBrokerError, match=str(_UNKNOWN_CODE)) as raised:
                await failed
            connections_after_failure = len(connections)
            later = await producer.send_and_wait("t", b"good")
    assert raised.value.unknown_code == _UNKNOWN_CODE
    assert not raised.value.retriable
    assert broker.requests[ApiKey.PRODUCE] == 2  # the failed batch was not retried
    assert later.offset >= 0
    assert len(connections) == connections_after_failure  # nothing reconnected


# librdkafka's mock cluster answers ApiVersions v3/v4 with UNSUPPORTED_VERSION and this
# body, which parses as neither v0 nor v3/v4.
_MOCK_CLUSTER_BODY = bytes.fromhex("0023" + "01" + "0012" + "0000" + "0002" + "00000000")


async def test_an_unparsable_unsupported_version_answer_retries_api_versions_at_v0() -> None:
    seen: list[int] = []

    async def handler(conn: ServerConnection) -> None:
        while True:
            _api_key, version, correlation_id = await conn.read_request()
            seen.append(version)
            if version > 0:
                frame = struct.pack(">i", correlation_id) + _MOCK_CLUSTER_BODY
                await conn.stream.send(with_size_prefix(frame))
            else:
                body = api_versions_body(0, {0: (3, 9), 3: (4, 8), 18: (0, 2)})
                await conn.respond(correlation_id, 18, 0, body)

    settings = ConnectionSettings(request_timeout_ms=2_000)
    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        with anyio.fail_after(5):
            connection = await BrokerConnection.open(BrokerAddress(host, port), settings, tg)
        # Was: "sent a bad API_VERSIONS v4: cannot decode ApiVersionsResponse v0: Buffer is
        # exhausted", on every broker.
        assert seen == [4, 0]
        assert connection.versions.version_for(ApiKey.PRODUCE) == 9
        await connection.aclose()


async def test_a_broker_rejecting_every_api_versions_version_fails_typed_and_bounded() -> None:
    seen: list[int] = []

    async def handler(conn: ServerConnection) -> None:
        while True:
            _api_key, version, correlation_id = await conn.read_request()
            seen.append(version)
            # Claims to support v0-v4, yet rejects each: the retries still come to an end.
            body = api_versions_body(0, {18: (0, 4)}, error_code=35)
            await conn.respond(correlation_id, 18, 0, body)

    settings = ConnectionSettings(request_timeout_ms=2_000)
    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        with (
            anyio.fail_after(5),
            pytest.raises(UnsupportedVersionError, match="ApiVersions failed"),
        ):
            await BrokerConnection.open(BrokerAddress(host, port), settings, tg)
    assert seen == [4, 0]
