"""Reading a transactional run's topic back, as a ``read_committed`` consumer sees it.

Every run counts its acknowledgements; a transactional run is also read back after it
ends (outside the measured time, in the benchmark's own process), with confluent-kafka
(librdkafka, a client this project did not write) and ``isolation.level=read_committed``:
acknowledged records whose transaction never committed are invisible there, so a client
whose commits did not take would show up as records missing.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks import _bench_clients as clients
from benchmarks._bench_scenarios import RunSpec

READ_TIMEOUT_S = 60.0
WARM_UP_RECORDS = 1
"""Each client commits one warm-up record to the run's topic before the measured ones."""


def read_committed_count(
    bootstrap_servers: str,
    topic: str,
    partitions: int,
    *,
    ssl_cafile: str | None = None,
    timeout_s: float = READ_TIMEOUT_S,
) -> tuple[int, str]:
    """How many records of ``topic`` a read_committed consumer reads until every partition
    reports its end; and which partitions did not get there within ``timeout_s``.

    The end is the partition EOF librdkafka reports from a Fetch response (for
    read_committed, the last stable offset): not ``get_watermark_offsets``, which Tansu
    answers with the last batch's base offset + 1 (see ``_faults_readback``).
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException
    from confluent_kafka import TopicPartition as CkTopicPartition

    config = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": f"bench-verify-{topic}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "log_level": 4,
    }
    consumer = Consumer(config | clients.confluent_tls(ssl_cafile))
    try:
        consumer.assign([CkTopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        count = 0
        behind = set(range(partitions))
        deadline = time.monotonic() + timeout_s
        while behind and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                count += 1
            elif error.code() == KafkaError._PARTITION_EOF:
                behind.discard(message.partition())
            else:
                raise KafkaException(error)
        return count, ", ".join(f"partition {p}" for p in sorted(behind))
    finally:
        consumer.close()


def check_committed(run: dict[str, Any], spec: RunSpec) -> dict[str, Any]:
    """``run`` with ``read_committed`` (the records read back) added, failed if that is not
    every record the client sent (its warm-up record included). A run that already failed
    is left as it is: what it left behind says nothing more."""
    if not spec.scenario.is_transactional or not run.get("ok"):
        return run
    expected = spec.records + WARM_UP_RECORDS
    try:
        count, behind = read_committed_count(
            spec.bootstrap_servers, spec.topic, spec.scenario.partitions, ssl_cafile=spec.ssl_cafile
        )
    except Exception as exc:
        return run | {"ok": False, "error": f"reading back read_committed: {exc}"}
    checked = run | {"read_committed": count}
    if behind:
        why = f"read_committed read back {count:,} records; {behind} never reached its end"
        return checked | {"ok": False, "error": why}
    if count != expected:
        why = f"read_committed read back {count:,} records, expected {expected:,}"
        return checked | {"ok": False, "error": why}
    return checked
