"""The web framework integrations' lifecycle, against the in-process FakeCluster.

``producer_lifespan`` (FastAPI, Starlette) runs under the ASGI lifespan protocol exactly as
a server drives it (``running_lifespan`` below: startup, the state copied into each
request, shutdown), with requests sent in process by httpx; ``producer_context`` (aiohttp)
runs under aiohttp's own ``AppRunner`` on a loopback port. What is checked: one producer
per application run, reachable from every request; the application's own lifespan runs
inside and its state is merged; a missing lifespan and bad settings fail saying what to do;
a graceful shutdown delivers what ``send()`` enqueued; a shutdown against a stalled or
stopped broker ends within its ``shutdown_timeout`` and logs how many records it lost.

The real servers (uvicorn, aiohttp) against real brokers are in
tests/integration/test_web_integrations.py.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asyncproducer import Producer
from asyncproducer.errors import ConfigError, ProducerClosedError
from asyncproducer.integrations.aiohttp import PRODUCER_KEY, producer_context
from asyncproducer.integrations.fastapi import ProducerDep, get_producer, producer_lifespan
from asyncproducer.producer import State
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster
from tests.conftest import ASYNCIO_BACKENDS, BACKENDS

TOPIC = "orders"
PARTITIONS = 3
SLACK = 2.0
"""Seconds a bounded shutdown may take beyond its ``shutdown_timeout`` (CI machines)."""

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]

# --------------------------------------------------------------------------- ASGI lifespan


@asynccontextmanager
async def running_lifespan(app: ASGIApp) -> AsyncIterator[dict[str, Any]]:
    """Run ``app``'s ASGI lifespan as a server does; the block gets the lifespan state.

    A startup the app reports as failed raises the exception the app raised with it."""
    state: dict[str, Any] = {}
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    to_app, app_inbox = anyio.create_memory_object_stream[Message](1)
    app_outbox, from_app = anyio.create_memory_object_stream[Message](1)
    raised: list[Exception] = []

    async def serve() -> None:
        try:
            await app(scope, app_inbox.receive, app_outbox.send)
        except Exception as exc:  # Starlette sends "...failed", then raises it
            raised.append(exc)

    with to_app, app_inbox, app_outbox, from_app:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(serve)
            await to_app.send({"type": "lifespan.startup"})
            started = await from_app.receive()
            if started["type"] == "lifespan.startup.complete":
                try:
                    yield state
                finally:
                    await to_app.send({"type": "lifespan.shutdown"})
                    ended = await from_app.receive()
                    assert ended["type"] == "lifespan.shutdown.complete" or raised, ended
    if raised:
        raise raised[0]
    assert started["type"] == "lifespan.startup.complete", started


def with_request_state(app: ASGIApp, state: Mapping[str, Any]) -> ASGIApp:
    """``app`` with the lifespan state copied into each request, as servers do (and
    ``httpx.ASGITransport`` does not)."""

    async def app_with_state(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "state": dict(state)}, receive, send)

    return app_with_state


@asynccontextmanager
async def client_of(app: ASGIApp, state: Mapping[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=with_request_state(app, state))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


# --------------------------------------------------------------------------- the apps
# The same two endpoints in each framework: one awaits the acknowledgement and answers
# with the offset, one answers 202 once send() has enqueued the record.

FAILURES: list[BaseException] = []
"""The errors of the 202 endpoints' records (each test starts with it empty)."""


def note_failure(future: Any) -> None:
    # What a fire-and-forget endpoint should do with the futures it does not await: read
    # each outcome (asyncio reports a failure nobody read as an error when it is collected).
    error = future.exception()
    if error is not None:
        FAILURES.append(error)


@pytest.fixture(autouse=True)
def _no_failures_yet() -> None:
    FAILURES.clear()


def fastapi_app(**lifespan_args: Any) -> FastAPI:
    app = FastAPI(lifespan=producer_lifespan(**lifespan_args))

    @app.post("/acked/{n}")
    async def acked(n: int, producer: ProducerDep) -> dict[str, int]:
        metadata = await producer.send_and_wait(TOPIC, b"acked-%d" % n)
        return {"partition": metadata.partition, "offset": metadata.offset, "id": id(producer)}

    @app.post("/accepted/{n}", status_code=202)
    async def accepted(n: int, producer: ProducerDep) -> None:
        future = await producer.send(TOPIC, b"accepted-%d" % n)
        future.add_done_callback(note_failure)

    return app


