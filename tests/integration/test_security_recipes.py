"""docs/security.md's recipes for managed Kafka, each run as written.

A recipe takes its addresses and secrets from the environment; here the environment
points at a local broker set up like the service: Apache Kafka (the session's secured
``KafkaCluster``s) where Kafka can be, and ``FakeCluster`` where it cannot (Event Hubs'
``$ConnectionString`` user, MSK IAM's AWS-signed tokens). The services' public CAs are
stood for by ``SSL_CERT_FILE``, which the system trust store reads. What the producer sends
is read back by confluent-kafka from Kafka, and from the fake's log.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import serialization

from asyncproducer import Producer
from asyncproducer.testing.kafka import KafkaCluster
from tests.integration.brokers import SECURE_USERS
from tests.integration.independent import consume
from tests.integration.test_security import confluent_settings

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

SECURITY_PAGE = Path(__file__).resolve().parents[2] / "docs" / "security.md"
RECIPE = re.compile(r"```python recipe=([\w-]+)\n(.*?)```", re.S)
RECIPES = dict(RECIPE.findall(SECURITY_PAGE.read_text()))
RECORDS = 1_000
USER = "alice"


def test_the_page_has_each_recipe_this_file_runs() -> None:
    assert set(RECIPES) == {
        "confluent-cloud",
        "msk-iam",
        "msk-scram",
        "aiven",
        "redpanda",
        "event-hubs",
        "self-hosted-scram",
    }


def make_producer(name: str, monkeypatch: pytest.MonkeyPatch, **environment: str) -> Producer:
    """The recipe's ``producer``, made with ``environment`` set."""
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    namespace: dict[str, Any] = {"__name__": f"recipe-{name}"}
    exec(compile(RECIPES[name], f"<recipe {name}>", "exec"), namespace)
    producer = namespace["producer"]
    assert isinstance(producer, Producer)
    return producer


async def send_all(producer: Producer, topic: str) -> None:
    with anyio.fail_after(60):
        async with producer:
            futures = [await producer.send(topic, b"%d" % i) for i in range(RECORDS)]
            for future in futures:
                await future


async def round_trip_on_kafka(kafka: KafkaCluster, protocol: str, producer: Producer) -> None:
    topic = f"recipe-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(topic, partitions=2)
    await send_all(producer, topic)
    stored = await anyio.to_thread.run_sync(
        lambda: consume(
            kafka.bootstrap_servers,
            topic,
            [0, 1],
            RECORDS,
            extra=confluent_settings(kafka, protocol),
        )
    )
    assert sorted(int(r.value or b"") for r in stored) == list(range(RECORDS))


# ------------------------------------------------------------------ on Apache Kafka


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("recipe", "mechanism", "prefix"),
    [
        ("confluent-cloud", "PLAIN", "CONFLUENT"),
        ("msk-scram", "SCRAM-SHA-512", "MSK"),
        ("redpanda", "SCRAM-SHA-256", "REDPANDA"),
    ],
)
async def test_a_sasl_ssl_service_trusted_through_the_system_store(
    sasl_ssl_cluster: KafkaCluster,
    monkeypatch: pytest.MonkeyPatch,
    recipe: str,
    mechanism: str,
    prefix: str,
) -> None:
    secret = "API_SECRET" if prefix == "CONFLUENT" else "PASSWORD"
    user = "API_KEY" if prefix == "CONFLUENT" else "USERNAME"
    producer = make_producer(
        recipe,
        monkeypatch,
        SSL_CERT_FILE=str(sasl_ssl_cluster.tls.ca),
        **{
            f"{prefix}_BOOTSTRAP": sasl_ssl_cluster.bootstrap_servers,
            f"{prefix}_{user}": USER,
            f"{prefix}_{secret}": SECURE_USERS[USER],
        },
    )
    assert producer.config.sasl_mechanism == mechanism
    await round_trip_on_kafka(sasl_ssl_cluster, "SASL_SSL", producer)


@pytest.mark.kafka
async def test_self_hosted_scram_with_its_own_ca(
    sasl_ssl_cluster: KafkaCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    producer = make_producer(
        "self-hosted-scram",
        monkeypatch,
        KAFKA_BOOTSTRAP=sasl_ssl_cluster.bootstrap_servers,
        KAFKA_USERNAME=USER,
        KAFKA_PASSWORD=SECURE_USERS[USER],
        KAFKA_CA=str(sasl_ssl_cluster.tls.ca),
    )
    await round_trip_on_kafka(sasl_ssl_cluster, "SASL_SSL", producer)


@pytest.mark.kafka
async def test_aiven_client_certificate_files(
    mtls_cluster: KafkaCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Aiven's console gives the three files, the key unencrypted.
    tls = mtls_cluster.tls
    password = tls.key_password.encode() if tls.key_password else None
    key = serialization.load_pem_private_key(tls.client_key.read_bytes(), password)
    (tmp_path / "service.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "service.cert").write_bytes(tls.client_chain.read_bytes())
    (tmp_path / "ca.pem").write_bytes(tls.ca.read_bytes())
    producer = make_producer(
        "aiven",
        monkeypatch,
        AIVEN_BOOTSTRAP=mtls_cluster.bootstrap_servers,
        AIVEN_CERTIFICATES=str(tmp_path),
    )
    await round_trip_on_kafka(mtls_cluster, "SSL", producer)
