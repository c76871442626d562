"""Request builders and response decoders over kio's generated message classes (sans-I/O).

kio generates one dataclass per API, version and nesting level from Apache Kafka's JSON
schemas. Fields come and go between versions, so the builders here take plain Python
values and keep only the fields the chosen version has; everything else about a message
(field order, flexible encoding, tagged fields) is kio's.
"""

from __future__ import annotations

import datetime
import functools
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from types import ModuleType
from typing import Any, TypeAlias

import asyncproducer.protocol._kio  # noqa: F401  # before kio: see there

# isort: split
from kio.index import load_payload_module
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader
from kio.static.constants import EntityType
from kio.static.protocol import RequestPayload, ResponsePayload

from asyncproducer.errors import ProtocolError
from asyncproducer.protocol._lenient import read_entity
from asyncproducer.protocol._prescan import ShapeError, prescanner
from asyncproducer.protocol.framing import response_body
from asyncproducer.protocol.requests import SOFTWARE_NAME
from asyncproducer.protocol.versions import ApiKey

ResponseDecoder: TypeAlias = Callable[[memoryview], ResponsePayload]

_UNSUPPORTED_VERSION = 35


@functools.cache
def _module(api: ApiKey, version: int, entity_type: EntityType) -> ModuleType:
    return load_payload_module(int(api), version, entity_type)  # type: ignore[arg-type]


def _build(cls: type[Any], **values: Any) -> Any:
    """Instantiate a kio entity with the values its version has fields for."""
    names = _field_names(cls)
    return cls(**{name: value for name, value in values.items() if name in names})


_field_names_by_class: dict[type[Any], frozenset[str]] = {}


def _field_names(cls: type[Any]) -> frozenset[str]:
    names = _field_names_by_class.get(cls)
    if names is None:
        names = _field_names_by_class[cls] = frozenset(f.name for f in fields(cls))
    return names


def _request_class(api: ApiKey, version: int, name: str) -> type[Any]:
    cls: type[Any] = getattr(_module(api, version, EntityType.request), name)
    return cls


# --------------------------------------------------------------------------- requests


def api_versions_request(version: int, software_version: str) -> RequestPayload:
    cls = _request_class(ApiKey.API_VERSIONS, version, "ApiVersionsRequest")
    built: RequestPayload = _build(
        cls, client_software_name=SOFTWARE_NAME, client_software_version=software_version
    )
    return built


def metadata_request(
    version: int, topics: Iterable[str] | None, *, allow_auto_topic_creation: bool
) -> RequestPayload:
    """Metadata for ``topics``; ``None`` asks for every topic in the cluster."""
    request_topic = _request_class(ApiKey.METADATA, version, "MetadataRequestTopic")
    cls = _request_class(ApiKey.METADATA, version, "MetadataRequest")
    topic_entries = (
        None
        if topics is None
        else tuple(_build(request_topic, name=name, topic_id=None) for name in topics)
    )
    built: RequestPayload = _build(
        cls,
        topics=topic_entries,
        allow_auto_topic_creation=allow_auto_topic_creation,
        include_cluster_authorized_operations=False,
        include_topic_authorized_operations=False,
    )
    return built


def produce_request(
    version: int,
    *,
    acks: int,
    timeout_ms: int,
    topic_data: Mapping[str, Mapping[int, bytes]],
    transactional_id: str | None = None,
) -> RequestPayload:
    """One Produce request carrying ``{topic: {partition: record batch bytes}}``."""
    partition_cls = _request_class(ApiKey.PRODUCE, version, "PartitionProduceData")
    topic_cls = _request_class(ApiKey.PRODUCE, version, "TopicProduceData")
    cls = _request_class(ApiKey.PRODUCE, version, "ProduceRequest")
    topics = tuple(
        topic_cls(
            name=topic,
            partition_data=tuple(
                partition_cls(index=partition, records=records)
                for partition, records in partitions.items()
            ),
        )
        for topic, partitions in topic_data.items()
    )
    built: RequestPayload = _build(
        cls,
        transactional_id=transactional_id,
        acks=acks,
        timeout=datetime.timedelta(milliseconds=timeout_ms),
        topic_data=topics,
    )
    return built


