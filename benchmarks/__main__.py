"""Peer benchmark: asyncproducer vs aiokafka vs confluent-kafka on one Tansu broker.

    python -m benchmarks [--quick | --all | --scenario NAME ...] [--rounds 3]
                         [--records 100000] [--rate 5000] [--clients NAME,...]
                         [--json PATH] [--markdown] [--charts DIR]
                         [--bootstrap-servers HOST:PORT]

Starts one Tansu broker (unless --bootstrap-servers is given), then for each scenario
runs every client in a process of its own, interleaved (A B C D, A B C D, ...) for
--rounds rounds with the same settings and records. Reports medians and spread over the
rounds and ratios against aiokafka (docs/benchmarks.md explains every column). Compare
ratios rather than absolute numbers: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from benchmarks import _bench_report as report
from benchmarks._bench_clients import CLIENTS
from benchmarks._bench_run import Plan, machine, run_plan, tansu_version
from benchmarks._bench_scenarios import DEFAULT, QUICK, SCENARIOS, Scenario


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=(__doc__ or "").split("\n\n")[0]
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--scenario", nargs="+", choices=list(SCENARIOS), help="run these")
    which.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    which.add_argument("--all", action="store_true", help="every scenario (the default)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=100_000, help="per throughput run")
    parser.add_argument("--rate", type=int, default=5_000, help="latency: offered msg/s")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help=f"comma-separated: {','.join(CLIENTS)}"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per run, seconds")
    parser.add_argument("--bootstrap-servers", help="use this cluster instead of Tansu")
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    parser.add_argument("--markdown", action="store_true", help="print the report as Markdown")
    parser.add_argument("--charts", type=Path, help="write PNG charts to this directory")
    args = parser.parse_args(argv)
    unknown = set(args.clients.split(",")) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients {sorted(unknown)}; choose from {CLIENTS}")
    return args


def chosen_scenarios(args: argparse.Namespace) -> list[Scenario]:
    names = args.scenario or (QUICK if args.quick else DEFAULT)
    return [SCENARIOS[name] for name in names]


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def broker(bootstrap_servers: str | None) -> Iterator[tuple[str, str]]:
    """The cluster's address and a description of it: the given one, or a fresh Tansu."""
    if bootstrap_servers:
        yield bootstrap_servers, f"external cluster at {bootstrap_servers}"
        return
    from asyncproducer.testing.tansu import TansuBroker

    with TansuBroker() as tansu:
        yield tansu.bootstrap_servers, f"{tansu_version()} (memory storage, one broker, loopback)"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    with broker(args.bootstrap_servers) as (servers, description):
        plan = Plan(
            scenarios=chosen_scenarios(args),
            clients=args.clients.split(","),
            rounds=args.rounds,
            records=args.records,
            rate=args.rate,
            latency_seconds=args.latency_seconds,
            timeout_s=args.timeout,
            bootstrap_servers=servers,
        )
        progress(f"broker: {description}")
        runs, skipped = run_plan(plan, progress)
    settings = {
        "records": args.records,
        "rounds": args.rounds,
        "rate": args.rate,
        "latency_seconds": args.latency_seconds,
        "scenarios": {s.name: s.description for s in plan.scenarios},
    }
    doc = report.document(
        runs=runs,
        skipped=skipped,
        settings=settings,
        machine=machine(description),
        duration_s=time.monotonic() - started,
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(report.dumps(doc))
    if args.charts:
        from benchmarks._bench_charts import write_charts

        summaries = [report.summary_from_dict(s) for s in doc["summary"]]
        for path in write_charts(summaries, args.charts):
            progress(f"wrote {path}")
    text = report.markdown(doc)
    print(text if args.markdown else report.plain(text))
    return 0 if all(run.get("ok") for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
