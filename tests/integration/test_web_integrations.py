"""The web framework integrations under real servers, against real brokers.

FastAPI under uvicorn (``loop="uvloop"``, what ``uvicorn[standard]`` runs, and
``loop="asyncio"``) and aiohttp under its ``AppRunner``/``TCPSite``, each on a loopback
port from a thread of its own (its own event loop, as in production). httpx sends 2,000
requests, at most 50 at a time, each producing one record, in one of two modes:

- ``acked``: the handler awaits the acknowledgement and answers with partition and offset;
- ``accepted``: the handler answers 202 once ``send()`` has enqueued the record, with a
  long ``linger_ms``, so the shutdown's flush is what delivers the last batches.

Then a graceful shutdown, which must end within SHUTDOWN_BOUND; confluent-kafka reads the
topic back: every record once, with the offsets the ``acked`` answers gave (and, in
``accepted`` mode, checks that some were still lingering when the shutdown began).

Issue 17's regression check is here too: with ``loop="uvloop"`` the lifespan, and so the
producer, really runs on uvloop (whose transports are not asyncio's classes: an assert on
that type once killed the sender on the first send).

CI time: a run took 4-12 s on 2 shared cores, mostly httpx's own CPU time. So each server runs
once per broker, in one mode on Tansu and the other on Apache Kafka (MODE_ON): every
server in both modes, and both modes on every broker, in 6 runs instead of 12.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from aiohttp import web
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as CkTopicPartition
from fastapi import FastAPI

from asyncproducer.integrations.aiohttp import PRODUCER_KEY, producer_context
from asyncproducer.integrations.fastapi import ProducerDep, producer_lifespan
from tests.integration.brokers import EXTERNAL, KAFKA, TANSU
from tests.integration.independent import consume, create_topic

REQUESTS = 2_000
CONCURRENCY = 50
PARTITIONS = [0, 1, 2]
SHUTDOWN_TIMEOUT = 5.0
SHUTDOWN_BOUND = SHUTDOWN_TIMEOUT + 3.0
"""Seconds from the signal to stop until the server's thread has ended (the producer's
close is bounded by SHUTDOWN_TIMEOUT; the rest is the server's own shutdown)."""

ACKED, ACCEPTED = "acked", "accepted"
# Per mode: the producer's settings. A 60 s linger holds the accepted records' last
# batches until the shutdown flushes them.
PRODUCER_SETTINGS: dict[str, dict[str, Any]] = {
    ACKED: {"acks": "all", "linger_ms": 2},
    ACCEPTED: {"acks": "all", "linger_ms": 60_000},
}
STATUS = {ACKED: 200, ACCEPTED: 202}

SERVERS = [
    pytest.param("uvloop", id="uvicorn-uvloop"),
    pytest.param("asyncio", id="uvicorn-asyncio"),
    pytest.param("aiohttp", id="aiohttp"),
]
MODE_ON: dict[str, dict[str, str]] = {
    TANSU: {"uvloop": ACKED, "asyncio": ACCEPTED, "aiohttp": ACKED},
    KAFKA: {"uvloop": ACCEPTED, "asyncio": ACKED, "aiohttp": ACCEPTED},
    EXTERNAL: {"uvloop": ACKED, "asyncio": ACCEPTED, "aiohttp": ACKED},
}
"""The mode of each server on each kind of broker (see the module docstring)."""


def value_of(mode: str, n: int) -> bytes:
    return f"{mode}-{n}".encode()


@dataclass
class Run:
    """What a served app saw: the event loop of each startup, the failures of records
    nobody awaited, and how long the shutdown took."""

    loops: list[str] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    shutdown_took: float = -1.0

    def note_failure(self, future: Any) -> None:
        # A 202 handler reads each outcome it does not await (asyncio reports a failure
        # nobody read as an error when the future is collected).
        error = future.exception()
        if error is not None:
            self.failures.append(error)


# --------------------------------------------------------------------------- FastAPI


