"""A record whose failure reached its ``on_delivery`` callback does not also make asyncio
log "Future exception was never retrieved" when its future (never awaited: the callback
was the way to hear of it) is collected. asyncio and uvloop only: the log is asyncio's
(a trio future of this package never logs)."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from asyncproducer import Producer
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing import FakeCluster
from tests.conftest import ASYNCIO_BACKENDS

INVALID_RECORD = 87  # not retriable: the record fails at once

pytestmark = pytest.mark.anyio


@pytest.fixture(params=ASYNCIO_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


async def unretrieved_logs(with_callback: bool) -> list[str]:
    """Fail one record without awaiting its future; what the loop's handler was told."""
    import asyncio

    loop = asyncio.get_running_loop()
    told: list[str] = []
    loop.set_exception_handler(lambda _, context: told.append(context["message"]))
    heard: list[BaseException | None] = []
    try:
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, linger_ms=0) as producer:
                await producer.partitions_for("t")
                cluster.fail_next(ApiKey.PRODUCE, INVALID_RECORD)
                callback = (lambda _, error: heard.append(error)) if with_callback else None
                await producer.send("t", b"refused", on_delivery=callback)  # future dropped
                await producer.flush()
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert heard if with_callback else not heard
    return told


async def test_a_failure_told_to_a_callback_is_not_logged_again() -> None:
    assert await unretrieved_logs(with_callback=True) == []


async def test_a_failure_nobody_heard_of_is_still_logged() -> None:
    # asyncio's own behaviour, kept: without a callback nobody else knows of the failure.
    assert any("never retrieved" in m for m in await unretrieved_logs(with_callback=False))
