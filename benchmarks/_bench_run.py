"""Running the peer benchmark: topics, one process per run, interleaved rounds.

For each scenario, the rounds run the clients one after another in a fixed order (A B C
D, A B C D, ...): whatever the noisy machine does during a round falls on all of them.
Every run writes to a topic of its own (a log only it wrote), created before its round
and deleted after it: Tansu's memory storage keeps every record, and a whole run's
records (some 80 million) do not fit in the machine's memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import _bench_clients as clients
from benchmarks._bench_scenarios import RunSpec, Scenario

ROOT = Path(__file__).resolve().parent.parent
KILL_SLACK_S = 30.0
"""How long past its own timeout a client process may take (closing, exiting) before it
is killed and the run recorded as failed."""
TOPIC_TIMEOUT_S = 30.0


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

    def spec(self, scenario: Scenario, topic: str) -> RunSpec:
        if scenario.is_latency:
            scenario = dataclasses.replace(scenario, rate=self.rate)
            records = max(1, round(self.rate * self.latency_seconds))
        else:
            records = self.records
        return RunSpec(scenario, self.bootstrap_servers, topic, records, self.timeout_s)


def _admin(bootstrap_servers: str) -> Any:
    """confluent-kafka's AdminClient (a client this project did not write, as the
    integration tests use)."""
    from confluent_kafka.admin import AdminClient

    # log_level 4: warnings and worse; librdkafka's info lines would interleave with the
    # progress lines.
    return AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 4})


def create_topics(bootstrap_servers: str, topics: dict[str, int]) -> None:
    """Create ``{name: partitions}``."""
    from confluent_kafka.cimpl import NewTopic  # what .admin re-exports, typed here

    admin = _admin(bootstrap_servers)  # alive until the futures are done
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in topics.items()],
        operation_timeout=TOPIC_TIMEOUT_S,
    )
    for future in futures.values():
        future.result(timeout=TOPIC_TIMEOUT_S)


def delete_topics(bootstrap_servers: str, names: Sequence[str]) -> None:
    """Delete these topics, and with them the records the broker holds in memory."""
    admin = _admin(bootstrap_servers)  # alive until the futures are done
    futures = admin.delete_topics(list(names), operation_timeout=TOPIC_TIMEOUT_S)
    for future in futures.values():
        future.result(timeout=TOPIC_TIMEOUT_S)


def run_client(client: str, spec: RunSpec) -> dict[str, Any]:
    """Run one client in its own process; its JSON result, or a failed one."""
    failed: dict[str, Any] = {"client": client, "scenario": spec.scenario.name, "ok": False}
    command = [sys.executable, "-m", "benchmarks._bench_client", "--client", client]
    return run_json_process([*command, "--scenario", spec.to_json()], spec.timeout_s, failed)


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


def run_plan(
    plan: Plan, progress: Callable[[str], None]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every run's result (with its round), and the (scenario, client) pairs skipped."""
    runs: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for scenario in plan.scenarios:
        chosen = []
        for client in plan.clients:
            reason = clients.unavailable(client, scenario)
            if reason is None:
                chosen.append(client)
            else:
                progress(f"{scenario.name}: {client} skipped: {reason}")
                skipped.append({"scenario": scenario.name, "client": client, "reason": reason})
        run_id = uuid.uuid4().hex[:8]
        for round_ in range(1, plan.rounds + 1):
            topics = {c: f"bench-{scenario.name}-{c}-{run_id}-{round_}" for c in chosen}
            create_topics(
                plan.bootstrap_servers, dict.fromkeys(topics.values(), scenario.partitions)
            )
            for client in chosen:
                run = run_client(client, plan.spec(scenario, topics[client])) | {"round": round_}
                progress(f"{scenario.name} round {round_} {client}: {describe(run)}")
                runs.append(run)
            delete_topics(plan.bootstrap_servers, list(topics.values()))
    return runs, skipped


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


def machine(broker: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    librdkafka = "not installed"
    try:
        import confluent_kafka

        librdkafka = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    packages = ["asyncproducer", "aiokafka", "confluent-kafka", "anyio", "kio"]
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "packages": {name: _version(name) for name in packages} | {"librdkafka": librdkafka},
        "broker": broker,
        "commit": git_commit(),
    }
