"""``asyncproducer produce`` with no broker reachable: the error says so, in its first words."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.network.servers import closed_port


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_produce_with_no_broker_reachable_names_the_bootstrap_server(
    backend: str, tmp_path: Path
) -> None:
    lines = tmp_path / "lines"
    lines.write_bytes(b"hello\n")
    bootstrap = f"127.0.0.1:{closed_port()}"
    options = ["--bootstrap-servers", bootstrap, "--backend", backend, "-X", "max.block.ms=500"]
    done = subprocess.run(
        [sys.executable, "-m", "asyncproducer", "produce", "t", str(lines), *options],
        capture_output=True,
        timeout=30,
        check=False,
    )
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 1, stderr
    error = next(line for line in stderr.splitlines() if "error:" in line)
    assert error.startswith("asyncproducer produce: error: no broker could be reached"), error
    assert f"{bootstrap}: Connection refused" in error
    assert "does not exist" not in stderr
    assert "Traceback" not in stderr
    # One warning about the outage, not one per retry.
    assert stderr.count("WARNING") <= 1, stderr
