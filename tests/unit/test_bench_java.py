"""The peer benchmark's Java producer, Apache Kafka broker and uvloop variants, without a
JVM: the options, the client names, the harness's settings, records and output, and the
report's rows against the Java producer."""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _bench_clients as clients
from benchmarks import _bench_java as java
from benchmarks import _bench_report as report
from benchmarks.__main__ import client_list, parse_args
from benchmarks._bench_run import UVLOOP_CLIENT, client_command, topic_name
from benchmarks._bench_scenarios import SCENARIOS, Payloads, RunSpec
from tests.unit.test_bench_report import run


def spec(scenario: str = "base", records: int = 1000, **extra: Any) -> RunSpec:
    return RunSpec(SCENARIOS[scenario], "127.0.0.1:9092", "bench-t", records, 60.0, **extra)


# --------------------------------------------------------------------------- options


def test_broker_defaults_to_tansu_and_takes_kafka() -> None:
    assert parse_args([]).broker == "tansu"
    assert parse_args(["--broker", "kafka"]).broker == "kafka"


def test_broker_and_bootstrap_servers_exclude_each_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--broker", "kafka", "--bootstrap-servers", "h:1"])
    assert "no --broker" in capsys.readouterr().err


def test_default_clients_are_the_python_ones_on_asyncio() -> None:
    assert parse_args([]).client_list == clients.CLIENTS


def test_java_is_a_client_to_choose() -> None:
    args = parse_args(["--clients", "asyncproducer,java"])
    assert args.client_list == ["asyncproducer", "java"]


def test_loop_uvloop_adds_each_async_client_on_uvloop_once() -> None:
    args = parse_args(
        ["--clients", "asyncproducer,confluent-kafka,java,aiokafka", "--loop", "asyncio,uvloop"]
    )
    assert args.client_list == [
        "asyncproducer",
        "asyncproducer@uvloop",
        "confluent-kafka",
        "java",
        "aiokafka",
        "aiokafka@uvloop",
    ]


def test_loop_uvloop_alone_keeps_loopless_clients() -> None:
    assert client_list(["asyncproducer-batch", "java"], ["uvloop"]) == [
        "asyncproducer-batch@uvloop",
        "java",
    ]


def test_a_client_named_with_its_loop_stays_as_named() -> None:
    args = parse_args(["--clients", "aiokafka@uvloop", "--loop", "asyncio,uvloop"])
    assert args.client_list == ["aiokafka@uvloop"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--clients", "kafka-python"],
        ["--clients", "confluent-kafka@uvloop"],
        ["--clients", "java@uvloop"],
        ["--clients", "aiokafka@trio"],
        ["--loop", "trio"],
    ],
)
def test_unknown_clients_and_loops_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_split_loop() -> None:
    assert clients.split_loop("aiokafka@uvloop") == ("aiokafka", "uvloop")
    assert clients.split_loop("aiokafka") == ("aiokafka", "asyncio")
    assert clients.split_loop("confluent-kafka") == ("confluent-kafka", None)
    assert clients.split_loop("java") == ("java", None)


def test_a_uvloop_client_runs_the_same_client_module_under_uvloops_policy() -> None:
    command = client_command("asyncproducer-batch@uvloop")
    assert command[1:3] == ["-c", UVLOOP_CLIENT]
    assert command[3:] == ["--client", "asyncproducer-batch"]
    assert "uvloop.EventLoopPolicy()" in UVLOOP_CLIENT
    assert client_command("aiokafka")[1:] == [
        "-m",
        "benchmarks._bench_client",
        "--client",
        "aiokafka",
    ]


def test_topic_names_stay_legal_for_uvloop_clients() -> None:
    assert topic_name("base", "aiokafka@uvloop", "ab12", 2) == "bench-base-aiokafka-uvloop-ab12-2"


def test_java_needs_a_jdk_and_maven(monkeypatch: pytest.MonkeyPatch) -> None:
    base = SCENARIOS["base"]
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    assert clients.unavailable("java", base, on_tansu=False) is None
    assert clients.unavailable("java", base, on_tansu=True) is None
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "javac" else tool)
    assert "javac" in (clients.unavailable("java", base, on_tansu=False) or "")


def test_java_runs_kafka_clients_3_on_tansu_and_kafkas_own_version_elsewhere() -> None:
    from asyncproducer.testing._kafka_dist import DEFAULT_KAFKA_VERSION

    assert java.kafka_clients_version(on_tansu=False) == DEFAULT_KAFKA_VERSION
    assert java.kafka_clients_version(on_tansu=True) == java.TANSU_CLIENTS_VERSION
    assert java.TANSU_CLIENTS_VERSION.startswith("3.")


