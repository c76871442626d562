"""The peer benchmark's scenarios and the records they send.

A base scenario, then variations that each change one factor of it (the full cross
product would take hours on a small machine and say little more), then a latency
scenario at a fixed offered rate, the base over TLS (on a broker of its own, with its
plaintext twin on the same broker), and the base in transactions. Every client gets the
same settings and the same records; a :class:`RunSpec` carries one scenario to one client
process as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from typing import Any

BASE = "base"
LATENCY = "latency"
TLS = "tls"
TRANSACTIONAL = "transactional"
PLAINTEXT_SUFFIX = "-plaintext"
"""A TLS scenario's plaintext twin is named after it with this suffix."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    value_size: int = 100
    keyed: bool = False
    acks: str = "1"  # "1" or "all"
    idempotence: bool = False
    linger_ms: int = 5
    compression: str = "none"
    partitions: int = 6
    tasks: int = 1
    batch_size: int = 16_384
    rate: int = 0
    """Offered records per second; 0 means as fast as the client goes (throughput)."""
    tls: bool = False
    """Over TLS: on the TLS broker's TLS listener (see :func:`plaintext_twin`)."""
    tls_broker: bool = False
    """On the TLS broker (a TLS scenario, or its plaintext twin), not the main one."""
    transaction_size: int = 0
    """Records per transaction (begin, the sends, commit; the time includes the commits);
    0: no transactions."""

    @property
    def is_latency(self) -> bool:
        return self.rate > 0

    @property
    def is_transactional(self) -> bool:
        return self.transaction_size > 0


def _vary(name: str, description: str, **changes: Any) -> Scenario:
    return dataclasses.replace(_BASE, name=name, description=description, **changes)


_BASE = Scenario(
    BASE, "100 B values, keyless, acks=1, linger 5 ms, no compression, 6 partitions, 1 task"
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        _BASE,
        _vary("value-1k", "base with 1 KiB values", value_size=1024),
        _vary("keyed", "base with keys (10,000 distinct)", keyed=True),
        _vary("acks-all", "base with acks=all (idempotence off)", acks="all"),
        _vary(
            "idempotent",
            "base with acks=all and idempotence on (aiokafka skipped: fails on Tansu)",
            acks="all",
            idempotence=True,
        ),
        _vary("lz4", "base with lz4 compression", compression="lz4"),
        _vary("zstd", "base with zstd compression", compression="zstd"),
        _vary("partitions-1", "base with 1 partition", partitions=1),
        _vary("partitions-200", "base with 200 partitions", partitions=200),
        _vary("keyed-200", "keyed records over 200 partitions", keyed=True, partitions=200),
        _vary("tasks-1000", "base sent from 1,000 concurrent tasks", tasks=1000),
        _vary(
            LATENCY,
            "fixed offered rate, linger 0: per-record ack latency",
            linger_ms=0,
            rate=5_000,
        ),
        _vary(
            TLS,
            "base over TLS, on the TLS broker (one Apache Kafka node unless "
            f"--tls-bootstrap-servers); each client also runs {TLS}{PLAINTEXT_SUFFIX}: the "
            "same on the same broker without TLS",
            tls=True,
            tls_broker=True,
        ),
        _vary(
            TRANSACTIONAL,
            "base in transactions of 1,000 records (acks=all, idempotence on, as "
            "transactions require); the time includes the commits",
            acks="all",
            idempotence=True,
            transaction_size=1_000,
        ),
    ]
}
QUICK = [BASE, "tasks-1000", LATENCY]
"""``--quick``: the base, many tasks, and latency."""
DEFAULT = list(SCENARIOS)
"""What runs without ``--scenario``/``--quick``: every scenario (about 7-8 minutes with
3 rounds on 2 cores)."""


def plaintext_twin(scenario: Scenario) -> Scenario:
    """A TLS scenario without TLS, on the same broker: what each client's TLS figures are
    divided by (the TLS broker is not the main one, so the base scenario will not do)."""
    return dataclasses.replace(
        scenario,
        name=scenario.name + PLAINTEXT_SUFFIX,
        description=f"{scenario.name} without TLS, on the same broker's PLAINTEXT listener",
        tls=False,
    )


@dataclass(frozen=True)
class RunSpec:
    """Everything a client process needs for one run."""

    scenario: Scenario
    bootstrap_servers: str
    topic: str
    records: int
    timeout_s: float
    ssl_cafile: str | None = None
    """TLS: the PEM file of the CA to trust (clients check the broker's certificate and
    host name against it); None: plaintext."""

    @property
    def transactional_id(self) -> str:
        """The run's own transactional id: every run has a topic of its own (a random run
        id in its name), so no two runs, nor two clients, fence each other."""
        return f"{self.topic}-txn"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        raw = json.loads(text)
        return cls(**{**raw, "scenario": Scenario(**raw["scenario"])})


# --------------------------------------------------------------------------- records

_DISTINCT_VALUES = 1000
_DISTINCT_KEYS = 10_000
_WORDS = ["order", "customer", "amount", "status", "shipped", "paid", "refund", "item", "price"]


class Payloads:
    """Record ``i``'s key and value, the same in every client process.

    Values are text-like (words and numbers from a seeded generator), so compression
    has something to do but not everything: identical values would compress to nothing,
    random bytes not at all. A pool of distinct values is reused round-robin so building
    them costs nothing inside the measured loop.
    """

    def __init__(self, value_size: int, keyed: bool) -> None:
        rng = random.Random(20_240_601)
        self.values = [_text(rng, value_size) for _ in range(_DISTINCT_VALUES)]
        self.keys = [b"customer-%06d" % rng.randrange(10**6) for _ in range(_DISTINCT_KEYS)]
        self.keyed = keyed

    def value(self, i: int) -> bytes:
        return self.values[i % _DISTINCT_VALUES]

    def key(self, i: int) -> bytes | None:
        return self.keys[i % _DISTINCT_KEYS] if self.keyed else None

    def size(self, i: int) -> int:
        """Bytes of payload (key + value), for MB/s."""
        key = self.key(i)
        return len(self.value(i)) + (len(key) if key is not None else 0)


def _text(rng: random.Random, size: int) -> bytes:
    parts: list[str] = []
    length = 0
    while length < size:
        part = rng.choice(_WORDS) if rng.random() < 0.7 else str(rng.randrange(100_000))
        parts.append(part)
        length += len(part) + 1
    return " ".join(parts).encode()[:size].ljust(size, b".")
