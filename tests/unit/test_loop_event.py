"""``_futures.LoopEvent``: asyncio.Event's behaviour, without its per-wait loop lookup."""

from __future__ import annotations

import asyncio

import pytest

from asyncproducer._futures import LoopEvent, event_factory
from tests.conftest import ASYNCIO_BACKENDS

# Plain asyncio and uvloop (trio has its own Event, which event_factory gives there).
pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)]


async def test_the_factory_makes_loop_events_for_the_running_loop() -> None:
    event = event_factory()()
    assert isinstance(event, LoopEvent)
    assert not event.is_set()


async def test_wait_returns_once_set_and_at_once_after() -> None:
    event = LoopEvent(asyncio.get_running_loop())
    waiter = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    event.set()
    await asyncio.wait_for(waiter, 1)
    assert event.is_set()
    await asyncio.wait_for(event.wait(), 1)  # set: no waiting
    event.set()  # a second set is harmless


async def test_every_waiter_wakes() -> None:
    event = LoopEvent(asyncio.get_running_loop())
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    event.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)


async def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    event = LoopEvent(asyncio.get_running_loop())
    cancelled = asyncio.ensure_future(event.wait())
    other = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert not other.done()
    event.set()
    await asyncio.wait_for(other, 1)
    assert event._waiters == []  # nothing left behind


async def test_a_wait_after_a_cancelled_one_still_waits() -> None:
    event = LoopEvent(asyncio.get_running_loop())
    first = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    second = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    assert not second.done()
    event.set()
    await asyncio.wait_for(second, 1)
