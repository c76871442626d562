"""API keys this client speaks, and ApiVersions negotiation (sans-I/O).

For every API the producer uses we pick the highest version both sides support, as Java's
``NodeApiVersions.latestUsableVersion`` does. An API the broker does not support (or whose
ranges do not overlap ours) is recorded as unusable; only *using* it raises, so a broker
without the transaction APIs still serves a plain producer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from asyncproducer.errors import UnsupportedVersionError


class ApiKey(enum.IntEnum):
    PRODUCE = 0
    FETCH = 1
    METADATA = 3
    CREATE_TOPICS = 19
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    INIT_PRODUCER_ID = 22
    SASL_AUTHENTICATE = 36


# (min, max) this client implements. Why these bounds:
# - Produce v3 is the first that carries record batch v2 (magic 2, headers, idempotence).
#   v12 only differs for transactions v2 (KIP-890) and v13 addresses topics by id (KIP-516);
#   both arrive with the transactions issue.
# - Metadata v4 is the first with allow_auto_topic_creation (Kafka 0.11, like Produce v3).
# - ApiVersions: kio models v0-v4; v3+ sends the client software name and version.
# - InitProducerId v3+ can bump the epoch of an existing producer id (KIP-360).
# - SaslHandshake v1 / SaslAuthenticate (KIP-152): every SASL message in SaslAuthenticate
#   frames (v0's raw tokens are gone from Kafka 4.0); v1+ reports session_lifetime_ms
#   (KIP-368 re-authentication).
# - Fetch is not the producer's: the demo and the test harness read back with it. v4 is
#   the first returning record batches v2; v13+ addresses topics by id.
CLIENT_VERSIONS: Mapping[ApiKey, tuple[int, int]] = {
    ApiKey.PRODUCE: (3, 11),
    ApiKey.FETCH: (4, 12),
    ApiKey.METADATA: (4, 12),
    ApiKey.CREATE_TOPICS: (2, 7),
    ApiKey.API_VERSIONS: (0, 4),
    ApiKey.INIT_PRODUCER_ID: (0, 5),
    ApiKey.SASL_HANDSHAKE: (1, 1),
    ApiKey.SASL_AUTHENTICATE: (0, 2),
}


@dataclass(frozen=True, slots=True)
class NegotiatedVersions:
    """What one broker supports, and the version to use per API."""

    broker_ranges: Mapping[int, tuple[int, int]]
    chosen: Mapping[ApiKey, int]

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


def _fmt(bounds: tuple[int, int] | None) -> str:
    return "none" if bounds is None else f"v{bounds[0]}-v{bounds[1]}"


def negotiate(broker_ranges: Mapping[int, tuple[int, int]]) -> NegotiatedVersions:
    """Choose, per API we implement, the highest version inside both ranges."""
    chosen: dict[ApiKey, int] = {}
    for api, (our_min, our_max) in CLIENT_VERSIONS.items():
        theirs = broker_ranges.get(int(api))
        if theirs is None:
            continue
        high = min(our_max, theirs[1])
        if high >= max(our_min, theirs[0]):
            chosen[api] = high
    return NegotiatedVersions(broker_ranges=dict(broker_ranges), chosen=chosen)


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
