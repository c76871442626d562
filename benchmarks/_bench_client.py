"""One client, one run, in a process of its own: prints one JSON line.

    python -m benchmarks._bench_client --client NAME --scenario JSON

Each client gets a fresh process so its CPU time and peak memory are its own, and a
client's threads (librdkafka's) or leftovers cannot slow the next one. After one
acknowledged warm-up record (connections and metadata ready), it measures the records
from the first send until the last is acknowledged: wall time, the process's CPU time
(every thread's: librdkafka's included) and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import _bench_clients as clients
from benchmarks import _bench_drive as drive
from benchmarks._bench_report import percentile
from benchmarks._bench_scenarios import Payloads, RunSpec

WARM_UP = b"warm-up"


@dataclass
class Meter:
    """Wall and CPU seconds between start() and stop()."""

    wall_s: float = 0.0
    user_s: float = 0.0
    system_s: float = 0.0
    _started: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))

    def start(self) -> None:
        self._started = (time.perf_counter(), *_cpu_seconds())

    def stop(self) -> None:
        wall, user, system = self._started
        self.wall_s = time.perf_counter() - wall
        now_user, now_system = _cpu_seconds()
        self.user_s, self.system_s = now_user - user, now_system - system

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s


def _cpu_seconds() -> tuple[float, float]:
    """User and system CPU seconds of the whole process, every thread (getrusage counts
    microseconds; os.times() 10 ms clock ticks)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def peak_rss_mb() -> float:
    """The process's peak resident memory.

    /proc's VmHWM first: on Linux ``ru_maxrss`` survives exec, so a process started by
    a big parent reports at least the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def warm_up(peer: drive.AsyncClient) -> None:
    """One record, acknowledged: connections open, the topic's metadata known (and for a
    transactional producer, one transaction committed: the coordinator found too)."""
    if peer.transaction is None:
        future = await peer.send(WARM_UP, None)
        await peer.flush()  # AIOProducer holds records back until flushed or 1 s passes
    else:
        async with peer.transaction():
            future = await peer.send(WARM_UP, None)
    await future


async def run_async(client: str, spec: RunSpec, data: Payloads, tally: drive.Tally) -> Meter:
    meter = Meter()
    latency = spec.scenario.is_latency
    if client in (clients.ASYNCPRODUCER, clients.ASYNCPRODUCER_BATCH):
        async with clients.open_asyncproducer(spec) as (peer, producer):
            await warm_up(peer)
            meter.start()
            if client == clients.ASYNCPRODUCER_BATCH:
                send_batch, make_record = clients.batch_api(producer, spec, data)
                if peer.transaction is not None:
                    await drive.throughput_batch_transactional(
                        send_batch, make_record, peer.transaction, spec, tally
                    )
                else:
                    run = drive.latency_batch if latency else drive.throughput_batch
                    await run(send_batch, make_record, spec, tally)
            else:
                await drive_async(peer, spec, data, tally)
            meter.stop()
        return meter
    opener = clients.open_aiokafka if client == clients.AIOKAFKA else clients.open_confluent_aio
    async with opener(spec) as peer:
        await warm_up(peer)
        meter.start()
        await drive_async(peer, spec, data, tally)
        meter.stop()
    return meter


async def drive_async(
    peer: drive.AsyncClient, spec: RunSpec, data: Payloads, tally: drive.Tally
) -> None:
    """The scenario's loop for a client behind ``send()``."""
    if spec.scenario.is_latency:
        await drive.latency(peer, spec, data, tally)
    elif spec.scenario.is_transactional:
        await drive.throughput_transactional(peer, spec, data, tally)
    else:
        await drive.throughput(peer, spec, data, tally)


async def run_async_bounded(
    client: str, spec: RunSpec, data: Payloads, tally: drive.Tally
) -> Meter:
    async with asyncio.timeout(spec.timeout_s):
        return await run_async(client, spec, data, tally)


