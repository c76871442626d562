"""A Java client ``.properties`` file configures a working producer: Java's built-in
class names, and Python plugins by dotted path (``module:Name`` and ``module.Name``),
instantiated and configured as Java does."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncproducer import Producer
from asyncproducer.errors import ConfigError
from asyncproducer.partitioners import RoundRobinPartitioner
from asyncproducer.testing import FakeCluster
from tests.plugins import Counting, UpperSerializer

pytestmark = pytest.mark.anyio

PROPERTIES = """\
# a Java client's producer.properties
bootstrap.servers={bootstrap}
acks=all
linger.ms=0
key.serializer=org.apache.kafka.common.serialization.StringSerializer
value.serializer=tests.plugins:UpperSerializer
partitioner.class=tests.plugins.LastPartition
interceptor.classes=tests.plugins:Counting
"""


async def test_a_properties_file_configures_a_working_producer(tmp_path: Path) -> None:
    UpperSerializer.configured.clear()
    Counting.sent.clear()
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("orders", 3)
        bootstrap = cluster.bootstrap_servers
        path = tmp_path / "producer.properties"
        path.write_text(PROPERTIES.format(bootstrap=bootstrap))
        async with Producer.from_properties(path) as producer:
            metadata = await producer.send_and_wait("orders", "paid", key="customer-42")
        assert metadata.partition == 2  # the last of 3: LastPartition
        [record] = cluster.records("orders", 2)
        assert (record.key, record.value) == (b"customer-42", b"PAID")
    [(configs, is_key)] = UpperSerializer.configured  # the value serializer, once
    assert is_key is False
    assert configs["bootstrap_servers"] == (bootstrap,)
    assert Counting.sent == ["orders"]  # the interceptor class, instantiated
    assert Counting.acknowledged[-1] == 0


async def test_the_text_itself_and_javas_built_in_partitioners() -> None:
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 2)
        producer = Producer.from_properties(
            f"bootstrap.servers={cluster.bootstrap_servers}\n"
            "partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner\n"
            "value.serializer=org.apache.kafka.common.serialization.ByteArraySerializer\n"
        )
        assert isinstance(producer._partitioner, RoundRobinPartitioner)
        async with producer:
            partitions = [(await producer.send_and_wait("t", b"v")).partition for _ in range(4)]
        assert sorted(partitions) == [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("value.serializer=tests.plugins:Missing", "tests.plugins' has no 'Missing'"),
        ("value.serializer=no_such_module.Thing", "cannot import 'no_such_module'"),
        (
            "key.serializer=org.apache.kafka.common.serialization.LongSerializer",
            "a Java class with no equivalent here",
        ),
    ],
)
def test_a_name_that_cannot_be_loaded_says_which_setting_and_why(line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Producer.from_properties(f"bootstrap.servers=localhost:9092\n{line}\n")