def test_aiokafka_idempotent_runs_on_kafka_but_not_on_tansu() -> None:
    idempotent = SCENARIOS["idempotent"]
    assert clients.unavailable("aiokafka", idempotent, on_tansu=True) is not None
    assert clients.unavailable("aiokafka", idempotent, on_tansu=False) is None


# --------------------------------------------------------------------------- the harness


def test_producer_config_carries_the_scenarios_settings() -> None:
    config = java.producer_config(spec("idempotent"))
    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert (config["acks"], config["enable.idempotence"]) == ("all", "true")
    assert (config["linger.ms"], config["batch.size"]) == ("5", "16384")
    assert config["compression.type"] == "none"
    assert config["max.in.flight.requests.per.connection"] == "5"
    assert "buffer.memory" not in config  # Java's default
    assert "transactional.id" not in config
    assert "security.protocol" not in config
    assert java.producer_config(spec("zstd"))["compression.type"] == "zstd"


def test_producer_config_over_tls_and_in_transactions() -> None:
    config = java.producer_config(spec("transactional", ssl_cafile="/tmp/ca.pem"))
    assert config["transactional.id"] == "bench-t-txn"
    assert config["security.protocol"] == "SSL"
    assert (config["ssl.truststore.type"], config["ssl.truststore.location"]) == (
        "PEM",
        "/tmp/ca.pem",
    )


def load_properties(text: str) -> dict[str, str]:
    """What java.util.Properties.load reads from ``text`` (the escapes the writer uses)."""
    out = {}
    for line in text.splitlines():
        key, value, escaped, in_key = "", "", False, True
        for char in line:
            if escaped:
                char = {"n": "\n", "r": "\r"}.get(char, char)
            elif char == "\\":
                escaped = True
                continue
            elif in_key and char in "=:":
                in_key = False
                continue
            escaped = False
            if in_key:
                key += char
            else:
                value += char
        out[key] = value
    return out


def test_properties_round_trip_with_separators_in_values(tmp_path: Path) -> None:
    bench = java.bench_settings(spec("latency"), tmp_path / "p.bin", tmp_path / "l.bin")
    text = java.properties_text({"bootstrap.servers": "a:1,b:2", "x": "c=d#e!\\"}, bench)
    loaded = load_properties(text)
    assert loaded["bootstrap.servers"] == "a:1,b:2"
    assert loaded["x"] == "c=d#e!\\"
    assert loaded["bench.rate"] == "5000"
    assert loaded["bench.window"] == "10000"
    assert loaded["bench.payloads"] == str(tmp_path / "p.bin")


