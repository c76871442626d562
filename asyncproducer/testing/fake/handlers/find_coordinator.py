"""FindCoordinator: broker 0 coordinates every group and transactional id.

Transactions arrive with a later issue; until then a single, fixed coordinator is enough
for clients that look one up (librdkafka does for idempotence bookkeeping).
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.testing.fake.handlers import Request, build, response_module

COORDINATOR = 0
_COORDINATOR_NOT_AVAILABLE = 15


def handle(request: Request) -> Any:
    module = response_module(request.api_key, request.version)
    cluster = request.cluster
    code = request.forced_error
    if not code and COORDINATOR not in cluster.live:
        code = _COORDINATOR_NOT_AVAILABLE
    host, port = cluster.address_of(COORDINATOR) if not code else ("", -1)
    where: dict[str, Any] = {
        "node_id": COORDINATOR if not code else -1,
        "host": host,
        "port": port,
        "error_code": ErrorCode(code),
        "error_message": None,
    }
    if request.version < 4:
        return build(module.FindCoordinatorResponse, throttle_time=datetime.timedelta(0), **where)
    # v4+ (KIP-699) looks up several keys in one request.
    coordinators = tuple(
        build(module.Coordinator, key=key, **where) for key in request.body.coordinator_keys
    )
    return build(
        module.FindCoordinatorResponse,
        throttle_time=datetime.timedelta(0),
        coordinators=coordinators,
    )
