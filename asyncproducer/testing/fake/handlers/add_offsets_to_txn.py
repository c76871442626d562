"""AddOffsetsToTxn: a producer adds a consumer group's offsets to its transaction (before
TxnOffsetCommit; transaction version 2 clients skip it, TxnOffsetCommit v5 adding the
group implicitly). Kafka adds the group's ``__consumer_offsets`` partition to the
transaction, so the coordinator's marker later reaches the group coordinator.
"""

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

_FIRST_WITH_PRODUCER_FENCED = 2  # KIP-588


def handle(request: Request) -> Any:
    body = request.body
    transactional_id = str(body.transactional_id)
    code = request.forced_error or not_coordinator(request, transactional_id, TRANSACTION)
    if not code:
        coordinator = request.cluster.transactions
        code = coordinator.add_partitions(
            transactional_id,
            int(body.producer_id),
            int(body.producer_epoch),
            [coordinator.offsets_partition(str(body.group_id))],
        )
    return build(
        response_class(request, "AddOffsetsToTxnResponse"),
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode(
            fenced_for_version(code, request.version, _FIRST_WITH_PRODUCER_FENCED)
        ),
    )
