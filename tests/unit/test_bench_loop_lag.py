"""The loop-lag benchmark's driver (benchmarks/loop_lag.py): acknowledgements taken as
they come, or every future held to the end (``--hold-futures``), over a hand-made send
whose futures the test resolves."""

from __future__ import annotations

import asyncio
import weakref
from collections import deque

import pytest

from benchmarks import loop_lag
from tests.conftest import ASYNCIO_BACKENDS

# The benchmark drives asyncio clients (asyncproducer and aiokafka on asyncio or uvloop).
pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)]


async def test_take_acknowledged_lets_go_of_the_done_futures_in_front() -> None:
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(4)]
    futures[0].set_result(0)
    futures[1].set_result(1)
    futures[3].set_result(3)  # done, but behind one that is not: kept, as its order says
    pending = deque(futures)
    loop_lag.take_acknowledged(pending)
    assert list(pending) == futures[2:]


async def test_take_acknowledged_raises_a_failed_acknowledgement() -> None:
    future = asyncio.get_running_loop().create_future()
    future.set_exception(RuntimeError("refused"))
    with pytest.raises(RuntimeError, match="refused"):
        loop_lag.take_acknowledged(deque([future]))


@pytest.mark.parametrize("hold", [False, True])
async def test_offer_at_a_rate_keeps_or_lets_go_of_the_futures(hold: bool) -> None:
    loop = asyncio.get_running_loop()
    made: list[weakref.ref[asyncio.Future[None]]] = []
    most_alive = 0

    async def send(value: bytes) -> asyncio.Future[None]:
        nonlocal most_alive
        most_alive = max(most_alive, sum(ref() is not None for ref in made))
        future = loop.create_future()
        loop.call_soon(future.set_result, None)  # acknowledged on the loop's next turn
        made.append(weakref.ref(future))
        return future

    case = loop_lag.Case("rate", "zstd", 1024)
    sent = await loop_lag.offer(case, send, 0.05, [b"v"], hold=hold)
    per_tick = loop_lag.RATE // 1000
    assert sent == len(made) >= 10 * per_tick
    if hold:  # every future alive until the end
        assert most_alive == sent - 1
    else:  # a tick's futures, and the next tick's as they are sent
        assert most_alive < 2 * per_tick
    assert all(ref() is None for ref in made)  # all let go once offer() returned
