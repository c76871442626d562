"""Exactly once, consume -> transform -> produce, through crashes: the example service
``examples/exactly_once/transform.py`` on a 3-node Apache Kafka cluster, SIGKILLed again
and again.

Topics ``in`` and ``out`` have 6 partitions, replication factor 3 and
``min.insync.replicas=2`` (and the cluster's transaction state log and offsets topic are
replicated 3 times with min ISR 2: KafkaCluster sets them from the node count).
librdkafka writes 20,000 records to ``in`` (keys ``k0..k99``, each value the key and a
per-key sequence number). The service runs as a subprocess, with a fixed transactional id
and group; it is killed with SIGKILL ``KILLS`` times, each time a random 1-4 s after it
committed its first transaction of that run (sooner if it has already transformed 15% of
the input, so that the later runs have work left), and started again with the same ids; then
stopped with SIGTERM (it aborts its open transaction and exits cleanly) and started once
more, and that last run goes on until it has been idle for a few seconds and says "done".

Then a librdkafka read_committed consumer reads ``out``: every input record is there
exactly once (transformed, with the key it had), each key's records in input order; and
the group's committed offsets on ``in`` are the end of each partition. The seed of the
kill times is in every failure message (``EXACTLY_ONCE_SEED=<seed>`` replays them).
"""

from __future__ import annotations

import collections
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException
from confluent_kafka import Producer as CkProducer
from confluent_kafka import TopicPartition as CkTopicPartition

from asyncproducer.testing.kafka import KafkaCluster
from tests.integration.brokers import require_kafka_tools

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "exactly_once" / "transform.py"
IN, OUT = "in", "out"
PARTITIONS = 6
KEYS = 100
RECORDS = 20_000
KILLS = 4
KILL_AFTER_S = (1.0, 4.0)
"""A kill comes this long (uniformly drawn) after the run committed its first transaction."""
RUN_SHARE = 0.15
"""A run is killed early once it has committed this share of the input."""
CHUNK = 100
"""Records per transaction (--max-records): many transactions, so kills land mid-work."""
IDLE_S = 4.0
RUN_STARTUP_S = 60.0
"""How long a run may take to commit its first transaction (join the group, fence)."""
LAST_RUN_S = 120.0
STOP_S = 30.0
"""How long the service may take to abort, close and exit on SIGTERM."""
TRANSACTIONAL_ID = "transform-1"
GROUP = "transform"
SENTINEL = b"sentinel-"


@pytest.fixture(scope="module")
def kafka3() -> Iterator[KafkaCluster]:
    require_kafka_tools()
    with KafkaCluster(brokers=3) as cluster:
        for topic in (IN, OUT):
            cluster.create_topic(
                topic,
                partitions=PARTITIONS,
                replication_factor=3,
                configs={"min.insync.replicas": "2"},
            )
        yield cluster


def input_value(key: int, sequence: int) -> bytes:
    return b"k%d:%06d" % (key, sequence)


