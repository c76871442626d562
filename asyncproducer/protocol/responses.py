"""The responses a producer reads on its way to the first acknowledgement, decoded by hand
(sans-I/O): ApiVersions, Metadata, InitProducerId and Produce.

Why not kio, as for the others (:mod:`messages`): kio loads a schema module per API and
version, each a dozen dataclasses, and builds its readers by introspection the first time
a version is used. In a new process that was about 15 ms before the first
acknowledgement, and kio's import 15 ms more (docs/benchmarks.md, "Cold start"). These
four schemas are small and stable, so they are read here directly, into plain classes.

The classes carry the schema's field names (Kafka's JSON schemas, in snake case, as kio
names them), with three differences that make them cheaper to build and simpler to use:
error codes are plain ints; durations and timestamps are ints in milliseconds
(``throttle_time_ms``, ``log_append_time_ms``: -1 when absent, as on the wire); a field
a version does not have holds the value Java's generated class defaults it to, so code
reading a response needs no ``getattr``.

Robustness is :mod:`_reader`'s: whatever the bytes, the outcome is a response or a
``ProtocolError`` naming the field. ``tests/unit/test_response_decoding.py`` decodes the
same random, mutated and hand-made frames with these decoders and with kio's, and checks
they agree.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any, Final

from asyncproducer._value import Value
from asyncproducer.errors import ProtocolError, UnsupportedVersionError
from asyncproducer.protocol._reader import Malformed, Reader
from asyncproducer.protocol.versions import ApiKey

_UNSUPPORTED_VERSION: Final = UnsupportedVersionError.code


# --------------------------------------------------------------------------- ApiVersions


class ApiVersion(Value):
    __slots__ = ("api_key", "max_version", "min_version")

    api_key: int
    min_version: int
    max_version: int

    def __init__(self, api_key: int, min_version: int, max_version: int) -> None:
        self.api_key = api_key
        self.min_version = min_version
        self.max_version = max_version


class SupportedFeatureKey(Value):
    __slots__ = ("max_version", "min_version", "name")

    name: str
    min_version: int
    max_version: int

    def __init__(self, name: str, min_version: int, max_version: int) -> None:
        self.name = name
        self.min_version = min_version
        self.max_version = max_version


class FinalizedFeatureKey(Value):
    __slots__ = ("max_version_level", "min_version_level", "name")

    name: str
    max_version_level: int
    min_version_level: int

    def __init__(self, name: str, max_version_level: int, min_version_level: int) -> None:
        self.name = name
        self.max_version_level = max_version_level
        self.min_version_level = min_version_level


class ApiVersionsResponse(Value):
    """``version``: the layout it was read in (0 for a broker's v0-format rejection)."""

    __slots__ = (
        "api_keys",
        "error_code",
        "finalized_features",
        "finalized_features_epoch",
        "supported_features",
        "throttle_time_ms",
        "version",
        "zk_migration_ready",
    )

    version: int
    error_code: int
    api_keys: tuple[ApiVersion, ...]
    throttle_time_ms: int
    supported_features: tuple[SupportedFeatureKey, ...]
    finalized_features_epoch: int
    finalized_features: tuple[FinalizedFeatureKey, ...]
    zk_migration_ready: bool

    def __init__(self, version: int, error_code: int, api_keys: tuple[ApiVersion, ...]) -> None:
        self.version = version
        self.error_code = error_code
        self.api_keys = api_keys
        self.throttle_time_ms = 0
        self.supported_features = ()
        self.finalized_features_epoch = -1
        self.finalized_features = ()
        self.zk_migration_ready = False


_API_VERSION: Final = struct.Struct(">hhh")
_FEATURE_RANGE: Final = struct.Struct(">hh")


def _api_version(reader: Reader) -> ApiVersion:
    entry = ApiVersion(*reader.fixed(_API_VERSION, "api_key"))
    if reader.flexible:
        reader.tags()
    return entry


def _supported_feature(reader: Reader) -> SupportedFeatureKey:
    name = reader.string("name")
    entry = SupportedFeatureKey(name, *reader.fixed(_FEATURE_RANGE, "min_version"))
    reader.tags()
    return entry


def _finalized_feature(reader: Reader) -> FinalizedFeatureKey:
    name = reader.string("name")
    entry = FinalizedFeatureKey(name, *reader.fixed(_FEATURE_RANGE, "max_version_level"))
    reader.tags()
    return entry


def _read_api_versions(reader: Reader, version: int) -> ApiVersionsResponse:
    error_code = reader.int16("error_code")
    api_keys = reader.array("api_keys", _api_version, 7 if reader.flexible else 6)
    response = ApiVersionsResponse(version, error_code, api_keys)
    if version >= 1:
        response.throttle_time_ms = reader.int32("throttle_time")
    if reader.flexible:

        def supported(r: Reader) -> None:
            response.supported_features = r.array("", _supported_feature, 6)

        def epoch(r: Reader) -> None:
            response.finalized_features_epoch = r.int64("")

        def finalized(r: Reader) -> None:
            response.finalized_features = r.array("", _finalized_feature, 6)

        def zk_ready(r: Reader) -> None:
            response.zk_migration_ready = r.boolean("")

        reader.tags(
            {
                0: ("supported_features", supported),
                1: ("finalized_features_epoch", epoch),
                2: ("finalized_features", finalized),
                3: ("zk_migration_ready", zk_ready),
            }
        )
    return response


# --------------------------------------------------------------------------- Metadata


class MetadataResponseBroker(Value):
    __slots__ = ("host", "node_id", "port", "rack")

    node_id: int
    host: str
    port: int
    rack: str | None

    def __init__(self, node_id: int, host: str, port: int, rack: str | None) -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        self.rack = rack


class MetadataResponsePartition(Value):
    __slots__ = (
        "error_code",
        "isr_nodes",
        "leader_epoch",
        "leader_id",
        "offline_replicas",
        "partition_index",
        "replica_nodes",
    )

    error_code: int
    partition_index: int
    leader_id: int
    leader_epoch: int
    replica_nodes: tuple[int, ...]
    isr_nodes: tuple[int, ...]
    offline_replicas: tuple[int, ...]

    def __init__(
        self,
        error_code: int,
        partition_index: int,
        leader_id: int,
        leader_epoch: int,
        replica_nodes: tuple[int, ...],
        isr_nodes: tuple[int, ...],
        offline_replicas: tuple[int, ...],
    ) -> None:
        self.error_code = error_code
        self.partition_index = partition_index
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.replica_nodes = replica_nodes
        self.isr_nodes = isr_nodes
        self.offline_replicas = offline_replicas


class MetadataResponseTopic(Value):
    """``topic_id``: the 16 bytes of the topic's UUID (v10+; all zero when unknown)."""

    __slots__ = (
        "error_code",
        "is_internal",
        "name",
        "partitions",
        "topic_authorized_operations",
        "topic_id",
    )

    error_code: int
    name: str | None
    topic_id: bytes
    is_internal: bool
    partitions: tuple[MetadataResponsePartition, ...]
    topic_authorized_operations: int

    def __init__(
        self,
        error_code: int,
        name: str | None,
        topic_id: bytes,
        is_internal: bool,
        partitions: tuple[MetadataResponsePartition, ...],
        topic_authorized_operations: int,
    ) -> None:
        self.error_code = error_code
        self.name = name
        self.topic_id = topic_id
        self.is_internal = is_internal
        self.partitions = partitions
        self.topic_authorized_operations = topic_authorized_operations


class MetadataResponse(Value):
    __slots__ = (
        "brokers",
        "cluster_authorized_operations",
        "cluster_id",
        "controller_id",
        "throttle_time_ms",
        "topics",
    )

    throttle_time_ms: int
    brokers: tuple[MetadataResponseBroker, ...]
    cluster_id: str | None
    controller_id: int
    topics: tuple[MetadataResponseTopic, ...]
    cluster_authorized_operations: int

    def __init__(
        self,
        throttle_time_ms: int,
        brokers: tuple[MetadataResponseBroker, ...],
        cluster_id: str | None,
        controller_id: int,
        topics: tuple[MetadataResponseTopic, ...],
        cluster_authorized_operations: int,
    ) -> None:
        self.throttle_time_ms = throttle_time_ms
        self.brokers = brokers
        self.cluster_id = cluster_id
        self.controller_id = controller_id
        self.topics = topics
        self.cluster_authorized_operations = cluster_authorized_operations


_NO_TOPIC_ID: Final = bytes(16)
_AUTHORIZED_OPERATIONS_UNKNOWN: Final = -(2**31)  # Java's default for the field
_PARTITION_HEAD: Final = struct.Struct(">hii")  # error code, index, leader
_PARTITION_HEAD_WITH_EPOCH: Final = struct.Struct(">hiii")


def _broker(reader: Reader) -> MetadataResponseBroker:
    node_id = reader.int32("node_id")
    host = reader.string("host")
    port = reader.int32("port")
    rack = reader.nullable_string("rack")
    if reader.flexible:
        reader.tags()
    return MetadataResponseBroker(node_id, host, port, rack)


class _MetadataReader:
    """The Metadata layout of one version (fields come and go between v4 and v12)."""

    __slots__ = ("flexible", "partition_min_size", "topic_min_size", "version")

    def __init__(self, version: int) -> None:
        self.version = version
        flexible = self.flexible = version >= 9
        # The fewest bytes an item takes, which bounds the count an array can claim.
        tags = 1 if flexible else 0
        name_and_count = 2 if flexible else 6
        topic_id = 16 if version >= 10 else 0
        operations = 4 if version >= 8 else 0
        self.topic_min_size = 3 + name_and_count + topic_id + operations + tags
        head = 14 if version >= 7 else 10
        arrays = (3 if version >= 5 else 2) * (1 if flexible else 4)
        self.partition_min_size = head + arrays + tags

    def response(self, reader: Reader) -> MetadataResponse:
        flexible = self.flexible
        throttle_time_ms = reader.int32("throttle_time")
        brokers = reader.array("brokers", _broker, 11 if flexible else 12)
        cluster_id = reader.nullable_string("cluster_id")
        controller_id = reader.int32("controller_id")
        topics = reader.array("topics", self.topic, self.topic_min_size)
        cluster_operations = _AUTHORIZED_OPERATIONS_UNKNOWN
        if 8 <= self.version <= 10:
            cluster_operations = reader.int32("cluster_authorized_operations")
        if flexible:
            reader.tags()
        return MetadataResponse(
            throttle_time_ms, brokers, cluster_id, controller_id, topics, cluster_operations
        )

    def topic(self, reader: Reader) -> MetadataResponseTopic:
        version = self.version
        error_code = reader.int16("error_code")
        name = reader.nullable_string("name") if version >= 12 else reader.string("name")
        topic_id = reader.raw(16, "topic_id") if version >= 10 else _NO_TOPIC_ID
        is_internal = reader.boolean("is_internal")
        partitions = reader.array("partitions", self.partition, self.partition_min_size)
        operations = _AUTHORIZED_OPERATIONS_UNKNOWN
        if version >= 8:
            operations = reader.int32("topic_authorized_operations")
        if self.flexible:
            reader.tags()
        return MetadataResponseTopic(
            error_code, name, topic_id, is_internal, partitions, operations
        )

    def partition(self, reader: Reader) -> MetadataResponsePartition:
        version = self.version
        if version >= 7:
            error_code, index, leader, epoch = reader.fixed(
                _PARTITION_HEAD_WITH_EPOCH, "error_code"
            )
        else:
            error_code, index, leader = reader.fixed(_PARTITION_HEAD, "error_code")
            epoch = -1
        replicas = reader.int32_array("replica_nodes")
        isr = reader.int32_array("isr_nodes")
        offline = reader.int32_array("offline_replicas") if version >= 5 else ()
        if self.flexible:
            reader.tags()
        return MetadataResponsePartition(error_code, index, leader, epoch, replicas, isr, offline)


# --------------------------------------------------------------------------- InitProducerId


class InitProducerIdResponse(Value):
    __slots__ = ("error_code", "producer_epoch", "producer_id", "throttle_time_ms")

    throttle_time_ms: int
    error_code: int
    producer_id: int
    producer_epoch: int

    def __init__(
        self, throttle_time_ms: int, error_code: int, producer_id: int, producer_epoch: int
    ) -> None:
        self.throttle_time_ms = throttle_time_ms
        self.error_code = error_code
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch


_INIT_PRODUCER_ID: Final = struct.Struct(">ihqh")


def _read_init_producer_id(reader: Reader, version: int) -> InitProducerIdResponse:
    response = InitProducerIdResponse(*reader.fixed(_INIT_PRODUCER_ID, "throttle_time"))
    if reader.flexible:
        reader.tags()
    return response


# --------------------------------------------------------------------------- Produce


class LeaderIdAndEpoch(Value):
    __slots__ = ("leader_epoch", "leader_id")

    leader_id: int
    leader_epoch: int

    def __init__(self, leader_id: int, leader_epoch: int) -> None:
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch


NO_LEADER: Final = LeaderIdAndEpoch(-1, -1)
"""``current_leader`` when the broker names none (and before v10)."""


class BatchIndexAndErrorMessage(Value):
    __slots__ = ("batch_index", "batch_index_error_message")

    batch_index: int
    batch_index_error_message: str | None

    def __init__(self, batch_index: int, batch_index_error_message: str | None) -> None:
        self.batch_index = batch_index
        self.batch_index_error_message = batch_index_error_message


class PartitionProduceResponse(Value):
    __slots__ = (
        "base_offset",
        "current_leader",
        "error_code",
        "error_message",
        "index",
        "log_append_time_ms",
        "log_start_offset",
        "record_errors",
    )

    index: int
    error_code: int
    base_offset: int
    log_append_time_ms: int
    log_start_offset: int
    record_errors: tuple[BatchIndexAndErrorMessage, ...]
    error_message: str | None
    current_leader: LeaderIdAndEpoch

    def __init__(
        self,
        index: int,
        error_code: int,
        base_offset: int,
        log_append_time_ms: int,
        log_start_offset: int = -1,
    ) -> None:
        self.index = index
        self.error_code = error_code
        self.base_offset = base_offset
        self.log_append_time_ms = log_append_time_ms
        self.log_start_offset = log_start_offset
        self.record_errors = ()
        self.error_message = None
        self.current_leader = NO_LEADER


class TopicProduceResponse(Value):
    __slots__ = ("name", "partition_responses")

    name: str
    partition_responses: tuple[PartitionProduceResponse, ...]

    def __init__(
        self, name: str, partition_responses: tuple[PartitionProduceResponse, ...]
    ) -> None:
        self.name = name
        self.partition_responses = partition_responses


NodeEndpoint = MetadataResponseBroker
"""A broker a Produce response (v10+) names as a partition's new leader: the same fields
as a Metadata response's broker."""


class ProduceResponse(Value):
    __slots__ = ("node_endpoints", "responses", "throttle_time_ms")

    responses: tuple[TopicProduceResponse, ...]
    throttle_time_ms: int
    node_endpoints: tuple[NodeEndpoint, ...]

    def __init__(self, responses: tuple[TopicProduceResponse, ...], throttle_time_ms: int) -> None:
        self.responses = responses
        self.throttle_time_ms = throttle_time_ms
        self.node_endpoints = ()


_PARTITION_V3: Final = struct.Struct(">ihqq")  # index, error, base offset, append time
_PARTITION_V5: Final = struct.Struct(">ihqqq")  # ... log start offset
# A partition with nothing more to say, v8+: its fixed fields, then no record errors, a
# null error message and (v9+) no tagged fields. Nearly every partition, every time, so
# it is read with one unpack, the general path taken only when the tail differs.
_PLAIN_PARTITION_V8: Final = struct.Struct(">ihqqq6s")
_PLAIN_TAIL_V8: Final = b"\x00\x00\x00\x00\xff\xff"
_PLAIN_PARTITION_V9: Final = struct.Struct(">ihqqq3s")
_PLAIN_TAIL_V9: Final = b"\x01\x00\x00"


def _batch_error(reader: Reader) -> BatchIndexAndErrorMessage:
    index = reader.int32("batch_index")
    entry = BatchIndexAndErrorMessage(index, reader.nullable_string("batch_index_error_message"))
    if reader.flexible:
        reader.tags()
    return entry


def _leader(reader: Reader) -> LeaderIdAndEpoch:
    leader = LeaderIdAndEpoch(reader.int32("leader_id"), reader.int32("leader_epoch"))
    reader.tags()
    return leader


class _ProduceReader:
    __slots__ = ("_fixed", "_partition_min_size", "_plain", "_plain_tail", "version")

    def __init__(self, version: int) -> None:
        self.version = version
        self._fixed = _PARTITION_V5 if version >= 5 else _PARTITION_V3
        flexible = version >= 9
        self._plain = _PLAIN_PARTITION_V9 if flexible else _PLAIN_PARTITION_V8
        self._plain_tail = _PLAIN_TAIL_V9 if flexible else _PLAIN_TAIL_V8
        self._partition_min_size = self._fixed.size
        if version >= 8:
            self._partition_min_size = self._plain.size

    def response(self, reader: Reader) -> ProduceResponse:
        responses = reader.array("responses", self.topic, 3 if reader.flexible else 6)
        response = ProduceResponse(responses, reader.int32("throttle_time"))
        if reader.flexible:

            def endpoints(r: Reader) -> None:
                response.node_endpoints = r.array("", _broker, 11)

            reader.tags({0: ("node_endpoints", endpoints)} if self.version >= 10 else None)
        return response

    def topic(self, reader: Reader) -> TopicProduceResponse:
        name = reader.string("name")
        partitions = reader.array("partition_responses", self.partition, self._partition_min_size)
        if reader.flexible:
            reader.tags()
        return TopicProduceResponse(name, partitions)

    def partition(self, reader: Reader) -> PartitionProduceResponse:
        if self.version < 8:
            return PartitionProduceResponse(*reader.fixed(self._fixed, "index"))
        start = reader.offset
        *fields, tail = reader.fixed(self._plain, "index")
        if tail == self._plain_tail:
            return PartitionProduceResponse(*fields)
        reader.offset = start
        result = PartitionProduceResponse(*reader.fixed(self._fixed, "index"))
        result.record_errors = reader.array("record_errors", _batch_error, 6)
        result.error_message = reader.nullable_string("error_message")
        if reader.flexible:

            def current_leader(r: Reader) -> None:
                result.current_leader = _leader(r)

            reader.tags({0: ("current_leader", current_leader)} if self.version >= 10 else None)
        return result


# --------------------------------------------------------------------------- decoders

Decoder = Callable[[memoryview], Any]

_FIRST_FLEXIBLE: Final = {
    ApiKey.PRODUCE: 9,
    ApiKey.METADATA: 9,
    ApiKey.API_VERSIONS: 3,
    ApiKey.INIT_PRODUCER_ID: 2,
}
HAND_DECODED: Final = frozenset(_FIRST_FLEXIBLE)
"""The APIs whose responses this module decodes (the others are kio's, in ``messages``)."""


@functools.cache
def decoder_for(api: ApiKey, version: int) -> Decoder:
    """The decoder of a whole response frame of ``api``/``version``: this module's for the
    APIs it decodes, kio's (``messages.response_decoder``) for the others."""
    if api in HAND_DECODED:
        return decoder(api, version)
    from asyncproducer.protocol.messages import response_decoder

    return response_decoder(api, version)


def decoder(api: ApiKey, version: int) -> Decoder:
    """A function decoding a whole response frame (header and body) of ``api``/``version``
    into this module's classes, or raising ``ProtocolError``."""
    name = f"{_NAMES[api]} v{version}"
    read = _body_reader(api, version)
    flexible = version >= _FIRST_FLEXIBLE[api]
    # Response header v1 (a tagged-field section after the correlation id) goes with the
    # flexible versions, except for ApiVersions, whose header is always v0 (KIP-511: a
    # broker must be able to answer a client whose version it does not know).
    tagged_header = flexible and api is not ApiKey.API_VERSIONS

    def decode(frame: memoryview) -> Any:
        return _decode(frame, tagged_header, flexible, read, name)

    if api is ApiKey.API_VERSIONS and version > 0:
        return _api_versions_decoder(decode)
    return decode


_NAMES: Final = {
    ApiKey.PRODUCE: "ProduceResponse",
    ApiKey.METADATA: "MetadataResponse",
    ApiKey.API_VERSIONS: "ApiVersionsResponse",
    ApiKey.INIT_PRODUCER_ID: "InitProducerIdResponse",
}


def _body_reader(api: ApiKey, version: int) -> Callable[[Reader], Any]:
    if api is ApiKey.PRODUCE:
        return _ProduceReader(version).response
    if api is ApiKey.METADATA:
        return _MetadataReader(version).response
    if api is ApiKey.API_VERSIONS:
        return lambda reader: _read_api_versions(reader, version)
    return lambda reader: _read_init_producer_id(reader, version)


def _decode(
    frame: memoryview, tagged_header: bool, flexible: bool, read: Callable[[Reader], Any], name: str
) -> Any:
    reader = Reader(frame, 0, len(frame), flexible=flexible)
    try:
        reader.int32("correlation_id")
        if tagged_header:
            reader.tags()
    except Malformed as exc:
        raise ProtocolError(f"cannot decode response header: {exc}") from None
    try:
        # Bytes after the body are ignored, as in Java (librdkafka's mock cluster appends
        # one to flexible Metadata responses).
        return read(reader)
    except Malformed as exc:
        raise ProtocolError(f"cannot decode {name}: {exc}") from None


def _api_versions_decoder(decode: Decoder) -> Decoder:
    """ApiVersions v1+: read at the requested version, else as v0, as Java does.

    KIP-511: a broker that does not support our ApiVersions version answers in the v0
    format with UNSUPPORTED_VERSION, so the v0 fallback is the normal case for old
    brokers. Some brokers (librdkafka's mock cluster) answer UNSUPPORTED_VERSION with a
    body that is neither; that is taken as "rejected, ranges unknown" (a v0 response with
    the error and no ranges), after which negotiation retries with v0, as Java would.
    """

    def decode_v0(frame: memoryview) -> ApiVersionsResponse:
        reader = Reader(frame, 4, len(frame), flexible=False)
        try:
            response = _read_api_versions(reader, 0)
        except Malformed as exc:
            raise ProtocolError(f"cannot decode ApiVersionsResponse v0: {exc}") from None
        # A reinterpretation, so it must fit exactly: with bytes left over, nearly any
        # short body would read as a v0 answer listing no APIs.
        if reader.left:
            raise ProtocolError(f"ApiVersionsResponse v0 with {reader.left} bytes left over")
        return response

    def decode_any(frame: memoryview) -> ApiVersionsResponse:
        try:
            response: ApiVersionsResponse = decode(frame)
            return response
        except ProtocolError as exc:
            error = exc
        if len(frame) < 4:
            raise error
        try:
            return decode_v0(frame)
        except ProtocolError:
            pass
        if len(frame) >= 6 and struct.unpack_from(">h", frame, 4)[0] == _UNSUPPORTED_VERSION:
            return ApiVersionsResponse(0, _UNSUPPORTED_VERSION, ())
        raise error

    return decode_any