def aiohttp_app(**context_args: Any) -> web.Application:
    async def acked(request: web.Request) -> web.Response:
        producer = request.app[PRODUCER_KEY]
        metadata = await producer.send_and_wait(TOPIC, b"acked-%d" % int(request.match_info["n"]))
        answer = {"partition": metadata.partition, "offset": metadata.offset, "id": id(producer)}
        return web.json_response(answer)

    async def accepted(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        future = await request.app[PRODUCER_KEY].send(TOPIC, b"accepted-%d" % n)
        future.add_done_callback(note_failure)
        return web.Response(status=202)

    app = web.Application()
    app.cleanup_ctx.append(producer_context(**context_args))
    app.router.add_post("/acked/{n}", acked)
    app.router.add_post("/accepted/{n}", accepted)
    return app


@asynccontextmanager
async def serve_fastapi(**lifespan_args: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The FastAPI app, its lifespan run; leaving the block is the graceful shutdown."""
    app = fastapi_app(**lifespan_args)
    async with running_lifespan(app) as state, client_of(app, state) as client:
        yield client


@asynccontextmanager
async def serve_aiohttp(**context_args: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The aiohttp app on a loopback port; leaving the block is ``runner.cleanup()``."""
    runner = web.AppRunner(aiohttp_app(**context_args), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            yield client
    finally:
        await runner.cleanup()


# FastAPI runs on every backend; aiohttp is an asyncio library (plain asyncio and uvloop).
FRAMEWORKS = [
    *(pytest.param(serve_fastapi, b.values[0], id=f"fastapi-{b.id}") for b in BACKENDS),
    *(pytest.param(serve_aiohttp, b.values[0], id=f"aiohttp-{b.id}") for b in ASYNCIO_BACKENDS),
]
pytestmark = pytest.mark.anyio


def stored_values(cluster: FakeCluster) -> dict[bytes, tuple[int, int]]:
    """Each stored value's (partition, offset); fails on a value stored twice."""
    stored: dict[bytes, tuple[int, int]] = {}
    for partition in range(PARTITIONS):
        for record in cluster.records(TOPIC, partition):
            assert record.value is not None
            assert record.value not in stored, f"{record.value!r} stored twice"
            stored[record.value] = (partition, record.offset)
    return stored


def lost_counts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The integrations' error messages about records a shutdown could not deliver."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("asyncproducer.integrations") and r.levelno >= logging.WARNING
    ]


# --------------------------------------------------------------------------- both frameworks


@pytest.mark.parametrize(("serve", "anyio_backend"), FRAMEWORKS)
async def test_one_producer_serves_the_app_and_a_graceful_shutdown_delivers_everything(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """The 202 records wait out a long linger: the shutdown's flush is what sends them."""
    with anyio.fail_after(20):
        async with FakeCluster() as cluster:
            cluster.create_topic(TOPIC, PARTITIONS)
            async with serve(bootstrap_servers=cluster.bootstrap_servers) as client:
                answers = [(await client.post(f"/acked/{n}")).json() for n in range(20)]
            async with serve(
                bootstrap_servers=cluster.bootstrap_servers, linger_ms=60_000
            ) as client:
                for n in range(50):
                    assert (await client.post(f"/accepted/{n}")).status_code == 202
                assert len(stored_values(cluster)) == 20  # the 202 records still linger
            stored = stored_values(cluster)
    assert len({answer.pop("id") for answer in answers}) == 1  # one producer for every request
    assert [stored[b"acked-%d" % n] for n in range(20)] == [
        (a["partition"], a["offset"]) for a in answers
    ]
    assert set(stored) == {b"acked-%d" % n for n in range(20)} | {
        b"accepted-%d" % n for n in range(50)
    }
    assert lost_counts(caplog) == []
    assert FAILURES == []


@pytest.mark.parametrize(("serve", "anyio_backend"), FRAMEWORKS)
@pytest.mark.parametrize("fault", ["stalled", "stopped"])
async def test_shutdown_is_bounded_when_the_broker_stalls_or_is_gone_and_logs_the_loss(
    serve: Serve, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.fail_after(20):
        async with FakeCluster() as cluster:
            cluster.create_topic(TOPIC, PARTITIONS)
            async with serve(
                bootstrap_servers=cluster.bootstrap_servers, shutdown_timeout=0.3
            ) as client:
                assert (await client.post("/acked/0")).status_code == 200  # metadata known
                if fault == "stalled":
                    cluster.delay_responses(ApiKey.PRODUCE, 3600)
                else:
                    for broker in cluster.broker_ids:
                        await cluster.stop_broker(broker)
                for n in range(30):
                    assert (await client.post(f"/accepted/{n}")).status_code == 202
                shutdown_began = anyio.current_time()
            shutdown_took = anyio.current_time() - shutdown_began
            if fault == "stopped":  # (a stalled broker stores them, it only never answers)
                assert set(stored_values(cluster)) == {b"acked-0"}
    assert 0.25 <= shutdown_took <= 0.3 + SLACK  # waited for the broker, then gave up
    assert [type(e) for e in FAILURES] == [ProducerClosedError] * 30
    [message] = lost_counts(caplog)
    assert message.startswith("30 record(s) were not delivered")
    assert "shutdown_timeout=0.3 s" in message


@pytest.mark.parametrize(("serve", "anyio_backend"), FRAMEWORKS)
async def test_bad_config_fails_the_startup_with_the_producers_config_error(
    serve: Serve,
) -> None:
    with anyio.fail_after(10), pytest.raises(ConfigError, match="linger_ms"):
        async with serve(bootstrap_servers="127.0.0.1:9", linger_ms=-1):
            raise AssertionError("the app started with linger_ms=-1")


@pytest.mark.parametrize("integration", [producer_lifespan, producer_context])
@pytest.mark.parametrize("timeout", [-1, math.inf, math.nan, "10", True])
def test_a_shutdown_timeout_that_could_hang_or_is_not_seconds_is_refused_at_once(
    integration: Callable[..., object], timeout: object
) -> None:
    with pytest.raises(ValueError, match="shutdown_timeout"):
        integration(shutdown_timeout=timeout, bootstrap_servers="127.0.0.1:9")


# --------------------------------------------------------------------------- FastAPI


async def test_the_apps_own_lifespan_runs_inside_and_the_states_merge() -> None:
    """Started after the producer and ended before it: its shutdown can still send."""
    events: list[str] = []
    running: dict[str, Producer] = {}

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        events.append(f"app started, {type(app).__name__}")
        yield {"db": "a connection"}
        producer = running["producer"]
        events.append(f"app stopping, producer {producer.state.value}")
        await producer.send(TOPIC, b"goodbye-%d" % len(events))  # the producer's close sends it

    with anyio.fail_after(15):
        async with FakeCluster() as cluster:
            lifespan = producer_lifespan(
                lifespan=app_lifespan, bootstrap_servers=cluster.bootstrap_servers
            )
            app = FastAPI(lifespan=lifespan)

            @app.get("/state")
            async def read_state(request: Request, producer: ProducerDep) -> dict[str, str]:
                return {"db": request.state.db, "same": str(producer is running["producer"])}

            for run in range(2):  # each run of the app has a producer of its own
                async with running_lifespan(app) as state, client_of(app, state) as client:
                    assert sorted(state) == ["db", "producer"]
                    assert state["producer"] not in running.values()
                    running["producer"] = state["producer"]
                    assert (await client.get("/state")).json() == {
                        "db": "a connection",
                        "same": "True",
                    }
                assert running["producer"].state is State.CLOSED
                assert len(stored_values(cluster)) == run + 1  # its goodbye is in
    assert events == ["app started, FastAPI", "app stopping, producer running"] * 2


async def test_the_apps_lifespan_state_may_not_take_the_producers_key() -> None:
    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[dict[str, int]]:
        yield {"producer": 1}

    app = FastAPI(lifespan=producer_lifespan(lifespan=app_lifespan, bootstrap_servers="h:9"))
    with anyio.fail_after(10), pytest.raises(RuntimeError, match="key 'producer'"):
        async with running_lifespan(app):
            raise AssertionError("two producers in one state")


async def test_a_stateless_app_lifespan_composes_too() -> None:
    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(lifespan=producer_lifespan(lifespan=app_lifespan, bootstrap_servers="h:9"))
    with anyio.fail_after(10):
        async with running_lifespan(app) as state:
            assert isinstance(state.pop("producer"), Producer)
            assert state == {}


async def test_get_producer_without_the_lifespan_says_what_to_do() -> None:
    app = FastAPI()  # no producer_lifespan

    @app.post("/orders")
    async def create_order(producer: ProducerDep) -> None:
        raise AssertionError("reached without a producer")

    with anyio.fail_after(10), pytest.raises(RuntimeError, match="lifespan=producer_lifespan"):
        async with client_of(app, {}) as client:
            await client.post("/orders")


async def test_a_starlette_app_gets_the_producer_with_get_producer() -> None:
    async def create_order(request: Request) -> JSONResponse:
        producer = await get_producer(request)
        metadata = await producer.send_and_wait(TOPIC, await request.body())
        return JSONResponse({"partition": metadata.partition, "offset": metadata.offset})

    with anyio.fail_after(15):
        async with FakeCluster() as cluster:
            app = Starlette(
                routes=[Route("/orders", create_order, methods=["POST"])],
                lifespan=producer_lifespan(bootstrap_servers=cluster.bootstrap_servers),
            )
            async with running_lifespan(app) as state, client_of(app, state) as client:
                answers = {
                    n: (await client.post("/orders", content=b"o-%d" % n)).json() for n in range(3)
                }
            stored = stored_values(cluster)
    assert set(stored) == {b"o-0", b"o-1", b"o-2"}
    for n, answer in answers.items():
        assert stored[b"o-%d" % n] == (answer["partition"], answer["offset"])


async def test_get_producer_on_a_bare_starlette_request_says_what_to_do() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    with pytest.raises(RuntimeError, match="no producer in the request state"):
        await get_producer(request)
