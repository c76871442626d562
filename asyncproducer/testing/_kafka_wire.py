"""Blocking admin requests (Metadata, CreateTopics, Fetch) for :class:`KafkaCluster`.

They speak PLAINTEXT only, so the cluster sends them to each node's INTERNAL listener,
whatever security its client listener has.

Synchronous on purpose: the cluster is usable from any async backend, or none, and these
run once per start or topic. They use the project's own protocol layer, pinned to versions
inside Kafka 4.x's floor (KIP-896), so no ApiVersions round trip is needed.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from typing import Any

from kio.schema.create_topics.v7.request import CreatableTopicConfig
from kio.static.protocol import RequestPayload

from asyncproducer.errors import KafkaConnectionError
from asyncproducer.protocol.framing import FrameDecoder, encode_request
from asyncproducer.protocol.messages import (
    create_topics_request,
    fetch_request,
    metadata_request,
    response_decoder,
)
from asyncproducer.protocol.versions import ApiKey

__all__ = [
    "TopicLayout",
    "accepts",
    "create_topic",
    "describe_topic",
    "live_broker_ids",
    "serves",
]

_METADATA_VERSION = 12
_FETCH_VERSION = 12  # the last that names topics (v13 uses topic ids)
_CREATE_TOPICS_VERSION = 7  # the CreatableTopicConfig import above is v7's
_CLIENT_ID = "asyncproducer-kafkacluster"

# partition -> (leader id, ISR ids); leader -1 while there is none
TopicLayout = dict[int, tuple[int, tuple[int, ...]]]


def _call(
    host: str, port: int, payload: RequestPayload, api: ApiKey, version: int, timeout: float
) -> Any:
    """Send one request and return the decoded response; ``OSError`` when unreachable."""
    decoder = FrameDecoder()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(encode_request(payload, correlation_id=1, client_id=_CLIENT_ID))
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionResetError(f"{host}:{port} closed the connection")
            frames = decoder.feed(data)
            if frames:
                return response_decoder(api, version)(memoryview(frames[0]))


def _metadata(host: str, port: int, topic: str | None, timeout: float) -> Any:
    request = metadata_request(
        _METADATA_VERSION, None if topic is None else [topic], allow_auto_topic_creation=False
    )
    return _call(host, port, request, ApiKey.METADATA, _METADATA_VERSION, timeout)


def accepts(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds (a listener of any protocol)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def live_broker_ids(host: str, port: int, timeout: float = 2.0) -> set[int] | None:
    """The broker ids the node at ``host:port`` lists, or ``None`` if it does not answer."""
    try:
        response = _metadata(host, port, None, timeout)
    except (OSError, KafkaConnectionError):
        return None
    return {int(broker.node_id) for broker in response.brokers}


def describe_topic(host: str, port: int, topic: str, timeout: float = 2.0) -> TopicLayout | None:
    """Leaders and ISRs of ``topic`` as the node sees them; ``None`` if unknown/unreachable."""
    try:
        response = _metadata(host, port, topic, timeout)
    except (OSError, KafkaConnectionError):
        return None
    for entry in response.topics:
        if entry.name == topic and int(entry.error_code) == 0:
            return {
                int(p.partition_index): (int(p.leader_id), tuple(int(n) for n in p.isr_nodes))
                for p in entry.partitions
            }
    return None


def serves(host: str, port: int, topic: str, partitions: list[int], timeout: float = 2.0) -> bool:
    """Whether the node at ``host:port`` answers a Fetch for each of ``partitions`` (from
    offset 0, returning at once) without an error: it acts as their leader."""
    request = fetch_request(_FETCH_VERSION, {topic: dict.fromkeys(partitions, 0)}, max_wait_ms=0)
    try:
        response = _call(host, port, request, ApiKey.FETCH, _FETCH_VERSION, timeout)
    except (OSError, KafkaConnectionError):
        return False
    answered = {
        int(p.partition_index): int(p.error_code)
        for entry in response.responses
        for p in entry.partitions
    }
    return all(answered.get(partition) == 0 for partition in partitions)


def create_topic(
    host: str,
    port: int,
    name: str,
    *,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, str],
    timeout: float,
) -> tuple[int, str]:
    """CreateTopics through the node at ``host:port`` (Kafka forwards it to the controller).

    Returns the topic's ``(error_code, error_message)``; 0 is success.
    """
    request: Any = create_topics_request(
        _CREATE_TOPICS_VERSION,
        [(name, partitions, replication_factor)],
        timeout_ms=int(timeout * 1000),
    )
    # create_topics_request has no configs argument; the entities are frozen dataclasses.
    config_entries = tuple(
        CreatableTopicConfig(name=key, value=value) for key, value in configs.items()
    )
    topics = tuple(dataclasses.replace(t, configs=config_entries) for t in request.topics)
    request = dataclasses.replace(request, topics=topics)
    response = _call(
        host, port, request, ApiKey.CREATE_TOPICS, _CREATE_TOPICS_VERSION, timeout + 5.0
    )
    result = response.topics[0]
    return int(result.error_code), str(result.error_message or "")