def init_producer_id_request(
    version: int,
    *,
    transactional_id: str | None,
    transaction_timeout_ms: int,
    producer_id: int = -1,
    producer_epoch: int = -1,
) -> RequestPayload:
    cls = _request_class(ApiKey.INIT_PRODUCER_ID, version, "InitProducerIdRequest")
    built: RequestPayload = _build(
        cls,
        transactional_id=transactional_id,
        transaction_timeout=datetime.timedelta(milliseconds=transaction_timeout_ms),
        producer_id=producer_id,
        producer_epoch=producer_epoch,
    )
    return built


def find_coordinator_request(version: int, *, key_type: int, key: str) -> RequestPayload:
    """FindCoordinator for one key: ``key_type`` 0 a consumer group, 1 a transactional id
    (v4+ asks for a list of keys; this asks for one)."""
    cls = _request_class(ApiKey.FIND_COORDINATOR, version, "FindCoordinatorRequest")
    built: RequestPayload = _build(cls, key=key, key_type=key_type, coordinator_keys=(key,))
    return built


def coordinator_of(response: Any) -> tuple[int, int, str, int, str | None]:
    """``(error_code, node_id, host, port, error_message)`` of a FindCoordinator response
    for one key, whatever its version (v4+ answers in a list)."""
    found = response.coordinators[0] if hasattr(response, "coordinators") else response
    return (
        int(found.error_code),
        int(found.node_id),
        str(found.host),
        int(found.port),
        found.error_message,
    )


def add_partitions_to_txn_request(
    version: int,
    *,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    partitions: Iterable[tuple[str, int]],
) -> RequestPayload:
    """AddPartitionsToTxn in the client's form (v0-v3): these partitions join the open
    transaction."""
    topic_cls = _request_class(ApiKey.ADD_PARTITIONS_TO_TXN, version, "AddPartitionsToTxnTopic")
    cls = _request_class(ApiKey.ADD_PARTITIONS_TO_TXN, version, "AddPartitionsToTxnRequest")
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    topics = tuple(topic_cls(name=t, partitions=tuple(ps)) for t, ps in by_topic.items())
    built: RequestPayload = _build(
        cls,
        v3_and_below_transactional_id=transactional_id,
        v3_and_below_producer_id=producer_id,
        v3_and_below_producer_epoch=producer_epoch,
        v3_and_below_topics=topics,
    )
    return built


def added_partitions_of(response: Any) -> dict[tuple[str, int], int]:
    """Per partition, the error code of an AddPartitionsToTxn response (v0-v3)."""
    return {
        (str(topic.name), int(result.partition_index)): int(result.partition_error_code)
        for topic in response.results_by_topic_v3_and_below
        for result in topic.results_by_partition
    }


def add_offsets_to_txn_request(
    version: int, *, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str
) -> RequestPayload:
    cls = _request_class(ApiKey.ADD_OFFSETS_TO_TXN, version, "AddOffsetsToTxnRequest")
    built: RequestPayload = _build(
        cls,
        transactional_id=transactional_id,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        group_id=group_id,
    )
    return built


def txn_offset_commit_request(
    version: int,
    *,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    group_id: str,
    generation_id: int,
    member_id: str,
    group_instance_id: str | None,
    offsets: Mapping[tuple[str, int], tuple[int, int, str | None]],
) -> RequestPayload:
    """TxnOffsetCommit: ``offsets`` maps (topic, partition) to (offset, leader epoch or
    -1, metadata); the group's generation, member and instance (KIP-447) go from v3."""
    api = ApiKey.TXN_OFFSET_COMMIT
    partition_cls = _request_class(api, version, "TxnOffsetCommitRequestPartition")
    topic_cls = _request_class(api, version, "TxnOffsetCommitRequestTopic")
    cls = _request_class(api, version, "TxnOffsetCommitRequest")
    by_topic: dict[str, list[Any]] = {}
    for (topic, partition), (offset, leader_epoch, metadata) in offsets.items():
        by_topic.setdefault(topic, []).append(
            _build(
                partition_cls,
                partition_index=partition,
                committed_offset=offset,
                committed_leader_epoch=leader_epoch,
                committed_metadata=metadata,
            )
        )
    built: RequestPayload = _build(
        cls,
        transactional_id=transactional_id,
        group_id=group_id,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        generation_id=generation_id,
        member_id=member_id,
        group_instance_id=group_instance_id,
        topics=tuple(topic_cls(name=t, partitions=tuple(ps)) for t, ps in by_topic.items()),
    )
    return built


def committed_offsets_of(response: Any) -> dict[tuple[str, int], int]:
    """Per partition, the error code of a TxnOffsetCommit response."""
    return {
        (str(topic.name), int(p.partition_index)): int(p.error_code)
        for topic in response.topics
        for p in topic.partitions
    }


