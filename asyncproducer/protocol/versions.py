"""API keys this client speaks, and ApiVersions negotiation (sans-I/O).

For every API the producer uses we pick the highest version both sides support, as Java's
``NodeApiVersions.latestUsableVersion`` does. An API the broker does not support (or whose
ranges do not overlap ours) is recorded as unusable; only *using* it raises, so a broker
without the transaction APIs still serves a plain producer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from asyncproducer._value import Value
from asyncproducer.errors import UnsupportedVersionError


class ApiKey(enum.IntEnum):
    PRODUCE = 0
    FETCH = 1
    METADATA = 3
    FIND_COORDINATOR = 10
    CREATE_TOPICS = 19
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    INIT_PRODUCER_ID = 22
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    TXN_OFFSET_COMMIT = 28
    SASL_AUTHENTICATE = 36


# (min, max) this client implements. Why these bounds:
# - Produce v3 is the first that carries record batch v2 (magic 2, headers, idempotence).
#   v12 only differs for transactions v2 (KIP-890 part 2: the partition joins the
#   transaction with its first batch), and is sent only then (TRANSACTION_V1_CAPS); v13
#   addresses topics by id (KIP-516).
# - Metadata v4 is the first with allow_auto_topic_creation (Kafka 0.11, like Produce v3).
# - ApiVersions: kio models v0-v4; v3+ sends the client software name and version.
# - InitProducerId v3+ can bump the epoch of an existing producer id (KIP-360).
# - SaslHandshake v1 / SaslAuthenticate (KIP-152): every SASL message in SaslAuthenticate
#   frames (v0's raw tokens are gone from Kafka 4.0); v1+ reports session_lifetime_ms
#   (KIP-368 re-authentication).
# - Fetch is not the producer's: the demo and the test harness read back with it. v4 is
#   the first returning record batches v2; v13+ addresses topics by id.
# - Transactions: FindCoordinator v1+ has key_type (v4+ asks for a list of keys);
#   AddPartitionsToTxn v0-v3 is the client's form (v4+ is broker to broker); TxnOffsetCommit
#   v3+ carries the consumer group's generation and member (KIP-447); EndTxn v5 answers
#   with the next epoch (transaction version 2).
CLIENT_VERSIONS: Mapping[ApiKey, tuple[int, int]] = {
    ApiKey.PRODUCE: (3, 12),
    ApiKey.FETCH: (4, 12),
    ApiKey.METADATA: (4, 12),
    ApiKey.CREATE_TOPICS: (2, 7),
    ApiKey.API_VERSIONS: (0, 4),
    ApiKey.INIT_PRODUCER_ID: (0, 5),
    ApiKey.FIND_COORDINATOR: (1, 6),
    ApiKey.ADD_PARTITIONS_TO_TXN: (0, 3),
    ApiKey.ADD_OFFSETS_TO_TXN: (0, 4),
    ApiKey.END_TXN: (0, 5),
    ApiKey.TXN_OFFSET_COMMIT: (0, 5),
    ApiKey.SASL_HANDSHAKE: (1, 1),
    ApiKey.SASL_AUTHENTICATE: (0, 2),
}


TRANSACTION_V1_CAPS: Mapping[ApiKey, int] = {
    ApiKey.PRODUCE: 11,
    ApiKey.END_TXN: 4,
    ApiKey.TXN_OFFSET_COMMIT: 4,
}
"""The highest versions that keep transaction protocol version 1 (before KIP-890 part 2,
the brokers tell the versions apart by number): what a producer uses unless it runs
transactions on a cluster with ``transaction.version`` >= 2, as Java's producer."""

TRANSACTION_VERSION_FEATURE = "transaction.version"


class NegotiatedVersions(Value):
    """What one broker supports, and the version to use per API."""

    __slots__ = ("broker_ranges", "chosen", "finalized_features")
    _fields = ("broker_ranges", "chosen", "finalized_features")

    broker_ranges: Mapping[int, tuple[int, int]]
    chosen: Mapping[ApiKey, int]
    finalized_features: Mapping[str, int]
    """The cluster's finalized feature levels as this broker reported them
    (ApiVersions v3+): e.g. ``transaction.version`` 2 enables KIP-890 part 2."""

    def __init__(
        self,
        broker_ranges: Mapping[int, tuple[int, int]],
        chosen: Mapping[ApiKey, int],
        finalized_features: Mapping[str, int] | None = None,
    ) -> None:
        self.broker_ranges = broker_ranges
        self.chosen = chosen
        self.finalized_features = finalized_features or {}

    def version_for(self, api: ApiKey) -> int:
        """The version to send for ``api``; raises UnsupportedVersionError if none fits."""
        try:
            return self.chosen[api]
        except KeyError:
            ours = CLIENT_VERSIONS.get(api)
            theirs = self.broker_ranges.get(int(api))
            raise UnsupportedVersionError(
                f"no common version for {api.name}: this client supports {_fmt(ours)}, "
                f"the broker supports {_fmt(theirs)}"
            ) from None

    def supports(self, api: ApiKey) -> bool:
        return api in self.chosen

    def version_for_transactions(self, api: ApiKey, transaction_version: int) -> int:
        """:meth:`version_for`, capped to keep transaction protocol version 1 unless
        ``transaction_version`` is 2 or more."""
        version = self.version_for(api)
        if transaction_version < 2:
            version = min(version, TRANSACTION_V1_CAPS.get(api, version))
        return version


def _fmt(bounds: tuple[int, int] | None) -> str:
    return "none" if bounds is None else f"v{bounds[0]}-v{bounds[1]}"


def negotiate(
    broker_ranges: Mapping[int, tuple[int, int]],
    finalized_features: Mapping[str, int] | None = None,
) -> NegotiatedVersions:
    """Choose, per API we implement, the highest version inside both ranges."""
    chosen: dict[ApiKey, int] = {}
    for api, (our_min, our_max) in CLIENT_VERSIONS.items():
        theirs = broker_ranges.get(int(api))
        if theirs is None:
            continue
        high = min(our_max, theirs[1])
        if high >= max(our_min, theirs[0]):
            chosen[api] = high
    return NegotiatedVersions(
        broker_ranges=dict(broker_ranges),
        chosen=chosen,
        finalized_features=dict(finalized_features or {}),
    )


def api_versions_retry_version(broker_ranges: Mapping[int, tuple[int, int]]) -> int:
    """The ApiVersions version to retry with after the broker rejected ours (KIP-511).

    A broker that does not support the requested ApiVersions version answers in the v0
    format with UNSUPPORTED_VERSION and, if it can, its own ApiVersions range. Retry with
    the highest version both support, else v0, which every broker accepts.
    """
    ours = CLIENT_VERSIONS[ApiKey.API_VERSIONS]
    theirs = broker_ranges.get(int(ApiKey.API_VERSIONS))
    if theirs is None:
        return 0
    high = min(ours[1], theirs[1])
    return high if high >= max(ours[0], theirs[0]) else 0
