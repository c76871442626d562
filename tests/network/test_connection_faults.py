"""Connection faults against small local servers: nothing hangs, every failure is typed."""

from __future__ import annotations

import datetime
import struct

import anyio
import anyio.abc
import pytest
from kio.index import load_response_schema

from asyncproducer._cluster import BrokerAddress
from asyncproducer._connection import (
    BrokerConnection,
    ConnectionSettings,
    StreamConnector,
    connect_tcp,
)
from asyncproducer.errors import (
    ConnectionSetupTimeoutError,
    KafkaConnectionError,
    ProtocolError,
    RequestTimeoutError,
)
from asyncproducer.protocol.messages import api_versions_request, metadata_request, produce_request
from asyncproducer.protocol.versions import ApiKey
from tests.network.servers import ServerConnection, api_versions_body, closed_port, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["default-transport", "stream-transport"])
def connector(request: pytest.FixtureRequest) -> StreamConnector | None:
    """Each test runs on the default transport (the asyncio protocol one on asyncio, the
    stream one on trio) and on the AnyIO stream transport (what a custom connector, such
    as a TLS wrapper, gets) on both backends."""
    return None if request.param == "default-transport" else connect_tcp


@pytest.fixture
def fast(connector: StreamConnector | None) -> ConnectionSettings:
    return ConnectionSettings(
        request_timeout_ms=500, socket_connection_setup_timeout_ms=500, connector=connector
    )


def _metadata(connection: BrokerConnection) -> object:
    version = connection.versions.version_for(ApiKey.METADATA)
    return metadata_request(version, ["t"], allow_auto_topic_creation=False)


async def test_server_closing_mid_response_fails_every_pending_request_at_once(
    connector: StreamConnector | None,
) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        await conn.read_request()
        await conn.read_request()
        # A size prefix promising 100 bytes, 10 of them, then the connection closes.
        await conn.stream.send(struct.pack(">i", 100) + b"\0" * 10)

    settings = ConnectionSettings(request_timeout_ms=30_000, connector=connector)
    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        connection = await BrokerConnection.open(BrokerAddress(host, port), settings, tg)
        errors: list[BaseException] = []

        async def request() -> None:
            try:
                await connection.send(_metadata(connection))  # type: ignore[arg-type]
            except KafkaConnectionError as exc:
                errors.append(exc)

        started = anyio.current_time()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as requests:
                requests.start_soon(request)
                requests.start_soon(request)
        elapsed = anyio.current_time() - started
        assert len(errors) == 2
        assert all("closed the connection" in str(e) for e in errors)
        assert elapsed < 5  # failed when the stream ended, not after request_timeout_ms (30 s)
        assert connection.closed
        with pytest.raises(KafkaConnectionError):
            await connection.send(_metadata(connection))  # type: ignore[arg-type]


async def test_silent_server_times_out_and_fails_all_pending(fast: ConnectionSettings) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        await anyio.sleep_forever()  # reads nothing more, answers nothing

    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        connection = await BrokerConnection.open(BrokerAddress(host, port), fast, tg)
        outcomes: list[BaseException] = []

        async def request(timeout_ms: float | None) -> None:
            try:
                await connection.send(_metadata(connection), timeout_ms=timeout_ms)  # type: ignore[arg-type]
            except RequestTimeoutError as exc:
                outcomes.append(exc)

        started = anyio.current_time()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as requests:
                requests.start_soon(request, None)  # request_timeout_ms = 500
                requests.start_soon(request, 3000)  # longer, but fails with the first
        elapsed = anyio.current_time() - started
        assert len(outcomes) == 2, outcomes
        assert 0.45 <= elapsed < 2.0
        assert any("did not answer METADATA" in str(e) for e in outcomes)
        assert connection.closed
        tg.cancel_scope.cancel()


async def test_server_that_never_answers_api_versions_fails_open(fast: ConnectionSettings) -> None:
    async def handler(conn: ServerConnection) -> None:
        await anyio.sleep_forever()

    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        with anyio.fail_after(5), pytest.raises(RequestTimeoutError, match="API_VERSIONS"):
            await BrokerConnection.open(BrokerAddress(host, port), fast, tg)