def end_txn_request(
    version: int, *, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool
) -> RequestPayload:
    cls = _request_class(ApiKey.END_TXN, version, "EndTxnRequest")
    built: RequestPayload = _build(
        cls,
        transactional_id=transactional_id,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        committed=commit,
    )
    return built


def create_topics_request(
    version: int,
    topics: Sequence[tuple[str, int, int]],
    *,
    timeout_ms: int,
) -> RequestPayload:
    """CreateTopics for ``(name, num_partitions, replication_factor)`` triples.

    The producer never creates topics itself; this exists for the test harness, the demo
    and the fake cluster, which need a broker-independent way to make a topic.
    """
    topic_cls = _request_class(ApiKey.CREATE_TOPICS, version, "CreatableTopic")
    cls = _request_class(ApiKey.CREATE_TOPICS, version, "CreateTopicsRequest")
    entries = tuple(
        _build(
            topic_cls,
            name=name,
            num_partitions=partitions,
            replication_factor=replication,
            assignments=(),
            configs=(),
        )
        for name, partitions, replication in topics
    )
    built: RequestPayload = _build(
        cls,
        topics=entries,
        timeout=datetime.timedelta(milliseconds=timeout_ms),
        validate_only=False,
    )
    return built


def sasl_handshake_request(version: int, mechanism: str) -> RequestPayload:
    cls = _request_class(ApiKey.SASL_HANDSHAKE, version, "SaslHandshakeRequest")
    built: RequestPayload = _build(cls, mechanism=mechanism)
    return built


def sasl_authenticate_request(version: int, auth_bytes: bytes) -> RequestPayload:
    cls = _request_class(ApiKey.SASL_AUTHENTICATE, version, "SaslAuthenticateRequest")
    built: RequestPayload = _build(cls, auth_bytes=auth_bytes)
    return built


def fetch_request(
    version: int,
    partitions: Mapping[str, Mapping[int, int]],
    *,
    max_wait_ms: int = 500,
    max_bytes: int = 64 * 1024 * 1024,
) -> RequestPayload:
    """Fetch ``{topic: {partition: fetch offset}}`` (read-committed is not needed here).

    Not used by the producer: the demo and the test harness read back what they wrote.
    ``max_wait_ms`` is not 0 because some brokers (Tansu) answer a zero-wait Fetch with no
    data at all; with ``min_bytes=1`` a broker answers as soon as data is there.
    """
    partition_cls = _request_class(ApiKey.FETCH, version, "FetchPartition")
    topic_cls = _request_class(ApiKey.FETCH, version, "FetchTopic")
    cls = _request_class(ApiKey.FETCH, version, "FetchRequest")
    topics = tuple(
        topic_cls(
            topic=topic,
            partitions=tuple(
                _build(
                    partition_cls,
                    partition=partition,
                    fetch_offset=offset,
                    partition_max_bytes=max_bytes,
                )
                for partition, offset in offsets.items()
            ),
        )
        for topic, offsets in partitions.items()
    )
    built: RequestPayload = _build(
        cls,
        max_wait=datetime.timedelta(milliseconds=max_wait_ms),
        min_bytes=1,
        max_bytes=max_bytes,
        topics=topics,
        forgotten_topics_data=(),
    )
    return built


# --------------------------------------------------------------------------- responses


@functools.cache
def response_decoder(api: ApiKey, version: int) -> ResponseDecoder:
    """A function decoding a whole response frame (header and body) of ``api``/``version``.

    kio's native reader does the work; when it refuses a frame, the schema-driven
    ``_lenient`` reader reads it again, skipping unknown tagged fields (KIP-482) and keeping
    unknown error codes as ints. Before either, ``_prescan`` checks the body's shape
    (array counts against the bytes left, nulls the schema forbids). Whatever the bytes,
    the outcome is an entity or a ``ProtocolError``.
    """
    response_cls: type[ResponsePayload] = getattr(
        _module(api, version, EntityType.response), _response_class_name(api)
    )
    read_body = _BodyReader(response_cls, f"{response_cls.__name__} v{version}")
    header_cls = response_cls.__header_schema__
    if api is ApiKey.API_VERSIONS and version > 0:
        v0_cls = _module(api, 0, EntityType.response).ApiVersionsResponse
        return _ApiVersionsDecoder(header_cls, read_body, v0_cls)

    def decode(frame: memoryview) -> ResponsePayload:
        return read_body(_response_body(frame, header_cls))

    return decode


