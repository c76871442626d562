"""Record batch encoding cost: asyncproducer vs aiokafka (C extension) vs kafka-python.

    python -m benchmarks.codec [--records 50000] [--rounds 5] [--value-size 100]

Each round runs every implementation once, interleaved (A B C, A B C, ...), encoding the
same records into batches of ``batch_size`` with the same codec, the way a producer fills
and closes batches. Reported: nanoseconds per record (median of the rounds, and the
spread), and each implementation's time relative to asyncproducer's. Ratios, not absolute
times, are what to compare: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.records import RecordBatchBuilder

Record = tuple[int, bytes, bytes, list[tuple[str, bytes]]]
Encoder = Callable[[list[Record], CompressionType, int], int]


def encode_asyncproducer(records: list[Record], codec: CompressionType, batch_size: int) -> int:
    batches = 0
    builder = RecordBatchBuilder(batch_size=batch_size, compression=codec)
    for timestamp, key, value, headers in records:
        if builder.try_append(timestamp, key, value, headers) is None:
            builder.build()
            batches += 1
            builder = RecordBatchBuilder(batch_size=batch_size, compression=codec)
            builder.try_append(timestamp, key, value, headers)
    builder.build()
    return batches + 1


def _peer_encoder(builder_cls: Any) -> Encoder:
    def encode(records: list[Record], codec: CompressionType, batch_size: int) -> int:
        batches = 0

        def new() -> Any:
            return builder_cls(
                magic=2,
                compression_type=int(codec),
                is_transactional=False,
                producer_id=-1,
                producer_epoch=-1,
                base_sequence=-1,
                batch_size=batch_size,
            )

        builder, offset = new(), 0
        for timestamp, key, value, headers in records:
            if builder.append(offset, timestamp, key, value, headers) is None:
                builder.build()
                batches += 1
                builder, offset = new(), 0
                builder.append(offset, timestamp, key, value, headers)
            offset += 1
        builder.build()
        return batches + 1

    return encode


def implementations() -> dict[str, Encoder]:
    found: dict[str, Encoder] = {"asyncproducer": encode_asyncproducer}
    try:
        from aiokafka.record.default_records import DefaultRecordBatchBuilder as AioBuilder

        found["aiokafka"] = _peer_encoder(AioBuilder)
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from kafka.record.default_records import DefaultRecordBatchBuilder as KpBuilder
        found["kafka-python"] = _peer_encoder(KpBuilder)
    except ImportError:
        pass
    return found


def make_records(count: int, value_size: int, headers: int) -> list[Record]:
    base = 1_700_000_000_000
    payload = os.urandom(value_size // 2).hex().encode()[:value_size]
    return [
        (base + i // 10, f"key-{i % 1000}".encode(), payload, [("h", b"v")] * headers)
        for i in range(count)
    ]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    impls = implementations()
    rows = []
    for codec_name in args.codecs.split(","):
        codec = CompressionType.from_name(codec_name)
        for headers in (0, 1):
            records = make_records(args.records, args.value_size, headers)
            samples: dict[str, list[float]] = {name: [] for name in impls}
            for _ in range(args.rounds):
                for name, encode in impls.items():
                    started = time.perf_counter()
                    encode(records, codec, args.batch_size)
                    samples[name].append((time.perf_counter() - started) / len(records) * 1e9)
            ours = statistics.median(samples["asyncproducer"])
            for name, values in samples.items():
                median = statistics.median(values)
                rows.append(
                    {
                        "codec": codec_name,
                        "headers": headers,
                        "implementation": name,
                        "ns_per_record": round(median),
                        "spread": round(max(values) - min(values)),
                        "relative_to_asyncproducer": round(median / ours, 2),
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16_384)
    parser.add_argument("--codecs", default="none,lz4,zstd,gzip,snappy")
    args = parser.parse_args()
    rows = run(args)
    print(
        f"{args.records} records, {args.value_size}-byte values, batch_size {args.batch_size}, "
        f"median of {args.rounds} interleaved rounds\n"
    )
    print("| codec | headers | implementation | ns/record | spread | time vs asyncproducer |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['codec']} | {row['headers']} | {row['implementation']} | "
            f"{row['ns_per_record']} | {row['spread']} | {row['relative_to_asyncproducer']}x |"
        )


if __name__ == "__main__":
    main()
