"""The Java producer as a peer: kafka-clients driven by a tiny harness compiled at run time.

The harness (``benchmarks/java/ProducerBench.java``) is compiled with ``javac`` against
the jars of the Apache Kafka broker that ``KafkaCluster`` assembles from Maven Central
(``ensure_kafka_libs``: kafka-clients and every dependency it needs, lz4, zstd and snappy
included), once per source and Kafka version, into that version's cache directory.

Each run is one JVM with the JVM's default options, as a user's service starts: it gets
the scenario's settings (acks, ``linger.ms``, ``batch.size``, ``compression.type``,
``enable.idempotence``; ``max.in.flight.requests.per.connection`` 5 and ``buffer.memory``
Java's defaults, written out for the first) and the very records the Python clients send
(:class:`Payloads`, written to a file the JVM reads before it starts measuring). Java's
default partitioner is the one the others copy: murmur2 for keyed records, sticky
batches for keyless ones.

Measured as the Python clients are, inside the process: after one acknowledged warm-up
record, from the first ``send()`` until the last callback, with at most ``WINDOW``
records unacknowledged (a semaphore a callback releases). CPU is the whole JVM's over
that window (``getProcessCpuTime``: every thread, the JIT compiler's and the garbage
collector's included); the JVM's start-up (class loading, the first connections) is no
part of it, as a Python client's interpreter start and imports are not, and is reported
apart: ``process_cpu_s`` is the whole process's CPU from ``exec`` to exit (the child's
rusage). Peak RSS is the JVM's ``VmHWM``, as the Python clients report theirs.
"""

from __future__ import annotations

import hashlib
import math
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks._bench_drive import WINDOW
from benchmarks._bench_report import percentile
from benchmarks._bench_scenarios import Payloads, RunSpec

SOURCE = Path(__file__).resolve().parent / "java" / "ProducerBench.java"
MAIN_CLASS = "ProducerBench"
RESULT_MARKER = "--- result ---"
KILL_SLACK_S = 30.0
"""How long past its own timeout the JVM may take (closing, exiting) before it is killed."""
COMPILE_TIMEOUT_S = 300.0


TANSU_CLIENTS_VERSION = "3.9.1"
"""The kafka-clients version run against Tansu: 4.x sends ApiVersions v5 with the cluster
id once it knows it, and Tansu 0.6.0 closes the connection on it; 3.9's newest is v4."""


def kafka_clients_version(on_tansu: bool = False) -> str:
    """The kafka-clients version the Java peer runs: the Kafka version ``KafkaCluster``
    runs, but against Tansu the newest 3.x (:data:`TANSU_CLIENTS_VERSION`)."""
    from asyncproducer.testing._kafka_dist import DEFAULT_KAFKA_VERSION

    return TANSU_CLIENTS_VERSION if on_tansu else DEFAULT_KAFKA_VERSION