def write_input(bootstrap_servers: str) -> dict[bytes, list[bytes]]:
    """RECORDS records round-robin over the keys; returns each key's values in order."""
    producer = CkProducer(
        {"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "linger.ms": 5}
    )
    sent: dict[bytes, list[bytes]] = collections.defaultdict(list)
    for i in range(RECORDS):
        key, sequence = i % KEYS, i // KEYS
        value = input_value(key, sequence)
        sent[b"k%d" % key].append(value)
        while True:
            try:
                producer.produce(IN, value, key=b"k%d" % key)
                break
            except BufferError:  # librdkafka's queue is full: let it drain
                producer.poll(0.1)
    if producer.flush(60) != 0:
        raise AssertionError("librdkafka could not write the input records")
    return sent


@dataclass
class Run:
    number: int
    log: Path
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def committed(self) -> int:
        """Records this run committed (its last 'transaction N committed' line)."""
        totals = re.findall(r"committed: \d+ records \((\d+) in all\)", self.text())
        return int(totals[-1]) if totals else 0

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


class Service:
    """The example as a subprocess, each run logging to a file of its own."""

    def __init__(self, bootstrap_servers: str, logs: Path, seed: int) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.logs = logs
        self.seed = seed
        self.runs: list[Run] = []

    def start(self) -> Run:
        number = len(self.runs) + 1
        log = self.logs / f"run-{number}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    str(EXAMPLE),
                    "--bootstrap-servers",
                    self.bootstrap_servers,
                    "--transactional-id",
                    TRANSACTIONAL_ID,
                    "--group",
                    GROUP,
                    "--idle-seconds",
                    str(IDLE_S),
                    "--max-records",
                    str(CHUNK),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        run = Run(number, log, process)
        self.runs.append(run)
        return run

    def context(self) -> str:
        runs = "\n".join(
            f"--- run {run.number} (exit {run.process.returncode}):\n{run.tail()}"
            for run in self.runs
        )
        return f"seed={self.seed} (EXACTLY_ONCE_SEED={self.seed} replays the kills)\n{runs}"

    def fail(self, why: str) -> None:
        pytest.fail(f"{why}\n{self.context()}", pytrace=False)

    def wait_for_first_commit(self, run: Run) -> None:
        deadline = run.started + RUN_STARTUP_S
        while "transaction 1 committed" not in run.text():
            if run.process.poll() is not None:
                self.fail(f"run {run.number} exited before committing a transaction")
            if time.monotonic() > deadline:
                self.fail(f"run {run.number} committed nothing in {RUN_STARTUP_S:g} s")
            time.sleep(0.05)

    def work_for(self, run: Run, seconds: float) -> None:
        """Let the run work ``seconds``, or until it has committed RUN_SHARE of the input
        (on a fast machine the kills must still leave work for the runs after them)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and run.committed() < RECORDS * RUN_SHARE:
            if run.process.poll() is not None:
                return
            time.sleep(0.05)

    def stop_all(self) -> None:
        for run in self.runs:
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait(10)


@dataclass(frozen=True)
class Seen:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    source: bytes | None


def read_to_sentinel(bootstrap_servers: str, topic: str, isolation: str) -> list[Seen]:
    """Every data record of ``topic`` a librdkafka consumer at ``isolation`` sees, up to a
    sentinel written to each partition now: a read_committed consumer passes an open
    transaction only once it is decided, so what comes before the sentinel is all there
    will ever be."""
    token = SENTINEL + uuid.uuid4().hex.encode()
    producer = CkProducer({"bootstrap.servers": bootstrap_servers})
    for p in range(PARTITIONS):
        producer.produce(topic, token, partition=p)
    if producer.flush(20) != 0:
        raise AssertionError(f"librdkafka could not write the sentinels to {topic}")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"verify-{uuid.uuid4().hex[:8]}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    seen: list[Seen] = []
    done: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        consumer.assign([CkTopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        while len(done) < PARTITIONS:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{isolation} consumer of {topic} did not reach the sentinel of partitions "
                    f"{sorted(set(range(PARTITIONS)) - done)} in 60 s (a transaction left open?)"
                )
            for message in consumer.consume(500, 0.2):
                if message.error():
                    raise KafkaException(message.error())
                value, where, offset = message.value(), message.partition(), message.offset()
                assert value is not None
                assert where is not None
                assert offset is not None
                if value == token:
                    done.add(where)
                elif not value.startswith(SENTINEL):
                    source = dict(message.headers() or []).get("source")
                    assert source is None or isinstance(source, bytes)
                    seen.append(Seen(where, offset, message.key(), value, source))
    finally:
        consumer.close()
    return seen


def committed_and_end_offsets(bootstrap_servers: str) -> tuple[list[int], list[int]]:
    """The group's committed offset and the high watermark of each partition of ``in``."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": GROUP, "enable.auto.commit": False}
    )
    try:
        partitions = [CkTopicPartition(IN, p) for p in range(PARTITIONS)]
        committed = [tp.offset for tp in consumer.committed(partitions, timeout=30)]
        ends = [consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in partitions]
    finally:
        consumer.close()
    return committed, ends