async def test_closed_port_fails_within_setup_timeout(fast: ConnectionSettings) -> None:
    port = closed_port()
    started = anyio.current_time()
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(5), pytest.raises(KafkaConnectionError, match=f"127.0.0.1:{port}"):
            await BrokerConnection.open(BrokerAddress("127.0.0.1", port), fast, tg)
    assert anyio.current_time() - started < 0.5


async def test_connect_that_never_completes_raises_setup_timeout() -> None:
    async def stuck_connector(host: str, port: int) -> anyio.abc.ByteStream:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    settings = ConnectionSettings(socket_connection_setup_timeout_ms=200, connector=stuck_connector)
    started = anyio.current_time()
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(5), pytest.raises(ConnectionSetupTimeoutError, match="200"):
            await BrokerConnection.open(BrokerAddress("127.0.0.1", 1), settings, tg)
    assert 0.15 <= anyio.current_time() - started < 1.0


async def test_non_kafka_peer_is_a_protocol_error(fast: ConnectionSettings) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.read_request()
        await conn.stream.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await anyio.sleep_forever()

    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        with anyio.fail_after(5), pytest.raises(ProtocolError, match="not speaking the Kafka"):
            await BrokerConnection.open(BrokerAddress(host, port), fast, tg)


async def test_response_for_the_wrong_correlation_id_is_a_protocol_error(
    fast: ConnectionSettings,
) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        _api_key, _version, correlation_id = await conn.read_request()
        await conn.respond(correlation_id + 7, 18, 0, api_versions_body(0))
        await anyio.sleep_forever()

    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        connection = await BrokerConnection.open(BrokerAddress(host, port), fast, tg)
        with anyio.fail_after(5), pytest.raises(ProtocolError, match="correlation id"):
            await connection.send(_metadata(connection))  # type: ignore[arg-type]


@pytest.mark.parametrize(("advertised", "expected_retry"), [((0, 2), 2), (None, 0)])
async def test_api_versions_falls_back_when_the_broker_rejects_our_version(
    advertised: tuple[int, int] | None, expected_retry: int, fast: ConnectionSettings
) -> None:
    seen_versions: list[int] = []

    async def handler(conn: ServerConnection) -> None:
        while True:
            _api_key, version, correlation_id = await conn.read_request()
            seen_versions.append(version)
            if version > (advertised or (0, 0))[1]:
                # KIP-511: answer in the v0 format, UNSUPPORTED_VERSION, with our range.
                ranges = {18: advertised} if advertised else {}
                body = api_versions_body(0, ranges, error_code=35)
                await conn.respond(correlation_id, 18, 0, body)
            else:
                await conn.respond(
                    correlation_id, 18, version, api_versions_body(version, {0: (3, 9), 3: (4, 8)})
                )

    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        with anyio.fail_after(5):
            connection = await BrokerConnection.open(BrokerAddress(host, port), fast, tg)
        assert seen_versions == [4, expected_retry]
        assert connection.versions.version_for(ApiKey.PRODUCE) == 9
        assert connection.versions.version_for(ApiKey.METADATA) == 8
        assert not connection.versions.supports(ApiKey.INIT_PRODUCER_ID)
        await connection.aclose()


async def test_cancelled_caller_leaves_the_connection_usable(fast: ConnectionSettings) -> None:
    release = anyio.Event()

    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        first = await conn.read_request()
        await release.wait()
        second = await conn.read_request()
        for _api_key, _version, correlation_id in (first, second):
            await conn.respond(correlation_id, 18, 0, api_versions_body(0))
        await anyio.sleep_forever()  # stay connected: the client must see no EOF

    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        connection = await BrokerConnection.open(BrokerAddress(host, port), fast, tg)
        with anyio.move_on_after(0.05) as scope:
            await connection.send(api_versions_request(0, "x"))
        assert scope.cancelled_caught
        release.set()
        with anyio.fail_after(5):
            response = await connection.send(api_versions_request(0, "x"))
        assert response.error_code == 0
        assert not connection.closed
        await connection.aclose()


