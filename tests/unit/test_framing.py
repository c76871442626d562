from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader

from asyncproducer.errors import ProtocolError
from asyncproducer.protocol.framing import FrameDecoder, encode_request, peek_correlation_id
from asyncproducer.protocol.messages import (
    api_versions_request,
    metadata_request,
    produce_request,
    response_decoder,
)
from asyncproducer.protocol.versions import ApiKey
from tests.network.servers import api_versions_body, encode_response


@given(st.lists(st.binary(max_size=300), max_size=20), st.data())
def test_frames_survive_any_chunking(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(struct.pack(">i", len(p)) + p for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder()
    frames: list[bytes] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        frames += decoder.feed(stream[start:cut])
        start = cut
    assert frames == payloads
    assert decoder.buffered == 0


@pytest.mark.parametrize("size", [-1, 1_213_486_160])  # negative; b"HTTP" read as a size
def test_impossible_frame_size_is_a_protocol_error(size: int) -> None:
    with pytest.raises(ProtocolError, match=str(size)):
        FrameDecoder(max_frame_size=1 << 20).feed(struct.pack(">i", size))


@pytest.mark.parametrize(
    ("request_factory", "flexible_header"),
    [
        (lambda: metadata_request(8, ["a"], allow_auto_topic_creation=True), False),
        (lambda: metadata_request(9, ["a"], allow_auto_topic_creation=True), True),
        (lambda: api_versions_request(3, "1.0"), True),
        (lambda: produce_request(8, acks=1, timeout_ms=100, topic_data={"t": {0: b"x"}}), False),
        (lambda: produce_request(9, acks=-1, timeout_ms=100, topic_data={"t": {0: b"x"}}), True),
    ],
)
def test_request_header_layout(request_factory, flexible_header: bool) -> None:  # type: ignore[no-untyped-def]
    request = request_factory()
    frame = encode_request(request, correlation_id=42, client_id="cid")
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    api_key, version, correlation_id, client_id_len = struct.unpack_from(">hhih", frame, 4)
    assert (api_key, version, correlation_id) == (request.__api_key__, request.__version__, 42)
    assert frame[14 : 14 + client_id_len] == b"cid"  # client_id is a legacy string in v1 and v2
    # Flexible versions use header v2 (it adds a tagged-field section); the rest of the
    # frame must decode back into the very request.
    header_cls = RequestHeaderV2 if flexible_header else RequestHeaderV1
    header, header_size = entity_reader(header_cls)(frame, 4)
    assert header.client_id == "cid"
    assert header.correlation_id == 42
    decoded, body_size = entity_reader(type(request))(frame, 4 + header_size)
    assert decoded == request
    assert 4 + header_size + body_size == len(frame)


def test_response_round_trip_and_correlation_id() -> None:
    frame = encode_response(7, ApiKey.API_VERSIONS, 3, api_versions_body(3))[4:]
    assert peek_correlation_id(frame) == 7
    response = response_decoder(ApiKey.API_VERSIONS, 3)(memoryview(frame))
    assert response.error_code == 0


def test_api_versions_v0_fallback_body_is_decoded() -> None:
    body = api_versions_body(0, {18: (0, 2)}, error_code=35)
    frame = encode_response(1, ApiKey.API_VERSIONS, 0, body)[4:]
    response = response_decoder(ApiKey.API_VERSIONS, 4)(memoryview(frame))
    assert response.error_code == 35
    assert [(k.api_key, k.max_version) for k in response.api_keys] == [(18, 2)]


def test_truncated_response_body_is_a_protocol_error() -> None:
    frame = encode_response(1, ApiKey.API_VERSIONS, 3, api_versions_body(3))[4:]
    with pytest.raises(ProtocolError, match="ApiVersionsResponse"):
        response_decoder(ApiKey.API_VERSIONS, 3)(memoryview(frame[:-3]))


def test_trailing_bytes_after_a_complete_response_are_ignored() -> None:
    # As in Java's clients; librdkafka's mock cluster appends a byte to Metadata v9+.
    frame = encode_response(1, ApiKey.API_VERSIONS, 3, api_versions_body(3))[4:]
    response = response_decoder(ApiKey.API_VERSIONS, 3)(memoryview(frame + b"\0\0"))
    assert response == api_versions_body(3)