def run_sync(spec: RunSpec, data: Payloads, tally: drive.Tally) -> Meter:
    deadline = time.monotonic() + spec.timeout_s
    peer = clients.SyncConfluent(spec)  # with a transactional id: init_transactions()
    if spec.scenario.is_transactional:
        peer.producer.begin_transaction()
    peer.produce(WARM_UP, None, lambda *_: None, deadline)
    if spec.scenario.is_transactional:
        peer.producer.commit_transaction(max(0.0, deadline - time.monotonic()))
    peer.flush(deadline)
    meter = Meter()
    meter.start()
    if spec.scenario.is_latency:
        peer.latency(spec, data, tally, deadline)
    elif spec.scenario.is_transactional:
        peer.transactional(spec, data, tally, deadline)
    else:
        peer.throughput(spec, data, tally, deadline)
    meter.stop()
    return meter


def run(client: str, spec: RunSpec) -> dict[str, Any]:
    """The run's result; ``ok`` is False if it failed, timed out or lost records."""
    data = Payloads(spec.scenario.value_size, spec.scenario.keyed)
    tally = drive.Tally(spec.records, latencies=spec.scenario.is_latency)
    result: dict[str, Any] = {"client": client, "scenario": spec.scenario.name}
    try:
        if client == clients.CONFLUENT:
            meter = run_sync(spec, data, tally)
        else:
            meter = asyncio.run(run_async_bounded(client, spec, data, tally))
    except TimeoutError:
        result["error"] = f"timed out after {spec.timeout_s:g} s"
        meter = None
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        meter = None
    result |= counts(spec, tally)
    if meter is not None:
        result |= rates(spec, meter, data)
    if spec.scenario.is_latency:
        result |= latencies(tally.latencies())
    result["ok"] = "error" not in result and tally.failed == 0 and tally.acked == spec.records
    if tally.first_error and "error" not in result:
        result["error"] = tally.first_error
    result["note"] = clients.note(client, spec.scenario)
    return result


def counts(spec: RunSpec, tally: drive.Tally) -> dict[str, Any]:
    return {
        "records": spec.records,
        "acked": tally.acked,
        "failed": tally.failed,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def rates(spec: RunSpec, meter: Meter, data: Payloads) -> dict[str, Any]:
    payload = sum(data.size(i) for i in range(spec.records))
    return {
        "wall_s": round(meter.wall_s, 4),
        "cpu_s": round(meter.cpu_s, 4),
        # The kernel's share (socket writes; on loopback it also carries the receiving
        # side's work) grows with the bytes sent, not the records.
        "system_s": round(meter.system_s, 4),
        "msgs_per_s": round(spec.records / meter.wall_s, 1),
        "mb_per_s": round(payload / meter.wall_s / 1e6, 3),
        "cpu_s_per_million": round(meter.cpu_s / spec.records * 1e6, 3),
    }


def latencies(ordered: list[float]) -> dict[str, Any]:
    if not ordered:
        return {}
    return {
        "p50_ms": round(percentile(ordered, 50) * 1000, 3),
        "p99_ms": round(percentile(ordered, 99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._bench_client")
    parser.add_argument("--client", required=True, choices=clients.CLIENTS)
    parser.add_argument("--scenario", required=True, help="a RunSpec as JSON")
    args = parser.parse_args(argv)
    # Measure each client as a production install runs it. The dev environment has the
    # test-only hypothesis package, which kio (asyncproducer's protocol schemas) imports
    # when present: ~30,000 more live objects, ~20 MB of RSS and slower garbage
    # collection that no user's service pays. None in sys.modules makes that import fail
    # as if the package were absent. (The clients import their libraries after this.)
    sys.modules.setdefault("hypothesis", None)  # type: ignore[arg-type]
    result = run(args.client, RunSpec.from_json(args.scenario))
    print(json.dumps(result), flush=True)
    sys.stderr.flush()
    # A peer that failed may leave threads behind (librdkafka's, an executor's blocked
    # in flush()) that would keep the process alive: the result is out, so leave now.
    os._exit(0)


if __name__ == "__main__":
    main()
