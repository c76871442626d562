"""A FastAPI service under uvicorn with ``loop="uvloop"`` produces through the SDK (issue 17).

What a user of ``uvicorn[standard]`` runs: uvloop is then uvicorn's default loop, and its
transports are not asyncio's classes (an assert on that type killed the sender on the
first send). Real parts only: uvicorn serves the app on a loopback port from a thread of
its own (its own event loop, as in production), httpx sends the requests, the records go
to the session's broker, and confluent-kafka reads them back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request

from asyncproducer import Producer
from tests.integration.independent import consume, create_topic

REQUESTS = 300


def make_app(bootstrap_servers: str, topic: str, loops: list[str]) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        import asyncio

        loops.append(type(asyncio.get_running_loop()).__module__)
        async with Producer(bootstrap_servers, acks="all", linger_ms=2) as producer:
            yield {"producer": producer}

    app = FastAPI(lifespan=lifespan)

    @app.post("/orders/{order_id}")
    async def order(order_id: int, request: Request) -> dict[str, int]:
        producer: Producer = request.state.producer
        metadata = await producer.send_and_wait(
            topic, f"order-{order_id}".encode(), key=str(order_id).encode()
        )
        return {"partition": metadata.partition, "offset": metadata.offset}

    return app


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn with loop="uvloop" on a free loopback port, until the block ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="uvloop", lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True  # graceful: the lifespan closes the producer
        thread.join(30)
        assert not thread.is_alive(), "uvicorn did not shut down within 30 s"


def test_fastapi_under_uvicorn_on_uvloop_produces_and_reads_back(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    create_topic(kafka_bootstrap_servers, topic_name, 3)
    loops: list[str] = []
    answers: dict[int, dict[str, int]] = {}
    with (
        serving(make_app(kafka_bootstrap_servers, topic_name, loops)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        for order_id in range(REQUESTS):
            response = client.post(f"/orders/{order_id}")
            assert response.status_code == 200, response.text
            answers[order_id] = response.json()
    assert loops == ["uvloop"]  # the lifespan (and so the producer) ran on uvloop
    records = consume(kafka_bootstrap_servers, topic_name, [0, 1, 2], REQUESTS)
    stored = {(r.partition, r.offset): (r.key, r.value) for r in records}
    assert len(stored) == REQUESTS
    for order_id, where in answers.items():
        key, value = stored[(where["partition"], where["offset"])]
        assert (key, value) == (str(order_id).encode(), f"order-{order_id}".encode())
