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
    with pytest.raises(UnsupportedVersionError, match=r"PRODUCE.*v3-v11.*v0-v2"):
        negotiated.version_for(ApiKey.PRODUCE)
    with pytest.raises(UnsupportedVersionError, match=r"METADATA.*broker supports none"):
        negotiated.version_for(ApiKey.METADATA)


@pytest.mark.parametrize(
    ("ranges", "expected"), [({18: (0, 2)}, 2), ({18: (0, 9)}, 4), ({}, 0), ({18: (5, 9)}, 0)]
)
def test_api_versions_retry_version(ranges: dict[int, tuple[int, int]], expected: int) -> None:
    assert api_versions_retry_version(ranges) == expected
