"""What an installed package promises besides its code: type information, a version."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys

import asyncproducer


def test_the_package_says_it_is_typed() -> None:
    # PEP 561: type checkers read the package's own annotations only with this marker.
    assert importlib.resources.files("asyncproducer").joinpath("py.typed").is_file()


def test_python_m_asyncproducer_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asyncproducer", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"asyncproducer {asyncproducer.__version__}"
