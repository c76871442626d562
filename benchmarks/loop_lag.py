"""Event-loop lag: how long a producer holds the loop it shares with the application.

    python -m benchmarks.loop_lag [--seconds 3] [--clients asyncproducer,aiokafka]
                                  [--loop asyncio|uvloop] [--quick] [--markdown]
                                  [--hold-futures] [--gc-freeze] [--pin-loop CPU]
                                  [--bootstrap-servers HOST:PORT]

A web service runs its producer on the loop that serves its requests: every millisecond
the producer keeps the loop is a millisecond added to some request. Here a heartbeat task
on the same loop sleeps 1 ms again and again; its *lag* is how much later than asked it
wakes. The producer meanwhile sends, in each case:

- ``rate``: 50,000 records/s offered in 1 ms ticks (50 records a tick, the ticks kept on
  schedule, catching up if late), the acknowledgements taken as they come, as a service
  does: after each tick the sending task takes the result of every leading future that
  is done and lets it go (``--hold-futures``: keep every future to the end, as this
  benchmark did before 2026-12-07; the collector then walks them all, and its full
  collections, not the producer, set the maxima);
- ``full``: as fast as it takes them from one task that yields to the loop every 100
  records (``asyncio.sleep(0)``, as a task serving requests would), keeping at most
  20,000 futures (then it awaits the oldest). Not taking acknowledgements as they come
  here: a turn would take the results of thousands of futures at once (up to 4.7 ms
  measured), the benchmark's own work, not the producer's;

with zstd or lz4, ``batch_size`` 1 MiB, ``linger_ms`` 5, ``acks=all`` (asyncproducer
idempotent, its default; aiokafka not: its idempotent producer fails on Tansu, see
docs/benchmarks.md), and values of 1 KiB or 100 KiB
(text-like, so that compression works: words drawn from a fixed list). The same loop
with the heartbeat alone (``idle``) is measured in the same run: the machine's own floor.

Each case runs two windows of ``--seconds`` under one started producer: the heartbeat's,
then the *request probe's*: another process sends a timestamp every millisecond on a
socket, and each one's lag is how long it waited before the loop read it, what the
loop's occupancy adds to a request (benchmarks/_lag_probes.py). Both are needed: asyncio's
selector rounds each timeout up to a whole millisecond, so whenever other work wakes the
loop shortly before the heartbeat is due, the heartbeat is late by up to a millisecond
while the loop sleeps; a request on a socket is not rounded. They run one after the other
because the probe's own wake-ups would round the heartbeat's timers.

Reported per case and client: the heartbeat's and the requests' lag p50, p99, max (ms);
the garbage collector's full collections over both windows (how many, the longest; they
walk the whole process's heap, the application's objects as much as the producer's); the
records sent in the heartbeat's window; and (on Linux) how long the loop's thread was
ready to run but waiting for a core, per second: the share of the lag that is the
machine's (the broker and the compression threads on the same cores), not the loop's.
``--quick``: one value size, rate only. ``--gc-freeze``: ``gc.freeze()`` once the
producer is started, as a service minding its latency does after start-up, so that full
collections walk only what was made since. ``--pin-loop CPU`` (Linux): the loop's thread
alone on that CPU, the broker, the other threads and the probe's sender on the others
(benchmarks/_lag_pinning.py), so that the loop's thread never waits for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks._bench_report import percentile
from benchmarks._lag_pinning import LoopPinning
from benchmarks._lag_probes import FullCollections, RequestProbe
from benchmarks._local_broker import client_names, given_or_tansu, table

TICK_S = 0.001
RATE = 50_000
WINDOW = 20_000
YIELD_EVERY = 100
BATCH_SIZE = 1 << 20
CLIENTS = ("asyncproducer", "aiokafka")


@dataclass(frozen=True)
class Case:
    mode: str  # "rate" or "full"
    codec: str
    value_size: int

    @property
    def name(self) -> str:
        size = f"{self.value_size // 1024} KiB"
        rate = f"{RATE:,}/s" if self.mode == "rate" else "full speed"
        return f"{rate}, {self.codec}, {size}"


@dataclass
class Result:
    client: str
    case: Case | None  # None: the idle loop
    lags_ms: list[float]
    records: int
    core_wait_ms_per_s: float | None  # None: the kernel does not say (not Linux)
    request_lags_ms: list[float]  # RequestProbe's: a timestamp a millisecond, from outside
    collections_ms: list[float]  # each full collection's length


def cases(quick: bool) -> list[Case]:
    sizes = (1024,) if quick else (1024, 100 * 1024)
    modes = ("rate",) if quick else ("rate", "full")
    return [Case(m, c, s) for m in modes for c in ("zstd", "lz4") for s in sizes]


def values(size: int, count: int = 64) -> list[bytes]:
    """Text-like values of ``size`` bytes: compressible, not trivially."""
    rng = random.Random(size)
    words = [rng.randbytes(rng.randint(2, 6)).hex() for _ in range(2000)]
    made = []
    for _ in range(count):
        text = " ".join(rng.choice(words) for _ in range(size // 5 + 1)).encode()
        made.append(text[:size])
    return made


def core_wait_s() -> float | None:
    """Seconds this thread has spent ready to run but waiting for a core (Linux's
    schedstat: CPU time, run-queue wait, time slices), or None where there is none."""
    try:
        with open("/proc/thread-self/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


async def heartbeat(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(TICK_S)
        lags.append(max(0.0, (time.perf_counter() - asked - TICK_S) * 1000))


Send = Callable[[bytes], Awaitable[Any]]  # the record's acknowledgement, when awaited


def take_acknowledged(pending: deque[Any]) -> None:
    """Take the result of every leading future that is done, and let it go."""
    while pending and pending[0].done():
        pending.popleft().result()


async def offer(
    case: Case, send: Send, seconds: float, pool: Sequence[bytes], *, hold: bool = False
) -> int:
    """Send for ``seconds`` as ``case.mode`` says (at a rate, taking acknowledgements as
    they come unless ``hold``); every record acknowledged at the end."""
    pending: deque[Any] = deque()
    sent = 0
    start = time.perf_counter()
    end = start + seconds
    if case.mode == "rate":
        per_tick = RATE // 1000
        tick = 0
        while time.perf_counter() < end:
            for _ in range(per_tick):
                pending.append(await send(pool[sent % len(pool)]))
                sent += 1
            if not hold:
                take_acknowledged(pending)
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * TICK_S - time.perf_counter()))
    else:
        while time.perf_counter() < end:
            for _ in range(YIELD_EVERY):
                pending.append(await send(pool[sent % len(pool)]))
                sent += 1
            while len(pending) > WINDOW:
                await pending.popleft()
            await asyncio.sleep(0)
    for future in pending:
        await future
    return sent


async def run_case(
    client: str,
    case: Case | None,
    bootstrap: str,
    seconds: float,
    hold: bool,
    *,
    freeze: bool = False,
    place: Callable[[int], None] | None = None,
) -> Result:
    """One case (``None``: the idle loop) in two windows of ``seconds`` under one started
    producer, each sending as ``case`` says: the heartbeat's, then the request probe's (one
    at a time: the probe's wake-ups would round the heartbeat's timers, see
    ``_lag_probes``); the full collections of both. ``freeze``: ``gc.freeze()`` once the
    producer is started, as a service does after start-up. ``place``: called with the
    probe's sender's pid (``LoopPinning.place``)."""
    if case is None:  # the idle loop: the heartbeat alone, then the probe alone
        return await _windows(client, None, lambda: asyncio.sleep(seconds, 0), place)
    async with _producer(client, case, bootstrap) as send_to:
        topic = f"loop-lag-{client}"

        async def send(value: bytes) -> Any:
            return await send_to(topic, value)

        await send(b"warm-up")  # metadata, connections, producer id: not measured
        pool = values(case.value_size)  # made before the measured window, not in it
        if freeze:
            gc.freeze()
        try:
            return await _windows(
                client, case, lambda: offer(case, send, seconds, pool, hold=hold), place
            )
        finally:
            if freeze:
                gc.unfreeze()


async def _windows(
    client: str,
    case: Case | None,
    work: Callable[[], Awaitable[int]],
    place: Callable[[int], None] | None,
) -> Result:
    lags: list[float] = []
    stop = asyncio.Event()
    with FullCollections() as collections:
        waited_before, started = core_wait_s(), time.perf_counter()
        beat = asyncio.create_task(heartbeat(lags, stop))
        records = await work()
        stop.set()
        await beat
        waited_after, elapsed = core_wait_s(), time.perf_counter() - started
        probe = RequestProbe(place)
        await probe.start()
        try:
            probe.recording = True
            await work()
            probe.recording = False
        finally:
            probe.close()
    if waited_before is None or waited_after is None:
        core_wait = None
    else:
        core_wait = (waited_after - waited_before) * 1000 / elapsed
    return Result(
        client,
        case,
        lags,
        records,
        core_wait,
        request_lags_ms=probe.lags_ms,
        collections_ms=collections.pauses_ms,
    )


class _producer:
    """A started producer of ``client`` with the case's settings; ``send(topic, value)``
    returns the record's future (what awaiting gives the acknowledgement)."""

    def __init__(self, client: str, case: Case, bootstrap: str) -> None:
        self.client, self.case, self.bootstrap = client, case, bootstrap
        self.producer: Any = None

    async def __aenter__(self) -> Callable[[str, bytes], Awaitable[Any]]:
        common = {"linger_ms": 5, "compression_type": self.case.codec}
        if self.client == "asyncproducer":
            from asyncproducer import Producer

            self.producer = Producer(
                self.bootstrap, batch_size=BATCH_SIZE, max_request_size=4 * BATCH_SIZE, **common
            )
            await self.producer.start()
            return self.producer.send  # type: ignore[no-any-return]
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            max_batch_size=BATCH_SIZE,
            max_request_size=4 * BATCH_SIZE,
            acks="all",  # idempotence off: aiokafka's InitProducerId fails on Tansu
            **common,
        )
        await self.producer.start()
        return self.producer.send  # type: ignore[no-any-return]

    async def __aexit__(self, *exc: object) -> None:
        if self.client == "asyncproducer":
            await self.producer.close()
        else:
            await self.producer.stop()


