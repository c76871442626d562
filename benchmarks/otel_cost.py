"""What OpenTelemetry instrumentation costs per record (CPU time of this process).

    python -m benchmarks.otel_cost [--records 20000] [--rounds 5] [--broker tansu|fake]
                                   [--backend asyncio|uvloop|trio]

One producer sends ``--records`` records of 100 bytes with ``send()`` from one task and
then awaits every future (send() + acknowledgement), once per variant, interleaved
(A B C ..., A B C ..., ...) for ``--rounds`` rounds after a warm-up round:

- ``plain``: not instrumented;
- ``noop``: instrumented with the API's no-op providers (OpenTelemetry installed, no SDK
  configured): the wrappers alone;
- ``sdk``: instrumented with the SDK: a ``BatchSpanProcessor`` whose exporter drops the
  spans (its thread's CPU counts too; a real exporter adds its own encoding) and a
  ``MeterProvider`` whose reader is never collected; ``sdk traces`` and ``sdk metrics``
  have the SDK for one signal and the no-op provider for the other (where the cost goes),
  ``sdk 1% traced`` samples 1 trace in 100 (``ParentBased(TraceIdRatioBased(0.01))``);
- ``batch plain`` / ``batch sdk``: the same records through ``send_batch()`` (with a
  ``create`` span per record when instrumented).

Reported: CPU microseconds per record (median of the rounds and their spread), the ratio
to the uninstrumented run of the same API, and the microseconds instrumentation adds.
``time.process_time`` counts every thread of the process: with ``--broker fake`` the
in-process brokers' work is in every figure (the added microseconds are still the
instrumentation's); ``tansu`` (the default, if its binary is found) runs the broker in
its own process, so the figures are the client's alone.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import anyio
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NoOpTracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from asyncproducer import Producer
from asyncproducer.integrations.opentelemetry import instrument_producer, uninstrument_producer

TOPIC = "otel-cost"
VALUE = b"v" * 100


class _Dropped(SpanExporter):
    """Takes every span and keeps none: the SDK's cost without an exporter's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _Sdk:
    """An SDK setup as an application has one: batched span export, metrics aggregated."""

    def __init__(self) -> None:
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(_Dropped()))
        # What a busy service configures: 1 trace in 100 recorded (ours are all roots).
        self.sampled_provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.01)))
        self.sampled_provider.add_span_processor(BatchSpanProcessor(_Dropped()))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.sampled_provider.shutdown()
        self.meter_provider.shutdown()


async def _send_each(producer: Producer, records: int) -> None:
    futures = [await producer.send(TOPIC, VALUE) for _ in range(records)]
    for future in futures:
        await future


async def _send_batch(producer: Producer, records: int) -> None:
    await producer.send_batch([(TOPIC, VALUE)] * records)


Run = Callable[[Producer, int], Any]
VARIANTS: dict[str, tuple[Run, str | None]] = {
    "plain": (_send_each, None),
    "noop": (_send_each, "noop"),
    "sdk traces": (_send_each, "traces"),
    "sdk metrics": (_send_each, "metrics"),
    "sdk": (_send_each, "sdk"),
    "sdk 1% traced": (_send_each, "sampled"),
    "batch plain": (_send_batch, None),
    "batch sdk": (_send_batch, "sdk"),
}
"""Each variant: how records are sent, and the providers it is instrumented with."""


def _providers(kind: str, sdk: _Sdk) -> tuple[TracerProvider | NoOpTracerProvider, Any]:
    """The tracer and meter providers of a variant: the SDK's or the API's no-op ones."""
    tracer_provider: TracerProvider | NoOpTracerProvider = NoOpTracerProvider()
    if kind in ("sdk", "traces"):
        tracer_provider = sdk.tracer_provider
    elif kind == "sampled":
        tracer_provider = sdk.sampled_provider
    measured = kind in ("sdk", "metrics", "sampled")
    return tracer_provider, sdk.meter_provider if measured else NoOpMeterProvider()


async def _timed(producer: Producer, variant: str, records: int, sdk: _Sdk) -> float:
    """CPU seconds per record of one run of ``variant``."""
    run, providers = VARIANTS[variant]
    if providers is not None:
        tracer_provider, meter_provider = _providers(providers, sdk)
        instrument_producer(
            producer,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            propagator=TraceContextTextMapPropagator(),
        )
    try:
        start = time.process_time()
        await run(producer, records)
        if providers in ("sdk", "traces", "sampled"):
            sdk.tracer_provider.force_flush()  # the export thread's share, in this run
            sdk.sampled_provider.force_flush()
        return (time.process_time() - start) / records
    finally:
        uninstrument_producer(producer)


@contextlib.contextmanager
def _tansu() -> Iterator[str]:
    from asyncproducer.testing.tansu import TansuBroker

    with TansuBroker() as broker:
        yield broker.bootstrap_servers


@contextlib.asynccontextmanager
async def _fake() -> AsyncIterator[str]:
    from asyncproducer.testing.fake import FakeCluster

    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic(TOPIC, 1)
        yield cluster.bootstrap_servers


async def _measure(servers: str, records: int, rounds: int) -> dict[str, list[float]]:
    sdk = _Sdk()
    seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    try:
        async with Producer(servers, linger_ms=5) as producer:
            for variant in VARIANTS:  # warm-up: metadata, connections, the SDK's first spans
                await _timed(producer, variant, records // 10 or 1, sdk)
            for _ in range(rounds):
                for variant in VARIANTS:
                    seconds[variant].append(await _timed(producer, variant, records, sdk))
    finally:
        sdk.shutdown()
    return seconds


def _report(seconds: dict[str, list[float]], records: int, rounds: int, where: str) -> str:
    lines = [
        f"{records} records x {rounds} rounds, {where}; CPU µs per record (median, min-max)",
        f"{'variant':<14} {'µs/record':>10} {'spread':>15} {'ratio':>7} {'added µs':>9}",
    ]
    for variant, values in seconds.items():
        base = seconds["batch plain" if variant.startswith("batch") else "plain"]
        median, base_median = statistics.median(values) * 1e6, statistics.median(base) * 1e6
        spread = f"{min(values) * 1e6:.2f}-{max(values) * 1e6:.2f}"
        lines.append(
            f"{variant:<14} {median:>10.2f} {spread:>15} {median / base_median:>6.2f}x "
            f"{median - base_median:>+9.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--broker", choices=("tansu", "fake"), default=None)
    parser.add_argument("--backend", choices=("asyncio", "uvloop", "trio"), default="asyncio")
    args = parser.parse_args(argv)
    backend, options = args.backend, {}
    if backend == "uvloop":
        backend, options = "asyncio", {"use_uvloop": True}
    broker = args.broker
    if broker is None:
        from asyncproducer.testing.tansu import find_tansu_binary

        try:
            broker = "tansu" if find_tansu_binary().exists() else "fake"
        except Exception:  # not installed: the in-process cluster
            broker = "fake"

    async def run() -> dict[str, list[float]]:
        if broker == "fake":
            async with _fake() as servers:
                return await _measure(servers, args.records, args.rounds)
        with _tansu() as servers:
            return await _measure(servers, args.records, args.rounds)

    seconds = anyio.run(run, backend=backend, backend_options=options)
    print(_report(seconds, args.records, args.rounds, f"{broker} broker, {args.backend}"))


if __name__ == "__main__":
    main()
