"""CreateTopics: create each topic with leaders spread round-robin over the brokers."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.protocol.topics import topic_name_problem
from asyncproducer.testing.fake.handlers import Request, build, response_module

_INVALID_TOPIC_EXCEPTION = 17
_TOPIC_ALREADY_EXISTS = 36
_INVALID_PARTITIONS = 37
_INVALID_REQUEST = 42


def handle(request: Request) -> Any:
    module = response_module(request.api_key, request.version)
    results = tuple(_create(request, module, topic) for topic in request.body.topics)
    return build(module.CreateTopicsResponse, throttle_time=datetime.timedelta(0), topics=results)


def _create(request: Request, module: Any, topic: Any) -> Any:
    cluster = request.cluster
    name = str(topic.name)
    # -1 means "the broker's default" (KIP-464, CreateTopics v4+).
    partitions = int(topic.num_partitions)
    if partitions == -1:
        partitions = cluster.default_partitions
    code, message = request.forced_error, None
    if code:
        message = "injected by FakeCluster.fail_next"
    elif (problem := topic_name_problem(name)) is not None:
        code, message = _INVALID_TOPIC_EXCEPTION, problem
    elif name in cluster.topics:
        code, message = _TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists"
    elif partitions < 1:
        code, message = _INVALID_PARTITIONS, f"num_partitions {partitions} must be >= 1"
    elif topic.assignments:
        code, message = _INVALID_REQUEST, "the fake cluster does not take replica assignments"
    elif not request.body.validate_only:
        cluster.create_topic(name, partitions)
    created = cluster.topics.get(name)
    return build(
        module.CreatableTopicResult,
        name=name,
        topic_id=created.topic_id if created is not None and not code else None,
        error_code=ErrorCode(code),
        error_message=message,
        topic_config_error_code=0,
        num_partitions=partitions if not code else -1,
        replication_factor=min(3, len(cluster.broker_ids)) if not code else -1,
        configs=(),
    )
