"""Cold start: a new process's import, start and first acknowledgement, against aiokafka.

    python -m benchmarks.cold_start [--rounds 7] [--clients asyncproducer,aiokafka]
                                    [--bootstrap-servers HOST:PORT] [--markdown]

What a serverless function, a CLI or a short job pays before its first record is safe:
each run is a fresh interpreter (``sys.executable``) that imports the client, starts a
producer, sends one 100-byte record and awaits its acknowledgement, then closes, on
asyncio. Each client runs with Hypothesis importable (every test environment has it, and
so do some production images) and with it hidden (``sys.modules["hypothesis"] = None``
before anything is imported: exactly what ``import hypothesis`` meets where it is not
installed). The variants are interleaved (A B C D, A B C D, ...) for ``--rounds`` rounds
after a warm-up round that fills the OS's file cache.

Reported per variant, medians of the rounds:

- ``import``: the client's import, measured inside the process;
- ``started``: from the first line the child runs to ``start()`` returning (import,
  bootstrap connection, metadata; asyncproducer's idempotent default, its producer id);
- ``to first ack``: from the first line the child runs (after the interpreter's own
  start-up, which is the same for every client) to the acknowledgement;
- ``process``: the whole process, spawn to exit (start-up and close included);
- ``CPU``: the child's user + system time, interpreter start-up and close included
  (``RUSAGE_CHILDREN``);
- ``peak RSS``: the child's maximum resident set (``VmHWM``; Linux);
- which heavy modules ended up imported (``trio``, ``hypothesis``, ``pytest``).

Each client's package has its bytecode written first (``__pycache__``), as pip writes it
when it installs a wheel: a source checkout would otherwise compile every module at
each import (with ``PYTHONDONTWRITEBYTECODE`` set, always).

The clients run with their own defaults (asyncproducer: idempotent, ``acks=all``,
``linger_ms=5``: one InitProducerId round trip and up to 5 ms before the first batch goes;
aiokafka: ``acks=1``, no idempotence, ``linger_ms=0``), as a user starting each gets them;
``asyncproducer:aiokafka-defaults`` (in ``--clients``) is asyncproducer with aiokafka's.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks._local_broker import client_names, given_or_tansu, table

TOPIC = "cold-start"
AIOKAFKA_DEFAULTS = "asyncproducer:aiokafka-defaults"
"""asyncproducer with ``acks=1``, no idempotence, ``linger_ms=0`` (``--clients`` name)."""

# The child: everything it measures goes to stdout as one JSON line. Its clock starts at
# the first line the interpreter runs, after Python's own start-up (which is the same for
# every client, and in the CPU and the wall-clock figures).
_CHILD_PRELUDE = """
import time
_t0 = time.perf_counter()
import os, sys, json
if os.environ["COLD_START_HIDE_HYPOTHESIS"] == "1":
    sys.modules["hypothesis"] = None
"""

_ASYNCPRODUCER = """
import asyncio
_t1 = time.perf_counter()
from asyncproducer import Producer
_t2 = time.perf_counter()

async def main():
    global _ts
    producer = Producer(os.environ["BOOTSTRAP"]%s)
    await producer.start()
    _ts = time.perf_counter()
    try:
        await producer.send_and_wait(os.environ["TOPIC"], b"v" * 100)
        return time.perf_counter()
    finally:
        await producer.close()

_t3 = asyncio.run(main())
"""

_CHILDREN = {
    "asyncproducer": _ASYNCPRODUCER % "",
    # The same library with aiokafka's defaults: what the library costs, apart from what
    # its defaults ask for (an InitProducerId round trip, up to 5 ms of linger).
    AIOKAFKA_DEFAULTS: _ASYNCPRODUCER % ", acks=1, enable_idempotence=False, linger_ms=0",
    "aiokafka": """
import asyncio
_t1 = time.perf_counter()
from aiokafka import AIOKafkaProducer
_t2 = time.perf_counter()

async def main():
    global _ts
    producer = AIOKafkaProducer(bootstrap_servers=os.environ["BOOTSTRAP"])
    await producer.start()
    _ts = time.perf_counter()
    try:
        await producer.send_and_wait(os.environ["TOPIC"], b"v" * 100)
        return time.perf_counter()
    finally:
        await producer.stop()

