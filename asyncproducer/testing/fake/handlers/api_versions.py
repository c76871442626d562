"""ApiVersions: advertise exactly the APIs and versions the fake implements."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.testing.fake.handlers import Request, build, response_module

API_VERSIONS = 18
_UNSUPPORTED_VERSION = 35

# What the handlers in this package can decode and answer (kio models each version).
# Produce stops at v11: v12 changes transaction semantics (KIP-890) and v13 addresses
# topics by id. Metadata stops at v12: v13 adds a top-level error code for KIP-1102's
# rebootstrap, which nothing here needs.
SUPPORTED_VERSIONS: Mapping[int, tuple[int, int]] = {
    0: (3, 11),  # Produce
    1: (4, 12),  # Fetch (librdkafka needs v4+ advertised to produce batches v2)
    3: (4, 12),  # Metadata
    10: (0, 5),  # FindCoordinator
    18: (0, 4),  # ApiVersions
    17: (1, 1),  # SaslHandshake (v0, raw SASL tokens, is gone from Kafka 4.0)
    19: (2, 7),  # CreateTopics
    22: (0, 5),  # InitProducerId
    36: (0, 2),  # SaslAuthenticate (v1+: session lifetime, KIP-368)
}
SASL_APIS = frozenset({17, 36})
"""Advertised only by a SASL listener's brokers."""


def handle(request: Request) -> Any:
    return response(request.version, request.forced_error, sasl=request.cluster.sasl is not None)


def response(version: int, error_code: int = 0, *, sasl: bool = False) -> Any:
    """The ApiVersions response body of ``version`` (which must be 0..4)."""
    module = response_module(API_VERSIONS, version)
    ranges = () if error_code else _ranges(module, sasl)
    return build(
        module.ApiVersionsResponse,
        error_code=ErrorCode(error_code),
        api_keys=ranges,
        throttle_time=datetime.timedelta(0),
        supported_features=(),
        finalized_features=(),
    )


def unsupported_version_response() -> Any:
    """KIP-511: a request above our highest ApiVersions version is answered in the v0
    format with UNSUPPORTED_VERSION and our ApiVersions range, so the client can retry with
    a version we speak."""
    module = response_module(API_VERSIONS, 0)
    low, high = SUPPORTED_VERSIONS[API_VERSIONS]
    return module.ApiVersionsResponse(
        error_code=ErrorCode(_UNSUPPORTED_VERSION),
        api_keys=(module.ApiVersion(api_key=API_VERSIONS, min_version=low, max_version=high),),
    )


def _ranges(module: Any, sasl: bool) -> tuple[Any, ...]:
    return tuple(
        module.ApiVersion(api_key=key, min_version=low, max_version=high)
        for key, (low, high) in sorted(SUPPORTED_VERSIONS.items())
        if sasl or key not in SASL_APIS
    )
