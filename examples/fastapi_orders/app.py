"""The orders service: FastAPI endpoints that produce to Kafka through one shared producer.

- ``POST /orders`` takes an order and answers ``201`` only once Kafka has it (``acks="all"``:
  every in-sync replica), with the partition and offset it was written at. An order must
  not be lost, so the client waits for the acknowledgement.
- ``POST /orders/{order_id}/status`` takes a status change and answers ``202`` as soon as
  it is enqueued, without waiting: status changes are many and their senders do not need
  the offset. What is still buffered when the service stops is sent by the shutdown.
- ``GET /health`` answers once the service is up.

The producer is started and closed by ``producer_lifespan`` and reaches the endpoints
through ``ProducerDep`` (asyncproducer.integrations.fastapi).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

from asyncproducer.integrations.fastapi import ProducerDep, producer_lifespan

logger = logging.getLogger("orders")


class Order(BaseModel):
    id: int
    customer: str = Field(min_length=1)
    items: list[str] = Field(min_length=1)
    total: float = Field(ge=0)


class Receipt(BaseModel):
    """Where the order was written: enough to find it in Kafka."""

    id: int
    partition: int
    offset: int


class StatusChange(BaseModel):
    status: Literal["paid", "shipped", "delivered", "cancelled"]


def create_app(
    bootstrap_servers: str, *, topic_prefix: str = "", shutdown_timeout: float = 10.0
) -> FastAPI:
    """The service, producing to ``{topic_prefix}orders`` and ``{topic_prefix}order-status``."""
    orders_topic = f"{topic_prefix}orders"
    status_topic = f"{topic_prefix}order-status"
    lifespan = producer_lifespan(
        shutdown_timeout=shutdown_timeout,  # the most a stop waits for Kafka
        bootstrap_servers=bootstrap_servers,
        acks="all",
        linger_ms=5,
        key_serializer="str",
    )
    app = FastAPI(title="orders", lifespan=lifespan)

    @app.post("/orders", status_code=201)
    async def create_order(order: Order, producer: ProducerDep) -> Receipt:
        # Keyed by customer: one customer's orders stay in one partition, in order.
        metadata = await producer.send_and_wait(
            orders_topic, order.model_dump_json().encode(), key=order.customer
        )
        return Receipt(id=order.id, partition=metadata.partition, offset=metadata.offset)

    @app.post("/orders/{order_id}/status", status_code=202)
    async def change_status(
        order_id: int, change: StatusChange, producer: ProducerDep
    ) -> dict[str, str]:
        # Keyed by order: one order's changes stay in order.
        future = await producer.send(
            status_topic, change.model_dump_json().encode(), key=str(order_id)
        )
        # Nobody awaits this record: report its failure here, or no one would.
        future.add_done_callback(partial(_report_failure, order_id))
        return {"status": "accepted"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _report_failure(order_id: int, future: Any) -> None:
    error = future.exception()
    if error is not None:
        logger.error("the status change of order %d was not delivered: %s", order_id, error)
