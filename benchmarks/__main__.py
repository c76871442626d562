"""Peer benchmark: asyncproducer vs aiokafka vs confluent-kafka (vs the Java producer).

    python -m benchmarks [--quick | --all | --scenario NAME ...] [--rounds 3]
                         [--records 100000] [--rate 5000] [--clients NAME,...]
                         [--loop asyncio[,uvloop]] [--json PATH] [--markdown] [--charts DIR]
                         [--broker {tansu,kafka} | --bootstrap-servers HOST:PORT]
                         [--tls-bootstrap-servers HOST:PORT --tls-ca PEM
                          [--tls-plaintext-bootstrap-servers HOST:PORT]]

Starts one broker (Tansu, or with --broker kafka a single-node Apache Kafka, warmed up
first; none if --bootstrap-servers names a cluster), then for each scenario
runs every client in a process of its own, interleaved (A B C D, B C D A, ...: each
round starts one client further on) for --rounds rounds with the same settings and
records. Reports medians and spread over the rounds and ratios against aiokafka
(docs/benchmarks.md explains every column). Compare ratios rather than absolute numbers:
the machines are shared and noisy.

``--clients`` takes ``java`` too: the Java producer (kafka-clients, the Kafka version
KafkaCluster runs) in a JVM of its own, driven by a harness compiled at run time
(``_bench_java``). ``--loop asyncio,uvloop`` runs every asyncio client on uvloop as well,
as ``NAME@uvloop`` (a name ``--clients`` takes too).

The ``tls`` scenario runs on a broker with a TLS listener: one Apache Kafka node
(``KafkaCluster(listener="SSL")``, certificates made at start; Tansu 0.6.0 takes
``--cert``/``--key`` but serves plaintext), or the cluster --tls-bootstrap-servers names.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from benchmarks import _bench_report as report
from benchmarks._bench_clients import ALL_CLIENTS, CLIENTS, JAVA, LOOPS, known, with_loop
from benchmarks._bench_run import (
    Plan,
    TlsBroker,
    java_version,
    machine,
    negotiated_tls,
    run_plan,
    tansu_version,
    warm_up,
)
from benchmarks._bench_scenarios import DEFAULT, QUICK, SCENARIOS, Scenario

WARM_UP_RECORDS = 4_000_000
"""Records sent over each listener of an Apache Kafka broker the benchmark starts (the
TLS one, ``--broker kafka``) before the first round, at most ``WARM_UP_RUNS`` runs'
records (``--records``; a smoke run stays quick): it is a JVM, slow until its JIT has
compiled its paths. 1,000,000 (at most twice ``--records``) until 2026-12-07 left it
warming through the rounds: 5 rounds of base at 200,000 records, the first client of
each round in order 217,610, 305,298, 309,970, 333,156, 386,903 msg/s."""
WARM_UP_RUNS = 20
BROKERS = ["tansu", "kafka"]
KAFKA_JVM_OPTIONS = (
    "-Xmx1G",
    "-Xms1G",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
"""``--broker kafka``: the JVM options Kafka's own start scripts give a broker
(``kafka-server-start.sh``'s heap, ``kafka-run-class.sh``'s performance options), not
KafkaCluster's small, C1-only test defaults: the broker should not be what is measured."""


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
        "--clients",
        default=",".join(CLIENTS),
        help=f"comma-separated, of {','.join(ALL_CLIENTS)} (default: all but {JAVA}); "
        "an asyncio client @uvloop runs it on uvloop",
    )
    parser.add_argument(
        "--loop",
        default="asyncio",
        help=f"comma-separated event loops ({','.join(LOOPS)}) each asyncio client runs on",
    )
    parser.add_argument(
        "--broker",
        choices=BROKERS,
        default="tansu",
        help="the broker started for the run: the embedded Tansu, or one Apache Kafka node",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per run, seconds")
    parser.add_argument("--bootstrap-servers", help="use this cluster instead of Tansu")
    parser.add_argument(
        "--tls-bootstrap-servers",
        help="TLS scenarios: this cluster's TLS listener instead of a fresh Apache Kafka node",
    )
    parser.add_argument(
        "--tls-ca", type=Path, help="the PEM CA that listener's certificate chains to"
    )
    parser.add_argument(
        "--tls-plaintext-bootstrap-servers",
        help="the same cluster's plaintext listener, for the TLS-to-plaintext ratios",
    )
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    parser.add_argument("--markdown", action="store_true", help="print the report as Markdown")
    parser.add_argument("--charts", type=Path, help="write PNG charts to this directory")
    args = parser.parse_args(argv)
    loops = args.loop.split(",")
    if set(loops) - set(LOOPS):
        parser.error(f"unknown loops {sorted(set(loops) - set(LOOPS))}; choose from {LOOPS}")
    unknown = [c for c in args.clients.split(",") if not known(c)]
    if unknown:
        parser.error(f"unknown clients {unknown}; choose from {ALL_CLIENTS} (async ones @uvloop)")
    args.client_list = client_list(args.clients.split(","), loops)
    if args.bootstrap_servers and args.broker != "tansu":
        parser.error("--bootstrap-servers names the cluster: no --broker with it")
    if (args.tls_bootstrap_servers is None) != (args.tls_ca is None):
        parser.error("--tls-bootstrap-servers and --tls-ca go together")
    if args.tls_plaintext_bootstrap_servers and not args.tls_bootstrap_servers:
        parser.error("--tls-plaintext-bootstrap-servers needs --tls-bootstrap-servers")
    return args


def client_list(names: Sequence[str], loops: Sequence[str]) -> list[str]:
    """Each client on each loop it can run on, one after the other (``aiokafka``,
    ``aiokafka@uvloop``, ...), without repeats; a name with its loop stays as it is."""
    out: list[str] = []
    for name in names:
        for variant in [name] if "@" in name else [with_loop(name, loop) for loop in loops]:
            if variant not in out:
                out.append(variant)
    return out


def chosen_scenarios(args: argparse.Namespace) -> list[Scenario]:
    names = args.scenario or (QUICK if args.quick else DEFAULT)
    return [SCENARIOS[name] for name in names]


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def broker(
    bootstrap_servers: str | None,
    needed: bool = True,
    kind: str = "tansu",
    warm_up_records: int = WARM_UP_RECORDS,
) -> Iterator[tuple[str, str]]:
    """The cluster's address and a description of it: the given one, or a fresh Tansu or
    (``kind`` "kafka") single-node Apache Kafka (none if ``needed`` is false: every
    scenario chosen runs on the TLS broker)."""
    if not needed:
        yield "", "none (every scenario chosen runs on the TLS broker)"
        return
    if bootstrap_servers:
        yield bootstrap_servers, f"external cluster at {bootstrap_servers}"
        return
    if kind == "kafka":
        with kafka_broker(warm_up_records) as found:
            yield found
        return
    from asyncproducer.testing.tansu import TansuBroker

    with TansuBroker() as tansu:
        yield tansu.bootstrap_servers, f"{tansu_version()} (memory storage, one broker, loopback)"


@contextlib.contextmanager
def kafka_broker(warm_up_records: int) -> Iterator[tuple[str, str]]:
    """One Apache Kafka node (KRaft, PLAINTEXT listener), warmed up as the TLS one is.
    Topics are created as on Tansu, explicitly (``create_topics``), each with its
    scenario's partition count: the broker's auto-creation (1 partition) never runs."""
    from asyncproducer.testing.kafka import KafkaCluster

    with KafkaCluster(brokers=1, jvm_options=KAFKA_JVM_OPTIONS) as cluster:
        servers = cluster.bootstrap_servers
        started = time.monotonic()
        warm_up(servers, warm_up_records)
        took = time.monotonic() - started
        progress(f"Kafka broker warmed up: {warm_up_records:,} records in {took:.1f} s")
        yield (
            servers,
            (
                f"Apache Kafka {cluster.version} (KRaft, one node, loopback; {java_version()}; "
                f"Kafka's start scripts' JVM options: {' '.join(KAFKA_JVM_OPTIONS[:4])} ...)"
            ),
        )


@contextlib.contextmanager
def tls_broker(args: argparse.Namespace, needed: bool) -> Iterator[TlsBroker | str]:
    """Where TLS scenarios run, or why they cannot: the cluster the options name, or a
    fresh single-node Apache Kafka with an SSL listener (certificates made at start).

    Not Tansu: its 0.6.0 takes ``--cert`` and ``--key`` but refuses them together (one
    clap argument group) and, given ``--cert`` alone, still serves plaintext (it builds
    a TLS acceptor it never uses). The Kafka node's plaintext twin listener is its PLAINTEXT
    INTERNAL one: the same broker, the same JVM and settings, only without TLS.
    """
    if not needed:
        yield "no TLS scenario chosen"
        return
    if args.tls_bootstrap_servers:
        servers, ca = args.tls_bootstrap_servers, str(args.tls_ca)
        yield TlsBroker(
            servers,
            ca,
            args.tls_plaintext_bootstrap_servers,
            f"external cluster at {servers}, {negotiated_tls(servers, ca)}",
        )
        return
    from asyncproducer.testing.kafka import KafkaCluster, KafkaToolMissingError

    cluster = KafkaCluster(listener="SSL")
    try:
        cluster.start()
    except KafkaToolMissingError as exc:
        yield f"no Apache Kafka broker for TLS: {exc}"
        return
    try:
        node, ca = cluster.nodes[0], str(cluster.tls.ca)
        yield TlsBroker(
            cluster.bootstrap_servers,
            ca,
            f"{node.host}:{node.internal_port}",
            f"Apache Kafka {cluster.version} (KRaft, one node, loopback; {java_version()}; "
            f"SSL listener, {negotiated_tls(cluster.bootstrap_servers, ca)}, EC P-256 "
            "certificate; plaintext twin on the same node's PLAINTEXT listener)",
        )
    finally:
        cluster.close()


def warm_up_tls_broker(tls: TlsBroker, records: int) -> None:
    """Warm each listener of the TLS broker up before the first round (it is a JVM)."""
    started = time.monotonic()
    warm_up(tls.bootstrap_servers, records, ssl_cafile=tls.cafile)
    if tls.plaintext_servers:
        warm_up(tls.plaintext_servers, records)
    took = time.monotonic() - started
    progress(f"TLS broker warmed up: {records:,} records per listener in {took:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    scenarios = chosen_scenarios(args)
    needed = not all(s.tls_broker for s in scenarios)
    warm_up_records = min(WARM_UP_RECORDS, WARM_UP_RUNS * args.records)
    with (
        broker(args.bootstrap_servers, needed, args.broker, warm_up_records) as (
            servers,
            description,
        ),
        tls_broker(args, any(s.tls_broker for s in scenarios)) as tls,
    ):
        plan = Plan(
            scenarios=scenarios,
            clients=args.client_list,
            rounds=args.rounds,
            records=args.records,
            rate=args.rate,
            latency_seconds=args.latency_seconds,
            timeout_s=args.timeout,
            bootstrap_servers=servers,
            tls_broker=tls if isinstance(tls, TlsBroker) else None,
            no_tls_broker=tls if isinstance(tls, str) else "",
            on_tansu=not args.bootstrap_servers and args.broker == "tansu",
        )
        progress(f"broker: {description}")
        if plan.tls_broker is not None:
            progress(f"TLS broker: {plan.tls_broker.description}")
            warm_up_tls_broker(plan.tls_broker, warm_up_records)
        runs, skipped = run_plan(plan, progress)
    settings = {
        "records": args.records,
        "rounds": args.rounds,
        "rate": args.rate,
        "latency_seconds": args.latency_seconds,
        "scenarios": {v.name: v.description for s in plan.scenarios for v in plan.variants(s)},
    }
    doc = report.document(
        runs=runs,
        skipped=skipped,
        settings=settings,
        machine=machine(
            description,
            plan.tls_broker.description if plan.tls_broker else None,
            java_client(plan.clients, plan.on_tansu),
        ),
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


def java_client(names: Sequence[str], on_tansu: bool) -> str | None:
    """The Java producer's version and JVM, if it is among the clients."""
    if JAVA not in names:
        return None
    from benchmarks._bench_java import kafka_clients_version

    version = kafka_clients_version(on_tansu)
    why = " (4.x: Tansu 0.6.0 closes connections on its ApiVersions v5)" if on_tansu else ""
    return f"kafka-clients {version}{why} on {java_version()}, default JVM options"


if __name__ == "__main__":
    sys.exit(main())
