"""InitProducerId: increasing producer ids with epoch 0; bumps the epoch of a known one."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.testing.fake.handlers import Request, build, response_class


def handle(request: Request) -> Any:
    cls = response_class(request, "InitProducerIdResponse")
    if request.forced_error:
        producer_id, epoch = -1, -1
    else:
        body = request.body
        producer_id, epoch = request.cluster.init_producer_id(
            body.transactional_id,
            # v3+ (KIP-360) may name the producer id and epoch to bump.
            int(getattr(body, "producer_id", -1)),
            int(getattr(body, "producer_epoch", -1)),
        )
    return build(
        cls,
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode(request.forced_error),
        producer_id=producer_id,
        producer_epoch=epoch,
    )
