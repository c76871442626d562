"""FindCoordinator: the broker coordinating a consumer group (key type 0) or a
transactional id (key type 1), placed as Kafka places them (:mod:`.._coordinators`).

A coordinator that is down gives COORDINATOR_NOT_AVAILABLE: the fake does not move the
internal topics' partitions to a live broker (as it does not move data partitions when a
broker stops), so a client retries until the broker is back or a test moved it.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.testing.fake._coordinators import KEY_TYPES
from asyncproducer.testing.fake.handlers import Request, build, response_module

_COORDINATOR_NOT_AVAILABLE = 15
_INVALID_REQUEST = 42


def handle(request: Request) -> Any:
    module = response_module(request.api_key, request.version)
    body = request.body
    # v0 has no key type: it looks up groups.
    key_type = int(getattr(body, "key_type", 0))
    if request.version < 4:
        where = _locate(request, str(body.key), key_type)
        return build(module.FindCoordinatorResponse, throttle_time=datetime.timedelta(0), **where)
    # v4+ (KIP-699) looks up several keys of one type in one request.
    coordinators = tuple(
        build(module.Coordinator, key=key, **_locate(request, str(key), key_type))
        for key in body.coordinator_keys
    )
    return build(
        module.FindCoordinatorResponse,
        throttle_time=datetime.timedelta(0),
        coordinators=coordinators,
    )


def _locate(request: Request, key: str, key_type: int) -> dict[str, Any]:
    cluster = request.cluster
    code = request.forced_error
    message = None
    node = -1
    if not code and key_type not in KEY_TYPES:
        code, message = _INVALID_REQUEST, f"the fake has no coordinator of key type {key_type}"
    if not code:
        node = cluster.placement.coordinator_of(key, key_type)
        if node not in cluster.live:
            code = _COORDINATOR_NOT_AVAILABLE
            message = f"broker {node}, the {KEY_TYPES[key_type]} coordinator, is down"
    host, port = cluster.address_of(node) if not code else ("", -1)
    return {
        "node_id": node if not code else -1,
        "host": host,
        "port": port,
        "error_code": ErrorCode(code),
        "error_message": message,
    }
