"""FaultProxy.rewrite_responses: whole response frames through a function, by API."""

from __future__ import annotations

import struct

import anyio
import pytest

from asyncproducer.testing.proxy import FaultProxy
from tests.testing.test_proxy import BOUND, read_response, request, serve

pytestmark = pytest.mark.anyio


async def test_rewrites_whole_frames_of_the_chosen_api_and_fixes_the_size() -> None:
    seen: list[tuple[int, int, bytes]] = []

    def rewrite(api_key: int, version: int, frame: bytes) -> bytes:
        seen.append((api_key, version, frame))
        return frame[:4] + b"<" + frame[4:] * 2 + b">"  # keep the correlation id

    async with serve("kafka") as upstream, FaultProxy(upstream.address) as proxy:
        proxy.rewrite_responses(rewrite, api_key=3)
        with anyio.fail_after(BOUND):
            stream = await anyio.connect_tcp(*proxy.address)
            try:
                # Sent one byte at a time: the proxy must still see whole frames.
                for byte in request(3, 11, b"meta") + request(0, 12, b"prod"):
                    await stream.send(bytes([byte]))
                assert await read_response(stream) == (11, b"<metameta>")
                assert await read_response(stream) == (12, b"prod")  # another API: as is
                proxy.rewrite_responses(None)
                await stream.send(request(3, 13, b"again"))
                assert await read_response(stream) == (13, b"again")
            finally:
                await stream.aclose()
    assert seen == [(3, 0, struct.pack(">i", 11) + b"meta")]
    assert proxy.responses_rewritten == 1


async def test_heal_stops_rewriting() -> None:
    async with serve("kafka") as upstream, FaultProxy(upstream.address) as proxy:
        proxy.rewrite_responses(lambda api, version, frame: frame[:4])
        await proxy.heal()
        with anyio.fail_after(BOUND):
            stream = await anyio.connect_tcp(*proxy.address)
            try:
                await stream.send(request(18, 1, b"body"))
                assert await read_response(stream) == (1, b"body")
            finally:
                await stream.aclose()
