"""The cold-start and loop-lag benchmarks end to end, tiny, against the session's broker:
``benchmarks/cold_start.py`` (fresh processes) and ``benchmarks/loop_lag.py`` (a
heartbeat beside a sending producer), so that the scripts docs/benchmarks.md quotes keep
working."""

from __future__ import annotations

import sys

import pytest

from benchmarks import cold_start, loop_lag


@pytest.mark.timeout(120)
def test_cold_start_measures_fresh_processes(kafka_bootstrap_servers: str) -> None:
    clients = ["asyncproducer", cold_start.AIOKAFKA_DEFAULTS]
    variants = cold_start.measure(clients, kafka_bootstrap_servers, rounds=1)
    assert [(v.client, v.hypothesis) for v in variants] == [
        ("asyncproducer", True),
        ("asyncproducer", False),
        (cold_start.AIOKAFKA_DEFAULTS, True),
        (cold_start.AIOKAFKA_DEFAULTS, False),
    ]
    for variant in variants:
        (run,) = variant.runs
        assert 0 < run["import_s"] < run["started_s"] < run["first_ack_s"] < run["process_s"]
        assert run["cpu_s"] > 0
        assert run["maxrss_mib"] > 5
        assert variant.modules == set()  # no Hypothesis, pytest or trio, even installed
    assert "asyncproducer, Hypothesis installed" in cold_start.report(variants, markdown=True)


@pytest.mark.timeout(120)
def test_loop_lag_measures_a_heartbeat_beside_the_producer(kafka_bootstrap_servers: str) -> None:
    results = loop_lag.measure(
        ["asyncproducer"],
        kafka_bootstrap_servers,
        seconds=0.3,
        quick=True,
        loop="asyncio",
        hold=False,
    )
    idle, *sending = results
    assert idle.case is None
    assert [r.case.codec for r in sending if r.case] == ["zstd", "lz4"]
    for result in results:
        assert len(result.lags_ms) > 10
        assert min(result.lags_ms) >= 0
        assert len(result.request_lags_ms) > 10  # the request probe's own window
        assert min(result.request_lags_ms) >= 0
        assert all(pause > 0 for pause in result.collections_ms)
        if sys.platform == "linux":  # the loop thread's run-queue wait, from schedstat
            assert result.core_wait_ms_per_s is not None
            assert 0 <= result.core_wait_ms_per_s <= 1000
    assert all(r.records > 1_000 for r in sending)  # 50,000/s for 0.3 s
    assert "idle loop" in loop_lag.report(results, markdown=True, loop="asyncio")
