"""The peer benchmark end to end, tiny: ``python -m benchmarks`` against the session's
broker with a few hundred records, two clients, one round (a few seconds); and the
``tls`` scenario on the session's TLS Kafka cluster, over TLS and plaintext."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from asyncproducer.testing.kafka import KafkaCluster
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


@pytest.mark.kafka
@pytest.mark.timeout(180)  # the session's TLS cluster may start here: a JVM, ~5 s
def test_tls_scenario_runs_each_client_over_tls_and_plaintext_on_one_broker(
    ssl_cluster: KafkaCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "tls.json"
    node = ssl_cluster.nodes[0]
    clients = ["asyncproducer", "aiokafka", "confluent-kafka"]
    status = main(
        [
            "--scenario",
            "tls",
            "--tls-bootstrap-servers",
            ssl_cluster.bootstrap_servers,
            "--tls-ca",
            str(ssl_cluster.tls.ca),
            # The node's PLAINTEXT listener: the same broker without TLS.
            "--tls-plaintext-bootstrap-servers",
            f"{node.host}:{node.internal_port}",
            "--clients",
            ",".join(clients),
            "--rounds",
            "1",
            "--records",
            "200",
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
    assert sorted((r["scenario"], r["client"]) for r in doc["runs"]) == sorted(
        (scenario, client) for scenario in ("tls", "tls-plaintext") for client in clients
    )
    # Acknowledged by an SSL listener, which refuses plaintext: the tls runs spoke TLS.
    assert all(run["acked"] == run["records"] == 200 for run in doc["runs"])
    tls = {s["client"]: s for s in doc["summary"] if s["scenario"] == "tls"}
    assert all(s["throughput_vs_plaintext"] > 0 and s["cpu_vs_plaintext"] > 0 for s in tls.values())
    assert "| tls | aiokafka |" in out
    assert "TLS against plaintext" in out
    assert doc["machine"]["tls_broker"].startswith(f"external cluster at {node.host}")
    # Every run's topic (and the warm-up's) is deleted. Kafka deletes in the background:
    # its metadata may list a topic for a moment after DeleteTopics has answered.
    admin = AdminClient({"bootstrap.servers": f"{node.host}:{node.internal_port}"})
    deadline = time.monotonic() + 15
    while left := [t for t in admin.list_topics(timeout=10).topics if t.startswith("bench-")]:
        assert time.monotonic() < deadline, left
        time.sleep(0.2)
