"""The fault matrix runs end to end (a small one: the whole matrix is ``nox -s faults``)."""

from __future__ import annotations

import pytest

from benchmarks import faults


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_small_matrix_runs_and_reports(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--seed", "7", "--records", "60", "--no-tansu", "--backend", backend]
    status = faults.main([*argv, "--scenario", "response-lost"])
    out = capsys.readouterr().out
    assert out.startswith("seed 7 (replay: python -m benchmarks.faults --seed 7)")
    rows = [line.split() for line in out.splitlines() if line.startswith("response-lost ")]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("response-lost", "fake", "on"),
        ("response-lost", "fake", "off"),
    ]
    assert all(r[4] == "66" for r in rows)  # sent: 60, and 2 per partition after the faults
    assert status == 0, out


def test_markdown_table() -> None:
    row = faults.Row("baseline", True, 5, 4.0, sent=3, acked=3, found=3)
    text = faults.table([row], markdown=True)
    header, rule, line = text.splitlines()
    assert header.startswith("| scenario | broker | idempotence (in flight) | sent |")
    assert rule.startswith("|---|---|---|--:|")
    assert line.startswith("| baseline | fake | on (5) | 3 | 3 |")
    assert line.endswith("| 0.00 s / 4 s | ok |")
