"""The scale benchmark end to end, tiny: ``python -m benchmarks.scale --quick`` with a few
hundred records per run against the session's broker, and a 1 s stall of a Tansu broker
of its own (the stall stops the broker process, so it never touches the shared one).
The target group (issue 23) only as its report, from made-up runs: its client runs are
the other groups' (CI time is counted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncproducer._batch import batch_reservation
from benchmarks import _scale_report as report
from benchmarks._scale_cases import FULL, QUICK, TARGET, TARGET_BASE, THROUGHPUT_GROUPS, cases
from benchmarks.scale import main


@pytest.mark.timeout(90)
def test_scale_benchmark_runs_every_quick_case(
    kafka_bootstrap_servers: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "scale.json"
    status = main(
        [
            "--quick",
            "--bootstrap-servers",
            kafka_bootstrap_servers,
            "--records",
            "300",
            "--stall-seconds",
            "1",
            "--timeout",
            "30",
            "--json",
            str(results),
            "--markdown",
            "--group",
            *THROUGHPUT_GROUPS,
            "stall",
        ]
    )
    out = capsys.readouterr().out
    doc = json.loads(results.read_text())
    failures = [run for run in doc["runs"] if not run["ok"]]
    assert status == 0, failures

    expected = cases(QUICK, [*THROUGHPUT_GROUPS, "stall"], 300, 1.0)
    rows = {row["case"]: row for row in doc["summary"]}
    assert list(rows) == [case.name for case in expected]
    for case in expected:
        row = rows[case.name]
        assert row["runs"] == row["ok_runs"] == 1, row
        if not case.is_stall:
            assert row["msgs_per_s"]["median"] > 0
            assert row["cpu_us_per_record"]["median"] > 0
            assert row["rss_growth_mib"] is not None

    stalls = [(row, case) for case in expected if case.is_stall for row in [rows[case.name]]]
    assert stalls
    for row, case in stalls:
        assert row["accepted"] > 0
        assert row["acked"] == row["accepted"]
        assert row["failed"] == row["pending"] == 0
        # Used up: no room for one more batch of such records (a partition whose last
        # batch was full pays for as many as fit).
        one_batch, _ = batch_reservation(
            16_384, (0, None, b"v" * case.value_size, ()), case.buffer_memory, 16_384
        )
        assert row["min_buffer_available"] < one_batch
        # buffer_memory bounds the memory, records' Python objects included (docs/scale.md:
        # 0.80-0.97x measured); before they were charged to it, 100 B records took 3x.
        assert 0 < row["rss_growth_mib"] < row["buffer_memory_mib"] * 1.25 + 8

    for title in ("Partitions:", "Topics:", "Concurrent tasks:", "Records in flight:"):
        assert title in out
    assert "| 100 | 10,000 keys |" in out
    assert doc["machine"]["cores"] >= 1


def test_full_scale_has_issue_23s_cases() -> None:
    """10,000 partitions over 100 topics, 10,000 tasks, and both, against base; a stall
    at that scale (issue 23 item 6)."""
    full = cases(FULL, [TARGET], 100_000, 10.0)
    layouts = {(case.topics, case.partitions, case.tasks, case.is_stall) for case in full}
    assert layouts == {
        (1, 6, 1, False),
        (1, 6, 10_000, False),
        (100, 100, 1, False),
        (100, 100, 10_000, False),
        (100, 100, 100, True),
        (100, 100, 10_000, True),
    }
    assert full[0].name == TARGET_BASE

    # Each round's run over that round's base run: 0.5x in both rounds, whatever the
    # machine did between rounds.
    runs = []
    for round_, speed in ((1, 100_000.0), (2, 200_000.0)):
        for case in full:
            if case.is_stall:
                continue
            slower = 1.0 if case.name == TARGET_BASE else 0.5
            runs.append(
                {"case": case.name, "round": round_, "ok": True, "msgs_per_s": speed * slower}
                | {"cpu_us_per_record": 4.0 / slower, "peak_rss_mib": 40.0}
                | {"rss_before_mib": 36.0, "records_per_batch": 148, "records_per_request": 300}
            )
    stall = [case for case in full if case.is_stall][-1]
    runs.append(
        {"case": stall.name, "round": 1, "ok": True, "value_size": 100, "stall_s": 10.0}
        | {"topics": 100, "partitions": 100, "tasks": 10_000, "buffer_memory_mib": 32.0}
        | {"rss_before_mib": 48.0, "rss_max_during_mib": 80.0, "rss_growth_mib": 32.0}
        | {"rss_end_of_stall_mib": 80.0, "rss_plateau_s": 0.5, "accepted_during_stall": 1}
        | {"min_buffer_available": 0, "accepted": 1, "acked": 1, "failed": 0, "refused": 0}
    )
    rows = report.summarise(full, runs)
    assert rows[0]["msgs_per_s_vs_base"].median == 1.0
    assert {row["msgs_per_s_vs_base"].median for row in rows[1:4]} == {0.5}
    settings = {"rounds": 2, "records": 100_000, "value_size": 100, "producer": "p"}
    doc = {"settings": settings | {"stall_seconds": 10, "stall": "s"}, "summary": rows}
    text = report.markdown(doc | {"machine": {}, "duration_s": 60}, full)
    assert "Against issue 23's target" in text
    assert "| 100 x 100, 10,000 | 75,000 (50,000-100,000) | 0.50x | 8.00 | 2.00x |" in text
    assert text.count("| not met (0.500x) |") == 3
    assert "| 100 x 100, 10,000 | 100 | 32 | 48.0 | 80.0 | 32.0 | 0.0 | 1.00 |" in text