_t3 = asyncio.run(main())
""",
}

_CHILD_REPORT = """
print(json.dumps({
    "import_s": _t2 - _t1,
    "started_s": _ts - _t0,
    "first_ack_s": _t3 - _t0,
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child forked from a
    # large parent would report the parent's.
    "maxrss_kib": next(
        int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")
    ),
    "modules": sorted(m for m in ("trio", "hypothesis", "pytest") if sys.modules.get(m)),
}))
"""


@dataclass
class Variant:
    client: str
    hypothesis: bool
    runs: list[dict[str, float]] = field(default_factory=list)
    modules: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"{self.client}, Hypothesis {'installed' if self.hypothesis else 'absent'}"

    def median(self, key: str) -> float:
        return statistics.median(run[key] for run in self.runs)


def run_once(variant: Variant, bootstrap: str) -> dict[str, float]:
    """One fresh process of ``variant``; its figures."""
    env = dict(
        os.environ,
        BOOTSTRAP=bootstrap,
        TOPIC=TOPIC,
        COLD_START_HIDE_HYPOTHESIS="0" if variant.hypothesis else "1",
    )
    code = _CHILD_PRELUDE + _CHILDREN[variant.client] + _CHILD_REPORT
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode != 0:
        raise RuntimeError(f"{variant.name} failed:\n{child.stderr}")
    report = json.loads(child.stdout.strip().splitlines()[-1])
    variant.modules.update(report["modules"])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "import_s": report["import_s"],
        "started_s": report["started_s"],
        "first_ack_s": report["first_ack_s"],
        "process_s": wall,
        "cpu_s": cpu,
        "maxrss_mib": report["maxrss_kib"] / 1024,
    }


def measure(clients: Sequence[str], bootstrap: str, rounds: int) -> list[Variant]:
    variants = [Variant(c, h) for c in clients for h in (True, False)]
    for variant in variants:  # warm-up: the OS's file cache, the topic created
        run_once(variant, bootstrap)
    for _ in range(rounds):
        for variant in variants:
            variant.runs.append(run_once(variant, bootstrap))
    return variants


def report(variants: Sequence[Variant], *, markdown: bool) -> str:
    baseline = {v.hypothesis: v for v in variants if v.client == "aiokafka"}
    header = (
        "| client | import (ms) | started (ms) | to first ack (ms) | process (ms) | CPU (ms) | "
        "peak RSS (MiB) | CPU vs aiokafka | RSS vs aiokafka | heavy modules imported |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for v in variants:
        base = baseline.get(v.hypothesis)
        ratio_cpu = f"{v.median('cpu_s') / base.median('cpu_s'):.2f}x" if base else "n/a"
        ratio_rss = f"{v.median('maxrss_mib') / base.median('maxrss_mib'):.2f}x" if base else ""
        lines.append(
            f"| {v.name} | {v.median('import_s') * 1000:.0f} | "
            f"{v.median('started_s') * 1000:.0f} | {v.median('first_ack_s') * 1000:.0f} | "
            f"{v.median('process_s') * 1000:.0f} | "
            f"{v.median('cpu_s') * 1000:.0f} | "
            f"{v.median('maxrss_mib'):.1f} | {ratio_cpu} | {ratio_rss} | "
            f"{', '.join(sorted(v.modules)) or 'none'} |"
        )
    return table(lines, markdown=markdown)


def compile_bytecode(clients: list[str]) -> None:
    """Write every client package's bytecode (``__pycache__``), as pip does when it
    installs a wheel: a source checkout run with ``PYTHONDONTWRITEBYTECODE`` (or never
    imported before) would compile each module at every import, ~100 ms for this one,
    which no installed client pays."""
    for client in clients:
        package = importlib.util.find_spec(client.split(":")[0])
        if package is not None and package.submodule_search_locations:
            for folder in package.submodule_search_locations:
                compileall.compile_dir(folder, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--clients", default=f"asyncproducer,{AIOKAFKA_DEFAULTS},aiokafka")
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    clients = client_names(parser, args.clients, _CHILDREN)
    compile_bytecode(clients)
    with given_or_tansu(args.bootstrap_servers) as bootstrap:
        variants = measure(clients, bootstrap, args.rounds)
    print(report(variants, markdown=args.markdown))
    print(f"\nmedians of {args.rounds} interleaved rounds, one fresh process each, on asyncio")


if __name__ == "__main__":
    main()
