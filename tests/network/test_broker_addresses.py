"""Opening a connection to an address no connection can be opened to: a typed error.

A broker's address comes from its metadata (``advertised.listeners``), so a broker can
name any int as its port and any string as its host. Whatever fails while opening the
connection is a broker that cannot be reached (``KafkaConnectionError`` naming it and
why), never an ``OverflowError`` or ``UnicodeError`` that would end the producer.
"""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from asyncproducer._cluster import BrokerAddress
from asyncproducer._connection import BrokerConnection, ConnectionSettings, StreamConnector
from asyncproducer.errors import KafkaConnectionError
from asyncproducer.protocol.versions import CLIENT_VERSIONS, ApiKey
from tests.network.servers import ServerConnection, serve

pytestmark = pytest.mark.anyio

IMPOSSIBLE = [
    ("127.0.0.1", 70000, "70000"),
    ("127.0.0.1", -1, "-1"),
    ("a..b", 9092, "a..b"),
    ("x" * 300, 9092, "300 characters"),
    ("a\0b", 9092, "'\\x00'"),
    ("\ud800", 9092, "'\\ud800'"),
]


@pytest.mark.parametrize("connector", [None, "anyio"], ids=["default-transport", "stream"])
@pytest.mark.parametrize(("host", "port", "reason"), IMPOSSIBLE)
async def test_an_impossible_address_is_a_connection_error_naming_the_broker(
    host: str, port: int, reason: str, connector: str | None
) -> None:
    settings = ConnectionSettings(
        socket_connection_setup_timeout_ms=2_000,
        connector=None if connector is None else anyio.connect_tcp,
    )
    address = BrokerAddress(host, port, 3)
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(5), pytest.raises(KafkaConnectionError) as info:
            await BrokerConnection.open(address, settings, tg)
    assert "(node 3)" in str(info.value)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    "error", [OverflowError("port must be 0-65535"), UnicodeError("label too long"), ValueError()]
)
async def test_any_error_of_a_connector_is_a_connection_error(error: Exception) -> None:
    """A custom connector (TLS, a proxy) may raise anything: the broker is unreachable."""

    async def connector(host: str, port: int) -> anyio.abc.ByteStream:
        raise error

    settings = ConnectionSettings(connector=connector)
    async with anyio.create_task_group() as tg:
        with pytest.raises(KafkaConnectionError, match=type(error).__name__) as info:
            await BrokerConnection.open(BrokerAddress("h", 1), settings, tg)
    assert info.value.__cause__ is error


async def test_an_error_while_negotiating_is_a_connection_error_and_closes() -> None:
    """Past the connect: a handshake (SASL) that fails with a non-Kafka error."""

    async def handshake(connection: BrokerConnection) -> None:
        raise LookupError("no such mechanism")

    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        await anyio.sleep(10)

    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        settings = ConnectionSettings(handshake=handshake)
        with anyio.fail_after(5), pytest.raises(KafkaConnectionError, match="LookupError"):
            await BrokerConnection.open(BrokerAddress(host, port), settings, tg)


async def test_cancelling_a_connect_is_still_a_cancellation() -> None:
    """The mapping never swallows cancellation: a caller cancelled while its connector
    waits is cancelled, not handed a connection error."""

    async def connector(host: str, port: int) -> anyio.abc.ByteStream:
        await anyio.sleep(10)
        raise AssertionError("not reached")

    stream_connector: StreamConnector = connector
    settings = ConnectionSettings(connector=stream_connector)
    async with anyio.create_task_group() as tg:
        with anyio.move_on_after(0.1) as scope:
            await BrokerConnection.open(BrokerAddress("h", 1), settings, tg)
    assert scope.cancelled_caught


@pytest.mark.parametrize("missing", [ApiKey.METADATA, ApiKey.PRODUCE])
async def test_a_broker_sharing_no_metadata_or_produce_version_is_refused(missing: ApiKey) -> None:
    """Kept open, every request on it would fail for as long as it lives (and a Produce
    built for it raised from the sender's loop); refused, the next connection asks
    ApiVersions again."""
    ranges = {int(k): v for k, v in CLIENT_VERSIONS.items() if k != missing}

    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions(ranges)
        await anyio.sleep(10)

    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        with anyio.fail_after(5), pytest.raises(KafkaConnectionError) as info:
            await BrokerConnection.open(BrokerAddress(host, port), ConnectionSettings(), tg)
    assert "cannot serve a producer" in str(info.value)
    assert missing.name in str(info.value)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_every_address_a_name_resolves_to_is_tried(
    monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    """client_dns_lookup=use_all_dns_ips (Java's default): a name whose first address
    refuses the connection is reached at its second. (asyncio and trio: uvloop resolves
    names in libuv, past the ``socket.getaddrinfo`` this test replaces.)"""
    import socket

    from tests.network.servers import closed_port

    real_getaddrinfo = socket.getaddrinfo
    dead = closed_port()

    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        await anyio.sleep_forever()

    async with serve(handler) as (_, port, accepted), anyio.create_task_group() as group:

        def two_addresses(host: object, *args: object, **kwargs: object) -> list[object]:
            if host not in ("two-addresses.invalid", b"two-addresses.invalid"):  # trio: IDNA bytes
                return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]
            stream = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
            return [(*stream, ("127.0.0.1", dead)), (*stream, ("127.0.0.1", port))]

        monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
        with anyio.fail_after(5):
            connection = await BrokerConnection.open(
                BrokerAddress("two-addresses.invalid", port), ConnectionSettings(), group
            )
        assert len(accepted) == 1
        await connection.aclose()
        group.cancel_scope.cancel()
