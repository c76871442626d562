"""A one-broker stand-in whose Produce answers a test scripts (error codes, then success).

Just enough Kafka for the producer: ApiVersions, Metadata (one topic, every partition led
by this broker), InitProducerId, and Produce answered from ``script`` — a list of error
codes consumed one per Produce request (0 or an exhausted script means success, with
offsets counted per partition). The multi-broker fake cluster with the full fault menu is
``asyncproducer.testing`` (issue 4); this keeps retry tests independent of it.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from typing import Any

from kio.index import load_payload_module
from kio.schema.errors import ErrorCode
from kio.static.constants import EntityType

from asyncproducer.protocol.versions import ApiKey
from tests.network.servers import ServerConnection, api_versions_body


class ScriptedBroker:
    def __init__(
        self,
        topic: str,
        partitions: int,
        script: list[int],
        log_append_time_ms: int | None = None,
        *,
        leaderless: bool = False,
    ) -> None:
        self.leaderless = leaderless
        """Report every partition without a leader (an election that never ends)."""
        self.log_append_time_ms = log_append_time_ms
        """Answer as a topic with message.timestamp.type=LogAppendTime (Tansu ignores it)."""
        self.topic = topic
        self.partitions = partitions
        self.script = list(script)
        self.port = 0
        self.requests: dict[int, int] = defaultdict(int)
        self._offsets: dict[int, int] = defaultdict(int)

    async def handle(self, conn: ServerConnection) -> None:
        while True:
            api_key, version, correlation_id = await conn.read_request()
            self.requests[api_key] += 1
            if api_key == ApiKey.API_VERSIONS:
                body = api_versions_body(version)
            elif api_key == ApiKey.METADATA:
                body = self._metadata(version)
            elif api_key == ApiKey.INIT_PRODUCER_ID:
                body = _response(api_key, version, "InitProducerIdResponse")(
                    throttle_time=datetime.timedelta(0),
                    error_code=ErrorCode.none,
                    producer_id=1000,
                    producer_epoch=0,
                )
            elif api_key == ApiKey.PRODUCE:
                body = self._produce(version)
            else:
                raise AssertionError(f"unexpected API {api_key}")
            await conn.respond(correlation_id, api_key, version, body)

    def _metadata(self, version: int) -> Any:
        module = load_payload_module(ApiKey.METADATA, version, EntityType.response)
        partitions = tuple(
            module.MetadataResponsePartition(
                error_code=ErrorCode.none,
                partition_index=p,
                leader_id=-1 if self.leaderless else 1,
                leader_epoch=0,
                replica_nodes=(1,),
                isr_nodes=(1,),
                offline_replicas=(),
            )
            for p in range(self.partitions)
        )
        return module.MetadataResponse(
            throttle_time=datetime.timedelta(0),
            brokers=(module.MetadataResponseBroker(node_id=1, host="127.0.0.1", port=self.port),),
            cluster_id="scripted",
            controller_id=1,
            topics=(
                module.MetadataResponseTopic(
                    error_code=ErrorCode.none,
                    name=self.topic,
                    topic_id=None,
                    is_internal=False,
                    partitions=partitions,
                ),
            ),
        )

    def _produce(self, version: int) -> Any:
        module = load_payload_module(ApiKey.PRODUCE, version, EntityType.response)
        code = self.script.pop(0) if self.script else 0
        # Every Produce in these tests carries partition 0 only.
        offset = self._offsets[0]
        if code == 0:
            self._offsets[0] += 1_000  # far more than a batch holds: offsets stay unique
        partition = module.PartitionProduceResponse(
            index=0,
            error_code=ErrorCode(code),
            base_offset=offset if code == 0 else -1,
            log_append_time=None
            if self.log_append_time_ms is None
            else datetime.datetime.fromtimestamp(self.log_append_time_ms / 1000, datetime.UTC),
            log_start_offset=0,
            record_errors=(),
            error_message=None if code == 0 else f"scripted error {code}",
        )
        return module.ProduceResponse(
            responses=(
                module.TopicProduceResponse(name=self.topic, partition_responses=(partition,)),
            ),
            throttle_time=datetime.timedelta(0),
        )


def _response(api: ApiKey, version: int, name: str) -> Any:
    return getattr(load_payload_module(api, version, EntityType.response), name)
