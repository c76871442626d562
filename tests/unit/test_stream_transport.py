"""StreamTransport (the AnyIO byte-stream transport, trio's and TLS's): every way a
stream can end is a lost connection reported to its client, never an exception that
escapes into the producer's task group."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc
import pytest

from asyncproducer._transport import StreamTransport

pytestmark = pytest.mark.anyio


class Client:
    def __init__(self) -> None:
        self.lost: list[BaseException | None] = []
        self.ended = anyio.Event()

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, error: BaseException | None) -> None:
        self.lost.append(error)
        self.ended.set()


class Stream(anyio.abc.ByteStream):
    """Reads block until closed; send() ends as ``failure`` says."""

    def __init__(self, failure: BaseException) -> None:
        self.failure = failure
        self.closed = anyio.Event()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await self.closed.wait()
        raise anyio.ClosedResourceError

    async def send(self, item: bytes) -> None:
        raise self.failure

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed.set()


@pytest.mark.parametrize(
    ("failure", "reported"),
    [
        # What a TLS stream's send() raises on trio when the peer closed without
        # close_notify (a killed broker): once it escaped and ended the producer.
        (anyio.EndOfStream(), type(None)),
        (anyio.BrokenResourceError(), anyio.BrokenResourceError),
        (ConnectionResetError(), ConnectionResetError),
    ],
)
async def test_a_failed_write_is_a_lost_connection(
    failure: BaseException, reported: type[Any]
) -> None:
    client = Client()
    stream = Stream(failure)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            transport = StreamTransport(stream, client)
            transport.start(group, "transport")
            transport.write([b"a request"])
            await client.ended.wait()
    assert len(client.lost) == 1
    assert isinstance(client.lost[0], reported)
    assert stream.closed.is_set()
