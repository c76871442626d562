"""Running the peer benchmark: topics, one process per run, interleaved rounds.

For each scenario, the rounds run the clients one after another, each round starting one
client further on (A B C D, B C D A, C D A B, ...): whatever the noisy machine does during
a round falls on all of them, and no client always runs first after the round's topics
were created (on Apache Kafka, while its JIT was still warming up, the first run of a
round was the slowest).
Every run writes to a topic of its own (a log only it wrote), created before its round
and deleted after it: Tansu's memory storage keeps every record, and a whole run's
records (some 80 million) do not fit in the machine's memory.

A TLS scenario runs on the TLS broker, and so does its plaintext twin: each client runs
both back to back in every round (the twin first in even rounds), so the ratio of its
TLS figure to its plaintext figure compares runs seconds apart, not a round apart.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import _bench_clients as clients
from benchmarks._bench_scenarios import RunSpec, Scenario, plaintext_twin
from benchmarks._bench_verify import check_committed

ROOT = Path(__file__).resolve().parent.parent
KILL_SLACK_S = 30.0
"""How long past its own timeout a client process may take (closing, exiting) before it
is killed and the run recorded as failed."""
TOPIC_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TlsBroker:
    """Where TLS scenarios run: a TLS listener and the CA its certificate chains to, and
    the same cluster's plaintext listener for the plaintext twins (None: no twins, no
    TLS-to-plaintext ratios)."""

    bootstrap_servers: str
    cafile: str
    plaintext_servers: str | None
    description: str


@dataclass(frozen=True)
class Plan:
    scenarios: Sequence[Scenario]
    clients: Sequence[str]
    rounds: int
    records: int
    rate: int
    latency_seconds: float
    timeout_s: float
    bootstrap_servers: str
    tls_broker: TlsBroker | None = None
    no_tls_broker: str = "no TLS broker"
    """Why TLS scenarios are skipped when there is no ``tls_broker``."""
    on_tansu: bool = True
    """The main broker is the embedded Tansu (what some clients cannot run against)."""

    def spec(self, scenario: Scenario, topic: str) -> RunSpec:
        if scenario.is_latency:
            scenario = dataclasses.replace(scenario, rate=self.rate)
            records = max(1, round(self.rate * self.latency_seconds))
        else:
            records = self.records
        servers, cafile = self.target(scenario)
        return RunSpec(scenario, servers, topic, records, self.timeout_s, cafile)

    def target(self, scenario: Scenario) -> tuple[str, str | None]:
        """Where ``scenario`` runs: the bootstrap servers, and the CA file if over TLS."""
        if not scenario.tls_broker:
            return self.bootstrap_servers, None
        tls = self.tls_broker
        if tls is None:
            raise ValueError(f"scenario {scenario.name} needs a TLS broker: {self.no_tls_broker}")
        if scenario.tls:
            return tls.bootstrap_servers, tls.cafile
        if tls.plaintext_servers is None:
            raise ValueError(f"scenario {scenario.name} needs the TLS broker's plaintext listener")
        return tls.plaintext_servers, None

    def variants(self, scenario: Scenario) -> list[Scenario]:
        """``scenario``, and its plaintext twin if it is over TLS and the TLS broker has a
        plaintext listener: what each client runs in each round."""
        if scenario.tls and self.tls_broker and self.tls_broker.plaintext_servers:
            return [scenario, plaintext_twin(scenario)]
        return [scenario]

    def skip_reason(self, client: str, scenario: Scenario) -> str | None:
        if scenario.tls_broker and self.tls_broker is None:
            return self.no_tls_broker
        return clients.unavailable(client, scenario, on_tansu=self.on_tansu)


def _admin(bootstrap_servers: str, ssl_cafile: str | None = None) -> Any:
    """confluent-kafka's AdminClient (a client this project did not write, as the
    integration tests use)."""
    from confluent_kafka.admin import AdminClient

    # log_level 4: warnings and worse; librdkafka's info lines would interleave with the
    # progress lines.
    config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "log_level": 4}
    return AdminClient(config | clients.confluent_tls(ssl_cafile))


def create_topics(
    bootstrap_servers: str, topics: dict[str, int], *, ssl_cafile: str | None = None
) -> None:
    """Create ``{name: partitions}`` (over TLS, trusting ``ssl_cafile``, if given), in
    calls of at most ``PARTITIONS_PER_CALL`` partitions."""
    from confluent_kafka.cimpl import NewTopic  # what .admin re-exports, typed here

    admin = _admin(bootstrap_servers, ssl_cafile)  # alive until the futures are done
    for names in _calls(topics):
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=topics[name], replication_factor=1) for name in names],
            operation_timeout=TOPIC_TIMEOUT_S,
        )
        for future in futures.values():
            future.result(timeout=TOPIC_TIMEOUT_S)


PARTITIONS_PER_CALL = 5_000
"""Apache Kafka's controller refuses a CreateTopics that makes more than 10,000 metadata
records at once (POLICY_VIOLATION, "excessively large batch operation"): one per
partition and one per topic, so 100 topics of 100 partitions must go in two calls."""


def _calls(topics: dict[str, int]) -> list[list[str]]:
    """The topics grouped in order, each group at most ``PARTITIONS_PER_CALL`` partitions
    (a larger topic alone)."""
    calls: list[list[str]] = []
    partitions = PARTITIONS_PER_CALL
    for name, count in topics.items():
        if partitions + count > PARTITIONS_PER_CALL:
            calls.append([])
            partitions = 0
        calls[-1].append(name)
        partitions += count
    return calls


def delete_topics(
    bootstrap_servers: str, names: Sequence[str], *, ssl_cafile: str | None = None
) -> None:
    """Delete these topics, and with them the records the broker holds in memory."""
    admin = _admin(bootstrap_servers, ssl_cafile)  # alive until the futures are done
    futures = admin.delete_topics(list(names), operation_timeout=TOPIC_TIMEOUT_S)
    for future in futures.values():
        future.result(timeout=TOPIC_TIMEOUT_S)


def warm_up(
    bootstrap_servers: str, records: int, *, ssl_cafile: str | None = None, timeout_s: float = 120
) -> None:
    """Send ``records`` 100-byte records with confluent-kafka to a topic of their own,
    then delete it: a fresh JVM broker (Apache Kafka) runs its hot paths interpreted
    until the JIT has compiled them, so the first client measured would pay for that.
    In the scenarios' batches (``Scenario.batch_size``, not librdkafka's 1 MB default), so
    that the broker's per-request and per-batch paths are warmed as often as a run calls
    them."""
    from confluent_kafka import Producer

    deadline = time.monotonic() + timeout_s
    topic = f"bench-warm-up-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap_servers, {topic: 6}, ssl_cafile=ssl_cafile)
    config = {
        "bootstrap.servers": bootstrap_servers,
        "linger.ms": Scenario.linger_ms,
        "batch.size": Scenario.batch_size,
        "log_level": 4,
    }
    producer = Producer(config | clients.confluent_tls(ssl_cafile))
    value = b"w" * 100
    for _ in range(records):
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"warming up {bootstrap_servers}: queue full") from None
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(max(0.0, deadline - time.monotonic()))
    if left:
        raise TimeoutError(f"warming up {bootstrap_servers}: {left} records undelivered")
    delete_topics(bootstrap_servers, [topic], ssl_cafile=ssl_cafile)


UVLOOP_CLIENT = (
    "import asyncio, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "from benchmarks._bench_client import main; main(sys.argv[1:])"
)
"""A client process on uvloop: ``_bench_client`` as it is, its ``asyncio.run`` given
uvloop's loop by the policy set first."""