@pytest.mark.parametrize(
    "broker_answers_acks_zero", [True, False], ids=["tansu-like", "kafka-like"]
)
async def test_acks_zero_requests_mix_with_answered_ones(
    broker_answers_acks_zero: bool, fast: ConnectionSettings
) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        while True:
            api_key, version, correlation_id = await conn.read_request()
            if api_key == ApiKey.PRODUCE and not broker_answers_acks_zero:
                continue  # Kafka sends nothing back for acks=0
            if api_key == ApiKey.PRODUCE:
                body = load_response_schema(api_key, version)(
                    responses=(), throttle_time=datetime.timedelta(0)
                )
            else:
                body = api_versions_body(version)
            await conn.respond(correlation_id, api_key, version, body)

    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        connection = await BrokerConnection.open(BrokerAddress(host, port), fast, tg)
        produce_version = connection.versions.version_for(ApiKey.PRODUCE)
        with anyio.fail_after(5):
            for _ in range(3):
                sent = await connection.send(
                    produce_request(produce_version, acks=0, timeout_ms=100, topic_data={}),
                    expect_response=False,
                )
                assert sent is None
                response = await connection.send(api_versions_request(0, "x"))
                assert response.error_code == 0
        assert not connection.closed
        await connection.aclose()


async def test_a_shorter_timeout_than_the_default_is_kept(
    connector: StreamConnector | None,
) -> None:
    # The deadline watchdog sleeps for request_timeout_ms when idle: a request with a
    # shorter timeout must wake it, not wait for the default.
    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        await anyio.sleep_forever()

    settings = ConnectionSettings(request_timeout_ms=30_000, connector=connector)
    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        connection = await BrokerConnection.open(BrokerAddress(host, port), settings, tg)
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(RequestTimeoutError, match="within 300 ms"):
            await connection.send(_metadata(connection), timeout_ms=300)  # type: ignore[arg-type]
        assert 0.25 <= anyio.current_time() - started < 1.5
        assert connection.closed


async def test_a_request_after_an_idle_spell_times_out_on_time(fast: ConnectionSettings) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        await anyio.sleep_forever()

    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        connection = await BrokerConnection.open(BrokerAddress(host, port), fast, tg)
        await anyio.sleep(0.3)  # part of the watchdog's idle sleep (500 ms) has passed
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(RequestTimeoutError):
            await connection.send(_metadata(connection))  # type: ignore[arg-type]
        assert 0.45 <= anyio.current_time() - started < 1.0


async def test_submit_reports_later_and_refuses_once_closed(fast: ConnectionSettings) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        while True:
            api_key, version, correlation_id = await conn.read_request()
            if api_key != ApiKey.PRODUCE:  # acks=0: Kafka answers nothing
                await conn.respond(correlation_id, api_key, version, api_versions_body(version))

    async with serve(handler) as (host, port, _), anyio.create_task_group() as tg:
        connection = await BrokerConnection.open(BrokerAddress(host, port), fast, tg)
        outcomes: list[tuple[object, object]] = []
        done = anyio.Event()

        def on_done(response: object, error: object) -> None:
            outcomes.append((response, error))
            if len(outcomes) == 2:
                done.set()

        produce = produce_request(
            connection.versions.version_for(ApiKey.PRODUCE), acks=0, timeout_ms=100, topic_data={}
        )
        connection.submit(produce, on_done, expect_response=False)
        connection.submit(api_versions_request(0, "x"), on_done)
        assert outcomes == []  # never from inside submit()
        with anyio.fail_after(5):
            await done.wait()
        assert outcomes[0] == (None, None)  # acks=0: done once in the socket
        answer, error = outcomes[1]
        assert getattr(answer, "error_code", None) == 0
        assert error is None
        await connection.aclose()
        with pytest.raises(KafkaConnectionError, match="was closed"):
            connection.submit(api_versions_request(0, "x"), on_done)
