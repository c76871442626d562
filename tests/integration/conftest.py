"""The real brokers of the integration suite: see tests/integration/brokers.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from asyncproducer.testing.certs import make_tls_files
from asyncproducer.testing.kafka import KafkaCluster
from tests.integration.brokers import (
    BROKER_KINDS,
    EXTERNAL,
    EXTERNAL_ENV,
    KEY_PASSWORD,
    SECURE_USERS,
    KillableBroker,
    RealBroker,
    require_kafka_tools,
    running_broker,
)

# test_producer.py's 100k x acks x codec matrix. On asyncio, on both brokers: every codec
# with acks=all and every acks uncompressed (a batch is compressed by the client, whatever
# acks asks of the broker). On uvloop and trio: each codec once, with the acks in turn, so
# that each loop still meets every codec and every acks. What the loops change is the I/O
# under the producer, not the codec or the broker's acks; the whole cross cost ~4 minutes
# of CI for no case this misses.
_MATRIX = "test_100k_records_from_50_tasks_arrive_exactly_once_in_order"
_ROTATION: dict[str, dict[str, object]] = {
    "uvloop": {"none": "all", "gzip": 1, "snappy": 0, "lz4": "all", "zstd": 1},
    "trio": {"none": 1, "gzip": 0, "snappy": "all", "lz4": 1, "zstd": 0},
}


def _loop_of(backend: object) -> str:
    if isinstance(backend, tuple):
        name, options = backend
        return "uvloop" if options.get("use_uvloop") else str(name)
    return str(backend)


def _outside_the_matrix(item: pytest.Item) -> bool:
    if getattr(item, "originalname", None) != _MATRIX:
        return False
    params = item.callspec.params  # type: ignore[attr-defined]
    rotation = _ROTATION.get(_loop_of(params["anyio_backend"]))
    if rotation is not None:
        return bool(params["acks"] != rotation[params["compression"]])
    return bool(params["acks"] != "all" and params["compression"] != "none")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)
    left_out = [item for item in items if _outside_the_matrix(item)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not _outside_the_matrix(item)]


@pytest.fixture(scope="session", params=BROKER_KINDS)
def real_broker(request: pytest.FixtureRequest) -> Iterator[RealBroker]:
    """One broker of each kind for the whole session (pytest runs every test of one kind,
    then ends that broker before starting the next)."""
    kind: str = request.param
    if kind == EXTERNAL:
        yield RealBroker(kind, os.environ[EXTERNAL_ENV])
        return
    with running_broker(kind) as broker:
        yield RealBroker(kind, broker.bootstrap_servers)


@pytest.fixture
def kafka_bootstrap_servers(real_broker: RealBroker) -> str:
    return real_broker.bootstrap_servers


@pytest.fixture
def broker_kind(real_broker: RealBroker) -> str:
    """``tansu``, ``kafka`` or ``external``: for the few assertions where brokers differ."""
    return real_broker.kind


@pytest.fixture(params=BROKER_KINDS)
def killable_broker(request: pytest.FixtureRequest) -> Iterator[KillableBroker]:
    """A broker of the test's own, of each kind, that the test may kill."""
    with running_broker(request.param) as broker:
        yield broker


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- secured Kafka
# Started once per session and shared by test_kafka_security_rig.py (KafkaCluster itself,
# checked with confluent-kafka) and test_security.py (the producer): ~5 s per JVM start.


@pytest.fixture(scope="session")
def ssl_cluster() -> Iterator[KafkaCluster]:
    """TLS; asks for a client certificate without insisting (plain TLS and mTLS both)."""
    require_kafka_tools()
    with KafkaCluster(listener="SSL", client_auth="requested") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def mtls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """TLS with client certificates required; the keys are encrypted (KEY_PASSWORD)."""
    require_kafka_tools()
    tls = make_tls_files(tmp_path_factory.mktemp("mtls"), key_password=KEY_PASSWORD)
    with KafkaCluster(listener="SSL", client_auth="required", tls=tls) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def sasl_ssl_cluster() -> Iterator[KafkaCluster]:
    require_kafka_tools()
    with KafkaCluster(listener="SASL_SSL", users=SECURE_USERS) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def sasl_plaintext_cluster() -> Iterator[KafkaCluster]:
    """Three nodes: the SCRAM users made at format time must exist on each, and replicas
    follow over INTERNAL while clients authenticate on CLIENT."""
    require_kafka_tools()
    with KafkaCluster(
        brokers=3,
        listener="SASL_PLAINTEXT",
        users=SECURE_USERS,
        broker_config={"connections.max.reauth.ms": "60000"},
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session", params=["expired", "wrong-name"])
def bad_certificate_cluster(request: pytest.FixtureRequest) -> Iterator[KafkaCluster]:
    """TLS serving a certificate every client must refuse."""
    require_kafka_tools()
    with KafkaCluster(listener="SSL", server_certificate=request.param) as cluster:
        yield cluster