class _BodyReader:
    """Reads a whole response body of one class: shape checked, then read natively, else
    leniently."""

    __slots__ = ("_cls", "_name", "_native", "_prescan")

    def __init__(self, cls: type[Any], name: str, *, exact: bool = False) -> None:
        self._cls = cls
        self._prescan = prescanner(cls, exact=exact)
        self._native = entity_reader(cls)
        self._name = name

    def __call__(self, body: memoryview) -> ResponsePayload:
        # Before kio sees the body: its reader trusts array counts (and reserves memory for
        # them, aborting the process when that fails) and returns None for null arrays the
        # schema forbids. See _prescan.
        try:
            self._prescan(body)
        except ShapeError as exc:
            raise ProtocolError(f"cannot decode {self._name}: {exc}") from None
        try:
            value, _ = self._native(body, 0)
        except Exception:  # kio raises several types; the lenient reader says which field
            value, _ = self._read_leniently(body)
        # Bytes after the body are ignored, as in Java (see _prescan).
        response: ResponsePayload = value
        return response

    def _read_leniently(self, body: memoryview) -> tuple[Any, int]:
        try:
            return read_entity(self._cls, body)
        except ProtocolError as exc:
            raise ProtocolError(f"cannot decode {self._name}: {exc}") from None


def _response_body(frame: memoryview, header_cls: type[Any]) -> memoryview:
    try:
        return response_body(frame, header_cls)
    except ProtocolError:  # an unknown tagged field in header v1, say
        try:
            _, end = read_entity(header_cls, frame)
        except ProtocolError as exc:
            raise ProtocolError(f"cannot decode response header: {exc}") from None
        return frame[end:]


class _ApiVersionsDecoder:
    """ApiVersions v1+: parsed at the requested version, else as v0, as Java does.

    KIP-511: a broker that does not support our ApiVersions version answers in the v0
    format with UNSUPPORTED_VERSION, so the v0 fallback is the normal case for old
    brokers. Some brokers (librdkafka's mock cluster) answer UNSUPPORTED_VERSION with a
    body that is neither; that is taken as "rejected, ranges unknown" (a v0 response with
    the error and no ranges), after which negotiation retries with v0, as Java would.
    """

    __slots__ = ("_header_cls", "_read", "_read_v0", "_rejected")

    def __init__(self, header_cls: type[Any], read: _BodyReader, v0_cls: type[Any]) -> None:
        self._header_cls = header_cls
        self._read = read
        # A reinterpretation, so it must fit exactly: with bytes left over, nearly any
        # short body would read as a v0 answer listing no APIs.
        self._read_v0 = _BodyReader(v0_cls, f"{v0_cls.__name__} v0", exact=True)
        self._rejected: ResponsePayload = v0_cls(
            error_code=ErrorCode.unsupported_version, api_keys=()
        )

    def __call__(self, frame: memoryview) -> ResponsePayload:
        body = _response_body(frame, self._header_cls)
        try:
            return self._read(body)
        except ProtocolError as exc:
            error = exc
        try:
            return self._read_v0(body)
        except ProtocolError:
            pass
        if len(body) >= 2 and struct.unpack_from(">h", body)[0] == _UNSUPPORTED_VERSION:
            return self._rejected
        raise error


def _response_class_name(api: ApiKey) -> str:
    return {
        ApiKey.PRODUCE: "ProduceResponse",
        ApiKey.FETCH: "FetchResponse",
        ApiKey.METADATA: "MetadataResponse",
        ApiKey.CREATE_TOPICS: "CreateTopicsResponse",
        ApiKey.API_VERSIONS: "ApiVersionsResponse",
        ApiKey.INIT_PRODUCER_ID: "InitProducerIdResponse",
        ApiKey.FIND_COORDINATOR: "FindCoordinatorResponse",
        ApiKey.ADD_PARTITIONS_TO_TXN: "AddPartitionsToTxnResponse",
        ApiKey.ADD_OFFSETS_TO_TXN: "AddOffsetsToTxnResponse",
        ApiKey.END_TXN: "EndTxnResponse",
        ApiKey.TXN_OFFSET_COMMIT: "TxnOffsetCommitResponse",
        ApiKey.SASL_HANDSHAKE: "SaslHandshakeResponse",
        ApiKey.SASL_AUTHENTICATE: "SaslAuthenticateResponse",
    }[api]
