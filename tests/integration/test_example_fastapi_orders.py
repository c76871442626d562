"""examples/fastapi_orders runs as its README says: ``python -m examples.fastapi_orders``.

The example runs as a subprocess from the repository root, as a user would run it; httpx
posts orders and status changes, a signal stops it, and confluent-kafka reads back what it
wrote. Against the session's broker (``--bootstrap-servers``) the records are read after
the stop, the status changes (202: nobody awaited them) included. With
its embedded broker (no ``--bootstrap-servers``) the records are read while it runs (the
broker keeps them in memory and stops with the example), and the stop must leave no
broker behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from asyncproducer.testing.tansu import answers_api_versions
from tests.integration.independent import consume, create_topic

REPO = Path(__file__).resolve().parents[2]
STOP_BOUND = 15.0
"""Seconds from the signal until the example has exited (its shutdown_timeout is 10 s)."""
ORDERS = 5


@contextlib.contextmanager
def running_example(*args: str) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """The example on a free port: its process, its URL and its output file."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "output.txt"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "examples.fastapi_orders", "--port", str(port), *args],
                cwd=REPO,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_healthy(process, url, output)
            yield process, url, output
        finally:
            if process.poll() is None:  # the test failed before stopping it
                process.kill()
                process.wait()


def wait_until_healthy(process: subprocess.Popen[bytes], url: str, output: Path) -> None:
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=url, timeout=1) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(
                    f"the example exited with {process.returncode}: {output.read_text()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get("/health").status_code == 200:
                    return
            time.sleep(0.05)
    raise AssertionError(f"the example did not answer within 30 s: {output.read_text()}")


def stop(process: subprocess.Popen[bytes], signum: int, output: Path) -> str:
    """Send ``signum``; the example must exit cleanly within STOP_BOUND. Its output."""
    process.send_signal(signum)
    try:
        process.wait(STOP_BOUND)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {STOP_BOUND} s after {signum!r}") from None
    text = output.read_text()
    assert process.returncode == 0, text
    assert "Application shutdown complete" in text, text
    assert "orders service stopped" in text, text
    assert "Traceback" not in text, text
    assert "ERROR" not in text, text
    return text


def order(n: int) -> dict[str, object]:
    return {"id": n, "customer": f"customer-{n % 2}", "items": ["book"], "total": 9.5 + n}


def post_orders(url: str) -> list[dict[str, int]]:
    """ORDERS orders (each answered 201 with where it was written) and a status change for
    each (202)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        receipts = []
        for n in range(ORDERS):
            response = client.post("/orders", json=order(n))
            assert response.status_code == 201, response.text
            receipts.append(response.json())
            response = client.post(f"/orders/{n}/status", json={"status": "paid"})
            assert response.status_code == 202, response.text
        bad = client.post("/orders", json={"id": 9, "customer": "", "items": [], "total": -1})
        assert bad.status_code == 422  # FastAPI's validation, before anything is produced
    return receipts


def check_orders(
    bootstrap_servers: str, topic: str, partitions: list[int], receipts: list[dict[str, int]]
) -> None:
    stored = {
        (r.partition, r.offset): r for r in consume(bootstrap_servers, topic, partitions, ORDERS)
    }
    for n, receipt in enumerate(receipts):
        assert receipt["id"] == n
        record = stored[(receipt["partition"], receipt["offset"])]
        assert record.key == f"customer-{n % 2}".encode()
        assert record.value is not None
        assert json.loads(record.value) == order(n)


def test_the_example_against_a_broker_delivers_every_order_and_status_change(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    prefix = f"{topic_name}-"
    for topic in (f"{prefix}orders", f"{prefix}order-status"):
        create_topic(kafka_bootstrap_servers, topic, 2)
    with running_example(
        "--bootstrap-servers", kafka_bootstrap_servers, "--topic-prefix", prefix
    ) as (process, url, output):
        receipts = post_orders(url)
        stop(process, signal.SIGTERM, output)
    check_orders(kafka_bootstrap_servers, f"{prefix}orders", [0, 1], receipts)
    changes = consume(kafka_bootstrap_servers, f"{prefix}order-status", [0, 1], ORDERS)
    assert sorted(r.key or b"" for r in changes) == [b"%d" % n for n in range(ORDERS)]
    assert {r.value for r in changes} == {b'{"status":"paid"}'}


def test_the_example_with_its_embedded_broker_stops_it_on_ctrl_c() -> None:
    with running_example() as (process, url, output):
        found = re.search(r"embedded Tansu broker at (127\.0\.0\.1):(\d+)", output.read_text())
        assert found, output.read_text()
        host, port = found.group(1), int(found.group(2))
        receipts = post_orders(url)
        partitions = sorted({receipt["partition"] for receipt in receipts})
        check_orders(f"{host}:{port}", "orders", partitions, receipts)
        stop(process, signal.SIGINT, output)
    assert not answers_api_versions(host, port)  # the embedded broker stopped too
