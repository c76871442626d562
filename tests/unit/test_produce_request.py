"""The hand-written Produce encoder against kio's generic path, literal bytes and kio's
reader: the first catches any drift between the two encoders, the other two make sure
they are not both wrong in the same way."""

from __future__ import annotations

import datetime
import struct
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader

from asyncproducer.protocol.framing import encode_request
from asyncproducer.protocol.messages import produce_request
from asyncproducer.protocol.produce import ProduceRequest
from asyncproducer.protocol.versions import CLIENT_VERSIONS, ApiKey

VERSIONS = range(CLIENT_VERSIONS[ApiKey.PRODUCE][0], CLIENT_VERSIONS[ApiKey.PRODUCE][1] + 1)
INT16 = st.integers(-(1 << 15), (1 << 15) - 1)
INT32 = st.integers(-(1 << 31), (1 << 31) - 1)
NAMES = st.text(max_size=12)  # non-ASCII included: lengths are in UTF-8 bytes
# Random bytes for the small ones; zeros of any length up to 32 KiB, so that the
# records' varint lengths (compact, flexible versions) take one, two and three bytes.
RECORDS = st.binary(max_size=64) | st.integers(0, 32 * 1024).map(bytes)


def kio_frame(
    version: int,
    *,
    correlation_id: int,
    client_id: str | None,
    acks: int,
    timeout_ms: int,
    topic_data: Mapping[str, Mapping[int, bytes]],
    transactional_id: str | None = None,
) -> bytes:
    request = produce_request(
        version,
        acks=acks,
        timeout_ms=timeout_ms,
        topic_data=topic_data,
        transactional_id=transactional_id,
    )
    return encode_request(request, correlation_id=correlation_id, client_id=client_id)


def both_frames(
    version: int, correlation_id: int, client_id: str | None, **fields: Any
) -> tuple[bytes, bytes]:
    ours = ProduceRequest(version, **fields).encode_frame(correlation_id, client_id)
    theirs = kio_frame(version, correlation_id=correlation_id, client_id=client_id, **fields)
    return ours, theirs


@settings(max_examples=300, deadline=None)
@given(
    version=st.sampled_from(VERSIONS),
    correlation_id=INT32,
    client_id=st.none() | NAMES,
    transactional_id=st.none() | NAMES,
    acks=INT16,
    timeout_ms=INT32,
    topic_data=st.dictionaries(
        NAMES,
        st.dictionaries(INT32, RECORDS, max_size=4),
        max_size=4,
    ),
)
def test_same_bytes_as_kio(
    version: int,
    correlation_id: int,
    client_id: str | None,
    transactional_id: str | None,
    acks: int,
    timeout_ms: int,
    topic_data: dict[str, dict[int, bytes]],
) -> None:
    ours, theirs = both_frames(
        version,
        correlation_id,
        client_id,
        acks=acks,
        timeout_ms=timeout_ms,
        topic_data=topic_data,
        transactional_id=transactional_id,
    )
    assert ours == theirs


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "sizes",
    [
        (0,),
        (127, 128),  # the compact length (size + 1) crosses one varint byte here
        (16 * 1024, 16 * 1024 + 1),
        ((2 << 20) + 1,),  # 2 MiB: a four-byte varint length
    ],
    ids=["empty", "varint-1-2", "16KiB", "2MiB"],
)
def test_record_sizes(version: int, sizes: tuple[int, ...]) -> None:
    topic_data = {"topic": {i: bytes([i % 251]) * size for i, size in enumerate(sizes)}}
    ours, theirs = both_frames(
        version, 1, "client", acks=-1, timeout_ms=30_000, topic_data=topic_data
    )
    assert ours == theirs
    (size,) = struct.unpack_from(">i", ours)
    assert size == len(ours) - 4


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("client_id", [None, "", "prodücer-☃"])
@pytest.mark.parametrize("transactional_id", [None, "", "tx-ü"])
def test_ids_and_several_topics(
    version: int, client_id: str | None, transactional_id: str | None
) -> None:
    topic_data = {
        "a": {0: b"first", 7: b"", 2: b"x" * 300},
        "b-é": {1: b"second"},
        "empty": {},
    }
    for correlation_id in (0, -1, -(1 << 31), (1 << 31) - 1):
        ours, theirs = both_frames(
            version,
            correlation_id,
            client_id,
            acks=0,
            timeout_ms=1,
            topic_data=topic_data,
            transactional_id=transactional_id,
        )
        assert ours == theirs


@pytest.mark.parametrize("version", VERSIONS)
def test_empty_topic_data(version: int) -> None:
    ours, theirs = both_frames(version, 3, None, acks=1, timeout_ms=5, topic_data={})
    assert ours == theirs


