"""Every response the producer decodes is decoded liberally and safely (issue 16).

Properties over random and mutated frames (``tests/response_frames.py``) for ApiVersions,
Metadata, Produce and InitProducerId at every version the client speaks: a valid frame
decodes to its entity, also with unknown tagged fields anywhere and with error codes kio
does not know; anything else is a ``ProtocolError``, never another exception, and never a
null where the schema forbids one. Then one test per defect class, each of which failed
before the fix.

Those four responses have two decoders: the producer's, written by hand
(``protocol.responses``), and kio's (``messages.response_decoder``: the test harness's,
and the other APIs'). Every frame here goes through both: they must agree (the same
entity, or both a ``ProtocolError``), and the assertions then check the hand decoder's
outcome. Where Java reads more liberally than kio, so does the hand decoder: a boolean
byte other than 0 or 1 is true, and a timestamp is any int64 (kio refuses both).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib
import io
import re
import struct
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from kio.serial import entity_writer
from kio.serial._introspect import EntityField, EntityTupleField, classify_field, is_optional

from asyncproducer.errors import ProtocolError, UnknownBrokerError, error_for_code
from asyncproducer.protocol.messages import response_decoder
from asyncproducer.protocol.responses import HAND_DECODED, decoder
from asyncproducer.protocol.versions import ApiKey
from tests.hand_decoded import as_kio
from tests.response_frames import (
    UNKNOWN_TAG_SIZES,
    api_versions,
    encode_frame,
    frames_with_a_null_array,
    frames_with_unknown_error_codes,
    frames_with_unknown_tags,
    insert_unknown_tags,
    mutated_frames,
    response_class,
    valid_frames,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
API_VERSIONS = api_versions()
_WITH_ARRAYS = [
    av for av in API_VERSIONS if av[0] not in (ApiKey.INIT_PRODUCER_ID, ApiKey.SASL_AUTHENTICATE)
]


def _decode(api: ApiKey, version: int, frame: bytes) -> Any:
    """The decoded entity (kio's class), or the ``ProtocolError``: the hand decoder's,
    where there is one, after checking that kio's decoder agrees."""
    kio_outcome = _outcome(lambda: response_decoder(api, version)(memoryview(frame)))
    if api not in HAND_DECODED:
        return _unwrap(kio_outcome)
    hand_outcome = _outcome(lambda: as_kio(api, version, decoder(api, version)(memoryview(frame))))
    if isinstance(kio_outcome, ProtocolError) and not isinstance(hand_outcome, ProtocolError):
        assert _KIO_ONLY_REFUSALS.search(str(kio_outcome)), (kio_outcome, hand_outcome)
    else:
        assert type(hand_outcome) is type(kio_outcome), (hand_outcome, kio_outcome)
        if not isinstance(kio_outcome, ProtocolError):
            assert hand_outcome == kio_outcome
    return _unwrap(hand_outcome)


# What kio refuses and Java (and the hand decoder) reads: a boolean byte other than 0 or
# 1, a timestamp before 1970 or beyond Python's datetime.
_KIO_ONLY_REFUSALS = re.compile(r"Invalid boolean value|negative timestamp|out of range")


def _outcome(decode: Callable[[], Any]) -> Any:
    try:
        return decode()
    except ProtocolError as exc:
        return exc


def _unwrap(outcome: Any) -> Any:
    if isinstance(outcome, ProtocolError):
        raise outcome
    return outcome


def _for_every_version(
    frames: Any, pairs: list[tuple[ApiKey, int]] = API_VERSIONS
) -> st.SearchStrategy[tuple[ApiKey, int, Any]]:
    """(api, version, a draw of ``frames(api, version)``) over every API and version."""
    return st.sampled_from(pairs).flatmap(
        lambda av: frames(*av).map(lambda drawn: (av[0], av[1], drawn))
    )


def _forbidden_nulls(entity: Any, path: str = "") -> list[str]:
    """Non-nullable fields holding None, found by walking the schema (independently of
    the decoder's own check)."""
    found = []
    for field in fields(entity):
        value = getattr(entity, field.name)
        kind = classify_field(field)
        where = f"{path}{field.name}"
        if value is None:
            if kind.is_array and not is_optional(field):
                found.append(where)
            continue
        if isinstance(kind, EntityTupleField):
            for index, item in enumerate(value):
                found += _forbidden_nulls(item, f"{where}[{index}].")
        elif isinstance(kind, EntityField):
            found += _forbidden_nulls(value, f"{where}.")
    return found


def _error_codes(entity: Any) -> list[Any]:
    codes = []
    for field in fields(entity):
        value = getattr(entity, field.name)
        kind = classify_field(field)
        if field.metadata.get("kafka_type") == "error_code":
            codes.append(value)
        elif isinstance(kind, EntityTupleField) and value is not None:
            for item in value:
                codes += _error_codes(item)
        elif isinstance(kind, EntityField) and value is not None:
            codes += _error_codes(value)
    return codes


# --------------------------------------------------------------------------- properties


@PROPERTY
@given(_for_every_version(valid_frames))
def test_a_valid_frame_decodes_to_its_entity(case: tuple[ApiKey, int, Any]) -> None:
    api, version, (frame, expected) = case
    # The test's writer and kio's agree, so the frames are what a broker would send.
    written = io.BytesIO()
    entity_writer(type(expected))(written, expected)
    assert frame.endswith(written.getvalue())
    assert _decode(api, version, frame) == expected


@PROPERTY
@given(_for_every_version(frames_with_unknown_tags))
def test_unknown_tagged_fields_anywhere_are_skipped(case: tuple[ApiKey, int, Any]) -> None:
    api, version, (frame, expected) = case
    assert _decode(api, version, frame) == expected


@PROPERTY
@given(_for_every_version(frames_with_unknown_error_codes))
def test_unknown_error_codes_decode_to_plain_ints(case: tuple[ApiKey, int, Any]) -> None:
    api, version, (frame, expected) = case
    decoded = _decode(api, version, frame)
    assert decoded == expected
    for code in _error_codes(decoded):
        assert type(code) is int
        error = error_for_code(code)
        assert isinstance(error, UnknownBrokerError)
        assert str(code) in str(error)
        assert not error.retriable


@PROPERTY
@given(_for_every_version(mutated_frames))
def test_a_mutated_frame_decodes_or_is_a_protocol_error(case: tuple[ApiKey, int, Any]) -> None:
    api, version, frame = case
    try:
        decoded = _decode(api, version, frame)
    except ProtocolError:
        return
    assert isinstance(decoded, response_class(api, 0 if _is_v0_fallback(api, decoded) else version))
    assert _forbidden_nulls(decoded) == []


def _is_v0_fallback(api: ApiKey, decoded: Any) -> bool:
    return api is ApiKey.API_VERSIONS and decoded.__version__ == 0


@PROPERTY
@given(_for_every_version(frames_with_a_null_array, _WITH_ARRAYS))
def test_a_null_array_is_refused_unless_the_schema_allows_it(
    case: tuple[ApiKey, int, Any],
) -> None:
    api, version, (frame, path, nullable) = case
    if nullable:
        assert _forbidden_nulls(_decode(api, version, frame)) == []
        return
    try:
        decoded = _decode(api, version, frame)
    except ProtocolError as refused:
        message = str(refused)
    else:
        # Only one reading may take it: an ApiVersions answer of UNSUPPORTED_VERSION is
        # read in v0's layout (the v0 fallback), where those bytes are no null array.
        assert _is_v0_fallback(api, decoded), f"{path} decoded although null: {decoded!r}"
        return
    assert "null" in message
    assert path.split(".", 1)[1] in message  # the field, without the class name


@PROPERTY
@given(st.sampled_from(API_VERSIONS), st.binary(max_size=200))
def test_random_bytes_decode_or_are_a_protocol_error(av: tuple[ApiKey, int], frame: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        _decode(*av, frame)


# --------------------------------------------------------------------------- unknown tags


def _api_versions_v4() -> Any:
    from kio.schema.api_versions.v4 import response as module

    return module.ApiVersionsResponse(
        error_code=ErrorCode.none,
        api_keys=(module.ApiVersion(api_key=0, min_version=3, max_version=11),),
        throttle_time=datetime.timedelta(0),
        finalized_features_epoch=7,
    )


def test_the_issue_s_unknown_tag_99_in_api_versions_v4_is_skipped() -> None:
    # Was: ProtocolError: cannot decode ApiVersionsResponse v4: 'Unknown tagged field tag: 99'
    entity = _api_versions_v4()
    frame = insert_unknown_tags(entity, [b"\x01\x02\x03"], first_tag=99)
    assert _decode(ApiKey.API_VERSIONS, 4, frame) == entity


@pytest.mark.parametrize("size", UNKNOWN_TAG_SIZES)
@pytest.mark.parametrize(("api", "version"), [(ApiKey.PRODUCE, 11), (ApiKey.METADATA, 12)])
def test_unknown_tags_of_every_size_at_every_level_are_skipped(
    api: ApiKey, version: int, size: int
) -> None:
    entity = _deep_entity(api, version)
    frame = insert_unknown_tags(entity, [b"\xab" * size, b""])
    assert _decode(api, version, frame) == entity


def _deep_entity(api: ApiKey, version: int) -> Any:
    """An entity with every nesting level populated, including Produce's tagged
    ``current_leader`` and ``node_endpoints`` (tagged fields whose own tags get unknown
    tags inserted too)."""
    if api is ApiKey.PRODUCE:
        from kio.schema.produce.v11 import response as p

        partition = p.PartitionProduceResponse(
            index=3,
            error_code=ErrorCode.not_leader_or_follower,
            base_offset=-1,
            record_errors=(p.BatchIndexAndErrorMessage(batch_index=1),),
            current_leader=p.LeaderIdAndEpoch(leader_id=2, leader_epoch=5),
        )
        return p.ProduceResponse(
            responses=(p.TopicProduceResponse(name="t", partition_responses=(partition,)),),
            node_endpoints=(p.NodeEndpoint(node_id=2, host="h", port=9092),),
        )
    from kio.schema.metadata.v12 import response as m

    partition_m = m.MetadataResponsePartition(
        error_code=ErrorCode.none, partition_index=0, leader_id=1, replica_nodes=(1,)
    )
    return m.MetadataResponse(
        throttle_time=datetime.timedelta(0),
        brokers=(m.MetadataResponseBroker(node_id=1, host="h", port=9092),),
        topics=(
            m.MetadataResponseTopic(
                error_code=ErrorCode.none, name="t", topic_id=None, partitions=(partition_m,)
            ),
        ),
    )


def test_unknown_tags_in_the_response_header_are_skipped() -> None:
    entity = _deep_entity(ApiKey.METADATA, 12)

    def header_only(path: str, known: frozenset[int]) -> list[tuple[int, bytes]]:
        return [(5, b"\x00" * 130)] if path == "header" else []

    frame = encode_frame(entity, unknown_tags=header_only)
    assert _decode(ApiKey.METADATA, 12, frame) == entity


# --------------------------------------------------------------------------- error codes


@pytest.mark.parametrize(("api", "version"), [(ApiKey.PRODUCE, 11), (ApiKey.PRODUCE, 3)])
def test_an_unknown_produce_error_code_is_kept_as_an_int(api: ApiKey, version: int) -> None:
    # Was: ProtocolError ("12345 is not a valid ErrorCode"): the connection dropped and the
    # batch was retried until delivery_timeout_ms.
    module = importlib.import_module(f"kio.schema.produce.v{version}.response")
    entity = module.ProduceResponse(
        responses=(
            module.TopicProduceResponse(
                name="t",
                partition_responses=(
                    _build(
                        module.PartitionProduceResponse, index=0, error_code=12345, base_offset=-1
                    ),
                ),
            ),
        ),
    )
    decoded = _decode(api, version, encode_frame(entity))
    code = decoded.responses[0].partition_responses[0].error_code
    assert code == 12345
    error = error_for_code(int(code))
    assert isinstance(error, UnknownBrokerError)
    assert not error.retriable


def _build(cls: type[Any], **values: Any) -> Any:
    names = {field.name for field in fields(cls)}
    defaults: dict[str, Any] = {"record_errors": (), "log_append_time": None}
    return cls(**{k: v for k, v in {**defaults, **values}.items() if k in names})


@pytest.mark.parametrize(
    ("api", "version"),
    [(ApiKey.INIT_PRODUCER_ID, 0), (ApiKey.INIT_PRODUCER_ID, 5), (ApiKey.API_VERSIONS, 4)],
)
def test_an_unknown_top_level_error_code_is_kept_as_an_int(api: ApiKey, version: int) -> None:
    entity = _example(api, version, error_code=12345)
    decoded = _decode(api, version, encode_frame(entity))
    assert decoded.error_code == 12345


def _example(api: ApiKey, version: int, **values: Any) -> Any:
    return _replace(_fill(response_class(api, version)), **values)


def _replace(entity: Any, **values: Any) -> Any:
    return dataclasses.replace(entity, **values)


# --------------------------------------------------------------------------- nulls


@pytest.mark.parametrize(
    ("api", "version", "path"),
    [
        (ApiKey.METADATA, 4, "brokers"),
        (ApiKey.METADATA, 12, "brokers"),
        (ApiKey.METADATA, 4, "topics"),
        (ApiKey.METADATA, 12, "topics[0].partitions"),
        (ApiKey.METADATA, 4, "topics[0].partitions[0].replica_nodes"),
        (ApiKey.METADATA, 12, "topics[0].partitions[0].replica_nodes"),
        (ApiKey.PRODUCE, 7, "responses"),
        (ApiKey.PRODUCE, 11, "responses[0].partition_responses"),
        (ApiKey.PRODUCE, 11, "responses[0].partition_responses[0].record_errors"),
        (ApiKey.API_VERSIONS, 4, "api_keys"),
    ],
)
def test_a_null_the_schema_forbids_is_a_protocol_error_naming_the_field(
    api: ApiKey, version: int, path: str
) -> None:
    # Was: decoded with None there; the producer then died with "'NoneType' object is not
    # iterable" far from the cause.
    frame = encode_frame(_with_null(_populated(api, version), path))
    with pytest.raises(ProtocolError) as raised:
        _decode(api, version, frame)
    message = str(raised.value)
    assert f"v{version}" in message
    assert path in message
    assert "null" in message


def _populated(api: ApiKey, version: int) -> Any:
    """An entity with one item in every array, so any field path can be nulled."""
    cls = response_class(api, version)
    return _fill(cls)


def _fill(cls: type[Any]) -> Any:
    values: dict[str, Any] = {}
    for field in fields(cls):
        kind = classify_field(field)
        if isinstance(kind, EntityField | EntityTupleField):
            item = _fill(kind.type_)
            values[field.name] = (item,) if kind.is_array else item
            continue
        kafka_type = field.metadata["kafka_type"]
        value: Any = {
            "error_code": ErrorCode.none,
            "string": "x",
            "bool": True,
            "timedelta_i32": datetime.timedelta(0),
            "uuid": uuid.UUID(int=1),
            "datetime_i64": None,
        }.get(kafka_type, 1)
        values[field.name] = (value,) if kind.is_array else value
    return cls(**values)


def _with_null(entity: Any, path: str) -> Any:
    head, _, rest = path.partition(".")
    name, _, index = head.partition("[")
    if not rest:
        return _replace(entity, **{name: None})
    items = list(getattr(entity, name))
    position = int(index.rstrip("]"))
    items[position] = _with_null(items[position], rest)
    return _replace(entity, **{name: tuple(items)})


# --------------------------------------------------------------------------- huge counts


@pytest.mark.parametrize(
    ("api", "version", "body"),
    [
        # compact count 2**32: kio reserved 32 GiB for it and the process aborted
        (ApiKey.METADATA, 12, b"\x00\x00\x00\x00" + b"\x81\x80\x80\x80\x10"),
        # classic count 2**31 - 1: 16 GiB, above this test's memory limit
        (ApiKey.METADATA, 4, b"\x00\x00\x00\x00" + b"\x7f\xff\xff\xff"),
        (ApiKey.PRODUCE, 11, b"\x81\x80\x80\x80\x10"),
        (ApiKey.PRODUCE, 3, b"\x00\x00\x00\x01\x00\x01t\x7f\xff\xff\xff"),
    ],
)
def test_a_huge_array_count_is_a_protocol_error_not_a_process_abort(
    api: ApiKey, version: int, body: bytes
) -> None:
    # In a child process with 4 GiB of address space: before the fix, kio's reader reserved
    # memory for the claimed count and the failed allocation aborted the process.
    header = b"\x00\x00\x00\x07" + (b"\x00" if version >= _first_flexible(api) else b"")
    script = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        from asyncproducer.errors import ProtocolError
        from asyncproducer.protocol.messages import response_decoder
        from asyncproducer.protocol.responses import decoder
        from asyncproducer.protocol.versions import ApiKey
        for decoder_of in (response_decoder, decoder):
            try:
                decoder_of(ApiKey({int(api)}), {version})(memoryview({header + body!r}))
            except ProtocolError as exc:
                print("ProtocolError:", exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-500:]
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout  # kio's decoder, then the hand-written one
    for line in lines:
        assert line.startswith("ProtocolError:"), line
        assert "cannot fit" in line


@pytest.mark.parametrize(
    "count",
    [
        b"\x80\x80\x80\x80\x80\x00",  # 0 (a null array) in six bytes
        b"\x81\x80\x80\x80\x80\x01",  # 2**35 + 1: past 32 bits
    ],
)
def test_an_unsigned_varint_longer_than_5_bytes_is_refused_by_both_decoders(count: bytes) -> None:
    # Compact lengths, counts and tags are 32-bit (Java reads at most 5 bytes); the
    # pre-scan before kio's decoder allowed 10, so the two decoders could read the same
    # frame differently.
    frame = memoryview(b"\x00\x00\x00\x07\x00" + count)
    for decoder_of in (response_decoder, decoder):
        with pytest.raises(ProtocolError, match="unsigned varint longer than 5 bytes"):
            decoder_of(ApiKey.PRODUCE, 11)(frame)


def _first_flexible(api: ApiKey) -> int:
    return {ApiKey.PRODUCE: 9, ApiKey.METADATA: 9}[api]


# --------------------------------------------------------------------------- ApiVersions

# librdkafka's mock cluster, asked ApiVersions v3 or v4: UNSUPPORTED_VERSION with a body
# that parses as neither v0 nor v3/v4 (the issue's 17 bytes, response header included).
_MOCK_CLUSTER_ANSWER = bytes.fromhex(
    "00000007" + "0023" + "01" + "0012" + "0000" + "0002" + "00000000"
)


@pytest.mark.parametrize("version", [3, 4])
def test_unsupported_version_that_parses_as_nothing_is_a_rejection_without_ranges(
    version: int,
) -> None:
    # Was: ProtocolError "cannot decode ApiVersionsResponse v0: Buffer is exhausted"
    decoded = _decode(ApiKey.API_VERSIONS, version, _MOCK_CLUSTER_ANSWER)
    assert decoded.error_code == ErrorCode.unsupported_version
    assert decoded.api_keys == ()


def test_api_versions_is_parsed_at_the_requested_version_before_v0() -> None:
    # A v4 answer carrying UNSUPPORTED_VERSION (and ranges) is read as v4, as Java does.
    entity = _replace(_api_versions_v4(), error_code=ErrorCode.unsupported_version)
    assert _decode(ApiKey.API_VERSIONS, 4, encode_frame(entity)) == entity


def test_a_v0_rejection_is_still_read_as_v0() -> None:
    from kio.schema.api_versions.v0 import response as v0

    entity = v0.ApiVersionsResponse(
        error_code=ErrorCode.unsupported_version,
        api_keys=(v0.ApiVersion(api_key=18, min_version=0, max_version=2),),
    )
    assert _decode(ApiKey.API_VERSIONS, 4, encode_frame(entity)) == entity


def test_other_garbage_in_api_versions_is_still_a_protocol_error() -> None:
    # Without UNSUPPORTED_VERSION, a body that parses at no version is refused.
    frame = _MOCK_CLUSTER_ANSWER[:4] + struct.pack(">h", 0) + b"\x05\x00\x12"
    with pytest.raises(ProtocolError, match="ApiVersionsResponse v4"):
        _decode(ApiKey.API_VERSIONS, 4, frame)


def test_bytes_after_a_complete_body_are_ignored() -> None:
    # As in Java; librdkafka's mock cluster appends one to flexible Metadata responses.
    entity = _deep_entity(ApiKey.METADATA, 12)
    assert _decode(ApiKey.METADATA, 12, encode_frame(entity) + b"\x00") == entity