def fastapi_app(bootstrap_servers: str, topic: str, mode: str, run: Run) -> FastAPI:
    @contextlib.asynccontextmanager
    async def record_the_loop(app: FastAPI) -> AsyncIterator[None]:
        run.loops.append(type(asyncio.get_running_loop()).__module__)
        yield

    lifespan = producer_lifespan(
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        lifespan=record_the_loop,
        bootstrap_servers=bootstrap_servers,
        **PRODUCER_SETTINGS[mode],
    )
    app = FastAPI(lifespan=lifespan)

    @app.post("/acked/{n}")
    async def acked(n: int, producer: ProducerDep) -> dict[str, int]:
        metadata = await producer.send_and_wait(topic, value_of(ACKED, n), key=b"%d" % n)
        return {"partition": metadata.partition, "offset": metadata.offset}

    @app.post("/accepted/{n}", status_code=202)
    async def accepted(n: int, producer: ProducerDep) -> None:
        future = await producer.send(topic, value_of(ACCEPTED, n), key=b"%d" % n)
        future.add_done_callback(run.note_failure)

    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def uvicorn_serving(app: FastAPI, loop: str, run: Run) -> Iterator[str]:
    """``app`` under uvicorn with ``loop`` on a loopback port, until the block ends."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop=loop, lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{loop}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start within 30 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        began = time.monotonic()
        server.should_exit = True  # graceful: requests end, then the lifespan's shutdown
        thread.join(SHUTDOWN_BOUND + 30)
        run.shutdown_took = time.monotonic() - began
        assert not thread.is_alive(), "uvicorn did not shut down"


# --------------------------------------------------------------------------- aiohttp


def aiohttp_app(bootstrap_servers: str, topic: str, mode: str, run: Run) -> web.Application:
    async def acked(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        producer = request.app[PRODUCER_KEY]
        metadata = await producer.send_and_wait(topic, value_of(ACKED, n), key=b"%d" % n)
        return web.json_response({"partition": metadata.partition, "offset": metadata.offset})

    async def accepted(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        producer = request.app[PRODUCER_KEY]
        future = await producer.send(topic, value_of(ACCEPTED, n), key=b"%d" % n)
        future.add_done_callback(run.note_failure)
        return web.Response(status=202)

    app = web.Application()
    app.cleanup_ctx.append(
        producer_context(
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            bootstrap_servers=bootstrap_servers,
            **PRODUCER_SETTINGS[mode],
        )
    )
    app.router.add_post("/acked/{n}", acked)
    app.router.add_post("/accepted/{n}", accepted)
    return app


@contextlib.contextmanager
def aiohttp_serving(app: web.Application, run: Run) -> Iterator[str]:
    """``app`` under aiohttp's AppRunner on a loopback port, until the block ends."""
    ready = threading.Event()
    served: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        served["stop"] = (asyncio.get_running_loop(), stop)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            served["address"] = runner.addresses[0][:2]
            ready.set()
            await stop.wait()
        finally:
            await runner.cleanup()  # graceful: requests end, then the cleanup contexts

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="aiohttp", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise AssertionError("aiohttp did not start within 30 s")
    host, port = served["address"]
    try:
        yield f"http://{host}:{port}"
    finally:
        began = time.monotonic()
        loop, stop = served["stop"]
        loop.call_soon_threadsafe(stop.set)
        thread.join(SHUTDOWN_BOUND + 30)
        run.shutdown_took = time.monotonic() - began
        assert not thread.is_alive(), "aiohttp did not shut down"


def serving(server: str, bootstrap_servers: str, topic: str, mode: str, run: Run) -> Any:
    if server == "aiohttp":
        return aiohttp_serving(aiohttp_app(bootstrap_servers, topic, mode, run), run)
    return uvicorn_serving(fastapi_app(bootstrap_servers, topic, mode, run), server, run)


# --------------------------------------------------------------------------- the client


async def post_all(url: str, mode: str) -> dict[int, Any]:
    """POST every request from CONCURRENCY clients (one connection each, so at most that
    many at a time); each one's JSON answer (None for a 202)."""
    answers: dict[int, Any] = {}
    numbers = iter(range(REQUESTS))
    tls = ssl.create_default_context()

    async def client() -> None:
        # A client of its own per connection: httpcore's pool scans all its connections
        # for each request, which made 50 connections in one client twice as slow. One
        # TLS context for all (the URL is http: unused): each client would otherwise load
        # the CA bundle, which cost as much CPU as all the requests.
        async with httpx.AsyncClient(base_url=url, timeout=30, verify=tls) as http:
            for n in numbers:  # shared: each number is taken by one client
                response = await http.post(f"/{mode}/{n}")
                assert response.status_code == STATUS[mode], response.text
                answers[n] = response.json() if mode == ACKED else None

    async with anyio.create_task_group() as tasks:
        for _ in range(CONCURRENCY):
            tasks.start_soon(client)
    return answers


def stored_count(bootstrap_servers: str, topic: str) -> int:
    """How many records the topic's partitions hold (their high watermarks), by
    confluent-kafka."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"count-{topic}"})
    try:
        return sum(
            consumer.get_watermark_offsets(CkTopicPartition(topic, p), timeout=10)[1]
            for p in PARTITIONS
        )
    finally:
        consumer.close()


@pytest.mark.parametrize("server", SERVERS)
def test_requests_produce_and_a_graceful_shutdown_delivers_every_record(
    kafka_bootstrap_servers: str,
    broker_kind: str,
    topic_name: str,
    server: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mode = MODE_ON[broker_kind][server]
    create_topic(kafka_bootstrap_servers, topic_name, len(PARTITIONS))
    run = Run()
    with serving(server, kafka_bootstrap_servers, topic_name, mode, run) as url:
        answers = anyio.run(post_all, url, mode)
        if mode == ACCEPTED:  # the last batches linger: the shutdown's flush sends them
            assert stored_count(kafka_bootstrap_servers, topic_name) < REQUESTS
    assert len(answers) == REQUESTS
    if server != "aiohttp":  # the lifespan (and so the producer) ran on the loop asked for
        assert [module.split(".")[0] for module in run.loops] == [server]
    assert run.shutdown_took < SHUTDOWN_BOUND, f"shutdown took {run.shutdown_took:.1f} s"
    assert run.failures == []
    assert not [r for r in caplog.records if r.name.startswith("asyncproducer.integrations")]

    records = consume(kafka_bootstrap_servers, topic_name, PARTITIONS, REQUESTS)
    stored = {r.value: r for r in records}
    assert len(stored) == len(records) == REQUESTS  # each value once
    assert set(stored) == {value_of(mode, n) for n in range(REQUESTS)}
    for n in range(REQUESTS):
        record = stored[value_of(mode, n)]
        assert record.key == b"%d" % n
        if mode == ACKED:
            assert answers[n] == {"partition": record.partition, "offset": record.offset}
