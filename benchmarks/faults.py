"""Fault matrix: do the delivery guarantees hold when brokers and connections misbehave?

    python -m benchmarks.faults [--seed N] [--scenario NAME ...] [--records N]
                                [--tansu | --no-tansu] [--kafka | --no-kafka]
                                [--kafka-records N] [--markdown]
                                [--backend asyncio|uvloop|trio]

Every FakeCluster and Tansu scenario runs twice, with idempotence on (5 requests in
flight) and off (1 in flight unless the scenario says otherwise), acks=all both times;
the Apache Kafka failovers run with idempotence on, from 20 tasks. Records go to random
partitions, paced over ~1.5 s, while the scenario's faults strike at random moments (the
seed decides: the same seed replays the same schedule); then a few more records go to
every partition, to show the producer works again. Each record's value is unique, so
what the broker stored can be matched with what each future said:

* the FakeCluster scenarios read the cluster's partition logs;
* the Tansu scenarios put a FaultProxy in front of a real broker and read the log back
  with confluent-kafka, a client this project did not write;
* the Kafka scenarios kill, stop and cut off nodes of a 3-node Apache Kafka cluster
  (replication factor 3, min.insync.replicas=2) and read back with confluent-kafka.

Exit status 1 when a guarantee broke (see docs/reliability.md for which, and why).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import faulthandler
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import anyio

from asyncproducer.testing._kafka_dist import DEFAULT_KAFKA_VERSION
from benchmarks import _faults_fake as fake
from benchmarks import _faults_kafka as kafka
from benchmarks import _faults_tansu as tansu
from benchmarks._faults_ledger import Ledger, Row, analyse, error_summary

__all__ = ["Row", "main", "table"]
from benchmarks._faults_run import (
    Outcome,
    Scenario,
    Settings,
    time_budget,
    unexpected_errors,
)

Runner = Callable[[Scenario[Any], Settings, dict[str, object], int, Ledger], Awaitable[Outcome]]

ALL_NAMES = [s.name for group in (fake.SCENARIOS, tansu.SCENARIOS, kafka.SCENARIOS) for s in group]
BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}
WATCHDOG_SLACK_S = 60
"""A run that overruns its own bounded waits by this much is hung in a way no timeout
could cancel (a shielded wait): the process dumps every stack and exits."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.faults", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--seed", type=int, help="replay a schedule (default: random)")
    parser.add_argument(
        "--scenario", action="append", choices=ALL_NAMES, help="run only these (repeatable)"
    )
    parser.add_argument("--records", type=int, default=1000, help="records per run")
    parser.add_argument(
        "--tansu",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the scenarios against Tansu behind a FaultProxy",
    )
    parser.add_argument(
        "--kafka",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the failovers on a 3-node Apache Kafka cluster (needs java)",
    )
    parser.add_argument(
        "--kafka-records",
        type=int,
        default=kafka.SETTINGS.records,
        help="records per Apache Kafka run",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="asyncio")
    parser.add_argument(
        "--verbose", action="store_true", help="show the producer's warnings (retries, refreshes)"
    )
    return parser.parse_args(argv)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- running


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Dump every thread's stack and exit if the block is still running after ``seconds``:
    the last resort against a hang no timeout inside the event loop can end."""
    # The real stderr: under pytest sys.stderr is a capture without a file descriptor.
    stderr = sys.__stderr__
    try:
        if stderr is None:
            raise ValueError("no stderr")
        faulthandler.dump_traceback_later(seconds, exit=True, file=stderr)
    except (ValueError, OSError):
        yield  # no usable stderr: run without the last resort
        return
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


async def run_one(
    broker: str,
    scenario: Scenario[Any],
    idempotence: bool,
    runner: Runner,
    settings: Settings,
    seed: int,
    injected: dict[str, list[str]],
) -> Row:
    max_in_flight = 5 if idempotence else scenario.max_in_flight_off
    label = "on" if idempotence else "off"
    progress(f"  {scenario.name}, idempotence {label} ...")
    config = settings.producer_config(
        idempotence=idempotence, max_in_flight=max_in_flight, overrides=scenario.overrides
    )
    ledger = Ledger(f"{seed}-{scenario.name}-{label}")
    with watchdog(time_budget(scenario, settings) + WATCHDOG_SLACK_S):
        outcome = await runner(scenario, settings, dict(config), seed, ledger)
    injected.setdefault(scenario.name, outcome.injected)
    delivery_timeout_s = int(config["delivery_timeout_ms"]) / 1000  # the scenario's own
    row = Row(scenario.name, idempotence, max_in_flight, delivery_timeout_s, broker=broker)
    row.retries = int(outcome.metrics.get("record-retry-total", 0))
    analyse(ledger, outcome.stored, row)
    row.violations += unexpected_errors(ledger, scenario.expected_errors)
    errors = error_summary(ledger)
    if errors:
        row.notes.append(f"failures: {errors}")
    return row


async def run_scenarios(
    broker: str,
    scenarios: Sequence[Scenario[Any]],
    runner: Runner,
    settings: Settings,
    seed: int,
    injected: dict[str, list[str]],
) -> list[Row]:
    rows = []
    for scenario in scenarios:
        for idempotence in scenario.idempotence:
            rows.append(
                await run_one(broker, scenario, idempotence, runner, settings, seed, injected)
            )
    return rows


async def run_matrix(
    args: argparse.Namespace, settings: Settings, injected: dict[str, list[str]]
) -> list[Row]:
    chosen = set(args.scenario or ALL_NAMES)
    rows: list[Row] = []
    fake_scenarios = [s for s in fake.SCENARIOS if s.name in chosen]
    if fake_scenarios:
        progress("FakeCluster scenarios:")
        rows += await run_scenarios(
            "fake", fake_scenarios, fake.run_fake, settings, args.seed, injected
        )
    rows += await _on_a_real_broker(
        "Tansu",
        "Tansu scenarios (behind a FaultProxy)",
        [s for s in tansu.SCENARIOS if s.name in chosen],
        args.tansu,
        "--no-tansu",
        tansu.tansu_unavailable,
        tansu.TansuBehindProxy,
        tansu.run_tansu,
        settings,
        args.seed,
        injected,
    )
    rows += await _on_a_real_broker(
        f"Kafka {DEFAULT_KAFKA_VERSION}",
        "Apache Kafka scenarios (3 nodes, each behind a FaultProxy)",
        [s for s in kafka.SCENARIOS if s.name in chosen],
        args.kafka,
        "--no-kafka",
        kafka.kafka_unavailable,
        kafka.KafkaBehindProxies,
        kafka.run_kafka,
        dataclasses.replace(kafka.SETTINGS, records=args.kafka_records),
        args.seed,
        injected,
    )
    return rows


async def _on_a_real_broker(
    broker: str,
    title: str,
    scenarios: list[Scenario[Any]],
    wanted: bool,
    flag: str,
    unavailable: Callable[[], str | None],
    session_type: Callable[[], Any],
    run: Callable[..., Awaitable[Outcome]],
    settings: Settings,
    seed: int,
    injected: dict[str, list[str]],
) -> list[Row]:
    """Run ``scenarios`` on one broker session (started once for all of them), or skip
    them with the reason."""
    if not scenarios:
        return []
    if not wanted:
        progress(f"{title} skipped: {flag}")
        return []
    reason = unavailable()
    if reason is not None:
        progress(f"{title} skipped: {reason}")
        return [_skipped(broker, s, reason, settings) for s in scenarios]
    progress(f"{title}:")
    async with session_type() as session:

        async def runner(*a: Any) -> Outcome:
            return await run(session, *a)

        return await run_scenarios(broker, scenarios, runner, settings, seed, injected)


def _skipped(broker: str, scenario: Scenario[Any], reason: str, settings: Settings) -> Row:
    row = Row(scenario.name, True, 5, settings.delivery_timeout_ms / 1000, broker=broker)
    row.skipped = reason
    return row


# --------------------------------------------------------------------------- the table

HEADERS = [
    "scenario",
    "broker",
    "idempotence (in flight)",
    "sent",
    "acked",
    "failed definite",
    "failed unknown",
    "never done",
    "in log",
    "lost",
    "dups",
    "reorders",
    "offset wrong",
    "offset -1",
    "failed but stored",
    "retries",
    "max latency / timeout",
    "verdict",
]


def cells(row: Row) -> list[str]:
    if row.skipped is not None:
        return [row.scenario, row.broker, "-", *["-"] * (len(HEADERS) - 4), "skipped"]
    counts = [
        row.sent,
        row.acked,
        row.failed_definite,
        row.failed_unknown,
        row.unfinished,
        row.found,
        row.lost,
        row.duplicates,
        row.reorderings,
        row.offset_mismatches,
        row.offset_unknown,
        row.failed_but_stored,
        row.retries,
    ]
    return [
        row.scenario,
        row.broker,
        f"{'on' if row.idempotence else 'off'} ({row.max_in_flight})",
        *(str(c) for c in counts),
        f"{row.max_latency_s:.2f} s / {row.delivery_timeout_s:g} s",
        "FAIL" if row.violations else "ok",
    ]


def table(rows: Sequence[Row], markdown: bool) -> str:
    grid = [HEADERS, *(cells(row) for row in rows)]
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in grid]
        lines.insert(
            1, "|" + "|".join("---" if i < 3 else "--:" for i in range(len(HEADERS))) + "|"
        )
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in grid) for i in range(len(HEADERS))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in grid
    )


def details(rows: Sequence[Row], injected: dict[str, list[str]], markdown: bool) -> str:
    bullet = "- " if markdown else "  "
    lines = ["", "Faults injected (the same schedule for both idempotence settings):"]
    for name, faults in injected.items():
        lines.append(f"{bullet}{name}: " + ("; ".join(faults) or "none"))
    notes = []
    for row in rows:
        label = f"{row.scenario} ({'on' if row.idempotence else 'off'})"
        for text in (row.skipped and [f"skipped: {row.skipped}"]) or row.notes:
            notes.append(f"{bullet}{label}: {text}")
        for text in row.violations:
            notes.append(f"{bullet}{label}: VIOLATION: {text}")
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The producer warns about every failed metadata refresh; while brokers are down on
    # purpose that drowns the report. Errors still show.
    logging.basicConfig(
        level=logging.WARNING if args.verbose else logging.ERROR, format="%(name)s: %(message)s"
    )
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1_000_000)
    settings = Settings(records=args.records)
    print(f"seed {args.seed} (replay: python -m benchmarks.faults --seed {args.seed})")
    print(
        f"{args.records} records per run ({args.kafka_records} on Apache Kafka) on "
        f"{args.backend}; acks=all, "
        f"delivery_timeout_ms={settings.delivery_timeout_ms}, "
        f"request_timeout_ms={settings.request_timeout_ms} (500 where noted), "
        f"linger_ms={settings.linger_ms}, retry_backoff_ms={settings.retry_backoff_ms}; "
        f"on Apache Kafka from {kafka.TASKS} tasks, "
        f"delivery_timeout_ms={kafka.SETTINGS.delivery_timeout_ms} (unless noted), "
        f"request_timeout_ms={kafka.SETTINGS.request_timeout_ms}",
        flush=True,
    )
    started = time.monotonic()
    injected: dict[str, list[str]] = {}
    backend, options = BACKENDS[args.backend]
    rows = anyio.run(run_matrix, args, settings, injected, backend=backend, backend_options=options)
    print()
    print(table(rows, args.markdown))
    print(details(rows, injected, args.markdown))
    failed = [row for row in rows if row.violations]
    print(f"\n{len(rows)} runs in {time.monotonic() - started:.0f} s: ", end="")
    print(f"{len(failed)} broke a guarantee" if failed else "every guarantee held")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
