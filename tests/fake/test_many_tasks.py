"""Many tasks sending at once: the yield a send() takes behind a full batch (to let the
sender run) is taken once per full batch, not by every task that finds it full."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.testing.fake import FakeCluster

pytestmark = pytest.mark.anyio


class Yields:
    """Counts a producer's yields to the event loop (its ``_checkpoint``)."""

    def __init__(self, producer: Producer) -> None:
        self.count = 0
        checkpoint = producer._checkpoint

        async def counted() -> None:
            self.count += 1
            await checkpoint()

        producer._checkpoint = counted


TASKS = 1_000


async def test_tasks_that_find_a_full_batch_yield_once_for_it() -> None:
    with anyio.fail_after(20):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1)
            async with Producer(
                cluster.bootstrap_servers, linger_ms=60_000, batch_size=1_000
            ) as producer:
                await producer.partitions_for("t")
                yields = Yields(producer)
                futures: list[Any] = []

                async def one() -> None:
                    futures.append(await producer.send("t", b"x" * 90))

                async with anyio.create_task_group() as tasks:
                    for _ in range(TASKS):
                        tasks.start_soon(one)
                await producer.flush()
                offsets = sorted([(await future).offset for future in futures])
            assert offsets == list(range(TASKS))
            batches = len(cluster.batches("t", 0))
            assert batches > 50  # ten records a batch
            # Before, every task that found the batch full while the first one yielded
            # yielded too: nearly one per task.
            assert yields.count <= batches
