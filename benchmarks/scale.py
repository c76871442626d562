"""Scale benchmark: how the producer's cost grows with partitions, topics, concurrent
tasks and records in flight, and how much memory it takes while the broker stalls.

    python -m benchmarks.scale [--quick] [--group NAME ...] [--rounds 3]
                               [--records 100000] [--stall-seconds 10]
                               [--json PATH] [--markdown] [--bootstrap-servers HOST:PORT]

Starts one Tansu broker (unless --bootstrap-servers is given) and creates every case's
topics, then runs each throughput case in a process of its own, --rounds times (round 1
runs every case, then round 2, ...), and reports medians: msg/s, CPU µs per record
(getrusage, user + system), peak RSS, and how many records went in each batch and each
Produce request. The stall cases get a Tansu broker of their own (whatever
--bootstrap-servers says), which the client process stops with SIGSTOP for
--stall-seconds while 100 tasks send 1 KiB (or 100 B) records, sampling its RSS every
100 ms, then continues it with SIGCONT. RSS should stop growing once buffer_memory is
used up (the table shows by how much it grew, against buffer_memory), and every record
send() accepted must be acknowledged. The target group holds issue 23's cases (10,000
partitions over 100 topics, 10,000 tasks, both; a stall with both), each divided by a
base run of the same round. docs/scale.md explains every column.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from benchmarks import _scale_report as report
from benchmarks._bench_report import plain
from benchmarks._bench_run import create_topics, machine, run_json_process, tansu_version
from benchmarks._scale_cases import (
    FULL,
    GROUPS,
    QUICK,
    STALL_MAX_BLOCK_MS,
    STALL_TASKS,
    Case,
    RunSpec,
    cases,
    topic_names,
)

QUICK_RECORDS = 5_000
PRODUCER = "acks=1, linger_ms=5, batch_size=16384, no compression, idempotence off"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="two sizes per group, fewer records")
    parser.add_argument("--group", nargs="+", choices=GROUPS, help="run only these groups")
    parser.add_argument("--rounds", type=int, help="runs per throughput case (3; --quick 1)")
    parser.add_argument("--records", type=int, help="per throughput run (100,000; --quick 5,000)")
    parser.add_argument("--stall-seconds", type=float, help="how long (10; --quick 2)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per run, seconds")
    parser.add_argument("--bootstrap-servers", help="use this cluster instead of Tansu")
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    parser.add_argument("--markdown", action="store_true", help="print the report as Markdown")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.records = args.records or (QUICK_RECORDS if args.quick else 100_000)
    args.stall_seconds = args.stall_seconds or (2.0 if args.quick else 10.0)
    return args


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def tansu() -> Iterator[tuple[str, int, str]]:
    """A fresh Tansu broker: its address, its process id (for SIGSTOP), a description."""
    from asyncproducer.testing.tansu import TansuBroker

    with TansuBroker() as broker:
        # TansuBroker has no public pid; the stall needs it to stop the broker.
        process = broker._process
        assert process is not None
        try:
            yield broker.bootstrap_servers, process.pid, f"{tansu_version()} (memory storage)"
        finally:
            # A stopped process ignores SIGTERM until continued: never leave it stopped.
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)


@contextlib.contextmanager
def broker(bootstrap_servers: str | None) -> Iterator[tuple[str, str]]:
    """The cluster's address and a description of it: the given one, or a fresh Tansu."""
    if bootstrap_servers:
        yield bootstrap_servers, f"external cluster at {bootstrap_servers}"
        return
    with tansu() as (servers, _pid, description):
        yield servers, f"{description}, one broker, loopback"


def run_client(spec: RunSpec) -> dict[str, Any]:
    """Run one case in its own process; its JSON result, or a failed one."""
    failed: dict[str, Any] = {"group": spec.case.group, "case": spec.case.name, "ok": False}
    command = [sys.executable, "-m", "benchmarks._scale_client", "--spec", spec.to_json()]
    return run_json_process(command, spec.timeout_s, failed)


