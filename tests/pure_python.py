"""Run a script as an install without the C extension runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run_without_speedups(script: str) -> None:
    """Run ``script`` (dedented) in a fresh interpreter with
    ``ASYNCPRODUCER_NO_SPEEDUPS=1``, what an install without a C compiler runs; it must
    exit 0 and print ``ok``."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**os.environ, "ASYNCPRODUCER_NO_SPEEDUPS": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
