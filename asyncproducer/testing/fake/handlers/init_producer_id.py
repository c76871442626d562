"""InitProducerId: idempotent producers get increasing ids with epoch 0 from any broker
(a known id named with its current epoch is bumped, KIP-360); a transactional id is the
coordinator's (:class:`.._txn_coordinator.TransactionCoordinator`): only its broker
answers, the timeout is checked against ``transaction.max.timeout.ms``, and a second
instance fences the first."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.testing.fake._coordinators import TRANSACTION
from asyncproducer.testing.fake.handlers import (
    Request,
    build,
    fenced_for_version,
    not_coordinator,
    response_class,
)

_INVALID_REQUEST = 42
_FIRST_WITH_PRODUCER_FENCED = 4  # KIP-588


def handle(request: Request) -> Any:
    cls = response_class(request, "InitProducerIdResponse")
    code, producer_id, epoch = _decide(request)
    return build(
        cls,
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode(
            fenced_for_version(code, request.version, _FIRST_WITH_PRODUCER_FENCED)
        ),
        producer_id=producer_id if not code else -1,
        producer_epoch=epoch if not code else -1,
    )


def _decide(request: Request) -> tuple[int, int, int]:
    if request.forced_error:
        return request.forced_error, -1, -1
    body = request.body
    # v3+ (KIP-360) may name the producer id and epoch to bump.
    producer_id = int(getattr(body, "producer_id", -1))
    producer_epoch = int(getattr(body, "producer_epoch", -1))
    transactional_id = body.transactional_id
    if transactional_id is None:
        pid, epoch = request.cluster.init_producer_id(producer_id, producer_epoch)
        return 0, pid, epoch
    transactional_id = str(transactional_id)
    if transactional_id:
        code = not_coordinator(request, transactional_id, TRANSACTION)
        if code:
            return code, -1, -1
    # Kafka: both of producer id and epoch, or neither (KafkaApis refuses half of them).
    if (producer_id < 0) != (producer_epoch < 0):
        return _INVALID_REQUEST, -1, -1
    expected = (producer_id, producer_epoch) if producer_id >= 0 else None
    timeout_ms = round(body.transaction_timeout.total_seconds() * 1000)
    return request.cluster.transactions.init_producer_id(transactional_id, timeout_ms, expected)
