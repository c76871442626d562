"""The real brokers the integration suite runs on: Tansu and Apache Kafka (one KRaft node).

Every test that takes ``kafka_bootstrap_servers`` runs once per broker (ids ``tansu`` and
``kafka``); the Kafka runs are marked ``kafka``, so ``-m "not kafka"`` leaves them out.
With ``KAFKA_BOOTSTRAP_SERVERS`` set, the suite runs once, against that broker (``external``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pytest

from asyncproducer.testing._kafka_dist import DEFAULT_KAFKA_VERSION, kafka_cache_dir
from asyncproducer.testing.kafka import KafkaCluster
from asyncproducer.testing.tansu import TansuBroker

REQUIRE_ENV = "ASYNCPRODUCER_REQUIRE_KAFKA"

SECURE_USERS = {"alice": "alice-secret", "bob": "b0b~pass!"}
"""The SASL users of the session's secured clusters (conftest.py)."""
KEY_PASSWORD = "keystore-pw"
"""What the mTLS cluster's key files are encrypted with."""
EXTERNAL_ENV = "KAFKA_BOOTSTRAP_SERVERS"

TANSU, KAFKA, EXTERNAL = "tansu", "kafka", "external"

BROKER_KINDS = (
    [pytest.param(EXTERNAL, id=EXTERNAL)]
    if os.environ.get(EXTERNAL_ENV)
    else [pytest.param(TANSU, id=TANSU), pytest.param(KAFKA, id=KAFKA, marks=pytest.mark.kafka)]
)
"""The ``params`` of the broker fixtures."""


def require_kafka_tools() -> None:
    """Skip (or, with ASYNCPRODUCER_REQUIRE_KAFKA=1, fail) when Kafka cannot be started."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if "mvn" in missing and (kafka_cache_dir(DEFAULT_KAFKA_VERSION) / "libs").is_dir():
        missing.remove("mvn")  # a warm cache needs only java
    if not missing:
        return
    reason = (
        f"Apache Kafka tests need {' and '.join(missing)}: apt-get install "
        "openjdk-17-jre-headless maven"
    )
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires them)")
    pytest.skip(f"{reason} (set {REQUIRE_ENV}=1 to make this a failure)")


class KillableBroker(Protocol):
    """A broker of a test's own, to take away under the producer's feet."""

    @property
    def bootstrap_servers(self) -> str: ...

    def kill(self) -> None: ...


@dataclass
class _OneKafkaNode:
    cluster: KafkaCluster

    @property
    def bootstrap_servers(self) -> str:
        return self.cluster.bootstrap_servers

    def kill(self) -> None:
        self.cluster.nodes[0].kill()


@contextlib.contextmanager
def running_broker(kind: str) -> Iterator[KillableBroker]:
    """A fresh broker of ``kind`` (``external`` means Tansu: an external broker is not
    ours to kill), ended with the block."""
    if kind == KAFKA:
        require_kafka_tools()
        with KafkaCluster(brokers=1) as cluster:
            yield _OneKafkaNode(cluster)
    else:
        with TansuBroker() as broker:
            yield broker


@dataclass(frozen=True)
class RealBroker:
    """The session's broker: which kind, and where."""

    kind: str
    bootstrap_servers: str
