"""The peer benchmark's ``send_batch`` loop (benchmarks/_bench_drive.py
``throughput_batch``): calls overlap, as many records as every client keeps in flight,
each record sent once, over a hand-made ``send_batch`` that acknowledges each call's
records a few loop turns later."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from benchmarks import _bench_drive as drive
from benchmarks._bench_scenarios import SCENARIOS, RunSpec
from tests.conftest import ASYNCIO_BACKENDS

# The benchmark's drivers run their clients on asyncio (or uvloop).
pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)]


@pytest.mark.parametrize("records", [25_000, 4_000, 1])
async def test_send_batch_calls_overlap_within_the_window(records: int) -> None:
    sent: list[int] = []
    in_flight = most_in_flight = calls_out = most_calls_out = 0

    async def send_batch(batch: list[int]) -> Sequence[object]:
        nonlocal in_flight, most_in_flight, calls_out, most_calls_out
        sent.extend(batch)
        in_flight += len(batch)
        calls_out += 1
        most_in_flight = max(most_in_flight, in_flight)
        most_calls_out = max(most_calls_out, calls_out)
        for _ in range(3):  # the broker's answer, a few turns of the loop later
            await asyncio.sleep(0)
        in_flight -= len(batch)
        calls_out -= 1
        return [object()] * len(batch)

    tally = drive.Tally(records)
    spec = RunSpec(SCENARIOS["base"], "127.0.0.1:9092", "topic", records, 60.0)
    await drive.throughput_batch(send_batch, lambda i: i, spec, tally)
    assert sorted(sent) == list(range(records))
    assert tally.acked == records
    assert most_in_flight <= drive.WINDOW
    if records > drive.CHUNK:  # enough for two calls: the second goes before the first ends
        assert most_calls_out == drive.CALLS_IN_FLIGHT == 2
        assert most_in_flight == drive.WINDOW
    else:
        assert most_calls_out == 1
