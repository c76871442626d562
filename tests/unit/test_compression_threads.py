"""How many batches the compression worker compresses at once (_compression_worker): one
core left to the loop's own thread."""

from __future__ import annotations

import os

import pytest

from asyncproducer import _compression_worker


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 2), (5, 4), (64, 4)])
def test_one_core_is_left_to_the_loop(
    monkeypatch: pytest.MonkeyPatch, cores: int, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert _compression_worker._threads() == threads


def test_without_affinity_the_machine_s_core_count_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert _compression_worker._threads() == 2
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: taken as two
    assert _compression_worker._threads() == 1
