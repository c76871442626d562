"""The peer benchmark end to end, tiny: ``python -m benchmarks`` against the session's
broker with a few hundred records, two clients, one round (a few seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from benchmarks.__main__ import main


@pytest.mark.timeout(60)
def test_benchmark_runs_two_clients_and_reports(
    kafka_bootstrap_servers: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "bench.json"
    status = main(
        [
            "--bootstrap-servers",
            kafka_bootstrap_servers,
            "--scenario",
            "base",
            "latency",
            "--clients",
            "asyncproducer,confluent-kafka",
            "--rounds",
            "1",
            "--records",
            "300",
            "--rate",
            "400",
            "--latency-seconds",
            "0.5",
            "--timeout",
            "20",
            "--json",
            str(results),
            "--markdown",
        ]
    )
    out = capsys.readouterr().out
    doc = json.loads(results.read_text())
    failures = [run for run in doc["runs"] if not run["ok"]]
    assert status == 0, failures
    assert {(r["scenario"], r["client"]) for r in doc["runs"]} == {
        ("base", "asyncproducer"),
        ("base", "confluent-kafka"),
        ("latency", "asyncproducer"),
        ("latency", "confluent-kafka"),
    }
    for run in doc["runs"]:
        assert run["acked"] == run["records"]
        assert min(run["wall_s"], run["peak_rss_mb"]) > 0
    latency = [run for run in doc["runs"] if run["scenario"] == "latency"]
    assert all(0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"] for run in latency)
    assert "| base | asyncproducer |" in out
    assert "| latency | confluent-kafka |" in out
    assert doc["machine"]["cores"] >= 1
    # Every run's topic is deleted after its round (the broker holds records in memory).
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap_servers})
    topics = admin.list_topics(timeout=10).topics
    assert [t for t in topics if t.startswith(("bench-base-", "bench-latency-"))] == []