def unavailable() -> str | None:
    """Why the Java producer cannot run here, or None."""
    for tool in ("java", "javac", "mvn"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not on PATH (the Java producer needs a JDK 17+ and Maven)"
    return None


# --------------------------------------------------------------------------- settings


def producer_config(spec: RunSpec) -> dict[str, str]:
    """The Java producer's settings for ``spec``: the scenario's, by their Java names."""
    s = spec.scenario
    config = {
        "bootstrap.servers": spec.bootstrap_servers,
        "acks": s.acks,
        "linger.ms": str(s.linger_ms),
        "batch.size": str(s.batch_size),
        "compression.type": s.compression,
        "enable.idempotence": "true" if s.idempotence else "false",
        "max.in.flight.requests.per.connection": "5",
        "key.serializer": "org.apache.kafka.common.serialization.ByteArraySerializer",
        "value.serializer": "org.apache.kafka.common.serialization.ByteArraySerializer",
    }
    if s.is_transactional:
        config["transactional.id"] = spec.transactional_id
    if spec.ssl_cafile is not None:
        # A PEM truststore (KIP-651); Java checks host names by default
        # (ssl.endpoint.identification.algorithm=https).
        config |= {
            "security.protocol": "SSL",
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": spec.ssl_cafile,
        }
    return config


def bench_settings(spec: RunSpec, payloads: Path, latencies: Path) -> dict[str, str]:
    """The harness's own settings (``bench.*`` in its properties file)."""
    s = spec.scenario
    return {
        "topic": spec.topic,
        "records": str(spec.records),
        "timeout_s": f"{spec.timeout_s:g}",
        "window": str(WINDOW),
        "rate": str(s.rate),
        "transaction_size": str(s.transaction_size),
        "payloads": str(payloads),
        "latencies": str(latencies),
    }


def _escape(text: str) -> str:
    """A ``java.util.Properties`` value or key, as ``Properties.load`` reads it back."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    out = out.replace("=", "\\=").replace(":", "\\:").replace("#", "\\#").replace("!", "\\!")
    return "\\ " + out[1:] if out.startswith(" ") else out


def properties_text(config: Mapping[str, str], bench: Mapping[str, str]) -> str:
    """The properties file the harness loads: the producer's keys, then ``bench.*``."""
    pairs = [*config.items(), *((f"bench.{k}", v) for k, v in bench.items())]
    return "".join(f"{_escape(k)}={_escape(v)}\n" for k, v in pairs)


def payloads_bytes(data: Payloads) -> bytes:
    """The distinct values, then the keys (none if keyless): each list a big-endian count
    and each blob its length and bytes. Record ``i`` takes value ``i % len(values)`` and
    key ``i % len(keys)``, as :class:`Payloads` gives them."""
    keys = data.keys if data.keyed else []
    parts = []
    for blobs in (data.values, keys):
        parts.append(struct.pack(">I", len(blobs)))
        parts += [struct.pack(">I", len(blob)) + blob for blob in blobs]
    return b"".join(parts)


# --------------------------------------------------------------------------- the result


def parse_output(stdout: str) -> dict[str, str]:
    """The ``key=value`` lines after the harness's result marker (empty: no result)."""
    lines = stdout.splitlines()
    try:
        start = lines.index(RESULT_MARKER) + 1
    except ValueError:
        return {}
    fields = {}
    for line in lines[start:]:
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def read_latencies(raw: bytes) -> list[float]:
    """The harness's per-record latencies (big-endian doubles, NaN: never acknowledged),
    sorted, the unacknowledged left out."""
    values = struct.unpack(f">{len(raw) // 8}d", raw[: len(raw) // 8 * 8])
    return sorted(v for v in values if not math.isnan(v))


def result_from(
    spec: RunSpec,
    fields: Mapping[str, str],
    *,
    client: str,
    process_cpu_s: float | None = None,
    latencies: Sequence[float] = (),
    clock_ticks: int = 100,
) -> dict[str, Any]:
    """One run's result, in the Python clients' form (``_bench_client.run``)."""
    result: dict[str, Any] = {"client": client, "scenario": spec.scenario.name}
    if not fields:
        result["error"] = "the Java harness printed no result"
    elif "error" in fields:
        result["error"] = fields["error"]
    acked, failed = int(fields.get("acked", 0)), int(fields.get("failed", 0))
    result |= {"records": spec.records, "acked": acked, "failed": failed}
    if "peak_rss_kb" in fields:
        result["peak_rss_mb"] = round(int(fields["peak_rss_kb"]) / 1024, 1)
    if "wall_ns" in fields and "error" not in result:
        wall_s, cpu_s = int(fields["wall_ns"]) / 1e9, int(fields["cpu_ns"]) / 1e9
        data = Payloads(spec.scenario.value_size, spec.scenario.keyed)
        payload = sum(data.size(i) for i in range(spec.records))
        result |= {
            "wall_s": round(wall_s, 4),
            "cpu_s": round(cpu_s, 4),
            "system_s": round(int(fields.get("system_ticks", 0)) / clock_ticks, 4),
            "msgs_per_s": round(spec.records / wall_s, 1),
            "mb_per_s": round(payload / wall_s / 1e6, 3),
            "cpu_s_per_million": round(cpu_s / spec.records * 1e6, 3),
        }
    if process_cpu_s is not None:
        result["process_cpu_s"] = round(process_cpu_s, 4)
    if spec.scenario.is_latency and latencies:
        result |= {
            "p50_ms": round(percentile(latencies, 50) * 1000, 3),
            "p99_ms": round(percentile(latencies, 99) * 1000, 3),
            "max_ms": round(latencies[-1] * 1000, 3),
        }
    result["ok"] = "error" not in result and failed == 0 and acked == spec.records
    if "first_error" in fields and "error" not in result:
        result["error"] = fields["first_error"]
    result["note"] = note(spec)
    return result


def note(spec: RunSpec) -> str | None:
    if spec.scenario.tasks > 1:
        return "one thread calling send(): concurrency does not apply, ran single-threaded"
    return None


# --------------------------------------------------------------------------- running


def compile_harness(libs: Path, cache: Path) -> Path:
    """The directory of the compiled harness: ``cache/<source digest>``, compiled with
    ``javac`` against ``libs`` on first use (into a temporary sibling, renamed into
    place, so an interrupted compile leaves nothing a later run would trust)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    classes = cache / digest
    if (classes / f"{MAIN_CLASS}.class").is_file():
        return classes
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".javac-", dir=cache) as work:
        staged = Path(work) / "classes"
        command = ["javac", "-d", str(staged), "-cp", f"{libs}/*", str(SOURCE)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"javac failed (exit {done.returncode}): {done.stderr[-2000:]}")
        try:
            staged.rename(classes)
        except OSError:
            if not (classes / f"{MAIN_CLASS}.class").is_file():
                raise
    return classes


def ensure_client_libs(version: str) -> Path:
    """kafka-clients ``version`` and its runtime dependencies: the broker's ``libs`` for the
    Kafka version ``KafkaCluster`` runs (they hold them), else fetched on first use with
    ``mvn`` into that version's cache directory, as ``ensure_kafka_libs`` does."""
    from asyncproducer.testing import _kafka_dist as dist

    if version == dist.DEFAULT_KAFKA_VERSION:
        return dist.ensure_kafka_libs(version)
    pom = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>asyncproducer.bench</groupId><artifactId>java-peer</artifactId>"
        "<version>1</version><packaging>pom</packaging><dependencies><dependency>"
        "<groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId>"
        f"<version>{version}</version></dependency></dependencies></project>"
    )
    return dist.fetch_with_maven(
        dist.kafka_cache_dir(version) / "client-libs",
        pom,
        "kafka-clients-*.jar",
        f"kafka-clients {version}",
    )


def harness_classpath(version: str) -> str:
    """The classpath the harness runs with: kafka-clients ``version`` and its dependencies
    (fetched on first use) and the harness compiled against them."""
    from asyncproducer.testing._kafka_dist import kafka_cache_dir

    libs = ensure_client_libs(version)
    classes = compile_harness(libs, kafka_cache_dir(version) / "bench-java")
    return f"{libs}/*{os.pathsep}{classes}"


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_java(spec: RunSpec, client: str = "java", *, on_tansu: bool = False) -> dict[str, Any]:
    """Run the Java producer once for ``spec`` in a JVM of its own; its result."""
    failed: dict[str, Any] = {"client": client, "scenario": spec.scenario.name, "ok": False}
    try:
        classpath = harness_classpath(kafka_clients_version(on_tansu))
    except Exception as exc:
        return failed | {"error": f"no Java harness: {type(exc).__name__}: {exc}"}
    data = Payloads(spec.scenario.value_size, spec.scenario.keyed)
    with tempfile.TemporaryDirectory(prefix="bench-java-") as work:
        payloads, latencies = Path(work) / "payloads.bin", Path(work) / "latencies.bin"
        payloads.write_bytes(payloads_bytes(data))
        properties = Path(work) / "run.properties"
        bench = bench_settings(spec, payloads, latencies)
        properties.write_text(properties_text(producer_config(spec), bench))
        command = ["java", "-cp", classpath, MAIN_CLASS, str(properties)]
        # The benchmark's process reaps one child at a time: the children's CPU rises
        # by exactly this JVM's, start-up to exit.
        before = children_cpu_s()
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=spec.timeout_s + KILL_SLACK_S
            )
        except subprocess.TimeoutExpired:
            return failed | {"error": f"killed: still running {spec.timeout_s + KILL_SLACK_S:g} s"}
        process_cpu_s = children_cpu_s() - before
        fields = parse_output(done.stdout)
        if not fields:
            tail = done.stderr.strip()[-500:]
            return failed | {"error": f"exit status {done.returncode}, no result: {tail}"}
        ordered = read_latencies(latencies.read_bytes()) if latencies.exists() else []
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    return result_from(
        spec,
        fields,
        client=client,
        process_cpu_s=process_cpu_s,
        latencies=ordered,
        clock_ticks=os.sysconf("SC_CLK_TCK"),
    )
