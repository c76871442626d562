"""The scale benchmark's cases: what each run varies, and how a run reaches its process.

Every throughput case is the peer benchmark's base (100 B values, acks=1, linger 5 ms,
no compression, idempotence off, one 6-partition topic, one task, at most 10,000 records
unacknowledged) with one factor changed; the stall cases send records (1 KiB, and 100 B
once) from 100 tasks into a producer whose broker is stopped. The target group is issue
23's: 10,000 partitions (100 topics of 100), 10,000 tasks, and both, each against its own
base run in the same round, and a stall at that scale. A :class:`RunSpec` carries one case
to one client process as JSON.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

PARTITIONS = "partitions"
TOPICS = "topics"
TASKS = "tasks"
WINDOW = "window"
STALL = "stall"
TARGET = "target"
GROUPS = [PARTITIONS, TOPICS, TASKS, WINDOW, STALL, TARGET]
THROUGHPUT_GROUPS = [PARTITIONS, TOPICS, TASKS, WINDOW]
TARGET_BASE = "target-base"
"""The target group's base case: every other case of the group is divided by it."""
TARGET_RATIO = 0.8
"""Issue 23: msg/s within 20 % of base."""

MIB = 1024 * 1024
BASE_WINDOW = 10_000
"""Unacknowledged records per client process, at most (the peer benchmark's WINDOW)."""
STALL_TASKS = 100
STALL_VALUE_SIZE = 1024
STALL_MAX_BLOCK_MS = 2_000
STALL_DELIVERY_TIMEOUT_MS = 120_000
"""Far beyond the stall: every record accepted during it can still be delivered."""


@dataclass(frozen=True)
class Case:
    """One measurement. ``records`` is per run; ``stall_s`` > 0 makes it a stall case."""

    group: str
    name: str
    partitions: int = 6
    """Per topic."""
    topics: int = 1
    keyed: bool = False
    tasks: int = 1
    window: int = BASE_WINDOW
    records: int = 100_000
    value_size: int = 100
    buffer_memory: int = 32 * MIB
    stall_s: float = 0.0

    @property
    def is_stall(self) -> bool:
        return self.stall_s > 0


@dataclass(frozen=True)
class Layout:
    """Where a target case's records go, and from how many tasks."""

    topics: int
    partitions: int
    """Per topic."""
    tasks: int

    @property
    def name(self) -> str:
        return f"t{self.topics}xp{self.partitions}-tasks{self.tasks}"

    def case(self, kind: str, **changes: Any) -> Case:
        """The target group's case for this layout: ``target-{kind}{name}``."""
        return Case(
            TARGET,
            f"target-{kind}{self.name}",
            topics=self.topics,
            partitions=self.partitions,
            tasks=self.tasks,
            **changes,
        )


@dataclass(frozen=True)
class Sizes:
    """How big each group's cases get (the defaults, or --quick's)."""

    partitions: tuple[int, ...]
    topics: tuple[int, ...]
    tasks: tuple[int, ...]
    windows: tuple[int, ...]
    stalls: tuple[tuple[int, int], ...]
    """(buffer_memory MiB, value bytes) per stall case."""
    target: tuple[Layout, ...]
    """The target group's throughput cases besides its base."""
    target_stalls: tuple[Layout, ...]
    """The target group's stall cases: 100 B records, the default 32 MiB buffer_memory."""


FULL = Sizes(
    partitions=(1, 6, 100, 1_000),
    topics=(1, 10, 100, 1_000),
    tasks=(1, 100, 1_000, 10_000),
    windows=(100, 1_000, 10_000, 100_000),
    # 1 KiB records as the issue asks, twice, to show how growth follows buffer_memory;
    # then 100 B records, to show what the per-record overhead does to it.
    stalls=((8, STALL_VALUE_SIZE), (32, STALL_VALUE_SIZE), (8, 100)),
    # Issue 23: 10,000 tasks on base's topic; 10,000 partitions over 100 topics; both.
    target=(Layout(1, 6, 10_000), Layout(100, 100, 1), Layout(100, 100, 10_000)),
    # 10,000 partitions from 100 tasks (as the stall group), then from 10,000 tasks.
    target_stalls=(Layout(100, 100, 100), Layout(100, 100, 10_000)),
)
QUICK = Sizes(
    partitions=(1, 100),
    topics=(1, 10),
    tasks=(1, 100),
    windows=(100, 1_000),
    stalls=((8, 100),),  # small records: where per-record overhead shows most
    target=(Layout(10, 10, 100),),
    target_stalls=(),  # the stall group's case runs the same code
)


def cases(sizes: Sizes, groups: list[str], records: int, stall_s: float) -> list[Case]:
    """Every case of the chosen groups, in report order."""
    chosen: list[Case] = []
    if PARTITIONS in groups:
        for keyed in (False, True):
            for n in sizes.partitions:
                kind = "keyed" if keyed else "keyless"
                chosen.append(
                    Case(PARTITIONS, f"{kind}-p{n}", partitions=n, keyed=keyed, records=records)
                )
    if TOPICS in groups:
        chosen += [
            Case(TOPICS, f"t{n}", topics=n, partitions=1, records=records) for n in sizes.topics
        ]
    if TASKS in groups:
        chosen += [Case(TASKS, f"tasks{n}", tasks=n, records=records) for n in sizes.tasks]
    if WINDOW in groups:
        chosen += [
            # The whole run fits in the window at most: a larger window changes nothing.
            Case(WINDOW, f"w{n}", window=n, records=records)
            for n in sizes.windows
        ]
    if STALL in groups:
        chosen += [
            Case(
                STALL,
                f"stall-{mib}mib-{size}b",
                tasks=STALL_TASKS,
                value_size=size,
                buffer_memory=mib * MIB,
                stall_s=stall_s,
                records=0,
            )
            for mib, size in sizes.stalls
        ]
    if TARGET in groups:
        chosen += target_cases(sizes, records, stall_s)
    return chosen


def target_cases(sizes: Sizes, records: int, stall_s: float) -> list[Case]:
    """Base, then each layout, then the stalls at scale (keyless, round-robin over topics)."""
    return [
        Case(TARGET, TARGET_BASE, records=records),
        *(layout.case("", records=records) for layout in sizes.target),
        *(layout.case("stall-", stall_s=stall_s, records=0) for layout in sizes.target_stalls),
    ]


@dataclass(frozen=True)
class RunSpec:
    """Everything a client process needs for one run."""

    case: Case
    bootstrap_servers: str
    topic_prefix: str
    """Topics are ``{prefix}-0`` ... ``{prefix}-{topics - 1}``."""
    timeout_s: float
    broker_pid: int = 0
    """The broker process to stop and continue (stall cases only)."""

    @property
    def topic_names(self) -> list[str]:
        return topic_names(self.topic_prefix, self.case.topics)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        raw = json.loads(text)
        return cls(**{**raw, "case": Case(**raw["case"])})


def topic_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(count)]