def client_command(client: str) -> list[str]:
    """The command line that runs ``client`` (``NAME`` or ``NAME@uvloop``), but for its
    ``--scenario``."""
    name, loop = clients.split_loop(client)
    if loop == clients.UVLOOP:
        return [sys.executable, "-c", UVLOOP_CLIENT, "--client", name]
    return [sys.executable, "-m", "benchmarks._bench_client", "--client", name]


def run_client(client: str, spec: RunSpec, *, on_tansu: bool = False) -> dict[str, Any]:
    """Run one client in its own process; its JSON result, or a failed one (``on_tansu``:
    the Java producer runs the kafka-clients version that works there)."""
    if client == clients.JAVA:
        from benchmarks._bench_java import run_java

        return run_java(spec, client, on_tansu=on_tansu)
    failed: dict[str, Any] = {"client": client, "scenario": spec.scenario.name, "ok": False}
    command = [*client_command(client), "--scenario", spec.to_json()]
    # The process names its client without the loop: the result carries the full name.
    return run_json_process(command, spec.timeout_s, failed) | {"client": client}


def run_json_process(
    command: list[str], timeout_s: float, failed: dict[str, Any]
) -> dict[str, Any]:
    """Run ``command`` (killed ``KILL_SLACK_S`` after ``timeout_s``); the JSON object on its
    last line of output, or ``failed`` with an ``error`` saying why there is none."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=ROOT, timeout=timeout_s + KILL_SLACK_S
        )
    except subprocess.TimeoutExpired:
        return failed | {"error": f"killed: still running {timeout_s + KILL_SLACK_S:g} s"}
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = done.stderr.strip()[-500:]
        return failed | {"error": f"exit status {done.returncode}, no result: {tail}"}
    return result


def describe(run: dict[str, Any]) -> str:
    """One progress line for a finished run."""
    if not run.get("ok"):
        return f"FAILED ({run.get('error')})"
    if "p50_ms" in run:
        return f"p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, max {run['max_ms']:.1f} ms"
    return (
        f"{run['msgs_per_s']:,.0f} msg/s, {run['cpu_s_per_million']:.1f} CPU s per M, "
        f"{run['peak_rss_mb']:.0f} MB"
    )


def topic_name(scenario: str, client: str, run_id: str, round_: int) -> str:
    """A run's own topic (legal characters only: ``aiokafka@uvloop`` -> ``aiokafka-uvloop``)."""
    return f"bench-{scenario}-{client.replace('@', '-')}-{run_id}-{round_}"


