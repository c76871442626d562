"""loop_lag's probes (benchmarks/_lag_probes.py): the request probe sees the loop held, and
the full-collection counter counts only full collections."""

from __future__ import annotations

import asyncio
import gc
import os
import time

import pytest

from benchmarks._lag_probes import FullCollections, RequestProbe
from tests.conftest import ASYNCIO_BACKENDS

# The benchmark drives asyncio clients (on asyncio or uvloop); the probe is an asyncio
# protocol.
pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)]


async def test_the_request_probe_measures_how_long_the_loop_was_held() -> None:
    probe = RequestProbe()
    await probe.start()
    try:
        probe.recording = True
        await asyncio.sleep(0.05)
        time.sleep(0.03)  # noqa: ASYNC251 -- the loop held, on purpose: what arrives waits
        await asyncio.sleep(0.05)
        probe.recording = False
        recorded = len(probe.lags_ms)
        await asyncio.sleep(0.02)
    finally:
        probe.close()
    assert recorded >= 50  # ~one a millisecond over ~0.13 s
    assert len(probe.lags_ms) == recorded  # nothing once recording stopped
    assert min(probe.lags_ms) >= 0
    assert max(probe.lags_ms) >= 20  # the first stamp sent while the loop was held
    assert sorted(probe.lags_ms)[len(probe.lags_ms) // 2] < 20  # most did not wait


def _command_line(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return cmdline.read()


@pytest.mark.skipif(not os.path.exists("/proc/self/cmdline"), reason="reads Linux's /proc")
async def test_the_request_probe_hands_its_sender_to_be_placed() -> None:
    placed: list[int] = []
    probe = RequestProbe(place=placed.append)
    await probe.start()
    try:
        # Read once its first timestamp came (start() returned): just after the fork, the
        # kernel may not have set the new program's arguments yet.
        assert len(placed) == 1
        assert b"perf_counter_ns" in _command_line(placed[0])  # the sender's program
    finally:
        probe.close()


async def test_the_request_probe_keeps_a_timestamp_split_across_reads() -> None:
    probe = RequestProbe()
    probe.recording = True
    sent = time.perf_counter_ns().to_bytes(8, "little")
    probe.data_received(sent[:3])
    assert probe.lags_ms == []
    probe.data_received(sent[3:] + sent[:5])
    assert len(probe.lags_ms) == 1
    assert 0 <= probe.lags_ms[0] < 1000


async def test_full_collections_counts_the_oldest_generation_only() -> None:
    with FullCollections() as collections:
        gc.collect(0)
        gc.collect(1)
        assert collections.pauses_ms == []
        gc.collect()
    gc.collect()  # after the window: not counted
    assert len(collections.pauses_ms) == 1
    assert collections.pauses_ms[0] > 0
