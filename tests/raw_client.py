"""A client of protocol-layer requests and no producer logic, for tests of the fake
broker's wire rules: it can send what the producer never would (out of turn, during a
throttle, before authenticating)."""

from __future__ import annotations

from typing import Any

import anyio.abc

from asyncproducer.protocol.framing import FrameDecoder, encode_request
from asyncproducer.protocol.messages import response_decoder
from asyncproducer.protocol.versions import ApiKey


class RawClient:
    """One connection, client id "raw", one request at a time unless told otherwise."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder()
        self.correlation_id = 0
        self._frames: list[bytes] = []

    async def send(self, payload: Any) -> None:
        self.correlation_id += 1
        frame = encode_request(payload, correlation_id=self.correlation_id, client_id="raw")
        await self.stream.send(frame)

    async def call(self, payload: Any, api: ApiKey, version: int) -> Any:
        await self.send(payload)
        return response_decoder(api, version)(memoryview(await self.frame()))

    async def frame(self) -> bytes:
        """The next response frame."""
        while not self._frames:
            self._frames = self.decoder.feed(await self.stream.receive())
        return self._frames.pop(0)
