from __future__ import annotations

import pytest

from asyncproducer.errors import UnsupportedVersionError
from asyncproducer.protocol.versions import (
    CLIENT_VERSIONS,
    ApiKey,
    api_versions_retry_version,
    negotiate,
)


def test_highest_common_version_is_chosen() -> None:
    negotiated = negotiate({0: (0, 13), 3: (0, 9), 18: (0, 2), 22: (0, 6)})
    assert negotiated.version_for(ApiKey.PRODUCE) == CLIENT_VERSIONS[ApiKey.PRODUCE][1]
    assert negotiated.version_for(ApiKey.METADATA) == 9
    assert negotiated.version_for(ApiKey.API_VERSIONS) == 2
    assert (
        negotiated.version_for(ApiKey.INIT_PRODUCER_ID)
        == CLIENT_VERSIONS[ApiKey.INIT_PRODUCER_ID][1]
    )


def test_disjoint_or_missing_ranges_are_unusable_and_say_why() -> None:
    negotiated = negotiate({0: (0, 2), 18: (0, 3)})  # Produce too old, Metadata absent
    assert not negotiated.supports(ApiKey.PRODUCE)
    with pytest.raises(UnsupportedVersionError, match=r"PRODUCE.*v3-v12.*v0-v2"):
        negotiated.version_for(ApiKey.PRODUCE)
    with pytest.raises(UnsupportedVersionError, match=r"METADATA.*broker supports none"):
        negotiated.version_for(ApiKey.METADATA)


@pytest.mark.parametrize(
    ("ranges", "expected"), [({18: (0, 2)}, 2), ({18: (0, 9)}, 4), ({}, 0), ({18: (5, 9)}, 0)]
)
def test_api_versions_retry_version(ranges: dict[int, tuple[int, int]], expected: int) -> None:
    assert api_versions_retry_version(ranges) == expected


@pytest.mark.parametrize(
    ("transaction_version", "produce", "end_txn", "txn_offset_commit"),
    [(0, 11, 4, 4), (1, 11, 4, 4), (2, 12, 5, 5)],
)
def test_transaction_version_1_caps_the_versions_it_changes(
    transaction_version: int, produce: int, end_txn: int, txn_offset_commit: int
) -> None:
    """Produce v12, EndTxn v5 and TxnOffsetCommit v5 are transaction version 2 (KIP-890
    part 2): sent only when the cluster's transaction.version says so."""
    negotiated = negotiate(
        {0: (0, 13), 26: (0, 5), 28: (0, 5), 1: (0, 17)}, {"transaction.version": 2}
    )
    assert negotiated.finalized_features == {"transaction.version": 2}
    versions = (
        negotiated.version_for_transactions(ApiKey.PRODUCE, transaction_version),
        negotiated.version_for_transactions(ApiKey.END_TXN, transaction_version),
        negotiated.version_for_transactions(ApiKey.TXN_OFFSET_COMMIT, transaction_version),
        negotiated.version_for_transactions(ApiKey.FETCH, transaction_version),
    )
    assert versions == (produce, end_txn, txn_offset_commit, 12)
