"""aiohttp: one producer for the application's lifetime, as a cleanup context.

    from asyncproducer.integrations.aiohttp import PRODUCER_KEY, producer_context

    async def create_order(request: web.Request) -> web.Response:
        producer = request.app[PRODUCER_KEY]
        metadata = await producer.send_and_wait("orders", await request.read())
        return web.json_response({"offset": metadata.offset})

    app = web.Application()
    app.cleanup_ctx.append(producer_context(bootstrap_servers="localhost:9092", acks="all"))
    app.router.add_post("/orders", create_order)

In a sub-application, ``request.config_dict[PRODUCER_KEY]`` finds the producer of the
application it was added to. Needs ``asyncproducer[aiohttp]``. See ``docs/web.md``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from asyncproducer.integrations._shutdown import application_producer, check_shutdown_timeout
from asyncproducer.producer import Producer

__all__ = ["PRODUCER_KEY", "producer_context"]

PRODUCER_KEY = web.AppKey("producer", Producer)
"""Where :func:`producer_context` puts the producer: ``request.app[PRODUCER_KEY]``."""

logger: logging.Logger = logging.getLogger("asyncproducer.integrations.aiohttp")


def producer_context(
    *, shutdown_timeout: float = 10.0, **config: Any
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context (``app.cleanup_ctx.append(...)``) that runs one shared
    ``Producer(**config)`` while the application runs, as ``app[PRODUCER_KEY]``.

    ``config`` is the producer's keyword arguments (``bootstrap_servers=...``, ``acks``,
    ...). At startup the producer is built and started, so a bad setting fails the
    startup with the producer's ``ConfigError``. At cleanup (after aiohttp has stopped
    accepting requests and waited for the running handlers) it is closed within
    ``shutdown_timeout`` seconds: what is buffered is sent at once and its
    acknowledgements awaited at most that long, then what is left fails. Cleanup never
    hangs on an unreachable broker, and records that could not be delivered are logged as
    an error with their count. Cleanup contexts run in reverse order at cleanup: append
    this one before those that send at their cleanup.
    """
    check_shutdown_timeout(shutdown_timeout)

    async def run_producer(app: web.Application) -> AsyncIterator[None]:
        async with application_producer(config, shutdown_timeout, logger) as producer:
            app[PRODUCER_KEY] = producer
            yield

    return run_producer