# Written out from the protocol guide, not produced by either encoder.
CLASSIC_V3 = bytes.fromhex(
    "00000028"  # size: 40 bytes follow
    "0000" "0003" "00000007"  # api key 0 (Produce), version 3, correlation id 7
    "0001" "63"  # client id: int16 length 1, "c"
    "ffff"  # transactional id: null (int16 -1)
    "0001" "000003e8"  # acks 1, timeout 1000 ms
    "00000001"  # 1 topic (int32)
    "0001" "74"  # name "t" (int16 length)
    "00000001"  # 1 partition (int32)
    "00000000"  # partition index 0
    "00000002" "6162"  # records: int32 length 2, b"ab"
)  # fmt: skip
FLEXIBLE_V9 = bytes.fromhex(
    "00000023"  # size: 35 bytes follow
    "0000" "0009" "00000007"  # api key 0, version 9, correlation id 7
    "0001" "63"  # client id: still an int16-length string in header v2
    "00"  # header tagged fields: none
    "03" "7478"  # transactional id "tx": compact, length + 1 = 3
    "0001" "000003e8"  # acks 1, timeout 1000 ms
    "02"  # 1 topic: compact array, count + 1
    "02" "74"  # name "t": length + 1
    "02"  # 1 partition
    "00000000"  # partition index 0
    "03" "6162"  # records: compact nullable bytes, length + 1 = 3, b"ab"
    "00" "00" "00"  # tagged fields of the partition, the topic, the request
)  # fmt: skip


@pytest.mark.parametrize(
    ("version", "transactional_id", "expected"),
    [(3, None, CLASSIC_V3), (9, "tx", FLEXIBLE_V9)],
)
def test_literal_bytes(version: int, transactional_id: str | None, expected: bytes) -> None:
    fields: dict[str, Any] = {
        "acks": 1,
        "timeout_ms": 1000,
        "topic_data": {"t": {0: b"ab"}},
        "transactional_id": transactional_id,
    }
    assert ProduceRequest(version, **fields).encode_frame(7, "c") == expected
    assert kio_frame(version, correlation_id=7, client_id="c", **fields) == expected


@pytest.mark.parametrize("version", [3, 8, 9, 11])
def test_kio_reads_it_back(version: int) -> None:
    topic_data = {"orders": {0: b"batch-0", 3: b"\x00" * 20_000}, "audit-ü": {1: b""}}
    request = ProduceRequest(
        version, acks=-1, timeout_ms=12_345, topic_data=topic_data, transactional_id="tx-1"
    )
    frame = request.encode_frame(-42, "client-☃")
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4

    header_cls: type[Any] = RequestHeaderV2 if version >= 9 else RequestHeaderV1
    header, header_size = entity_reader(header_cls)(frame, 4)
    assert (header.request_api_key, header.request_api_version) == (0, version)
    assert (header.correlation_id, header.client_id) == (-42, "client-☃")

    payload_cls: type[Any] = type(produce_request(version, acks=1, timeout_ms=1, topic_data={}))
    decoded, body_size = entity_reader(payload_cls)(frame, 4 + header_size)
    assert 4 + header_size + body_size == len(frame)
    assert decoded.transactional_id == "tx-1"
    assert decoded.acks == -1
    assert decoded.timeout == datetime.timedelta(milliseconds=12_345)
    assert {
        topic.name: {p.index: bytes(p.records) for p in topic.partition_data}
        for topic in decoded.topic_data
    } == topic_data


def test_body_is_reused_across_frames() -> None:
    request = ProduceRequest(11, acks=1, timeout_ms=10, topic_data={"t": {0: b"r"}})
    first = request.encode_frame(1, "a")
    second = request.encode_frame(2, None)
    assert first == kio_frame(
        11, correlation_id=1, client_id="a", acks=1, timeout_ms=10,
        topic_data={"t": {0: b"r"}}, transactional_id=None,
    )  # fmt: skip
    assert second == kio_frame(
        11, correlation_id=2, client_id=None, acks=1, timeout_ms=10,
        topic_data={"t": {0: b"r"}}, transactional_id=None,
    )  # fmt: skip


def test_connection_facing_attributes() -> None:
    request = ProduceRequest(7, acks=1, timeout_ms=10, topic_data={})
    assert ApiKey(request.__api_key__) is ApiKey.PRODUCE
    assert request.__version__ == 7


@pytest.mark.parametrize("version", [-1, 0, 2, 13])
def test_unsupported_version(version: int) -> None:
    with pytest.raises(ValueError, match=rf"Produce v{version} is not supported.*v3-v12"):
        ProduceRequest(version, acks=1, timeout_ms=10, topic_data={})


@pytest.mark.parametrize(
    "fields",
    [
        {"acks": 1 << 15, "timeout_ms": 10, "topic_data": {}},
        {"acks": 1, "timeout_ms": 1 << 31, "topic_data": {}},
        {"acks": 1, "timeout_ms": 10, "topic_data": {"t": {1 << 31: b""}}},
    ],
    ids=["acks", "timeout", "partition"],
)
@pytest.mark.parametrize("version", [3, 11])
def test_out_of_range_field(version: int, fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="out of range"):
        ProduceRequest(version, **fields)


@pytest.mark.parametrize("correlation_id", [1 << 31, -(1 << 31) - 1])
def test_out_of_range_correlation_id(correlation_id: int) -> None:
    request = ProduceRequest(9, acks=1, timeout_ms=10, topic_data={})
    with pytest.raises(ValueError, match="out of range"):
        request.encode_frame(correlation_id, None)
