"""docs/security.md's recipes for managed Kafka, each run as written.

A recipe takes its addresses and secrets from the environment; here the environment
points at a local broker set up like the service: Apache Kafka (the session's secured
``KafkaCluster``s) where Kafka can be, and ``FakeCluster`` where it cannot (Event Hubs'
``$ConnectionString`` user, MSK IAM's AWS-signed tokens). The services' public CAs are
stood for by ``SSL_CERT_FILE``, which the system trust store reads. What the producer sends
is read back by confluent-kafka from Kafka, and from the fake's log.
"""

from __future__ import annotations

import base64
import calendar
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import pytest
from cryptography.hazmat.primitives import serialization

from asyncproducer import Producer
from asyncproducer.errors import AuthenticationError
from asyncproducer.testing import FakeCluster
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


# ------------------------------------------------------------------ on FakeCluster


async def round_trip_on_the_fake(cluster: FakeCluster, producer: Producer) -> None:
    cluster.create_topic("orders", 2)
    await send_all(producer, "orders")
    stored = cluster.records("orders", 0) + cluster.records("orders", 1)
    assert sorted(int(r.value or b"") for r in stored) == list(range(RECORDS))


async def test_event_hubs_connection_string_as_plain_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The user name Event Hubs wants, and a connection string's ';' and '=' in the password:
    # what Kafka's own JAAS and StorageTool parsers cannot hold.
    connection_string = (
        "Endpoint=sb://orders.servicebus.windows.net/;SharedAccessKeyName=send;"
        "SharedAccessKey=c2VjcmV0LWtleQ=="
    )
    async with FakeCluster(
        brokers=1,
        listener="SASL_SSL",
        sasl_mechanisms=["PLAIN"],
        users={"$ConnectionString": connection_string},
    ) as cluster:
        producer = make_producer(
            "event-hubs",
            monkeypatch,
            SSL_CERT_FILE=str(cluster.tls.ca),
            EVENTHUBS_BOOTSTRAP=cluster.bootstrap_servers,
            EVENTHUBS_CONNECTION_STRING=connection_string,
        )
        await round_trip_on_the_fake(cluster, producer)
        assert {a.principal for a in cluster.authentications} == {"$ConnectionString"}


@pytest.mark.parametrize(("region", "accepted"), [("eu-west-1", True), ("us-east-1", False)])
async def test_msk_iam_signs_what_msk_checks(
    monkeypatch: pytest.MonkeyPatch, region: str, accepted: bool
) -> None:
    # AWS's signer with static credentials from the environment (the default chain);
    # the fake broker checks the token as MSK would see it: a presigned kafka-cluster:Connect
    # URL for the region, by that access key, not expired.
    access_key = "AKIAIOSFODNN7EXAMPLE"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")

    def validate(token: str) -> tuple[str, int] | None:
        url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
        query = parse_qs(url.query)
        credential = query["X-Amz-Credential"][0].split("/")
        signed_at = calendar.timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
        expires_ms = (signed_at + int(query["X-Amz-Expires"][0])) * 1000
        if (
            url.netloc != "kafka.eu-west-1.amazonaws.com"
            or query["Action"] != ["kafka-cluster:Connect"]
            or credential[0] != access_key
            or credential[2:4] != ["eu-west-1", "kafka-cluster"]
            or "X-Amz-Signature" not in query
            or expires_ms <= time.time() * 1000
        ):
            return None
        return f"arn:aws:iam::123456789012:user/{credential[0]}", expires_ms

    async with FakeCluster(
        brokers=1,
        listener="SASL_SSL",
        sasl_mechanisms=["OAUTHBEARER"],
        oauthbearer_validator=validate,
    ) as cluster:
        producer = make_producer(
            "msk-iam",
            monkeypatch,
            SSL_CERT_FILE=str(cluster.tls.ca),
            MSK_BOOTSTRAP=cluster.bootstrap_servers,
            AWS_REGION=region,
            AWS_ACCESS_KEY_ID=access_key,
            AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        if not accepted:  # signed for another region's cluster
            with pytest.raises(AuthenticationError):
                await send_all(producer, "orders")
            assert not cluster.authentications
            return
        await round_trip_on_the_fake(cluster, producer)
        assert {a.principal for a in cluster.authentications} == {
            f"arn:aws:iam::123456789012:user/{access_key}"
        }