def describe(run: dict[str, Any]) -> str:
    """One progress line for a finished run."""
    if not run.get("ok"):
        return f"FAILED ({run.get('error')})"
    if "rss_growth_mib" in run:
        return (
            f"RSS {run['rss_before_mib']:.0f} -> {run['rss_max_during_mib']:.0f} MiB "
            f"(+{run['rss_growth_mib']:.1f}, buffer_memory {run['buffer_memory_mib']:g}); "
            f"{run['accepted']:,} accepted, {run['acked']:,} acked, {run['refused']:,} refused"
        )
    return (
        f"{run['msgs_per_s']:,.0f} msg/s, {run['cpu_us_per_record']:.2f} CPU µs/record, "
        f"{run['peak_rss_mib']:.0f} MiB, {run['records_per_batch']:g} records/batch"
    )


def prepare(servers: str, chosen: Sequence[Case], timeout_s: float) -> dict[str, RunSpec]:
    """Each case's topics, created: fresh ones per layout (topics x partitions), which
    the cases of that layout share (keyed or not, from one task or many). Sharing keeps
    the target group's two cases of 10,000 partitions within a broker's open files:
    Apache Kafka holds one per partition, and 20,000 took a node past a limit of 20,000."""
    run_id = uuid.uuid4().hex[:8]
    prefixes: dict[tuple[int, int], str] = {}
    specs = {}
    for case in chosen:
        layout = (case.topics, case.partitions)
        if layout not in prefixes:
            prefixes[layout] = prefix = f"scale-{case.name}-{run_id}"
            create_topics(
                servers, {name: case.partitions for name in topic_names(prefix, case.topics)}
            )
        specs[case.name] = RunSpec(case, servers, prefixes[layout], timeout_s)
    return specs


def run_throughput(
    servers: str, chosen: Sequence[Case], args: argparse.Namespace, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    specs = prepare(servers, chosen, args.timeout)
    runs = []
    for round_ in range(1, args.rounds + 1):
        for case in chosen:
            run = run_client(specs[case.name]) | {"round": round_}
            log(f"{case.name} round {round_}: {describe(run)}")
            runs.append(run)
    return runs


def run_stalls(
    chosen: Sequence[Case], args: argparse.Namespace, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    runs = []
    with tansu() as (servers, pid, _description):
        specs = prepare(servers, chosen, args.timeout)
        for case in chosen:
            spec = RunSpec(case, servers, specs[case.name].topic_prefix, args.timeout, pid)
            try:
                run = run_client(spec) | {"round": 1}
            finally:
                # The client continues the broker itself; if it died first, do it here.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            log(f"{case.name}: {describe(run)}")
            runs.append(run)
    return runs


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "records": args.records,
        "rounds": args.rounds,
        "value_size": 100,
        "producer": PRODUCER,
        "stall_seconds": args.stall_seconds,
        "stall": (
            f"{STALL_TASKS} tasks (unless the row says otherwise) sending fresh records as "
            f"fast as they can, max_block_ms={STALL_MAX_BLOCK_MS}, "
            "delivery_timeout_ms=120000, one 6-partition topic (unless the row says "
            "otherwise), RSS sampled every 100 ms"
        ),
        "quick": args.quick,
    }


def _jsonable(value: object) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    chosen = cases(
        QUICK if args.quick else FULL, args.group or GROUPS, args.records, args.stall_seconds
    )
    throughput = [case for case in chosen if not case.is_stall]
    stalls = [case for case in chosen if case.is_stall]
    runs: list[dict[str, Any]] = []
    with broker(args.bootstrap_servers) as (servers, description):
        progress(f"broker: {description}")
        if throughput:
            runs += run_throughput(servers, throughput, args, progress)
    if stalls:
        runs += run_stalls(stalls, args, progress)
    doc = {
        "settings": settings(args),
        "machine": machine(description),
        "duration_s": round(time.monotonic() - started, 1),
        "summary": report.summarise(chosen, runs),
        "runs": runs,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, ensure_ascii=False, default=_jsonable))
    text = report.markdown(doc, chosen)
    print(text if args.markdown else plain(text))
    return 0 if runs and all(run.get("ok") for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
