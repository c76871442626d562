"""``partitions_for(topic)``: Java's ``PartitionInfo`` per partition, in order, with broker
nodes for the leader and the replicas (a replica whose broker is down: ``Node(id, "", -1)``,
as Java)."""

from __future__ import annotations

import pytest

from asyncproducer import Node, PartitionInfo, Producer
from asyncproducer.testing import FakeCluster, MockProducer

pytestmark = pytest.mark.anyio


def _node(cluster: FakeCluster, broker: int) -> Node:
    host, port = cluster._state.address_of(broker)
    return Node(broker, host, port)


async def test_every_partition_with_its_leader_and_replicas() -> None:
    async with FakeCluster(brokers=3) as cluster:
        cluster.create_topic("orders", 4, leaders=[0, 1, 2, 0])
        async with Producer(cluster.bootstrap_servers) as producer:
            infos = await producer.partitions_for("orders")
        assert [p.partition for p in infos] == [0, 1, 2, 3]
        for info, leader in zip(infos, [0, 1, 2, 0], strict=True):
            assert isinstance(info, PartitionInfo)
            assert info.topic == "orders"
            assert info.leader == _node(cluster, leader)
            # The fake lists the leader first, then the other brokers; all are in sync.
            assert info.replicas[0] == info.leader
            assert {n.id for n in info.replicas} == {0, 1, 2}
            assert info.in_sync_replicas == info.replicas
            assert info.offline_replicas == ()


async def test_a_stopped_broker_is_an_offline_replica_and_no_leader() -> None:
    async with FakeCluster(brokers=3) as cluster:
        cluster.create_topic("orders", 2, leaders=[0, 2])
        await cluster.stop_broker(2)
        async with Producer(cluster.bootstrap_servers) as producer:
            first, second = await producer.partitions_for("orders")
        assert first.leader == _node(cluster, 0)
        down = Node(2, "", -1)  # not among the brokers the metadata lists
        assert second.leader is None
        assert down in second.replicas
        assert down not in second.in_sync_replicas
        assert second.offline_replicas == (down,)
        assert Node(2, "", -1) in first.offline_replicas


async def test_the_mock_producer_answers_in_the_same_shape() -> None:
    async with MockProducer(partitions={"orders": 2}) as producer:
        infos = await producer.partitions_for("orders")
    assert [(p.partition, p.leader and p.leader.id) for p in infos] == [(0, 0), (1, 0)]
    assert all(p.replicas == (p.leader,) == p.in_sync_replicas for p in infos)