def decode_blobs(raw: bytes, offset: int) -> tuple[list[bytes], int]:
    (count,) = struct.unpack_from(">I", raw, offset)
    offset += 4
    blobs = []
    for _ in range(count):
        (size,) = struct.unpack_from(">I", raw, offset)
        blobs.append(raw[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return blobs, offset


@pytest.mark.parametrize("keyed", [False, True])
def test_payloads_file_gives_the_jvm_the_same_records(keyed: bool) -> None:
    data = Payloads(100, keyed)
    raw = java.payloads_bytes(data)
    values, offset = decode_blobs(raw, 0)
    keys, end = decode_blobs(raw, offset)
    assert end == len(raw)
    for i in (0, 1, 999, 1000, 12_345):
        assert values[i % len(values)] == data.value(i)
        assert (keys[i % len(keys)] if keys else None) == data.key(i)


# --------------------------------------------------------------------------- its output


OUTPUT = """log line before
--- result ---
acked=1000
cpu_ns=250000000
failed=0
peak_rss_kb=102400
system_ticks=5
user_ticks=20
wall_ns=500000000
"""


def test_parse_output_reads_the_lines_after_the_marker() -> None:
    fields = java.parse_output(OUTPUT)
    assert fields["acked"] == "1000"
    assert fields["wall_ns"] == "500000000"
    assert "log line before" not in fields
    assert java.parse_output("no marker\nacked=3\n") == {}


def test_result_from_is_in_the_python_clients_form() -> None:
    result = java.result_from(
        spec(), java.parse_output(OUTPUT), client="java", process_cpu_s=1.5, clock_ticks=100
    )
    assert result["ok"] is True
    assert (result["client"], result["scenario"]) == ("java", "base")
    assert (result["records"], result["acked"], result["failed"]) == (1000, 1000, 0)
    assert result["msgs_per_s"] == 2000.0
    assert result["cpu_s"] == 0.25
    assert result["system_s"] == 0.05
    assert result["cpu_s_per_million"] == 250.0
    assert result["mb_per_s"] == round(1000 * 100 / 0.5 / 1e6, 3)
    assert result["peak_rss_mb"] == 100.0
    assert result["process_cpu_s"] == 1.5
    assert result["note"] is None


def test_result_from_a_failed_run() -> None:
    fields = java.parse_output(
        OUTPUT.replace("acked=1000", "acked=990").replace("failed=0", "failed=10")
    )
    fields["first_error"] = "TimeoutException: Expiring 10 record(s)"
    result = java.result_from(spec(), fields, client="java")
    assert result["ok"] is False
    assert result["error"] == "TimeoutException: Expiring 10 record(s)"
    errored = java.result_from(spec(), {"error": "IllegalStateException: timed out"}, client="java")
    assert (errored["ok"], errored["error"]) == (False, "IllegalStateException: timed out")
    assert "msgs_per_s" not in errored
    nothing = java.result_from(spec(), {}, client="java")
    assert nothing["ok"] is False
    assert "no result" in nothing["error"]


def test_latencies_are_read_sorted_without_the_unacknowledged() -> None:
    raw = struct.pack(">4d", 0.003, math.nan, 0.001, 0.002)
    assert java.read_latencies(raw) == [0.001, 0.002, 0.003]
    ordered = [i / 1000 for i in range(1, 101)]
    result = java.result_from(
        spec("latency", records=100),
        java.parse_output(OUTPUT.replace("acked=1000", "acked=100")),
        client="java",
        latencies=ordered,
    )
    assert (result["p50_ms"], result["p99_ms"], result["max_ms"]) == (50.0, 99.0, 100.0)


def test_many_tasks_is_noted_as_single_threaded() -> None:
    assert "single-threaded" in (java.note(spec("tasks-1000")) or "")


# --------------------------------------------------------------------------- the report


def test_ratios_against_java_and_its_table() -> None:
    runs = [
        run("asyncproducer", 300.0, 3.0),
        run("asyncproducer@uvloop", 330.0, 2.7),
        run("aiokafka", 100.0, 9.0),
        run("java", 200.0, 6.0, process_cpu_s=2.0),
        run("java", 220.0, 5.0, process_cpu_s=2.4),
    ]
    by_client = {s.client: s for s in report.summarise(runs)}
    ours = by_client["asyncproducer"]
    assert ours.throughput_vs_java == pytest.approx(300 / 210)
    assert ours.cpu_vs_java == pytest.approx(3.0 / 5.5)
    assert by_client["java"].throughput_vs_reference == pytest.approx(2.1)
    assert by_client["java"].process_cpu_s == report.Stat(2.2, 2.0, 2.4)
    table = report.java_table(list(by_client.values()))
    assert "| base | asyncproducer | 1.43x | 0.55x | - | - |" in table
    assert "| base | asyncproducer@uvloop | 1.57x | 0.49x | - | - |" in table
    assert not any("| java |" in line for line in table)


def test_java_latency_ratios() -> None:
    runs = [
        run("asyncproducer", 5000.0, 3.0, scenario="latency", p50_ms=1.0, p99_ms=4.0, max_ms=5.0),
        run("java", 4999.0, 6.0, scenario="latency", p50_ms=2.0, p99_ms=8.0, max_ms=9.0),
    ]
    table = report.java_table(report.summarise(runs))
    assert "| latency | asyncproducer | - | 0.50x | 0.50x | 0.50x |" in table


def test_no_java_table_without_java() -> None:
    assert report.java_table(report.summarise([run("asyncproducer", 3.0, 1.0)])) == []


def test_markdown_has_the_java_rows_and_its_whole_process_cpu() -> None:
    runs = [run("asyncproducer", 300.0, 3.0), run("java", 200.0, 6.0, process_cpu_s=2.0)]
    doc = report.document(
        runs=runs, skipped=[], settings={"records": 1000, "rounds": 1}, machine={}, duration_s=6
    )
    text = report.markdown(doc)
    assert "| base | java | 200 (200-200) |" in text
    assert "Against the Java producer" in text
    assert "| base | asyncproducer | 1.50x | 0.50x | - | - |" in text
    assert "base / java: the whole process, start-up to exit, used 2.00 (2.00-2.00) CPU s" in text
    # And back from the JSON document: the new fields survive.
    again = report.summary_from_dict(json.loads(report.dumps(doc))["summary"][1])
    assert again.process_cpu_s == report.Stat(2.0, 2.0, 2.0)
