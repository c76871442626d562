"""FastAPI and Starlette: one producer for the application's lifespan, and a dependency.

    from asyncproducer.integrations.fastapi import ProducerDep, producer_lifespan

    app = FastAPI(lifespan=producer_lifespan(bootstrap_servers="localhost:9092", acks="all"))

    @app.post("/orders")
    async def create_order(order: Order, producer: ProducerDep) -> dict[str, int]:
        metadata = await producer.send_and_wait("orders", order.model_dump_json().encode())
        return {"offset": metadata.offset}

The producer lives in the lifespan *state* (key ``"producer"``), which the server copies
into every request (``request.state.producer``): nothing global, so one process may serve
several apps, each with its own producer. A Starlette app takes the same lifespan, and its
endpoints call ``await get_producer(request)``. Needs ``asyncproducer[fastapi]``. See
``docs/web.md``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, TypeAlias

from fastapi import Depends
from starlette.requests import HTTPConnection

from asyncproducer.integrations._shutdown import application_producer, check_shutdown_timeout
from asyncproducer.producer import Producer

__all__ = ["STATE_KEY", "ProducerDep", "get_producer", "producer_lifespan"]

STATE_KEY = "producer"
"""The producer's key in the lifespan state (and so ``request.state.producer``)."""

logger: logging.Logger = logging.getLogger("asyncproducer.integrations.fastapi")

# Starlette's Lifespan type, with or without state (what FastAPI(lifespan=...) takes), for
# any app class: Any, so that a lifespan typed for FastAPI, Starlette or a subclass fits.
AppLifespan: TypeAlias = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]


def producer_lifespan(
    *,
    shutdown_timeout: float = 10.0,
    lifespan: AppLifespan | None = None,
    **config: Any,
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan that runs one shared ``Producer(**config)`` while the application runs.

    ``config`` is the producer's keyword arguments (``bootstrap_servers=...``, ``acks``,
    ``linger_ms``, ...). At startup the producer is built and started, so a bad setting
    fails the startup with the producer's ``ConfigError``; it is the state's
    ``"producer"``. At shutdown it is closed within ``shutdown_timeout`` seconds: what is
    buffered is sent at once and its acknowledgements awaited at most that long, then
    what is left fails. A shutdown never hangs on an unreachable broker, and records
    that could not be delivered are logged as an error with their count.

    ``lifespan`` is the application's own lifespan, run *inside* this one: the producer
    starts before it and is closed after it, so its startup and shutdown code may still
    send. Their states are merged (the application's may not use the key
    ``"producer"``). Each startup makes a new producer, so the app may be served again.
    """
    check_shutdown_timeout(shutdown_timeout)

    @asynccontextmanager
    async def run_producer(app: Any) -> AsyncIterator[dict[str, Any]]:
        async with application_producer(config, shutdown_timeout, logger) as producer:
            if lifespan is None:
                yield {STATE_KEY: producer}
                return
            async with lifespan(app) as app_state:
                yield _merged(producer, app_state)

    return run_producer


def _merged(producer: Producer, app_state: Mapping[str, Any] | None) -> dict[str, Any]:
    if app_state is not None and STATE_KEY in app_state:
        # Either choice would hide one of the two from the requests.
        raise RuntimeError(
            f"the application's lifespan state has the key {STATE_KEY!r}, which "
            "producer_lifespan() uses for its producer: rename the application's key"
        )
    return {STATE_KEY: producer, **(app_state or {})}


async def get_producer(request: HTTPConnection) -> Producer:
    """The producer of :func:`producer_lifespan`, from a request's (or a websocket's)
    state: a FastAPI dependency (see :data:`ProducerDep`), or ``await get_producer(request)``
    in a Starlette endpoint.

    A coroutine function, though it never waits: FastAPI runs a plain function dependency
    in its thread pool, a thread hop per request (and a token of the pool's limit, shared
    with the app's blocking code) just to read an attribute.
    """
    producer: Producer | None = getattr(request.state, STATE_KEY, None)
    if producer is None:
        raise RuntimeError(
            f"no producer in the request state ({STATE_KEY!r}): create the app with "
            "lifespan=producer_lifespan(bootstrap_servers=...) (pass the app's own lifespan "
            "as its lifespan= argument) and serve it with a server that runs the lifespan "
            "(uvicorn does; httpx.ASGITransport does not: in tests, override get_producer "
            "in app.dependency_overrides)"
        )
    return producer


ProducerDep = Annotated[Producer, Depends(get_producer)]
"""An endpoint parameter that receives the producer: ``producer: ProducerDep``."""
