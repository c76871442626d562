"""The hand-encoded ApiVersions, Metadata and InitProducerId requests against kio's
encoding of the same request (``messages``' builders, which the test harness and the fake
cluster still use), byte for byte, at every version the client speaks; and a frame read
back through kio's reader, so that the two are not both wrong in the same way."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_reader

from asyncproducer.protocol.framing import encode_request
from asyncproducer.protocol.messages import (
    api_versions_request,
    init_producer_id_request,
    metadata_request,
)
from asyncproducer.protocol.requests import (
    ApiVersionsRequest,
    InitProducerIdRequest,
    MetadataRequest,
)
from asyncproducer.protocol.versions import CLIENT_VERSIONS, ApiKey


def _versions(api: ApiKey) -> list[int]:
    low, high = CLIENT_VERSIONS[api]
    return list(range(low, high + 1))


NAMES = st.text(max_size=20)  # non-ASCII included: lengths are in UTF-8 bytes
CLIENT_IDS = st.none() | NAMES
CORRELATION_IDS = st.integers(0, (1 << 31) - 1)
INT16 = st.integers(-(1 << 15), (1 << 15) - 1)
INT32 = st.integers(-(1 << 31), (1 << 31) - 1)
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)


def _kio(payload: Any, correlation_id: int, client_id: str | None) -> bytes:
    return encode_request(payload, correlation_id=correlation_id, client_id=client_id)


@pytest.mark.parametrize("version", _versions(ApiKey.API_VERSIONS))
@settings(max_examples=50, deadline=None)
@given(software=NAMES, correlation_id=CORRELATION_IDS, client_id=CLIENT_IDS)
def test_api_versions(
    version: int, software: str, correlation_id: int, client_id: str | None
) -> None:
    ours = ApiVersionsRequest(version, software)
    theirs = api_versions_request(version, software)
    assert ours.encode_frame(correlation_id, client_id) == _kio(theirs, correlation_id, client_id)


@pytest.mark.parametrize("version", _versions(ApiKey.METADATA))
@settings(max_examples=50, deadline=None)
@given(
    topics=st.none() | st.lists(NAMES, max_size=200),  # 128+ topics: a two-byte count
    auto_create=st.booleans(),
    correlation_id=CORRELATION_IDS,
    client_id=CLIENT_IDS,
)
def test_metadata(
    version: int,
    topics: list[str] | None,
    auto_create: bool,
    correlation_id: int,
    client_id: str | None,
) -> None:
    ours = MetadataRequest(version, topics, allow_auto_topic_creation=auto_create)
    theirs = metadata_request(version, topics, allow_auto_topic_creation=auto_create)
    assert ours.encode_frame(correlation_id, client_id) == _kio(theirs, correlation_id, client_id)


@pytest.mark.parametrize("version", _versions(ApiKey.INIT_PRODUCER_ID))
@settings(max_examples=50, deadline=None)
@given(
    transactional_id=st.none() | NAMES,
    timeout_ms=INT32,
    producer_id=INT64,
    producer_epoch=INT16,
    correlation_id=CORRELATION_IDS,
    client_id=CLIENT_IDS,
)
def test_init_producer_id(
    version: int,
    transactional_id: str | None,
    timeout_ms: int,
    producer_id: int,
    producer_epoch: int,
    correlation_id: int,
    client_id: str | None,
) -> None:
    fields: dict[str, Any] = {
        "transactional_id": transactional_id,
        "transaction_timeout_ms": timeout_ms,
        "producer_id": producer_id,
        "producer_epoch": producer_epoch,
    }
    ours = InitProducerIdRequest(version, **fields)
    theirs = init_producer_id_request(version, **fields)
    assert ours.encode_frame(correlation_id, client_id) == _kio(theirs, correlation_id, client_id)


def test_a_frame_reads_back_through_kio() -> None:
    frame = MetadataRequest(12, ["a", "é"], allow_auto_topic_creation=True).encode_frame(
        9, "client"
    )
    theirs = metadata_request(12, ["a", "é"], allow_auto_topic_creation=True)
    header_cls = theirs.__header_schema__
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    header, size = entity_reader(header_cls)(memoryview(frame)[4:], 0)
    assert (header.request_api_key, header.request_api_version) == (3, 12)
    assert (header.correlation_id, header.client_id) == (9, "client")
    body, _ = entity_reader(type(theirs))(memoryview(frame)[4 + size :], 0)
    assert body == theirs


@pytest.mark.parametrize(
    ("cls", "version"), [(ApiVersionsRequest, 5), (MetadataRequest, 3), (InitProducerIdRequest, 6)]
)
def test_a_version_outside_the_client_s_range_is_refused(cls: Any, version: int) -> None:
    arguments: dict[type[Any], tuple[tuple[Any, ...], dict[str, Any]]] = {
        ApiVersionsRequest: (("1.0",), {}),
        MetadataRequest: ((None,), {"allow_auto_topic_creation": False}),
        InitProducerIdRequest: ((), {"transactional_id": None, "transaction_timeout_ms": 1}),
    }
    args, kwargs = arguments[cls]
    with pytest.raises(ValueError, match=f"v{version} is not supported"):
        cls(version, *args, **kwargs)