def test_killed_and_restarted_it_transforms_every_record_exactly_once(
    kafka3: KafkaCluster, tmp_path: Path
) -> None:
    seed = int(os.environ.get("EXACTLY_ONCE_SEED") or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    bootstrap_servers = kafka3.bootstrap_servers
    sent = write_input(bootstrap_servers)
    service = Service(bootstrap_servers, tmp_path, seed)
    kills: list[str] = []
    try:
        for _ in range(KILLS):
            run = service.start()
            service.wait_for_first_commit(run)
            service.work_for(run, rng.uniform(*KILL_AFTER_S))
            if run.process.poll() is not None:
                service.fail(
                    f"run {run.number} ended before it was killed: the input ran out too soon "
                    f"to kill it mid-work {KILLS} times"
                )
            run.process.send_signal(signal.SIGKILL)
            run.process.wait(10)
            kills.append(f"run {run.number}: killed after committing {run.committed()} records")
            if "INFO done (" in run.text():
                service.fail(f"run {run.number} said done before it was killed")

        # SIGTERM: the open transaction aborts, the service closes and exits 0.
        stopped = service.start()
        service.wait_for_first_commit(stopped)
        service.work_for(stopped, rng.uniform(*KILL_AFTER_S) / 2)
        stopped.process.send_signal(signal.SIGTERM)
        try:
            stopped.process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            service.fail(f"run {stopped.number} did not stop within {STOP_S:g} s of SIGTERM")
        if stopped.process.returncode != 0 or "INFO done (stopped by SIGTERM)" not in (
            stopped.text()
        ):
            service.fail(f"run {stopped.number} did not stop cleanly on SIGTERM")

        last = service.start()
        try:
            last.process.wait(LAST_RUN_S)
        except subprocess.TimeoutExpired:
            service.fail(f"the last run did not finish within {LAST_RUN_S:g} s")
        if last.process.returncode != 0 or "done (idle" not in last.text():
            service.fail("the last run did not end well")
    finally:
        service.stop_all()

    # Killed mid-work: every killed run had committed some records and not all, and the
    # last run still found input to transform.
    assert last.committed() > 0, f"nothing was left for the last run: {kills}\n{service.context()}"

    committed = read_to_sentinel(bootstrap_servers, OUT, "read_committed")
    in_the_log = read_to_sentinel(bootstrap_servers, OUT, "read_uncommitted")
    context = (
        f"{kills}; {len(in_the_log) - len(committed)} records of aborted transactions in "
        f"the log\n{service.context()}"
    )

    # Exactly once: each input record (by its position in `in`, and by key and value)
    # transformed once, none lost, none twice.
    sources = collections.Counter(record.source for record in committed)
    twice = sorted((s, n) for s, n in sources.items() if n > 1)
    assert not twice, f"{len(twice)} input records in `out` more than once: {twice[:10]}; {context}"
    expected = {(key, value.upper()) for key, values in sent.items() for value in values}
    got = collections.Counter((record.key, record.value) for record in committed)
    missing = expected - set(got)
    assert not missing, f"{len(missing)} records lost: {sorted(missing)[:10]}; {context}"
    unexpected = set(got) - expected
    assert not unexpected, f"records never sent: {sorted(unexpected)[:10]}; {context}"
    assert len(committed) == RECORDS, f"{len(committed)} records in `out`; {context}"

    # Each key: one partition of `out`, its records in input order.
    by_key: dict[bytes | None, list[Seen]] = collections.defaultdict(list)
    for record in sorted(committed, key=lambda r: (r.partition, r.offset)):
        by_key[record.key].append(record)
    for key, values in sent.items():
        records = by_key[key]
        assert len({r.partition for r in records}) == 1, f"{key!r} in several partitions"
        assert [r.value for r in records] == [v.upper() for v in values], (
            f"{key!r} out of input order; {context}"
        )

    # The group's position, committed with the transactions: the end of every partition.
    group_offsets, ends = committed_and_end_offsets(bootstrap_servers)
    assert group_offsets == ends, f"committed {group_offsets}, ends {ends}; {context}"
    print(f"seed={seed}; {context.splitlines()[0]}")
