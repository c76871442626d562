"""docs/schema-registry.md's recipe on a real broker: confluent-kafka's AsyncAvroSerializer
(over its AsyncSchemaRegistryClient, talking to tests/schema_registry_stub.py) as the
producer's asynchronous key and value serializers, on asyncio, uvloop and trio, and the
records read back with librdkafka and decoded: magic byte 0, the schema id the registry
gave, the Avro body (decoded with fastavro, and with confluent-kafka's AsyncAvroDeserializer,
which fetches the schema by id) equal to what was sent.

One test per broker: the three loops produce to one topic, read once (CI time).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import anyio
import fastavro
import pytest
from confluent_kafka.schema_registry import AsyncSchemaRegistryClient
from confluent_kafka.schema_registry.avro import AsyncAvroDeserializer, AsyncAvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from asyncproducer import Producer
from tests.integration.independent import consume, create_topic
from tests.schema_registry_stub import SchemaRegistryStub

ORDER_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "test",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "customer", "type": "string"},
            {"name": "total", "type": "double"},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
)
KEY_SCHEMA = json.dumps({"type": "string"})
LOOPS: list[tuple[str, dict[str, Any]]] = [
    ("asyncio", {}),
    ("asyncio", {"use_uvloop": True}),
    ("trio", {}),
]
PER_LOOP = 4


class SchemaRegistrySerializer:
    """The recipe's adapter (docs/schema-registry.md): a Java-style async serializer over
    one of confluent-kafka's async ones."""

    def __init__(self, serializer: Any, field: MessageField) -> None:
        self._serializer = serializer
        self._field = field

    async def serialize(self, topic: str, headers: Any, data: object) -> bytes | None:
        result: bytes | None = await self._serializer(
            data, SerializationContext(topic, self._field, headers)
        )
        return result


@pytest.fixture(scope="module")
def registry() -> Iterator[SchemaRegistryStub]:
    with SchemaRegistryStub() as stand_in:
        yield stand_in


def orders(loop: int) -> list[dict[str, Any]]:
    return [
        {
            "id": loop * 100 + n,
            "customer": f"customer-{n % 3}",
            "total": n * 2.5,
            "note": None if n % 2 else f"loop {loop}",
        }
        for n in range(PER_LOOP)
    ]


async def produce(bootstrap_servers: str, registry_url: str, topic: str, loop: int) -> None:
    conf = {"subject.name.strategy.type": "TOPIC"}
    async with AsyncSchemaRegistryClient({"url": registry_url, "timeout": 10}) as client:
        key = await AsyncAvroSerializer(client, KEY_SCHEMA, conf=conf)
        value = await AsyncAvroSerializer(client, ORDER_SCHEMA, conf=conf)
        async with Producer(
            bootstrap_servers,
            key_serializer=SchemaRegistrySerializer(key, MessageField.KEY),
            value_serializer=SchemaRegistrySerializer(value, MessageField.VALUE),
            linger_ms=5,
        ) as producer:
            with anyio.fail_after(30):
                futures = [
                    await producer.send(topic, order, key=order["customer"])
                    for order in orders(loop)
                ]
                for future in futures:
                    await future


def decoded(body: bytes, schema: Any) -> Any:
    """The Avro binary ``body``, read with fastavro."""
    return fastavro.schemaless_reader(io.BytesIO(body), schema)


def framed(data: bytes) -> tuple[int, int, bytes]:
    """Confluent's wire format: (magic byte, schema id, Avro body)."""
    return data[0], int.from_bytes(data[1:5], "big"), data[5:]


async def deserialize(registry_url: str, topic: str, value: bytes) -> Any:
    """With a client of its own, whose cache is empty: it fetches the schema by id."""
    async with AsyncSchemaRegistryClient({"url": registry_url, "timeout": 10}) as client:
        deserializer = await AsyncAvroDeserializer(client)
        return await deserializer(value, SerializationContext(topic, MessageField.VALUE))


def test_avro_records_through_the_registry_are_read_back_by_librdkafka(
    kafka_bootstrap_servers: str, topic_name: str, registry: SchemaRegistryStub
) -> None:
    create_topic(kafka_bootstrap_servers, topic_name, 2)
    for number, (backend, options) in enumerate(LOOPS):
        anyio.run(
            produce,
            kafka_bootstrap_servers,
            registry.url,
            topic_name,
            number,
            backend=backend,
            backend_options=options,
        )
    consumed = consume(kafka_bootstrap_servers, topic_name, [0, 1], expected=len(LOOPS) * PER_LOOP)

    # Each subject was registered by the registry, and given one id.
    (value_id,) = registry.state.subjects[f"{topic_name}-value"]
    (key_id,) = registry.state.subjects[f"{topic_name}-key"]
    value_schema = fastavro.parse_schema(json.loads(registry.state.schemas[value_id - 1]["schema"]))
    key_schema = fastavro.parse_schema(json.loads(registry.state.schemas[key_id - 1]["schema"]))

    received = []
    for record in consumed:
        assert record.key is not None
        assert record.value is not None
        key_magic, key_schema_id, key_body = framed(record.key)
        magic, schema_id, body = framed(record.value)
        assert (key_magic, key_schema_id, magic, schema_id) == (0, key_id, 0, value_id)
        order = decoded(body, value_schema)
        assert decoded(key_body, key_schema) == order["customer"]
        received.append(order)
    sent = [order for number in range(len(LOOPS)) for order in orders(number)]
    assert sorted(received, key=lambda o: o["id"]) == sent

    # confluent-kafka's own deserializer agrees, fetching the schema by its id.
    first = consumed[0].value
    assert first is not None
    by_confluent = anyio.run(deserialize, registry.url, topic_name, first)
    assert by_confluent == decoded(framed(first)[2], value_schema)
    assert ("GET", f"/schemas/ids/{value_id}") in registry.requests