def run_plan(
    plan: Plan, progress: Callable[[str], None]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every run's result (with its round), and the (scenario, client) pairs skipped."""
    runs: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for scenario in plan.scenarios:
        chosen = []
        for client in plan.clients:
            reason = plan.skip_reason(client, scenario)
            if reason is None:
                chosen.append(client)
            else:
                progress(f"{scenario.name}: {client} skipped: {reason}")
                skipped.append({"scenario": scenario.name, "client": client, "reason": reason})
        if not chosen:
            continue
        variants = plan.variants(scenario)
        run_id = uuid.uuid4().hex[:8]
        for round_ in range(1, plan.rounds + 1):
            topics = {
                v.name: {c: topic_name(v.name, c, run_id, round_) for c in chosen} for v in variants
            }
            for variant in variants:
                servers, cafile = plan.target(variant)
                names = topics[variant.name].values()
                create_topics(servers, dict.fromkeys(names, variant.partitions), ssl_cafile=cafile)
            # A twin first in even rounds: neither always runs right after another client.
            order = variants if round_ % 2 else variants[::-1]
            for client in rotated(chosen, round_ - 1):
                for variant in order:
                    spec = plan.spec(variant, topics[variant.name][client])
                    done = run_client(
                        client, spec, on_tansu=plan.on_tansu and not variant.tls_broker
                    )
                    run = check_committed(done, spec) | {"round": round_}
                    progress(f"{variant.name} round {round_} {client}: {describe(run)}")
                    runs.append(run)
            for variant in variants:
                servers, cafile = plan.target(variant)
                delete_topics(servers, list(topics[variant.name].values()), ssl_cafile=cafile)
    return runs, skipped


def rotated(clients: Sequence[str], by: int) -> list[str]:
    """``clients`` starting at index ``by`` (modulo their number), wrapping around."""
    if not clients:
        return []
    by %= len(clients)
    return [*clients[by:], *clients[:by]]


# --------------------------------------------------------------------------- the machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def tansu_version() -> str:
    from asyncproducer.testing.tansu import find_tansu_binary

    try:
        done = subprocess.run(
            [str(find_tansu_binary()), "--version"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def java_version() -> str:
    """The first line of ``java -version`` (the JVM an Apache Kafka broker runs on)."""
    java = shutil.which("java")
    if java is None:
        return "unknown"
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if lines else "unknown"


def negotiated_tls(bootstrap_servers: str, cafile: str, timeout_s: float = 10.0) -> str:
    """The TLS version and cipher the first bootstrap server agrees on with a default
    client context of Python's ssl module (OpenSSL), as asyncproducer's and aiokafka's
    connections are made."""
    host, _, port = bootstrap_servers.split(",")[0].rpartition(":")
    context = ssl.create_default_context(cafile=cafile)
    try:
        with (
            socket.create_connection((host, int(port)), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cipher = tls.cipher()
            return f"{tls.version()} {cipher[0] if cipher else 'unknown cipher'}"
    except (OSError, ValueError) as exc:
        return f"unknown ({type(exc).__name__}: {exc})"


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "unknown"


def machine(
    broker: str, tls_broker: str | None = None, java_client: str | None = None
) -> dict[str, Any]:
    """What the numbers were measured on (``tls_broker``: where TLS scenarios ran;
    ``java_client``: the Java producer's version and JVM, if it ran)."""
    librdkafka = "not installed"
    try:
        import confluent_kafka

        librdkafka = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    packages = ["asyncproducer", "aiokafka", "confluent-kafka", "anyio", "kio"]
    tls = {"tls_broker": tls_broker} if tls_broker else {}
    java = {"java_client": java_client} if java_client else {}
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "packages": {name: _version(name) for name in packages} | {"librdkafka": librdkafka},
        "broker": broker,
        **tls,
        **java,
        "commit": git_commit(),
    }
