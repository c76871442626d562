"""What the web framework integrations share: one producer for an application's lifetime.

The producer is built and started when the application starts (a bad setting raises the
producer's own ``ConfigError`` there, so the server refuses to start) and closed when it
stops: ``close(timeout=shutdown_timeout)`` sends what is buffered, ignoring ``linger_ms``,
and waits at most that long for the acknowledgements; then it fails what is left with
``ProducerClosedError``. So a shutdown never hangs on a broker that is gone, and what
could not be delivered is logged, with its count, rather than dropped in silence.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from asyncproducer.producer import Producer


def check_shutdown_timeout(shutdown_timeout: float) -> None:
    """Refuse a timeout that would let a shutdown hang, or that is not a number, when the
    integration is set up rather than when the application stops."""
    if (
        isinstance(shutdown_timeout, bool)
        or not isinstance(shutdown_timeout, int | float)
        or not math.isfinite(shutdown_timeout)
        or shutdown_timeout < 0
    ):
        raise ValueError(
            f"shutdown_timeout must be a finite number of seconds >= 0, got {shutdown_timeout!r}"
        )


@asynccontextmanager
async def application_producer(
    config: Mapping[str, Any], shutdown_timeout: float, logger: logging.Logger
) -> AsyncIterator[Producer]:
    """A started ``Producer(**config)`` for the block, closed within ``shutdown_timeout``."""
    producer = Producer(**config)
    await producer.start()
    try:
        yield producer
    finally:
        await close_within(producer, shutdown_timeout, logger)


async def close_within(producer: Producer, shutdown_timeout: float, logger: logging.Logger) -> None:
    """Close ``producer`` within ``shutdown_timeout`` seconds; log the records that failed
    meanwhile: the growth of ``record-error-total`` during the close (the records the
    timeout cut off, and those that failed for good while it ran: their futures hold
    each one's error, but after a ``202 Accepted`` nobody awaits them)."""
    failed_before = producer.metrics()["record-error-total"]
    try:
        await producer.close(timeout=shutdown_timeout)
    finally:  # also when the shutdown itself is cancelled: close() has failed them by then
        failed = producer.metrics()["record-error-total"] - failed_before
        if failed > 0:
            logger.error(
                "%d record(s) were not delivered: the producer for %s closed at shutdown "
                "(shutdown_timeout=%g s) before the brokers acknowledged them; they may be "
                "missing from Kafka",
                failed,
                ",".join(producer.config.bootstrap_servers),
                shutdown_timeout,
            )
