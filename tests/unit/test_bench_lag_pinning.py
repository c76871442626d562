"""loop_lag's ``--pin-loop`` (benchmarks/_lag_pinning.py): which CPUs are left, and where
the loop's thread, the threads started afterwards and the child processes end up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import loop_lag
from benchmarks._lag_pinning import other_cpus


def test_the_other_cpus_are_the_allowed_ones_but_the_loops() -> None:
    assert other_cpus(1, {0, 1, 2}) == {0, 2}


def test_a_cpu_the_process_may_not_run_on_is_refused_by_name() -> None:
    with pytest.raises(
        ValueError, match=r"CPU 7 is not one this process may run on \(allowed: \[0, 1\]\)"
    ):
        other_cpus(7, {0, 1})


def test_the_only_cpu_is_refused_for_leaving_nothing() -> None:
    with pytest.raises(ValueError, match=r"CPU 0 is the only one .*nothing is left"):
        other_cpus(0, {0})


def test_the_benchmark_refuses_a_bad_cpu_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["loop_lag", "--pin-loop", "100000"])
    with pytest.raises(SystemExit) as exited:
        loop_lag.main()
    assert exited.value.code == 2
    assert "--pin-loop: CPU 100000 is not one this process may run on" in capsys.readouterr().err


# In a process of its own: pinning moves the process's threads for good.
_PLACEMENT = """
import json, os, subprocess, sys, threading
from benchmarks._lag_pinning import LoopPinning

REPORT = "import os; print(sorted(os.sched_getaffinity(0)))"
WAIT_THEN_REPORT = "import os, sys; sys.stdin.readline(); print(sorted(os.sched_getaffinity(0)))"

def affinity_of_a_new_thread():
    seen = []
    thread = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))
    thread.start()
    thread.join()
    return seen[0]

pinning = LoopPinning.for_cpu(int(sys.argv[1]))
pinning.keep_off()
started_off = subprocess.run([sys.executable, "-c", REPORT], capture_output=True, text=True)
pinning.take_for_the_loop()
started_by_the_loop = subprocess.Popen(
    [sys.executable, "-c", WAIT_THEN_REPORT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    text=True,
)
pinning.place(started_by_the_loop.pid)
placed, _ = started_by_the_loop.communicate("go\\n", timeout=30)
print(json.dumps({
    "loop": sorted(os.sched_getaffinity(0)),
    "thread": affinity_of_a_new_thread(),
    "child started before the loop took its CPU": json.loads(started_off.stdout),
    "child placed": json.loads(placed),
}))
"""


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="pinning needs Linux and two CPUs to split",
)
def test_the_loops_thread_alone_on_its_cpu_and_everything_else_on_the_others() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    loop_cpu, others = allowed[-1], allowed[:-1]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(
        [sys.executable, "-c", _PLACEMENT, str(loop_cpu)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "loop": [loop_cpu],
        "thread": others,  # started by the loop's thread, moved as it started
        "child started before the loop took its CPU": others,  # as the broker is
        "child placed": others,  # as the probe's sender is
    }