def measure(
    clients: Sequence[str],
    bootstrap: str,
    seconds: float,
    quick: bool,
    loop: str,
    hold: bool,
    *,
    freeze: bool = False,
    pinning: LoopPinning | None = None,
) -> list[Result]:
    """Every case for every client, interleaved; with ``pinning``, the calling thread
    (the loops') takes its CPU first."""
    if pinning is not None:
        pinning.take_for_the_loop()
    runner = _runner(loop)

    place = None if pinning is None else pinning.place

    def one(client: str, case: Case | None) -> Result:
        return runner(run_case(client, case, bootstrap, seconds, hold, freeze=freeze, place=place))

    results = [one("idle", None)]
    for case in cases(quick):
        for client in clients:  # interleaved: each case's clients back to back
            results.append(one(client, case))
    return results


def _runner(loop: str) -> Callable[[Awaitable[Result]], Result]:
    if loop == "uvloop":
        import uvloop

        return lambda coro: uvloop.run(coro)  # type: ignore[arg-type]
    return lambda coro: asyncio.run(coro)  # type: ignore[arg-type]


def report(results: Sequence[Result], *, markdown: bool, loop: str) -> str:
    lines = [
        f"| case ({loop}) | client | heartbeat p50 / p99 / max (ms) | request p50 / p99 / max "
        "(ms) | full collections: count, longest (ms) | records | waiting for a core (ms/s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        case = "idle loop" if r.case is None else r.case.name
        wait = "n/a" if r.core_wait_ms_per_s is None else f"{r.core_wait_ms_per_s:.0f}"
        collections = f"{len(r.collections_ms)}, {max(r.collections_ms, default=0):.1f}"
        lines.append(
            f"| {case} | {r.client} | {_spread(r.lags_ms)} | {_spread(r.request_lags_ms)} "
            f"| {collections} | {r.records:,} | {wait} |"
        )
    return table(lines, markdown=markdown)


def _spread(lags: list[float]) -> str:
    """p50 / p99 / max (nearest rank), or n/a for none."""
    if not lags:
        return "n/a"
    ordered = sorted(lags)
    return " / ".join(f"{percentile(ordered, p):.2f}" for p in (50, 99, 100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--bootstrap-servers")
    parser.add_argument(
        "--hold-futures",
        action="store_true",
        help="at a rate, keep every record's future to the end of its case (as before 2026-12-07)",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() once the producer is started, as a latency-minded service does",
    )
    parser.add_argument(
        "--pin-loop",
        type=int,
        metavar="CPU",
        help="Linux: the loop's thread alone on this CPU, everything else of the run "
        "(the embedded broker included) on the others",
    )
    args = parser.parse_args()
    clients = client_names(parser, args.clients, CLIENTS)
    pinning = None
    if args.pin_loop is not None:
        try:
            pinning = LoopPinning.for_cpu(args.pin_loop)
        except ValueError as exc:
            parser.error(f"--pin-loop: {exc}")
        pinning.keep_off()  # before the broker starts: it inherits the other CPUs
    with given_or_tansu(args.bootstrap_servers) as bootstrap:
        results = measure(
            clients,
            bootstrap,
            args.seconds,
            args.quick,
            args.loop,
            args.hold_futures,
            freeze=args.gc_freeze,
            pinning=pinning,
        )
    if pinning is not None:
        print(f"({pinning.describe(embedded_broker=args.bootstrap_servers is None)})")
    print(report(results, markdown=args.markdown, loop=args.loop))


if __name__ == "__main__":
    main()
