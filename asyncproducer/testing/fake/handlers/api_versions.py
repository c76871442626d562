"""ApiVersions: advertise exactly the APIs and versions the fake implements."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Mapping
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.testing.fake.handlers import Request, build, response_module

API_VERSIONS = 18
_UNSUPPORTED_VERSION = 35

# What the handlers in this package can decode and answer (kio models each version), on a
# cluster whose transaction.version is 2. Produce v13 addresses topics by id. Metadata
# stops at v12: v13 adds a top-level error code for KIP-1102's rebootstrap, which nothing
# here needs. AddPartitionsToTxn v4+ is the brokers' batched form (a leader verifying a
# transactional Produce); the fake answers it too, as a Kafka without an authorizer does.
SUPPORTED_VERSIONS: Mapping[int, tuple[int, int]] = {
    0: (3, 12),  # Produce (v12: KIP-890 part 2, the partition joins the transaction)
    1: (4, 12),  # Fetch (librdkafka needs v4+ advertised to produce batches v2)
    3: (4, 12),  # Metadata
    10: (0, 5),  # FindCoordinator (v4+: several keys at once, KIP-699)
    18: (0, 4),  # ApiVersions
    17: (1, 1),  # SaslHandshake (v0, raw SASL tokens, is gone from Kafka 4.0)
    19: (2, 7),  # CreateTopics
    22: (0, 5),  # InitProducerId
    24: (0, 5),  # AddPartitionsToTxn (v5: TRANSACTION_ABORTABLE, KIP-890)
    25: (0, 4),  # AddOffsetsToTxn
    26: (0, 5),  # EndTxn (v5: the bumped producer id and epoch come back, KIP-890)
    28: (0, 5),  # TxnOffsetCommit (v5: the offsets partition joins the transaction)
    36: (0, 2),  # SaslAuthenticate (v1+: session lifetime, KIP-368)
}
SASL_APIS = frozenset({17, 36})
"""Advertised only by a SASL listener's brokers."""

# Below transaction.version 2 the fake advertises no version whose meaning is KIP-890
# part 2's. (Apache Kafka advertises them anyway and its clients cap themselves by the
# finalized feature: Java's ProduceRequest/EndTxnRequest builders stop at v11/v4; capping
# here makes a client that ignores the feature fail loudly instead of half-working.)
_BEFORE_TRANSACTION_V2: Mapping[int, tuple[int, int]] = {
    0: (3, 11),
    24: (0, 3),
    26: (0, 4),
    28: (0, 4),
}
TRANSACTION_VERSION_FEATURE = "transaction.version"
_MAX_TRANSACTION_VERSION = 2
_FINALIZED_FEATURES_EPOCH = 1  # Kafka: the metadata offset of the last feature change


@functools.cache
def versions_for(transaction_version: int) -> Mapping[int, tuple[int, int]]:
    """The ranges a cluster at ``transaction_version`` advertises (and accepts)."""
    if transaction_version >= 2:
        return SUPPORTED_VERSIONS
    return {**SUPPORTED_VERSIONS, **_BEFORE_TRANSACTION_V2}


def handle(request: Request) -> Any:
    cluster = request.cluster
    return response(
        request.version,
        request.forced_error,
        sasl=cluster.sasl is not None,
        transaction_version=cluster.transaction_version,
    )


def response(
    version: int, error_code: int = 0, *, sasl: bool = False, transaction_version: int = 2
) -> Any:
    """The ApiVersions response body of ``version`` (which must be 0..4).

    v3+ carries features (KIP-584): the transaction.version range the brokers support
    (0..2, as Kafka 4.x) and its finalized level, which clients read to decide whether
    to use transaction version 2. A level of 0 is not listed, as Kafka lists only
    features finalized above 0."""
    module = response_module(API_VERSIONS, version)
    ranges = () if error_code else _ranges(module, sasl, versions_for(transaction_version))
    supported: tuple[Any, ...] = ()
    finalized: tuple[Any, ...] = ()
    if hasattr(module, "SupportedFeatureKey") and not error_code:
        supported = (
            module.SupportedFeatureKey(
                name=TRANSACTION_VERSION_FEATURE,
                min_version=0,
                max_version=_MAX_TRANSACTION_VERSION,
            ),
        )
        if transaction_version > 0:
            finalized = (
                module.FinalizedFeatureKey(
                    name=TRANSACTION_VERSION_FEATURE,
                    max_version_level=transaction_version,
                    min_version_level=transaction_version,
                ),
            )
    return build(
        module.ApiVersionsResponse,
        error_code=ErrorCode(error_code),
        api_keys=ranges,
        throttle_time=datetime.timedelta(0),
        supported_features=supported,
        finalized_features_epoch=_FINALIZED_FEATURES_EPOCH if finalized else -1,
        finalized_features=finalized,
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


def _ranges(module: Any, sasl: bool, supported: Mapping[int, tuple[int, int]]) -> tuple[Any, ...]:
    return tuple(
        module.ApiVersion(api_key=key, min_version=low, max_version=high)
        for key, (low, high) in sorted(supported.items())
        if sasl or key not in SASL_APIS
    )
