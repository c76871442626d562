"""``python -m asyncproducer demo``: start a local broker, produce one batch, read it back.

A placeholder for the real command line (it arrives with the producer engine): it shows
the foundation end to end on a fresh machine — an embedded Tansu broker, version
negotiation, metadata, one Produce request, and the records read back by our decoder.
"""

from __future__ import annotations

import argparse
import sys
import time

import anyio

from asyncproducer._cluster import parse_bootstrap_servers
from asyncproducer._connection import ConnectionSettings
from asyncproducer._metadata import MetadataManager
from asyncproducer._pool import ConnectionPool
from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.messages import create_topics_request, fetch_request, produce_request
from asyncproducer.protocol.records import RecordBatchBuilder, decode_batches
from asyncproducer.protocol.versions import ApiKey


async def round_trip(
    bootstrap_servers: str, topic: str, count: int, codec: CompressionType
) -> None:
    async with ConnectionPool(ConnectionSettings(client_id="asyncproducer-demo")) as pool:
        manager = MetadataManager(pool, parse_bootstrap_servers(bootstrap_servers))
        await manager.refresh()
        controller = manager.snapshot.brokers.get(manager.snapshot.controller_id)
        any_broker = controller or next(iter(manager.snapshot.brokers.values()))
        admin = await pool.get(any_broker.address)
        await admin.send(
            create_topics_request(
                admin.versions.version_for(ApiKey.CREATE_TOPICS), [(topic, 3, 1)], timeout_ms=10_000
            )
        )
        info = await manager.wait_for_topic(topic, max_block_ms=10_000)
        leader = manager.snapshot.brokers[info.partitions[0].leader]
        connection = await pool.get(leader.address)

        builder = RecordBatchBuilder(batch_size=1 << 20, compression=codec)
        now = int(time.time() * 1000)
        sent = [
            (f"key-{i}".encode(), f"hello {i}".encode(), (("n", str(i).encode()),))
            for i in range(count)
        ]
        for key, value, headers in sent:
            builder.try_append(now, key, value, headers)
        started = time.perf_counter()
        response = await connection.send(
            produce_request(
                connection.versions.version_for(ApiKey.PRODUCE),
                acks=-1,
                timeout_ms=10_000,
                topic_data={topic: {0: builder.build()}},
            )
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        partition = response.responses[0].partition_responses[0]  # type: ignore[union-attr]
        if partition.error_code != 0:
            raise SystemExit(f"produce failed: {partition.error_code!r}")
        print(
            f"broker {leader.address}: Produce v{connection.versions.version_for(ApiKey.PRODUCE)}, "
            f"{count} records ({codec.name.lower()}) to {topic}-0 at base offset "
            f"{partition.base_offset} in {elapsed_ms:.1f} ms"
        )

        fetched = await connection.send(
            fetch_request(
                connection.versions.version_for(ApiKey.FETCH),
                {topic: {0: int(partition.base_offset)}},
            )
        )
        blob = fetched.responses[0].partitions[0].records or b""  # type: ignore[union-attr]
        received = [
            (record.key, record.value, record.headers)
            for batch in decode_batches(blob)
            for record in batch.records
        ]
        if received[: len(sent)] != sent:
            raise SystemExit(f"read back {received!r}, expected {sent!r}")
        print(f"fetched {len(sent)} records back: keys, values and headers match")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asyncproducer")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="round-trip one batch through a local broker")
    demo.add_argument("--bootstrap-servers", help="use this cluster instead of starting Tansu")
    demo.add_argument("--topic", default="asyncproducer-demo")
    demo.add_argument("--count", type=int, default=10)
    demo.add_argument(
        "--compression", default="zstd", choices=[c.name.lower() for c in CompressionType]
    )
    demo.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    args = parser.parse_args(argv)

    codec = CompressionType.from_name(args.compression)

    def run(bootstrap_servers: str) -> None:
        anyio.run(
            round_trip, bootstrap_servers, args.topic, args.count, codec, backend=args.backend
        )

    if args.bootstrap_servers:
        run(args.bootstrap_servers)
        return 0
    from asyncproducer.testing.tansu import TansuBroker

    with TansuBroker() as broker:
        print(f"started Tansu on {broker.bootstrap_servers}")
        run(broker.bootstrap_servers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
