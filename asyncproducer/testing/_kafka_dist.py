"""Assemble an Apache Kafka broker from Maven Central into a per-version cache.

The Apache download site is often unreachable from CI machines, Maven Central rarely is:
``kafka_2.13`` carries ``kafka.Kafka`` and ``kafka.tools.StorageTool``, and its POM pulls
every runtime jar the broker needs except a logging binding, which we add. ``mvn`` does the
resolution (it knows the POMs' exclusions and version ranges better than we would).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "KafkaToolMissingError",
    "ensure_kafka_libs",
    "fetch_with_maven",
    "find_tool",
    "kafka_cache_dir",
]

# The newest 4.x on Maven Central when this was written (checked with its maven-metadata.xml).
DEFAULT_KAFKA_VERSION = "4.4.0"
# Kafka 4.x logs through slf4j 1.7; the release tarball binds it to log4j2 with these.
_LOG4J_VERSION = "2.25.3"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_INSTALL_HINT = "apt-get install openjdk-17-jre-headless maven"
CACHE_ENV = "ASYNCPRODUCER_KAFKA_CACHE"
# Cold fetches move ~50 MB through Maven; generous, but still a bound.
FETCH_TIMEOUT_S = 900.0


class KafkaToolMissingError(RuntimeError):
    """``java`` or ``mvn`` is not installed, so a real Kafka broker cannot be started."""


def find_tool(name: str) -> str:
    """The path of ``java`` or ``mvn``; else a :class:`KafkaToolMissingError` naming the fix."""
    found = shutil.which(name)
    if found is None:
        raise KafkaToolMissingError(
            f"{name!r} was not found on PATH: KafkaCluster needs Java 17+ and Maven "
            f"({_INSTALL_HINT})"
        )
    return found


def kafka_cache_dir(version: str) -> Path:
    """``$ASYNCPRODUCER_KAFKA_CACHE/<version>``, else ``~/.cache/asyncproducer/kafka/<version>``."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root) if root else Path.home() / ".cache" / "asyncproducer" / "kafka"
    return base / version


def _pom(version: str) -> str:
    deps = [
        ("org.apache.kafka", "kafka_2.13", version),
        ("org.apache.logging.log4j", "log4j-core", _LOG4J_VERSION),
        ("org.apache.logging.log4j", "log4j-slf4j-impl", _LOG4J_VERSION),
    ]
    body = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{escape(v)}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<project xmlns="http://maven.apache.org/POM/4.0.0">'
        "<modelVersion>4.0.0</modelVersion>"
        "<groupId>asyncproducer.testing</groupId><artifactId>kafka-libs</artifactId>"
        f"<version>1</version><packaging>pom</packaging><dependencies>{body}</dependencies>"
        "</project>"
    )


def _sweep_abandoned_fetches(directory: Path) -> None:
    """Remove ``.fetch-*`` dirs of fetches killed over an hour ago (SIGKILL skips cleanup)."""
    cutoff = time.time() - 3600
    for stale in directory.glob(".fetch-*"):
        with contextlib.suppress(OSError):
            if stale.stat().st_mtime < cutoff:
                shutil.rmtree(stale, ignore_errors=True)


def ensure_kafka_libs(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """The ``libs`` directory of Kafka ``version``, fetched with ``mvn`` on first use."""
    return fetch_with_maven(
        kafka_cache_dir(version) / "libs", _pom(version), "kafka_2.13-*.jar", f"Kafka {version}"
    )


def fetch_with_maven(libs: Path, pom: str, expected: str, what: str) -> Path:
    """``libs``, made on first use: the runtime dependencies of the project ``pom``
    (a POM's text) copied there by ``mvn``; ``expected``, a glob that must match a jar
    among them, says the fetch got what it was for.

    The jars land in a temporary sibling directory that is renamed into place only once
    ``mvn`` succeeded: an interrupted or failed fetch never leaves a half cache that later
    runs would trust.
    """
    if libs.is_dir():
        return libs
    mvn = find_tool("mvn")
    libs.parent.mkdir(parents=True, exist_ok=True)
    _sweep_abandoned_fetches(libs.parent)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=libs.parent) as work:
        pom_file = Path(work) / "pom.xml"
        pom_file.write_text(pom, encoding="utf-8")
        staged = Path(work) / "libs"
        command = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom_file),
            f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-DoutputDirectory={staged}",
            "-DincludeScope=runtime",
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"fetching {what} from Maven Central took over {FETCH_TIMEOUT_S:g} s"
            ) from exc
        if result.returncode != 0 or not any(staged.glob(expected)):
            # Maven 3.8 emits colour resets even in batch mode; keep the message plain.
            tail = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)[-3000:]
            raise RuntimeError(
                f"mvn could not fetch {what} (exit {result.returncode}); is Maven "
                f"Central reachable and the version published? mvn said:\n{tail}"
            )
        try:
            staged.rename(libs)
        except OSError:
            # Another process finished the same fetch first: its cache is as good as ours.
            if not libs.is_dir():
                raise
    return libs
