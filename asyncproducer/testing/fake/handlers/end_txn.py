"""EndTxn: commit or abort. Markers are written and the transaction completed before the
answer (see :mod:`.._txn_coordinator`). v5+ is transaction version 2 (KIP-890 part 2):
the coordinator bumps the epoch at every end and returns the producer id and epoch the
client must use next; older versions keep the epoch and return -1 for both.
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
_FIRST_TRANSACTION_V2 = 5  # Kafka: EndTxn v5+ is a transaction version 2 client


def handle(request: Request) -> Any:
    body = request.body
    transactional_id = str(body.transactional_id)
    code = request.forced_error or not_coordinator(request, transactional_id, TRANSACTION)
    producer_id, epoch = -1, -1
    if not code:
        code, producer_id, epoch = request.cluster.transactions.end_txn(
            transactional_id,
            int(body.producer_id),
            int(body.producer_epoch),
            bool(body.committed),
            tv2=request.version >= _FIRST_TRANSACTION_V2,
        )
    return build(
        response_class(request, "EndTxnResponse"),
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode(
            fenced_for_version(code, request.version, _FIRST_WITH_PRODUCER_FENCED)
        ),
        producer_id=producer_id,
        producer_epoch=epoch,
    )
